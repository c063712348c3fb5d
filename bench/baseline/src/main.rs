//! The baseline of `bench/run.sh`: `GET /healthz` answering `ok` from a bare axum router, with
//! no layers and no log subscriber, served exactly as Tollgate serves (the same runtime, `axum::serve`
//! with the peer address). Tollgate's own `/healthz` is measured against it in the same run, so the
//! ratio shows what Tollgate's layers cost per request. It is also the upstream of the gate-mode
//! runs (`/app/...`).
//!
//! Usage: `tollgate-bench-baseline 127.0.0.1:PORT`

use std::net::SocketAddr;

use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    // `/app/...` is the trivial route of an upstream behind Tollgate's gate mode, measured
    // both directly and through the gate.
    let app = Router::new()
        .route("/healthz", get(async || "ok"))
        .route("/app/{*rest}", get(async || "ok"));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
