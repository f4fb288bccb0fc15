//! The SDK's tool API (`stream_many`, `list`, the bearer token) against a
//! live descriptor service over SQLite, reads closed behind a read token.

use std::sync::Arc;

use descriptor_service::conformance::crafted;
use descriptor_service::{AuthConfig, Descriptors, SqliteStore};
use futures::{StreamExt, TryStreamExt};
use protocol::ItemId;
use sdk::{DescriptorClient, DescriptorState, ListFilter};

const READ_TOKEN: &str = "tools-read-token";

/// A descriptor service with `sword-00`..`sword-09` stored and `sword-03`
/// burned; answers its base URL.
async fn service(dir: &tempfile::TempDir) -> String {
    let store = SqliteStore::open(dir.path().join("descriptors.db")).expect("open");
    let descriptors = Descriptors::builder(Arc::new(store)).build();
    for n in 0..10 {
        descriptors
            .create(&crafted(&format!("sword-{n:02}")))
            .await
            .expect("create");
    }
    descriptors.burn(&id("sword-03")).await.expect("burn");
    let auth = AuthConfig::default()
        .with_open_reads(false)
        .with_read_token(READ_TOKEN)
        .with_write_token("tools-write-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(descriptor_service::run(
        listener,
        descriptors,
        auth,
        std::future::pending(),
    ));
    url
}

fn id(value: &str) -> ItemId {
    ItemId::parse(value).expect("valid id")
}

#[tokio::test]
async fn list_follows_the_cursor_to_the_end_with_the_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = service(&dir).await;
    let client = DescriptorClient::builder(&url)
        .with_bearer_token(READ_TOKEN)
        .build()
        .expect("client");
    let pages: Vec<_> = client
        .list(ListFilter {
            limit: 3,
            ..ListFilter::default()
        })
        .try_collect()
        .await
        .expect("list");
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|page| page.descriptors.iter().map(|d| d.id.to_string()))
        .collect();
    let expected: Vec<String> = (0..10)
        .filter(|n| *n != 3)
        .map(|n| format!("sword-{n:02}"))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(pages.len(), 4, "3 + 3 + 3, then an empty last page");

    // Resuming from a page's cursor answers the rest.
    let rest: Vec<_> = client
        .list(ListFilter {
            limit: 3,
            cursor: pages[0].next_cursor.clone(),
            ..ListFilter::default()
        })
        .try_collect()
        .await
        .expect("resume");
    let resumed = rest.iter().map(|p| p.descriptors.len()).sum::<usize>();
    assert_eq!(resumed, 6);

    let anonymous = DescriptorClient::new(&url).expect("client");
    let refused = anonymous
        .list(ListFilter::default())
        .try_collect::<Vec<_>>()
        .await
        .expect_err("reads are closed");
    assert!(refused.to_string().contains("unauthorized"), "{refused}");
}

#[tokio::test]
async fn stream_many_answers_every_id_in_order_with_bounded_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = service(&dir).await;
    let client = DescriptorClient::builder(&url)
        .with_bearer_token(READ_TOKEN)
        .with_max_batch(2)
        .with_max_in_flight(2)
        .build()
        .expect("client");
    let ids = ["sword-01", "missing-1", "sword-03", "sword-09", "sword-01"].map(id);
    let answers: Vec<_> = client.stream_many(ids.clone()).collect().await;
    let states: Vec<(String, &str)> = answers
        .iter()
        .map(|answer| {
            let (id, state) = answer.as_ref().expect("answered");
            let state = match state {
                DescriptorState::Ready(_) => "ready",
                DescriptorState::NotFound => "missing",
                DescriptorState::Burned => "burned",
                DescriptorState::Loading => "loading",
            };
            (id.to_string(), state)
        })
        .collect();
    assert_eq!(
        states,
        [
            ("sword-01".to_owned(), "ready"),
            ("missing-1".to_owned(), "missing"),
            ("sword-03".to_owned(), "burned"),
            ("sword-09".to_owned(), "ready"),
            ("sword-01".to_owned(), "ready"),
        ]
    );

    // Without the token every chunk fails, and each id says so on its own.
    let anonymous = DescriptorClient::builder(&url)
        .with_max_batch(2)
        .build()
        .expect("client");
    let failed: Vec<_> = anonymous.stream_many(ids).collect().await;
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(Result::is_err));
}
