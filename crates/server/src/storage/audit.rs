//! The audit log.

use super::{Storage, on_pool};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    error::{Error, Result},
};

/// An event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl Storage {
    /// Records an audit event. A failure to record is logged, not passed on: the action it
    /// describes has already happened.
    pub async fn audit(&self, event: AuditEvent) {
        match self.record_audit(&event, unix_now()).await {
            Ok(()) => {}
            // Logged once for the whole outage, not once per event.
            Err(Error::Unavailable(unavailable)) => {
                self.report_unavailable(unavailable);
                tracing::debug!(kind = event.kind.as_str(), "audit event not recorded");
            }
            Err(e) => {
                tracing::error!(error = %e, kind = event.kind.as_str(), "could not record audit event");
            }
        }
    }

    pub async fn record_audit(&self, event: &AuditEvent, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_events (at, kind, user_id, actor_id, session_id, ip, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(now)
            .bind(event.kind.as_str())
            .bind(event.user_id)
            .bind(event.actor_id)
            .bind(event.session_id.as_deref())
            .bind(event.ip.as_deref())
            .bind(event.detail.as_deref())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Deletes the events recorded before `cutoff` (unix time), in bounded batches. Returns
    /// how many.
    pub async fn purge_audit(&self, cutoff: i64) -> Result<u64> {
        let batch = super::revocations::PURGE_BATCH;
        let mut total = 0;
        loop {
            let deleted = on_pool!(self, |pool| {
                sqlx::query(
                    "DELETE FROM audit_events WHERE id IN \
                     (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                )
                .bind(cutoff)
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected()
            });
            total += deleted;
            if deleted < batch.unsigned_abs() {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Events about `user` and/or of `kind`, newest first, with the total count.
    pub async fn audit_events(
        &self,
        user: Option<i64>,
        kind: Option<AuditKind>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditRecord>, i64)> {
        let filter = "WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR kind = $2)";
        let kind = kind.map(AuditKind::as_str);
        let (records, total): (Vec<AuditRecord>, (i64,)) = on_pool!(self, |pool| {
            let rows = sqlx::query_as(&format!(
                "SELECT id, at, kind, user_id, actor_id, session_id, ip, detail FROM audit_events \
                 {filter} ORDER BY id DESC LIMIT $3 OFFSET $4"
            ))
            .bind(user)
            .bind(kind)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_as(&format!("SELECT COUNT(*) FROM audit_events {filter}"))
                .bind(user)
                .bind(kind)
                .fetch_one(pool)
                .await?;
            (rows, total)
        });

        Ok((records, total.0))
    }
}
