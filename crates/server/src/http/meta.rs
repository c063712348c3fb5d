//! Health, key publication and the answers for unknown routes.

use axum::{Json, extract::State, http::header, response::IntoResponse};

use crate::{error::Error, state::AppState};

/// Liveness: touches neither the database nor the keys.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The public signing keys as a JSON Web Key Set (empty under HS256).
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.tokens.jwks().clone()),
    )
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
