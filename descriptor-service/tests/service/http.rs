//! The HTTP API through `app(descriptors, auth)` with `oneshot`, and once over a socket.

use axum::http::{Method, StatusCode};
use descriptor_service::conformance::{catalog, crafted};
use descriptor_service::{AuthConfig, Descriptors, MAX_DESCRIPTOR_BODY_BYTES, run};
use protocol::MAX_BATCH_IDS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{AS_READER, AS_WRITER, TestApp, sqlite_store};

#[tokio::test]
async fn create_is_idempotent_and_conflicts_on_different_content() {
    let app = TestApp::new();
    let sword = crafted("sword-1");
    let first = app.create(&sword).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.json, serde_json::to_value(&sword).unwrap());
    let retry = app.create(&sword).await;
    assert_eq!(retry.status, StatusCode::OK);
    let mut other = sword.clone();
    other.name = "Another".into();
    let conflict = app.create(&other).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.code(), "conflict");
    let stored = app.get("/v1/descriptors/sword-1").await;
    assert_eq!(stored.json["name"], sword.name);
}

#[tokio::test]
async fn single_get_is_cacheable_and_revalidates() {
    let app = TestApp::new();
    app.create(&crafted("sword-1")).await;
    let got = app.get("/v1/descriptors/sword-1").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["etag"], "\"r1\"");
    assert_eq!(
        got.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(got.headers["content-type"], "application/json");
    let not_modified = app
        .send(
            Method::GET,
            "/v1/descriptors/sword-1",
            None,
            &[("if-none-match", "\"r1\"")],
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers["etag"], "\"r1\"");
    let missing = app.get("/v1/descriptors/nothing").await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn batch_answers_found_missing_and_burned_once_per_id() {
    let app = TestApp::new();
    for id in ["a", "b", "c"] {
        app.create(&crafted(id)).await;
    }
    app.burn("c").await;
    let answer = app.batch(&["a", "x", "b", "a", "c", "x"]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.ids("descriptors"), ["a", "b"]);
    assert_eq!(answer.ids("missing"), ["x"]);
    assert_eq!(answer.ids("burned"), ["c"]);
    let typed: protocol::BatchGetResponse = serde_json::from_value(answer.json).unwrap();
    assert_eq!(typed.descriptors[0], crafted("a"));
}

#[tokio::test]
async fn a_missed_batch_costs_exactly_one_store_query() {
    let app = TestApp::new();
    let ids: Vec<String> = (0..MAX_BATCH_IDS).map(|n| format!("item-{n}")).collect();
    for id in ids.iter().step_by(3) {
        app.create(&crafted(id)).await;
    }
    // Creates put descriptors in the cache; start from a cold cache.
    app.descriptors.cache().invalidate_all();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let cold = app.batch(&refs).await;
    assert_eq!(cold.status, StatusCode::OK);
    assert_eq!(cold.ids("descriptors").len(), 334);
    assert_eq!(cold.ids("missing").len(), 666);
    assert_eq!(app.store.reads(), 1, "one query for 1,000 misses");
    assert_eq!(app.store.ids_read(), 1_000);

    // Warm: live ids from the cache, missing ones from the negative cache.
    let warm = app.batch(&refs).await;
    assert_eq!(warm.json, cold.json);
    assert_eq!(app.store.reads(), 1, "no query when everything is cached");

    // A partly warm batch asks the store only for its misses, in one query.
    let mut mixed = refs[..10].to_vec();
    mixed.extend(["new-1", "new-2", "new-3"]);
    app.batch(&mixed).await;
    assert_eq!(app.store.reads(), 2);
    assert_eq!(app.store.ids_read(), 1_003);
    assert_eq!(app.descriptors.metrics().store_reads(), 2);
}

#[tokio::test]
async fn concurrent_batches_missing_the_same_ids_share_one_load() {
    let app = TestApp::new();
    let ids: Vec<String> = (0..100).map(|n| format!("item-{n}")).collect();
    for id in &ids {
        app.create(&crafted(id)).await;
    }
    app.descriptors.cache().invalidate_all();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let answers = futures::future::join_all((0..8).map(|_| app.batch(&refs))).await;
    for answer in &answers {
        assert_eq!(answer.ids("descriptors").len(), 100);
    }
    assert_eq!(app.store.reads(), 1);
}

#[tokio::test]
async fn a_created_id_leaves_the_negative_cache() {
    let app = TestApp::new();
    assert_eq!(app.batch(&["later"]).await.ids("missing"), ["later"]);
    app.create(&crafted("later")).await;
    assert_eq!(app.batch(&["later"]).await.ids("descriptors"), ["later"]);
}

#[tokio::test]
async fn burn_is_a_tombstone_and_idempotent() {
    let app = TestApp::new();
    app.create(&crafted("sword-1")).await;
    app.get("/v1/descriptors/sword-1").await;
    let burned = app.burn("sword-1").await;
    assert_eq!(burned.status, StatusCode::OK);
    assert_eq!(burned.json["outcome"], "burned");
    let again = app.burn("sword-1").await;
    assert_eq!(again.json["outcome"], "already_burned");
    let got = app.get("/v1/descriptors/sword-1").await;
    assert_eq!((got.status, got.code()), (StatusCode::GONE, "burned"));
    let never = app.burn("never").await;
    assert_eq!(
        (never.status, never.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(app.batch(&["never"]).await.ids("missing"), ["never"]);
    let recreate = app.create(&crafted("sword-1")).await;
    assert_eq!(
        (recreate.status, recreate.code()),
        (StatusCode::GONE, "burned")
    );
}

#[tokio::test]
async fn catalog_descriptors_are_revised_crafted_ones_are_not() {
    let app = TestApp::new();
    app.create(&catalog("iron-sword", 1)).await;
    app.get("/v1/descriptors/iron-sword").await;
    let put = |descriptor: protocol::Descriptor| {
        let body = serde_json::to_string(&descriptor).unwrap();
        let path = format!("/v1/descriptors/{}", descriptor.id);
        let app = &app;
        async move { app.send(Method::PUT, &path, Some(body), &[AS_WRITER]).await }
    };
    let revised = put(catalog("iron-sword", 2)).await;
    assert_eq!(revised.status, StatusCode::OK, "{revised:?}");
    let got = app.get("/v1/descriptors/iron-sword").await;
    assert_eq!(got.json["revision"], 2);
    assert_eq!(got.headers["etag"], "\"r2\"");
    assert_eq!(got.headers["cache-control"], "public, no-cache");
    let skipped = put(catalog("iron-sword", 4)).await;
    assert_eq!(
        (skipped.status, skipped.code()),
        (StatusCode::CONFLICT, "conflict")
    );

    app.create(&crafted("sword-1")).await;
    let mut as_catalog = catalog("sword-1", 2);
    as_catalog.name = "Renamed".into();
    let immutable = put(as_catalog).await;
    assert_eq!(
        (immutable.status, immutable.code()),
        (StatusCode::CONFLICT, "descriptor_immutable")
    );
    let unknown = put(catalog("nothing", 2)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// One bad request: what it is, and the status and code it must get.
struct Bad {
    method: Method,
    path: &'static str,
    body: Option<String>,
    headers: Vec<(&'static str, &'static str)>,
    status: StatusCode,
    code: &'static str,
}

fn bad(
    method: Method,
    path: &'static str,
    body: Option<String>,
    headers: &[(&'static str, &'static str)],
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        method,
        path,
        body,
        headers: headers.to_vec(),
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_writes_nothing() {
    let app = TestApp::new();
    let good = serde_json::to_value(crafted("bad-1")).unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = good.clone();
        edit(&mut value);
        Some(value.to_string())
    };
    let too_many: Vec<String> = (0..=MAX_BATCH_IDS).map(|n| format!("i{n}")).collect();
    let post = Method::POST;
    let cases = [
        bad(
            post.clone(),
            "/v1/descriptors",
            Some("{".into()),
            &[AS_WRITER],
            400,
            "malformed_request",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| v["colour"] = "red".into()),
            &[AS_WRITER],
            400,
            "malformed_request",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| v["id"] = "bad id".into()),
            &[AS_WRITER],
            400,
            "malformed_request",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| v["name"] = "".into()),
            &[AS_WRITER],
            422,
            "invalid_descriptor",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| v["revision"] = 2.into()),
            &[AS_WRITER],
            422,
            "invalid_descriptor",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| v["attributes"]["lore"] = "x".repeat(2_000).into()),
            &[AS_WRITER],
            201,
            "",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            with(&|v| {
                for n in 0..10 {
                    v["attributes"][format!("lore{n}")] = "x".repeat(2_000).into();
                }
            }),
            &[AS_WRITER],
            413,
            "payload_too_large",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            Some(" ".repeat(MAX_DESCRIPTOR_BODY_BYTES + 1)),
            &[AS_WRITER],
            413,
            "payload_too_large",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            Some(good.to_string()),
            &[],
            401,
            "unauthorized",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            Some(good.to_string()),
            &[("authorization", "Bearer wrong")],
            401,
            "unauthorized",
        ),
        bad(
            post.clone(),
            "/v1/descriptors",
            Some(good.to_string()),
            &[AS_READER],
            403,
            "forbidden",
        ),
        bad(
            Method::DELETE,
            "/v1/descriptors/bad-1",
            None,
            &[AS_READER],
            403,
            "forbidden",
        ),
        bad(
            Method::DELETE,
            "/v1/descriptors/bad%20id",
            None,
            &[AS_WRITER],
            400,
            "invalid_id",
        ),
        bad(
            Method::GET,
            "/v1/descriptors/bad%20id",
            None,
            &[],
            400,
            "invalid_id",
        ),
        bad(
            post.clone(),
            "/v1/descriptors/batch",
            Some(r#"{"ids":["ok","bad id"]}"#.into()),
            &[],
            400,
            "invalid_id",
        ),
        bad(
            post.clone(),
            "/v1/descriptors/batch",
            Some(r#"{"ids":[],"x":1}"#.into()),
            &[],
            400,
            "malformed_request",
        ),
        bad(
            post.clone(),
            "/v1/descriptors/batch",
            Some(serde_json::json!({ "ids": too_many }).to_string()),
            &[],
            413,
            "batch_too_large",
        ),
        bad(Method::GET, "/v1/nowhere", None, &[], 404, "not_found"),
        bad(
            Method::PATCH,
            "/v1/descriptors/bad-1",
            None,
            &[AS_WRITER],
            405,
            "method_not_allowed",
        ),
        bad(
            Method::GET,
            "/v1/descriptors/%FF",
            None,
            &[],
            400,
            "malformed_request",
        ),
    ];
    for case in cases {
        let response = app
            .send(
                case.method.clone(),
                case.path,
                case.body.clone(),
                &case.headers,
            )
            .await;
        assert_eq!(
            response.status, case.status,
            "{} {}: {response:?}",
            case.method, case.path
        );
        if !case.code.is_empty() {
            assert_eq!(response.code(), case.code, "{} {}", case.method, case.path);
            assert!(response.json["message"].is_string());
        }
    }
    // Only the one acceptable create above was written.
    let answer = app.batch(&["bad-1"]).await;
    assert_eq!(answer.ids("descriptors"), ["bad-1"]);
    assert_eq!(
        answer.json["descriptors"][0]["attributes"]["lore"]
            .as_str()
            .map(str::len),
        Some(2_000)
    );
}

#[tokio::test]
async fn closed_reads_need_a_token() {
    let app = TestApp::with_auth(
        AuthConfig::default()
            .with_open_reads(false)
            .with_write_token("w")
            .with_read_token("r"),
    );
    let anonymous = app.get("/v1/descriptors/x").await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let reader = app
        .send(
            Method::GET,
            "/v1/descriptors/x",
            None,
            &[("authorization", "Bearer r")],
        )
        .await;
    assert_eq!(reader.status, StatusCode::NOT_FOUND);
    let batch = app
        .send(
            Method::POST,
            "/v1/descriptors/batch",
            Some(r#"{"ids":["x"]}"#.into()),
            &[],
        )
        .await;
    assert_eq!(batch.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::new();
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    app.create(&crafted("a")).await;
    app.batch(&["a", "b"]).await;
    app.batch(&["a", "b"]).await;
    let response = app.router.clone().oneshot_text("/metrics").await;
    for name in [
        "descriptors_cache_hits_total 2",
        "descriptors_negative_cache_hits_total 1",
        "descriptors_cache_misses_total 1",
        "descriptors_store_queries_total{op=\"get_many\"} 1",
        "descriptors_store_queries_total{op=\"create\"} 1",
        "descriptors_batch_ids_count 2",
        "descriptors_request_seconds_bucket{route=\"/v1/descriptors/batch\"",
    ] {
        assert!(response.contains(name), "{name} not in\n{response}");
    }
}

trait OneshotText {
    async fn oneshot_text(self, path: &str) -> String;
}

impl OneshotText for axum::Router {
    async fn oneshot_text(self, path: &str) -> String {
        use tower::ServiceExt;
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = self.oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

async fn raw_http(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_over_a_real_socket_until_shutdown() {
    let (_dir, store) = sqlite_store();
    let descriptors = Descriptors::builder(std::sync::Arc::new(store)).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, descriptors, crate::common::auth(), async {
        stopped.await.ok();
    }));
    let body = serde_json::to_string(&crafted("sock-1")).unwrap();
    let created = raw_http(
        addr,
        format!(
            "POST /v1/descriptors HTTP/1.1\r\nhost: x\r\nauthorization: Bearer writer-token\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let batch = r#"{"ids":["sock-1","sock-2"]}"#;
    let answer = raw_http(
        addr,
        format!(
            "POST /v1/descriptors/batch HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{batch}",
            batch.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""missing":["sock-2"]"#), "{answer}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn serves_an_openapi_document_matching_the_api() {
    let app = TestApp::new();
    let response = app.get("/v1/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    let doc = response.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/v1/descriptors/batch", "post"),
        ("/v1/descriptors", "post"),
        ("/v1/descriptors/{id}", "get"),
        ("/v1/descriptors/{id}", "put"),
        ("/v1/descriptors/{id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    // Nothing else is documented.
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 6, "{:?}", paths.keys().collect::<Vec<_>>());

    // The schemas describe what the service actually sends.
    let schemas = &doc["components"]["schemas"];
    let sent = serde_json::to_value(crafted("sword-1")).unwrap();
    for key in sent.as_object().unwrap().keys() {
        assert!(
            schemas["Descriptor"]["properties"][key].is_object(),
            "Descriptor.{key} missing from the schema"
        );
    }
    let codes: Vec<&str> = schemas["ErrorBody"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "malformed_request",
        "invalid_id",
        "invalid_descriptor",
        "batch_too_large",
        "payload_too_large",
        "unauthorized",
        "forbidden",
        "not_found",
        "burned",
        "conflict",
        "descriptor_immutable",
    ] {
        assert!(codes.contains(&code), "{code} not in the ErrorBody schema");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_item_named_batch_is_served_beside_the_batch_route() {
    let app = TestApp::new();
    let created = app.create(&crafted("batch")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let got = app.get("/v1/descriptors/batch").await;
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.json["id"], "batch");
    assert_eq!(app.batch(&["batch"]).await.ids("descriptors"), ["batch"]);
    let burned = app.burn("batch").await;
    assert_eq!(burned.json["outcome"], "burned");
    assert_eq!(
        app.get("/v1/descriptors/batch").await.status,
        StatusCode::GONE
    );
}

#[tokio::test]
async fn the_listing_pages_in_id_order_with_its_filters() {
    let app = TestApp::new();
    for n in 0..5 {
        let mut sword = crafted(&format!("sword-{n}"));
        sword.created_at = 1_700_000_000_000 + n * 1_000;
        app.create(&sword).await;
    }
    app.create(&catalog("tpl", 1)).await;
    app.burn("sword-4").await;

    let first = app.get("/v1/descriptors?kind=crafted&limit=2").await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.ids("descriptors"), ["sword-0", "sword-1"]);
    let mut ids = first.ids("descriptors");
    let mut cursor = first.json["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let page = app
            .get(&format!(
                "/v1/descriptors?kind=crafted&limit=2&cursor={next}"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        ids.extend(page.ids("descriptors"));
        cursor = page.json["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(ids, ["sword-0", "sword-1", "sword-2", "sword-3"]);
    assert_eq!(first.json.get("total"), None, "counted only when asked");
    let counted = app
        .get("/v1/descriptors?kind=crafted&limit=2&with_total=true")
        .await;
    assert_eq!(counted.json["total"], 4, "{counted:?}");
    assert_eq!(counted.ids("descriptors"), ["sword-0", "sword-1"]);

    let window = app
        .get("/v1/descriptors?crafted_by=alice&since=1700000001000&until=1700000003000")
        .await;
    assert_eq!(window.ids("descriptors"), ["sword-1", "sword-2"]);
    assert_eq!(window.json["next_cursor"], serde_json::Value::Null);
    let everything = app.get("/v1/descriptors?include_burned=true").await;
    assert_eq!(everything.ids("burned"), ["sword-4"]);
    assert_eq!(everything.ids("descriptors").len(), 5);
    let reader = app
        .send(Method::GET, "/v1/descriptors", None, &[AS_READER])
        .await;
    assert_eq!(reader.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_listing_queries_are_refused_with_codes() {
    let app = TestApp::new();
    for n in 0..3 {
        app.create(&crafted(&format!("sword-{n}"))).await;
    }
    let page = app.get("/v1/descriptors?kind=crafted&limit=1").await;
    let cursor = page.json["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    let cases = [
        ("/v1/descriptors?limit=0", "unprocessable"),
        ("/v1/descriptors?limit=1001", "unprocessable"),
        ("/v1/descriptors?since=10&until=5", "unprocessable"),
        (
            "/v1/descriptors?include_burned=true&kind=crafted",
            "unprocessable",
        ),
        ("/v1/descriptors?cursor=nonsense", "unprocessable"),
        (&format!("/v1/descriptors?cursor={cursor}"), "unprocessable"),
        (
            &format!("/v1/descriptors?kind=catalog&cursor={cursor}"),
            "unprocessable",
        ),
        ("/v1/descriptors?owner=alice", "malformed_request"),
        ("/v1/descriptors?kind=weapon", "malformed_request"),
        ("/v1/descriptors?limit=-3", "malformed_request"),
        ("/v1/descriptors?with_total=maybe", "malformed_request"),
        ("/v1/descriptors?crafted_by=no%20spaces", "invalid_id"),
    ];
    for (path, code) in cases {
        let answer = app.get(path).await;
        assert_eq!(answer.code(), code, "{path}: {answer:?}");
        assert!(answer.status.is_client_error(), "{path}");
    }
}

/// A cursor names the store it was issued over: a replica over the same
/// store (or the service restarted) resumes it, a service over another store
/// refuses it rather than paging its own descriptors from that id.
#[tokio::test]
async fn a_cursor_from_a_service_over_another_store_is_refused() {
    let app = TestApp::new();
    let other = TestApp::new();
    for n in 0..3 {
        app.create(&crafted(&format!("sword-{n}"))).await;
        other.create(&crafted(&format!("sword-{n}"))).await;
    }
    let page = app.get("/v1/descriptors?limit=1").await;
    let cursor = page.json["next_cursor"].as_str().expect("a cursor");
    let resume = format!("/v1/descriptors?limit=1&cursor={cursor}");

    let replica = descriptor_service::app(
        Descriptors::builder(app.store.clone()).build(),
        crate::common::auth(),
    );
    let resumed = crate::common::send(&replica, Method::GET, &resume, None, &[]).await;
    assert_eq!(resumed.status, StatusCode::OK, "{resumed:?}");
    assert_eq!(resumed.ids("descriptors"), ["sword-1"]);

    let refused = other.get(&resume).await;
    assert_eq!(refused.code(), "unprocessable", "{refused:?}");
    assert!(
        refused.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("another store")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_listing_needs_the_read_token_when_reads_are_closed() {
    let app = TestApp::with_auth(
        AuthConfig::default()
            .with_open_reads(false)
            .with_write_token("w")
            .with_read_token("r"),
    );
    let anonymous = app.get("/v1/descriptors").await;
    assert_eq!(anonymous.code(), "unauthorized");
    let reader = app
        .send(
            Method::GET,
            "/v1/descriptors",
            None,
            &[("authorization", "Bearer r")],
        )
        .await;
    assert_eq!(reader.status, StatusCode::OK, "{reader:?}");
}
