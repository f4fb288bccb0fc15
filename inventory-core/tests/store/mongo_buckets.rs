//! Item buckets on a replica set: an owner past its document's limit is
//! split, reads as one everywhere (load, load_user, scans), and splits that
//! race changes from two store instances (two nodes) lose nothing.

use futures::TryStreamExt;
use inventory_core::conformance::{fresh_user, item, owners_replay_the_journal, qty};
use inventory_core::{ApplyOutcome, Error, InventoryStore, MongoConfig, MongoStore};
use mongodb::bson::{Document, doc};
use protocol::{Change, ChangeId, CharacterId, OwnerId, ValidChange};

use crate::mongo_common::{SPLIT_PAST, database};

/// A store that splits past [`SPLIT_PAST`] stacks, in a database of its own
/// (the scans read every owner, and other cases write malformed ones).
async fn split_store(database: &str) -> MongoStore {
    MongoStore::connect(
        MongoConfig::new(testkit::mongodb_uri())
            .with_database(database)
            .with_stacks_per_document(SPLIT_PAST),
    )
    .await
    .expect("connect to the replica set")
}

async fn raw(database: &str) -> mongodb::Collection<Document> {
    mongodb::Client::with_uri_str(testkit::mongodb_uri())
        .await
        .expect("client")
        .database(database)
        .collection("inventories")
}

fn grant_many(owner: &OwnerId, names: impl IntoIterator<Item = String>, n: u64) -> ValidChange {
    names
        .into_iter()
        .fold(Change::new(ChangeId::random()), |change, name| {
            change.grant(owner.clone(), item(&name), qty(n))
        })
        .validate()
        .expect("valid")
}

/// Applies a new change, which must apply.
async fn apply(store: &MongoStore, change: &ValidChange) {
    let outcome = store.apply(change).await;
    assert!(
        matches!(outcome, Ok(ApplyOutcome::Applied(_))),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_owner_reads_as_one_and_trades_with_an_unsplit_one() {
    let db = format!("{}_split", database());
    let store = split_store(&db).await;
    let user = fresh_user("split");
    let hero = OwnerId::character(user.clone(), CharacterId::parse("hero").expect("id"));
    let account = OwnerId::account(fresh_user("buyer"));
    let names: Vec<String> = (0..40).map(|i| format!("ore-{i:02}")).collect();
    apply(&store, &grant_many(&hero, names.clone(), 5)).await;
    apply(&store, &grant_many(&account, ["gold".to_owned()], 100)).await;
    let purse = OwnerId::account(user.clone());
    apply(&store, &grant_many(&purse, ["coin".to_owned()], 1)).await;
    assert!(store.stats().splits >= 1, "{:?}", store.stats());

    // Stored: a head without stacks, every bucket of the count it names.
    let raw = raw(&db).await;
    let head = raw
        .find_one(doc! { "_id": hero.to_string() })
        .await
        .expect("read")
        .expect("head");
    let count = head.get_i64("b").expect("the head names its bucket count");
    assert!(!head.contains_key("items"), "{head:?}");
    let buckets: Vec<Document> = raw
        .find(doc! { "u": user.as_str(), "o": hero.to_string() })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("buckets");
    assert_eq!(buckets.len() as i64, count);
    let held: usize = buckets
        .iter()
        .map(|b| b.get_document("items").map_or(0, Document::len))
        .sum();
    assert_eq!(held, 40);

    // A trade across buckets and owners, a consume to zero, a refusal.
    let trade = Change::trade(
        ChangeId::random(),
        (
            hero.clone(),
            &[(item("ore-07"), qty(5)), (item("ore-31"), qty(2))],
        ),
        (account.clone(), &[(item("gold"), qty(30))]),
    )
    .validate()
    .expect("valid");
    apply(&store, &trade).await;
    let refused = Change::new(ChangeId::random())
        .consume(hero.clone(), item("ore-01"), qty(1))
        .consume(hero.clone(), item("ore-02"), qty(6))
        .validate()
        .expect("valid");
    assert!(matches!(
        store.apply(&refused).await,
        Err(Error::Insufficient { .. })
    ));
    assert!(matches!(
        store.apply(&trade).await,
        Ok(ApplyOutcome::AlreadyApplied(_))
    ));

    let snapshot = store.load(&hero).await.expect("load");
    assert_eq!(snapshot.version.get(), 2);
    assert_eq!(snapshot.items.len(), 40, "ore-07 gone, gold arrived");
    assert!(!snapshot.items.contains_key(&item("ore-07")));
    assert_eq!(snapshot.items[&item("ore-31")], 3);
    assert_eq!(snapshot.items[&item("ore-01")], 5);
    assert_eq!(snapshot.items[&item("gold")], 30);
    let listed = store.load_user(&user).await.expect("load user");
    assert_eq!(listed.len(), 2, "the user's account and its split hero");
    assert!(listed.contains(&snapshot));
    owners_replay_the_journal(&store, &[hero, account, purse]).await;
}

/// Two store instances (two nodes) change one owner concurrently while it
/// grows from one stack to 600, so it is split and re-split under their
/// feet: every change answers, and the owner is the journal's replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_racing_changes_from_two_nodes_lose_nothing() {
    let db = format!("{}_split_race", database());
    let nodes = [split_store(&db).await, split_store(&db).await];
    let owner = OwnerId::account(fresh_user("race"));
    apply(&nodes[0], &grant_many(&owner, ["seed".to_owned()], 1_000)).await;
    let tasks: Vec<_> = (0..6)
        .map(|task| {
            let store = nodes[task % 2].clone();
            let owner = owner.clone();
            tokio::spawn(async move {
                let mut applied = 0_u32;
                for round in 0..25 {
                    let names = (0..4).map(|k| format!("s{task}-{round:02}-{k}"));
                    let grant = grant_many(&owner, names, 3);
                    let consume = Change::new(ChangeId::random())
                        .consume(owner.clone(), item("seed"), qty(1))
                        .validate()
                        .expect("valid");
                    for change in [grant, consume] {
                        loop {
                            match store.apply(&change).await {
                                Ok(_) => break,
                                Err(Error::Unavailable(why)) => {
                                    tracing::debug!(why, "again with the same id");
                                }
                                Err(e) => panic!("task {task}: {e}"),
                            }
                        }
                        applied += 1;
                    }
                }
                applied
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += task.await.expect("task");
    }
    assert_eq!(applied, 6 * 25 * 2);
    let splits: u64 = nodes.iter().map(|n| n.stats().splits).sum();
    assert!(splits >= 3, "split and re-split: {splits}");
    let fresh = split_store(&db).await;
    let snapshot = fresh.load(&owner).await.expect("load");
    assert_eq!(snapshot.items.len(), 1 + 6 * 25 * 4);
    assert_eq!(snapshot.items[&item("seed")], 1_000 - 6 * 25);
    assert_eq!(snapshot.version.get(), 1 + u64::from(applied));
    owners_replay_the_journal(&fresh, &[owner]).await;
}

/// A store forced onto the path without transactions (as a standalone
/// deployment of the same database would be) refuses to change an owner a
/// replica-set store has split, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_without_transactions_refuses_a_split_owner() {
    let db = format!("{}_split_claims", database());
    let store = split_store(&db).await;
    let owner = OwnerId::account(fresh_user("claims"));
    let names: Vec<String> = (0..10).map(|i| format!("gem-{i}")).collect();
    apply(&store, &grant_many(&owner, names, 2)).await;
    assert!(store.stats().splits >= 1);
    let claims = MongoStore::connect(
        MongoConfig::new(testkit::mongodb_uri())
            .with_database(&db)
            .with_transactions(false),
    )
    .await
    .expect("connect");
    let consume = Change::new(ChangeId::random())
        .consume(owner.clone(), item("gem-3"), qty(1))
        .validate()
        .expect("valid");
    let refused = claims.apply(&consume).await;
    assert!(
        matches!(&refused, Err(Error::Backend(why)) if why.contains("buckets")),
        "{refused:?}"
    );
    let held = store.load(&owner).await.expect("load");
    assert_eq!(held.items[&item("gem-3")], 2, "nothing written");
    assert_eq!(held.version.get(), 1);
}
