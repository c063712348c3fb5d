//! Command line and environment: one parse, checked up front so bad settings fail at start.

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use api::{Role, Username};

use crate::{
    authz::Upstream,
    mail::{MailSettings, SmtpSettings, SmtpTls},
    sealing::{MasterKey, Sealer},
};
use axum::http::HeaderValue;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: a self-hosted authentication and authorization server.",
    long_about = "Tollgate: a self-hosted authentication and authorization server.\n\n\
        Without a command it serves the HTTP API. Every option can also be set through the \
        environment variable shown next to it."
)]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database to use: `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tollgate.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// Most database connections held open at once.
    #[arg(
        long,
        env = "TOLLGATE_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before it is answered 503 with
    /// `Retry-After` (e.g. while PostgreSQL is down), e.g. `1s`, `500ms`.
    #[arg(
        long,
        env = "TOLLGATE_DB_ACQUIRE_TIMEOUT",
        default_value = "1s",
        value_parser = parse_acquire_timeout,
        global = true
    )]
    pub db_acquire_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address and port to listen on.
    #[arg(long, env = "TOLLGATE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Lifetime of access tokens, e.g. `15m`, `900s`, `1h` (1 second to 24 hours).
    #[arg(long, env = "TOLLGATE_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_ttl)]
    pub access_token_ttl: Duration,

    /// Signing algorithm for access tokens. `eddsa` keeps an Ed25519 key in the database and
    /// publishes it at /.well-known/jwks.json; `hs256` needs --jwt-secret.
    #[arg(long, env = "TOLLGATE_JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::Eddsa)]
    pub jwt_algorithm: JwtAlgorithm,

    /// Shared secret for `hs256`, at least 32 bytes. Prefer the environment variable over the flag.
    #[arg(long, env = "TOLLGATE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// `iss` claim written into and required of access tokens.
    #[arg(long, env = "TOLLGATE_JWT_ISSUER", default_value = "tollgate")]
    pub jwt_issuer: String,

    /// `aud` claim written into and required of access tokens.
    #[arg(long, env = "TOLLGATE_JWT_AUDIENCE", default_value = "tollgate")]
    pub jwt_audience: String,

    /// Browser origins allowed to call the API (comma separated), e.g. `http://localhost:8081`.
    #[arg(
        long = "cors-origin",
        env = "TOLLGATE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8081",
        value_parser = parse_origin
    )]
    pub cors_origins: Vec<HeaderValue>,

    /// Let anyone sign up with any role, as the tutorial does. For demos only: never in production.
    #[arg(long, env = "TOLLGATE_ALLOW_SELF_ASSIGNED_ROLES")]
    pub allow_self_assigned_roles: bool,

    /// Idle lifetime of a session: a refresh token unused for this long expires.
    #[arg(long, env = "TOLLGATE_REFRESH_IDLE_TTL", default_value = "7d", value_parser = parse_lifetime)]
    pub refresh_idle_ttl: Duration,

    /// Absolute lifetime of a session, however often it is refreshed.
    #[arg(long, env = "TOLLGATE_REFRESH_ABSOLUTE_TTL", default_value = "30d", value_parser = parse_lifetime)]
    pub refresh_absolute_ttl: Duration,

    /// How long the refresh token just rotated away still works (once more, giving the same
    /// result), so two tabs refreshing at once do not log the user out. `0s` disables it.
    #[arg(long, env = "TOLLGATE_REFRESH_GRACE", default_value = "10s", value_parser = parse_grace)]
    pub refresh_grace: Duration,

    /// Include `refreshToken` in the sign-in body, as the tutorial's clients expect. Off by
    /// default: the refresh token then lives only in an HttpOnly cookie.
    #[arg(long, env = "TOLLGATE_REFRESH_TOKEN_IN_BODY")]
    pub refresh_token_in_body: bool,

    /// Tollgate is reached over HTTPS (directly or through a TLS proxy): cookies get `Secure`
    /// and responses carry HSTS.
    #[arg(long, env = "TOLLGATE_HTTPS")]
    pub https: bool,

    /// Proxies (IP or CIDR, comma separated) whose `X-Forwarded-For` is believed for the client
    /// address. Without one, the address is the TCP peer's.
    #[arg(long = "trusted-proxy", env = "TOLLGATE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Sign-in attempts allowed per client IP per minute (0: no limit).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_SIGNIN", default_value_t = 30)]
    pub rate_limit_signin: u32,

    /// Sign-ups allowed per client IP per minute (0: no limit).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_SIGNUP", default_value_t = 10)]
    pub rate_limit_signup: u32,

    /// Token refreshes allowed per client IP per minute (0: no limit).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_REFRESH", default_value_t = 60)]
    pub rate_limit_refresh: u32,

    /// Requests that send mail (forgotten password, verification, address change) allowed
    /// per client IP per minute (0: no limit).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_MAIL", default_value_t = 5)]
    pub rate_limit_mail: u32,

    /// Attempts with a mailed code or link allowed per client IP per minute (0: no limit).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_CODE", default_value_t = 10)]
    pub rate_limit_code: u32,

    /// How long audit events are kept, e.g. `90d`, `1y` (1 day to 100 years); `0s` keeps them
    /// forever.
    #[arg(long, env = "TOLLGATE_AUDIT_RETENTION", default_value = "90d", value_parser = parse_retention)]
    pub audit_retention: Duration,

    /// Password hashes computed at once (each takes 19 MiB); defaults to CPU cores minus one
    /// (at least one), leaving a core for everything else.
    #[arg(long, env = "TOLLGATE_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<NonZeroUsize>,

    /// Access tokens remembered as already verified (saves a signature check per request).
    /// Each takes about 290 bytes, so the default holds up to about 28 MiB; a token leaves when
    /// it expires or when newer ones need the room.
    #[arg(long, env = "TOLLGATE_TOKEN_CACHE_SIZE", default_value_t = 100_000)]
    pub token_cache_size: usize,

    /// Time a client has to send a complete request head (request line and headers), counted
    /// from when the server starts waiting for it; a slower connection is closed.
    #[arg(long, env = "TOLLGATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub header_read_timeout: Duration,

    /// Time a client has to send a whole request body once its headers are in; a slower request
    /// is answered 408.
    #[arg(long, env = "TOLLGATE_REQUEST_BODY_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub request_body_timeout: Duration,

    /// How long a kept-alive connection may sit idle between requests before it is closed.
    #[arg(long, env = "TOLLGATE_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,

    /// Client connections served at once; further ones wait in the listen queue until one
    /// closes. Defaults to what the open-file limit (`ulimit -n`) leaves room for, at most 10000.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", value_parser = parse_max_connections)]
    pub max_connections: Option<usize>,

    /// On SIGTERM or Ctrl-C: how long requests in progress get to finish before the remaining
    /// connections are dropped and the process exits. `0s` exits at once.
    #[arg(long, env = "TOLLGATE_SHUTDOWN_DRAIN", default_value = "10s", value_parser = parse_drain)]
    pub shutdown_drain: Duration,

    /// The configuration file (TOML) with the access rules for forward-auth (see
    /// `docs/protect-your-api.md`). Reloaded on SIGHUP; a file that does not load keeps the
    /// rules in force. Without one, every forward-auth check is denied.
    #[arg(long, env = "TOLLGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Gate mode: forward every allowed request that is not for Tollgate itself to this
    /// upstream, e.g. `http://127.0.0.1:3000` (several, by path prefix, in the --config file).
    #[arg(long, env = "TOLLGATE_UPSTREAM")]
    pub upstream: Option<String>,

    /// Gate mode: how long an upstream may take to start answering before the client gets 504.
    #[arg(long, env = "TOLLGATE_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub upstream_timeout: Duration,

    /// Log filter, e.g. `info`, `tollgate=debug,tower_http=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log lines as text for people, or as one JSON object per line for log collectors.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub mail: MailArgs,

    /// Users with this role must enrol a second factor before they can do anything else
    /// (repeatable, e.g. `--require-mfa-for-role admin`).
    #[arg(long = "require-mfa-for-role", env = "TOLLGATE_REQUIRE_MFA_FOR_ROLES", value_delimiter = ',', value_parser = parse_role)]
    pub require_mfa_for_roles: Vec<Role>,

    /// How recently a user with a second factor must have proven it to change a password,
    /// an address or a factor, or to make an admin change (step-up), e.g. `10m`.
    #[arg(long, env = "TOLLGATE_STEP_UP_WINDOW", default_value = "10m", value_parser = parse_step_up)]
    pub step_up_window: Duration,

    /// Serve Prometheus metrics (`/metrics`) on this address of their own, e.g.
    /// `127.0.0.1:9100`. Without it, `/metrics` is on the main address, to loopback callers.
    #[arg(long, env = "TOLLGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Rotate the signing key this often, e.g. `30d` (`0s`: only by `tollgate keys rotate`).
    #[arg(long, env = "TOLLGATE_KEY_ROTATION", default_value = "0s", value_parser = parse_key_rotation)]
    pub key_rotation: Duration,

    /// How long a new signing key is published (JWKS) before it signs, so that services
    /// caching the JWKS (Tollgate serves it with max-age=300) and every node have it first.
    #[arg(long, env = "TOLLGATE_KEY_PUBLISH_AHEAD", default_value = "15m", value_parser = parse_publish_ahead)]
    pub key_publish_ahead: Duration,

    /// The master key that encrypts the secrets in the database (signing keys, server secrets,
    /// authenticator-app secrets): 32 bytes in base64 (`tollgate keys new-master-key`). Give it
    /// through the environment or --master-key-file, not on a command line.
    #[arg(
        long,
        env = "TOLLGATE_MASTER_KEY",
        hide_env_values = true,
        global = true,
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<SecretString>,

    /// A file holding the master key (base64, or 32 raw bytes).
    #[arg(long, env = "TOLLGATE_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
}

/// Mail, and the public address its links point to.
#[derive(Debug, Args)]
pub struct MailArgs {
    /// The SMTP server that sends Tollgate's mail: `smtp://user:pass@host:port`, or
    /// `smtps://…` for implicit TLS. Without one, Tollgate runs, and the features that need
    /// mail (password reset, address verification and change) say they are unavailable.
    #[arg(long, env = "TOLLGATE_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<SecretString>,

    /// How the SMTP connection is protected. Default: implicit TLS for `smtps://`, else
    /// STARTTLS, or none for a server on loopback (plain text is refused for any other host).
    #[arg(long, env = "TOLLGATE_SMTP_TLS", value_enum, global = true)]
    pub smtp_tls: Option<SmtpTls>,

    /// The sender of Tollgate's mail, e.g. `Acme <auth@acme.example>`; needed with --smtp-url.
    #[arg(long, env = "TOLLGATE_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,

    /// Tries per message (the first included) before it is given up, logged and audited.
    #[arg(long, env = "TOLLGATE_MAIL_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20), global = true)]
    pub mail_attempts: u32,

    /// The address users reach Tollgate's web UI at, for the links in its mail, e.g.
    /// `https://auth.example.com`. Default: `http://` and the --bind address.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,

    /// The product name in mail and pages.
    #[arg(
        long,
        env = "TOLLGATE_PRODUCT_NAME",
        default_value = "Tollgate",
        global = true
    )]
    pub product_name: String,

    /// Whether users must prove their address: `off` (no verification mail), `optional`
    /// (mail sent at sign-up; unverified users can sign in) or `required` (sign-in is refused
    /// until the address is verified; needs --smtp-url).
    #[arg(long, env = "TOLLGATE_EMAIL_VERIFICATION", value_enum, default_value_t = EmailVerification::Optional, global = true)]
    pub email_verification: EmailVerification,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The address verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmailVerification {
    Off,
    Optional,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    Eddsa,
    Hs256,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Manage users from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Ask the access rules of `--config` about a request.
    #[command(subcommand)]
    Authz(AuthzCommand),
    /// Manage the service clients that may introspect tokens (`POST /oauth/introspect`).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Write a consistent copy of the SQLite database to FILE while the server runs (for
    /// PostgreSQL, use pg_dump).
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
    /// The master key that encrypts the secrets in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Bring the users of the tutorial's database (its users, roles and user_roles tables)
    /// here, with their passwords (bcrypt, upgraded at their next sign-in) and roles. Users
    /// already here are left alone, so it can be run again; every user not brought in is
    /// reported with the reason.
    Import {
        /// The tutorial's database: `mysql://user:pass@host/db` (or `mariadb://`), or
        /// `postgres://…`. Prefer the environment variable, which keeps the password off the
        /// command line.
        #[arg(long, env = "TOLLGATE_IMPORT_FROM", hide_env_values = true)]
        from: SecretString,
        /// Say what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a fresh master key (base64), to keep outside the database and give as
    /// TOLLGATE_MASTER_KEY or in --master-key-file.
    NewMasterKey,
    /// Make a new signing key. It is published (JWKS) at once and signs after --activate-in;
    /// the key it replaces keeps verifying until the tokens it signed have expired.
    Rotate {
        /// When the new key starts signing, e.g. `15m`; `0s` at once (nodes pick it up
        /// within a minute, and may refuse its tokens until then).
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        activate_in: Duration,
        /// Delete every older key now (a leaked key): the tokens they signed stop working
        /// within a minute on every node, and their holders sign in again (or refresh).
        #[arg(long)]
        retire_previous: bool,
    },
    /// List the signing keys: generation, kid, state.
    List,
    /// Re-encrypt every secret in the database under a new master key, or store them
    /// unencrypted again with --decrypt. The current key, if any, is given as usual
    /// (TOLLGATE_MASTER_KEY or --master-key-file). Stop the servers first, and start them
    /// with the new key after.
    Rewrap {
        /// The new master key (32 bytes in base64); prefer the environment or a file.
        #[arg(long, env = "TOLLGATE_NEW_MASTER_KEY", hide_env_values = true)]
        new_master_key: Option<SecretString>,
        /// A file holding the new master key.
        #[arg(
            long,
            env = "TOLLGATE_NEW_MASTER_KEY_FILE",
            conflicts_with = "new_master_key"
        )]
        new_master_key_file: Option<PathBuf>,
        /// Store the secrets unencrypted (no new key).
        #[arg(long, conflicts_with_all = ["new_master_key", "new_master_key_file"])]
        decrypt: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a service client; its secret is printed once and never shown again.
    Add { name: String },
    /// List the service clients.
    List,
    /// Remove a service client: its secret stops working at once.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AuthzCommand {
    /// Print which rule matches a request and what it decides, for an anonymous caller or for
    /// a user (with their roles from the database).
    Check {
        /// The request's URL, e.g. `https://app.example.com/api/orders/7`, or just its path.
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Decide for this user; anonymous if absent.
        #[arg(long, value_parser = parse_username)]
        user: Option<Username>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from TOLLGATE_PASSWORD, else a prompt, else one line
    /// of standard input; never from an argument (or see --invite).
    Add {
        #[arg(value_parser = parse_username)]
        username: Username,
        #[arg(long)]
        email: String,
        /// Role to give (repeatable); `user` if none.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<Role>,
        /// No password now: mail the user a link to choose one (or, with no mail server,
        /// print the link to pass on).
        #[arg(long)]
        invite: bool,
        /// Count the address as verified.
        #[arg(long)]
        verified: bool,
    },
    /// Set a user's password (read as for `add`, never from an argument); their sessions end.
    SetPassword {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Print a link for a user to choose a new password, to pass on by other means.
    ResetLink {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Mail a user a link to choose a new password.
    SendReset {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Mark a user's address as verified.
    VerifyEmail {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Give a user a role.
    Grant {
        #[arg(value_parser = parse_username)]
        username: Username,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Take a role from a user.
    Revoke {
        #[arg(value_parser = parse_username)]
        username: Username,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Disable a user: their sessions end and their tokens stop working at once.
    Disable {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// List users and their roles.
    List,
}

/// The settings the running server needs, checked. Built from [`ServerArgs`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub access_token_ttl: Duration,
    pub signing: SigningSettings,
    pub issuer: String,
    pub audience: String,
    pub cors_origins: Vec<HeaderValue>,
    pub allow_self_assigned_roles: bool,
    pub hash_concurrency: NonZeroUsize,
    pub token_cache_size: usize,
    pub refresh_idle_ttl: Duration,
    pub refresh_absolute_ttl: Duration,
    pub refresh_grace: Duration,
    pub refresh_token_in_body: bool,
    pub https: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: RateLimits,
    /// Audit events older than this are purged; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    /// The `--config` file with the access rules.
    pub config_file: Option<PathBuf>,
    /// Gate mode's upstream from `--upstream` (those of the config file come with it).
    pub upstreams: Vec<Upstream>,
    pub upstream_timeout: Duration,
    /// Where users reach the UI, without a trailing slash: links in mail start with it.
    pub public_url: String,
    pub product_name: String,
    pub email_verification: EmailVerification,
    pub mail: MailSettings,
    /// Roles whose users must have a second factor.
    pub require_mfa_for_roles: Vec<Role>,
    /// Seals the secrets kept in the database, with the master key if one is given.
    /// Rotate the signing key this often (`None`: by hand only).
    pub key_rotation: Option<Duration>,
    /// How long a new signing key is published before it signs.
    pub key_publish_ahead: Duration,
    /// Where `/metrics` is served apart from the API, if it is.
    pub metrics_listen: Option<SocketAddr>,
    pub sealer: Sealer,
    pub step_up_window: Duration,
}

/// How connections are served: their timeouts, how many at once, and the shutdown drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSettings {
    pub header_read_timeout: Duration,
    pub request_body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_drain: Duration,
    /// The process's soft open-file limit, when known (for a warning at start).
    pub open_file_limit: Option<u64>,
}

/// Most connections served at once when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl ServeSettings {
    /// File descriptors kept out of the connection budget: the listener, the database, logs and
    /// the runtime's own (a quarter of a small limit, 256 of a large one).
    pub fn reserved_files(open_file_limit: u64) -> u64 {
        (open_file_limit / 4).min(256)
    }

    /// The default connection cap: [`DEFAULT_MAX_CONNECTIONS`], or less when the open-file
    /// limit would be reached first.
    pub fn default_max_connections(open_file_limit: Option<u64>) -> usize {
        let Some(limit) = open_file_limit else {
            return DEFAULT_MAX_CONNECTIONS;
        };
        let budget = limit.saturating_sub(Self::reserved_files(limit)).max(1);
        usize::try_from(budget).map_or(DEFAULT_MAX_CONNECTIONS, |b| b.min(DEFAULT_MAX_CONNECTIONS))
    }
}

/// The soft limit on open files (`ulimit -n`), if the platform has one.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Requests allowed per client IP per minute; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub signin: Option<NonZeroU32>,
    pub signup: Option<NonZeroU32>,
    pub refresh: Option<NonZeroU32>,
    pub mail: Option<NonZeroU32>,
    pub code: Option<NonZeroU32>,
}

#[derive(Debug, Clone)]
pub enum SigningSettings {
    /// Ed25519 key kept in the database.
    Eddsa,
    /// HMAC-SHA256 with an operator secret.
    Hs256(SecretString),
}

impl ServerArgs {
    /// The sealer of the master key given by value or by file, if any.
    pub fn sealer(&self) -> anyhow::Result<Sealer> {
        Ok(Sealer::new(master_key(
            "--master-key",
            self.master_key.as_ref(),
            self.master_key_file.as_deref(),
        )?))
    }

    /// Checks the combination of options; the error says what to change.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let signing = match (self.jwt_algorithm, &self.jwt_secret) {
            (JwtAlgorithm::Eddsa, _) => SigningSettings::Eddsa,
            (JwtAlgorithm::Hs256, None) => anyhow::bail!(
                "--jwt-algorithm hs256 needs a secret: set TOLLGATE_JWT_SECRET to at least 32 random bytes"
            ),
            (JwtAlgorithm::Hs256, Some(secret)) => {
                if secret.expose_secret().len() < 32 {
                    anyhow::bail!(
                        "TOLLGATE_JWT_SECRET is too short: it must be at least 32 bytes (got {})",
                        secret.expose_secret().len()
                    );
                }
                SigningSettings::Hs256(secret.clone())
            }
        };
        if self.jwt_issuer.trim().is_empty() || self.jwt_audience.trim().is_empty() {
            anyhow::bail!("--jwt-issuer and --jwt-audience must not be empty");
        }
        if self.token_cache_size == 0 {
            anyhow::bail!("--token-cache-size must be at least 1");
        }
        if self.refresh_idle_ttl > self.refresh_absolute_ttl {
            anyhow::bail!("--refresh-idle-ttl must not be longer than --refresh-absolute-ttl");
        }
        let smtp = match (&self.mail.smtp_url, &self.mail.mail_from) {
            (Some(url), Some(from)) => Some(SmtpSettings::parse(
                url.expose_secret(),
                self.mail.smtp_tls,
                from,
            )?),
            (Some(_), None) => anyhow::bail!(
                "--smtp-url needs --mail-from (TOLLGATE_MAIL_FROM), e.g. 'Acme <auth@acme.example>'"
            ),
            (None, _) => None,
        };
        if smtp.is_none() && self.mail.email_verification == EmailVerification::Required {
            anyhow::bail!(
                "--email-verification required needs a mail server: set --smtp-url (TOLLGATE_SMTP_URL)"
            );
        }
        if self.mail.product_name.trim().is_empty() {
            anyhow::bail!("--product-name must not be empty");
        }
        let hash_concurrency = self.hash_concurrency.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            NonZeroUsize::new(cores.saturating_sub(1)).unwrap_or(NonZeroUsize::MIN)
        });
        Ok(Settings {
            access_token_ttl: self.access_token_ttl,
            signing,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            cors_origins: self.cors_origins.clone(),
            allow_self_assigned_roles: self.allow_self_assigned_roles,
            hash_concurrency,
            token_cache_size: self.token_cache_size,
            refresh_idle_ttl: self.refresh_idle_ttl,
            refresh_absolute_ttl: self.refresh_absolute_ttl,
            refresh_grace: self.refresh_grace,
            refresh_token_in_body: self.refresh_token_in_body,
            https: self.https,
            trusted_proxies: self.trusted_proxies.clone(),
            rate_limits: RateLimits {
                signin: NonZeroU32::new(self.rate_limit_signin),
                signup: NonZeroU32::new(self.rate_limit_signup),
                refresh: NonZeroU32::new(self.rate_limit_refresh),
                mail: NonZeroU32::new(self.rate_limit_mail),
                code: NonZeroU32::new(self.rate_limit_code),
            },
            audit_retention: (!self.audit_retention.is_zero()).then_some(self.audit_retention),
            config_file: self.config.clone(),
            upstreams: match &self.upstream {
                Some(url) => vec![
                    Upstream::parse("/", url).map_err(|e| anyhow::anyhow!("--upstream: {e}"))?,
                ],
                None => Vec::new(),
            },
            upstream_timeout: self.upstream_timeout,
            public_url: self
                .mail
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.bind)),
            product_name: self.mail.product_name.trim().to_owned(),
            email_verification: self.mail.email_verification,
            mail: MailSettings {
                smtp,
                max_attempts: self.mail.mail_attempts,
                ..MailSettings::default()
            },
            require_mfa_for_roles: self.require_mfa_for_roles.clone(),
            sealer: self.sealer()?,
            key_rotation: (!self.key_rotation.is_zero()).then_some(self.key_rotation),
            metrics_listen: self.metrics_listen,
            key_publish_ahead: self.key_publish_ahead,
            step_up_window: self.step_up_window,
        })
    }
}

impl ServerArgs {
    /// The connection settings, with the connection cap derived from the open-file limit
    /// unless given.
    pub fn serve_settings(&self) -> ServeSettings {
        let open_file_limit = open_file_limit();
        ServeSettings {
            header_read_timeout: self.header_read_timeout,
            request_body_timeout: self.request_body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self
                .max_connections
                .unwrap_or_else(|| ServeSettings::default_max_connections(open_file_limit)),
            shutdown_drain: self.shutdown_drain,
            open_file_limit,
        }
    }
}

impl Settings {
    /// Settings for tests: the defaults, without rate limits.
    pub fn for_tests() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            signing: SigningSettings::Eddsa,
            issuer: "tollgate".into(),
            audience: "tollgate".into(),
            cors_origins: vec![HeaderValue::from_static("http://localhost:8081")],
            allow_self_assigned_roles: false,
            hash_concurrency: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            token_cache_size: 10_000,
            refresh_idle_ttl: Duration::from_secs(7 * 86_400),
            refresh_absolute_ttl: Duration::from_secs(30 * 86_400),
            refresh_grace: Duration::from_secs(10),
            refresh_token_in_body: false,
            https: false,
            trusted_proxies: Vec::new(),
            rate_limits: RateLimits {
                signin: None,
                signup: None,
                refresh: None,
                mail: None,
                code: None,
            },
            audit_retention: Some(Duration::from_secs(90 * 86_400)),
            config_file: None,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(30),
            public_url: "http://127.0.0.1:8080".into(),
            product_name: "Tollgate".into(),
            email_verification: EmailVerification::Optional,
            mail: MailSettings::default(),
            require_mfa_for_roles: Vec::new(),
            sealer: Sealer::default(),
            key_rotation: None,
            metrics_listen: None,
            key_publish_ahead: Duration::from_secs(15 * 60),
            step_up_window: Duration::from_secs(600),
        }
    }
}

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `15m` or `900s`)"))?;
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(24 * 3600) {
        return Err("must be between 1 second and 24 hours".into());
    }
    Ok(ttl)
}

fn parse_acquire_timeout(raw: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `1s`)"))?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
        return Err("must be between 100ms and 60s".into());
    }
    Ok(timeout)
}

fn parse_lifetime(raw: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `7d` or `12h`)"))?;
    if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(366 * 86_400) {
        return Err("must be between 1 minute and 366 days".into());
    }
    Ok(ttl)
}

fn parse_grace(raw: &str) -> Result<Duration, String> {
    let grace = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `10s`)"))?;
    if grace > Duration::from_secs(300) {
        return Err("must be at most 5 minutes".into());
    }
    if grace.subsec_nanos() != 0 {
        return Err("must be whole seconds, e.g. `10s`".into());
    }
    Ok(grace)
}

fn parse_retention(raw: &str) -> Result<Duration, String> {
    let retention = humantime::parse_duration(raw)
        .map_err(|e| format!("{e} (try `90d`, or `0s` to keep all)"))?;
    if !retention.is_zero()
        && (retention < Duration::from_secs(86_400)
            || retention > Duration::from_secs(100 * 366 * 86_400))
    {
        return Err("must be between 1 day and 100 years, or `0s` to keep events forever".into());
    }
    Ok(retention)
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `10s`)"))?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(3600) {
        return Err("must be between 100 milliseconds and 1 hour".into());
    }
    Ok(timeout)
}

fn parse_drain(raw: &str) -> Result<Duration, String> {
    let drain = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `10s`)"))?;
    if drain > Duration::from_secs(3600) {
        return Err("must be at most 1 hour".into());
    }
    Ok(drain)
}

fn parse_max_connections(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{raw}` is not a whole number")),
    }
}

fn parse_net(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{raw}` is not an IP address or CIDR network"))
}

fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let raw = raw.trim();
    let rest = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"))
        .ok_or("an origin starts with http:// or https://")?;
    if rest.is_empty() || rest.contains('/') {
        return Err("an origin is scheme://host[:port], with no path or trailing slash".into());
    }
    HeaderValue::from_str(raw).map_err(|_| "not a valid header value".into())
}

fn parse_step_up(raw: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(raw).map_err(|e| format!("{e} (try `10m`)"))?;
    if window < Duration::from_secs(30) || window > Duration::from_secs(24 * 3600) {
        return Err("must be between 30 seconds and 24 hours".into());
    }
    Ok(window)
}

fn parse_key_rotation(raw: &str) -> Result<Duration, String> {
    let period = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if !period.is_zero() && period < Duration::from_secs(3600) {
        return Err("must be at least 1 hour (or 0s: off)".into());
    }
    Ok(period)
}

fn parse_publish_ahead(raw: &str) -> Result<Duration, String> {
    let ahead = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if ahead < Duration::from_secs(2 * 60) || ahead > Duration::from_secs(7 * 24 * 3600) {
        return Err("must be between 2 minutes (nodes load keys every minute) and 7 days".into());
    }
    Ok(ahead)
}

/// A master key given by value (`flag`) or in a file; the error never shows the value.
pub fn master_key(
    flag: &str,
    value: Option<&SecretString>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<MasterKey>> {
    match (value, file) {
        (Some(value), _) => MasterKey::parse(value.expose_secret())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}")),
        (None, Some(file)) => MasterKey::from_file(file)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{flag}-file {e}")),
        (None, None) => Ok(None),
    }
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let url =
        url::Url::parse(raw.trim()).map_err(|e| format!("{e} (e.g. https://auth.example.com)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse_username(raw: &str) -> Result<Username, String> {
    Username::parse(raw).map_err(|e| e.message)
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).map_err(|e| format!("unknown role `{}` (user, moderator, admin)", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["tollgate"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv)
    }

    #[test]
    fn defaults_are_sane() {
        let cli = args(&[]).unwrap();
        let settings = cli.server.settings().unwrap();
        assert_eq!(cli.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.access_token_ttl, Duration::from_secs(900));
        assert!(matches!(settings.signing, SigningSettings::Eddsa));
        assert!(!settings.allow_self_assigned_roles);
        assert_eq!(settings.refresh_idle_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(
            settings.refresh_absolute_ttl,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(settings.refresh_grace, Duration::from_secs(10));
        assert_eq!(settings.rate_limits.signin, NonZeroU32::new(30));
        assert!(!settings.refresh_token_in_body && !settings.https);
        assert_eq!(
            settings.audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        let serve = cli.server.serve_settings();
        assert_eq!(serve.header_read_timeout, Duration::from_secs(10));
        assert_eq!(serve.request_body_timeout, Duration::from_secs(30));
        assert_eq!(serve.idle_timeout, Duration::from_secs(60));
        assert_eq!(serve.shutdown_drain, Duration::from_secs(10));
        assert!((1..=DEFAULT_MAX_CONNECTIONS).contains(&serve.max_connections));
    }

    #[test]
    fn the_default_connection_cap_stays_below_the_open_file_limit() {
        assert_eq!(
            ServeSettings::default_max_connections(None),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(ServeSettings::default_max_connections(Some(64)), 48);
        assert_eq!(ServeSettings::default_max_connections(Some(1024)), 768);
        assert_eq!(
            ServeSettings::default_max_connections(Some(1 << 20)),
            10_000
        );
        assert_eq!(ServeSettings::default_max_connections(Some(0)), 1);
        let cli = args(&["--max-connections", "5"]).unwrap();
        assert_eq!(cli.server.serve_settings().max_connections, 5);
    }

    #[test]
    fn hs256_needs_a_long_secret() {
        let cli = args(&["--jwt-algorithm", "hs256"]).unwrap();
        assert!(cli.server.settings().is_err());
        let cli = args(&["--jwt-algorithm", "hs256", "--jwt-secret", "short"]).unwrap();
        assert!(
            cli.server
                .settings()
                .unwrap_err()
                .to_string()
                .contains("32")
        );
        let long = "x".repeat(32);
        let cli = args(&["--jwt-algorithm", "hs256", "--jwt-secret", &long]).unwrap();
        assert!(cli.server.settings().is_ok());
    }

    #[test]
    fn bad_values_fail_at_parse_time() {
        assert!(args(&["--access-token-ttl", "0s"]).is_err());
        assert!(args(&["--access-token-ttl", "forever"]).is_err());
        assert!(args(&["--cors-origin", "localhost:8081"]).is_err());
        assert!(args(&["--cors-origin", "http://a.example/"]).is_err());
        assert!(args(&["--bind", "nowhere"]).is_err());
        assert!(args(&["user", "grant", "bob", "root"]).is_err());
        assert!(args(&["--trusted-proxy", "10.0.0.0/33"]).is_err());
        assert!(args(&["--refresh-grace", "1h"]).is_err());
        assert!(args(&["--refresh-grace", "500ms"]).is_err());
        assert!(args(&["--audit-retention", "1h"]).is_err());
        assert!(args(&["--audit-retention", "500y"]).is_err());
        assert!(args(&["--audit-retention", "a while"]).is_err());
        let cli = args(&["--audit-retention", "1y"]).unwrap();
        assert!(cli.server.settings().unwrap().audit_retention.is_some());
        let cli = args(&["--audit-retention", "0s"]).unwrap();
        assert_eq!(cli.server.settings().unwrap().audit_retention, None);
        assert!(args(&["--max-connections", "0"]).is_err());
        assert!(args(&["--header-read-timeout", "0s"]).is_err());
        assert!(args(&["--request-body-timeout", "2h"]).is_err());
        assert!(args(&["--idle-timeout", "soon"]).is_err());
        assert!(args(&["--shutdown-drain", "0s"]).is_ok());
        let cli = args(&["--refresh-idle-ttl", "40d"]).unwrap();
        assert!(cli.server.settings().is_err());
        let cli = args(&["--trusted-proxy", "10.0.0.0/8,127.0.0.1"]).unwrap();
        assert_eq!(cli.server.trusted_proxies.len(), 2);
        let cli = args(&["--cors-origin", "http://a.example,https://b.example:8443"]).unwrap();
        assert_eq!(cli.server.cors_origins.len(), 2);
    }

    #[test]
    fn mail_settings_are_checked_at_start() {
        let settings = args(&[]).unwrap().server.settings().unwrap();
        assert!(settings.mail.smtp.is_none());
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert_eq!(settings.email_verification, EmailVerification::Optional);
        let cli = args(&["--smtp-url", "smtp://127.0.0.1:2525"]).unwrap();
        assert!(
            cli.server
                .settings()
                .unwrap_err()
                .to_string()
                .contains("--mail-from")
        );
        let cli = args(&["--email-verification", "required"]).unwrap();
        assert!(
            cli.server
                .settings()
                .unwrap_err()
                .to_string()
                .contains("--smtp-url")
        );
        let cli = args(&[
            "--smtp-url",
            "smtp://127.0.0.1:2525",
            "--mail-from",
            "Acme <auth@acme.example>",
            "--email-verification",
            "required",
            "--public-url",
            "https://auth.acme.example/",
        ])
        .unwrap();
        let settings = cli.server.settings().unwrap();
        assert_eq!(settings.public_url, "https://auth.acme.example");
        assert_eq!(settings.mail.smtp.unwrap().port, 2525);
        let cli = args(&[
            "--smtp-url",
            "smtp://mail.acme.example",
            "--mail-from",
            "a@b.example",
            "--smtp-tls",
            "none",
        ])
        .unwrap();
        assert!(
            cli.server
                .settings()
                .unwrap_err()
                .to_string()
                .contains("unencrypted")
        );
        assert!(args(&["--public-url", "ftp://x.example"]).is_err());
        assert!(args(&["--public-url", "https://x.example/?a=1"]).is_err());
        assert!(args(&["--mail-attempts", "0"]).is_err());
    }
}
