//! The store conformance suite against every adapter of this crate.

mod memory {
    inventory_core::store_conformance_tests!(inventory_core::MemoryStore::new());
}

#[cfg(feature = "mongodb")]
mod mongo_common {
    //! Stores on a replica set (transactions) and a standalone server
    //! (compensation), one database per test process.

    use std::sync::OnceLock;

    use inventory_core::{FaultInjector, MongoConfig, MongoStore};

    use crate::testkit;

    /// This process's database: conformance cases use fresh user ids, so they
    /// can share it.
    pub fn database() -> &'static str {
        static NAME: OnceLock<String> = OnceLock::new();
        NAME.get_or_init(|| testkit::unique_name("inventory"))
    }

    pub fn config(uri: String) -> MongoConfig {
        MongoConfig::new(uri).with_database(database())
    }

    pub async fn replica_set() -> MongoStore {
        let store = MongoStore::connect(config(testkit::mongodb_uri()))
            .await
            .expect("connect to the replica set");
        assert!(
            store.uses_transactions(),
            "the replica set supports transactions"
        );
        store
    }

    pub async fn standalone() -> MongoStore {
        let store = MongoStore::connect(config(testkit::mongodb_standalone_uri()))
            .await
            .expect("connect to the standalone server");
        assert!(
            !store.uses_transactions(),
            "a standalone server has no transactions"
        );
        store
    }

    pub async fn faulty(uri: String, faults: FaultInjector) -> MongoStore {
        MongoStore::connect_with_faults(config(uri), faults)
            .await
            .expect("connect")
    }
}

#[cfg(feature = "mongodb")]
mod mongo_replica_set {
    inventory_core::store_conformance_tests!(crate::mongo_common::replica_set().await);
}

#[cfg(feature = "mongodb")]
mod mongo_standalone {
    inventory_core::store_conformance_tests!(crate::mongo_common::standalone().await);
}

// Stand-in until the shared testkit crate lands on main.
#[cfg(feature = "mongodb")]
mod testkit {
    pub fn mongodb_uri() -> String {
        std::env::var("MONGODB_URI").expect("MONGODB_URI")
    }
    pub fn mongodb_standalone_uri() -> String {
        std::env::var("MONGODB_STANDALONE_URI").expect("MONGODB_STANDALONE_URI")
    }
    pub fn unique_name(prefix: &str) -> String {
        format!("{prefix}_{}", std::process::id())
    }
}
