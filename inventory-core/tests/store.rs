//! The store conformance suite against every adapter of this crate.

mod memory {
    inventory_core::store_conformance_tests!(inventory_core::MemoryStore::new());
}

#[cfg(feature = "sqlite")]
#[path = "store/sqlite.rs"]
mod sqlite;
