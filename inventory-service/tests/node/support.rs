//! Support and operations over HTTP on node processes (SQLite and MongoDB):
//! roles from a tokens file, history, custody, a bad trade found and
//! reverted, and the operator audit log recording who did what.

use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::NodeProcess;

use crate::common::{SERVICE_TOKEN, node_command};

const SUPPORT: &str = "support-sam-secret-0001";
const OPERATOR: &str = "operator-olga-secret-01";

fn account(name: &str) -> OwnerId {
    OwnerId::account(UserId::parse(name).unwrap())
}

fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

/// A node whose tokens file names a support and an operator credential.
fn node(dir: &std::path::Path, extra: &[&str]) -> NodeProcess {
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("# role name secret\nsupport sam {SUPPORT}\noperator olga {OPERATOR}\n"),
    )
    .unwrap();
    let mut args = vec!["--tokens-file", tokens.to_str().unwrap()];
    args.extend_from_slice(extra);
    NodeProcess::spawn(node_command(dir, &args))
}

/// `method path` with `token` and an optional JSON body: the status and body.
async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn apply(base: &str, change: &Change) {
    let (status, body) = call(
        base,
        Method::POST,
        "/v1/changes",
        SERVICE_TOKEN,
        Some(serde_json::to_value(change).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn balance(base: &str, owner: &OwnerId, name: &str) -> u64 {
    let (_, body) = call(
        base,
        Method::GET,
        &format!("/v1/owners/{owner}"),
        SUPPORT,
        None,
    )
    .await;
    body["items"][name].as_u64().unwrap_or(0)
}

/// The whole support story on one node.
async fn a_bad_trade_is_found_reverted_and_audited(base: &str, tag: &str) {
    let (alice, bob) = (
        account(&format!("alice-{tag}")),
        account(&format!("bob-{tag}")),
    );
    apply(
        base,
        &Change::new(ChangeId::random()).grant(alice.clone(), item("sword"), qty(1)),
    )
    .await;
    apply(
        base,
        &Change::new(ChangeId::random()).grant(bob.clone(), item("gold"), qty(100)),
    )
    .await;
    let trade = Change::trade(
        ChangeId::random(),
        (alice.clone(), &[(item("sword"), qty(1))]),
        (bob.clone(), &[(item("gold"), qty(100))]),
    );
    apply(base, &trade).await;

    // Support finds the trade in alice's history.
    let (status, history) = call(
        base,
        Method::GET,
        &format!("/v1/owners/{alice}/history?limit=1"),
        SUPPORT,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let top = &history["entries"][0];
    assert_eq!(top["change_id"], trade.id.to_string());
    assert_eq!(top["kind"], "trade");
    assert_eq!(top["others"], json!([bob.to_string()]));
    assert_eq!(history["next_before"], 2);

    // Support may not revert; a game server may not read history; a
    // forged token is nobody.
    let revert_path = format!("/v1/changes/{}/revert", trade.id);
    let request = json!({ "id": ChangeId::random().to_string() });
    let (status, body) = call(
        base,
        Method::POST,
        &revert_path,
        SUPPORT,
        Some(request.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = call(
        base,
        Method::GET,
        &format!("/v1/owners/{alice}/history"),
        SERVICE_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        base,
        Method::GET,
        "/v1/audit-log",
        "forged-token-0123456789",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(base, Method::GET, "/v1/audit-log", SUPPORT, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The operator previews, then reverts.
    let (status, preview) = call(
        base,
        Method::POST,
        &format!("{revert_path}?dry_run=true"),
        OPERATOR,
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["undo"].as_array().unwrap().len(), 4);
    assert!(preview["applied"].is_null());
    assert_eq!(
        balance(base, &alice, "gold").await,
        100,
        "a preview writes nothing"
    );
    let (status, done) = call(
        base,
        Method::POST,
        &revert_path,
        OPERATOR,
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["applied"]["kind"], "revert");
    assert_eq!(balance(base, &alice, "sword").await, 1);
    assert_eq!(balance(base, &alice, "gold").await, 0);
    assert_eq!(balance(base, &bob, "gold").await, 100);
    let (status, again) = call(base, Method::POST, &revert_path, OPERATOR, Some(request)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["applied"], done["applied"],
        "a retry answers the same revert"
    );
    let other = json!({ "id": ChangeId::random().to_string() });
    let (status, body) = call(
        base,
        Method::POST,
        &revert_path,
        OPERATOR,
        Some(other.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_revertible"))
    );
    let revert_id = done["change_id"].as_str().unwrap();
    let (status, body) = call(
        base,
        Method::POST,
        &format!("/v1/changes/{revert_id}/revert"),
        OPERATOR,
        Some(other.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_revertible"))
    );
    let (status, body) = call(
        base,
        Method::POST,
        &format!("/v1/changes/{}/revert", ChangeId::random()),
        OPERATOR,
        Some(other.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_change"))
    );

    // The revert is in both histories.
    let (_, history) = call(
        base,
        Method::GET,
        &format!("/v1/owners/{bob}/history"),
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(history["entries"][0]["kind"], "revert");
    assert_eq!(
        history["entries"][0]["reverts"]["original"],
        trade.id.to_string()
    );

    // Spent items block a revert, naming who is short of what.
    let gift = Change::trade(
        ChangeId::random(),
        (bob.clone(), &[(item("gold"), qty(40))]),
        (alice.clone(), &[]),
    );
    apply(base, &gift).await;
    apply(
        base,
        &Change::new(ChangeId::random()).consume(alice.clone(), item("gold"), qty(30)),
    )
    .await;
    let gift_revert = format!("/v1/changes/{}/revert", gift.id);
    let (status, body) = call(
        base,
        Method::POST,
        &gift_revert,
        OPERATOR,
        Some(other.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("revert_blocked")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{alice} is 30 gold short")),
        "{message}"
    );
    assert_eq!(balance(base, &alice, "gold").await, 10, "nothing written");
    let (status, partial) = call(
        base,
        Method::POST,
        &format!("{gift_revert}?partial=true"),
        OPERATOR,
        Some(other),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(partial["blocked"][0]["short"], 30);
    assert_eq!(balance(base, &alice, "gold").await, 0);
    assert_eq!(balance(base, &bob, "gold").await, 70);

    // Bad input: coded, nothing written.
    for (path, code) in [
        (
            format!("/v1/owners/{alice}/history?limit=0"),
            "malformed_request",
        ),
        (
            format!("/v1/owners/{alice}/history?limit=501"),
            "batch_too_large",
        ),
        (
            format!("/v1/owners/{alice}/history?before=x"),
            "malformed_request",
        ),
        ("/v1/owners/nobody/history".to_owned(), "invalid_id"),
        ("/v1/items/wood/custody".to_owned(), "invalid_id"),
        (
            format!(
                "/v1/items/{}/custody",
                protocol::crafted_item_id(ChangeId::random())
            ),
            "not_found",
        ),
        ("/v1/audit-log?limit=9999".to_owned(), "batch_too_large"),
    ] {
        let (_, body) = call(base, Method::GET, &path, OPERATOR, None).await;
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    let (_, body) = call(
        base,
        Method::POST,
        &revert_path,
        OPERATOR,
        Some(json!({ "nope": 1 })),
    )
    .await;
    assert_eq!(body["code"], "malformed_request");

    // The audit log has who did what, newest first, forbidden attempts too.
    let (status, log) = call(base, Method::GET, "/v1/audit-log?limit=500", OPERATOR, None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let find = |actor: &str, action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["outcome"] == outcome
                && e["target"].as_str() == Some(&trade.id.to_string())
        })
    };
    assert!(
        find("sam", "POST /v1/changes/{id}/revert", "forbidden"),
        "{log}"
    );
    assert!(find("olga", "POST /v1/changes/{id}/revert", "ok"), "{log}");
    assert!(
        find("olga", "POST /v1/changes/{id}/revert", "not_revertible"),
        "{log}"
    );
    assert!(
        entries.iter().any(|e| e["actor"] == "sam"
            && e["action"] == "GET /v1/owners/{owner}/history"
            && e["owner"] == alice.to_string()),
        "{log}"
    );
    assert!(
        entries.iter().all(|e| e["role"] != "game_server"),
        "game servers' calls are not operator actions"
    );
}

#[tokio::test]
async fn support_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), &[]);
    a_bad_trade_is_found_reverted_and_audited(node.base(), "sqlite").await;
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn support_on_mongodb() {
    let dir = tempfile::tempdir().unwrap();
    let uri = testkit::mongodb_uri();
    let database = testkit::unique_name("support");
    let node = node(
        dir.path(),
        &["--mongodb-uri", &uri, "--mongodb-database", &database],
    );
    a_bad_trade_is_found_reverted_and_audited(node.base(), "mongo").await;
}

#[tokio::test]
async fn a_bad_tokens_file_stops_the_node_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "support sam short\n").unwrap();
    let output = node_command(dir.path(), &["--tokens-file", tokens.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
}
