//! A forgotten password: ask for a code by mail, then set a new password with the code (and
//! the address) or with the mailed link's token. Opening the link only shows the form: a mail
//! scanner that follows it uses nothing up.

use api::{
    Email, Password,
    wire::{ResetPasswordRequest, paths},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_query_map};

use crate::{api::use_api, components::field::Field};

/// An outcome to show: success or failure, and what the server said.
type Outcome = RwSignal<Option<(bool, String)>>;

/// A status line for an [`Outcome`].
#[component]
pub fn OutcomeLine(id: &'static str, outcome: Outcome) -> impl IntoView {
    view! {
        <p id=id role="status" aria-live="polite"
            class=move || match outcome.get() { Some((true, _)) => "success", Some((false, _)) => "error", None => "" }>
            {move || outcome.get().map(|(_, m)| m)}
        </p>
    }
}

/// The live verdict of a parser, once something was typed.
fn check(value: RwSignal<String>, parse: fn(&str) -> Option<String>) -> Signal<Option<String>> {
    Signal::derive(move || {
        let text = value.get();
        (!text.is_empty()).then(|| parse(&text)).flatten()
    })
}

fn email_problem(raw: &str) -> Option<String> {
    Email::parse(raw).err().map(|e| e.message)
}

fn password_problem(raw: &str) -> Option<String> {
    Password::parse(raw).err().map(|e| e.message)
}

fn code_problem(raw: &str) -> Option<String> {
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    let others = raw
        .chars()
        .any(|c| !c.is_ascii_digit() && !c.is_whitespace() && c != '-');
    (digits != 8 || others).then(|| "The code is the 8 digits from the mail.".to_owned())
}

#[component]
pub fn ForgotPassword() -> impl IntoView {
    let api = use_api();
    let email = RwSignal::new(String::new());
    let email_error = check(email, email_problem);
    let outcome: Outcome = RwSignal::new(None);
    let pending = RwSignal::new(false);
    let sent = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() || email_problem(&email.get_untracked()).is_some() {
            outcome.set(Some((
                false,
                "Enter the email address of your account.".into(),
            )));
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api.forgot_password(&email.get_untracked()).await {
                Ok(message) => {
                    outcome.set(Some((true, message)));
                    sent.set(true);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    let reset_link = move || {
        let address = String::from(js_sys::encode_uri_component(&email.get()));
        format!("{}?email={address}", paths::PAGE_RESET_PASSWORD)
    };
    view! {
        <section class="card narrow" id="forgot-password">
            <h1>"Forgot your password?"</h1>
            <p class="muted">"Enter the email address of your account: we will mail you a code and a link to choose a new password."</p>
            <form on:submit=submit novalidate>
                <Field id="forgot-email" label="Email" kind="email" autocomplete="email" value=email error=email_error/>
                <OutcomeLine id="forgot-status" outcome=outcome/>
                <button type="submit" id="forgot-submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Sending…" } else { "Send me a code" }}
                </button>
            </form>
            <Show when=move || sent.get()>
                <p><A href=reset_link attr:id="enter-code">"I have the code"</A></p>
            </Show>
            <p class="muted"><A href="/login">"Back to log in"</A></p>
        </section>
    }
}

#[component]
pub fn ResetPassword() -> impl IntoView {
    let api = use_api();
    let query = use_query_map();
    let token = query.get_untracked().get("token").filter(|t| !t.is_empty());
    let by_link = token.is_some();
    let email = RwSignal::new(query.get_untracked().get("email").unwrap_or_default());
    let code = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let email_error = check(email, email_problem);
    let code_error = check(code, code_problem);
    let password_error = check(password, password_problem);
    let repeat_error = Signal::derive(move || {
        let again = repeat.get();
        (!again.is_empty() && again != password.get())
            .then(|| "The two passwords differ.".to_owned())
    });
    let outcome: Outcome = RwSignal::new(None);
    let pending = RwSignal::new(false);
    let done = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let new_password = password.get_untracked();
        let problem = password_problem(&new_password)
            .or_else(|| {
                (repeat.get_untracked() != new_password)
                    .then(|| "The two passwords differ.".to_owned())
            })
            .or_else(|| {
                if by_link {
                    None
                } else {
                    email_problem(&email.get_untracked())
                }
            })
            .or_else(|| {
                if by_link {
                    None
                } else {
                    code_problem(&code.get_untracked())
                }
            });
        if let Some(problem) = problem {
            outcome.set(Some((false, problem)));
            return;
        }
        if pending.get_untracked() {
            return;
        }
        let request = match &token {
            Some(token) => ResetPasswordRequest {
                token: Some(token.clone()),
                new_password,
                ..Default::default()
            },
            None => ResetPasswordRequest {
                email: Some(email.get_untracked()),
                code: Some(code.get_untracked()),
                new_password,
                ..Default::default()
            },
        };
        pending.set(true);
        spawn_local(async move {
            match api.reset_password(&request).await {
                Ok(message) => {
                    outcome.set(Some((true, message)));
                    done.set(true);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    view! {
        <section class="card narrow" id="reset-password">
            <h1>"Choose a new password"</h1>
            <Show
                when=move || !done.get()
                fallback=move || view! {
                    <OutcomeLine id="reset-status" outcome=outcome/>
                    <p><A href="/login" attr:class="button" attr:id="reset-login">"Log in"</A></p>
                }
            >
                <form on:submit=submit.clone() novalidate>
                    {(!by_link).then(|| view! {
                        <p class="muted">"Enter your address and the 8-digit code from the mail."</p>
                        <Field id="reset-email" label="Email" kind="email" autocomplete="email" value=email error=email_error/>
                        <Field id="reset-code" label="Code" autocomplete="one-time-code" value=code error=code_error/>
                    })}
                    <Field id="reset-new-password" label="New password" kind="password" autocomplete="new-password" value=password error=password_error/>
                    <Field id="reset-repeat" label="Repeat the new password" kind="password" autocomplete="new-password" value=repeat error=repeat_error/>
                    <p class="hint">"Resetting your password signs you out everywhere."</p>
                    <OutcomeLine id="reset-status" outcome=outcome/>
                    <button type="submit" id="reset-submit" disabled=move || pending.get()>
                        {move || if pending.get() { "Saving…" } else { "Set new password" }}
                    </button>
                </form>
            </Show>
            <p class="muted"><A href="/forgot-password">"Ask for a new code"</A></p>
        </section>
    }
}
