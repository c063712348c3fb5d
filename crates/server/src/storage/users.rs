//! Users and their roles.

use api::{Email, Role, Username};
use time::OffsetDateTime;

use super::{Storage, is_unique_violation, on_pool};
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
}

/// What sign-up stores.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a Username,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub roles: &'a [Role],
}

type UserRow = (i64, String, String, String, OffsetDateTime);

const SELECT_USER: &str = "SELECT id, username, email, password_hash, created_at FROM users";

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
                for role in user.roles {
                    sqlx::query(
                        "INSERT INTO user_roles (user_id, role_id) \
                         SELECT $1, id FROM roles WHERE name = $2",
                    )
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
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
        let Some((id, username, email, password_hash, created_at)) = row else {
            return Ok(None);
        };
        Ok(Some(UserRecord {
            id,
            username,
            email,
            password_hash,
            roles: self.roles_of(id).await?,
            created_at,
        }))
    }
}
