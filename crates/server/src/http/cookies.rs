//! The cookies: the refresh token's (HttpOnly, SameSite=Strict, limited to the auth routes,
//! Secure on HTTPS) and the access token's for page loads of protected sites (HttpOnly,
//! SameSite=Lax, the whole site).

use api::wire::{ACCESS_COOKIE, REFRESH_COOKIE, paths::REFRESH_COOKIE_PATH};
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use crate::{domain::sessions::Grant, tokens::IssuedToken};

/// The `Set-Cookie` value that hands the client its refresh token.
pub fn set_refresh(grant: &Grant, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((REFRESH_COOKIE, grant.refresh_token.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(REFRESH_COOKIE_PATH)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(grant.max_age_secs.max(0)));
    header_value(&cookie.build())
}

/// The `Set-Cookie` value that removes the refresh token.
pub fn clear_refresh(secure: bool) -> HeaderValue {
    let cookie = Cookie::build((REFRESH_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(REFRESH_COOKIE_PATH)
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO);
    header_value(&cookie.build())
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Our cookie values are base64url: always a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The refresh token from the request's cookies, if any.
pub fn refresh_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, REFRESH_COOKIE)
}

/// The `Set-Cookie` value that hands the browser its access token for the sites Tollgate
/// protects: HttpOnly, `SameSite=Lax` (a link from another site opens a protected page; a form
/// posted from another site carries no cookie), the whole site, as long as the token lives.
pub fn set_access(token: &IssuedToken, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((ACCESS_COOKIE, token.token.clone()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(token.expires_in.as_secs()).unwrap_or(i64::MAX),
        ));
    header_value(&cookie.build())
}

/// The `Set-Cookie` value that removes the access cookie.
pub fn clear_access(secure: bool) -> HeaderValue {
    let cookie = Cookie::build((ACCESS_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO);
    header_value(&cookie.build())
}

/// The access token from the request's cookies, if any.
pub fn access_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, ACCESS_COOKIE)
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}
