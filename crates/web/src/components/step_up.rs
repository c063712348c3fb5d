//! The prompt for a recently proven second factor, shown when the server asks for one
//! (`step_up_required`): the user confirms, then repeats what they were doing.

use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{Factor, use_api},
    components::field::Field,
    session::use_session,
};

#[component]
pub fn StepUpDialog() -> impl IntoView {
    let session = use_session();
    let api = use_api();
    let code = RwSignal::new(String::new());
    let recovery = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let typed = code.get_untracked();
        let factor = if recovery.get_untracked() {
            Factor::Recovery(typed)
        } else {
            Factor::Code(typed)
        };
        pending.set(true);
        spawn_local(async move {
            match api.step_up(factor).await {
                Ok(()) => {
                    code.set(String::new());
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
            pending.set(false);
        });
    };
    let passkey = move |_| {
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        spawn_local(async move {
            let stepped = match api.passkey_for_step_up().await {
                Ok(factor) => api.step_up(factor).await,
                Err(e) => Err(e),
            };
            match stepped {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e.message)),
            }
            pending.set(false);
        });
    };
    let no_error = Signal::derive(|| None::<String>);
    view! {
        <Show when=move || session.step_up_needed.get()>
            <div class="overlay">
                <section class="card narrow dialog" role="dialog" aria-modal="true" aria-labelledby="step-up-title" id="step-up">
                    <h2 id="step-up-title">"Confirm it is you"</h2>
                    <p class="muted">"This change needs your second factor: a code from your app, a recovery code, or a passkey. Once confirmed, do it again."</p>
                    <form on:submit=submit novalidate>
                        <Field
                            id="step-up-code"
                            label="Code"
                            autocomplete="one-time-code"
                            value=code
                            error=no_error
                        />
                        <p class="error" role="alert" id="step-up-error">{move || error.get()}</p>
                        <button type="submit" id="step-up-submit" disabled=move || pending.get()>"Confirm"</button>
                        " "
                        <button type="button" class="secondary" id="step-up-toggle" on:click=move |_| recovery.update(|r| *r = !*r)>
                            {move || if recovery.get() { "Use the app instead" } else { "Use a recovery code" }}
                        </button>
                        " "
                        " "
                        <button type="button" class="secondary" id="step-up-passkey" on:click=passkey disabled=move || pending.get()>"Use a passkey"</button>
                        " "
                        <button type="button" class="link" on:click=move |_| session.step_up_needed.set(false)>"Cancel"</button>
                    </form>
                </section>
            </div>
        </Show>
    }
}
