//! All SQL lives here. One [`Storage`] hides whether the rows are in SQLite or PostgreSQL:
//! the queries are written once, in the dialect both share, and run on either pool.

mod audit;
mod clients;
mod email_tokens;
mod factors;
mod health;
mod keys;
mod passkeys;
mod revocations;
mod search;
mod secrets;
mod sessions;
mod throttle;
mod users;

use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, SqlitePool, TransactionManager,
    postgres::PgPoolOptions,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        SqliteTransactionManager,
    },
};

pub use audit::AuditRecord;
pub use clients::ClientRecord;
pub use email_tokens::{
    EmailToken, NewEmailToken, PasswordReplacement, Purpose, ReportToken, SEND_WINDOW_SECS,
};
pub use factors::{Challenge, TotpRecord};
pub use health::Health;
pub use keys::StoredKey;
pub use passkeys::{Ceremony, NewPasskey, PasskeyRecord};
pub use revocations::{REVOCATION_CHANNEL, Revocation, RevocationNotice};
pub use secrets::{SecretRef, SecretRow};
pub use sessions::{NewSession, SessionFilter, SessionOpened, SessionRecord, TokenLookup};
pub use throttle::{FREE_SIGNIN_FAILURES, MAX_BACKOFF_SECS, SigninAttempt, ThrottleKey};
pub use users::{AdminChange, NewUser, UserPage, UserRecord};

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

/// Inside a transaction `$tx` on either back end: records `$revocation`, made at unix time
/// `$now` by a node whose access tokens live `$own_ttl_secs`, and evaluates to its
/// [`RevocationNotice`]. It lasts as long as the longest-lived access token any node has issued
/// could, not only this node's. On PostgreSQL every node hears of it through NOTIFY once the
/// transaction commits.
macro_rules! record_revocation {
    ($storage:expr, $tx:expr, $revocation:expr, $now:expr, $own_ttl_secs:expr) => {{
        let revocation: &$crate::storage::Revocation = $revocation;
        let (kind, subject, min_version) = revocation.to_row();
        let (expires_at,): (i64,) = sqlx::query_as(
            "INSERT INTO revocations (kind, subject, min_version, expires_at) VALUES ($1, $2, $3, \
             $4 + (SELECT CASE WHEN value > $5 THEN value ELSE $5 END FROM server_settings \
                   WHERE name = 'max_access_token_ttl')) \
             RETURNING expires_at",
        )
        .bind(kind)
        .bind(subject)
        .bind(min_version)
        .bind($now)
        .bind($own_ttl_secs)
        .fetch_one(&mut *$tx)
        .await?;
        let notice = $crate::storage::RevocationNotice {
            revocation: revocation.clone(),
            expires_at,
        };
        if $storage.backend() == $crate::storage::Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::storage::REVOCATION_CHANNEL)
                .bind(notice.to_payload())
                .execute(&mut *$tx)
                .await?;
        }
        notice
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
    health: Arc<Health>,
    search_hints: Arc<search::SearchHints>,
}

/// How to reach the database.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool now.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
}

impl Storage {
    pub fn pool_stats(&self) -> PoolStats {
        on_pool!(self, |pool| PoolStats {
            open: pool.size(),
            idle: pool.num_idle(),
            max: pool.options().get_max_connections(),
        })
    }

    /// Opens the database named by `url` (`sqlite://…` or `postgres://…`) with `max_connections`
    /// and the default acquire timeout.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        Self::connect_with(
            url,
            PoolSettings {
                max_connections,
                ..PoolSettings::default()
            },
        )
        .await
    }

    /// Opens the database named by `url` (`sqlite://…` or `postgres://…`).
    /// A SQLite file is created if missing and runs in WAL mode.
    pub async fn connect_with(url: &str, settings: PoolSettings) -> anyhow::Result<Self> {
        let max_connections = settings.max_connections.max(1);
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("DATABASE_URL is not a valid sqlite:// URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(settings.acquire_timeout.max(Duration::from_secs(5)))
                .after_release(|conn, _| {
                    Box::pin(async move { Ok(sqlite_connection_is_clean(conn).await) })
                })
                .connect_with(options)
                .await
                .context("cannot open the SQLite database")?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            Pool::Postgres(pool)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        Ok(Self {
            pool,
            health: Arc::default(),
            search_hints: Arc::default(),
        })
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

    /// Writes a consistent copy of a SQLite database to `file` (`VACUUM INTO`). PostgreSQL
    /// has its own tools for that.
    pub async fn backup_into(&self, file: &std::path::Path) -> anyhow::Result<()> {
        let Pool::Sqlite(pool) = &self.pool else {
            anyhow::bail!(
                "tollgate backup copies SQLite databases; for PostgreSQL use pg_dump, e.g. \
                 pg_dump --format=custom --file=tollgate.dump \"$DATABASE_URL\""
            );
        };
        let path = file
            .to_str()
            .context("the backup file name must be UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(pool)
            .await
            .with_context(|| format!("cannot write the backup to {path}"))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Whether a SQLite connection going back to the pool is outside any transaction. One that is
/// not (say a COMMIT failed on a full disk and SQLite kept, or silently dropped, the
/// transaction sqlx believes open) must never serve another request: every later write on it
/// would land in a transaction that is never committed, and its write lock would block every
/// other connection. Such a connection is closed, which rolls back whatever it held.
async fn sqlite_connection_is_clean(conn: &mut sqlx::SqliteConnection) -> bool {
    // Runs after any rollback queued when a transaction was dropped. `BEGIN` fails inside a
    // transaction; outside one it takes no lock.
    let sqlite_idle = match sqlx::query("BEGIN").execute(&mut *conn).await {
        Ok(_) => sqlx::query("ROLLBACK").execute(&mut *conn).await.is_ok(),
        Err(_) => false,
    };
    let clean = sqlite_idle && SqliteTransactionManager::get_transaction_depth(conn) == 0;
    if !clean {
        tracing::warn!("discarding a database connection left inside a transaction");
    }
    clean
}

/// Whether `error` is a unique-key violation, on either back end.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
