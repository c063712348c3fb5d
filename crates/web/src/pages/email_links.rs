//! The pages that mailed links open: verify an address, confirm a new one, report a change.
//! Opening one uses nothing up: the token is sent only when the user presses the button.

use leptos::{prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_query_map};

use super::{profile::VerifyAddress, recovery::OutcomeLine};
use crate::{
    api::{Api, ApiResult, Proof, use_api},
    session::use_session,
};

/// What a link page does with its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkAction {
    Verify,
    ConfirmNewEmail,
    Report,
}

impl LinkAction {
    async fn run(self, api: Api, token: String) -> ApiResult<String> {
        match self {
            LinkAction::Verify => api.verify_email(Proof::Token(token)).await,
            LinkAction::ConfirmNewEmail => api.confirm_email(Proof::Token(token)).await,
            LinkAction::Report => api.report_email_change(&token).await,
        }
    }
}

#[component]
pub fn VerifyEmail() -> impl IntoView {
    let session = use_session();
    let has_token = use_query_map()
        .get_untracked()
        .get("token")
        .is_some_and(|t| !t.is_empty());
    if !has_token {
        // Opened by hand: the code from the mail, or a new mail, for the signed-in user.
        return view! {
            <Show
                when=move || session.signed_in()
                fallback=|| view! {
                    <section class="card narrow" id="link-page">
                        <h1>"Confirm your email address"</h1>
                        <p>"Open the link from the mail, or "<A href="/login">"log in"</A>" to enter its code or ask for a new one."</p>
                    </section>
                }
            >
                <Show
                    when=move || session.user.with(|u| u.as_ref().is_some_and(|u| u.email_verified))
                    fallback=|| view! { <VerifyAddress/> }
                >
                    <section class="card narrow"><p class="success">"Your email address is verified."</p></section>
                </Show>
            </Show>
        }
        .into_any();
    }
    view! {
        <LinkPage
            action=LinkAction::Verify
            title="Confirm your email address"
            intro="Press the button to confirm that this address is yours."
            button="Confirm"
        />
    }
    .into_any()
}

#[component]
pub fn ConfirmEmail() -> impl IntoView {
    view! {
        <LinkPage
            action=LinkAction::ConfirmNewEmail
            title="Confirm your new email address"
            intro="Press the button to make this address the one of your account."
            button="Confirm"
        />
    }
}

#[component]
pub fn ReportEmailChange() -> impl IntoView {
    view! {
        <LinkPage
            action=LinkAction::Report
            title="Report an email change"
            intro="If you did not change the address of your account, report it: this address comes back, every session ends and the password stops working. Then choose a new password with \u{201c}Forgot password?\u{201d}."
            button="Report: it was not me"
        />
    }
}

#[component]
fn LinkPage(
    action: LinkAction,
    title: &'static str,
    intro: &'static str,
    button: &'static str,
) -> impl IntoView {
    let api = use_api();
    let session = use_session();
    let token = use_query_map()
        .get_untracked()
        .get("token")
        .filter(|t| !t.is_empty());
    let outcome = RwSignal::new(None::<(bool, String)>);
    let pending = RwSignal::new(false);
    let done = RwSignal::new(false);
    let press = {
        let token = token.clone();
        move |_| {
            let Some(token) = token.clone() else { return };
            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            spawn_local(async move {
                match action.run(api, token).await {
                    Ok(message) => {
                        outcome.set(Some((true, message)));
                        done.set(true);
                        if action == LinkAction::Report {
                            session.clear();
                        } else if let Ok(profile) = api.me().await {
                            session.user.set(Some(profile));
                        }
                    }
                    Err(e) => outcome.set(Some((false, e.message))),
                }
                pending.set(false);
            });
        }
    };
    let has_token = token.is_some();
    view! {
        <section class="card narrow" id="link-page">
            <h1>{title}</h1>
            {if has_token {
                view! {
                    <Show when=move || !done.get()>
                        <p>{intro}</p>
                        <button type="button" id="link-confirm" class:danger=action == LinkAction::Report
                            disabled=move || pending.get() on:click=press.clone()>
                            {button}
                        </button>
                    </Show>
                }.into_any()
            } else {
                view! {
                    <p class="error">"This page is opened by the link in the mail; this address has no token. Open the link from the mail again, or enter its code on your profile."</p>
                }.into_any()
            }}
            <OutcomeLine id="link-status" outcome=outcome/>
            <Show when=move || done.get()>
                <p>
                    {if action == LinkAction::Report {
                        view! { <A href="/forgot-password" attr:class="button">"Choose a new password"</A> }.into_any()
                    } else {
                        view! { <A href="/profile" attr:class="button">"Go to your profile"</A> }.into_any()
                    }}
                </p>
            </Show>
        </section>
    }
}
