//! Users and their roles.

use std::collections::HashMap;

use api::{Email, Role, Username};
use time::OffsetDateTime;

use super::{
    Backend, Revocation, RevocationNotice, SessionFilter, Storage, is_unique_violation, on_pool,
    record_revocation,
};
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
    /// Bumped when the password changes; a session opens only for the version verified.
    pub credential_version: i64,
    /// When the current address was proven (unix time), if it was.
    pub email_verified_at: Option<i64>,
    pub last_signin_at: Option<i64>,
    /// Whether the user has a confirmed authenticator app.
    pub has_totp: bool,
    /// Whether the user has a passkey.
    pub has_passkey: bool,
}

impl UserRecord {
    /// Whether the user has a second factor to prove at sign-in.
    pub fn has_second_factor(&self) -> bool {
        self.has_totp || self.has_passkey
    }

    /// The kinds of second factor the user has: `totp`, `passkey`.
    pub fn factor_names(&self) -> Vec<&'static str> {
        [(self.has_totp, "totp"), (self.has_passkey, "passkey")]
            .into_iter()
            .filter_map(|(has, name)| has.then_some(name))
            .collect()
    }

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
    /// When the address was proven, if it already is (an admin's word).
    pub email_verified_at: Option<i64>,
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

/// A role name read from the database; an unknown one is left out, with a warning.
fn stored_role(name: &str, user_id: i64) -> Option<Role> {
    match Role::parse(name) {
        Ok(role) => Some(role),
        Err(unknown) => {
            tracing::warn!(role = %unknown.0, user_id, "ignoring unknown role in database");
            None
        }
    }
}

/// A user and its roles, as a [`UserRecord`].
fn record(row: UserRow, roles: Vec<Role>) -> UserRecord {
    let (
        id,
        username,
        email,
        password_hash,
        created_at,
        disabled,
        token_version,
        credential_version,
        email_verified_at,
        last_signin_at,
        has_totp,
        has_passkey,
    ) = row;
    UserRecord {
        id,
        username,
        email,
        password_hash,
        roles,
        created_at,
        disabled,
        token_version,
        credential_version,
        email_verified_at,
        last_signin_at,
        has_totp,
        has_passkey,
    }
}

type UserRow = (
    i64,
    String,
    String,
    String,
    OffsetDateTime,
    bool,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    bool,
    bool,
);

const SELECT_USER: &str = "SELECT id, username, email, password_hash, created_at, disabled, \
     token_version, credential_version, email_verified_at, last_signin_at, \
     EXISTS (SELECT 1 FROM totp_factors t WHERE t.user_id = users.id \
             AND t.confirmed_at IS NOT NULL) AS has_totp, \
     EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = users.id) AS has_passkey FROM users";

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

    /// Whether an account uses the address, or may take it back (a reported change).
    pub async fn email_taken(&self, email: &Email) -> Result<bool> {
        let found: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(pool)
                .await?
        });
        if found.is_some() {
            return Ok(true);
        }
        self.email_reserved(email.as_str(), crate::clock::unix_now())
            .await
    }

    /// Inserts the user and its roles in one transaction: either both land or neither.
    /// A username or email taken meanwhile by a concurrent sign-up becomes the client error.
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<i64> {
        let now = OffsetDateTime::now_utc();
        let inserted: Result<i64, sqlx::Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO users (username, email, password_hash, created_at, updated_at, \
                     email_verified_at) VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
                )
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .bind(user.password_hash)
                .bind(now)
                .bind(user.email_verified_at)
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

    /// Looks a user up by address (addresses are stored in canonical form).
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_USER} WHERE email = $1"))
                .bind(email.as_str())
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

    /// Records a successful sign-in's time.
    pub async fn note_signin(&self, user_id: i64, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET last_signin_at = $1 WHERE id = $2")
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
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

    /// Replaces the password of a user whose credential is still at `credential_version`,
    /// and in the same transaction ends the sessions chosen by `end`: a sign-in that verified
    /// the old password can no longer open a session, and none opened before survives.
    /// Returns `None` if the credential changed meanwhile (or the user is gone).
    pub async fn replace_password(
        &self,
        user_id: i64,
        credential_version: i64,
        password_hash: &str,
        end: SessionFilter<'_>,
        now: i64,
        own_ttl_secs: i64,
    ) -> Result<Option<Vec<RevocationNotice>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE users SET password_hash = $1, updated_at = $2, \
                 credential_version = credential_version + 1 \
                 WHERE id = $3 AND credential_version = $4",
            )
            .bind(password_hash)
            .bind(OffsetDateTime::now_utc())
            .bind(user_id)
            .bind(credential_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // A reset link mailed before dies with the old password.
            sqlx::query(
                "UPDATE email_tokens SET expires_at = 0 WHERE user_id = $1 AND purpose = 'reset'",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            let notices =
                super::sessions::revoke_in!(self, tx, end, "password changed", now, own_ttl_secs);
            tx.commit().await?;
            Ok(Some(notices))
        })
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
            .filter_map(|(name,)| stored_role(&name, user_id))
            .collect())
    }

    async fn with_roles(&self, row: Option<UserRow>) -> Result<Option<UserRecord>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let roles = self.roles_of(row.0).await?;
        Ok(Some(record(row, roles)))
    }

    /// The users of `ids` (in ascending order), in that order, with their roles: two queries
    /// whatever their number. A user deleted meanwhile is left out.
    async fn users_by_ids(&self, ids: &[i64]) -> Result<Vec<UserRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (rows, roles): (Vec<UserRow>, Vec<(i64, String)>) = on_pool!(self, |pool| {
            let users_sql = format!("{SELECT_USER} WHERE id IN ({list}) ORDER BY id");
            let mut users = sqlx::query_as(&users_sql);
            for id in ids {
                users = users.bind(id);
            }
            let rows = users.fetch_all(pool).await?;
            let roles_sql = format!(
                "SELECT ur.user_id, r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                 WHERE ur.user_id IN ({list}) ORDER BY ur.user_id, r.id"
            );
            let mut roles = sqlx::query_as(&roles_sql);
            for id in ids {
                roles = roles.bind(id);
            }
            (rows, roles.fetch_all(pool).await?)
        });
        let mut by_user: HashMap<i64, Vec<Role>> = HashMap::new();
        for (user_id, name) in roles {
            by_user
                .entry(user_id)
                .or_default()
                .extend(stored_role(&name, user_id));
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let roles = by_user.remove(&row.0).unwrap_or_default();
                record(row, roles)
            })
            .collect())
    }

    /// Users whose username or email contains `query` (case-insensitive), oldest first.
    pub async fn search_users(&self, query: &str, limit: i64, offset: i64) -> Result<UserPage> {
        // SQLite finds 3 characters or more through its index of trigrams and 4-grams
        // (users_search), asked once for every match (the page and the total from the same
        // answer) by some of the query's grams (the rarest, past 50 000 users); PostgreSQL
        // through its trigram indexes, probed for the uncommon part of the query.
        if self.backend() == Backend::Sqlite && query.chars().count() >= 3 {
            return self.search_users_indexed(query, limit, offset).await;
        }
        if query.is_empty() {
            return self.all_users(limit, offset).await;
        }
        let needle = query.to_lowercase();
        let like = |text: &str| {
            format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        };
        // The index looks up the probe; the query itself is checked on what it finds, by
        // position (which no index answers, so the planner cannot probe for it instead).
        let probe = like(
            self.search_hints
                .probe(&needle, self.backend() == Backend::Postgres),
        );
        let position = match self.backend() {
            Backend::Sqlite => "instr",
            Backend::Postgres => "strpos",
        };
        let filter = format!(
            "WHERE (lower(username) LIKE $1 ESCAPE '\\' OR email LIKE $1 ESCAPE '\\') \
             AND ({position}(lower(username), $2) > 0 OR {position}(email, $2) > 0)"
        );
        let (ids, total): (Vec<(i64, i64)>, Option<(i64,)>) = on_pool!(self, |pool| {
            let ids: Vec<(i64, i64)> = sqlx::query_as(&format!(
                "SELECT id, COUNT(*) OVER () FROM users {filter} ORDER BY id LIMIT $3 OFFSET $4"
            ))
            .bind(&probe)
            .bind(&needle)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            // Past the last page the window counted nothing: count apart.
            let total = if ids.is_empty() && offset > 0 {
                Some(
                    sqlx::query_as(&format!("SELECT COUNT(*) FROM users {filter}"))
                        .bind(&probe)
                        .bind(&needle)
                        .fetch_one(pool)
                        .await?,
                )
            } else {
                None
            };
            (ids, total)
        });
        let total = total.map_or_else(|| ids.first().map_or(0, |(_, total)| *total), |(t,)| t);
        let ids: Vec<i64> = ids.into_iter().map(|(id, _)| id).collect();
        let users = self.users_by_ids(&ids).await?;
        Ok(UserPage { users, total })
    }

    /// Every user, oldest first: a page and the count (no search to keep the page's rows for).
    async fn all_users(&self, limit: i64, offset: i64) -> Result<UserPage> {
        let (ids, (total,)): (Vec<(i64,)>, (i64,)) = on_pool!(self, |pool| {
            let ids = sqlx::query_as("SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2")
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total = sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?;
            (ids, total)
        });
        let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
        let users = self.users_by_ids(&ids).await?;
        Ok(UserPage { users, total })
    }

    /// [`Self::search_users`] through SQLite's index of grams: the query matches any part of
    /// the username or the address, whatever the case (of ASCII letters). The index is asked for the rows holding
    /// some of the query's grams (see [`super::search`]), and the query itself is checked on
    /// those rows, unless it is one ASCII trigram. Users changed since the index last took
    /// them in (see [`Self::index_users_for_search`]) are checked apart, so a search is exact
    /// whenever it runs.
    async fn search_users_indexed(&self, query: &str, limit: i64, offset: i64) -> Result<UserPage> {
        let needle = query.to_lowercase();
        let lookups = self.search_hints.lookups(&needle);
        // Each gram a phrase of its own (implicitly AND-ed), quoted for FTS5.
        let expression = lookups
            .iter()
            .map(|gram| format!("\"{}\"", gram.token().replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ");
        // A query of one trigram is answered by the index alone, when it is ASCII: FTS5 folds
        // case by Unicode (`ſ` is `s` to it), the check below as the rest of the search does.
        // What the index holds for a user waiting to be taken in again may be out of date.
        let indexed = if lookups.len() == 1
            && lookups[0].is_trigram()
            && lookups[0].text() == needle
            && needle.is_ascii()
        {
            "SELECT rowid FROM users_search WHERE users_search MATCH $1 \
               AND rowid NOT IN (SELECT id FROM users_search_pending)"
        } else {
            "SELECT s.rowid FROM users_search s JOIN users u ON u.id = s.rowid \
             WHERE users_search MATCH $1 \
               AND (instr(lower(u.username), $2) > 0 OR instr(lower(u.email), $2) > 0)"
        };
        // Both sides in id order, merged (CROSS JOIN: the few waiting users are read first).
        let sql = format!(
            "{indexed} UNION \
             SELECT p.id FROM users_search_pending p CROSS JOIN users u ON u.id = p.id \
             WHERE instr(lower(u.username), $2) > 0 OR instr(lower(u.email), $2) > 0 \
             ORDER BY 1"
        );
        let ids: Vec<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&expression)
                .bind(&needle)
                .fetch_all(pool)
                .await?
        });
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(ids.len());
        let end = start
            .saturating_add(usize::try_from(limit).unwrap_or(0))
            .min(ids.len());
        let page: Vec<i64> = ids[start..end].iter().map(|(id,)| *id).collect();
        let users = self.users_by_ids(&page).await?;
        Ok(UserPage {
            users,
            total: i64::try_from(ids.len()).unwrap_or(i64::MAX),
        })
    }

    /// Applies an admin's change in one transaction. Anything that can take effect on live
    /// access tokens bumps the user's token version and records a revocation. Refuses to leave
    /// the database without an enabled admin.
    pub async fn apply_admin_change(
        &self,
        user_id: i64,
        change: &AdminChange,
        now: i64,
        own_ttl_secs: i64,
    ) -> Result<RevocationNotice> {
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
            let notice = record_revocation!(self, tx, &revocation, now, own_ttl_secs);
            tx.commit().await?;
            Ok::<_, Error>(notice)
        })
    }
}
