//! Revocation state, kept in memory so checking an access token needs no database query.
//!
//! Loaded from the database at start. Each change is written to the database (with the change
//! that caused it) and applied here at once; on PostgreSQL, every other node hears of it through
//! LISTEN/NOTIFY and applies it too. A node that loses its listening connection reloads the whole
//! state once it is back, so nothing missed in between survives.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use sqlx::postgres::PgListener;

use crate::{
    clock::{self, unix_now},
    storage::{REVOCATION_CHANNEL, Revocation, RevocationNotice, Storage},
    tokens::Principal,
};

#[derive(Clone, Default)]
pub struct Revocations {
    state: Arc<RwLock<State>>,
    /// This node's access-token lifetime: how long to keep a notice that carries no expiry.
    ttl: Duration,
    /// The newest revocation row seen (SQLite polling).
    last_row: Arc<AtomicI64>,
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
            last_row: Arc::default(),
        }
    }

    /// Revocations held (sessions and users).
    pub fn count(&self) -> usize {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sessions.len() + state.users.len()
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

    /// Applies a revocation until the notice's expiry.
    pub fn apply(&self, notice: &RevocationNotice) {
        let forget_at = self.forget_at(notice, unix_now());
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.insert(&notice.revocation, forget_at);
    }

    fn forget_at(&self, notice: &RevocationNotice, now: i64) -> i64 {
        if notice.expires_at > 0 {
            notice.expires_at
        } else {
            clock::after(now, self.ttl)
        }
    }

    /// Replaces everything with what the database holds.
    pub async fn reload(&self, storage: &Storage) -> crate::error::Result<()> {
        let now = unix_now();
        let (all, last_row) = storage.active_revocations(now).await?;
        let mut fresh = State::default();
        for notice in &all {
            fresh.insert(&notice.revocation, self.forget_at(notice, now));
        }
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        self.last_row.store(last_row, Ordering::Release);
        Ok(())
    }

    /// Applies the rows recorded since the last look (SQLite: by the CLI or another process).
    pub async fn catch_up(&self, storage: &Storage) -> crate::error::Result<()> {
        let after = self.last_row.load(Ordering::Acquire);
        let (notices, last_row) = storage.revocations_after(after).await?;
        for notice in &notices {
            self.apply(notice);
        }
        self.last_row.fetch_max(last_row, Ordering::AcqRel);
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

    /// Follows revocations made elsewhere until the process ends: on PostgreSQL other nodes'
    /// (LISTEN/NOTIFY), on SQLite other processes' on the same file (polled twice a second).
    pub fn follow(&self, storage: &Storage) {
        let revocations = self.clone();
        let storage = storage.clone();
        let Some(pool) = storage.postgres_pool().cloned() else {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = revocations.catch_up(&storage).await {
                        tracing::debug!(error = %e, "polling revocations failed");
                    }
                }
            });
            return;
        };
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            let mut lost = false;
            loop {
                match revocations.listen(&pool, &storage, &mut lost).await {
                    Ok(()) => delay = Duration::from_millis(250),
                    Err(e) => {
                        // Logged once per outage, not once per attempt.
                        if !lost {
                            tracing::warn!(error = %e, "revocation listener lost; reconnecting");
                        }
                        lost = true;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    async fn listen(
        &self,
        pool: &sqlx::PgPool,
        storage: &Storage,
        lost: &mut bool,
    ) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REVOCATION_CHANNEL).await?;
        // Subscribed first, then reloaded: nothing can fall between the two.
        self.reload(storage).await?;
        if std::mem::take(lost) {
            tracing::info!("revocation listener back; revocations reloaded");
        }
        loop {
            // `None` means the connection dropped; start over (and reload).
            let Some(notification) = listener.try_recv().await? else {
                return Ok(());
            };
            match RevocationNotice::from_payload(notification.payload()) {
                Some(notice) => self.apply(&notice),
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
