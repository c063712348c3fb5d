//! Application state and the router with its layers.

use std::sync::Arc;

use api::wire::{ACCESS_TOKEN_HEADER, paths};
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    config::Settings,
    error::Error,
    http::{auth, content, meta, user},
    passwords::Passwords,
    storage::Storage,
    tokens::Tokens,
};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest total size of request headers accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Everything a request may need. Cheap to clone: each part is a handle.
#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Builds the state on a migrated database: loads or creates the signing key.
    pub async fn new(storage: Storage, settings: Settings) -> anyhow::Result<Self> {
        let tokens = Tokens::load(&storage, &settings).await?;
        let passwords = Passwords::new(settings.hash_concurrency)?;
        Ok(Self {
            storage,
            tokens,
            passwords,
            settings: Arc::new(settings),
        })
    }
}

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

    Router::new()
        .route(paths::HEALTHZ, get(meta::healthz))
        .route(paths::JWKS, get(meta::jwks))
        .route(paths::SIGNUP, post(auth::signup))
        .route(paths::SIGNIN, post(auth::signin))
        .route(paths::TEST_ALL, get(content::public))
        .route(paths::TEST_USER, get(content::user))
        .route(paths::TEST_MOD, get(content::moderator))
        .route(paths::TEST_ADMIN, get(content::admin))
        .route(paths::ME, get(user::me))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_header_size))
        .layer(cors)
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(CatchPanicLayer::custom(|_| {
            Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
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
