//! A load generator that is not the system under test.
//!
//! It runs as separate processes beside the zone nodes, so that a capacity
//! figure measures the node and not its load: [`clients`] holds many
//! lightweight WebSocket sessions per process (each decodes its frames,
//! checks versions and timestamps deltas, and keeps no merged view), and
//! [`traffic`] is the game servers' side, changes over HTTP with a mix of
//! gathering, consuming, moving items between a player's owners and trading.
//!
//! Latency is measured from the moment a change is made to the moment a
//! client holds its delta: the traffic stamps each change id with the time
//! it was made ([`stamp`]), and the clients, on the same machine's clock,
//! read it back. Every run writes a [`Report`] (JSON) with its own CPU time,
//! so that a capacity run can tell what the load cost from what the nodes
//! cost; [`Report::merge`] adds up the reports of several processes.

pub mod clients;
pub mod report;
pub mod stamp;
pub mod traffic;

pub use report::{Report, Summary};

/// The user id of player `n` of a run: `<prefix><n>`.
#[must_use]
pub fn player(prefix: &str, n: u64) -> String {
    format!("{prefix}{n}")
}
