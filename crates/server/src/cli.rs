//! `tollgate user …`: manage users from the command line; `tollgate authz check`: ask the
//! access rules about a request; `tollgate keys …`: the master key.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use api::{Email, Password, Role, Username};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    authz::{Outcome, RequestPath, Target},
    config::{AuthzCommand, ClientCommand, Command, KeysCommand, UserCommand},
    domain::clients::{self, ClientName},
    domain::{
        admin::{self, Actor, NewAccount, UserChange, change_user},
        email::reset,
        keys,
        sessions::Client,
    },
    sealing::{MasterKey, Sealer},
    state::AppState,
    tokens::RoleSet,
};

/// Runs a command of the CLI on a loaded state. (`serve` is the binary's own: nothing here.)
pub async fn run(state: &AppState, command: Command) -> anyhow::Result<()> {
    let result = match command {
        Command::User(command) => run_user_command(state, command).await,
        Command::Authz(command) => run_authz_command(state, command).await,
        Command::Client(command) => run_client_command(state, command).await,
        Command::Backup { file } => backup(state, &file).await,
        Command::Keys(command) => run_keys_command(state, command).await,
        Command::Import { from, dry_run } => import(state, from.expose_secret(), dry_run).await,
        Command::Serve => Ok(()),
    };
    // Mail a command queued (a verification, a link) goes out before the process ends.
    state.mailer.flush().await;
    result
}

/// `tollgate backup FILE`: a consistent copy of the SQLite database, taken while the server
/// may be running (`VACUUM INTO`: one read transaction, so writers go on).
async fn run_keys_command(state: &AppState, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::NewMasterKey => println!("{}", MasterKey::generate()?),
        KeysCommand::Rotate {
            activate_in,
            retire_previous,
        } => {
            let rotated = keys::rotate(
                &state.storage,
                &state.settings,
                activate_in,
                retire_previous,
            )
            .await?;
            println!(
                "key {} (generation {}) is published now and signs from {}.",
                rotated.kid,
                rotated.generation,
                crate::clock::rfc3339(rotated.activates_at)
            );
            if retire_previous {
                println!(
                    "{} older keys deleted: their tokens stop working within a minute.",
                    rotated.retired
                );
            }
        }
        KeysCommand::List => {
            let now = crate::clock::unix_now();
            let stored = state.storage.signing_keys(crate::tokens::EDDSA).await?;
            let signing = stored
                .iter()
                .find(|k| k.activates_at <= now)
                .map(|k| k.generation);
            for key in &stored {
                let status = if key.activates_at > now {
                    format!("signs from {}", crate::clock::rfc3339(key.activates_at))
                } else if Some(key.generation) == signing {
                    "signing".to_owned()
                } else {
                    "verifying only (retired once its tokens expire)".to_owned()
                };
                println!("{}\t{}\t{}", key.generation, key.kid, status);
            }
        }
        KeysCommand::Rewrap {
            new_master_key,
            new_master_key_file,
            decrypt,
        } => {
            let new = match crate::config::master_key(
                "--new-master-key",
                new_master_key.as_ref(),
                new_master_key_file.as_deref(),
            )? {
                Some(key) => Sealer::new(Some(key)),
                None if decrypt => Sealer::default(),
                None => anyhow::bail!(
                    "give the new master key (TOLLGATE_NEW_MASTER_KEY or --new-master-key-file), or --decrypt"
                ),
            };
            let count = keys::rewrap(&state.storage, &state.settings.sealer, &new).await?;
            match new.key_id() {
                Some(id) => println!("{count} secrets are now encrypted under master key {id}."),
                None => println!("{count} secrets are now stored unencrypted."),
            }
        }
    }
    Ok(())
}

async fn import(state: &AppState, from: &str, dry_run: bool) -> anyhow::Result<()> {
    let source = crate::import::read_source(from)
        .await
        .context("reading the tutorial's database")?;
    let mut planned = crate::import::plan(&state.storage, &source).await?;
    let summary = if dry_run {
        crate::import::summarize(&planned)
    } else {
        crate::import::apply(&state.storage, &mut planned).await?
    };
    for line in crate::import::report(&planned) {
        println!("{line}");
    }
    let verb = if dry_run {
        "would be imported"
    } else {
        "imported"
    };
    println!(
        "{} users read: {} {verb}, {} already here, {} skipped.",
        source.len(),
        summary.imported,
        summary.already_here,
        summary.skipped
    );
    Ok(())
}

async fn backup(state: &AppState, file: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !file.exists(),
        "{} exists already; choose a new file",
        file.display()
    );
    state.storage.backup_into(file).await?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!("backup written to {} ({size} bytes)", file.display());
    Ok(())
}

/// Runs a `tollgate client …` command.
pub async fn run_client_command(state: &AppState, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Add { name } => {
            let name = ClientName::parse(&name).map_err(|e| anyhow::anyhow!(e))?;
            let secret = clients::add(state, &name, None).await?;
            println!(
                "client {} added. Its secret (shown only now):",
                name.as_str()
            );
            println!("{secret}");
        }
        ClientCommand::List => {
            for client in clients::list(state).await? {
                let used = client.last_used_at.map_or_else(
                    || "never used".to_owned(),
                    |at| format!("last used {}", iso(at)),
                );
                println!("{}  added {}  {used}", client.name, iso(client.created_at));
            }
        }
        ClientCommand::Remove { name } => {
            clients::remove(state, &name, None).await?;
            println!("client {name} removed");
        }
    }
    Ok(())
}

fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Runs a `tollgate authz …` command.
pub async fn run_authz_command(state: &AppState, command: AuthzCommand) -> anyhow::Result<()> {
    let AuthzCommand::Check { url, method, user } = command;
    let method = axum::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("`{method}` is not an HTTP method"))?;
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| anyhow::anyhow!("`{url}` is not a URL or a path"))?;
    let path = RequestPath::parse(uri.path())
        .map_err(|e| anyhow::anyhow!("`{}` is refused: {e}", uri.path()))?;
    let caller = match &user {
        Some(username) => {
            let record = self::user(state, username).await?;
            Some(record)
        }
        None => None,
    };
    let rules = state.authz.rules();
    let target = Target {
        host: uri.authority().map(|a| a.as_str()),
        method: &method,
        path: &path,
    };
    let roles = caller
        .as_ref()
        .filter(|record| !record.disabled)
        .map(|record| record.roles.iter().copied().collect::<RoleSet>());
    let decision = rules.decide(&target, roles);
    println!("{method} {url} (path {path})");
    match decision.rule {
        Some(rule) => println!("matches {rule}"),
        None => println!("matches no rule: denied by default"),
    }
    let who = match &caller {
        Some(record) if record.disabled => format!("{} (disabled)", record.username),
        Some(record) => {
            let names: Vec<&str> = record.roles.iter().map(|r| r.as_str()).collect();
            format!("{} (roles {})", record.username, names.join(", "))
        }
        None => "an anonymous caller".to_owned(),
    };
    let verdict = match decision.outcome {
        Outcome::Allow => "allowed",
        Outcome::NeedsCredentials => {
            "refused: sign-in required (401, or the login page for a browser)"
        }
        Outcome::Forbidden => "refused: forbidden (403)",
    };
    println!("{who}: {verdict}");
    Ok(())
}

/// Where `user add` reads a password from when no terminal is attached.
pub const PASSWORD_ENV: &str = "TOLLGATE_PASSWORD";

/// Runs a `tollgate user …` command. Changes go through the same domain steps as the admin
/// API: audited, and live access tokens follow at once (a server on the same SQLite file
/// within half a second, other PostgreSQL nodes through NOTIFY).
pub async fn run_user_command(state: &AppState, command: UserCommand) -> anyhow::Result<()> {
    let storage = &state.storage;
    match command {
        UserCommand::Add {
            username,
            email,
            roles,
            invite,
            verified,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let password = if invite {
                None
            } else {
                let password = read_password()?;
                Some(
                    Password::parse(password.expose_secret())
                        .map_err(|e| anyhow::anyhow!(e.message))?,
                )
            };
            let mail = invite && state.mailer.is_configured();
            let account = NewAccount {
                username: username.clone(),
                email,
                roles,
                password,
                send_set_password_mail: mail,
                email_verified: verified,
            };
            let (id, _) = admin::create_user(state, Actor::Cli, account, &Client::default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = user(state, &username).await?;
            println!(
                "created user {username} (id {id}) with roles {}",
                role_list(&user.roles)
            );
            if mail {
                state.mailer.flush().await;
                println!("a link to choose a password was mailed to {}", user.email);
            } else if invite {
                let link = reset::link_for(state, &user).await?;
                println!(
                    "no mail server is configured: pass this link on to {username} (valid 3 days):"
                );
                println!("{link}");
            }
        }
        UserCommand::SetPassword { username } => {
            let user = user(state, &username).await?;
            let password = read_password()?;
            let password = Password::parse(password.expose_secret())
                .map_err(|e| anyhow::anyhow!(e.message))?;
            admin::set_password(state, Actor::Cli, user.id, &password, &Client::default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{username} has a new password; their sessions have ended");
        }
        UserCommand::ResetLink { username } => {
            let user = user(state, &username).await?;
            let link = reset::link_for(state, &user).await?;
            println!("a link for {username} to choose a new password (valid 3 days):");
            println!("{link}");
        }
        UserCommand::SendReset { username } => {
            let user = user(state, &username).await?;
            admin::send_reset(state, Actor::Cli, user.id, &Client::default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            state.mailer.flush().await;
            println!(
                "a link to choose a new password was mailed to {}",
                user.email
            );
        }
        UserCommand::VerifyEmail { username } => {
            let user = user(state, &username).await?;
            admin::mark_email_verified(state, Actor::Cli, user.id, &Client::default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{username}'s address {} is marked verified", user.email);
        }
        UserCommand::Grant { username, role } => {
            let user = user(state, &username).await?;
            if user.roles.contains(&role) {
                println!("{username} already had role {role}");
            } else {
                let mut roles = user.roles.clone();
                roles.push(role);
                roles.sort();
                change(state, user.id, UserChange::SetRoles(roles)).await?;
                println!("{username} now has role {role}");
            }
        }
        UserCommand::Revoke { username, role } => {
            let user = user(state, &username).await?;
            if user.roles.contains(&role) {
                let roles: Vec<Role> = user.roles.iter().copied().filter(|r| *r != role).collect();
                change(state, user.id, UserChange::SetRoles(roles)).await?;
                println!("{username} no longer has role {role}");
            } else {
                println!("{username} did not have role {role}");
            }
        }
        UserCommand::Disable { username } => {
            let user = user(state, &username).await?;
            change(state, user.id, UserChange::Disable).await?;
            println!("{username} is disabled; their sessions have ended");
        }
        UserCommand::Enable { username } => {
            let user = user(state, &username).await?;
            change(state, user.id, UserChange::Enable).await?;
            println!("{username} is enabled");
        }
        UserCommand::List => {
            let users = storage.list_users().await?;
            println!(
                "{:>6}  {:<20}  {:<32}  {:<8}  {:<20}  roles",
                "id", "username", "email", "verified", "last sign-in"
            );
            for user in users {
                println!(
                    "{:>6}  {:<20}  {:<32}  {:<8}  {:<20}  {}",
                    user.id,
                    user.username,
                    user.email,
                    if user.email_verified_at.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    user.last_signin_at.map_or_else(|| "never".to_owned(), iso),
                    role_list(&user.roles)
                );
            }
        }
    }
    Ok(())
}

async fn user(state: &AppState, username: &Username) -> anyhow::Result<crate::storage::UserRecord> {
    state
        .storage
        .user_by_username(username.as_str())
        .await?
        .with_context(|| format!("no user named {username}"))
}

async fn change(state: &AppState, user_id: i64, change: UserChange) -> anyhow::Result<()> {
    change_user(state, Actor::Cli, user_id, change, &Client::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
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
