//! Tollgate: a self-hosted authentication and authorization server.
//!
//! The binary is a thin shell over this library, so tests and tools reuse every part.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod passwords;
pub mod revocation;
pub mod state;
pub mod storage;
pub mod tokens;

use tokio::net::TcpListener;

pub use app::router;
pub use state::AppState;

/// Serves the API on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
