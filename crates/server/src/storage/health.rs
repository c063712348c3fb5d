//! Database outages: logged once each, when they begin and when they end, however many
//! requests they refuse in between.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Storage, on_pool};
use crate::error::Unavailable;

/// The outage in progress, if any.
#[derive(Debug, Default)]
pub struct Health {
    outage: Mutex<Option<Outage>>,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    kind: Unavailable,
    since: Instant,
}

impl Storage {
    /// Notes that a request was refused because the database is unavailable. The first such
    /// request of an outage logs it and starts a probe that logs its end; the others only count.
    pub fn report_unavailable(&self, kind: Unavailable) {
        self.health.refused.fetch_add(1, Ordering::Relaxed);
        {
            let mut outage = self
                .health
                .outage
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if outage.is_some() {
                return;
            }
            *outage = Some(Outage {
                kind,
                since: Instant::now(),
            });
        }
        tracing::error!(
            reason = kind.message(),
            "database unavailable: answering 503 until it is back"
        );
        let storage = self.clone();
        tokio::spawn(async move { storage.probe_until_back(kind).await });
    }

    /// Whether an outage is in progress (for readiness and tests).
    pub fn is_unavailable(&self) -> bool {
        self.health
            .outage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    async fn probe_until_back(&self, kind: Unavailable) {
        let mut delay = Duration::from_millis(250);
        loop {
            tokio::time::sleep(delay).await;
            if self.probe(kind).await.is_ok() {
                break;
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let ended = self
            .health
            .outage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let refused = self.health.refused.swap(0, Ordering::Relaxed);
        if let Some(outage) = ended {
            tracing::warn!(
                after_secs = outage.since.elapsed().as_secs(),
                refused,
                was = outage.kind.message(),
                "database available again"
            );
        }
    }

    /// A write when the disk was full (space must be back), else a read.
    async fn probe(&self, kind: Unavailable) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| {
            match kind {
                Unavailable::DiskFull => sqlx::query(
                    "UPDATE server_settings SET value = value + 1 WHERE name = 'health_probe'",
                )
                .execute(pool)
                .await
                .map(drop),
                Unavailable::Down => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            }
        })
    }
}
