//! The only module that knows URLs and headers. Every request goes through [`Api::send`],
//! which attaches the access token and, on a 401, refreshes once and retries; requests that
//! hit 401 together wait for that one refresh. If the refresh fails the session is cleared,
//! and the route guards send the user to the login page.

use api::wire::{
    AdminUser, AuditPage, ChangeEmailRequest, ChangePasswordRequest, ConfirmRequest,
    CreateUserRequest, ForgotPasswordRequest, MessageBody, MfaPasskeyRequest, MfaStatus,
    MfaVerifyRequest, PasskeyAssertion, PasskeyBeginRequest, PasskeyCreationOptions,
    PasskeyRegisterRequest, PasskeyRegistered, PasskeyRename, PasskeyRequestOptions, Profile,
    RecoveryCodes, RefreshResponse, ReportRequest, ResetPasswordRequest, SessionInfo,
    SetPasswordRequest, SetRolesRequest, SigninRequest, SigninResponse, SignupRequest,
    StepUpRequest, TotpBeginRequest, TotpConfirmRequest, TotpConfirmed, TotpEnrolment, UserList,
    paths, reasons,
};
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use gloo_net::http::{Method, RequestBuilder, Response};
use leptos::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

use crate::{session::Session, webauthn};

/// A failed call: the HTTP status (0 if the server was unreachable), a message to show, and
/// the server's machine-readable reason, if it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub reason: Option<String>,
}

impl ApiError {
    fn network() -> Self {
        Self {
            status: 0,
            message: "Cannot reach the server. Check your connection and try again.".into(),
            reason: None,
        }
    }
}

/// What a password sign-in came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Done,
    /// A second factor is needed: the challenge token for [`Api::verify_second_factor`], and
    /// the methods the account has (`otp`, `passkey`, `recovery`).
    SecondFactor {
        token: String,
        methods: Vec<String>,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

type Refresh = Shared<LocalBoxFuture<'static, Option<String>>>;

/// The HTTP client, provided as context. A `Copy` handle: the refresh in flight (not `Send`)
/// lives in a `LocalStorage` stored value.
#[derive(Clone, Copy)]
pub struct Api {
    session: Session,
    refreshing: StoredValue<Option<Refresh>, LocalStorage>,
}

pub fn use_api() -> Api {
    expect_context::<Api>()
}

pub fn provide_api(session: Session) {
    provide_context(Api {
        session,
        refreshing: StoredValue::new_local(None),
    });
}

enum Body {
    None,
    Json(serde_json::Value),
}

impl Api {
    async fn send(&self, method: Method, path: &str, body: Body) -> ApiResult<Response> {
        let token = self.session.token.get_untracked();
        let response = raw(method.clone(), path, &body, token.as_deref()).await?;
        // Only a refused token is worth a refresh (the server says so with
        // `WWW-Authenticate`); a wrong code or a step-up request is not, and retrying would
        // count a wrong code twice.
        if response.status() != 401
            || token.is_none()
            || response.headers().get("www-authenticate").is_none()
        {
            return Ok(response);
        }
        // The token was refused: perhaps another request already refreshed it.
        let current = self.session.token.get_untracked();
        let fresh = if current.is_some() && current != token {
            current
        } else {
            self.refresh_once().await
        };
        match fresh {
            Some(fresh) => raw(method, path, &body, Some(&fresh)).await,
            None => Ok(response),
        }
    }

    /// One refresh at a time: concurrent callers share the one in flight. A refresh that
    /// succeeds also reloads the profile, so role changes show at once; one the server refuses
    /// ends the session (unless the user signed in afresh meanwhile); one that merely failed
    /// (network, 429, 5xx) keeps the session for the next try.
    async fn refresh_once(&self) -> Option<String> {
        let session = self.session;
        let refreshing = self.refreshing;
        let pending = refreshing.try_update_value(|slot| {
            if let Some(pending) = slot.as_ref() {
                return pending.clone();
            }
            let pending = async move {
                let started_with = session.token.get_untracked();
                let token = match refresh_token().await {
                    Refreshed::Token(token) => {
                        session.token.set(Some(token.clone()));
                        if let Ok(response) =
                            raw(Method::GET, paths::ME, &Body::None, Some(&token)).await
                            && let Ok(profile) = read::<Profile>(response).await
                        {
                            session.user.set(Some(profile));
                        }
                        Some(token)
                    }
                    Refreshed::Over => {
                        if session.token.get_untracked() == started_with {
                            session.clear();
                        }
                        None
                    }
                    Refreshed::Failed => None,
                };
                // Done: the next 401 may start a new refresh.
                refreshing.set_value(None);
                token
            }
            .boxed_local()
            .shared();
            *slot = Some(pending.clone());
            pending
        });
        pending?.await
    }

    /// Restores the session after a page load, from the refresh cookie.
    pub async fn restore(&self) {
        self.refresh_once().await;
        self.session.ready.set(true);
    }

    pub async fn signin(&self, username: &str, password: &str) -> ApiResult<SignIn> {
        let body = json(&SigninRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        });
        let response = raw(Method::POST, paths::SIGNIN, &body, None).await?;
        if response.status() == 401 {
            let body: serde_json::Value = response.json().await.map_err(|_| ApiError::network())?;
            if body["reason"] == reasons::MFA_REQUIRED
                && let Some(token) = body["mfaToken"].as_str()
            {
                let methods = body["methods"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|m| m.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(SignIn::SecondFactor {
                    token: token.to_owned(),
                    methods,
                });
            }
            return Err(ApiError {
                status: 401,
                message: body["message"]
                    .as_str()
                    .unwrap_or("Sign-in failed.")
                    .to_owned(),
                reason: None,
            });
        }
        let signed_in: SigninResponse = read(response).await?;
        self.signed_in(signed_in.access_token).await?;
        Ok(SignIn::Done)
    }

    /// The sign-in's second step: a code from the app, or a recovery code.
    pub async fn verify_second_factor(&self, mfa_token: &str, factor: Factor) -> ApiResult<()> {
        let (code, recovery_code, passkey) = factor.split();
        let body = json(&MfaVerifyRequest {
            mfa_token: mfa_token.to_owned(),
            code,
            recovery_code,
            passkey,
        });
        let response = raw(Method::POST, paths::MFA_VERIFY, &body, None).await?;
        let signed_in: SigninResponse = read(response).await?;
        self.signed_in(signed_in.access_token).await
    }

    async fn signed_in(&self, access_token: String) -> ApiResult<()> {
        self.session.token.set(Some(access_token));
        let profile = self.me().await?;
        self.session.user.set(Some(profile));
        Ok(())
    }

    /// Proves a factor again (step-up); the new token replaces the old.
    pub async fn step_up(&self, factor: Factor) -> ApiResult<()> {
        let (code, recovery_code, passkey) = factor.split();
        let body = json(&StepUpRequest {
            code,
            recovery_code,
            passkey,
        });
        let response = self.send(Method::POST, paths::MFA_STEP_UP, body).await?;
        let fresh: RefreshResponse = read(response).await?;
        self.session.token.set(Some(fresh.access_token));
        self.session.step_up_needed.set(false);
        Ok(())
    }

    /// A passkey's answer for the second step of the sign-in `mfa_token` began.
    pub async fn passkey_for_sign_in(&self, mfa_token: &str) -> ApiResult<Factor> {
        let body = json(&MfaPasskeyRequest {
            mfa_token: mfa_token.to_owned(),
        });
        let response = raw(Method::POST, paths::MFA_PASSKEY, &body, None).await?;
        Ok(Factor::Passkey(Box::new(
            answer(read(response).await?).await?,
        )))
    }

    /// A passkey's answer for a step-up in this session.
    pub async fn passkey_for_step_up(&self) -> ApiResult<Factor> {
        let response = self
            .send(
                Method::POST,
                paths::MFA_STEP_UP_PASSKEY,
                Body::Json(serde_json::json!({})),
            )
            .await?;
        Ok(Factor::Passkey(Box::new(
            answer(read(response).await?).await?,
        )))
    }

    /// Signs in with a passkey alone: the browser offers the passkeys it has for this site.
    pub async fn passkey_sign_in(&self) -> ApiResult<()> {
        let response = raw(
            Method::POST,
            paths::PASSKEY_SIGNIN_BEGIN,
            &Body::Json(serde_json::json!({})),
            None,
        )
        .await?;
        let body = json(&answer(read(response).await?).await?);
        let response = raw(Method::POST, paths::PASSKEY_SIGNIN, &body, None).await?;
        let signed_in: SigninResponse = read(response).await?;
        self.signed_in(signed_in.access_token).await
    }

    /// Registers a passkey made by this browser; the session's token is replaced. Returns
    /// the recovery codes if it is the account's first factor.
    pub async fn add_passkey(
        &self,
        name: &str,
        current_password: Option<String>,
    ) -> ApiResult<Option<Vec<String>>> {
        let body = json(&PasskeyBeginRequest { current_password });
        let response = self.send(Method::POST, paths::PASSKEYS_BEGIN, body).await?;
        let options: PasskeyCreationOptions = self.note(read(response).await)?;
        let body = json(&PasskeyRegisterRequest {
            credential: webauthn::create(options.options).await?,
            ceremony: options.ceremony,
            name: name.to_owned(),
        });
        let response = self.send(Method::POST, paths::PASSKEYS, body).await?;
        let registered: PasskeyRegistered = read(response).await?;
        self.session.token.set(Some(registered.access_token));
        Ok(registered.recovery_codes)
    }

    pub async fn rename_passkey(&self, id: i64, name: &str) -> ApiResult<String> {
        let body = json(&PasskeyRename {
            name: name.to_owned(),
        });
        self.message(Method::PATCH, &format!("{}/{id}", paths::PASSKEYS), body)
            .await
    }

    pub async fn remove_passkey(&self, id: i64) -> ApiResult<String> {
        self.message(
            Method::DELETE,
            &format!("{}/{id}", paths::PASSKEYS),
            Body::None,
        )
        .await
    }

    pub async fn mfa_status(&self) -> ApiResult<MfaStatus> {
        self.get_json(paths::MFA).await
    }

    pub async fn begin_totp(&self, current_password: &str) -> ApiResult<TotpEnrolment> {
        let body = json(&TotpBeginRequest {
            current_password: Some(current_password.to_owned()),
        });
        let response = self.send(Method::POST, paths::MFA_TOTP, body).await?;
        self.note(read(response).await)
    }

    /// Confirms the app with a first code; the session's token is replaced. Returns the
    /// recovery codes, shown this once.
    pub async fn confirm_totp(&self, code: &str) -> ApiResult<Vec<String>> {
        let body = json(&TotpConfirmRequest {
            code: code.to_owned(),
        });
        let response = self
            .send(Method::POST, paths::MFA_TOTP_CONFIRM, body)
            .await?;
        let confirmed: TotpConfirmed = read(response).await?;
        self.session.token.set(Some(confirmed.access_token));
        Ok(confirmed.recovery_codes)
    }

    pub async fn remove_totp(&self) -> ApiResult<String> {
        self.message(Method::DELETE, paths::MFA_TOTP, Body::None)
            .await
    }

    pub async fn regenerate_recovery_codes(&self) -> ApiResult<Vec<String>> {
        let response = self
            .send(
                Method::POST,
                paths::MFA_RECOVERY_CODES,
                Body::Json(serde_json::json!({})),
            )
            .await?;
        Ok(self
            .note(read::<RecoveryCodes>(response).await)?
            .recovery_codes)
    }

    pub async fn signup(&self, request: &SignupRequest) -> ApiResult<String> {
        let response = raw(Method::POST, paths::SIGNUP, &json(request), None).await?;
        Ok(read::<MessageBody>(response).await?.message)
    }

    /// Ends the session on the server, and locally whatever the server says.
    pub async fn logout(&self) {
        let _ = self.send(Method::POST, paths::LOGOUT, Body::None).await;
        self.session.clear();
    }

    pub async fn me(&self) -> ApiResult<Profile> {
        self.get_json(paths::ME).await
    }

    pub async fn content(&self, path: &str) -> ApiResult<String> {
        let response = self.send(Method::GET, path, Body::None).await?;
        if response.ok() {
            response.text().await.map_err(|_| ApiError::network())
        } else {
            Err(error_of(response).await)
        }
    }

    pub async fn sessions(&self) -> ApiResult<Vec<SessionInfo>> {
        self.get_json(paths::SESSIONS).await
    }

    pub async fn end_session(&self, id: &str) -> ApiResult<String> {
        self.message(
            Method::DELETE,
            &format!("{}/{id}", paths::SESSIONS),
            Body::None,
        )
        .await
    }

    pub async fn change_password(&self, current: &str, new: &str) -> ApiResult<String> {
        let body = json(&ChangePasswordRequest {
            current_password: current.to_owned(),
            new_password: new.to_owned(),
        });
        self.message(Method::PUT, paths::PASSWORD, body).await
    }

    pub async fn users(&self, query: &str, page: u32) -> ApiResult<UserList> {
        let q = String::from(js_sys::encode_uri_component(query));
        self.get_json(&format!(
            "{}?q={q}&page={page}&per_page=10",
            paths::ADMIN_USERS
        ))
        .await
    }

    pub async fn set_roles(&self, id: i64, roles: Vec<String>) -> ApiResult<AdminUser> {
        let body = json(&SetRolesRequest { roles });
        let response = self
            .send(
                Method::PUT,
                &format!("{}/{id}/roles", paths::ADMIN_USERS),
                body,
            )
            .await?;
        self.note(read(response).await)
    }

    pub async fn admin_action(&self, id: i64, action: &str) -> ApiResult<String> {
        let path = format!("{}/{id}/{action}", paths::ADMIN_USERS);
        let method = if action == "sessions" || action == "mfa" {
            Method::DELETE
        } else {
            Method::POST
        };
        self.message(method, &path, Body::None).await
    }

    pub async fn audit(&self, kind: &str, page: u32) -> ApiResult<AuditPage> {
        self.get_json(&format!(
            "{}?kind={kind}&page={page}&per_page=15",
            paths::ADMIN_AUDIT
        ))
        .await
    }

    /// Asks for a reset code by mail; the answer is the same for every address.
    pub async fn forgot_password(&self, email: &str) -> ApiResult<String> {
        let body = json(&ForgotPasswordRequest {
            email: email.to_owned(),
        });
        self.message(Method::POST, paths::PASSWORD_FORGOT, body)
            .await
    }

    pub async fn reset_password(&self, request: &ResetPasswordRequest) -> ApiResult<String> {
        self.message(Method::POST, paths::PASSWORD_RESET, json(request))
            .await
    }

    /// Verifies the address with the link's token, or (signed in) the mailed code.
    pub async fn verify_email(&self, proof: Proof) -> ApiResult<String> {
        self.message(Method::POST, paths::VERIFY_EMAIL, json(&proof.request()))
            .await
    }

    /// Mails the signed-in user a new verification code.
    pub async fn resend_verification(&self) -> ApiResult<String> {
        self.message(
            Method::POST,
            paths::VERIFY_EMAIL_RESEND,
            Body::Json(serde_json::json!({})),
        )
        .await
    }

    pub async fn change_email(&self, new_email: &str, current_password: &str) -> ApiResult<String> {
        let body = json(&ChangeEmailRequest {
            new_email: new_email.to_owned(),
            current_password: current_password.to_owned(),
        });
        self.message(Method::POST, paths::EMAIL, body).await
    }

    /// Confirms a new address with the link's token, or (signed in) the mailed code.
    pub async fn confirm_email(&self, proof: Proof) -> ApiResult<String> {
        self.message(Method::POST, paths::EMAIL_CONFIRM, json(&proof.request()))
            .await
    }

    pub async fn report_email_change(&self, token: &str) -> ApiResult<String> {
        let body = json(&ReportRequest {
            token: token.to_owned(),
        });
        self.message(Method::POST, paths::EMAIL_REPORT, body).await
    }

    pub async fn create_user(&self, request: &CreateUserRequest) -> ApiResult<AdminUser> {
        let response = self
            .send(Method::POST, paths::ADMIN_USERS, json(request))
            .await?;
        self.note(read(response).await)
    }

    pub async fn set_user_password(&self, id: i64, password: &str) -> ApiResult<String> {
        let body = json(&SetPasswordRequest {
            password: password.to_owned(),
        });
        self.message(
            Method::PUT,
            &format!("{}/{id}/password", paths::ADMIN_USERS),
            body,
        )
        .await
    }

    pub async fn user_sessions(&self, id: i64) -> ApiResult<Vec<SessionInfo>> {
        self.get_json(&format!("{}/{id}/sessions", paths::ADMIN_USERS))
            .await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> ApiResult<T> {
        read(self.send(Method::GET, path, Body::None).await?).await
    }

    async fn message(&self, method: Method, path: &str, body: Body) -> ApiResult<String> {
        let response = self.send(method, path, body).await?;
        let read = read::<MessageBody>(response).await;
        self.note(read).map(|b| b.message)
    }

    /// Notes a refusal that asks for step-up, so the shell can ask for a factor.
    fn note<T>(&self, result: ApiResult<T>) -> ApiResult<T> {
        if let Err(e) = &result
            && e.reason.as_deref() == Some(reasons::STEP_UP_REQUIRED)
        {
            self.session.step_up_needed.set(true);
        }
        result
    }
}

/// The browser's passkey answer to the server's options.
async fn answer(options: PasskeyRequestOptions) -> ApiResult<PasskeyAssertion> {
    Ok(PasskeyAssertion {
        credential: webauthn::get(options.options).await?,
        ceremony: options.ceremony,
    })
}

/// A second factor: typed, or a passkey's answer.
#[derive(Debug, Clone)]
pub enum Factor {
    Code(String),
    Recovery(String),
    Passkey(Box<PasskeyAssertion>),
}

impl Factor {
    fn split(self) -> (Option<String>, Option<String>, Option<PasskeyAssertion>) {
        match self {
            Factor::Code(code) => (Some(code), None, None),
            Factor::Recovery(code) => (None, Some(code), None),
            Factor::Passkey(answer) => (None, None, Some(*answer)),
        }
    }
}

/// What proves a mailed confirmation: the link's token or the typed code.
#[derive(Debug, Clone)]
pub enum Proof {
    Token(String),
    Code(String),
}

impl Proof {
    fn request(self) -> ConfirmRequest {
        match self {
            Proof::Token(token) => ConfirmRequest {
                token: Some(token),
                ..ConfirmRequest::default()
            },
            Proof::Code(code) => ConfirmRequest {
                code: Some(code),
                ..ConfirmRequest::default()
            },
        }
    }
}

fn json<T: Serialize>(value: &T) -> Body {
    Body::Json(serde_json::to_value(value).unwrap_or_default())
}

async fn raw(method: Method, path: &str, body: &Body, token: Option<&str>) -> ApiResult<Response> {
    let mut request = RequestBuilder::new(path).method(method);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let request = match body {
        Body::None => request.build(),
        Body::Json(value) => request.json(value),
    };
    request
        .map_err(|_| ApiError::network())?
        .send()
        .await
        .map_err(|_| ApiError::network())
}

/// What a refresh came to.
enum Refreshed {
    Token(String),
    /// The server refused: the session is over.
    Over,
    /// No answer, or not a verdict on the session (429, 5xx).
    Failed,
}

async fn refresh_token() -> Refreshed {
    let Ok(response) = raw(Method::POST, paths::REFRESH, &Body::None, None).await else {
        return Refreshed::Failed;
    };
    match response.status() {
        200 => match response.json::<RefreshResponse>().await {
            Ok(body) => Refreshed::Token(body.access_token),
            Err(_) => Refreshed::Failed,
        },
        401 | 403 => Refreshed::Over,
        _ => Refreshed::Failed,
    }
}

async fn read<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    if response.ok() {
        response.json().await.map_err(|_| ApiError::network())
    } else {
        Err(error_of(response).await)
    }
}

async fn error_of(response: Response) -> ApiError {
    let status = response.status();
    let body = response.json::<serde_json::Value>().await.ok();
    let message = body
        .as_ref()
        .and_then(|b| b["message"].as_str())
        .map_or_else(|| format!("The server answered {status}."), str::to_owned);
    let reason = body
        .as_ref()
        .and_then(|b| b["reason"].as_str())
        .map(str::to_owned);
    ApiError {
        status,
        message,
        reason,
    }
}
