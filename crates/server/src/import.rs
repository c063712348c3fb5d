//! `tollgate import`: brings the users of the tutorial's database (MySQL/MariaDB, its default,
//! or PostgreSQL) along with their passwords and roles.
//!
//! It reads the Sequelize schema the tutorial creates: `users (id, username, email, password)`,
//! `roles (id, name)` and `user_roles (userId, roleId)`. bcrypt hashes are kept as they are
//! (Tollgate verifies them and upgrades them to argon2id at the next sign-in). Every row that
//! is not brought in is reported with the reason, never dropped silently; a user already here
//! (same username and address) is left alone, so importing again changes nothing.

use std::collections::{BTreeMap, HashSet};

use api::{Email, Role, Username};
use sqlx::{Connection, MySqlConnection, PgConnection};

use crate::{
    error::Error,
    storage::{NewUser, Storage},
};

/// A user as the tutorial's database holds them.
#[derive(Debug, Clone, Default)]
pub struct SourceUser {
    pub id: i64,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    /// Role names as stored (`user`, `moderator`, `admin`).
    pub roles: Vec<String>,
}

/// What happens to one source user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Import {
        username: Username,
        email: Email,
        password_hash: String,
        roles: Vec<Role>,
        /// Something to know that did not stop the import (an unknown role left out).
        notes: Vec<String>,
    },
    /// Here already (same username and address): left as it is.
    AlreadyHere,
    Skip(String),
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub source_id: i64,
    /// The username as the source has it, for the report.
    pub label: String,
    pub decision: Decision,
}

/// Reads the tutorial's users from `url` (`mysql://…`, `mariadb://…` or `postgres://…`).
pub async fn read_source(url: &str) -> anyhow::Result<Vec<SourceUser>> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    let (users, links): (Vec<UserRow>, Vec<(i64, Option<String>)>) = match scheme {
        "mysql" | "mariadb" => {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let mut source = MySqlConnection::connect(&url).await?;
            let users = sqlx::query_as(
                "SELECT CAST(id AS SIGNED), username, email, password FROM users ORDER BY id",
            )
            .fetch_all(&mut source)
            .await?;
            let links = sqlx::query_as(
                "SELECT CAST(ur.userId AS SIGNED), r.name FROM user_roles ur \
                 JOIN roles r ON r.id = ur.roleId ORDER BY ur.userId, r.id",
            )
            .fetch_all(&mut source)
            .await?;
            source.close().await?;
            (users, links)
        }
        "postgres" | "postgresql" => {
            let mut source = PgConnection::connect(url).await?;
            let users = sqlx::query_as(
                "SELECT id::bigint, username::text, email::text, password::text FROM users ORDER BY id",
            )
            .fetch_all(&mut source)
            .await?;
            let links = sqlx::query_as(
                "SELECT ur.\"userId\"::bigint, r.name::text FROM user_roles ur \
                 JOIN roles r ON r.id = ur.\"roleId\" ORDER BY ur.\"userId\", r.id",
            )
            .fetch_all(&mut source)
            .await?;
            source.close().await?;
            (users, links)
        }
        _ => anyhow::bail!(
            "--from must be a mysql://, mariadb:// or postgres:// URL of the tutorial's database"
        ),
    };
    let mut roles: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (user_id, name) in links {
        roles
            .entry(user_id)
            .or_default()
            .push(name.unwrap_or_default());
    }
    Ok(users
        .into_iter()
        .map(|(id, username, email, password)| SourceUser {
            id,
            username,
            email,
            password,
            roles: roles.remove(&id).unwrap_or_default(),
        })
        .collect())
}

type UserRow = (i64, Option<String>, Option<String>, Option<String>);

/// Whether `hash` is a bcrypt hash (what the tutorial stores), in its 60-character form.
fn is_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

/// Decides what happens to each source user, against the users already here.
pub async fn plan(storage: &Storage, source: &[SourceUser]) -> anyhow::Result<Vec<Planned>> {
    let mut seen_names: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen_emails: BTreeMap<String, i64> = BTreeMap::new();
    let mut planned = Vec::with_capacity(source.len());
    for user in source {
        let label = user.username.clone().unwrap_or_default();
        let decision = decide(storage, user, &mut seen_names, &mut seen_emails).await?;
        planned.push(Planned {
            source_id: user.id,
            label,
            decision,
        });
    }
    Ok(planned)
}

async fn decide(
    storage: &Storage,
    user: &SourceUser,
    seen_names: &mut BTreeMap<String, i64>,
    seen_emails: &mut BTreeMap<String, i64>,
) -> anyhow::Result<Decision> {
    let username = match Username::parse(user.username.as_deref().unwrap_or("").trim()) {
        Ok(username) => username,
        Err(e) => return Ok(Decision::Skip(format!("invalid username: {}", e.message))),
    };
    let email = match Email::parse(user.email.as_deref().unwrap_or("")) {
        Ok(email) => email,
        Err(e) => return Ok(Decision::Skip(format!("invalid email: {}", e.message))),
    };
    let Some(password_hash) = user.password.as_deref().filter(|h| is_bcrypt(h)) else {
        return Ok(Decision::Skip(
            "the password is not a bcrypt hash: the user cannot sign in with it".to_owned(),
        ));
    };
    if let Some(first) = seen_names.get(&username.canonical()) {
        return Ok(Decision::Skip(format!(
            "the same username as source user #{first}, imported instead"
        )));
    }
    if let Some(first) = seen_emails.get(email.as_str()) {
        return Ok(Decision::Skip(format!(
            "the same email as source user #{first}, imported instead"
        )));
    }
    let by_name = storage.user_by_username(username.as_str()).await?;
    let by_email = storage.user_by_email(&email).await?;
    match (&by_name, &by_email) {
        (Some(a), Some(b)) if a.id == b.id => return Ok(Decision::AlreadyHere),
        (Some(here), _) => {
            return Ok(Decision::Skip(format!(
                "username taken here by user #{} with another email",
                here.id
            )));
        }
        (None, Some(here)) => {
            return Ok(Decision::Skip(format!(
                "email taken here by user #{} ({})",
                here.id, here.username
            )));
        }
        (None, None) => {}
    }
    seen_names.insert(username.canonical(), user.id);
    seen_emails.insert(email.as_str().to_owned(), user.id);

    let mut roles = Vec::new();
    let mut notes = Vec::new();
    let mut named = HashSet::new();
    for name in &user.roles {
        match Role::parse(&name.trim().to_lowercase()) {
            Ok(role) => {
                if named.insert(role) {
                    roles.push(role);
                }
            }
            Err(_) => notes.push(format!("unknown role `{name}` left out")),
        }
    }
    if roles.is_empty() {
        roles.push(Role::User);
        if user.roles.is_empty() {
            notes.push("no role: given `user`".to_owned());
        }
    }
    roles.sort();
    Ok(Decision::Import {
        username,
        email,
        password_hash: password_hash.to_owned(),
        roles,
        notes,
    })
}

/// What an import came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub imported: usize,
    pub already_here: usize,
    pub skipped: usize,
}

/// Carries out the plan (each user in its own transaction); a user taken meanwhile is
/// skipped and reported. Returns the plan as carried out.
pub async fn apply(storage: &Storage, planned: &mut [Planned]) -> anyhow::Result<Summary> {
    for line in planned.iter_mut() {
        let Decision::Import {
            username,
            email,
            password_hash,
            roles,
            ..
        } = &line.decision
        else {
            continue;
        };
        let inserted = storage
            .insert_user(&NewUser {
                username,
                email,
                password_hash,
                roles,
                email_verified_at: None,
            })
            .await;
        match inserted {
            Ok(_) => {}
            Err(Error::UsernameTaken | Error::EmailTaken) => {
                line.decision = Decision::Skip("taken here while the import ran".to_owned());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(summarize(planned))
}

pub fn summarize(planned: &[Planned]) -> Summary {
    planned.iter().fold(Summary::default(), |mut sum, line| {
        match line.decision {
            Decision::Import { .. } => sum.imported += 1,
            Decision::AlreadyHere => sum.already_here += 1,
            Decision::Skip(_) => sum.skipped += 1,
        }
        sum
    })
}

/// The report: a line per user not imported, or imported with a note.
pub fn report(planned: &[Planned]) -> Vec<String> {
    planned
        .iter()
        .filter_map(|line| {
            let who = format!("source user #{} ({})", line.source_id, line.label);
            match &line.decision {
                Decision::Skip(reason) => Some(format!("skipped {who}: {reason}")),
                Decision::Import { notes, .. } if !notes.is_empty() => {
                    Some(format!("imported {who}: {}", notes.join("; ")))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_are_recognised() {
        for prefix in ["$2a$08$", "$2b$10$", "$2y$12$"] {
            assert!(is_bcrypt(&format!("{prefix}{}", "a".repeat(53))));
        }
        assert!(!is_bcrypt("plaintext"));
        assert!(!is_bcrypt(&format!("$2b$08${}", "a".repeat(52))));
        assert!(!is_bcrypt(&format!("$argon2id${}", "x".repeat(50))));
    }
}
