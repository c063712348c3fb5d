//! Token introspection (RFC 7662) for registered service clients, and the admin API's view of
//! those clients.
//!
//! Services can verify access tokens offline with the JWKS; only Tollgate knows which were
//! revoked. `POST /oauth/introspect` (form-encoded `token`, optional `token_type_hint`), with
//! the client's name and secret in `Authorization: Basic`, answers the claims of a live access
//! token and `{"active": false}` for anything else: expired, revoked, a refresh token, garbage.

use api::wire::MessageBody;
use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderMap, header},
};
use serde::{Deserialize, Serialize};

use super::extract::{Admin, Form, Path, RecentlyVerified, RequireRole};
use crate::{domain::clients, error::Result, state::AppState};

#[derive(Debug, Deserialize)]
pub struct IntrospectionRequest {
    token: String,
    /// Accepted and ignored (RFC 7662 §2.1): only access tokens can be active here.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "part of the RFC 7662 request; nothing depends on it"
    )]
    token_type_hint: Option<String>,
}

/// The answer: only `active` when the token is not a live access token.
#[derive(Debug, Serialize)]
pub struct Introspection {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    token: Option<ActiveToken>,
}

#[derive(Debug, Serialize)]
struct ActiveToken {
    sub: String,
    username: String,
    roles: Vec<String>,
    exp: i64,
    iat: i64,
    iss: String,
    aud: String,
    jti: String,
    token_type: &'static str,
}

/// `POST /oauth/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(request): Form<IntrospectionRequest>,
) -> Result<JsonResponse<Introspection>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    clients::authenticate(&state, authorization).await?;
    let inactive = JsonResponse(Introspection {
        active: false,
        token: None,
    });
    let Ok((claims, principal)) = state.tokens.verified_claims(request.token.trim()) else {
        return Ok(inactive);
    };
    // Revoked, or good for enrolling a second factor only: not a token to let anyone in.
    if state.revocations.is_revoked(&principal) || principal.must_enrol {
        return Ok(inactive);
    }
    Ok(JsonResponse(Introspection {
        active: true,
        token: Some(ActiveToken {
            sub: claims.sub,
            username: claims.preferred_username,
            roles: claims.roles,
            exp: claims.exp,
            iat: claims.iat,
            iss: claims.iss,
            aud: claims.aud,
            jti: claims.jti,
            token_type: "access_token",
        }),
    }))
}

/// A client as the admin API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ClientList {
    clients: Vec<ClientView>,
}

/// `GET /api/admin/clients`.
pub async fn list_clients(
    State(state): State<AppState>,
    _: RequireRole<Admin>,
) -> Result<JsonResponse<ClientList>> {
    let clients = clients::list(&state)
        .await?
        .into_iter()
        .map(|c| ClientView {
            name: c.name,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        })
        .collect();
    Ok(JsonResponse(ClientList { clients }))
}

/// `DELETE /api/admin/clients/{name}`.
pub async fn remove_client(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    Path(name): Path<String>,
) -> Result<JsonResponse<MessageBody>> {
    clients::remove(&state, &name, Some(admin.user_id)).await?;
    Ok(JsonResponse(MessageBody {
        message: "Client removed.".to_owned(),
    }))
}
