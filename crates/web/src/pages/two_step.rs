//! Two-step sign-in on the profile: set up an authenticator app (QR code drawn here), add,
//! name and remove passkeys, see and renew the recovery codes.

use api::wire::{PasskeyInfo, TotpEnrolment};
use leptos::{prelude::*, task::spawn_local};

use super::{profile::pretty_time, recovery::OutcomeLine};
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

    // Passkeys: a name for the new one, and the password unless the user must enrol.
    let passkey_name = RwSignal::new(String::new());
    let passkey_password = RwSignal::new(String::new());
    let add_passkey = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let name = passkey_name.get_untracked();
        if name.trim().is_empty() {
            outcome.set(Some((
                false,
                "Give the passkey a name, e.g. the device it is on.".into(),
            )));
            return;
        }
        let password = Some(passkey_password.get_untracked()).filter(|p| !p.is_empty());
        pending.set(true);
        spawn_local(async move {
            match api.add_passkey(&name, password).await {
                Ok(first_codes) => {
                    passkey_name.set(String::new());
                    passkey_password.set(String::new());
                    if first_codes.is_some() {
                        codes.set(first_codes);
                    }
                    outcome.set(Some((true, format!("Passkey “{}” added.", name.trim()))));
                    reload.update(|n| *n += 1);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    let rename = move |id: i64, name: String| {
        spawn_local(async move {
            match api.rename_passkey(id, &name).await {
                Ok(message) => {
                    outcome.set(Some((true, message)));
                    reload.update(|n| *n += 1);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
        });
    };
    let remove_passkey = move |id: i64| {
        spawn_local(async move {
            match api.remove_passkey(id).await {
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
                Ok(status) => {
                let has_factor = status.totp || !status.passkeys.is_empty();
                let must_enrol = status.required && !has_factor;
                view! {
                    {must_enrol.then(|| view! {
                        <p class="error" id="mfa-required">"Your role requires two-step sign-in: set up an authenticator app or a passkey to continue."</p>
                    })}
                    {has_factor.then(|| view! {
                        <p class="muted" id="codes-left">{format!("Recovery codes left: {}", status.recovery_codes_left)}</p>
                        <button type="button" class="secondary" id="mfa-regenerate" on:click=regenerate>"New recovery codes"</button>
                    })}
                    <h3>"Authenticator app"</h3>
                    {if status.totp {
                        view! {
                            <p><span class="badge" id="mfa-on">"on"</span>" An authenticator app guards your sign-in."</p>
                            {(!status.required || !status.passkeys.is_empty()).then(|| view! {
                                <button type="button" class="secondary" id="mfa-remove" on:click=remove>"Remove the authenticator app"</button>
                            })}
                        }.into_any()
                    } else {
                        view! {
                            <p class="muted">"Protect your account with a code from an authenticator app, asked for after your password."</p>
                            <Show when=move || enrolling.with(Option::is_none)>
                                <form on:submit=begin novalidate>
                                    {(!must_enrol).then(|| view! {
                                        <Field id="mfa-password" label="Current password" kind="password" autocomplete="current-password" value=password error=no_error/>
                                    })}
                                    <button type="submit" id="mfa-begin">"Set up an authenticator app"</button>
                                </form>
                            </Show>
                        }.into_any()
                    }}
                    <h3>"Passkeys"</h3>
                    <p class="muted">"A passkey (on this device, your phone, or a security key) signs you in with no password, or serves as the second step after it."</p>
                    <ul class="passkeys" id="passkeys">
                        {
                            let last_required = status.required && !status.totp && status.passkeys.len() == 1;
                            status.passkeys.into_iter().map(|p| view! {
                                <PasskeyRow passkey=p removable=!last_required on_rename=rename on_remove=remove_passkey/>
                            }).collect_view()
                        }
                    </ul>
                    <form on:submit=add_passkey novalidate id="passkey-add">
                        <Field id="passkey-name" label="Name for a new passkey" autocomplete="off" value=passkey_name error=no_error/>
                        {(!must_enrol).then(|| view! {
                            <Field id="passkey-password" label="Current password" kind="password" autocomplete="current-password" value=passkey_password error=no_error/>
                        })}
                        <button type="submit" id="passkey-add-submit" disabled=move || pending.get()>"Add a passkey"</button>
                    </form>
                }.into_any()
                }
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
                    <p><strong>"Your recovery codes."</strong>" Keep them somewhere safe: each signs you in once if you lose your phone or passkey. They are shown only now."</p>
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

/// When a passkey was made or used (unix seconds), as the sessions list shows times.
fn when(unix: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let millis = (unix as f64) * 1000.0;
    let iso = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(millis)).to_iso_string();
    pretty_time(&String::from(iso))
}

/// One passkey: its name (editable), when it was added and last used, and removal.
#[component]
fn PasskeyRow(
    passkey: PasskeyInfo,
    removable: bool,
    on_rename: impl Fn(i64, String) + Copy + Send + Sync + 'static,
    on_remove: impl Fn(i64) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = passkey.id;
    let name = RwSignal::new(passkey.name.clone());
    let editing = RwSignal::new(false);
    let used = passkey.last_used_at.map_or_else(
        || "never used".to_owned(),
        |at| format!("last used {}", when(at)),
    );
    let detail = format!("added {} · {used}", when(passkey.created_at));
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        editing.set(false);
        on_rename(id, name.get_untracked());
    };
    view! {
        <li class="passkey" data-id=id>
            <Show
                when=move || editing.get()
                fallback=move || view! {
                    <strong class="passkey-name">{move || name.get()}</strong>
                    " "
                    <button type="button" class="small link passkey-rename" on:click=move |_| editing.set(true)>"Rename"</button>
                }
            >
                <form class="inline" on:submit=save>
                    <input class="passkey-name-input" aria-label="Passkey name" maxlength="64"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))/>
                    <button type="submit" class="small">"Save"</button>
                </form>
            </Show>
            <span class="muted">" "{detail.clone()}</span>
            {removable.then(|| view! {
                " "
                <button type="button" class="small secondary passkey-remove" on:click=move |_| on_remove(id)>"Remove"</button>
            })}
        </li>
    }
}
