//! The store conformance suite against every adapter of this crate.

mod memory {
    inventory_core::store_conformance_tests!(inventory_core::MemoryStore::new());

    mod outbox {
        inventory_core::outbox_conformance_tests!(inventory_core::MemoryStore::new());
    }

    mod scan {
        inventory_core::scan_conformance_tests!(inventory_core::MemoryStore::new());
    }

    mod support {
        inventory_core::support_conformance_tests!(inventory_core::MemoryStore::new());
    }
}

#[cfg(feature = "sqlite")]
#[path = "store/sqlite.rs"]
mod sqlite;

#[cfg(feature = "mongodb")]
mod mongo_common {
    //! Stores on a replica set (transactions) and a standalone server
    //! (compensation), one database per test process.

    use std::sync::OnceLock;

    use inventory_core::{FaultInjector, MongoConfig, MongoStore};

    /// This process's database: conformance cases use fresh user ids, so they
    /// can share it.
    pub fn database() -> &'static str {
        static NAME: OnceLock<String> = OnceLock::new();
        NAME.get_or_init(|| testkit::unique_name("inventory"))
    }

    pub fn config(uri: String) -> MongoConfig {
        MongoConfig::new(uri).with_database(database())
    }

    /// A replica-set store on a collection of its own, so that its outbox
    /// (whose publishing lease is per collection) is its alone.
    pub async fn replica_set_alone() -> MongoStore {
        MongoStore::connect(
            config(testkit::mongodb_uri()).with_collection(testkit::unique_name("owners")),
        )
        .await
        .expect("connect to the replica set")
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

    /// A store in a database of its own for the scan cases: other cases
    /// write malformed documents on purpose, which a scan would report.
    pub async fn for_scans(uri: String) -> MongoStore {
        MongoStore::connect(MongoConfig::new(uri).with_database(format!("{}_scan", database())))
            .await
            .expect("connect")
    }

    pub async fn faulty(uri: String, faults: FaultInjector) -> MongoStore {
        MongoStore::connect_with_faults(config(uri), faults)
            .await
            .expect("connect")
    }

    /// How many stacks a document holds in the bucket cases: so few that
    /// nearly every owner of a case is split, and split again.
    pub const SPLIT_PAST: usize = 4;

    /// A replica-set store that splits owners past [`SPLIT_PAST`] stacks, on
    /// a collection of its own (the support cases page the operator log of
    /// a collection, which the other replica-set suite writes too).
    pub async fn replica_set_split() -> MongoStore {
        MongoStore::connect(
            config(testkit::mongodb_uri())
                .with_collection("split_inventories")
                .with_stacks_per_document(SPLIT_PAST),
        )
        .await
        .expect("connect to the replica set")
    }

    /// A replica-set store that splits every owner of two stacks, through
    /// `faults`.
    pub async fn faulty_split(faults: FaultInjector) -> MongoStore {
        MongoStore::connect_with_faults(
            config(testkit::mongodb_uri()).with_stacks_per_document(1),
            faults,
        )
        .await
        .expect("connect")
    }
}

#[cfg(feature = "mongodb")]
mod mongo_buckets {
    //! Every contract case on owners split into item buckets (a store that
    //! splits past 4 stacks), and the split itself racing changes.
    inventory_core::store_conformance_tests!(crate::mongo_common::replica_set_split().await);

    mod support {
        inventory_core::support_conformance_tests!(crate::mongo_common::replica_set_split().await);
    }
}

#[cfg(feature = "mongodb")]
#[path = "store/mongo_buckets.rs"]
mod mongo_split;

#[cfg(feature = "mongodb")]
mod mongo_replica_set {
    inventory_core::store_conformance_tests!(crate::mongo_common::replica_set().await);

    mod outbox {
        inventory_core::outbox_conformance_tests!(crate::mongo_common::replica_set_alone().await);
    }

    mod scan {
        inventory_core::scan_conformance_tests!(
            crate::mongo_common::for_scans(testkit::mongodb_uri()).await
        );
    }

    mod support {
        inventory_core::support_conformance_tests!(crate::mongo_common::replica_set().await);
    }
}

#[cfg(feature = "mongodb")]
#[path = "store/mongo_outbox.rs"]
mod mongo_outbox;

#[cfg(feature = "mongodb")]
mod mongo_standalone {
    inventory_core::store_conformance_tests!(crate::mongo_common::standalone().await);

    mod scan {
        inventory_core::scan_conformance_tests!(
            crate::mongo_common::for_scans(testkit::mongodb_standalone_uri()).await
        );
    }

    mod support {
        inventory_core::support_conformance_tests!(crate::mongo_common::standalone().await);
    }
}

#[cfg(feature = "mongodb")]
mod mongo_faults {
    //! Failure injection: every database operation of a change fails in turn,
    //! once, either before reaching the server or after (the reply is lost).

    use inventory_core::conformance::{fresh_user, item, qty};
    use inventory_core::{
        ApplyOutcome, Error, FaultInjector, FaultKind, InventoryStore, MongoStore,
    };
    use protocol::{Change, ChangeId, CharacterId, OwnerId, ValidChange};

    use crate::mongo_common::{faulty, faulty_split, replica_set, standalone};

    struct Case {
        account: OwnerId,
        hero: OwnerId,
        change: ValidChange,
    }

    /// An account with 10 gold and its hero with 5 ore; the change takes 3
    /// gold and 2 ore and gives the hero a sword.
    async fn case(clean: &MongoStore) -> Case {
        let user = fresh_user("fault");
        let account = OwnerId::account(user.clone());
        let hero = OwnerId::character(user, CharacterId::parse("hero").expect("id"));
        for (owner, name, n) in [(&account, "gold", 10), (&hero, "ore", 5)] {
            let grant = Change::new(ChangeId::random())
                .grant(owner.clone(), item(name), qty(n))
                .validate()
                .expect("valid");
            let _ = clean.apply(&grant).await.expect("setup");
        }
        let change = Change::new(ChangeId::random())
            .consume(account.clone(), item("gold"), qty(3))
            .consume(hero.clone(), item("ore"), qty(2))
            .grant(hero.clone(), item("sword"), qty(1))
            .validate()
            .expect("valid");
        Case {
            account,
            hero,
            change,
        }
    }

    /// `Some(true)` if the change is fully applied (once), `Some(false)` if
    /// fully absent, `None` if half applied.
    async fn state(clean: &MongoStore, case: &Case) -> Option<bool> {
        let account = clean.load(&case.account).await.expect("load");
        let hero = clean.load(&case.hero).await.expect("load");
        let gold = account.items.get(&item("gold")).copied();
        let ore = hero.items.get(&item("ore")).copied();
        let sword = hero.items.get(&item("sword")).copied();
        match (gold, ore, sword) {
            (Some(7), Some(3), Some(1)) => Some(true),
            (Some(10), Some(5), None) => Some(false),
            _ => None,
        }
    }

    async fn every_single_fault(uri: String, clean: MongoStore, kind: FaultKind) -> MongoStore {
        every_single_fault_on(clean, kind, |faults| faulty(uri.clone(), faults)).await
    }

    async fn every_single_fault_on<F: Future<Output = MongoStore>>(
        clean: MongoStore,
        kind: FaultKind,
        connect: impl Fn(FaultInjector) -> F,
    ) -> MongoStore {
        let mut last = None;
        for n in 1.. {
            let case = case(&clean).await;
            let faults = FaultInjector::new().fail_nth(n, kind);
            let store = connect(faults.clone()).await;
            let first = store.apply(&case.change).await;
            if faults.fired() == 0 {
                assert!(matches!(first, Ok(ApplyOutcome::Applied(_))), "{first:?}");
                last = Some(store);
                break;
            }
            let after_fault = state(&clean, &case).await;
            assert!(
                after_fault.is_some(),
                "fault at op {n} ({kind:?}) left half a change: {first:?}"
            );
            if first.is_ok() {
                assert_eq!(after_fault, Some(true), "op {n}: Ok but not applied");
            } else {
                assert!(
                    matches!(first, Err(Error::Unavailable(_))),
                    "op {n}: {first:?}"
                );
            }
            let retried = store.apply(&case.change).await;
            assert!(
                retried.is_ok(),
                "retry after a fault at op {n}: {retried:?}"
            );
            assert_eq!(
                state(&clean, &case).await,
                Some(true),
                "op {n}: applied once"
            );
            let again = store.apply(&case.change).await;
            assert!(
                matches!(again, Ok(ApplyOutcome::AlreadyApplied(_))),
                "op {n}: {again:?}"
            );
            assert_eq!(
                state(&clean, &case).await,
                Some(true),
                "op {n}: applied once"
            );
            last = Some(store);
        }
        last.expect("at least one operation")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replica_set_connection_dropped_at_any_operation() {
        let store = every_single_fault(
            testkit::mongodb_uri(),
            replica_set().await,
            FaultKind::ConnectionDropped,
        )
        .await;
        assert!(store.stats().transactions > 0);
        assert_eq!(store.stats().compensations, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replica_set_reply_lost_at_any_operation() {
        let store = every_single_fault(
            testkit::mongodb_uri(),
            replica_set().await,
            FaultKind::ReplyLost,
        )
        .await;
        assert!(store.stats().transactions > 0);
        assert_eq!(store.stats().compensations, 0);
    }

    /// The change splits its hero (two stacks past a limit of one): a fault
    /// at any operation of the change or of the split leaves the change
    /// whole or absent, and its retry on the split owner applies it once;
    /// without a fault, the split happens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replica_set_split_survives_a_fault_at_any_operation() {
        for kind in [FaultKind::ConnectionDropped, FaultKind::ReplyLost] {
            let store = every_single_fault_on(replica_set().await, kind, faulty_split).await;
            assert!(store.stats().splits > 0, "{kind:?}: {:?}", store.stats());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone_connection_dropped_at_any_operation() {
        every_single_fault(
            testkit::mongodb_standalone_uri(),
            standalone().await,
            FaultKind::ConnectionDropped,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone_reply_lost_at_any_operation() {
        every_single_fault(
            testkit::mongodb_standalone_uri(),
            standalone().await,
            FaultKind::ReplyLost,
        )
        .await;
    }

    /// A lost reply on the second part's write makes the standalone path undo
    /// the first part: a compensation, visible in the stats, and nothing left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone_compensates_and_replica_set_does_not() {
        for (uri, clean, transactions) in [
            (testkit::mongodb_standalone_uri(), standalone().await, false),
            (testkit::mongodb_uri(), replica_set().await, true),
        ] {
            let case = case(&clean).await;
            // Operations: claim and precheck read (standalone only), part 1, part 2.
            let nth = if transactions { 2 } else { 4 };
            let faults = FaultInjector::new().fail_nth(nth, FaultKind::ConnectionDropped);
            let store = faulty(uri, faults).await;
            assert_eq!(store.uses_transactions(), transactions);
            let outcome = store.apply(&case.change).await;
            assert!(matches!(outcome, Err(Error::Unavailable(_))), "{outcome:?}");
            assert_eq!(state(&clean, &case).await, Some(false));
            let stats = store.stats();
            if transactions {
                assert_eq!(stats.compensations, 0);
            } else {
                assert_eq!(stats.compensations, 1);
                // The undo is a change of its own: the version moved on twice.
                let account = clean.load(&case.account).await.expect("load");
                assert_eq!(account.version.get(), 3);
            }
            assert!(matches!(
                store.apply(&case.change).await,
                Ok(ApplyOutcome::Applied(_))
            ));
            assert_eq!(state(&clean, &case).await, Some(true));
            assert_eq!(store.stats().transactions, u64::from(transactions));
        }
    }

    /// A single-owner write whose reply is lost is not applied twice on retry
    /// (on a replica set the durable write is the commit: the third operation,
    /// after the update and the journal insert; the store sends it up to three
    /// times, so every reply is lost).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_owner_reply_lost_then_retry_applies_once() {
        let clean = replica_set().await;
        let owner = OwnerId::account(fresh_user("lostreply"));
        let setup = Change::new(ChangeId::random())
            .grant(owner.clone(), item("gem"), qty(1))
            .validate()
            .expect("valid");
        let _ = clean.apply(&setup).await.expect("setup");
        let faults = FaultInjector::new()
            .fail_nth(3, FaultKind::ReplyLost)
            .fail_nth(4, FaultKind::ReplyLost)
            .fail_nth(5, FaultKind::ReplyLost);
        let store = faulty(testkit::mongodb_uri(), faults).await;
        let change = Change::new(ChangeId::random())
            .grant(owner.clone(), item("gem"), qty(4))
            .validate()
            .expect("valid");
        assert!(matches!(
            store.apply(&change).await,
            Err(Error::Unavailable(_))
        ));
        match store.apply(&change).await {
            Ok(ApplyOutcome::AlreadyApplied(event)) => {
                assert_eq!(event.owners[0].version.get(), 2);
            }
            other => panic!("expected AlreadyApplied, got {other:?}"),
        }
        let snap = clean.load(&owner).await.expect("load");
        assert_eq!(snap.items[&item("gem")], 5);
        assert_eq!(snap.version.get(), 2);
    }
}

#[cfg(feature = "mongodb")]
#[path = "store/mongo_filters.rs"]
mod mongo_filters;

#[cfg(feature = "mongodb")]
#[path = "store/mongo_load.rs"]
mod mongo_load;

#[cfg(feature = "mongodb")]
mod mongo_malformed {
    //! Documents written behind the store's back are reported as corrupt,
    //! naming the owner, never a panic.

    use inventory_core::conformance::{fresh_user, item, qty};
    use inventory_core::{Error, InventoryStore};
    use mongodb::bson::{Document, doc};
    use protocol::{Change, ChangeId, OwnerId};

    use crate::mongo_common::{database, replica_set};

    async fn collection() -> mongodb::Collection<Document> {
        mongodb::Client::with_uri_str(testkit::mongodb_uri())
            .await
            .expect("client")
            .database(database())
            .collection("inventories")
    }

    fn corrupt_owner(result: Result<impl std::fmt::Debug, Error>) -> OwnerId {
        match result {
            Err(Error::Corrupt { owner, detail }) => {
                assert!(!detail.is_empty());
                owner
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_documents_are_reported_with_their_owner() {
        let store = replica_set().await;
        let raw = collection().await;
        let bad_items = [
            doc! { "wood": -3_i64 },
            doc! { "wood": "ten" },
            doc! { "wood": 1.5 },
            doc! { "not an id": 1_i64 },
        ];
        for items in bad_items {
            let user = fresh_user("corrupt");
            let owner = OwnerId::account(user.clone());
            raw.insert_one(doc! { "_id": owner.to_string(), "u": user.as_str(), "v": 1_i64, "items": items, "recent": [] })
                .await
                .expect("insert");
            assert_eq!(corrupt_owner(store.load(&owner).await), owner);
            assert_eq!(corrupt_owner(store.load_user(&user).await), owner);
            let consume = Change::new(ChangeId::random())
                .consume(owner.clone(), item("wood"), qty(1))
                .validate()
                .expect("valid");
            // Whatever the guard makes of a bad balance, the store does not
            // panic and the owner stays reported as corrupt.
            let _ = store.apply(&consume).await;
            assert_eq!(corrupt_owner(store.load(&owner).await), owner);
        }
        let user = fresh_user("corruptv");
        let owner = OwnerId::account(user.clone());
        raw.insert_one(
            doc! { "_id": owner.to_string(), "u": user.as_str(), "v": "seven", "items": {} },
        )
        .await
        .expect("insert");
        assert_eq!(corrupt_owner(store.load(&owner).await), owner);
        let user = fresh_user("corruptrecent");
        let owner = OwnerId::account(user.clone());
        raw.insert_one(doc! { "_id": owner.to_string(), "u": user.as_str(), "v": 1_i64, "items": {}, "recent": "oops" })
            .await
            .expect("insert");
        let grant = Change::new(ChangeId::random())
            .grant(owner.clone(), item("wood"), qty(1))
            .validate()
            .expect("valid");
        let outcome = store.apply(&grant).await;
        assert!(outcome.is_err(), "{outcome:?}");
        let user = fresh_user("corruptid");
        raw.insert_one(doc! { "_id": "a:someone.else", "u": user.as_str(), "v": 1_i64 })
            .await
            .expect("insert");
        assert_eq!(
            corrupt_owner(store.load_user(&user).await),
            OwnerId::account(user)
        );
    }
}
