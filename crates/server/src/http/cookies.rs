//! The cookies: the refresh token's (HttpOnly, SameSite=Strict, limited to the auth routes,
//! Secure on HTTPS) and the access token's for page loads of protected sites (HttpOnly,
//! SameSite=Lax, the whole site).

use api::wire::{ACCESS_COOKIE, REFRESH_COOKIE, paths::REFRESH_COOKIE_PATH};
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use crate::{domain::sessions::Grant, tokens::IssuedToken};

/// One of our two cookies: where it goes and how it travels.
struct Kind {
    name: &'static str,
    path: &'static str,
    same_site: SameSite,
}

/// The refresh token: only for the auth routes, never sent from another site.
const REFRESH: Kind = Kind {
    name: REFRESH_COOKIE,
    path: REFRESH_COOKIE_PATH,
    same_site: SameSite::Strict,
};

/// The access token for the sites Tollgate protects: the whole site, and `SameSite=Lax` (a link
/// from another site opens a protected page; a form posted from another site carries no cookie).
const ACCESS: Kind = Kind {
    name: ACCESS_COOKIE,
    path: "/",
    same_site: SameSite::Lax,
};

impl Kind {
    /// The `Set-Cookie` value: HttpOnly, Secure on HTTPS, for `max_age_secs` (0 removes it).
    fn set(&self, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
        let cookie = Cookie::build((self.name, value))
            .http_only(true)
            .same_site(self.same_site)
            .path(self.path)
            .secure(secure)
            .max_age(cookie::time::Duration::seconds(max_age_secs.max(0)))
            .build();
        // Our cookie values are base64url and JWTs: always valid header values.
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The `Set-Cookie` value that hands the client its refresh token.
pub fn set_refresh(grant: &Grant, secure: bool) -> HeaderValue {
    REFRESH.set(grant.refresh_token.expose(), grant.max_age_secs, secure)
}

/// The `Set-Cookie` value that removes the refresh token.
pub fn clear_refresh(secure: bool) -> HeaderValue {
    REFRESH.set("", 0, secure)
}

/// The `Set-Cookie` value that hands the browser its access token, as long as the token lives.
pub fn set_access(token: &IssuedToken, secure: bool) -> HeaderValue {
    let max_age = i64::try_from(token.expires_in.as_secs()).unwrap_or(i64::MAX);
    ACCESS.set(&token.token, max_age, secure)
}

/// The `Set-Cookie` value that removes the access cookie.
pub fn clear_access(secure: bool) -> HeaderValue {
    ACCESS.set("", 0, secure)
}

/// The refresh token from the request's cookies, if any.
pub fn refresh_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, REFRESH_COOKIE)
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
