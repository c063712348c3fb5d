//! The browser's half of passkeys: `navigator.credentials.create` and `.get`, with the
//! server's options in and the authenticator's answer out (webauthn-rs-proto converts both).

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::api::ApiError;

fn credentials() -> Result<web_sys::CredentialsContainer, ApiError> {
    web_sys::window()
        .map(|w| w.navigator().credentials())
        .ok_or_else(|| failure("This browser cannot use passkeys."))
}

fn failure(message: &str) -> ApiError {
    ApiError {
        status: 0,
        message: message.to_owned(),
        reason: None,
    }
}

/// What the browser's refusal means to the user.
fn refused(error: wasm_bindgen::JsValue) -> ApiError {
    let name = error
        .dyn_ref::<web_sys::DomException>()
        .map(web_sys::DomException::name)
        .unwrap_or_default();
    failure(match name.as_str() {
        "NotAllowedError" => "The passkey request was cancelled or timed out.",
        "InvalidStateError" => "This passkey is registered already.",
        "SecurityError" => {
            "Passkeys do not work at this address: open Tollgate at its public URL (for a local server, http://localhost, not an IP address)."
        }
        "NotSupportedError" => "This browser or device cannot make a passkey of this kind.",
        _ => "The passkey request failed.",
    })
}

/// Asks the browser to make a passkey.
pub async fn create(
    options: CreationChallengeResponse,
) -> Result<RegisterPublicKeyCredential, ApiError> {
    let options: web_sys::CredentialCreationOptions = options.into();
    let promise = credentials()?
        .create_with_options(&options)
        .map_err(refused)?;
    let answer = JsFuture::from(promise).await.map_err(refused)?;
    let credential = answer
        .dyn_into::<web_sys::PublicKeyCredential>()
        .map_err(|_| failure("The browser gave no passkey."))?;
    Ok(credential.into())
}

/// Asks the browser for a passkey's signature.
pub async fn get(options: RequestChallengeResponse) -> Result<PublicKeyCredential, ApiError> {
    let options: web_sys::CredentialRequestOptions = options.into();
    let promise = credentials()?.get_with_options(&options).map_err(refused)?;
    let answer = JsFuture::from(promise).await.map_err(refused)?;
    let credential = answer
        .dyn_into::<web_sys::PublicKeyCredential>()
        .map_err(|_| failure("The browser gave no passkey."))?;
    Ok(credential.into())
}
