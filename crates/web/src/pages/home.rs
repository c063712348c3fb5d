use api::wire::paths;
use leptos::prelude::*;

use crate::api::use_api;

#[component]
pub fn Home() -> impl IntoView {
    let api = use_api();
    let content = LocalResource::new(move || async move { api.content(paths::TEST_ALL).await });
    view! {
        <section class="hero">
            <h1>"Tollgate"</h1>
            <p class="lead">"Sign-in, roles and sessions for your apps, in one self-hosted binary."</p>
        </section>
        <section class="card" aria-live="polite">
            <h2>"Public content"</h2>
            {move || match content.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Ok(text)) => view! { <p id="content">{text}</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e.message}</p> }.into_any(),
            }}
        </section>
    }
}
