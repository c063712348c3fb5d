//! Health, key publication and the answers for unknown routes.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{error::Error, state::AppState};

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: touches neither the database nor the keys.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers, and the key this node signs with is still the stored one.
/// 200, or 503 naming the part that fails. Never cached.
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
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "message": if ready { "ready".to_owned() } else { failing.join("; ") },
        "checks": { "database": database, "keys": keys },
    });
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
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.tokens.jwks()),
    )
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
