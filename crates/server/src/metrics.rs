//! Prometheus metrics: a recorder of this process's own (held in the state, not installed
//! globally, so several states, as in the tests, keep theirs apart), what is counted where it
//! happens, and what is sampled when `/metrics` is scraped.

use std::sync::RwLock;

use metrics::{
    Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use rustc_hash::FxHashMap;

use crate::audit::AuditKind;

static METADATA: Metadata<'static> = Metadata::new("tollgate", Level::INFO, Some("tollgate"));

/// Request latency buckets, in seconds: from cache hits (tens of microseconds) to password
/// hashing under load.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often the histograms' samples are folded into their buckets (see [`Metrics::spawn_upkeep`]).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Request handles by route pattern, for one method and status.
type HandlesByRoute = FxHashMap<Box<str>, RequestHandles>;

/// The handles of one kind of answered request.
struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Request handles by method and status, then route pattern (few: routes are patterns),
    /// registered at a kind's first request: building and registering the labels costs a
    /// few thousand instructions, more than a cached route's whole work.
    /// Keys are our own (methods, statuses, route patterns), so a fast hasher is safe here.
    requests: RwLock<FxHashMap<(&'static str, u16), HandlesByRoute>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)?
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder,
            handle,
            requests: RwLock::default(),
        };
        metrics.describe();
        Ok(metrics)
    }

    fn describe(&self) {
        let counters = [
            (
                "tollgate_http_requests_total",
                "HTTP requests answered, by method, route and status.",
            ),
            (
                "tollgate_signins_total",
                "Sign-ins, by outcome (ok, failed, second_factor_failed).",
            ),
            (
                "tollgate_refreshes_total",
                "Access tokens renewed with a refresh token.",
            ),
            (
                "tollgate_refresh_reuse_detected_total",
                "Refresh tokens presented again after rotation: the session was ended.",
            ),
            (
                "tollgate_revocations_total",
                "Sessions and tokens revoked, by reason.",
            ),
            (
                "tollgate_audit_events_total",
                "Audit events recorded, by kind.",
            ),
            (
                "tollgate_password_hash_jobs_total",
                "Password hashing jobs run (hashing and verifying).",
            ),
        ];
        for (name, help) in counters {
            self.recorder
                .describe_counter(name.into(), None, SharedString::const_str(help));
        }
        let gauges = [
            (
                "tollgate_password_hash_queue_depth",
                "Password hashing jobs queued or running.",
            ),
            (
                "tollgate_password_hash_waited_seconds",
                "Time password hashing jobs have waited for a thread since start, in all (its rate over the jobs' rate is the mean wait).",
            ),
            ("tollgate_db_pool_connections", "Database connections open."),
            (
                "tollgate_db_pool_idle_connections",
                "Database connections open and idle.",
            ),
            (
                "tollgate_db_pool_max_connections",
                "The database pool's size limit.",
            ),
            (
                "tollgate_mail_queue_depth",
                "Messages waiting in the mail queue.",
            ),
            (
                "tollgate_revocations_in_memory",
                "Revocations this node holds (until the tokens they cover expire).",
            ),
            (
                "tollgate_verified_tokens_cached",
                "Access tokens this node remembers as verified.",
            ),
            (
                "tollgate_user_search_waiting_users",
                "Users the admin search's index (SQLite) has yet to take in; a search checks them one by one meanwhile.",
            ),
            (
                "tollgate_user_search_index_merging",
                "1 while the admin search's index (SQLite) is merged after taking in many users at once.",
            ),
        ];
        for (name, help) in gauges {
            self.recorder
                .describe_gauge(name.into(), None, SharedString::const_str(help));
        }
        self.recorder.describe_histogram(
            "tollgate_http_request_duration_seconds".into(),
            Some(Unit::Seconds),
            SharedString::const_str("Time to answer HTTP requests, by method and route."),
        );
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// An answered HTTP request.
    pub fn request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        if let Ok(known) = self.requests.read()
            && let Some(handles) = known.get(&(method, status)).and_then(|by| by.get(route))
        {
            handles.count.increment(1);
            handles.duration.record(seconds);
            return;
        }
        let code = status.to_string();
        let handles = RequestHandles {
            count: self.counter(
                "tollgate_http_requests_total",
                &[("method", method), ("route", route), ("status", &code)],
            ),
            duration: self.histogram(
                "tollgate_http_request_duration_seconds",
                &[("method", method), ("route", route)],
            ),
        };
        handles.count.increment(1);
        handles.duration.record(seconds);
        if let Ok(mut known) = self.requests.write() {
            known
                .entry((method, status))
                .or_default()
                .insert(route.into(), handles);
        }
    }

    /// What an audit event says to the operator's dashboards.
    pub fn audited(&self, kind: AuditKind) {
        self.counter("tollgate_audit_events_total", &[("kind", kind.as_str())])
            .increment(1);
        let signin = match kind {
            AuditKind::SigninOk => Some("ok"),
            AuditKind::SigninFailed => Some("failed"),
            AuditKind::MfaFailed => Some("second_factor_failed"),
            _ => None,
        };
        if let Some(outcome) = signin {
            self.counter("tollgate_signins_total", &[("outcome", outcome)])
                .increment(1);
        }
        if kind == AuditKind::RefreshReuseDetected {
            self.counter("tollgate_refresh_reuse_detected_total", &[])
                .increment(1);
        }
        let revocation = match kind {
            AuditKind::Logout => Some("logout"),
            AuditKind::SessionRevoked => Some("session_ended"),
            AuditKind::RefreshReuseDetected => Some("refresh_reuse"),
            AuditKind::PasswordChanged
            | AuditKind::PasswordReset
            | AuditKind::PasswordSetByAdmin => Some("password_changed"),
            AuditKind::RolesChanged => Some("roles_changed"),
            AuditKind::UserDisabled => Some("user_disabled"),
            AuditKind::UserDeleted => Some("user_deleted"),
            AuditKind::MfaReset => Some("factors_reset"),
            _ => None,
        };
        if let Some(reason) = revocation {
            self.counter("tollgate_revocations_total", &[("reason", reason)])
                .increment(1);
        }
    }

    /// Folds the histograms' samples into their buckets every second, for as long as the
    /// runtime runs. The exporter keeps every sample until that is done, so if nothing scraped
    /// `/metrics` they would pile up: about 8 bytes a request, some 30 MiB a minute under load.
    pub fn spawn_upkeep(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }

    /// The exposition text. Histograms are brought up to date first.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}
