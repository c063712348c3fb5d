//! Serving the app over TCP: the accept loop, the connection cap and graceful shutdown.
//!
//! Each connection is served by hyper (HTTP/1.1) and held to deadlines (see [`connection`]):
//! a complete request head within `--header-read-timeout`, a whole body within
//! `--request-body-timeout`, the next request on a kept-alive connection within
//! `--idle-timeout`. At most `--max-connections` are served at once: at the cap the loop stops
//! accepting, and new clients wait in the kernel's listen queue until a connection closes.
//! Accept failures such as running out of file descriptors are logged and retried, never fatal.
//! On shutdown the listener closes at once, requests in progress get `--shutdown-drain` to
//! finish, and whatever is left is then dropped.

mod body;
mod connection;
mod parse_errors;

use std::{
    future::Future,
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
};

pub use body::{BodyTimeout, is_body_timeout};

use crate::{app, config::ServeSettings, limits::LogThrottle, state::AppState};

/// Pause after an accept failure that is not about one connection (out of file descriptors,
/// of memory): retrying at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the API on `listener` until `shutdown` completes, then drains open requests for at
/// most `settings.shutdown_drain`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    warn_if_over_file_limit(&settings);
    let app = app(state);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let accept_errors = LogThrottle::new(LogThrottle::INTERVAL);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        if let Some(held_back) = accept_errors.admit(Instant::now()) {
                            tracing::error!(
                                error = %e,
                                held_back,
                                "cannot accept connections; retrying (logged at most every 10 s; \
                                 is the open-file limit, `ulimit -n`, too low for \
                                 --max-connections?)"
                            );
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        // Answers leave in one write when they can, but not always (a streamed body, a
        // proxied answer whose head and body come apart): without this, Nagle's algorithm
        // would hold the second write until the client acknowledges the first.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            connection::serve(stream, peer, app, settings, stopping).await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }

    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "shutting down: finishing requests in progress"
        );
    }
    let drained = tokio::time::timeout(settings.shutdown_drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            drain = ?settings.shutdown_drain,
            "shutdown drain time is over: dropping the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Failures that concern one connection only (it was reset before we took it): the next
/// accept may succeed at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// A connection cap the open-file limit cannot hold would end in "too many open files".
fn warn_if_over_file_limit(settings: &ServeSettings) {
    let Some(limit) = settings.open_file_limit else {
        return;
    };
    let budget = limit.saturating_sub(ServeSettings::reserved_files(limit));
    if u64::try_from(settings.max_connections).is_ok_and(|cap| cap > budget) {
        tracing::warn!(
            max_connections = settings.max_connections,
            open_file_limit = limit,
            "--max-connections is more than the open-file limit leaves room for: connections \
             beyond about {budget} will wait. Raise `ulimit -n` or lower --max-connections."
        );
    }
}
