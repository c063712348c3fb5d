//! One client connection: HTTP/1.1 through hyper, held to the header-read, idle and drain
//! deadlines, with the client's address given to handlers as `ConnectInfo`.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{
    BoxError,
    body::{Body, Bytes, HttpBody},
    extract::{ConnectInfo, Request},
    http::Response,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
    time::{Instant, Sleep},
};
use tower::{Service, ServiceExt};

use super::{body::DeadlineBody, parse_errors};
use crate::config::ServeSettings;

/// The buffer hyper may grow per connection (hyper's default is ~400 KiB; this bounds what
/// idle attackers can make it hold). It is a soft bound: one read may overshoot it. Heads
/// beyond it are refused by hyper itself, heads over our header limit below it by our
/// middleware; both answers are our JSON 431.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// Serves one connection until the client is done, a deadline passes, or — after `stop`
/// turns true — the request in progress is answered.
pub(super) async fn serve<App, B>(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    settings: ServeSettings,
    mut stop: watch::Receiver<bool>,
) where
    App: Service<Request, Response = Response<B>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let activity = Arc::new(Activity::new(&settings));
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let service = {
        let activity = activity.clone();
        let body_timeout = settings.request_body_timeout;
        service_fn(move |request: Request<Incoming>| {
            let in_flight = activity.request_started();
            let mut request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(|body| InFlightBody {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF_BYTES);
    // Upgrades (WebSocket) are passed on by the gate; hyper hands over the connection.
    let mut connection = pin!(http.serve_connection(io, service).with_upgrades());
    let mut deadline = Deadline::new(activity);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            reason = &mut deadline => {
                tracing::debug!(%peer, "closing the connection: {reason}");
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                // Answer the request in progress, if any, then close.
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// What a connection is waiting for, which decides the deadline it is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// For a complete request head: from accept, or from the first byte after being idle.
    Head,
    /// For the next request on a kept-alive connection, no byte of it seen yet.
    Idle,
    /// For our answer (the request body has its own deadline): no connection deadline.
    Busy,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    in_flight: usize,
}

/// Shared by the connection's reader, its service and its deadline, all run by one task.
#[derive(Debug)]
struct Activity {
    state: Mutex<State>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Activity {
    fn new(settings: &ServeSettings) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                in_flight: 0,
            }),
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_read(&self) {
        let mut state = self.state();
        if state.phase == Phase::Idle {
            state.phase = Phase::Head;
            state.since = Instant::now();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.phase = Phase::Busy;
        state.in_flight += 1;
        InFlight(self.clone())
    }

    fn in_flight(&self) -> bool {
        self.state().in_flight > 0
    }

    /// The deadline now, and what it is for.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let state = self.state();
        match state.phase {
            Phase::Head => Some((
                state.since + self.header_read_timeout,
                "no complete request head in time",
            )),
            Phase::Idle => Some((state.since + self.idle_timeout, "idle for too long")),
            Phase::Busy => None,
        }
    }
}

/// A request being answered; dropped when its response has been written (or abandoned).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.phase = Phase::Idle;
            state.since = Instant::now();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until hyper is done with it.
    struct InFlightBody<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: HttpBody> HttpBody for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Completes when the connection's current deadline passes. It reads the deadline each time
/// it is polled, which is after every step of the connection (they share a task).
struct Deadline {
    activity: Arc<Activity>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Deadline {
    fn new(activity: Arc<Activity>) -> Self {
        Self {
            activity,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }
}

impl Future for Deadline {
    type Output = &'static str;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        loop {
            let Some((deadline, reason)) = self.activity.deadline() else {
                // Busy: no deadline. The timer may stay armed; if it fires meanwhile, the
                // deadline is read again then.
                return Poll::Pending;
            };
            // Re-arming the timer after every request would cost a timer-wheel update per
            // request. A timer armed earlier than the deadline is left alone: when it fires,
            // the deadline is read again and the timer moved on.
            if self.armed.is_none_or(|armed| armed > deadline) {
                self.sleep.as_mut().reset(deadline);
                self.armed = Some(deadline);
            }
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(reason);
            }
            self.armed = None;
        }
    }
}

/// The TCP stream, telling the connection's [`Activity`] when bytes arrive, and putting our
/// JSON body into hyper's own answers to unparsable requests (see [`super::parse_errors`]).
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// Our replacement for hyper's answer, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Tracked {
    fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            stream,
            activity,
            replacement: None,
        }
    }

    /// Writes out the rest of the replacement answer, if any.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.replacement {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == answer.len() {
                self.replacement = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

/// Not vectored, so that hyper hands each answer over in one flat buffer.
impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if !self.activity.in_flight()
            && let Some(answer) = parse_errors::json_answer(buf)
        {
            self.replacement = Some((answer, 0));
            // hyper flushes next, which writes whatever the socket does not take now.
            if let Poll::Ready(Err(e)) = self.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
