//! A QR code drawn in the page from data (SVG), with no image service involved.

use leptos::prelude::*;
use qrcodegen::{QrCode, QrCodeEcc};

/// The SVG of `data`'s QR code, with a four-module quiet zone; `None` if the data is too
/// long for a QR code.
pub fn svg(data: &str) -> Option<String> {
    let qr = QrCode::encode_text(data, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    let full = size + 8;
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

/// The QR code of `data`.
#[component]
pub fn Qr(data: String) -> impl IntoView {
    let svg = svg(&data).unwrap_or_default();
    view! { <div class="qr" inner_html=svg></div> }
}
