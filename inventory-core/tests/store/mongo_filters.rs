//! Sharding-ready filters: every write to the owners' collection names the
//! owner's user (`u`) beside its `_id`, seen through the driver's command
//! monitoring, for single-owner changes and trades on both topologies.

use std::sync::{Arc, Mutex, PoisonError};

use inventory_core::conformance::{fresh_user, item, qty};
use inventory_core::{InventoryStore, MongoConfig, MongoStore};
use mongodb::bson::{Bson, Document};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use protocol::{Change, ChangeId, OwnerId};

use crate::mongo_common::database;

/// Every command the store sent to the owners' collection, by name.
type Seen = Arc<Mutex<Vec<(String, Document)>>>;

async fn monitored(uri: String) -> (MongoStore, Seen) {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let handler = EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((started.command_name.clone(), started.command.clone()));
        }
    });
    let store = MongoStore::connect(
        MongoConfig::new(uri)
            .with_database(database())
            .with_command_events(handler),
    )
    .await
    .expect("connect");
    (store, seen)
}

/// The filters of the writes to `inventories` among `seen`: a
/// `findAndModify`'s `query`, each `update`'s `q`.
fn owner_write_filters(seen: &Seen) -> Vec<Document> {
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let mut filters = Vec::new();
    for (name, command) in seen.iter() {
        match name.as_str() {
            "findAndModify" if command.get_str("findAndModify") == Ok("inventories") => {
                filters.push(command.get_document("query").expect("query").clone());
            }
            "update" if command.get_str("update") == Ok("inventories") => {
                for update in command.get_array("updates").expect("updates") {
                    let Bson::Document(update) = update else {
                        panic!("an update is a document: {update:?}");
                    };
                    filters.push(update.get_document("q").expect("q").clone());
                }
            }
            _ => {}
        }
    }
    filters
}

async fn every_write_names_the_user(uri: String) {
    let (store, seen) = monitored(uri).await;
    let alice = OwnerId::account(fresh_user("shard-alice"));
    let bob = OwnerId::account(fresh_user("shard-bob"));
    for change in [
        Change::new(ChangeId::random()).grant(alice.clone(), item("gold"), qty(5)),
        Change::new(ChangeId::random()).grant(bob.clone(), item("gem"), qty(1)),
        Change::new(ChangeId::random()).consume(alice.clone(), item("gold"), qty(1)),
        // Empties both stacks: the zero clean-ups are writes too.
        Change::trade(
            ChangeId::random(),
            (alice.clone(), &[(item("gold"), qty(4))]),
            (bob.clone(), &[(item("gem"), qty(1))]),
        ),
    ] {
        let _ = store
            .apply(&change.validate().expect("valid"))
            .await
            .expect("applied");
    }
    let filters = owner_write_filters(&seen);
    // Three single-owner updates, two trade parts, two zero clean-ups.
    assert!(filters.len() >= 7, "{filters:?}");
    for filter in &filters {
        let owner = OwnerId::parse(filter.get_str("_id").expect("_id")).expect("owner id");
        assert_eq!(
            filter.get_str("u"),
            Ok(owner.user().as_str()),
            "filter without its user: {filter:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_writes_name_the_user() {
    every_write_names_the_user(testkit::mongodb_uri()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_writes_name_the_user() {
    every_write_names_the_user(testkit::mongodb_standalone_uri()).await;
}
