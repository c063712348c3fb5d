use leptos::prelude::*;
use leptos_router::components::A;

/// What a user sees on a page their roles do not open.
#[component]
pub fn AccessDenied() -> impl IntoView {
    view! {
        <section class="card denied" id="access-denied">
            <h1>"You don't have access"</h1>
            <p>"Your account does not have the role this page needs. Ask an admin if you think it should."</p>
            <A href="/">"Back to home"</A>
        </section>
    }
}
