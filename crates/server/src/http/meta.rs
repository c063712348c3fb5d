//! Health, key publication, metrics, and the answers for unknown routes.

use std::time::Duration;

use std::net::SocketAddr;

use api::wire::paths;
use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::{
    error::{Error, Result},
    openapi::{DOCUMENT_PATH, ErrorBody, VIEWER_PATH},
    state::AppState,
};

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: touches neither the database nor the keys.
#[utoipa::path(get, path = paths::HEALTHZ, tag = "operations",
    responses((status = 200, description = "The process is up: `ok`.", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` says: each part's verdict, `ok` or why not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// `ready`, or the failing parts.
    message: String,
    checks: ReadinessChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    database: String,
    keys: String,
}

/// Readiness: the database answers, and the key this node signs with is still the stored one.
/// 200, or 503 naming the part that fails. Never cached.
#[utoipa::path(get, path = paths::READYZ, tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready: the failing part is named.", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (database, keys, outage) =
        match tokio::time::timeout(READY_TIMEOUT, state.storage.signing_kids()).await {
            Ok(Ok(kids)) => {
                let keys = if state.tokens.signing_key_in(&kids) {
                    "ok".to_owned()
                } else {
                    "the signing key of this node is no longer in the database".to_owned()
                };
                ("ok".to_owned(), keys, None)
            }
            Ok(Err(Error::Unavailable(unavailable))) => (
                unavailable.message().to_owned(),
                "not checked".to_owned(),
                Some(unavailable),
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database check failed");
                (
                    "the database check failed".to_owned(),
                    "not checked".to_owned(),
                    None,
                )
            }
            Err(_) => (
                format!("no answer within {} s", READY_TIMEOUT.as_secs()),
                "not checked".to_owned(),
                None,
            ),
        };
    let ready = database == "ok" && keys == "ok";
    let failing: Vec<String> = [("database", &database), ("keys", &keys)]
        .into_iter()
        .filter(|(_, verdict)| verdict.as_str() != "ok")
        .map(|(part, verdict)| format!("{part}: {verdict}"))
        .collect();
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        message: if ready {
            "ready".to_owned()
        } else {
            failing.join("; ")
        },
        checks: ReadinessChecks { database, keys },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
    if let Some(unavailable) = outage {
        response.extensions_mut().insert(unavailable);
    }
    response
}

/// The public signing keys as a JSON Web Key Set (empty under HS256).
#[utoipa::path(get, path = paths::JWKS, tag = "operations",
    responses((status = 200, description = "A JSON Web Key Set (RFC 7517): `{\"keys\": […]}`, \
        the key that signs and those published ahead or kept until their tokens expire.",
        body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.tokens.jwks()),
    )
}

/// The OpenAPI document at `/api/openapi.json` and, unless the site is the upstream's (gate
/// mode), Swagger UI at `/docs`.
pub fn documentation(document: utoipa::openapi::OpenApi, viewer: bool) -> Router<AppState> {
    if viewer {
        // No online validator (its badge is an image from another host), and the base layout:
        // the standalone one's top bar (a box to load any document by URL) draws its logo
        // with an inline `<style>`, which our CSP refuses.
        SwaggerUi::new(VIEWER_PATH)
            .url(DOCUMENT_PATH, document)
            .config(Config::default().validator_url("none").use_base_layout())
            .into()
    } else {
        Router::new().route(DOCUMENT_PATH, get(move || async move { Json(document) }))
    }
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// `GET /metrics`: Prometheus exposition. On the main address it is for this machine only (a
/// scraper on loopback, or a proxy there forwarding its own requests); `--metrics-listen`
/// serves it on an address of its own instead.
#[utoipa::path(get, path = paths::METRICS, tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition.", body = String,
            content_type = "text/plain"),
        (status = 403, description = "Asked from another machine, or through a proxy.", body = ErrorBody),
        (status = 404, description = "Served on the `--metrics-listen` address instead.", body = ErrorBody),
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Result<Response> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let headers = request.headers();
    if state.settings.metrics_listen.is_some() {
        return Err(Error::NotFound(
            "Metrics are served on the --metrics-listen address.",
        ));
    }
    // The connection itself must come from this machine, and not on anyone's behalf: a
    // reverse proxy on loopback forwarding a visitor's request is refused too.
    let local = peer.is_none_or(|ConnectInfo(address)| address.ip().is_loopback());
    let forwarded =
        headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED);
    if !local || forwarded {
        return Err(Error::FeatureOff(
            "Metrics are served to this machine only; give --metrics-listen to serve them on an address of their own.",
        ));
    }
    Ok(exposition(&state))
}

/// `GET /metrics` on the `--metrics-listen` address: whoever can reach that address.
pub async fn metrics_apart(State(state): State<AppState>) -> Response {
    exposition(&state)
}

/// The metrics, with the gauges sampled now.
pub fn exposition(state: &AppState) -> Response {
    let metrics = &state.metrics;
    let pool = state.storage.pool_stats();
    #[allow(clippy::cast_precision_loss)]
    let gauges = [
        (
            "tollgate_password_hash_queue_depth",
            state.passwords.queue_depth() as f64,
        ),
        ("tollgate_mail_queue_depth", state.mailer.pending() as f64),
        (
            "tollgate_revocations_in_memory",
            state.revocations.count() as f64,
        ),
        (
            "tollgate_verified_tokens_cached",
            state.tokens.cached() as f64,
        ),
        ("tollgate_db_pool_connections", f64::from(pool.open)),
        ("tollgate_db_pool_idle_connections", pool.idle as f64),
        ("tollgate_db_pool_max_connections", f64::from(pool.max)),
        (
            "tollgate_user_search_waiting_users",
            state.storage.users_waiting_for_search_index() as f64,
        ),
        (
            "tollgate_user_search_index_merging",
            f64::from(u8::from(state.storage.search_index_merging())),
        ),
    ];
    for (name, value) in gauges {
        metrics.gauge(name, &[]).set(value);
    }
    metrics
        .counter("tollgate_password_hash_jobs_total", &[])
        .absolute(state.passwords.runs());
    metrics
        .gauge("tollgate_password_hash_waited_seconds", &[])
        .set(state.passwords.waited().as_secs_f64());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}
