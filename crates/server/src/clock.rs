//! Wall-clock time as stored: unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `now` moved forward by `duration`, saturating.
pub fn after(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 3339 text for a unix time (empty if out of range, which stored times never are).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
