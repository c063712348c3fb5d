//! The OpenAPI 3.1 description of the API, generated from the handlers' `#[utoipa::path]`
//! attributes as the router registers them (`utoipa-axum`), so a route cannot be served
//! undescribed. Served at `/api/openapi.json`, and browsable at `/docs` (Swagger UI from a
//! vendored copy: nothing is loaded from another host).

use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        self, RefOr, Response, ResponseBuilder,
        content::ContentBuilder,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

/// Where the document and its viewer are served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const VIEWER_PATH: &str = "/docs";

/// The security schemes, by the names the operations use.
pub const BEARER: &str = "bearer";
pub const ACCESS_TOKEN: &str = "accessToken";
pub const REFRESH_COOKIE: &str = "refreshCookie";
pub const SERVICE_CLIENT: &str = "serviceClient";
pub const ACCESS_COOKIE: &str = "accessCookie";

/// Every refusal: a message for people, and for some a `reason` for programs
/// (`mfa_required`, `step_up_required`, `mfa_enrollment_required`). Sign-in refusals carry
/// `accessToken: null` as the tutorial's do, and a second-factor challenge its `mfaToken` and
/// `methods`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A refused sign-in: wrong credentials (`accessToken: null` and the message, as the tutorial
/// answers), or a second factor to prove (`reason: mfa_required`, the `mfaToken` for
/// `/api/auth/mfa/verify`, and the `methods` the user has: `otp`, `recovery`, `passkey`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigninRefusal {
    pub access_token: Option<String>,
    pub message: String,
    pub reason: Option<String>,
    pub mfa_token: Option<String>,
    pub methods: Option<Vec<String>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Authentication and authorization: the JWT tutorial's API (sign-up, \
            sign-in, role-protected content) with sessions, second factors, passkeys, mail \
            flows, an admin API, forward-auth for reverse proxies and token introspection.\n\n\
            Access tokens go in `Authorization: Bearer` or, as the tutorial sends them, \
            `x-access-token`. Errors are JSON `{\"message\": …}`. Besides the answers each \
            operation lists, hyper may refuse a malformed request itself (400, 414, 431), \
            with the same body.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Sign-up, sign-in, sessions and tokens"),
        (name = "mfa", description = "Second factors: authenticator apps, passkeys, recovery codes"),
        (name = "email", description = "Password reset and address verification by mail"),
        (name = "user", description = "The signed-in user's own account"),
        (name = "content", description = "The tutorial's test content, one route per role"),
        (name = "admin", description = "User administration (role admin)"),
        (name = "services", description = "Forward-auth for reverse proxies, token introspection"),
        (name = "operations", description = "Health, readiness, keys, metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from a sign-in or a refresh."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACCESS_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                api::wire::ACCESS_TOKEN_HEADER,
                "The same access token, in the tutorial's header.",
            ))),
        );
        components.add_security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                api::wire::REFRESH_COOKIE,
                "The HttpOnly refresh cookie set at sign-in (path /api/auth).",
            ))),
        );
        components.add_security_scheme(
            ACCESS_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                api::wire::ACCESS_COOKIE,
                "The HttpOnly access cookie set at sign-in, for page loads of the sites \
                 forward-auth protects.",
            ))),
        );
        components.add_security_scheme(
            SERVICE_CLIENT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A service client's name and secret (`tollgate client add`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Completes the document the router collected: every operation gets the error answers it
/// shares with every other, where its handler does not describe them itself. All: 429
/// (rate-limited, with `Retry-After`) and 503 (the database cannot take the request now, or
/// too many password checks are queued; with `Retry-After`). With a body: 400 (malformed),
/// 408 (sent too slowly), 413 (over 64 KiB), 415 (not the documented type). With path
/// parameters: 400 (malformed identifier).
pub fn finish(doc: &mut openapi::OpenApi) {
    let error = |description: &str| -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .into()
    };
    let shared = [
        (
            "429",
            "Too many requests: retry after `Retry-After` seconds.",
        ),
        (
            "503",
            "The database cannot take the request now, or the server is busy: retry after \
             `Retry-After` seconds. Nothing was changed.",
        ),
    ];
    let with_body = [
        (
            "400",
            "The body is not valid JSON, or a field is missing or of the wrong type.",
        ),
        ("408", "The body was not received in time."),
        ("413", "The body is over 64 KiB."),
        ("415", "The body is not of the documented type."),
    ];
    let with_path = [("400", "An identifier in the path is malformed.")];
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.summary = operation.summary.take().map(|s| without_route(&s));
            operation.description = operation.description.take().map(|s| without_route(&s));
            let has_body = operation.request_body.is_some();
            let has_path = operation.parameters.as_ref().is_some_and(|parameters| {
                parameters
                    .iter()
                    .any(|p| {
                        matches!(p, RefOr::T(p) if p.parameter_in == openapi::path::ParameterIn::Path)
                    })
            });
            let answers = &mut operation.responses.responses;
            let extra = shared
                .iter()
                .chain(with_body.iter().filter(|_| has_body))
                .chain(with_path.iter().filter(|_| has_path));
            for (status, description) in extra {
                answers
                    .entry((*status).to_owned())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// A handler's doc comment often opens by naming its route (`` `POST /api/auth/login`: signs
/// in… ``), which the viewer shows already: the rest, capitalised.
fn without_route(text: &str) -> String {
    match text
        .strip_prefix('`')
        .and_then(|rest| rest.split_once("`: "))
    {
        Some((_, rest)) => {
            let mut chars = rest.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_route;

    #[test]
    fn a_summary_loses_the_route_it_opens_with() {
        assert_eq!(
            without_route("`POST /api/auth/signup {x}`: signs up."),
            "Signs up."
        );
        assert_eq!(
            without_route("Readiness: the database."),
            "Readiness: the database."
        );
        assert_eq!(without_route("`GET /x`"), "`GET /x`");
    }
}
