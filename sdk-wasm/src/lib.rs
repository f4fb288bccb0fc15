//! Browser bindings for the client SDK: the JavaScript/TypeScript API
//! (`InventoryClient`, `InventoryState`) and the browser transports that
//! drive the SDK's IO-free core, a web-sys `WebSocket` (reconnect with
//! backoff, resume, pings) and `fetch` for descriptor batches.
//!
//! **Browser IO lives only in this crate**: `sdk` stays IO-free without its
//! `native` feature, and this crate feeds its [`sdk::ClientState`] message
//! pump from the browser's socket, exactly as the native transports feed it
//! from tokio's. The API is built with `cargo xtask wasm` into npm packages
//! for `--target web` and for bundlers.
//!
//! ```js
//! import init, { InventoryClient } from "./sdk_wasm.js";
//! await init();
//! const client = new InventoryClient("ws://127.0.0.1:7000/v1/ws", token, { descriptorUrl: "same-origin" });
//! const stop = client.onChange((changes) => render(client.items()));
//! await client.connect();
//! ```

mod client;
mod connection;
mod error;
mod fetch;
mod js_view;
mod state;
mod typescript;

pub use client::InventoryClient;
pub use error::Error;
pub use js_view::{JsChange, JsConnection, JsItem, JsOwner};
pub use state::InventoryState;

use wasm_bindgen::prelude::wasm_bindgen;

/// The SDK's version, for status lines and bug reports.
#[wasm_bindgen]
#[must_use]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
