use leptos::{prelude::*, task::spawn_local, wasm_bindgen::JsCast};
use leptos_router::{
    NavigateOptions,
    components::A,
    hooks::{use_navigate, use_query_map},
};

use crate::{
    api::{Factor, SignIn, use_api},
    components::field::Field,
    session::use_session,
};

/// Where to go after signing in: the page first asked for, if it is on this site (anything the
/// URL parser resolves to another origin, such as `/\\evil.example`, is ignored).
fn safe_redirect(raw: Option<String>) -> String {
    let fallback = "/profile".to_owned();
    let (Some(raw), Some(origin)) = (
        raw,
        web_sys::window().and_then(|w| w.location().origin().ok()),
    ) else {
        return fallback;
    };
    match web_sys::Url::new_with_base(&raw, &origin) {
        Ok(url) if raw.starts_with('/') && url.origin() == origin => {
            format!("{}{}{}", url.pathname(), url.search(), url.hash())
        }
        _ => fallback,
    }
}

/// Set for a minute when the login page sends a signed-in visitor straight back.
const RETURNED_COOKIE: &str = "tollgate_returned";

#[component]
pub fn Login() -> impl IntoView {
    let api = use_api();
    let navigate = use_navigate();
    let query = use_query_map();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let no_error = Signal::derive(|| None::<String>);

    // Sent here from a protected page (forward-auth, the gate) while the session is still
    // alive: once the session is restored from its refresh cookie (which also renews the access
    // cookie), straight back to the page, without asking for the password again. At most once
    // a minute (a marker cookie, scoped to this page, holding no secret), so that a page that
    // keeps sending us back (an access cookie the browser refuses to store, say) cannot make a
    // loop: the form shows instead.
    let session = use_session();
    let submitted = RwSignal::new(false);
    Effect::new(move |_| {
        if session.ready.get()
            && session.signed_in()
            && !submitted.get_untracked()
            && let Some(asked) = query.get_untracked().get("redirect")
            && let Some(window) = web_sys::window()
            && let Some(document) = window
                .document()
                .and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok())
        {
            let returned = document
                .cookie()
                .is_ok_and(|cookies| cookies.contains(RETURNED_COOKIE));
            if !returned {
                let _ = document.set_cookie(&format!(
                    "{RETURNED_COOKIE}=1; Max-Age=60; Path=/login; SameSite=Strict"
                ));
                let _ = window.location().replace(&safe_redirect(Some(asked)));
            }
        }
    });

    // The second step, when the account has a second factor: the challenge token.
    let mfa_token = RwSignal::new(None::<String>);
    let methods = RwSignal::new(Vec::<String>::new());
    let code = RwSignal::new(String::new());
    let use_recovery = RwSignal::new(false);

    // Where to go once signed in: a page asked for by name may be the protected site's rather
    // than this app's (behind forward-auth or the gate): it is loaded in full. Otherwise, the
    // profile, in-app.
    let finish = move || {
        let asked = query.get_untracked().get("redirect");
        let full_load = asked.is_some();
        let target = safe_redirect(asked);
        if full_load
            && let Some(window) = web_sys::window()
            && window.location().replace(&target).is_ok()
        {
            return;
        }
        navigate(
            &target,
            NavigateOptions {
                replace: true,
                ..Default::default()
            },
        );
    };

    let submit = {
        let finish = finish.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if username.get_untracked().trim().is_empty() || password.get_untracked().is_empty() {
                error.set(Some(
                    "Enter your username or email, and your password.".into(),
                ));
                return;
            }
            let finish = finish.clone();
            submitted.set(true);
            pending.set(true);
            spawn_local(async move {
                match api
                    .signin(&username.get_untracked(), &password.get_untracked())
                    .await
                {
                    Ok(SignIn::Done) => {
                        error.set(None);
                        finish();
                    }
                    Ok(SignIn::SecondFactor {
                        token,
                        methods: offered,
                    }) => {
                        error.set(None);
                        password.set(String::new());
                        // Without an app, a recovery code is what can be typed.
                        use_recovery.set(!offered.iter().any(|m| m == "otp"));
                        methods.set(offered);
                        mfa_token.set(Some(token));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                pending.set(false);
            });
        }
    };

    // The second step, with what the user typed or their passkey's answer.
    let second_step = {
        let finish = finish.clone();
        move |token: String, factor: Option<Factor>| {
            let finish = finish.clone();
            pending.set(true);
            spawn_local(async move {
                let factor = match factor {
                    Some(factor) => Ok(factor),
                    None => api.passkey_for_sign_in(&token).await,
                };
                let verified = match factor {
                    Ok(factor) => api.verify_second_factor(&token, factor).await,
                    Err(e) => Err(e),
                };
                match verified {
                    Ok(()) => {
                        error.set(None);
                        finish();
                    }
                    // The challenge is over (expired, or too many wrong codes): start again.
                    Err(e) if e.message.contains("sign in again") => {
                        mfa_token.set(None);
                        error.set(Some(e.message));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                code.set(String::new());
                pending.set(false);
            });
        }
    };
    let use_passkey = {
        let second_step = second_step.clone();
        move |_| {
            if let Some(token) = mfa_token.get_untracked() {
                second_step(token, None);
            }
        }
    };
    let submit_factor = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(token) = mfa_token.get_untracked() else {
            return;
        };
        let typed = code.get_untracked();
        if typed.trim().is_empty() {
            error.set(Some("Enter the code.".into()));
            return;
        }
        let factor = if use_recovery.get_untracked() {
            Factor::Recovery(typed)
        } else {
            Factor::Code(typed)
        };
        second_step(token, Some(factor));
    };
    let passkey_sign_in = {
        let finish = finish.clone();
        move |_| {
            let finish = finish.clone();
            submitted.set(true);
            pending.set(true);
            spawn_local(async move {
                match api.passkey_sign_in().await {
                    Ok(()) => {
                        error.set(None);
                        finish();
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                pending.set(false);
            });
        }
    };

    view! {
        <section class="card narrow">
            <h1>"Log in"</h1>
            <Show
                when=move || mfa_token.with(Option::is_some)
                fallback=move || view! {
                    <form on:submit=submit.clone() novalidate>
                        <Field id="username" label="Username or email" autocomplete="username" value=username error=no_error/>
                        <Field id="password" label="Password" kind="password" autocomplete="current-password" value=password error=no_error/>
                        <p class="error form-error" id="login-error" role="alert">{move || error.get()}</p>
                        <button type="submit" id="login-submit" disabled=move || pending.get()>
                            {move || if pending.get() { "Signing in…" } else { "Log in" }}
                        </button>
                    </form>
                    <p class="or">"or"</p>
                    <button type="button" class="secondary wide" id="passkey-signin" on:click=passkey_sign_in.clone() disabled=move || pending.get()>
                        "Sign in with a passkey"
                    </button>
                    <p class="muted"><A href="/forgot-password" attr:id="forgot-link">"Forgot password?"</A></p>
                    <p class="muted">"No account yet? " <A href="/register">"Sign up"</A></p>
                }
            >
                <form on:submit=submit_factor.clone() novalidate id="second-step">
                    {
                        let use_passkey = use_passkey.clone();
                        move || {
                            let use_passkey = use_passkey.clone();
                            methods.with(|m| m.iter().any(|m| m == "passkey")).then(move || view! {
                                <p>"Use your passkey or security key:"</p>
                                <button type="button" id="factor-passkey" on:click=use_passkey disabled=move || pending.get()>"Use a passkey"</button>
                                <p class="muted">"Or type a code:"</p>
                            })
                        }
                    }
                    <p>{move || if use_recovery.get() {
                        "Enter one of your recovery codes."
                    } else {
                        "Enter the 6-digit code from your authenticator app."
                    }}</p>
                    <Field id="factor-code" label="Code" autocomplete="one-time-code" value=code error=no_error/>
                    <p class="error form-error" id="factor-error" role="alert">{move || error.get()}</p>
                    <button type="submit" id="factor-submit" disabled=move || pending.get()>"Verify"</button>
                    {move || methods.with(|m| m.iter().any(|m| m == "otp")).then(|| view! {
                        " "
                        <button type="button" class="secondary" id="use-recovery" on:click=move |_| use_recovery.update(|r| *r = !*r)>
                            {move || if use_recovery.get() { "Use the app instead" } else { "Use a recovery code" }}
                        </button>
                    })}
                </form>
            </Show>
        </section>
    }
}
