//! `cargo xtask bench capacity`: how many players a zone node holds, measured
//! by `loadgen` processes beside node processes (the release binary), never
//! in the node's own process.
//!
//! 1. **One node, embedded default** (SQLite, in-process bus): 8,000 players,
//!    one session each over two loadgen processes, 0.5 changes per second per
//!    player from a traffic process. Client p99 (change made to delta held),
//!    the node's CPU per delivered delta, its resident memory per player,
//!    then the audit over the store and every session's versions against it.
//! 2. **This machine, MongoDB + Redis**: node processes of 16,000 players
//!    each up to 80,000 players, 8,000 changes per second in all (each
//!    node's traffic changes the players held by the next node, so every
//!    delta crosses Redis), then the audit.
//! 3. **Fan-out against a raw loop**: deltas per second one node delivers to
//!    10,000 players with one session each, and to 1,000 sessions of one
//!    player, fed their events on Redis as fast as a publisher goes, over a
//!    raw tokio-tungstenite server sending delta frames to the same loadgen
//!    sessions as fast as they go, in the same run.
//!
//! Loadgen processes are this bench's own binary started again with `--role`
//! (so no other binary has to be built); the node is
//! `target/release/inventory-service` (`cargo xtask bench capacity` builds
//! it first; `CAPACITY_NODE_BIN` overrides the path). `CAPACITY_SCALE`
//! (default 1.0) scales players and durations for a quick look;
//! `CAPACITY_ONLY=one_node,fan_out,machine` runs only the figures named.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on stdout"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use inventory_core::StoreScan;
use loadgen::Report;
use loadgen::clients::{self, ClientsConfig};
use loadgen::report::process_usage_of;
use loadgen::traffic::{self, TrafficConfig};
use protocol::{
    ChangeKind, ClientMessage, Encoding, ItemDelta, ItemId, OwnerDelta, OwnerId, OwnerSnapshot,
    ServerMessage, UserId, Version,
};
use serde::{Deserialize, Serialize};
use testkit::bench::{GoalOp, goal};
use tokio_tungstenite::tungstenite::Message;

const SERVICE_TOKEN: &str = "capacity-service-token-0123";
const JWT_SECRET: &str = "capacity-jwt-secret-0123456789";
/// Sessions per loadgen process, within the 20,000 open files a process may
/// have (a node holds as many sockets, and a few more).
const PER_PROCESS: u64 = 16_000;

/// What a loadgen process started with `--role` does.
#[derive(Serialize, Deserialize, Debug)]
enum Role {
    Clients {
        url: String,
        prefix: String,
        first: u64,
        players: u64,
        sessions_per_player: u64,
        hold_secs: f64,
        keep_versions: bool,
        report: PathBuf,
    },
    Traffic {
        url: String,
        prefix: String,
        first: u64,
        players: u64,
        rate: f64,
        duration_secs: f64,
        seed: u64,
        report: PathBuf,
    },
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--role") {
        let role: Role = serde_json::from_str(&args[at + 1]).expect("a role");
        runtime.block_on(play(role));
        return;
    }
    let scale: f64 = std::env::var("CAPACITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let only = std::env::var("CAPACITY_ONLY").unwrap_or_default();
    let wanted = |figure: &str| only.is_empty() || only.split(',').any(|f| f == figure);
    let mut goals = Vec::new();
    runtime.block_on(async {
        if wanted("one_node") {
            goals.extend(one_node(scale).await);
        }
        if wanted("fan_out") {
            goals.extend(fan_out(scale).await);
        }
        if wanted("machine") {
            goals.extend(machine(scale).await);
        }
    });
    println!();
    for (figure, value, unit, op, target) in goals {
        goal("capacity", figure, value, unit, op, target);
    }
}

type Goal = (&'static str, f64, &'static str, GoalOp, f64);

/// A loadgen process's work.
async fn play(role: Role) {
    let (_, hard) = rlimit::Resource::NOFILE.get().expect("the open-file limit");
    rlimit::Resource::NOFILE
        .set(hard, hard)
        .expect("raise the open-file limit");
    let (report, path) = match role {
        Role::Clients {
            url,
            prefix,
            first,
            players,
            sessions_per_player,
            hold_secs,
            keep_versions,
            report,
        } => {
            let config = ClientsConfig {
                url,
                jwt_secret: JWT_SECRET.to_owned(),
                prefix,
                first,
                players,
                sessions_per_player,
                connect_rate: 2000,
                ramp_timeout: Duration::from_secs(150),
                hold: Duration::from_secs_f64(hold_secs),
                keep_versions,
            };
            let measured = clients::run(config, |welcomed| println!("ready {welcomed}"))
                .await
                .expect("the sessions run");
            (measured, report)
        }
        Role::Traffic {
            url,
            prefix,
            first,
            players,
            rate,
            duration_secs,
            seed,
            report,
        } => {
            let config = TrafficConfig {
                url,
                service_token: SERVICE_TOKEN.to_owned(),
                prefix,
                first,
                players,
                rate,
                duration: Duration::from_secs_f64(duration_secs),
                concurrency: 256,
                seed,
            };
            (
                traffic::run(config).await.expect("the traffic runs"),
                report,
            )
        }
    };
    std::fs::write(&path, serde_json::to_vec(&report).expect("json")).expect("write the report");
}

/// A loadgen process of this binary.
struct Loadgen {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    report: PathBuf,
}

impl Loadgen {
    fn start(role: &Role) -> Self {
        let report = match role {
            Role::Clients { report, .. } | Role::Traffic { report, .. } => report.clone(),
        };
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .arg("--role")
            .arg(serde_json::to_string(role).expect("json"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a loadgen process");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            lines,
            report,
        }
    }

    /// Waits for `ready <n>`; the sessions welcomed.
    fn ready(&mut self) -> u64 {
        let line = self
            .lines
            .next()
            .expect("a line from the loadgen process")
            .expect("readable");
        line.strip_prefix("ready ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected loadgen line {line:?}"))
    }

    /// Waits for the process to finish; its report.
    fn finish(mut self) -> Report {
        let status = self.child.wait().expect("wait for loadgen");
        assert!(status.success(), "a loadgen process failed: {status}");
        let text = std::fs::read_to_string(&self.report).expect("the report");
        serde_json::from_str(&text).expect("a report")
    }
}

fn node_binary() -> PathBuf {
    testkit::bench::release_binary("inventory-service", "CAPACITY_NODE_BIN")
}

/// A node process over `dir`'s files, with `env` (MongoDB, Redis).
fn start_node(dir: &Path, env: &[(&str, String)]) -> testkit::NodeProcess {
    start_node_with_descriptors(dir, &dir.join("descriptors.db"), env)
}

/// A node process over `dir`'s inventory file and the descriptor file
/// `descriptors` (one file that several nodes share, so that every crafted
/// descriptor is where the audit looks), with `env`.
fn start_node_with_descriptors(
    dir: &Path,
    descriptors: &Path,
    env: &[(&str, String)],
) -> testkit::NodeProcess {
    let mut command = Command::new(node_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--client-idle-secs", "3600"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .arg("--descriptor-sqlite-path")
        .arg(descriptors)
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("INVENTORY_JWT_SECRET", JWT_SECRET)
        .env_remove("MONGODB_URI")
        .env_remove("REDIS_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    testkit::NodeProcess::spawn(command)
}

/// The items the traffic moves, as catalog descriptors in the node's
/// embedded descriptor service (the audit checks every held item has one).
async fn create_catalog(base: &str) {
    let http = reqwest::Client::new();
    for name in ["gold", "wood", "ore", "herb"] {
        let descriptor =
            protocol::Descriptor::catalog(ItemId::parse(name).expect("an item id"), name);
        let answer = http
            .post(format!("{base}/v1/descriptors"))
            .bearer_auth(SERVICE_TOKEN)
            .json(&descriptor)
            .send()
            .await
            .expect("the descriptor service answers");
        assert!(
            answer.status().is_success(),
            "creating {name}: {}",
            answer.status()
        );
    }
}

/// The node's cache counters (gaps and re-hydrations: out-of-order or
/// lost events), from `/metrics`.
async fn cache_counters(base: &str) -> String {
    let Ok(answer) = reqwest::get(format!("{base}/metrics")).await else {
        return "metrics unavailable".to_owned();
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| {
            !line.starts_with('#')
                && (line.contains("gaps_detected_total") || line.contains("rehydrations_total"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ws_url(node: &testkit::NodeProcess) -> String {
    format!("{}/v1/ws", node.base().replacen("http", "ws", 1))
}

fn cpu_of(pid: u32) -> f64 {
    process_usage_of(&pid.to_string()).0
}

/// Sessions to hold: `players` from `first`, `per_player` sessions each,
/// over `processes` loadgen processes.
struct Sessions<'a> {
    url: &'a str,
    prefix: &'a str,
    first: u64,
    players: u64,
    per_player: u64,
    processes: u64,
    hold: Duration,
}

impl Sessions<'_> {
    /// Starts the processes (reports in `dir`, named after `tag`): players
    /// are split between them, or, for several sessions per player, the
    /// sessions are.
    fn start(&self, dir: &Path, tag: &str) -> Vec<Loadgen> {
        let processes = self.processes.max(1);
        let per = self.players.div_ceil(processes);
        let end = self.first + self.players;
        (0..processes)
            .filter_map(|i| {
                let (first, players, per_player) = if self.per_player > 1 {
                    (
                        self.first,
                        self.players,
                        self.per_player.div_ceil(processes),
                    )
                } else {
                    let first = (self.first + i * per).min(end);
                    (first, per.min(end - first), 1)
                };
                (players > 0).then(|| {
                    Loadgen::start(&Role::Clients {
                        url: self.url.to_owned(),
                        prefix: self.prefix.to_owned(),
                        first,
                        players,
                        sessions_per_player: per_player,
                        hold_secs: self.hold.as_secs_f64(),
                        keep_versions: self.per_player == 1,
                        report: dir.join(format!("{tag}-clients-{i}.json")),
                    })
                })
            })
            .collect()
    }
}

/// Waits for loadgen processes to finish (off the runtime's threads); their
/// reports added up.
async fn finish_all(processes: Vec<Loadgen>) -> Report {
    tokio::task::spawn_blocking(move || {
        let mut total = Report::default();
        for process in processes {
            total.merge(&process.finish());
        }
        total
    })
    .await
    .expect("loadgen processes")
}

/// The sessions' versions against the store's, and the audit: `(sessions
/// behind or ahead, audit passed)`.
async fn check_against_store(
    scan: &dyn StoreScan,
    descriptors: &dyn descriptor_service::DescriptorStore,
    held: &Report,
) -> (u64, bool) {
    let mut stored = BTreeMap::new();
    scan.scan_owners(&mut |record| {
        stored.insert(record.owner.to_string(), record.version.get());
    })
    .await
    .expect("scan the owners");
    let mismatched = held
        .versions
        .iter()
        .filter(|(owner, version)| stored.get(*owner).copied().unwrap_or(0) != **version)
        .count() as u64;
    let audit = examples::audit::audit(scan, descriptors, examples::audit::Evidence::default())
        .await
        .expect("the audit runs");
    println!("{audit}");
    (mismatched, audit.passed())
}

/// Figure 1: one node on the embedded default.
async fn one_node(scale: f64) -> Vec<Goal> {
    let players = (8_000.0 * scale).round().max(100.0) as u64;
    let rate = players as f64 * 0.5;
    let secs = (40.0 * scale).max(10.0);
    println!(
        "figure 1: {players} players on one node (SQLite, in-process bus), {rate:.0} changes/s for {secs:.0} s"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = start_node(dir.path(), &[]);
    let pid = node.pid();
    create_catalog(node.base()).await;
    let seed = TrafficConfig {
        url: node.base().to_owned(),
        service_token: SERVICE_TOKEN.to_owned(),
        prefix: "p".to_owned(),
        first: 0,
        players,
        rate,
        duration: Duration::from_secs_f64(secs),
        concurrency: 64,
        seed: 1,
    };
    traffic::seed(&seed).await.expect("seed the players");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = testkit::bench::rss_of(pid).unwrap_or(0);
    let hold = Duration::from_secs_f64(secs + 6.0);
    let mut sessions = Sessions {
        url: &ws_url(&node),
        prefix: "p",
        first: 0,
        players,
        per_player: 1,
        processes: 2,
        hold,
    }
    .start(dir.path(), "one");
    let welcomed: u64 = sessions.iter_mut().map(Loadgen::ready).sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held_rss = testkit::bench::rss_of(pid).unwrap_or(0);
    let cpu_before = cpu_of(pid);
    let load = Loadgen::start(&Role::Traffic {
        url: node.base().to_owned(),
        prefix: "p".to_owned(),
        first: 0,
        players,
        rate,
        duration_secs: secs,
        seed: 7,
        report: dir.path().join("one-traffic.json"),
    });
    let sent = finish_all(vec![load]).await;
    let cpu_traffic = cpu_of(pid) - cpu_before;
    let held = finish_all(sessions).await;
    let summary = held.summary();
    let rss_per_player = held_rss.saturating_sub(idle) as f64 / welcomed.max(1) as f64;
    let cpu_per_delta = cpu_traffic * 1e6 / held.deltas.max(1) as f64;
    println!(
        "  sessions {welcomed}; node RSS {:.1} → {:.1} MiB ({:.1} KiB per player)",
        idle as f64 / 1048576.0,
        held_rss as f64 / 1048576.0,
        rss_per_player / 1024.0
    );
    println!(
        "  traffic: {} applied, {} refused by guards, errors {:?}, http p99 {:.1} ms",
        sent.applied,
        sent.refused,
        sent.errors,
        sent.http_latency.quantile(0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  clients: {} deltas (p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms), {} gaps, {} repeats, errors {:?}",
        held.deltas,
        summary.delta_p50_ms,
        summary.delta_p99_ms,
        summary.delta_p999_ms,
        held.gaps,
        held.duplicates,
        held.errors
    );
    println!(
        "  CPU during the traffic: node {cpu_traffic:.1} s ({cpu_per_delta:.0} µs per delivered delta, the write path included); loadgen: clients {:.1} s, traffic {:.1} s (whole runs)",
        held.cpu_secs, sent.cpu_secs
    );
    println!("  node caches: {}", cache_counters(node.base()).await);
    drop(node);
    let store = inventory_core::SqliteStore::open(inventory_core::SqliteConfig::new(
        dir.path().join("inventory.db"),
    ))
    .expect("open the store");
    let descriptors = descriptor_service::SqliteStore::open(dir.path().join("descriptors.db"))
        .expect("open the descriptors");
    let (mismatched, passed) = check_against_store(&store, &descriptors, &held).await;
    println!("  sessions whose versions differ from the store: {mismatched}");
    let p99 = if passed && mismatched == 0 && welcomed == players {
        summary.delta_p99_ms
    } else {
        f64::INFINITY
    };
    vec![
        ("one_node_8000_p99", p99, "ms", GoalOp::AtMost, 50.0),
        (
            "rss_per_player",
            rss_per_player / 1024.0,
            "KiB",
            GoalOp::AtMost,
            16.0,
        ),
    ]
}

/// Figure 2: node processes over MongoDB and Redis, as many players as
/// this machine holds up to 80,000.
async fn machine(scale: f64) -> Vec<Goal> {
    let players = (80_000.0 * scale).round().max(1_000.0) as u64;
    let rate = 8_000.0 * scale.min(1.0);
    let secs = (30.0 * scale).max(10.0);
    let nodes = players.div_ceil(PER_PROCESS);
    println!(
        "\nfigure 2: {players} players over {nodes} node processes on MongoDB + Redis, {rate:.0} changes/s for {secs:.0} s"
    );
    let mongo = testkit::MongoServer::start(testkit::Topology::ReplicaSet);
    let redis = testkit::RedisServer::start();
    let database = testkit::unique_name("capacity");
    let dirs: Vec<_> = (0..nodes)
        .map(|_| tempfile::tempdir().expect("a temp dir"))
        .collect();
    let env = [
        ("MONGODB_URI", mongo.uri()),
        ("MONGODB_DATABASE", database.clone()),
        ("REDIS_URL", redis.url()),
    ];
    let shared_descriptors = dirs[0].path().join("descriptors.db");
    let servers: Vec<_> = dirs
        .iter()
        .map(|d| start_node_with_descriptors(d.path(), &shared_descriptors, &env))
        .collect();
    create_catalog(servers[0].base()).await;
    let per = players.div_ceil(nodes);
    let hold = Duration::from_secs_f64(secs + 10.0);
    let started = Instant::now();
    let mut sessions: Vec<Loadgen> = servers
        .iter()
        .enumerate()
        .flat_map(|(i, node)| {
            let first = i as u64 * per;
            Sessions {
                url: &ws_url(node),
                prefix: "m",
                first,
                players: per.min(players - first),
                per_player: 1,
                processes: 1,
                hold,
            }
            .start(dirs[i].path(), "machine")
        })
        .collect();
    let welcomed: u64 = sessions.iter_mut().map(Loadgen::ready).sum();
    println!(
        "  {welcomed} sessions welcomed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Each node's traffic changes the players the next node holds.
    let loads: Vec<Loadgen> = servers
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let target = (i as u64 + 1) % nodes;
            let first = target * per;
            Loadgen::start(&Role::Traffic {
                url: node.base().to_owned(),
                prefix: "m".to_owned(),
                first,
                players: per.min(players - first),
                rate: rate / nodes as f64,
                duration_secs: secs,
                seed: 100 + i as u64,
                report: dirs[i].path().join("machine-traffic.json"),
            })
        })
        .collect();
    let sent = finish_all(loads).await;
    let held = finish_all(sessions).await;
    let summary = held.summary();
    println!(
        "  traffic: {} applied ({:.0}/s), {} refused by guards, errors {:?}, http p99 {:.1} ms",
        sent.applied,
        sent.applied as f64 / secs,
        sent.refused,
        sent.errors,
        sent.http_latency.quantile(0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  clients: {} deltas (p50 {:.1} ms, p99 {:.1} ms), {} gaps, {} repeats, errors {:?}",
        held.deltas,
        summary.delta_p50_ms,
        summary.delta_p99_ms,
        held.gaps,
        held.duplicates,
        held.errors
    );
    for node in &servers {
        println!("  node caches: {}", cache_counters(node.base()).await);
    }
    drop(servers);
    let store = inventory_core::MongoStore::connect(
        inventory_core::MongoConfig::new(mongo.uri()).with_database(&database),
    )
    .await
    .expect("connect to the store");
    // Every node's embedded descriptor service wrote the one shared file.
    let descriptors =
        descriptor_service::SqliteStore::open(&shared_descriptors).expect("open the descriptors");
    let (mismatched, passed) = check_against_store(&store, &descriptors, &held).await;
    println!("  sessions whose versions differ from the store: {mismatched}");
    let complete = welcomed == players && passed && mismatched == 0;
    if !complete {
        println!(
            "  the goal needs {players} players held with the audit passing: reported as missed"
        );
    }
    let p99 = if complete {
        summary.delta_p99_ms
    } else {
        f64::INFINITY
    };
    vec![
        ("machine_80000_p99", p99, "ms", GoalOp::AtMost, 100.0),
        (
            "machine_players_held",
            welcomed as f64,
            "players",
            GoalOp::AtLeast,
            players as f64,
        ),
    ]
}

/// Figure 3: fan-out, the node against a raw server, to the same sessions.
async fn fan_out(scale: f64) -> Vec<Goal> {
    let secs = (10.0 * scale).max(5.0);
    let players = (10_000.0 * scale).round().max(100.0) as u64;
    println!("\nfigure 3: fan-out for {secs:.0} s, the node against a raw tokio-tungstenite loop");
    let many = fan_out_ratio(players, 1, secs).await;
    let one = fan_out_ratio(1, 1_000, secs).await;
    vec![
        (
            "fanout_over_raw_10000_players",
            many,
            "x",
            GoalOp::AtLeast,
            0.5,
        ),
        (
            "fanout_over_raw_1000_sessions_of_one",
            one,
            "x",
            GoalOp::AtLeast,
            0.5,
        ),
    ]
}

/// Deltas per second the node delivers to `players` × `per_player`
/// sessions, over what a raw server sends the same sessions. The node is
/// fed the players' events on Redis as fast as a publisher goes (its
/// delivery path alone: bus, caches, feeds, sockets; the store's write rate
/// is figure 1's business).
async fn fan_out_ratio(players: u64, per_player: u64, secs: f64) -> f64 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = testkit::RedisServer::start();
    // A node that falls behind must not be cut off by Redis's pub/sub
    // output buffer limit: its backlog is what this measures.
    let client = redis::Client::open(redis.url()).expect("a redis url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 0 0 0")
        .query_async(&mut admin)
        .await
        .expect("lift the pub/sub buffer limit");
    let node = start_node(dir.path(), &[("REDIS_URL", redis.url())]);
    let sessions = players * per_player;
    let processes = sessions.div_ceil(PER_PROCESS).max(2);
    let prefix = if per_player > 1 { "hot" } else { "fan" };
    let users: Vec<String> = (0..players).map(|n| format!("{prefix}{n}")).collect();
    let url = ws_url(&node);
    let plan = Sessions {
        url: &url,
        prefix,
        first: 0,
        players,
        per_player,
        processes,
        hold: Duration::from_secs_f64(secs),
    };
    let node_rate = fan_out_run(&plan, dir.path(), "node", || {
        publish_events(client.clone(), users.clone(), secs)
    })
    .await;
    drop(node);
    let raw = RawServer::start().await;
    let plan = Sessions {
        url: &raw.url,
        ..plan
    };
    let raw_rate = fan_out_run(&plan, dir.path(), "raw", || {
        let go = Arc::clone(&raw.go);
        async move {
            go.store(true, Ordering::Release);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            go.store(false, Ordering::Release);
            0
        }
    })
    .await;
    let ratio = node_rate / raw_rate.max(1.0);
    println!(
        "  {players} player(s) × {per_player} session(s): node {node_rate:.0} deltas/s, raw {raw_rate:.0} deltas/s: {ratio:.3}x"
    );
    ratio
}

/// Publishes each user's next account delta on their channel, round robin,
/// in pipelines from four connections, for `secs`; the events published.
async fn publish_events(client: redis::Client, users: Vec<String>, secs: f64) -> u64 {
    const PUBLISHERS: usize = 4;
    const PIPELINE: usize = 128;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let gold = ItemId::parse("gold").expect("an item id");
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let mine: Vec<(String, OwnerId)> = users
                .iter()
                .skip(p)
                .step_by(PUBLISHERS)
                .map(|u| {
                    let user = UserId::parse(u.as_str()).expect("a user id");
                    (format!("inv:{u}"), OwnerId::account(user))
                })
                .collect();
            let (client, gold) = (client.clone(), gold.clone());
            tokio::spawn(async move {
                if mine.is_empty() {
                    return 0;
                }
                let mut connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to redis");
                let mut versions = vec![0u64; mine.len()];
                let (mut next, mut published) = (0usize, 0u64);
                while Instant::now() < until {
                    let mut pipe = redis::pipe();
                    for _ in 0..PIPELINE {
                        let (channel, owner) = &mine[next];
                        versions[next] += 1;
                        let event = protocol::ChangeEvent {
                            change_id: loadgen::stamp::stamped(
                                loadgen::stamp::now_micros(),
                                published,
                            ),
                            kind: ChangeKind::Adjust,
                            owners: vec![one_gold(owner, &gold, versions[next])],
                        };
                        pipe.publish(channel, serde_json::to_string(&event).expect("json"))
                            .ignore();
                        published += 1;
                        next = (next + 1) % mine.len();
                    }
                    let () = pipe.query_async(&mut connection).await.expect("publish");
                }
                published
            })
        })
        .collect();
    let mut published = 0;
    for task in tasks {
        published += task.await.unwrap_or(0);
    }
    published
}

/// The sessions of `plan`, `drive` run once they are all welcomed; deltas
/// per second the sessions received while they were held (`plan.hold`, the
/// drive's length: a backlog delivered after it does not count). `drive`
/// answers how many events it fed the server (the raw server makes its own).
async fn fan_out_run<F, Fut>(plan: &Sessions<'_>, dir: &Path, tag: &str, drive: F) -> f64
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = u64>,
{
    let mut sessions = plan.start(dir, tag);
    for session in &mut sessions {
        session.ready();
    }
    let fed = drive().await;
    let held = finish_all(sessions).await;
    println!(
        "    {tag}: {fed} events fed, {} deltas, {} gaps, {} repeats, errors {:?}",
        held.deltas, held.gaps, held.duplicates, held.errors
    );
    (held.deltas + held.gaps) as f64 / plan.hold.as_secs_f64()
}

/// The baseline: a tokio-tungstenite server that welcomes each session as a
/// node would, then, while `go` is set, sends it delta frames (the next
/// version of the player's account each) as fast as the socket takes them.
struct RawServer {
    url: String,
    go: Arc<AtomicBool>,
}

impl RawServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("ws://{}/v1/ws", listener.local_addr().expect("address"));
        let go = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&go);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(raw_session(stream, Arc::clone(&flag)));
            }
        });
        Self { url, go }
    }
}

async fn raw_session(stream: tokio::net::TcpStream, go: Arc<AtomicBool>) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let Some(Ok(Message::Text(hello))) = socket.next().await else {
        return;
    };
    let Ok(ClientMessage::Hello { token, .. }) =
        protocol::decode_client(Encoding::Json, hello.as_bytes())
    else {
        return;
    };
    let Some(user) = subject(&token) else { return };
    let owner = OwnerId::account(user.clone());
    let send = |message: &ServerMessage| {
        let frame = protocol::encode_server(Encoding::Json, message).expect("encode");
        Message::text(String::from_utf8(frame).expect("utf-8"))
    };
    let welcome = send(&ServerMessage::Welcome {
        user,
        owners: vec![owner.clone()],
    });
    let snapshot = send(&ServerMessage::Snapshot {
        owners: vec![OwnerSnapshot::empty(owner.clone())],
    });
    if socket.send(welcome).await.is_err() || socket.send(snapshot).await.is_err() {
        return;
    }
    let gold = ItemId::parse("gold").expect("an item id");
    let mut version = 0u64;
    loop {
        if !go.load(Ordering::Acquire) {
            // Before the run, and after it until the session closes.
            tokio::select! {
                frame = socket.next() => if frame.is_none_or(|f| f.is_err() || matches!(f, Ok(Message::Close(_)))) { return },
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            continue;
        }
        version += 1;
        let delta = send(&ServerMessage::Delta {
            change_id: loadgen::stamp::stamped(loadgen::stamp::now_micros(), version),
            kind: ChangeKind::Adjust,
            owner: one_gold(&owner, &gold, version),
        });
        if socket.send(delta).await.is_err() {
            return;
        }
    }
}

/// What both fan-out servers send: `owner` gained one gold, reaching
/// `version`.
fn one_gold(owner: &OwnerId, gold: &ItemId, version: u64) -> OwnerDelta {
    OwnerDelta {
        owner: owner.clone(),
        version: Version::new(version),
        deltas: vec![ItemDelta {
            item: gold.clone(),
            change: 1,
        }],
    }
}

/// The `sub` of a session token (verified with the bench's secret).
fn subject(token: &str) -> Option<UserId> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .ok()?;
    UserId::parse(data.claims.sub).ok()
}
