//! The router: every route and the layers around them. The state it serves lives in `state`.

mod envelope;

use std::convert::Infallible;

use api::wire::{ACCESS_TOKEN_HEADER, paths};
use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{self, HeaderName, Method, header},
    response::Response,
    routing::{any, delete, get, patch, post, put},
};
use tower::{Service, ServiceBuilder};
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

use envelope::EnvelopeLayer;
pub use envelope::{CONTENT_SECURITY_POLICY, MAX_HEADER_BYTES};

use crate::{
    http::{
        admin, auth, authz, content, email, gate, introspect, meta, mfa, passkeys, sessions, ui,
        user,
    },
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
    let fallback = match state.gate {
        None => Router::new().fallback(ui::fallback),
        Some(_) => Router::new().fallback(gate::forward),
    };

    let routes = Router::new()
        .merge(ui)
        .merge(fallback)
        .route(paths::HEALTHZ, get(meta::healthz))
        .route(paths::READYZ, get(meta::readyz))
        .route(paths::JWKS, get(meta::jwks))
        .route(paths::SIGNUP, post(auth::signup))
        .route(paths::SIGNIN, post(auth::signin))
        .route(paths::LOGIN, post(auth::login))
        .route(paths::PASSWORD_FORGOT, post(email::forgot_password))
        .route(paths::PASSWORD_RESET, post(email::reset_password))
        .route(paths::VERIFY_EMAIL, post(email::verify_email))
        .route(paths::VERIFY_EMAIL_RESEND, post(email::resend_verification))
        .route(paths::EMAIL_CONFIRM, post(email::confirm_email))
        .route(paths::EMAIL_REPORT, post(email::report_email_change))
        .route(paths::EMAIL, post(email::change_email))
        .route(paths::MFA_VERIFY, post(mfa::verify))
        .route(paths::MFA_STEP_UP, post(mfa::step_up))
        .route(paths::MFA, get(mfa::status))
        .route(
            paths::MFA_TOTP,
            post(mfa::begin_totp).delete(mfa::remove_totp),
        )
        .route(paths::MFA_TOTP_CONFIRM, post(mfa::confirm_totp))
        .route(
            paths::MFA_RECOVERY_CODES,
            post(mfa::regenerate_recovery_codes),
        )
        .route(paths::ADMIN_USER_MFA, delete(mfa::admin_reset))
        .route(paths::MFA_PASSKEY, post(mfa::begin_passkey))
        .route(paths::MFA_STEP_UP_PASSKEY, post(mfa::begin_step_up_passkey))
        .route(
            paths::PASSKEYS,
            get(passkeys::list).post(passkeys::register),
        )
        .route(paths::PASSKEYS_BEGIN, post(passkeys::begin_registration))
        .route(
            paths::PASSKEY,
            patch(passkeys::rename).delete(passkeys::remove),
        )
        .route(paths::PASSKEY_SIGNIN_BEGIN, post(passkeys::begin_sign_in))
        .route(paths::PASSKEY_SIGNIN, post(passkeys::sign_in))
        .route(paths::TEST_ALL, get(content::public))
        .route(paths::TEST_USER, get(content::user))
        .route(paths::TEST_MOD, get(content::moderator))
        .route(paths::TEST_ADMIN, get(content::admin))
        .route(paths::ME, get(user::me))
        .route(paths::PASSWORD, put(user::change_password))
        .route(paths::REFRESH, post(auth::refresh))
        .route(paths::REFRESH_TOKEN, post(auth::refresh_token))
        .route(paths::LOGOUT, post(auth::logout))
        .route(paths::SIGNOUT, post(auth::logout))
        .route(
            paths::SESSIONS,
            get(sessions::list).delete(sessions::end_others),
        )
        .route(paths::SESSION, delete(sessions::end_one))
        .route(
            paths::ADMIN_USERS,
            get(admin::list_users).post(admin::create_user),
        )
        .route(paths::ADMIN_USER_PASSWORD, put(admin::set_password))
        .route(paths::ADMIN_USER_RESET_MAIL, post(admin::send_reset))
        .route(paths::ADMIN_USER_VERIFY_EMAIL, post(admin::verify_email))
        .route(
            paths::ADMIN_USER,
            get(admin::get_user).delete(admin::delete_user),
        )
        .route(paths::ADMIN_USER_ROLES, put(admin::set_roles))
        .route(paths::ADMIN_USER_DISABLE, post(admin::disable))
        .route(paths::ADMIN_USER_ENABLE, post(admin::enable))
        .route(
            paths::ADMIN_USER_SESSIONS,
            get(admin::user_sessions).delete(admin::end_sessions),
        )
        .route(paths::ADMIN_AUDIT, get(admin::audit))
        .route(paths::ADMIN_CLIENTS, get(introspect::list_clients))
        .route(paths::ADMIN_CLIENT, delete(introspect::remove_client))
        .route(paths::INTROSPECT, post(introspect::introspect))
        .route(paths::FORWARD_AUTH, get(authz::forward_auth))
        .route(paths::AUTH_REQUEST, get(authz::auth_request))
        .route(paths::METRICS, get(meta::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            meta::track,
        ))
        .method_not_allowed_fallback(meta::method_not_allowed)
        .with_state(state);
    layers.service(routes)
}
