//! One board per role: each fetches its test content; a refusal shows "access denied".

use api::wire::paths;
use leptos::prelude::*;

use crate::{api::use_api, components::denied::AccessDenied};

#[component]
fn Board(title: &'static str, path: &'static str) -> impl IntoView {
    let api = use_api();
    let content = LocalResource::new(move || async move { api.content(path).await });
    move || match content.get() {
        None => view! { <p class="loading" role="status">"Loading…"</p> }.into_any(),
        Some(Err(e)) if e.status == 403 => view! { <AccessDenied/> }.into_any(),
        Some(Err(e)) => view! {
            <section class="card"><h1>{title}</h1><p class="error">{e.message}</p></section>
        }
        .into_any(),
        Some(Ok(text)) => view! {
            <section class="card board">
                <h1>{title}</h1>
                <p id="content">{text}</p>
            </section>
        }
        .into_any(),
    }
}

#[component]
pub fn UserBoard() -> impl IntoView {
    view! { <Board title="User board" path=paths::TEST_USER/> }
}

#[component]
pub fn ModeratorBoard() -> impl IntoView {
    view! { <Board title="Moderator board" path=paths::TEST_MOD/> }
}

#[component]
pub fn AdminBoard() -> impl IntoView {
    view! { <Board title="Admin board" path=paths::TEST_ADMIN/> }
}
