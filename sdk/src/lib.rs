//! The Rust client SDK: an IO-free client state that applies snapshots and
//! deltas by version and merges descriptors into a UI-ready view, plus native
//! WebSocket and HTTP transports.
//!
//! Filled by the zone-node issue.

pub use protocol;
