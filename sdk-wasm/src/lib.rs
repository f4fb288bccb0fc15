//! Browser bindings for the client SDK: wasm-bindgen API, web-sys WebSocket and
//! fetch transports.
//!
//! Filled by the WASM SDK issue.

pub use sdk;
