//! The descriptor service: item descriptors (name, stats, provenance) fetched
//! in batches, created by crafting and removed by burning, cached with moka.
//!
//! Filled by the descriptor-service issue.

pub use protocol;
