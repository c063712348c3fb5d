//! The router: every route and the layers around them. The state it serves lives in `state`.

mod envelope;
mod tracking;

use std::convert::Infallible;

use api::wire::ACCESS_TOKEN_HEADER;
use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{self, HeaderName, Method, header},
    response::Response,
    routing::{any, get},
};
use tower::{Service, ServiceBuilder};
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use envelope::EnvelopeLayer;
pub use envelope::{CONTENT_SECURITY_POLICY, MAX_HEADER_BYTES};

use crate::{
    http::{
        admin, auth, authz, content, email, gate, introspect, meta, mfa, passkeys, sessions, ui,
        user,
    },
    openapi::{self, ApiDoc},
    state::AppState,
};

/// Largest request body accepted (see [`crate::http::extract::Json`]).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Tollgate's HTTP service: every route, inside the layers every request passes.
pub fn app(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(state.settings.cors_origins.clone()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            HeaderName::from_static(ACCESS_TOKEN_HEADER),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600));
    let envelope = EnvelopeLayer::new(state.settings.https, cors, state.storage.clone());

    // Spans and an event per request and response, for `--log debug` (or
    // `tower_http=debug`). Off, it is left out rather than run for nothing: it would cost
    // every request a span, timings and a wrapped body. Server errors are logged either way,
    // by the envelope.
    let trace = tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG).then(|| {
        ServiceBuilder::new()
            .map_response(|response: http::Response<_>| response.map(Body::new))
            .layer(TraceLayer::new_for_http().on_failure(()))
    });

    // Every request passes all of these, so they are one stack around the whole router, not
    // `Router::layer`: that wraps every route in the stack, boxed, and a boxed service is
    // cloned into a new allocation for each request. Outermost first.
    let layers = ServiceBuilder::new().option_layer(trace).layer(envelope);

    // The UI. In gate mode the upstream owns the site: Tollgate keeps the pages a visitor
    // needs to sign in and manage their account, and its own assets by name; every other path
    // (`/` included) is the upstream's, under the rules.
    let ui = match &state.gate {
        None => Router::new()
            .route("/", get(ui::index))
            .route("/assets/{name}", get(ui::asset)),
        // Our assets by name; any other `/assets/...` is the upstream's.
        Some(_) => ui::GATE_MODE_PAGES
            .iter()
            .fold(Router::new(), |router, page| {
                router.route(page, get(ui::index))
            })
            .route("/assets/{*name}", any(gate::asset_or_forward)),
    }
    .layer(CompressionLayer::new());
    let gate_mode = state.gate.is_some();
    let fallback = match state.gate {
        None => Router::new().fallback(ui::fallback),
        Some(_) => Router::new().fallback(gate::forward),
    };

    // The API: each route's path and description come from its handler's `#[utoipa::path]`.
    let (api, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(meta::jwks))
        .routes(routes!(meta::metrics))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::signin))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::refresh_token))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::signout))
        .routes(routes!(sessions::list, sessions::end_others))
        .routes(routes!(sessions::end_one))
        .routes(routes!(email::forgot_password))
        .routes(routes!(email::reset_password))
        .routes(routes!(email::verify_email))
        .routes(routes!(email::resend_verification))
        .routes(routes!(email::confirm_email))
        .routes(routes!(email::report_email_change))
        .routes(routes!(email::change_email))
        .routes(routes!(mfa::verify))
        .routes(routes!(mfa::step_up))
        .routes(routes!(mfa::begin_passkey))
        .routes(routes!(mfa::begin_step_up_passkey))
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::begin_totp, mfa::remove_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::regenerate_recovery_codes))
        .routes(routes!(passkeys::list, passkeys::register))
        .routes(routes!(passkeys::begin_registration))
        .routes(routes!(passkeys::rename, passkeys::remove))
        .routes(routes!(passkeys::begin_sign_in))
        .routes(routes!(passkeys::sign_in))
        .routes(routes!(content::public))
        .routes(routes!(content::user))
        .routes(routes!(content::moderator))
        .routes(routes!(content::admin))
        .routes(routes!(user::me))
        .routes(routes!(user::change_password))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user, admin::delete_user))
        .routes(routes!(admin::set_roles))
        .routes(routes!(admin::set_password))
        .routes(routes!(admin::send_reset))
        .routes(routes!(admin::verify_email))
        .routes(routes!(admin::disable))
        .routes(routes!(admin::enable))
        .routes(routes!(admin::user_sessions, admin::end_sessions))
        .routes(routes!(mfa::admin_reset))
        .routes(routes!(admin::audit))
        .routes(routes!(introspect::list_clients))
        .routes(routes!(introspect::remove_client))
        .routes(routes!(introspect::introspect))
        .routes(routes!(authz::forward_auth))
        .routes(routes!(authz::auth_request))
        .split_for_parts();
    openapi::finish(&mut document);

    let routes = Router::new()
        .merge(ui)
        .merge(fallback)
        .merge(api)
        .merge(meta::documentation(document, !gate_mode))
        .route_layer(tracking::TrackingLayer::new(state.clone()))
        .method_not_allowed_fallback(meta::method_not_allowed)
        .with_state(state);
    layers.service(routes)
}
