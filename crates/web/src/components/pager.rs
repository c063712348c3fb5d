use leptos::prelude::*;

/// "Previous · Page n of m · Next" for a paged list.
#[component]
pub fn Pager(page: RwSignal<u32>, #[prop(into)] last: Signal<u32>) -> impl IntoView {
    view! {
        <div class="pager">
            <button
                type="button"
                class="secondary"
                disabled=move || { page.get() <= 1 }
                on:click=move |_| page.update(|p| *p -= 1)
            >
                "Previous"
            </button>
            <span>{move || format!("Page {} of {}", page.get(), last.get())}</span>
            <button
                type="button"
                class="secondary"
                disabled=move || { page.get() >= last.get() }
                on:click=move |_| page.update(|p| *p += 1)
            >
                "Next"
            </button>
        </div>
    }
}
