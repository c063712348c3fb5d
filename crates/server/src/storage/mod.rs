//! All SQL lives here. One [`Storage`] hides whether the rows are in SQLite or PostgreSQL:
//! the queries are written once, in the dialect both share, and run on either pool.

mod audit;
mod keys;
mod revocations;
mod secrets;
mod sessions;
mod users;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use audit::{AuditEvent, AuditKind, AuditRecord};
pub use keys::StoredKey;
pub use revocations::{REVOCATION_CHANNEL, Revocation};
pub use sessions::{NewSession, SessionFilter, SessionRecord, TokenLookup};
pub use users::{AdminChange, NewUser, SigninAttempt, UserPage, UserRecord};

/// Runs `$body` with `$pool` bound to the concrete pool, whichever back end is in use.
/// The body is compiled once per back end, so a query that either one cannot run fails to build.
macro_rules! on_pool {
    ($storage:expr, |$pool:ident| $body:expr) => {
        match &$storage.pool {
            $crate::storage::Pool::Sqlite($pool) => $body,
            $crate::storage::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Inside a transaction `$tx` on either back end: records `$revocation` (lasting until
/// `$expires_at`) and, on PostgreSQL, tells every node through NOTIFY once the transaction commits.
macro_rules! record_revocation {
    ($storage:expr, $tx:expr, $revocation:expr, $expires_at:expr) => {{
        let revocation: &$crate::storage::Revocation = $revocation;
        let (kind, subject, min_version) = revocation.to_row();
        sqlx::query(
            "INSERT INTO revocations (kind, subject, min_version, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(kind)
        .bind(subject)
        .bind(min_version)
        .bind($expires_at)
        .execute(&mut *$tx)
        .await?;
        if $storage.backend() == $crate::storage::Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::storage::REVOCATION_CHANNEL)
                .bind(revocation.to_payload())
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use record_revocation;

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    pool: Pool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Storage {
    /// Opens the database named by `url` (`sqlite://…` or `postgres://…`).
    /// A SQLite file is created if missing and runs in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("DATABASE_URL is not a valid sqlite:// URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await
                .context("cannot open the SQLite database")?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            Pool::Postgres(pool)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        Ok(Self { pool })
    }

    /// Applies the migrations embedded in the binary.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
        .context("database migration failed")
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for features only it has (LISTEN/NOTIFY).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Whether `error` is a unique-key violation, on either back end.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
