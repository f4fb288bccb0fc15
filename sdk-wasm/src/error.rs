//! The crate's error type (browser-side failures) and how any SDK error is
//! shown to JavaScript: an `Error` whose `code` is the stable
//! [`protocol::ErrorCode`] string.

use protocol::ErrorCode;
use wasm_bindgen::{JsCast, JsValue};

/// Failures of the browser transports. They reach users wrapped in
/// [`sdk::Error::Transport`] (or as an invalid option), so that JavaScript
/// sees one kind of error with a stable code.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A browser API threw or rejected; the message is its own.
    #[error("{0}")]
    Browser(String),
    /// The node did not welcome the client in time.
    #[error("no welcome from the node within {0} ms")]
    ConnectTimeout(u32),
    /// The WebSocket closed.
    #[error("the WebSocket closed (code {code}{})", if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    SocketClosed {
        /// The close code.
        code: u16,
        /// The close reason, if the peer gave one.
        reason: String,
    },
    /// Nothing arrived for two ping intervals.
    #[error("no frame from the node for {0} ms")]
    Silent(u32),
    /// An option passed to the constructor cannot be used.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl Error {
    /// A failure thrown by a browser API, keeping its message.
    pub(crate) fn browser(value: &JsValue) -> Self {
        let message = value
            .dyn_ref::<js_sys::Error>()
            .map(|error| String::from(error.message()))
            .or_else(|| value.as_string())
            .unwrap_or_else(|| "a browser API failed without a message".to_owned());
        Self::Browser(message)
    }
}

/// The JavaScript form of an SDK error: an `Error` with `code` (a stable
/// `protocol::ErrorCode` string) and `retryable`.
pub(crate) fn to_js(error: &sdk::Error) -> JsValue {
    js_error(&error.to_string(), error.code(), error.is_retryable())
}

/// The JavaScript form of a refused option: `malformed_request`, final.
pub(crate) fn option_to_js(error: &Error) -> JsValue {
    js_error(&error.to_string(), ErrorCode::MalformedRequest, false)
}

fn js_error(message: &str, code: ErrorCode, retryable: bool) -> JsValue {
    let js = js_sys::Error::new(message);
    // Setting own properties on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&js, &"code".into(), &code.as_str().into());
    let _ = js_sys::Reflect::set(&js, &"retryable".into(), &retryable.into());
    js.into()
}

/// A browser failure as an SDK transport error.
pub(crate) fn transport(value: &JsValue) -> sdk::Error {
    sdk::Error::transport(Error::browser(value))
}
