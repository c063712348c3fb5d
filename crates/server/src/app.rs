//! The router: every route and the layers around them. The state it serves lives in `state`.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use api::wire::{ACCESS_TOKEN_HEADER, paths};
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use futures_util::future;
use tower::{Layer, Service, ServiceBuilder, util::MapResponseLayer};
use tower_http::{
    catch_panic::CatchPanicLayer,
    classify::ServerErrorsFailureClass,
    compression::CompressionLayer,
    cors::{AllowOrigin, Cors, CorsLayer},
    trace::TraceLayer,
    validate_request::ValidateRequestHeaderLayer,
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
    let security_headers = SecurityHeaders::new(state.settings.https);
    let storage = state.storage.clone();

    // Every request passes all of these, so they are one stack applied once: each `.layer()`
    // on a router wraps every route in another boxed service, cloned and boxed again per
    // request. Outermost first.
    let layers = ServiceBuilder::new()
        // Spans and per-request events at DEBUG; server errors (5xx) at ERROR, but 503s
        // throttled (see `failure_log`).
        .layer(TraceLayer::new_for_http().on_failure(failure_log()))
        .layer(CatchPanicLayer::custom(|_| {
            Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(MapResponseLayer::new(move |response| {
            note_outage(&storage, &response);
            security_headers.apply(response)
        }))
        .layer(CorsForBrowsers(Arc::new(cors)))
        .layer(ValidateRequestHeaderLayer::custom(limit_header_size))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

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
        .layer(layers)
        .with_state(state)
}

/// The headers every response carries, set over any a handler chose, in one pass.
#[derive(Clone)]
struct SecurityHeaders(Arc<[(HeaderName, HeaderValue)]>);

impl SecurityHeaders {
    fn new(https: bool) -> Self {
        let mut headers = vec![
            // What the CORS layer adds to every response, Origin or not (see
            // `CorsForBrowsers`): the same values, so set over its own they change nothing.
            (
                header::VARY,
                "origin, access-control-request-method, access-control-request-headers",
            ),
            (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ];
        // Browsers remember HSTS; only send it when the operator says we are on HTTPS.
        if https {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=63072000; includeSubDomains",
            ));
        }
        Self(
            headers
                .into_iter()
                .map(|(name, value)| (name, HeaderValue::from_static(value)))
                .collect(),
        )
    }

    fn apply(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        // Room for all of them (and Cache-Control) at once, not a regrowth every few inserts.
        headers.reserve(self.0.len() + 1);
        for (name, value) in self.0.iter() {
            headers.insert(name.clone(), value.clone());
        }
        // Answers carry tokens and personal data: never stored by browsers or proxies, unless
        // a handler says otherwise (the UI's assets, the public keys).
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        response
    }
}

/// CORS for the requests it can concern: those with `Origin` (what browsers send cross-origin)
/// and preflights. Everything else (forward-auth checks, probes, API clients) skips it, since
/// tower-http's CORS rebuilds its headers for every request; the two it would have added to
/// such a request (`Vary` and `Access-Control-Allow-Credentials`) come from [`SecurityHeaders`].
/// The CORS service is built only for the requests that need it: cloning it (axum clones the
/// stack per request) would copy its lists every time.
#[derive(Clone)]
struct CorsForBrowsers(Arc<CorsLayer>);

impl<S: Clone> Layer<S> for CorsForBrowsers {
    type Service = CorsOrNot<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsOrNot {
            cors: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct CorsOrNot<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

impl<S> Service<Request> for CorsOrNot<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = future::Either<<Cors<S> as Service<Request>>::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            // The service made ready goes into CORS; a clone stays for the next call.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            future::Either::Left(self.cors.layer(ready).call(request))
        } else {
            future::Either::Right(self.inner.call(request))
        }
    }
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

/// Tells the storage of a request refused because the database is unavailable, so that an
/// outage is logged once when it begins and once when it ends.
fn note_outage(storage: &Storage, response: &Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && let Some(unavailable) = response.extensions().get::<Unavailable>()
    {
        storage.report_unavailable(*unavailable);
    }
}

/// Refuses requests whose headers add up to more than [`MAX_HEADER_BYTES`], with our JSON error.
#[expect(
    clippy::result_large_err,
    reason = "the signature of tower-http's request validators: the refusal is the response"
)]
fn limit_header_size(request: &mut Request) -> Result<(), Response> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        Err(Error::HeadersTooLarge.into_response())
    } else {
        Ok(())
    }
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
