//! The application state: everything a request, the domain or the CLI may need, built once
//! per process and passed, never global.

use std::{ops::Deref, sync::Arc, time::Duration};

use crate::{
    audit::AuditEvent,
    authz::{Authz, ConfigFile},
    clock::unix_now,
    codes::Codes,
    config::Settings,
    domain::keys,
    http::gate::Gate,
    limits::IpLimits,
    mail::Mailer,
    metrics::Metrics,
    passkeys::RelyingParty,
    passwords::Passwords,
    revocation::Revocations,
    storage::Storage,
    tokens::Tokens,
};

/// Everything a request may need. Cheap to clone, which axum does for every request: one
/// `Arc` around the parts, which are reached through `Deref` (`state.storage`).
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

/// The parts of [`AppState`]; each is a handle, so they can also be cloned on their own.
pub struct AppStateParts {
    pub storage: Storage,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub revocations: Revocations,
    pub limits: IpLimits,
    /// The access rules for the services Tollgate protects.
    pub authz: Authz,
    /// Gate mode's upstreams, if Tollgate is a gate.
    pub gate: Option<Gate>,
    pub mailer: Mailer,
    /// The one-time codes of the mail flows.
    pub codes: Codes,
    /// Who Tollgate is to passkeys.
    pub relying_party: RelyingParty,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Builds the state of a serving node on a migrated database: [`Self::load`]s it, follows
    /// revocations made elsewhere (other nodes, the CLI), and starts housekeeping.
    pub async fn new(storage: Storage, settings: Settings) -> anyhow::Result<Self> {
        if !settings.sealer.is_on() {
            tracing::warn!(
                "no master key (TOLLGATE_MASTER_KEY or --master-key-file): the signing keys and secrets in the database are stored unencrypted"
            );
        }
        let state = Self::load(storage, settings).await?;
        state.revocations.follow(&state.storage);
        // Counted before serving, so the gauge does not read 0 at start-up while users wait.
        state.storage.count_users_waiting_for_search_index().await?;
        state.spawn_housekeeping();
        Ok(state)
    }

    /// Builds the state on a migrated database, with no background work (the CLI's): loads or
    /// creates the keys, records this node's token lifetime, loads the revocations.
    pub async fn load(storage: Storage, settings: Settings) -> anyhow::Result<Self> {
        let tokens = Tokens::new(&settings, keys::load(&storage, &settings).await?)?;
        let ttl_secs = i64::try_from(settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        storage.note_access_token_ttl(ttl_secs).await?;
        let config = match &settings.config_file {
            Some(file) => ConfigFile::load(file)?,
            None => ConfigFile::default(),
        };
        let authz = Authz::with_rules(settings.config_file.clone(), config.rules);
        let mut upstreams = settings.upstreams.clone();
        for upstream in config.upstreams {
            if upstreams.iter().any(|u| u.prefix == upstream.prefix) {
                anyhow::bail!(
                    "upstream prefix `{}` is given by both --upstream and the config file",
                    upstream.prefix
                );
            }
            upstreams.push(upstream);
        }
        let gate = Gate::new(upstreams, settings.upstream_timeout);
        let passwords = Passwords::new(settings.hash_concurrency)?;
        let revocations = Revocations::new(settings.access_token_ttl);
        revocations.reload(&storage).await?;
        let codes =
            Codes::new(&keys::shared_secret(&storage, &settings.sealer, "mail_code_key").await?);
        let mailer = Mailer::start(&settings.mail, storage.clone())?;
        let relying_party = RelyingParty::new(&settings.public_url, &settings.product_name)?;
        Ok(Self(Arc::new(AppStateParts {
            storage,
            tokens,
            passwords,
            revocations,
            limits: IpLimits::new(&settings.rate_limits),
            authz,
            gate,
            mailer,
            codes,
            relying_party,
            metrics: Metrics::new()?,
            settings: Arc::new(settings),
        })))
    }

    /// Records an audit event (see [`Storage::audit`]).
    pub async fn audit(&self, event: AuditEvent) {
        self.metrics.audited(event.kind);
        self.storage.audit(event).await;
    }

    fn spawn_housekeeping(&self) {
        self.metrics.spawn_upkeep();
        let storage = self.storage.clone();
        tokio::spawn(async move { storage.keep_search_index().await });
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut round = 0u64;
            loop {
                tick.tick().await;
                state.revocations.purge();
                state.limits.purge();
                if let Err(e) = keys::maintain(&state).await {
                    tracing::warn!(error = %e, "maintaining the signing keys failed");
                }
                if round.is_multiple_of(30)
                    && let Err(e) = state.storage.refresh_search_hints().await
                {
                    tracing::warn!(error = %e, "sampling users for the admin search failed");
                }
                if round.is_multiple_of(10)
                    && let Err(e) = state.storage.purge_expired(unix_now()).await
                {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
                if round.is_multiple_of(10)
                    && let Some(retention) = state.settings.audit_retention
                {
                    let cutoff = unix_now().saturating_sub_unsigned(retention.as_secs());
                    match state.storage.purge_audit(cutoff).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "purged old audit events"),
                        Err(e) => tracing::warn!(error = %e, "purging old audit events failed"),
                    }
                }
                round += 1;
            }
        });
    }
}

impl Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}
