//! Token introspection (RFC 7662) for registered service clients, and the admin API's view of
//! those clients.
//!
//! Services can verify access tokens offline with the JWKS; only Tollgate knows which were
//! revoked. `POST /oauth/introspect` (form-encoded `token`, optional `token_type_hint`), with
//! the client's name and secret in `Authorization: Basic`, answers the claims of a live access
//! token and `{"active": false}` for anything else: expired, revoked, a refresh token, garbage.

use api::wire::{MessageBody, paths};
use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderMap, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, Form, Path, RecentlyVerified, RequireRole};
use crate::{domain::clients, error::Result, openapi::ErrorBody, state::AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectionRequest {
    /// The token to ask about.
    token: String,
    /// Accepted and ignored (RFC 7662 §2.1): only access tokens can be active here.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "part of the RFC 7662 request; nothing depends on it"
    )]
    token_type_hint: Option<String>,
}

/// The answer (RFC 7662 §2.2): `{"active": false}` alone unless the token is a live access
/// token, whose claims follow then.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    active: bool,
    /// The user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Role names: `user`, `moderator`, `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// `access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

/// `POST /oauth/introspect`.
#[utoipa::path(post, path = paths::INTROSPECT, tag = "services",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    security(("serviceClient" = [])),
    responses(
        (status = 200, description = "The token's state; never cached.", body = Introspection),
        (status = 400, description = "The form has no `token`.", body = ErrorBody),
        (status = 401, description = "Not a registered service client, or a wrong secret (`WWW-Authenticate: Basic`).", body = ErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(request): Form<IntrospectionRequest>,
) -> Result<JsonResponse<Introspection>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    clients::authenticate(&state, authorization).await?;
    let inactive = JsonResponse(Introspection::default());
    let Ok((claims, principal)) = state.tokens.verified_claims(request.token.trim()) else {
        return Ok(inactive);
    };
    // Revoked, or good for enrolling a second factor only: not a token to let anyone in.
    if state.revocations.is_revoked(&principal) || principal.must_enrol {
        return Ok(inactive);
    }
    Ok(JsonResponse(Introspection {
        active: true,
        sub: Some(claims.sub),
        username: Some(claims.preferred_username),
        roles: Some(claims.roles),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        iss: Some(claims.iss),
        aud: Some(claims.aud),
        jti: Some(claims.jti),
        token_type: Some("access_token"),
    }))
}

/// A client as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    clients: Vec<ClientView>,
}

/// `GET /api/admin/clients`.
#[utoipa::path(get, path = paths::ADMIN_CLIENTS, tag = "admin", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The registered service clients (their secrets are never shown).", body = ClientList),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody),
    ))]
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
#[utoipa::path(delete, path = paths::ADMIN_CLIENT, tag = "admin", security(("bearer" = []), ("accessToken" = [])),
    params(("name" = String, Path, description = "The client's name.")),
    responses(
        (status = 200, description = "Removed: its secret stops working at once.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody),
        (status = 404, description = "No such client.", body = ErrorBody),
    ))]
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
