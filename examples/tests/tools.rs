//! The SDK's tool API (`stream_many`, `list`, the bearer token) against a
//! live descriptor service over SQLite, reads closed behind a read token.

use std::sync::Arc;

use descriptor_service::conformance::crafted;
use descriptor_service::{AuthConfig, Descriptors, SqliteStore};
use futures::{StreamExt, TryStreamExt};
use protocol::{Descriptor, ItemId};
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
            with_total: true,
            ..ListFilter::default()
        })
        .try_collect()
        .await
        .expect("list");
    assert_eq!(pages[0].total, Some(9), "the first page counts the listing");
    assert!(pages[1..].iter().all(|page| page.total.is_none()));
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

/// Runs the `descriptors` binary with `args` and `stdin`; answers its exit
/// code and standard output.
fn cli(url: &str, args: &[&str], stdin: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_descriptors"))
        .args(["--url", url, "--token", READ_TOKEN, "--quiet"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn the CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("the CLI ends");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8(output.stdout).expect("utf-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_resumes_gets_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = service(&dir).await;
    let out = dir.path().join("export.ndjson");
    let cursor = dir.path().join("export.cursor");
    let (out_s, cursor_s) = (out.to_str().unwrap(), cursor.to_str().unwrap());
    let export = [
        "export",
        "--page",
        "3",
        "--out",
        out_s,
        "--cursor-file",
        cursor_s,
    ];
    let (code, _) = tokio::task::block_in_place(|| cli(&url, &export, ""));
    assert_eq!(code, 0);
    let full = std::fs::read_to_string(&out).expect("export");
    assert_eq!(full.lines().count(), 9);
    // Written as the service sent them: each line is a whole descriptor.
    let first_line: Descriptor = serde_json::from_str(full.lines().next().unwrap()).expect("json");
    assert_eq!(first_line, crafted("sword-00"));

    // An export interrupted after its first page resumes from its cursor.
    let client = DescriptorClient::builder(&url)
        .with_bearer_token(READ_TOKEN)
        .build()
        .expect("client");
    let first = client
        .list(ListFilter {
            limit: 3,
            ..ListFilter::default()
        })
        .try_next()
        .await
        .expect("page")
        .expect("a first page");
    std::fs::write(&cursor, first.next_cursor.expect("a cursor")).expect("cursor");
    let head: String = full.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&out, head).expect("truncate");
    let resume = [&export[..], &["--resume"]].concat();
    let (code, _) = tokio::task::block_in_place(|| cli(&url, &resume, ""));
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&out).expect("resumed"), full);

    let (code, got) =
        tokio::task::block_in_place(|| cli(&url, &["get"], "sword-01\nmissing-1\nsword-03\n"));
    assert_eq!(code, 3, "some ids were not found");
    let lines: Vec<serde_json::Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["id"], "sword-01");
    assert_eq!(lines[1]["state"], "missing");
    assert_eq!(lines[2]["state"], "burned");
    let (code, _) = tokio::task::block_in_place(|| cli(&url, &["get", "sword-02"], ""));
    assert_eq!(code, 0);

    let (code, stats) = tokio::task::block_in_place(|| cli(&url, &["stats"], ""));
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(stats["live_by_kind"]["crafted"], 9);
    assert_eq!(stats["burned"], 1);
    assert_eq!(stats["crafted_per_day"]["2023-11-14"], 9);

    let (code, _) = tokio::task::block_in_place(|| cli(&url, &["export", "--page", "0"], ""));
    assert_eq!(code, 1, "the service refuses the page size");
    let (code, _) = tokio::task::block_in_place(|| cli(&url, &["export", "--kind", "x"], ""));
    assert_eq!(code, 2, "a bad argument");
}
