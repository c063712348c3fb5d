//! The one error type of the server and its one mapping to HTTP.

use api::{FieldError, Role, UnknownRole, wire::messages};
use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a refresh token was refused, in the tutorial's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshFailure {
    #[error("Refresh Token is required!")]
    Missing,
    #[error("Refresh token is not in database!")]
    Unknown,
    #[error("Refresh token was expired. Please make a new signin request")]
    Expired,
}

/// Why the database cannot take a request right now. The client may retry; nothing was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The disk (or the database's quota) is full: writes fail until space is freed.
    DiskFull,
    /// The database cannot be reached, or is shutting down, or is too busy to answer in time.
    Down,
}

impl Unavailable {
    pub fn message(self) -> &'static str {
        match self {
            Unavailable::DiskFull => {
                "The server cannot store data right now (its storage is full); please retry later."
            }
            Unavailable::Down => "The database is unavailable; please retry shortly.",
        }
    }

    fn retry_after_secs(self) -> u64 {
        match self {
            Unavailable::DiskFull => 30,
            Unavailable::Down => 5,
        }
    }

    /// Sorts a database failure: an outage the client may retry, or `None` for a fault.
    pub fn classify(error: &sqlx::Error) -> Option<Self> {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Some(Unavailable::Down),
            sqlx::Error::Database(e) => {
                let code = e.code()?;
                match code.parse::<i32>() {
                    // SQLite: the primary result code is the low byte of the extended one.
                    Ok(sqlite) => match sqlite & 0xff {
                        13 => Some(Unavailable::DiskFull),          // SQLITE_FULL
                        5 | 6 | 10 | 14 => Some(Unavailable::Down), // BUSY, LOCKED, IOERR, CANTOPEN
                        _ => None,
                    },
                    // PostgreSQL SQLSTATE: disk full, other resource shortages, connection
                    // failures, shutdown, a read-only standby.
                    Err(_) => match &*code {
                        "53100" => Some(Unavailable::DiskFull),
                        "25006" => Some(Unavailable::Down),
                        state if state.starts_with("53") || state.starts_with("08") => {
                            Some(Unavailable::Down)
                        }
                        state if state.starts_with("57P") => Some(Unavailable::Down),
                        _ => None,
                    },
                }
            }
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field failed its parser; the message names the field.
    #[error("{0}")]
    Field(#[from] FieldError),
    #[error("{0}")]
    UnknownRole(#[from] UnknownRole),
    /// The body could not be read as the expected JSON.
    #[error("{message}")]
    BadBody { status: StatusCode, message: String },
    #[error("{}", messages::USERNAME_TAKEN)]
    UsernameTaken,
    #[error("{}", messages::EMAIL_TAKEN)]
    EmailTaken,
    #[error("{}", messages::INVALID_CREDENTIALS)]
    InvalidCredentials,
    #[error("{}", messages::NO_TOKEN)]
    NoToken,
    #[error("{}", messages::UNAUTHORIZED)]
    InvalidToken,
    #[error("{}", messages::TOKEN_EXPIRED)]
    ExpiredToken,
    #[error("Require {} Role!", .0.title())]
    MissingRole(Role),
    #[error("{}", messages::ROLE_ASSIGNMENT_FORBIDDEN)]
    RoleAssignmentForbidden,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("The last admin cannot lose the admin role or be disabled or deleted.")]
    LastAdmin,
    #[error("Too many failed sign-ins for this account; try again later.")]
    AccountBackoff { retry_after_secs: u64 },
    #[error("Too many requests; try again later.")]
    RateLimited { retry_after_secs: u64 },
    #[error("This account is disabled.")]
    AccountDisabled,
    #[error("Current password is incorrect.")]
    WrongCurrentPassword,
    /// A mailed code or link that is wrong, used, voided by a newer one, or expired.
    #[error("This code or link is invalid or has expired; ask for a new one.")]
    InvalidCode,
    #[error("Give your `email` or `username`, and your `password`.")]
    MissingLoginName,
    #[error(
        "A message went to this user less than a minute ago (or five this hour); try again later."
    )]
    MailThrottled,
    #[error("This is already your email address.")]
    SameEmail,
    /// The last address change can still be reported from the old address.
    #[error(
        "The address of this account changed in the last 7 days and can still be reported from the old one; it cannot change again until then. Ask an administrator if you need to."
    )]
    EmailChangeLocked,
    /// The password is right; a second factor is needed (`challenge` for /api/auth/mfa/verify).
    #[error(
        "Prove your second factor: a code from your authenticator app, a passkey, or a recovery code."
    )]
    SecondFactorRequired {
        challenge: String,
        methods: Vec<&'static str>,
    },
    #[error("This sign-in has expired or was completed already; sign in again.")]
    ChallengeExpired,
    #[error("That code or passkey was not accepted.")]
    InvalidFactor,
    /// A sensitive change by a user with a second factor not proven recently.
    #[error(
        "Confirm it is you: enter a code from your authenticator app, use a passkey, or enter a recovery code first."
    )]
    StepUpRequired,
    /// Passkeys on a server whose public URL cannot be a relying party.
    #[error("{0}")]
    PasskeysUnavailable(&'static str),
    #[error("This passkey request has expired or was used already; start again.")]
    CeremonyExpired,
    #[error("The passkey's answer could not be verified; try again.")]
    PasskeyRejected,
    #[error("This passkey is registered already.")]
    PasskeyExists,
    #[error("You have as many passkeys as an account may have; remove one first.")]
    TooManyPasskeys,
    /// A sign-in with a passkey that is unknown, or whose answer does not verify.
    #[error("This passkey was not accepted.")]
    PasskeyNotAccepted,
    /// A token good for enrolling a second factor only (`--require-mfa-for-role`).
    #[error("Your role requires two-step sign-in: set up an authenticator app first.")]
    EnrolmentRequired,
    #[error("A second factor is set up already; remove it first.")]
    FactorExists,
    #[error("Start setting up the authenticator app first.")]
    NoEnrolment,
    #[error("No second factor is set up.")]
    NoFactor,
    #[error("Your role requires a second factor; it cannot be removed.")]
    FactorRequired,
    /// A feature the operator turned off.
    #[error("{0}")]
    FeatureOff(&'static str),
    /// A request to confirm something by mail with neither the link's token nor the code.
    #[error("Give the `token` from the link, or the `code` from the mail.")]
    MissingProof,
    /// Sign-in refused until the address is verified (`--email-verification required`).
    #[error(
        "Verify your email address before signing in: open the link we sent you, or ask for a new one."
    )]
    EmailNotVerified,
    /// A feature that needs mail, on a server with no mail configured.
    #[error("{0}")]
    MailUnavailable(&'static str),
    #[error("Cross-site request refused.")]
    CrossSite,
    /// A protected page or API (forward-auth) wants a signed-in caller.
    #[error("Sign in to access this resource.")]
    SignInRequired,
    /// The same, for a browser loading a page: sent to the login page at `location`, with a
    /// 302, or for nginx (which passes on only 2xx, 401 and 403) a 401 its configuration
    /// turns into the redirect.
    #[error("Sign in to access this resource.")]
    SignInAt {
        location: HeaderValue,
        unauthorized: bool,
    },
    /// The access rules refuse the caller (or no rule matches).
    #[error("Access denied.")]
    AccessDenied,
    /// A protected path that servers could read in different ways; refused, not guessed at.
    #[error("Access denied: {0}.")]
    PathRefused(crate::authz::PathError),
    /// A service client's name is taken.
    #[error("A client with this name exists already.")]
    ClientNameTaken,
    /// Introspection by a caller that is not a registered service client (RFC 6749 §5.2).
    #[error("Client authentication failed.")]
    InvalidClient,
    /// Gate mode: the upstream cannot be reached.
    #[error("The service behind Tollgate cannot be reached.")]
    UpstreamUnreachable,
    /// Gate mode: the upstream did not answer within `--upstream-timeout`.
    #[error("The service behind Tollgate did not answer in time.")]
    UpstreamTimeout,
    /// Gate mode: the request has come through this gate before (its `Via` says so): an
    /// upstream leads back to Tollgate, and forwarding again would loop.
    #[error("The request has been through Tollgate already: an upstream leads back to it.")]
    GateLoop,
    /// A forward-auth request without what the proxy should have sent: a configuration error.
    #[error("{0}")]
    BadForwardAuth(String),
    /// A refresh failure on the tutorial's body route: 403, as the tutorial answers.
    #[error("{0}")]
    Refresh(RefreshFailure),
    /// A refresh failure on the cookie route: 401, the session is over.
    #[error("{0}")]
    CookieRefresh(RefreshFailure),
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("Request headers are too large.")]
    HeadersTooLarge,
    /// hyper could not parse the request (answered for it, see `serve::parse_errors`).
    #[error("The request is not valid HTTP.")]
    MalformedRequest,
    #[error("The request URI is too long.")]
    UriTooLong,
    /// The request body did not arrive within `--request-body-timeout`.
    #[error("The request body was not received in time.")]
    BodyTimeout,
    /// Too many password checks queued; the client should retry shortly.
    #[error("The server is busy; please retry shortly.")]
    Overloaded,
    /// The database cannot take the request now (full disk, outage); 503 with `Retry-After`.
    #[error("{}", .0.message())]
    Unavailable(Unavailable),
    #[error("database error")]
    Database(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// The same refusal, for the cookie route.
    pub fn on_cookie_route(self) -> Self {
        match self {
            Error::Refresh(failure) => Error::CookieRefresh(failure),
            other => other,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Field(_) | Error::UnknownRole(_) | Error::UsernameTaken | Error::EmailTaken => {
                StatusCode::BAD_REQUEST
            }
            Error::BadBody { status, .. } => *status,
            Error::InvalidCredentials
            | Error::InvalidClient
            | Error::SignInRequired
            | Error::NoToken
            | Error::InvalidToken
            | Error::ExpiredToken => StatusCode::UNAUTHORIZED,
            Error::MissingRole(_)
            | Error::RoleAssignmentForbidden
            | Error::AccessDenied
            | Error::PathRefused(_) => StatusCode::FORBIDDEN,
            Error::BadForwardAuth(_) => StatusCode::BAD_REQUEST,
            Error::SignInAt {
                unauthorized: true, ..
            } => StatusCode::UNAUTHORIZED,
            Error::SignInAt { .. } => StatusCode::FOUND,
            Error::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::GateLoop => StatusCode::LOOP_DETECTED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::LastAdmin | Error::ClientNameTaken => StatusCode::CONFLICT,
            Error::AccountBackoff { .. } | Error::RateLimited { .. } | Error::MailThrottled => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::AccountDisabled | Error::CrossSite | Error::Refresh(_) => StatusCode::FORBIDDEN,
            Error::WrongCurrentPassword
            | Error::InvalidCode
            | Error::MissingProof
            | Error::SameEmail
            | Error::MissingLoginName => StatusCode::BAD_REQUEST,
            Error::EmailNotVerified | Error::FeatureOff(_) => StatusCode::FORBIDDEN,
            Error::PasskeysUnavailable(_) => StatusCode::NOT_IMPLEMENTED,
            Error::CeremonyExpired | Error::PasskeyRejected => StatusCode::BAD_REQUEST,
            Error::PasskeyNotAccepted => StatusCode::UNAUTHORIZED,
            Error::EmailChangeLocked
            | Error::PasskeyExists
            | Error::TooManyPasskeys
            | Error::FactorExists
            | Error::FactorRequired
            | Error::NoFactor => StatusCode::CONFLICT,
            Error::SecondFactorRequired { .. }
            | Error::ChallengeExpired
            | Error::InvalidFactor
            | Error::StepUpRequired => StatusCode::UNAUTHORIZED,
            Error::EnrolmentRequired => StatusCode::FORBIDDEN,
            Error::NoEnrolment => StatusCode::BAD_REQUEST,
            Error::MailUnavailable(_) => StatusCode::NOT_IMPLEMENTED,
            Error::CookieRefresh(_) => StatusCode::UNAUTHORIZED,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::MalformedRequest => StatusCode::BAD_REQUEST,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::Overloaded | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match Unavailable::classify(&error) {
            Some(unavailable) => {
                tracing::debug!(error = %error, "database unavailable");
                Error::Unavailable(unavailable)
            }
            None => Error::Database(error),
        }
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        if crate::serve::is_body_timeout(&rejection) {
            return Error::BodyTimeout;
        }
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "Expected a JSON body with `Content-Type: application/json`.".to_owned()
            }
            JsonRejection::JsonSyntaxError(_) => "The request body is not valid JSON.".to_owned(),
            JsonRejection::JsonDataError(e) => {
                format!("Invalid request body: {}", serde_reason(e))
            }
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                "The request body is too large (64 KiB at most).".to_owned()
            }
            _ => "The request body could not be read.".to_owned(),
        };
        let status = match rejection {
            // A well-formed body with a missing or mistyped field is a plain bad request.
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            other => other.status(),
        };
        Error::BadBody { status, message }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadBody {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "Invalid query string: {}",
                rejection
                    .body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ),
        }
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(_) => Error::BadBody {
                status: StatusCode::BAD_REQUEST,
                message: "Invalid identifier in the path.".to_owned(),
            },
            other => Error::Internal(anyhow::anyhow!("path extraction failed: {other}")),
        }
    }
}

/// serde's reason ("missing field `email`") without its position; it names the offending
/// field and holds no server internals.
fn serde_reason(error: &axum::extract::rejection::JsonDataError) -> String {
    use std::error::Error as _;
    let mut text = error.source().map(ToString::to_string).unwrap_or_default();
    if let Some(at) = text.find(" at line ") {
        text.truncate(at);
    }
    text
}

impl Error {
    /// The message the client is sent: no internals of a server fault.
    pub fn client_message(&self) -> String {
        if self.status().is_server_error()
            && !matches!(
                self,
                Error::Overloaded
                    | Error::Unavailable(_)
                    | Error::MailUnavailable(_)
                    | Error::PasskeysUnavailable(_)
                    | Error::UpstreamUnreachable
                    | Error::UpstreamTimeout
                    | Error::GateLoop
            )
        {
            "Internal server error.".to_owned()
        } else {
            self.to_string()
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Error::Database(e) => tracing::error!(error = ?e, "database error"),
            Error::Internal(e) => tracing::error!(error = ?e, "internal error"),
            _ => {}
        }
        let message = self.client_message();
        let basic_auth = matches!(self, Error::InvalidClient);
        // Not about the bearer token: a client must not refresh and retry (which would count
        // a wrong code twice).
        let factor_problem = matches!(
            self,
            Error::SecondFactorRequired { .. }
                | Error::ChallengeExpired
                | Error::InvalidFactor
                | Error::StepUpRequired
                | Error::PasskeyNotAccepted
        );
        let location = match &self {
            Error::SignInAt { location, .. } => Some(location.clone()),
            _ => None,
        };
        let retry_after = match &self {
            Error::AccountBackoff { retry_after_secs }
            | Error::RateLimited { retry_after_secs } => Some(retry_after_secs.max(&1).to_string()),
            Error::Overloaded => Some("1".to_owned()),
            Error::MailThrottled => Some("60".to_owned()),
            Error::Unavailable(unavailable) => Some(unavailable.retry_after_secs().to_string()),
            _ => None,
        };
        let outage = match &self {
            Error::Unavailable(unavailable) => Some(*unavailable),
            _ => None,
        };
        let mut response = match self {
            Error::SecondFactorRequired { challenge, methods } => (
                status,
                Json(api::wire::MfaChallenge {
                    access_token: None,
                    message,
                    reason: api::wire::reasons::MFA_REQUIRED.to_owned(),
                    mfa_token: challenge,
                    methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                }),
            )
                .into_response(),
            Error::StepUpRequired | Error::EnrolmentRequired => {
                let reason = if matches!(self, Error::StepUpRequired) {
                    api::wire::reasons::STEP_UP_REQUIRED
                } else {
                    api::wire::reasons::MFA_ENROLLMENT_REQUIRED
                };
                (
                    status,
                    Json(api::wire::ReasonBody {
                        message,
                        reason: reason.to_owned(),
                    }),
                )
                    .into_response()
            }
            // The tutorial's clients read `accessToken: null` on a failed signin.
            Error::InvalidCredentials => (
                status,
                Json(api::wire::SigninFailure {
                    access_token: None,
                    message,
                }),
            )
                .into_response(),
            // OAuth's shape (RFC 6749 §5.2), with our `message` too.
            Error::InvalidClient => (
                status,
                Json(serde_json::json!({
                    "error": "invalid_client",
                    "error_description": message,
                    "message": message,
                })),
            )
                .into_response(),
            _ => (status, Json(api::wire::MessageBody { message })).into_response(),
        };
        let headers = response.headers_mut();
        if basic_auth {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\""),
            );
        } else if status == StatusCode::UNAUTHORIZED && !factor_problem {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(location) = location {
            headers.insert(header::LOCATION, location);
        }
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::RETRY_AFTER, value);
        }
        // Outages are logged once each, by the layer that sees this mark (see `app`), not here
        // once per refused request.
        if let Some(unavailable) = outage {
            response.extensions_mut().insert(unavailable);
        }
        response
    }
}
