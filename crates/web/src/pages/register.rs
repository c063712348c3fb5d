//! Sign-up with live validation by the same parsers the server uses.

use api::{
    Email, Password, Username,
    wire::{SignupRequest, messages},
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::components::A;

use crate::{api::use_api, components::field::Field};

#[component]
pub fn Register() -> impl IntoView {
    let api = use_api();
    let username = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let touched = RwSignal::new(false);
    let server_error = RwSignal::new(None::<(Option<&'static str>, String)>);
    let done = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    // Each field's error: the shared parser's verdict once the user has typed, or the server's.
    let field_error =
        move |field: &'static str, check: fn(&str) -> Option<String>, value: RwSignal<String>| {
            Signal::derive(move || {
                if let Some((Some(f), message)) = server_error.get()
                    && f == field
                {
                    return Some(message);
                }
                let text = value.get();
                if text.is_empty() && !touched.get() {
                    return None;
                }
                check(&text)
            })
        };
    let username_error = field_error(
        "username",
        |v| Username::parse(v).err().map(|e| e.message),
        username,
    );
    let email_error = field_error("email", |v| Email::parse(v).err().map(|e| e.message), email);
    let password_error = field_error(
        "password",
        |v| Password::parse(v).err().map(|e| e.message),
        password,
    );

    // Editing a field clears the server's complaint about it.
    Effect::new(move |_| {
        username.track();
        email.track();
        password.track();
        server_error.set(None);
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if username_error.get_untracked().is_some()
            || email_error.get_untracked().is_some()
            || password_error.get_untracked().is_some()
        {
            return;
        }
        let request = SignupRequest {
            username: username.get_untracked(),
            email: email.get_untracked(),
            password: password.get_untracked(),
            roles: None,
        };
        pending.set(true);
        spawn_local(async move {
            match api.signup(&request).await {
                Ok(message) => done.set(Some(message)),
                Err(e) => {
                    let field = if e.message == messages::USERNAME_TAKEN
                        || e.message.starts_with("Username")
                    {
                        Some("username")
                    } else if e.message == messages::EMAIL_TAKEN || e.message.starts_with("Email") {
                        Some("email")
                    } else if e.message.starts_with("Password") {
                        Some("password")
                    } else {
                        None
                    };
                    server_error.set(Some((field, e.message)));
                }
            }
            pending.set(false);
        });
    };

    view! {
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <Show
                when=move || done.get().is_none()
                fallback=move || view! {
                    <p class="success" id="signup-success" role="status">{move || done.get()}</p>
                    <A href="/login">"Log in now"</A>
                }
            >
                <form on:submit=submit novalidate>
                    <Field id="username" label="Username" autocomplete="username" value=username error=username_error/>
                    <Field id="email" label="Email" kind="email" autocomplete="email" value=email error=email_error/>
                    <Field id="password" label="Password" kind="password" autocomplete="new-password" value=password error=password_error/>
                    <p class="hint">"3–20 letters, digits, '.', '_' or '-'; a password of 8 to 128 characters."</p>
                    <p class="error form-error" role="alert">
                        {move || server_error.get().filter(|(f, _)| f.is_none()).map(|(_, m)| m)}
                    </p>
                    <button type="submit" id="signup-submit" disabled=move || pending.get()>"Sign up"</button>
                </form>
                <p class="muted">"Already registered? " <A href="/login">"Log in"</A></p>
            </Show>
        </section>
    }
}
