//! `tollgate user …`: manage users from the command line.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use api::{Email, Password, Role, Username};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    config::{Settings, UserCommand},
    passwords::Passwords,
    storage::{NewUser, Storage},
};

/// Where `user add` reads a password from when no terminal is attached.
pub const PASSWORD_ENV: &str = "TOLLGATE_PASSWORD";

pub async fn run_user_command(
    storage: &Storage,
    settings: &Settings,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            username,
            email,
            roles,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let password = read_password()?;
            let password = Password::parse(password.expose_secret())
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let mut roles = roles;
            if roles.is_empty() {
                roles.push(Role::User);
            }
            roles.sort();
            roles.dedup();
            let passwords = Passwords::new(settings.hash_concurrency)?;
            let hash = passwords.hash(&password).await?;
            let id = storage
                .insert_user(&NewUser {
                    username: &username,
                    email: &email,
                    password_hash: &hash,
                    roles: &roles,
                })
                .await?;
            println!(
                "created user {username} (id {id}) with roles {}",
                role_list(&roles)
            );
        }
        UserCommand::Grant { username, role } => {
            let id = user_id(storage, &username).await?;
            let added = storage.grant_role(id, role).await?;
            println!(
                "{username} {} role {role}",
                if added { "now has" } else { "already had" }
            );
        }
        UserCommand::Revoke { username, role } => {
            let id = user_id(storage, &username).await?;
            let removed = storage.revoke_role(id, role).await?;
            println!(
                "{username} {} role {role}",
                if removed {
                    "no longer has"
                } else {
                    "did not have"
                }
            );
        }
        UserCommand::List => {
            let users = storage.list_users().await?;
            println!("{:>6}  {:<20}  {:<32}  roles", "id", "username", "email");
            for user in users {
                println!(
                    "{:>6}  {:<20}  {:<32}  {}",
                    user.id,
                    user.username,
                    user.email,
                    role_list(&user.roles)
                );
            }
        }
    }
    Ok(())
}

async fn user_id(storage: &Storage, username: &Username) -> anyhow::Result<i64> {
    storage
        .user_by_username(username.as_str())
        .await?
        .map(|u| u.id)
        .with_context(|| format!("no user named {username}"))
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The new user's password: from the environment, else a prompt (twice), else a line of stdin.
fn read_password() -> anyhow::Result<SecretString> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password.into());
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        anyhow::ensure!(first == second, "the passwords do not match");
        return Ok(first.into());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !password.is_empty(),
        "no password given: set {PASSWORD_ENV}, type it at the prompt or pipe it on stdin"
    );
    Ok(password.to_owned().into())
}
