//! The router: every route and the layers around them. The state it serves lives in `state`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use api::wire::{ACCESS_TOKEN_HEADER, paths};
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    classify::ServerErrorsFailureClass,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    error::{Error, Unavailable},
    http::{admin, auth, content, meta, sessions, ui, user},
    limits::LogThrottle,
    state::AppState,
    storage::Storage,
};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The UI's policy: only our own scripts (and wasm), styles and API; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Largest total size of request headers accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(state.settings.cors_origins.clone()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            HeaderName::from_static(ACCESS_TOKEN_HEADER),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600));

    // Browsers remember HSTS; only send it when the operator says we are on HTTPS.
    let hsts = tower::util::option_layer(state.settings.https.then(|| {
        security_header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        )
    }));

    let ui = Router::new()
        .route("/", get(ui::index))
        .route("/assets/{name}", get(ui::asset))
        .layer(CompressionLayer::new());

    Router::new()
        .merge(ui)
        .route(paths::HEALTHZ, get(meta::healthz))
        .route(paths::JWKS, get(meta::jwks))
        .route(paths::SIGNUP, post(auth::signup))
        .route(paths::SIGNIN, post(auth::signin))
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
        .route(paths::ADMIN_USERS, get(admin::list_users))
        .route(
            paths::ADMIN_USER,
            get(admin::get_user).delete(admin::delete_user),
        )
        .route(paths::ADMIN_USER_ROLES, put(admin::set_roles))
        .route(paths::ADMIN_USER_DISABLE, post(admin::disable))
        .route(paths::ADMIN_USER_ENABLE, post(admin::enable))
        .route(paths::ADMIN_USER_SESSIONS, delete(admin::end_sessions))
        .route(paths::ADMIN_AUDIT, get(admin::audit))
        .fallback(ui::fallback)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_header_size))
        .layer(middleware::from_fn_with_state(
            state.storage.clone(),
            note_outages,
        ))
        .layer(cors)
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(hsts)
        // Answers carry tokens and personal data: never stored by browsers or proxies, unless
        // a handler says otherwise (the UI's assets, the public keys).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http().on_failure(failure_log()))
        .with_state(state)
}

/// Logs server errors, as tower-http does, except 503s: a flood of requests refused because
/// the server is busy gets one warning per interval, not an error line each.
fn failure_log() -> impl Fn(ServerErrorsFailureClass, Duration, &tracing::Span) + Clone {
    let busy = Arc::new(LogThrottle::new(LogThrottle::INTERVAL));
    move |failure: ServerErrorsFailureClass, latency: Duration, span: &tracing::Span| match failure
    {
        ServerErrorsFailureClass::StatusCode(status)
            if status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            if let Some(held_back) = busy.admit(Instant::now()) {
                tracing::warn!(
                    parent: span,
                    held_back,
                    "server busy: refusing requests with 503 (logged at most every 10 s)"
                );
            }
        }
        failure => tracing::error!(
            parent: span,
            classification = %failure,
            latency = ?latency,
            "response failed"
        ),
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// Tells the storage of each request refused because the database is unavailable, so that an
/// outage is logged once when it begins and once when it ends.
async fn note_outages(
    axum::extract::State(storage): axum::extract::State<Storage>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && let Some(unavailable) = response.extensions().get::<Unavailable>()
    {
        storage.report_unavailable(*unavailable);
    }
    response
}

/// Refuses requests whose headers add up to more than [`MAX_HEADER_BYTES`], with our JSON error.
async fn limit_header_size(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return Error::HeadersTooLarge.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::{io, sync::Mutex};

    use super::*;

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flood_of_503s_is_one_warning_and_other_server_errors_stay_errors() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let log = failure_log();
            let span = tracing::Span::none();
            let status = ServerErrorsFailureClass::StatusCode;
            for _ in 0..100 {
                log(
                    status(StatusCode::SERVICE_UNAVAILABLE),
                    Duration::ZERO,
                    &span,
                );
            }
            log(
                status(StatusCode::INTERNAL_SERVER_ERROR),
                Duration::ZERO,
                &span,
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("server busy"),
            "{text}"
        );
        assert!(
            lines[1].contains("ERROR") && lines[1].contains("500"),
            "{text}"
        );
    }
}
