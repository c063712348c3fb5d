//! Revocation state, kept in memory so checking an access token needs no database query.
//!
//! Loaded from the database at start. Each change is written to the database (with the change
//! that caused it) and applied here at once; on PostgreSQL, every other node hears of it through
//! LISTEN/NOTIFY and applies it too. A node that loses its listening connection reloads the whole
//! state once it is back, so nothing missed in between survives.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use sqlx::postgres::PgListener;

use crate::{
    clock::{self, unix_now},
    storage::{REVOCATION_CHANNEL, Revocation, Storage},
    tokens::Principal,
};

#[derive(Clone, Default)]
pub struct Revocations {
    state: Arc<RwLock<State>>,
    /// How long an entry matters: as long as an access token can live.
    ttl: Duration,
}

#[derive(Default)]
struct State {
    /// Revoked session id → when the entry may be forgotten.
    sessions: HashMap<String, i64>,
    /// User id → (lowest token version still valid, when the entry may be forgotten).
    users: HashMap<i64, (i64, i64)>,
}

impl Revocations {
    pub fn new(ttl: Duration) -> Self {
        Self {
            state: Arc::default(),
            ttl,
        }
    }

    /// Whether the token's session or user has been revoked since it was issued.
    pub fn is_revoked(&self, principal: &Principal) -> bool {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sessions.contains_key(&principal.session_id)
            || state
                .users
                .get(&principal.user_id)
                .is_some_and(|(min_version, _)| principal.version < *min_version)
    }

    pub fn apply(&self, revocation: &Revocation) {
        let forget_at = clock::after(unix_now(), self.ttl);
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.insert(revocation, forget_at);
    }

    /// Replaces everything with what the database holds.
    pub async fn reload(&self, storage: &Storage) -> crate::error::Result<()> {
        let now = unix_now();
        let all = storage.active_revocations(now).await?;
        let forget_at = clock::after(now, self.ttl);
        let mut fresh = State::default();
        for revocation in &all {
            fresh.insert(revocation, forget_at);
        }
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// Forgets entries older than any access token they could concern.
    pub fn purge(&self) {
        let now = unix_now();
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sessions.retain(|_, forget_at| *forget_at > now);
        state.users.retain(|_, (_, forget_at)| *forget_at > now);
    }

    /// On PostgreSQL, follows other nodes' revocations until the process ends.
    pub fn follow(&self, storage: &Storage) {
        let Some(pool) = storage.postgres_pool().cloned() else {
            return;
        };
        let revocations = self.clone();
        let storage = storage.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = revocations.listen(&pool, &storage).await {
                    tracing::warn!(error = %e, "revocation listener lost; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn listen(&self, pool: &sqlx::PgPool, storage: &Storage) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REVOCATION_CHANNEL).await?;
        // Subscribed first, then reloaded: nothing can fall between the two.
        self.reload(storage).await?;
        loop {
            // `None` means the connection dropped; start over (and reload).
            let Some(notification) = listener.try_recv().await? else {
                return Ok(());
            };
            match Revocation::from_payload(notification.payload()) {
                Some(revocation) => self.apply(&revocation),
                None => tracing::warn!(payload = notification.payload(), "unreadable revocation"),
            }
        }
    }
}

impl State {
    fn insert(&mut self, revocation: &Revocation, forget_at: i64) {
        match revocation {
            Revocation::Session { id } => {
                self.sessions.insert(id.clone(), forget_at);
            }
            Revocation::User { id, min_version } => {
                let entry = self.users.entry(*id).or_insert((*min_version, forget_at));
                entry.0 = entry.0.max(*min_version);
                entry.1 = entry.1.max(forget_at);
            }
        }
    }
}
