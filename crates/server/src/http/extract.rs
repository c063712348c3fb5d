//! Extractors: request bodies in our error format, and authorization in the signature.

use std::{marker::PhantomData, sync::Arc};

use api::{Role, wire::ACCESS_TOKEN_HEADER};
use axum::{
    extract::{FromRequest, FromRequestParts, OptionalFromRequestParts},
    http::{HeaderMap, header, request::Parts},
};

use crate::{
    app::AppState,
    error::Error,
    tokens::{Principal, TokenError},
};

/// `axum::Json`, but a malformed body gets our `{"message": ...}` error.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

/// The caller, proven by a valid access token in `x-access-token` or `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<Principal>);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer_token(&parts.headers)?.ok_or(Error::NoToken)?;
        authenticate(state, token)
    }
}

/// No token at all is `None`; a token that fails verification is still an error.
impl OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Error> {
        match bearer_token(&parts.headers)? {
            Some(token) => authenticate(state, token).map(Some),
            None => Ok(None),
        }
    }
}

fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    match state.tokens.verify(token) {
        Ok(principal) => Ok(AuthUser(principal)),
        Err(TokenError::Expired) => Err(Error::ExpiredToken),
        Err(TokenError::Invalid) => Err(Error::InvalidToken),
    }
}

/// The token from `x-access-token` (the tutorial's header) or `Authorization: Bearer`.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    if let Some(value) = headers.get(ACCESS_TOKEN_HEADER) {
        let token = value.to_str().map_err(|_| Error::InvalidToken)?.trim();
        return Ok((!token.is_empty()).then_some(token));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            Ok((!token.is_empty()).then_some(token))
        }
        _ => Ok(None),
    }
}

/// A role that a route can require, as a type.
pub trait RequiredRole {
    const ROLE: Role;
}

pub struct Moderator;
impl RequiredRole for Moderator {
    const ROLE: Role = Role::Moderator;
}

pub struct Admin;
impl RequiredRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A caller holding role `R`; anyone else gets 403 "Require <Role> Role!".
pub struct RequireRole<R>(pub Arc<Principal>, PhantomData<R>);

impl<R: RequiredRole + Send> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let AuthUser(principal) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if principal.roles.contains(R::ROLE) {
            Ok(Self(principal, PhantomData))
        } else {
            Err(Error::MissingRole(R::ROLE))
        }
    }
}
