//! The signed-in user: details, active sessions (with "end session"), change password.

use api::{Email, Password};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{NavigateOptions, hooks::use_navigate};

use super::{recovery::OutcomeLine, two_step::TwoStepCard};
use crate::{
    api::{Proof, use_api},
    components::field::Field,
    session::use_session,
};

#[component]
pub fn ProfilePage() -> impl IntoView {
    let session = use_session();
    let api = use_api();
    let reload = RwSignal::new(0u32);
    let sessions = LocalResource::new({
        move || {
            reload.track();
            async move { api.sessions().await }
        }
    });
    let notice = RwSignal::new(None::<String>);
    let navigate = use_navigate();

    let end = move |id: String, current: bool| {
        let navigate = navigate.clone();
        spawn_local(async move {
            match api.end_session(&id).await {
                Ok(message) => {
                    if current {
                        // Ending this device's session is a logout; leave the page first so
                        // its guard does not ask to come back here.
                        navigate("/login", NavigateOptions::default());
                        api.logout().await;
                    } else {
                        notice.set(Some(message));
                        reload.update(|n| *n += 1);
                    }
                }
                Err(e) => notice.set(Some(e.message)),
            }
        });
    };

    view! {
        <section class="card" id="profile">
            <h1>"Profile"</h1>
            {move || session.user.get().map(|user| view! {
                <dl class="details">
                    <dt>"Username"</dt><dd id="profile-username">{user.username}</dd>
                    <dt>"Email"</dt>
                    <dd id="profile-email">
                        {user.email}
                        {if user.email_verified {
                            view! { <span class="badge" id="email-verified">"verified"</span> }.into_any()
                        } else {
                            view! { <span class="badge warning" id="email-unverified">"not verified"</span> }.into_any()
                        }}
                    </dd>
                    <dt>"Roles"</dt>
                    <dd id="profile-roles">
                        {user.roles.into_iter().map(|r| view! { <span class="badge">{r}</span> }).collect_view()}
                    </dd>
                    <dt>"Member since"</dt><dd>{user.created_at.chars().take(10).collect::<String>()}</dd>
                    <dt>"This session ends"</dt>
                    <dd id="session-expiry">
                        {move || sessions.get().and_then(|r| r.ok()).and_then(|list| {
                            list.into_iter().find(|s| s.current).map(|s| pretty_time(&s.expires_at))
                        })}
                    </dd>
                </dl>
            })}
        </section>
        <section class="card">
            <h2>"Active sessions"</h2>
            <p class="notice" role="status">{move || notice.get()}</p>
            {let end = end.clone(); move || match sessions.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted">"No active sessions."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <ul class="sessions" id="sessions">
                        {list.into_iter().map(|s| {
                            let end = end.clone();
                            let id = s.id.clone();
                            let current = s.current;
                            view! {
                                <li class:current=current>
                                    <div>
                                        <strong>{s.user_agent.clone().map(|ua| short_agent(&ua)).unwrap_or_else(|| "Unknown device".into())}</strong>
                                        {current.then(|| view! { <span class="badge">"This device"</span> })}
                                        <p class="muted">
                                            {format!("{} · last used {} · started {}", s.ip.clone().unwrap_or_default(), pretty_time(&s.last_used_at), pretty_time(&s.created_at))}
                                        </p>
                                    </div>
                                    <button type="button" class="secondary end-session" on:click=move |_| end(id.clone(), current)>
                                        "End session"
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
        <TwoStepCard/>
        <VerifyAddress/>
        <ChangeEmail/>
        <ChangePassword sessions_changed=reload/>
    }
}

/// For an unverified address: the mailed code, or a new one.
#[component]
pub fn VerifyAddress() -> impl IntoView {
    let session = use_session();
    let api = use_api();
    let code = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<(bool, String)>);
    let pending = RwSignal::new(false);
    let unverified = move || {
        session
            .user
            .with(|u| u.as_ref().is_some_and(|u| !u.email_verified))
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api.verify_email(Proof::Code(code.get_untracked())).await {
                Ok(message) => {
                    code.set(String::new());
                    outcome.set(Some((true, message)));
                    if let Ok(profile) = api.me().await {
                        session.user.set(Some(profile));
                    }
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    let resend = move |_| {
        spawn_local(async move {
            let result = api.resend_verification().await;
            outcome.set(Some(match result {
                Ok(message) => (true, message),
                Err(e) => (false, e.message),
            }));
        });
    };
    let no_error = Signal::derive(|| None::<String>);
    view! {
        <Show when=unverified>
            <section class="card" id="verify-address">
                <h2>"Verify your email address"</h2>
                <p class="muted">"Enter the 8-digit code we mailed you, or open the link in that mail."</p>
                <form on:submit=submit novalidate>
                    <Field id="verify-code" label="Code" autocomplete="one-time-code" value=code error=no_error/>
                    <OutcomeLine id="verify-status" outcome=outcome/>
                    <button type="submit" id="verify-submit" disabled=move || pending.get()>"Verify"</button>
                    " "
                    <button type="button" class="secondary" id="verify-resend" on:click=resend>"Send a new code"</button>
                </form>
            </section>
        </Show>
    }
}

/// A new address: asked for with the current password, confirmed by the code sent to it.
#[component]
fn ChangeEmail() -> impl IntoView {
    let session = use_session();
    let api = use_api();
    let new_email = RwSignal::new(String::new());
    let current = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<(bool, String)>);
    let pending = RwSignal::new(false);
    let awaiting_code = RwSignal::new(false);
    let email_error = Signal::derive(move || {
        let value = new_email.get();
        (!value.is_empty())
            .then(|| Email::parse(&value).err().map(|e| e.message))
            .flatten()
    });
    let no_error = Signal::derive(|| None::<String>);
    let ask = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() || Email::parse(&new_email.get_untracked()).is_err() {
            outcome.set(Some((false, "Enter the new address.".into())));
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api
                .change_email(&new_email.get_untracked(), &current.get_untracked())
                .await
            {
                Ok(message) => {
                    current.set(String::new());
                    outcome.set(Some((true, message)));
                    awaiting_code.set(true);
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    let confirm = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api.confirm_email(Proof::Code(code.get_untracked())).await {
                Ok(message) => {
                    code.set(String::new());
                    new_email.set(String::new());
                    awaiting_code.set(false);
                    outcome.set(Some((true, message)));
                    if let Ok(profile) = api.me().await {
                        session.user.set(Some(profile));
                    }
                }
                Err(e) => outcome.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    view! {
        <section class="card" id="change-email">
            <h2>"Change email address"</h2>
            <Show
                when=move || awaiting_code.get()
                fallback=move || view! {
                    <form on:submit=ask novalidate>
                        <Field id="new-email" label="New email address" kind="email" autocomplete="email" value=new_email error=email_error/>
                        <Field id="email-current-password" label="Current password" kind="password" autocomplete="current-password" value=current error=no_error/>
                        <button type="submit" id="change-email-submit" disabled=move || pending.get()>"Send a confirmation"</button>
                    </form>
                }
            >
                <form on:submit=confirm novalidate>
                    <p class="muted">{move || format!("Enter the code we sent to {}.", new_email.get())}</p>
                    <Field id="email-code" label="Code" autocomplete="one-time-code" value=code error=no_error/>
                    <button type="submit" id="email-code-submit" disabled=move || pending.get()>"Confirm new address"</button>
                    " "
                    <button type="button" class="secondary" on:click=move |_| awaiting_code.set(false)>"Start over"</button>
                </form>
            </Show>
            <OutcomeLine id="change-email-status" outcome=outcome/>
        </section>
    }
}

#[component]
fn ChangePassword(sessions_changed: RwSignal<u32>) -> impl IntoView {
    let api = use_api();
    let pending = RwSignal::new(false);
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let message = RwSignal::new(None::<(bool, String)>);
    let new_error = Signal::derive(move || {
        let value = new.get();
        (!value.is_empty())
            .then(|| Password::parse(&value).err().map(|e| e.message))
            .flatten()
    });
    let no_error = Signal::derive(|| None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked()
            || new_error.get_untracked().is_some()
            || new.get_untracked().is_empty()
        {
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api
                .change_password(&current.get_untracked(), &new.get_untracked())
                .await
            {
                Ok(text) => {
                    current.set(String::new());
                    new.set(String::new());
                    message.set(Some((true, text)));
                    // The server ended the other sessions.
                    sessions_changed.update(|n| *n += 1);
                }
                Err(e) => message.set(Some((false, e.message))),
            }
            pending.set(false);
        });
    };
    view! {
        <section class="card">
            <h2>"Change password"</h2>
            <form on:submit=submit novalidate>
                <Field id="current-password" label="Current password" kind="password" autocomplete="current-password" value=current error=no_error/>
                <Field id="new-password" label="New password" kind="password" autocomplete="new-password" value=new error=new_error/>
                <p role="status" id="change-password-status" class=move || if message.get().is_some_and(|(ok, _)| ok) { "success" } else { "error" }>
                    {move || message.get().map(|(_, m)| m)}
                </p>
                <button type="submit" id="change-password" disabled=move || pending.get()>"Change password"</button>
            </form>
        </section>
    }
}

/// "2026-11-22T15:04:07Z" → "2026-11-22 15:04 UTC".
pub fn pretty_time(rfc3339: &str) -> String {
    let (date, time) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    format!("{date} {} UTC", time.get(..5).unwrap_or(""))
}

/// A readable name for a user agent string.
fn short_agent(ua: &str) -> String {
    let browser = ["Firefox", "Edg", "Chrome", "Safari", "curl"]
        .into_iter()
        .find(|b| ua.contains(b))
        .map(|b| if b == "Edg" { "Edge" } else { b });
    let os = ["Android", "iPhone", "Windows", "Mac OS", "Linux"]
        .into_iter()
        .find(|o| ua.contains(o));
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        _ => ua.chars().take(40).collect(),
    }
}
