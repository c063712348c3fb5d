//! Two-step sign-in on the profile: set up an authenticator app (QR code drawn here), see and
//! renew the recovery codes, remove the app.

use api::wire::TotpEnrolment;
use leptos::{prelude::*, task::spawn_local};

use super::recovery::OutcomeLine;
use crate::{
    api::use_api,
    components::{field::Field, qr::Qr},
};

#[component]
pub fn TwoStepCard() -> impl IntoView {
    let api = use_api();
    let reload = RwSignal::new(0u32);
    let status = LocalResource::new(move || {
        reload.track();
        async move { api.mfa_status().await }
    });
    let enrolling = RwSignal::new(None::<TotpEnrolment>);
    let codes = RwSignal::new(None::<Vec<String>>);
    let code = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<(bool, String)>);
    let pending = RwSignal::new(false);
    let no_error = Signal::derive(|| None::<String>);

    let password = RwSignal::new(String::new());
    let begin = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match api.begin_totp(&password.get_untracked()).await {
                Ok(enrolment) => {
                    outcome.set(None);
                    password.set(String::new());
                    enrolling.set(Some(enrolment));
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
        });
    };
    let confirm = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api.confirm_totp(&code.get_untracked()).await {
                Ok(list) => {
                    enrolling.set(None);
                    codes.set(Some(list));
                    outcome.set(Some((true, "Two-step sign-in is on.".into())));
                    reload.update(|n| *n += 1);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            code.set(String::new());
            pending.set(false);
        });
    };
    let regenerate = move |_| {
        spawn_local(async move {
            match api.regenerate_recovery_codes().await {
                Ok(list) => {
                    codes.set(Some(list));
                    outcome.set(Some((
                        true,
                        "New recovery codes: the old ones no longer work.".into(),
                    )));
                    reload.update(|n| *n += 1);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
        });
    };
    let remove = move |_| {
        spawn_local(async move {
            match api.remove_totp().await {
                Ok(message) => {
                    outcome.set(Some((true, message)));
                    reload.update(|n| *n += 1);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
        });
    };

    view! {
        <section class="card" id="two-step">
            <h2>"Two-step sign-in"</h2>
            {move || status.get().map(|result| match result {
                Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                Ok(status) => view! {
                    {(status.required && !status.totp).then(|| view! {
                        <p class="error" id="mfa-required">"Your role requires two-step sign-in: set it up to continue."</p>
                    })}
                    {if status.totp {
                        view! {
                            <p><span class="badge" id="mfa-on">"on"</span>" An authenticator app guards your sign-in."</p>
                            <p class="muted" id="codes-left">{format!("Recovery codes left: {}", status.recovery_codes_left)}</p>
                            <button type="button" class="secondary" id="mfa-regenerate" on:click=regenerate>"New recovery codes"</button>
                            " "
                            {(!status.required).then(|| view! {
                                <button type="button" class="secondary" id="mfa-remove" on:click=remove>"Remove the authenticator app"</button>
                            })}
                        }.into_any()
                    } else {
                        view! {
                            <p class="muted">"Protect your account with a code from an authenticator app, asked for after your password."</p>
                            <Show when=move || enrolling.with(Option::is_none)>
                                <form on:submit=begin novalidate>
                                    {(!status.required).then(|| view! {
                                        <Field id="mfa-password" label="Current password" kind="password" autocomplete="current-password" value=password error=no_error/>
                                    })}
                                    <button type="submit" id="mfa-begin">"Set up an authenticator app"</button>
                                </form>
                            </Show>
                        }.into_any()
                    }}
                }.into_any(),
            })}
            {move || enrolling.get().map(|enrolment| view! {
                <div id="mfa-enrol">
                    <p>"Scan this code with your authenticator app, or type the key in by hand."</p>
                    <Qr data=enrolment.uri.clone()/>
                    <p>"Key: "<code id="mfa-secret">{enrolment.secret.clone()}</code></p>
                    <form on:submit=confirm novalidate>
                        <Field id="mfa-code" label="The code the app shows" autocomplete="one-time-code" value=code error=no_error/>
                        <button type="submit" id="mfa-confirm" disabled=move || pending.get()>"Turn on"</button>
                    </form>
                </div>
            })}
            {move || codes.get().map(|list| view! {
                <div id="recovery-codes-box">
                    <p><strong>"Your recovery codes."</strong>" Keep them somewhere safe: each signs you in once if you lose your phone. They are shown only now."</p>
                    <ul class="recovery-codes" id="recovery-codes">
                        {list.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
                    </ul>
                    <button type="button" id="codes-saved" on:click=move |_| codes.set(None)>"I have saved them"</button>
                </div>
            })}
            <OutcomeLine id="two-step-status" outcome=outcome/>
        </section>
    }
}
