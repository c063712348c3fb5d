//! What every request and response passes through, as one layer: the header-size check, CORS
//! for browsers, the panic catcher (a handler that panics answers 500 and the server goes on),
//! and on the way out the security headers, the failure log and the outage note.
//!
//! One hand-written service rather than a stack of generic ones: each layer of a stack adds a
//! future to poll and move per request, and this path is the floor every request pays (see
//! `bench/run.sh`).

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tower::{Layer, Service};
use tower_http::cors::{Cors, CorsLayer, ResponseFuture as CorsFuture};

use crate::{
    error::{Error, Unavailable},
    http::{authz::ForProxy, gate::FromUpstream},
    limits::LogThrottle,
    storage::Storage,
};

/// Largest total size of request headers accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The UI's policy: only our own scripts (and wasm), styles and API; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct EnvelopeLayer(Arc<Shared>);

struct Shared {
    security_headers: SecurityHeaders,
    cors: CorsLayer,
    storage: Storage,
    throttles: Throttles,
}

/// Server errors that come in floods are logged at most once per interval, as one warning.
struct Throttles {
    /// 503s: a flood of refusals while the server is busy.
    busy: LogThrottle,
    /// The gate's 508s: a loop comes as a flood, and any client can send our `Via`.
    loops: LogThrottle,
}

impl Throttles {
    fn new() -> Self {
        Self {
            busy: LogThrottle::new(LogThrottle::INTERVAL),
            loops: LogThrottle::new(LogThrottle::INTERVAL),
        }
    }
}

impl EnvelopeLayer {
    pub fn new(https: bool, cors: CorsLayer, storage: Storage) -> Self {
        Self(Arc::new(Shared {
            security_headers: SecurityHeaders::new(https),
            cors,
            storage,
            throttles: Throttles::new(),
        }))
    }
}

impl<S> Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Envelope<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Envelope<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let origin = Origin {
            method: request.method().clone(),
            uri: request.uri().clone(),
        };
        let answer = if headers_too_large(&request) {
            Answer::Refused {
                response: Some(Error::HeadersTooLarge.into_response()),
            }
        } else {
            catch_unwind(AssertUnwindSafe(|| self.dispatch(request))).unwrap_or_else(|panic| {
                Answer::Refused {
                    response: Some(panicked(panic)),
                }
            })
        };
        EnvelopeFuture {
            answer,
            origin: Some(origin),
            shared: self.shared.clone(),
        }
    }
}

impl<S> Envelope<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    fn dispatch(&mut self, request: Request) -> Answer<S::Future> {
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            // CORS only for the requests it can concern: those with `Origin` (what browsers
            // send cross-origin) and preflights. tower-http's CORS rebuilds its headers for
            // every request it sees. The service made ready goes into CORS; a clone stays for
            // the next call.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            let mut cors: Cors<S> = self.shared.cors.layer(ready);
            Answer::Cors {
                future: cors.call(request),
            }
        } else {
            Answer::Plain {
                future: self.inner.call(request),
            }
        }
    }
}

/// The answer to a request whose handler panicked: a 500, with the panic logged.
fn panicked(panic: Box<dyn Any + Send>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    Error::Internal(anyhow::anyhow!("a request handler panicked: {message}")).into_response()
}

/// What the failure log says of a request.
struct Origin {
    method: Method,
    uri: Uri,
}

pin_project_lite::pin_project! {
    pub struct EnvelopeFuture<F> {
        #[pin]
        answer: Answer<F>,
        origin: Option<Origin>,
        shared: Arc<Shared>,
    }
}

pin_project_lite::pin_project! {
    #[project = AnswerProj]
    enum Answer<F> {
        Refused { response: Option<Response> },
        Plain { #[pin] future: F },
        Cors { #[pin] future: CorsFuture<F> },
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = catch_unwind(AssertUnwindSafe(|| match this.answer.project() {
            AnswerProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("EnvelopeFuture polled after completion"))),
            AnswerProj::Plain { future } => future.poll(cx),
            AnswerProj::Cors { future } => future.poll(cx),
        }));
        // After a panic the handler's future is never polled again: this one is ready.
        let response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => response,
            Ok(Poll::Ready(Err(never))) => match never {},
            Err(panic) => panicked(panic),
        };
        // An upstream's answer (gate mode) is the upstream's: its errors are not ours to log,
        // and its headers are its own.
        if response.extensions().get::<FromUpstream>().is_some() {
            return Poll::Ready(Ok(response));
        }
        if let Some(origin) = this.origin.take() {
            note_failure(this.shared, &origin, &response);
        }
        // A reverse proxy's answer to its check: no browser sees it.
        if response.extensions().get::<ForProxy>().is_some() {
            return Poll::Ready(Ok(no_store(response)));
        }
        Poll::Ready(Ok(this.shared.security_headers.apply(response)))
    }
}

/// Server errors are logged here, with the request they answered. A 503 for an unavailable
/// database also tells the storage, so that an outage is logged once when it begins and once
/// when it ends.
fn note_failure(shared: &Shared, origin: &Origin, response: &Response) {
    let status = response.status();
    if !status.is_server_error() {
        return;
    }
    if status == StatusCode::SERVICE_UNAVAILABLE
        && let Some(unavailable) = response.extensions().get::<Unavailable>()
    {
        shared.storage.report_unavailable(*unavailable);
    }
    log_failure(&shared.throttles, origin, status);
}

/// Logs a server error; 503s (the server is busy) and 508s (the gate's loops) at most once per
/// interval each, as a warning.
fn log_failure(throttles: &Throttles, origin: &Origin, status: StatusCode) {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        if let Some(held_back) = throttles.busy.admit(Instant::now()) {
            tracing::warn!(
                method = %origin.method,
                uri = %origin.uri,
                held_back,
                "server busy: refusing requests with 503 (logged at most every 10 s)"
            );
        }
    } else if status == StatusCode::LOOP_DETECTED {
        if let Some(held_back) = throttles.loops.admit(Instant::now()) {
            tracing::warn!(
                method = %origin.method,
                uri = %origin.uri,
                held_back,
                "gate: a request carried the gate's own Via (508): an upstream URL that leads \
                 back to Tollgate, or a client sending it (logged at most every 10 s)"
            );
        }
    } else {
        tracing::error!(
            method = %origin.method,
            uri = %origin.uri,
            status = status.as_u16(),
            "response failed"
        );
    }
}

/// Whether the request's headers add up to more than [`MAX_HEADER_BYTES`].
fn headers_too_large(request: &Request) -> bool {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    size > MAX_HEADER_BYTES
}

/// The headers every response carries, set over any a handler chose; all but an upstream's
/// (gate mode) and a forward-auth check's allowed answer, which only a proxy sees ([`ForProxy`]).
struct SecurityHeaders(Vec<(HeaderName, HeaderValue)>);

impl SecurityHeaders {
    fn new(https: bool) -> Self {
        let mut headers = vec![
            // Responses differ by `Origin` (CORS answers only requests with one): caches must
            // know. `Access-Control-Allow-Credentials` means nothing outside a cross-origin
            // request and is left to CORS.
            (
                header::VARY,
                "origin, access-control-request-method, access-control-request-headers",
            ),
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
        for (name, value) in &self.0 {
            headers.insert(name.clone(), value.clone());
        }
        no_store(response)
    }
}

/// Answers carry tokens and personal data: never stored by browsers or proxies, unless a
/// handler says otherwise (the UI's assets, the public keys).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::{io, sync::Mutex};

    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn envelope() -> EnvelopeLayer {
        let storage = Storage::connect("sqlite::memory:", 1).await.unwrap();
        let cors = CorsLayer::new()
            .allow_origin(HeaderValue::from_static("http://localhost:8081"))
            .allow_credentials(true);
        EnvelopeLayer::new(false, cors, storage)
    }

    /// Handlers that panic before or after their first await, and one that does not.
    fn routes() -> Router {
        async fn pending_then_panic() -> &'static str {
            tokio::task::yield_now().await;
            panic!("boom after a wait")
        }
        Router::new()
            .route("/fine", get(async || "fine"))
            .route("/later", get(pending_then_panic))
    }

    async fn send(service: Envelope<Router>, request: Request) -> (Response, String) {
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn get_request(path: &str) -> Request {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_our_headers() {
        let layer = envelope().await;
        let (response, body) = send(layer.layer(routes()), get_request("/later")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("\"message\""), "{body}");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["cache-control"], "no-store");
        // The service goes on answering.
        let (response, body) = send(layer.layer(routes()), get_request("/fine")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "fine");
    }

    #[tokio::test]
    async fn a_service_that_panics_when_called_answers_500() {
        let layer = envelope().await;
        let panics_on_call = Router::new().route_service(
            "/now",
            tower::service_fn(
                |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                    panic!("boom at once")
                },
            ),
        );
        let response = layer
            .layer(panics_on_call)
            .oneshot(get_request("/now"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn headers_set_by_handlers_yield_to_ours_except_cache_control() {
        let layer = envelope().await;
        let routes = Router::new().route(
            "/h",
            get(async || {
                (
                    [
                        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
                        (header::CACHE_CONTROL, "public, max-age=60"),
                    ],
                    "h",
                )
            }),
        );
        let (response, _) = send(layer.layer(routes), get_request("/h")).await;
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["cache-control"], "public, max-age=60");
        assert_eq!(
            response
                .headers()
                .get_all(header::CACHE_CONTROL)
                .iter()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn cors_answers_only_requests_with_an_origin() {
        let layer = envelope().await;
        let (plain, _) = send(layer.layer(routes()), get_request("/fine")).await;
        assert!(!plain.headers().contains_key("access-control-allow-origin"));
        assert!(
            !plain
                .headers()
                .contains_key("access-control-allow-credentials")
        );
        assert!(plain.headers()["vary"].to_str().unwrap().contains("origin"));
        let request = Request::get("/fine")
            .header(header::ORIGIN, "http://localhost:8081")
            .body(Body::empty())
            .unwrap();
        let (cors, _) = send(layer.layer(routes()), request).await;
        assert_eq!(
            cors.headers()["access-control-allow-origin"],
            "http://localhost:8081"
        );
        assert_eq!(cors.headers()["access-control-allow-credentials"], "true");
    }

    #[tokio::test]
    async fn oversized_headers_are_refused_with_431_before_the_handler() {
        let layer = envelope().await;
        let request = Request::get("/later")
            .header("x-padding", "x".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        let (response, body) = send(layer.layer(routes()), request).await;
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(body.contains("too large"), "{body}");
    }

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
    fn a_flood_of_503s_or_508s_is_one_warning_and_other_server_errors_stay_errors() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let throttles = Throttles::new();
            let origin = Origin {
                method: Method::POST,
                uri: Uri::from_static("/api/auth/signin"),
            };
            for _ in 0..100 {
                log_failure(&throttles, &origin, StatusCode::SERVICE_UNAVAILABLE);
                log_failure(&throttles, &origin, StatusCode::LOOP_DETECTED);
            }
            log_failure(&throttles, &origin, StatusCode::INTERNAL_SERVER_ERROR);
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("server busy"),
            "{text}"
        );
        assert!(
            lines[1].contains("WARN") && lines[1].contains("the gate's own Via"),
            "{text}"
        );
        assert!(
            lines[2].contains("ERROR")
                && lines[2].contains("500")
                && lines[2].contains("POST")
                && lines[2].contains("/api/auth/signin"),
            "{text}"
        );
    }
}
