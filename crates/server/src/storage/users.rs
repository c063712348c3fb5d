//! Users and their roles.

use api::{Email, Role, Username};
use time::OffsetDateTime;

use super::{Backend, Revocation, Storage, is_unique_violation, on_pool, record_revocation};
use crate::error::{Error, Result};

/// A user as the domain sees it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub created_at: OffsetDateTime,
    pub disabled: bool,
    /// Access tokens carry this; bumping it invalidates the user's older tokens.
    pub token_version: i64,
}

impl UserRecord {
    /// The roles as the tutorial's clients read them: `ROLE_USER`, …
    pub fn authorities(&self) -> Vec<String> {
        self.roles
            .iter()
            .map(|r| r.authority().to_owned())
            .collect()
    }
}

/// What sign-up stores.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a Username,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub roles: &'a [Role],
}

/// Inside a transaction `$tx` on either back end: gives the user each role of `$roles`.
macro_rules! insert_roles {
    ($tx:expr, $user_id:expr, $roles:expr) => {
        for role in $roles {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2",
            )
            .bind($user_id)
            .bind(role.as_str())
            .execute(&mut *$tx)
            .await?;
        }
    };
}

type UserRow = (i64, String, String, String, OffsetDateTime, bool, i64);

const SELECT_USER: &str = "SELECT id, username, email, password_hash, created_at, disabled, \
     token_version FROM users";

/// Failures allowed before back-off starts.
pub const FREE_SIGNIN_FAILURES: i64 = 5;
/// Longest back-off, in seconds.
pub const MAX_BACKOFF_SECS: i64 = 900;

/// Whether a sign-in may check its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninAttempt {
    /// Go ahead; this attempt is already counted as a failure until it succeeds.
    Allowed,
    /// Backing off until this unix time.
    LockedUntil(i64),
}

/// A page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    pub total: i64,
}

/// An admin's change to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminChange {
    SetRoles(Vec<Role>),
    Disable,
    Enable,
    Delete,
}

impl Storage {
    pub async fn username_taken(&self, username: &Username) -> Result<bool> {
        let found: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM users WHERE lower(username) = $1")
                .bind(username.canonical())
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    pub async fn email_taken(&self, email: &Email) -> Result<bool> {
        let found: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Inserts the user and its roles in one transaction: either both land or neither.
    /// A username or email taken meanwhile by a concurrent sign-up becomes the client error.
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<i64> {
        let now = OffsetDateTime::now_utc();
        let inserted: Result<i64, sqlx::Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO users (username, email, password_hash, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                )
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .bind(user.password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                insert_roles!(tx, id, user.roles);
                tx.commit().await?;
                Ok::<_, sqlx::Error>(id)
            }
            .await
        });
        match inserted {
            Ok(id) => Ok(id),
            Err(e) if is_unique_violation(&e) => {
                if self.username_taken(user.username).await? {
                    Err(Error::UsernameTaken)
                } else {
                    Err(Error::EmailTaken)
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Looks a user up by username, whatever its case.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_USER} WHERE lower(username) = $1"))
                .bind(username.to_ascii_lowercase())
                .fetch_optional(pool)
                .await?
        });
        self.with_roles(row).await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_USER} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        self.with_roles(row).await
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows: Vec<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_USER} ORDER BY id"))
                .fetch_all(pool)
                .await?
        });
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.extend(self.with_roles(Some(row)).await?);
        }
        Ok(users)
    }

    pub async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(password_hash)
                .bind(OffsetDateTime::now_utc())
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Gives `role` to the user; returns whether it was new.
    pub async fn grant_role(&self, user_id: i64, role: Role) -> Result<bool> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2 \
                 ON CONFLICT (user_id, role_id) DO NOTHING",
            )
            .bind(user_id)
            .bind(role.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Takes `role` from the user; returns whether it had it.
    pub async fn revoke_role(&self, user_id: i64, role: Role) -> Result<bool> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM user_roles WHERE user_id = $1 \
                 AND role_id = (SELECT id FROM roles WHERE name = $2)",
            )
            .bind(user_id)
            .bind(role.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn roles_of(&self, user_id: i64) -> Result<Vec<Role>> {
        let names: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                 WHERE ur.user_id = $1 ORDER BY r.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(names
            .into_iter()
            .filter_map(|(name,)| match Role::parse(&name) {
                Ok(role) => Some(role),
                Err(unknown) => {
                    tracing::warn!(role = %unknown.0, user_id, "ignoring unknown role in database");
                    None
                }
            })
            .collect())
    }

    async fn with_roles(&self, row: Option<UserRow>) -> Result<Option<UserRecord>> {
        let Some((id, username, email, password_hash, created_at, disabled, token_version)) = row
        else {
            return Ok(None);
        };
        Ok(Some(UserRecord {
            id,
            username,
            email,
            password_hash,
            roles: self.roles_of(id).await?,
            created_at,
            disabled,
            token_version,
        }))
    }

    /// Counts a sign-in attempt before its password is checked, atomically: parallel guesses
    /// each take a slot, and once [`FREE_SIGNIN_FAILURES`] are used the account backs off
    /// exponentially (1 s, 2 s, 4 s … up to [`MAX_BACKOFF_SECS`]). [`Self::signin_succeeded`]
    /// clears the count.
    pub async fn begin_signin_attempt(&self, user_id: i64, now: i64) -> Result<SigninAttempt> {
        let counted: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE users SET failed_signins = failed_signins + 1, \
                 locked_until = CASE WHEN failed_signins + 1 >= $3 THEN $2 + \
                   CASE WHEN failed_signins + 1 >= $3 + 10 THEN $4 \
                   ELSE CAST(1 AS BIGINT) << CAST(failed_signins + 1 - $3 AS INTEGER) END \
                 ELSE locked_until END \
                 WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2) \
                 RETURNING failed_signins",
            )
            .bind(user_id)
            .bind(now)
            .bind(FREE_SIGNIN_FAILURES)
            .bind(MAX_BACKOFF_SECS)
            .fetch_optional(pool)
            .await?
        });
        if counted.is_some() {
            return Ok(SigninAttempt::Allowed);
        }
        let locked: Option<(Option<i64>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT locked_until FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(match locked {
            Some((Some(until),)) if until > now => SigninAttempt::LockedUntil(until),
            // Unlocked meanwhile, or deleted: let the caller proceed and fail normally.
            _ => SigninAttempt::Allowed,
        })
    }

    pub async fn signin_succeeded(&self, user_id: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET failed_signins = 0, locked_until = NULL WHERE id = $1")
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Users whose username or email contains `query` (case-insensitive), oldest first.
    pub async fn search_users(&self, query: &str, limit: i64, offset: i64) -> Result<UserPage> {
        let pattern = format!(
            "%{}%",
            query
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let filter = "WHERE lower(username) LIKE $1 ESCAPE '\\' OR email LIKE $1 ESCAPE '\\'";
        let (rows, total): (Vec<UserRow>, (i64,)) = on_pool!(self, |pool| {
            let rows = sqlx::query_as(&format!(
                "{SELECT_USER} {filter} ORDER BY id LIMIT $2 OFFSET $3"
            ))
            .bind(&pattern)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_as(&format!("SELECT COUNT(*) FROM users {filter}"))
                .bind(&pattern)
                .fetch_one(pool)
                .await?;
            (rows, total)
        });
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.extend(self.with_roles(Some(row)).await?);
        }
        Ok(UserPage {
            users,
            total: total.0,
        })
    }

    /// Applies an admin's change in one transaction. Anything that can take effect on live
    /// access tokens bumps the user's token version and records a revocation. Refuses to leave
    /// the database without an enabled admin.
    pub async fn apply_admin_change(
        &self,
        user_id: i64,
        change: &AdminChange,
        revocation_expires_at: i64,
    ) -> Result<Revocation> {
        let removes_admin = match change {
            AdminChange::SetRoles(roles) => !roles.contains(&Role::Admin),
            AdminChange::Disable | AdminChange::Delete => true,
            AdminChange::Enable => false,
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Writing first takes SQLite's write lock and tells whether the user exists.
            let found = sqlx::query(
                "UPDATE users SET updated_at = $1, token_version = token_version + 1 WHERE id = $2",
            )
            .bind(OffsetDateTime::now_utc())
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if found == 0 {
                return Err(Error::NotFound("User not found."));
            }
            if removes_admin {
                if self.backend() == Backend::Postgres {
                    // Serialise admin changes, so two admins cannot demote each other at once.
                    sqlx::query("SELECT id FROM roles WHERE id = 3 FOR UPDATE")
                        .execute(&mut *tx)
                        .await?;
                }
                let (is_admin, other_admins): (i64, i64) = sqlx::query_as(
                    "SELECT \
                       (SELECT COUNT(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                        WHERE ur.user_id = $1 AND r.name = 'admin'), \
                       (SELECT COUNT(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                        JOIN users u ON u.id = ur.user_id \
                        WHERE ur.user_id <> $1 AND r.name = 'admin' AND u.disabled = FALSE)",
                )
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
                if is_admin > 0 && other_admins == 0 {
                    return Err(Error::LastAdmin);
                }
            }
            match change {
                AdminChange::SetRoles(roles) => {
                    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    insert_roles!(tx, user_id, roles);
                }
                AdminChange::Disable | AdminChange::Enable => {
                    sqlx::query(
                        "UPDATE users SET disabled = $1, failed_signins = 0, locked_until = NULL \
                         WHERE id = $2",
                    )
                    .bind(matches!(change, AdminChange::Disable))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                }
                AdminChange::Delete => {
                    sqlx::query("DELETE FROM users WHERE id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let (min_version,): (i64,) = if matches!(change, AdminChange::Delete) {
                (i64::MAX,)
            } else {
                sqlx::query_as("SELECT token_version FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?
            };
            let revocation = Revocation::User {
                id: user_id,
                min_version,
            };
            record_revocation!(self, tx, &revocation, revocation_expires_at);
            tx.commit().await?;
            Ok::<_, Error>(revocation)
        })
    }
}
