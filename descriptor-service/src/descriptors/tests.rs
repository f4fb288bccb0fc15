//! Unit tests of [`Descriptors`] without HTTP: the rules of create and
//! revise, the cache kept current by writes, and typed absences.

use std::sync::Arc;

use protocol::{BurnOutcome, ErrorCode};
use tempfile::TempDir;

use super::*;
use crate::conformance::{catalog, crafted};
use crate::{MAX_SCAN_LIMIT, SqliteStore};

fn descriptors() -> (TempDir, Descriptors) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("descriptors.db")).expect("open sqlite");
    (dir, Descriptors::builder(Arc::new(store)).build())
}

fn id(value: &str) -> ItemId {
    ItemId::parse(value).expect("valid id")
}

/// Revises `descriptor` after `seed` was created, and checks the outcome (or
/// the error's code).
async fn check_revise(
    seed: Descriptor,
    descriptor: Descriptor,
    expected: Result<WriteOutcome, ErrorCode>,
) {
    let (_dir, descriptors) = descriptors();
    descriptors.create(&seed).await.expect("seed");
    let got = descriptors.revise(&descriptor).await.map_err(|e| e.code());
    assert_eq!(
        got, expected,
        "revise {} r{}",
        descriptor.id, descriptor.revision
    );
}

#[tokio::test]
async fn revise_takes_the_next_catalog_revision_only() {
    check_revise(
        catalog("wood", 1),
        catalog("wood", 2),
        Ok(WriteOutcome::Applied),
    )
    .await;
    check_revise(
        catalog("wood", 1),
        catalog("wood", 3),
        Err(ErrorCode::Conflict),
    )
    .await;
    check_revise(
        catalog("wood", 1),
        catalog("wood", 1),
        Err(ErrorCode::InvalidDescriptor),
    )
    .await;
    check_revise(
        catalog("wood", 1),
        catalog("oak", 2),
        Err(ErrorCode::NotFound),
    )
    .await;
    let mut crafted_revision = crafted("sword-1");
    crafted_revision.revision = 2;
    check_revise(
        crafted("sword-1"),
        crafted_revision,
        Err(ErrorCode::InvalidDescriptor),
    )
    .await;
    let mut nameless = catalog("wood", 2);
    nameless.name.clear();
    check_revise(
        catalog("wood", 1),
        nameless,
        Err(ErrorCode::InvalidDescriptor),
    )
    .await;
}

#[tokio::test]
async fn a_repeated_revision_is_unchanged() {
    let (_dir, descriptors) = descriptors();
    descriptors
        .create(&catalog("wood", 1))
        .await
        .expect("create");
    assert_eq!(
        descriptors
            .revise(&catalog("wood", 2))
            .await
            .map_err(|e| e.code()),
        Ok(WriteOutcome::Applied)
    );
    assert_eq!(
        descriptors
            .revise(&catalog("wood", 2))
            .await
            .map_err(|e| e.code()),
        Ok(WriteOutcome::Unchanged)
    );
}

#[tokio::test]
async fn a_revision_replaces_the_cached_one() {
    let (_dir, descriptors) = descriptors();
    descriptors
        .create(&catalog("wood", 1))
        .await
        .expect("create");
    assert_eq!(
        descriptors.get(&id("wood")).await.expect("get").revision(),
        1
    );
    descriptors
        .revise(&catalog("wood", 2))
        .await
        .expect("revise");
    assert_eq!(
        descriptors.get(&id("wood")).await.expect("get").revision(),
        2
    );
}

#[tokio::test]
async fn create_takes_revision_one_and_is_idempotent() {
    let (_dir, descriptors) = descriptors();
    let code = descriptors
        .create(&catalog("wood", 2))
        .await
        .map_err(|e| e.code());
    assert_eq!(code, Err(ErrorCode::InvalidDescriptor));
    assert_eq!(
        descriptors
            .create(&crafted("sword-1"))
            .await
            .map_err(|e| e.code()),
        Ok(WriteOutcome::Applied)
    );
    assert_eq!(
        descriptors
            .create(&crafted("sword-1"))
            .await
            .map_err(|e| e.code()),
        Ok(WriteOutcome::Unchanged)
    );
    let mut other = crafted("sword-1");
    other.name = "Another sword".into();
    let code = descriptors.create(&other).await.map_err(|e| e.code());
    assert_eq!(code, Err(ErrorCode::Conflict));
}

#[tokio::test]
async fn reads_tell_missing_from_burned() {
    let (_dir, descriptors) = descriptors();
    descriptors
        .create(&crafted("sword-1"))
        .await
        .expect("create");
    descriptors
        .create(&crafted("sword-2"))
        .await
        .expect("create");
    assert_eq!(
        descriptors.burn(&id("sword-2")).await.map_err(|e| e.code()),
        Ok(BurnOutcome::Burned)
    );
    assert_eq!(
        descriptors.burn(&id("sword-2")).await.map_err(|e| e.code()),
        Ok(BurnOutcome::AlreadyBurned)
    );

    let code =
        |result: Result<Arc<CachedDescriptor>, Error>| result.map(|_| ()).map_err(|e| e.code());
    assert_eq!(code(descriptors.get(&id("sword-1")).await), Ok(()));
    assert_eq!(
        code(descriptors.get(&id("sword-2")).await),
        Err(ErrorCode::Burned)
    );
    assert_eq!(
        code(descriptors.get(&id("sword-3")).await),
        Err(ErrorCode::NotFound)
    );

    let ids = [id("sword-3"), id("sword-2"), id("sword-1")];
    let lookups = descriptors.get_many(&ids).await.expect("get_many");
    assert!(matches!(lookups[0], Lookup::Absent(Absence::Missing)));
    assert!(matches!(lookups[1], Lookup::Absent(Absence::Burned)));
    assert!(matches!(&lookups[2], Lookup::Found(found) if found.kind() == DescriptorKind::Crafted));
    assert_eq!(descriptors.ping().await.map_err(|e| e.code()), Ok(()));
}

#[tokio::test]
async fn list_pages_through_the_store_with_cursors_bound_to_their_filter() {
    let (_dir, descriptors) = descriptors();
    for n in 0..5 {
        descriptors
            .create(&crafted(&format!("l-{n}")))
            .await
            .expect("create");
    }
    descriptors
        .create(&catalog("tpl", 1))
        .await
        .expect("create");
    let crafted_only = ScanFilter {
        kind: Some(DescriptorKind::Crafted),
        ..ScanFilter::default()
    };
    let first = descriptors
        .list(&crafted_only, None, 3)
        .await
        .expect("page 1");
    assert_eq!(first.records.len(), 3);
    let cursor = first.next_cursor.expect("a full page has a cursor");
    let second = descriptors
        .list(&crafted_only, Some(&cursor), 3)
        .await
        .expect("page 2");
    let ids: Vec<&str> = first
        .records
        .iter()
        .chain(&second.records)
        .map(|r| r.id().as_str())
        .collect();
    assert_eq!(ids, ["l-0", "l-1", "l-2", "l-3", "l-4"]);
    assert_eq!(second.next_cursor, None);

    let refused = [
        descriptors
            .list(&ScanFilter::default(), Some(&cursor), 3)
            .await,
        descriptors.list(&crafted_only, Some("garbage"), 3).await,
        descriptors.list(&crafted_only, None, 0).await,
        descriptors
            .list(&crafted_only, None, MAX_SCAN_LIMIT + 1)
            .await,
    ];
    for answer in refused {
        assert_eq!(
            answer.expect_err("refused").code(),
            ErrorCode::Unprocessable
        );
    }
}
