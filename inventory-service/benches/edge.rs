//! The client edge, in three figures (`cargo xtask bench edge`):
//!
//! 1. Bytes on the wire for a single-item delta (JSON and MessagePack, with
//!    the WebSocket frame header) against a full snapshot of a 100-item
//!    inventory: the point of sending deltas.
//! 2. Latency from the gameplay API call on node A to the delta decoded by a
//!    client of node B (two nodes over one Redis and one SQLite store), p50
//!    and p99, against the raw Redis pub/sub round trip measured in the same
//!    run, and against the API call alone (the durable write).
//! 3. Many concurrent clients on one node (the release binary, in its own
//!    process): resident memory per idle client, then delta fan-out
//!    throughput against a raw tokio-tungstenite send loop to as many clients.
//!
//! `EDGE_BENCH_CLIENTS` sets the number of idle clients (default and
//! most 50,000); the harness raises its open-file limit (children inherit it).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use inventory_core::{RedisBusConfig, SqliteConfig, SqliteStore};
use inventory_service::{BusChoice, ClientTokens, Node, ServiceToken};
use protocol::{
    ChangeId, ChangeKind, ClientMessage, Encoding, ItemDelta, ItemId, OwnerDelta, OwnerId,
    OwnerSnapshot, ServerMessage, UserId, Version,
};
use serde_json::json;
use testkit::bench::{GoalOp, LatencyRecorder, goal};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const SERVICE_TOKEN: &str = "bench-service-token-0123";
const JWT_SECRET: &str = "bench-jwt-secret-0123456789";
const LATENCY_SAMPLES: usize = 300;
const FANOUT_CLIENTS: usize = 1000;
const FANOUT_SECONDS: u64 = 5;

type Client = WebSocketStream<TcpStream>;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut results = Vec::new();
    results.extend(figure_1());
    results.extend(runtime.block_on(figure_2()));
    results.extend(runtime.block_on(figure_3()));
    println!();
    for (name, figure, value, unit, op, target) in results {
        goal(name, figure, value, unit, op, target);
    }
}

type Goal = (&'static str, &'static str, f64, &'static str, GoalOp, f64);

/// A crafted item's id, as most ids in the reference game were.
fn crafted(n: usize) -> ItemId {
    ItemId::parse(format!("c-{:032x}", n as u128 * 0x9e37_79b9_7f4a_7c15)).unwrap()
}

/// The WebSocket header of a server frame (unmasked) of `len` bytes.
fn ws_header(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

fn figure_1() -> Vec<Goal> {
    let owner = OwnerId::parse("c:player-00042:hero").unwrap();
    let delta = ServerMessage::Delta {
        change_id: ChangeId::random(),
        kind: ChangeKind::Adjust,
        owner: OwnerDelta {
            owner: owner.clone(),
            version: Version::new(1234),
            deltas: vec![ItemDelta {
                item: crafted(7),
                change: -3,
            }],
        },
    };
    let snapshot = ServerMessage::Snapshot {
        owners: vec![OwnerSnapshot {
            owner,
            version: Version::new(1234),
            items: (0..100).map(|n| (crafted(n), 1 + n as u64 * 37)).collect(),
        }],
    };
    println!("figure 1: bytes on the wire (payload + WebSocket header)");
    println!(
        "{:<12} {:>14} {:>22} {:>8}",
        "encoding", "1-item delta", "100-item snapshot", "ratio"
    );
    let mut sizes = Vec::new();
    for encoding in Encoding::ALL {
        let d = protocol::encode_server(encoding, &delta).unwrap().len();
        let s = protocol::encode_server(encoding, &snapshot).unwrap().len();
        let (d, s) = (d + ws_header(d), s + ws_header(s));
        println!(
            "{:<12} {:>14} {:>22} {:>7.1}x",
            encoding.subprotocol(),
            d,
            s,
            s as f64 / d as f64
        );
        sizes.push((d as f64, s as f64));
    }
    let (json, msgpack) = (sizes[0], sizes[1]);
    vec![
        (
            "edge",
            "snapshot_over_delta_json",
            json.1 / json.0,
            "x",
            GoalOp::AtLeast,
            20.0,
        ),
        (
            "edge",
            "msgpack_over_json_delta",
            msgpack.0 / json.0,
            "x",
            GoalOp::AtMost,
            1.0,
        ),
    ]
}

async fn connect_client(url: &str, token: &str, source: Option<IpAddr>) -> Client {
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1/ws")
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        Encoding::Json.subprotocol().parse().unwrap(),
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .unwrap();
    let hello = ClientMessage::Hello {
        token: token.into(),
        resume: None,
    };
    let frame = protocol::encode_client(Encoding::Json, &hello).unwrap();
    ws.send(Message::text(String::from_utf8(frame).unwrap()))
        .await
        .unwrap();
    // Welcome, then the snapshot.
    for _ in 0..2 {
        next_message(&mut ws).await;
    }
    ws
}

async fn next_message(ws: &mut Client) -> ServerMessage {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return protocol::decode_server(Encoding::Json, text.as_bytes()).unwrap();
            }
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

fn tokens() -> ClientTokens {
    ClientTokens::hs256(JWT_SECRET.as_bytes()).unwrap()
}

fn token(user: &str) -> String {
    tokens().issue(&UserId::parse(user).unwrap(), 3600).unwrap()
}

fn grant(owner: &str, item: &str, qty: i64) -> serde_json::Value {
    json!({"id": ChangeId::random(), "ops": [{"op": "grant", "owner": owner, "item": item, "qty": qty}]})
}

async fn figure_2() -> Vec<Goal> {
    let redis_server = testkit::RedisServer::start();
    let url = redis_server.url();

    // The baseline: a raw publish → subscriber round trip.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut subscriber = client.get_async_pubsub().await.unwrap();
    subscriber.subscribe("bench:rtt").await.unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let payload = vec![b'x'; 200];
    let mut raw = LatencyRecorder::new();
    {
        let mut messages = subscriber.on_message();
        for _ in 0..LATENCY_SAMPLES {
            let start = Instant::now();
            let _: i64 = redis::cmd("PUBLISH")
                .arg("bench:rtt")
                .arg(&payload)
                .query_async(&mut publisher)
                .await
                .unwrap();
            messages.next().await.unwrap();
            raw.record(start.elapsed());
        }
    }

    // Two nodes over one store and one Redis; a client on B.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn inventory_core::InventoryStore> =
        Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("inv.db"))).unwrap());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let state = Node::builder()
            .store(store.clone())
            .bus(BusChoice::Redis(RedisBusConfig::new(url.clone())))
            .tokens(ServiceToken::new(SERVICE_TOKEN).unwrap(), tokens())
            .build()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(inventory_service::run(
            listener,
            state,
            std::future::pending(),
        ));
        nodes.push(addr);
    }
    let (a, b) = (nodes[0], nodes[1]);
    let mut on_b = connect_client(&format!("ws://{b}/v1/ws"), &token("lat"), None).await;
    let http = reqwest::Client::new();
    let changes = format!("http://{a}/v1/changes");
    let (mut e2e, mut api) = (LatencyRecorder::new(), LatencyRecorder::new());
    for _ in 0..LATENCY_SAMPLES {
        let start = Instant::now();
        let response = async {
            let response = http
                .post(&changes)
                .bearer_auth(SERVICE_TOKEN)
                .json(&grant("a:lat", "gold", 1))
                .send()
                .await;
            (response, start.elapsed())
        };
        let ((response, answered), delta) = tokio::join!(response, async {
            loop {
                if let ServerMessage::Delta { .. } = next_message(&mut on_b).await {
                    return start.elapsed();
                }
            }
        });
        assert!(response.unwrap().status().is_success());
        api.record(answered);
        e2e.record(delta);
    }
    println!("\nfigure 2: latency, gameplay API on node A → delta decoded by a client of node B");
    raw.report("edge", "redis_pubsub_rtt");
    api.report("edge", "api_call_on_a");
    e2e.report("edge", "api_a_to_client_b");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50_budget = ms(api.p50()) + ms(raw.p50());
    let p99_budget = ms(api.p99()) + ms(raw.p99());
    println!(
        "e2e p50 {:.2} ms vs (api p50 + redis p50) {:.2} ms; e2e p99 {:.2} ms vs (api p99 + redis p99) {:.2} ms",
        ms(e2e.p50()),
        p50_budget,
        ms(e2e.p99()),
        p99_budget
    );
    vec![
        (
            "edge",
            "e2e_p50_over_api_plus_redis",
            ms(e2e.p50()) / p50_budget,
            "x",
            GoalOp::AtMost,
            1.5,
        ),
        (
            "edge",
            "e2e_p99_over_api_plus_redis",
            ms(e2e.p99()) / p99_budget,
            "x",
            GoalOp::AtMost,
            1.5,
        ),
    ]
}

/// Raises this process's open-file limit (children inherit it); returns it.
fn raise_open_files(wanted: u64) -> u64 {
    use rlimit::Resource;
    let (_, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap_or((1024, 1024));
    if hard < wanted && rlimit::setrlimit(Resource::NOFILE, wanted, wanted).is_ok() {
        return wanted;
    }
    rlimit::increase_nofile_limit(wanted).unwrap_or(1024)
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn figure_3() -> Vec<Goal> {
    let wanted: usize = std::env::var("EDGE_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
        .min(50_000);
    let limit = raise_open_files(2 * 50_000 + 10_000);
    let clients = wanted.min((limit as usize).saturating_sub(FANOUT_CLIENTS + 1000));
    println!("\nfigure 3: {clients} idle clients on one node (open-file limit {limit})");

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_inventory-service"))
            .args(["--listen", &addr.to_string()])
            .arg("--sqlite-path")
            .arg(dir.path().join("inv.db"))
            .args(["--service-token", SERVICE_TOKEN, "--jwt-secret", JWT_SECRET])
            .args(["--client-idle-secs", "3600", "--client-queue", "4096"])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the node binary starts"),
    );
    let pid = child.0.id();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every player holds ten stacks.
    let seeded = Instant::now();
    futures::stream::iter(0..clients)
        .for_each_concurrent(64, |n| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let ops: Vec<_> = (0..10)
                    .map(|i| json!({"op": "grant", "owner": format!("a:p{n}"), "item": crafted(i), "qty": 5}))
                    .collect();
                let response = http
                    .post(format!("{base}/v1/changes"))
                    .bearer_auth(SERVICE_TOKEN)
                    .json(&json!({"id": ChangeId::random(), "ops": ops}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
        })
        .await;
    println!(
        "seeded {clients} players in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = format!("ws://{addr}/v1/ws");
    // First one connection per player (the player's feed, cache and bus
    // subscription come with it), then a second connection for each of the
    // same players (the socket and session alone).
    let players = clients / 2;
    let before = testkit::bench::rss_of(pid).unwrap_or(0);
    let connecting = Instant::now();
    let mut idle = connect_many(&url, 0..players, 1).await;
    let connect_secs = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = testkit::bench::rss_of(pid).unwrap_or(0);
    idle.extend(connect_many(&url, 0..players, 2).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = testkit::bench::rss_of(pid).unwrap_or(0);
    let per_client = first.saturating_sub(before) as f64 / players as f64;
    let per_connection = second.saturating_sub(first) as f64 / players as f64;
    println!(
        "connected {players} players' clients in {connect_secs:.1} s ({:.0}/s): node RSS {:.1} → {:.1} MiB, {:.1} KiB per idle client with its player (feed, cache, subscription, socket); a second connection each: → {:.1} MiB, {:.1} KiB per extra connection; {} connections open",
        players as f64 / connect_secs,
        before as f64 / 1048576.0,
        first as f64 / 1048576.0,
        per_client / 1024.0,
        second as f64 / 1048576.0,
        per_connection / 1024.0,
        idle.len()
    );

    // Fan-out: many connections of one hot player, a steady stream of
    // changes to it.
    let hot = token("hot");
    let fanout: Vec<Client> = futures::stream::iter(0..FANOUT_CLIENTS)
        .map(|n| {
            let (url, hot) = (url.clone(), hot.clone());
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 2, (n % 200) as u8 + 1));
            async move { connect_client(&url, &hot, Some(source)).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let received = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let last_frame = Arc::new(std::sync::Mutex::new(Instant::now()));
    let readers: Vec<_> = fanout
        .into_iter()
        .map(|mut ws| {
            let (received, snapshots, last_frame) =
                (received.clone(), snapshots.clone(), last_frame.clone());
            tokio::spawn(async move {
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    if text.starts_with(r#"{"type":"delta""#) {
                        received.fetch_add(1, Ordering::Relaxed);
                    } else {
                        snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    *last_frame.lock().unwrap() = Instant::now();
                }
            })
        })
        .collect();
    let applied = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (http, base, applied) = (http.clone(), base.clone(), applied.clone());
            tokio::spawn(async move {
                while start.elapsed() < Duration::from_secs(FANOUT_SECONDS) {
                    let response = http
                        .post(format!("{base}/v1/changes"))
                        .bearer_auth(SERVICE_TOKEN)
                        .json(&grant("a:hot", "gold", 1))
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success());
                    applied.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let expected = applied.load(Ordering::Relaxed) * FANOUT_CLIENTS as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    let elapsed = last_frame.lock().unwrap().duration_since(start);
    let node_rate = delivered as f64 / elapsed.as_secs_f64();
    let slow = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("inventory_slow_client_disconnects_total "))
        .unwrap_or("0")
        .to_owned();
    println!(
        "node fan-out: {} changes × {FANOUT_CLIENTS} clients: {delivered}/{expected} deltas delivered in {:.2} s = {:.0} deltas/s; {} snapshots instead of deltas the feed fell behind on; slow-client disconnects: {slow}",
        applied.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        node_rate,
        snapshots.load(Ordering::Relaxed)
    );
    for reader in readers {
        reader.abort();
    }
    let connected = idle.len();
    drop(idle);
    drop(child);

    let per_client_raw = (delivered / FANOUT_CLIENTS as u64).max(1);
    let raw_rate = raw_fanout(per_client_raw).await;
    println!(
        "raw tokio-tungstenite send loop: {per_client_raw} frames × {FANOUT_CLIENTS} clients = {raw_rate:.0} frames/s; node/raw = {:.2}",
        node_rate / raw_rate
    );
    vec![
        (
            "edge",
            "rss_per_idle_client",
            per_client / 1024.0,
            "KiB",
            GoalOp::AtMost,
            16.0,
        ),
        (
            "edge",
            "connected_clients",
            connected as f64,
            "clients",
            GoalOp::AtLeast,
            50_000.0,
        ),
        (
            "edge",
            "fanout_node_over_raw",
            node_rate / raw_rate,
            "x",
            GoalOp::AtLeast,
            0.5,
        ),
    ]
}

/// Connects one client per player in `players`, from source addresses
/// `127.0.<lane>.x`: one address has fewer ephemeral ports than 50,000
/// connections need.
async fn connect_many(url: &str, players: std::ops::Range<usize>, lane: u8) -> Vec<Client> {
    futures::stream::iter(players)
        .map(|n| {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, lane, (n % 200) as u8 + 1));
            async move { connect_client(url, &token(&format!("p{n}")), Some(source)).await }
        })
        .buffer_unordered(128)
        .collect()
        .await
}

/// The baseline: a bare tokio-tungstenite server sending the same delta
/// frame `frames` times to each of as many clients, each from its own task.
async fn raw_fanout(frames: u64) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let delta = ServerMessage::Delta {
        change_id: ChangeId::random(),
        kind: ChangeKind::Adjust,
        owner: OwnerDelta {
            owner: OwnerId::parse("a:hot").unwrap(),
            version: Version::new(1),
            deltas: vec![ItemDelta {
                item: ItemId::parse("gold").unwrap(),
                change: 1,
            }],
        },
    };
    let text: tokio_tungstenite::tungstenite::Utf8Bytes =
        String::from_utf8(protocol::encode_server(Encoding::Json, &delta).unwrap())
            .unwrap()
            .into();
    let (go_tx, go) = tokio::sync::watch::channel(false);
    let server = {
        tokio::spawn(async move {
            let mut senders = Vec::new();
            for _ in 0..FANOUT_CLIENTS {
                let (stream, _) = listener.accept().await.unwrap();
                let text = text.clone();
                let mut go = go.clone();
                senders.push(tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                    let _ = go.wait_for(|go| *go).await;
                    for _ in 0..frames {
                        ws.feed(Message::Text(text.clone())).await.unwrap();
                    }
                    ws.flush().await.unwrap();
                }));
            }
            senders
        })
    };
    let received = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for n in 0..FANOUT_CLIENTS {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 3, (n % 200) as u8 + 1)),
                0,
            ))
            .unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
            .await
            .unwrap();
        clients.push(ws);
    }
    let senders = server.await.unwrap();
    let start = Instant::now();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            let received = received.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while n < frames {
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => n += 1,
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
                received.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    go_tx.send_replace(true);
    for reader in readers {
        reader.await.unwrap();
    }
    let elapsed = start.elapsed();
    for sender in senders {
        sender.abort();
    }
    received.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}
