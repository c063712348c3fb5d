//! Counts and times every request a route answers, labelled by the route's pattern (never the
//! path itself, so the labels stay few). A route layer, so the matched pattern is known; a
//! hand-written one, as it runs on every request (a `from_fn` middleware boxes its future and
//! goes through axum's extractors and `Next` per request).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
    response::Response,
};
use tower::{Layer, Service};

use crate::state::AppState;

#[derive(Clone)]
pub struct TrackingLayer {
    state: AppState,
}

impl TrackingLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for TrackingLayer {
    type Service = Tracking<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracking {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Tracking<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Tracking<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let method = match *request.method() {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let route = request.extensions().get::<MatchedPath>().cloned();
        TrackingFuture {
            answer: self.inner.call(request),
            state: self.state.clone(),
            method,
            route,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackingFuture<F> {
        #[pin]
        answer: F,
        state: AppState,
        method: &'static str,
        route: Option<MatchedPath>,
        started: Instant,
    }
}

impl<F> Future for TrackingFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.answer.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
        };
        this.state.metrics.request(
            this.method,
            this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status().as_u16(),
            this.started.elapsed().as_secs_f64(),
        );
        Poll::Ready(Ok(response))
    }
}
