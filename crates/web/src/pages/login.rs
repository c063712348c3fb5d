use leptos::{prelude::*, task::spawn_local, wasm_bindgen::JsCast};
use leptos_router::{
    NavigateOptions,
    components::A,
    hooks::{use_navigate, use_query_map},
};

use crate::{api::use_api, components::field::Field, session::use_session};

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

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if username.get_untracked().trim().is_empty() || password.get_untracked().is_empty() {
            error.set(Some(
                "Enter your username or email, and your password.".into(),
            ));
            return;
        }
        let navigate = navigate.clone();
        submitted.set(true);
        let asked = query.get_untracked().get("redirect");
        // A page asked for by name may be the protected site's rather than this app's (behind
        // forward-auth or the gate): it is loaded in full. Otherwise, the profile, in-app.
        let full_load = asked.is_some();
        let target = safe_redirect(asked);
        pending.set(true);
        spawn_local(async move {
            match api
                .signin(&username.get_untracked(), &password.get_untracked())
                .await
            {
                Ok(()) if full_load => {
                    error.set(None);
                    if let Some(window) = web_sys::window()
                        && window.location().replace(&target).is_ok()
                    {
                        return;
                    }
                    navigate(&target, NavigateOptions::default());
                }
                Ok(()) => {
                    error.set(None);
                    navigate(
                        &target,
                        NavigateOptions {
                            replace: true,
                            ..Default::default()
                        },
                    );
                }
                Err(e) => error.set(Some(e.message)),
            }
            pending.set(false);
        });
    };

    view! {
        <section class="card narrow">
            <h1>"Log in"</h1>
            <form on:submit=submit novalidate>
                <Field id="username" label="Username or email" autocomplete="username" value=username error=no_error/>
                <Field id="password" label="Password" kind="password" autocomplete="current-password" value=password error=no_error/>
                <p class="error form-error" id="login-error" role="alert">{move || error.get()}</p>
                <button type="submit" id="login-submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Signing in…" } else { "Log in" }}
                </button>
            </form>
            <p class="muted"><A href="/forgot-password" attr:id="forgot-link">"Forgot password?"</A></p>
            <p class="muted">"No account yet? " <A href="/register">"Sign up"</A></p>
        </section>
    }
}
