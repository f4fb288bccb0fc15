//! The zone node: the WebSocket edge that streams snapshots and deltas to game
//! clients, and the gameplay mutation API that game servers call.
//!
//! Filled by the zone-node issue; today it only re-exports the core it stands on.

pub use inventory_core as core;
