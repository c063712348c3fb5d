//! Tollgate's web UI: a client-side rendered Leptos app, compiled to wasm and embedded in the
//! `tollgate` binary, which serves it at `/`.

mod api;
mod app;
mod components;
mod pages;
mod session;
mod webauthn;

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
