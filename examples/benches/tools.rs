//! `cargo xtask bench tools`: tools reading crafted descriptors by the
//! million, each figure against a baseline measured in the same run.
//!
//! The reference game's 2,043,630 crafted descriptors are loaded into a
//! SQLite store (the descriptors bench's generator), then served by the
//! release `descriptor-service` binary as its own process:
//!
//! 1. **export**: the `descriptors export` CLI (its own process, NDJSON to a
//!    file; pages fetched one ahead, descriptors written as the service sent
//!    them) pages through the HTTP listing, against a raw
//!    [`DescriptorStore::scan`] loop over the same store in this process
//!    (`export_rate_over_store_scan`), and the CLI's peak RSS
//!    (`export_client_rss`);
//! 2. **stream**: 1,000,000 ids through `DescriptorClient::stream_many` (8
//!    batches in flight) against sequential raw batch POSTs of the same ids
//!    (`stream_many_over_batch`): an unmeasured pass warms the service's
//!    cache, then two rounds, each way going first once, so that the cache
//!    favours neither;
//! 3. **churn**: a second export while 100,000 crafts and burns go through
//!    the service; descriptors that stayed live for the whole export but were
//!    not exported, plus descriptors exported twice
//!    (`pages_consistent_under_churn`).
//!
//! MongoDB is not measured here: the listing's store contract is the same
//! and the conformance suite runs it on both topologies; the descriptors
//! bench measures MongoDB's load and reads at this scale.
//!
//! Environment: `TOOLS_DESCRIPTORS` (descriptors loaded, default 2,043,630),
//! `TOOLS_STREAM_IDS` (default 1,000,000), `TOOLS_CHURN` (default 100,000),
//! `TOOLS_SERVICE_BIN` (the service binary, default
//! `target/release/descriptor-service`).

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use descriptor_service::conformance::{reference_crafted, reference_id};
use descriptor_service::{DescriptorStore, ScanFilter, SqliteStore};
use futures::StreamExt;
use protocol::{DescriptorKind, ItemId, MAX_BATCH_IDS, MAX_LIST_LIMIT};
use sdk::{DescriptorClient, DescriptorState};
use testkit::bench::{GoalOp, env_count, goal, peak_rss_of, rate, release_binary};

const NAME: &str = "tools";
const REFERENCE_DESCRIPTORS: usize = 2_043_630;
const LOAD_CHUNK: usize = 20_000;
const WRITE_TOKEN: &str = "tools-bench-writer";
const READ_TOKEN: &str = "tools-bench-reader";
const STREAM_IN_FLIGHT: usize = 8;
/// Concurrent writers of the churn.
const CHURNERS: usize = 8;

fn crafted_only() -> ScanFilter {
    ScanFilter {
        kind: Some(DescriptorKind::Crafted),
        ..ScanFilter::default()
    }
}

/// The service binary over `db`, as its own process.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    async fn start(db: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(release_binary("descriptor-service", "TOOLS_SERVICE_BIN"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--store", "sqlite", "--sqlite-path"])
            .arg(db)
            .args(["--write-tokens", WRITE_TOKEN, "--read-tokens", READ_TOKEN])
            .args(["--open-reads", "false"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting descriptor-service")?;
        let service = Self { child, url };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{}/readyz", service.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(service);
            }
            ensure!(Instant::now() < deadline, "the service never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A finished `descriptors export`: its wall time, peak RSS and CPU time.
struct Export {
    elapsed: Duration,
    peak_rss: u64,
    cpu: Duration,
}

/// The CPU time (user + system) process `pid` has used so far, from
/// `/proc/<pid>/stat` (clock ticks of 10 ms), or zero if it is gone.
fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Runs `descriptors export --kind crafted` into `out`, polling the
/// process's peak RSS while it runs.
async fn export(url: &str, out: &Path) -> Result<Export> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_descriptors"))
        .args(["--url", url, "--token", READ_TOKEN, "--quiet", "export"])
        .args(["--kind", "crafted", "--page", &MAX_LIST_LIMIT.to_string()])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .spawn()
        .context("starting the descriptors CLI")?;
    let pid = child.id();
    let (mut peak_rss, mut cpu) = (0, Duration::ZERO);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak_rss = peak_rss.max(peak_rss_of(pid).unwrap_or(0));
        cpu = cpu.max(cpu_of(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ensure!(status.success(), "descriptors export failed: {status}");
    Ok(Export {
        elapsed: started.elapsed(),
        peak_rss,
        cpu,
    })
}

/// The ids of an NDJSON export, in file order.
fn exported_ids(path: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Line {
        id: String,
    }
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    file.lines()
        .map(|line| Ok(serde_json::from_str::<Line>(&line?)?.id))
        .collect()
}

async fn load(store: &SqliteStore, count: usize) -> Result<Duration> {
    let started = Instant::now();
    let mut loaded = 0;
    for start in (0..count).step_by(LOAD_CHUNK) {
        let end = (start + LOAD_CHUNK).min(count);
        loaded += store
            .insert_many((start..end).map(reference_crafted))
            .await?;
    }
    ensure!(loaded == count, "loaded {loaded} of {count}");
    Ok(started.elapsed())
}

/// Pages through every crafted descriptor with the store's own scan.
async fn raw_scan(store: &SqliteStore) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let filter = crafted_only();
    let (mut after, mut seen) = (None::<ItemId>, 0);
    loop {
        let page = store.scan(&filter, after.as_ref(), MAX_LIST_LIMIT).await?;
        seen += page.len();
        if page.len() < MAX_LIST_LIMIT {
            break;
        }
        after = page.last().map(|record| record.id().clone());
    }
    Ok((seen, started.elapsed()))
}

/// The ids of the stream round: every other descriptor, so that they span
/// the store.
fn stream_ids(count: usize, stored: usize) -> Vec<ItemId> {
    (0..count).map(|n| reference_id((2 * n) % stored)).collect()
}

/// Sequential raw batch POSTs of `ids`, 1,000 a request; answers the ids
/// found.
async fn raw_batches(url: &str, ids: &[ItemId]) -> Result<usize> {
    let http = reqwest::Client::new();
    let mut found = 0;
    for chunk in ids.chunks(MAX_BATCH_IDS) {
        let answer: protocol::BatchGetResponse = http
            .post(format!("{url}/v1/descriptors/batch"))
            .bearer_auth(READ_TOKEN)
            .json(&serde_json::json!({ "ids": chunk }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        found += answer.descriptors.len();
    }
    Ok(found)
}

/// `ids` through `stream_many`; answers the ids found.
async fn streamed(client: &DescriptorClient, ids: Vec<ItemId>) -> Result<usize> {
    let mut answers = client.stream_many(ids);
    let mut found = 0;
    while let Some(answer) = answers.next().await {
        let (id, state) = answer.map_err(|(id, error)| anyhow::anyhow!("{id}: {error}"))?;
        ensure!(
            matches!(state, DescriptorState::Ready(_)),
            "{id} is not live"
        );
        found += 1;
    }
    Ok(found)
}

/// 100,000 writes while the export runs: half crafts of new ids that sort
/// among the stored ones (`it0001234c` right after `it0001234`), half burns
/// of stored ids spread over the whole range. Answers the ids burned.
async fn churn(url: &str, stored: usize, writes: usize) -> Result<(Vec<String>, Duration)> {
    let started = Instant::now();
    let crafts = writes / 2;
    let burns = writes - crafts;
    let stride = (stored / burns.max(1)).max(1);
    let http = reqwest::Client::new();
    let workers: Vec<_> = (0..CHURNERS)
        .map(|worker| {
            let (http, url) = (http.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut burned = Vec::new();
                for n in (worker..crafts.max(burns)).step_by(CHURNERS) {
                    if n < crafts {
                        let mut fresh = reference_crafted((n * stride + stride / 2) % stored);
                        fresh.id = ItemId::parse(format!("{}c", fresh.id))?;
                        http.post(format!("{url}/v1/descriptors"))
                            .bearer_auth(WRITE_TOKEN)
                            .json(&fresh)
                            .send()
                            .await?
                            .error_for_status()?;
                    }
                    if n < burns {
                        let victim = reference_id((n * stride) % stored);
                        http.delete(format!("{url}/v1/descriptors/{victim}"))
                            .bearer_auth(WRITE_TOKEN)
                            .send()
                            .await?
                            .error_for_status()?;
                        burned.push(victim.as_str().to_owned());
                    }
                }
                Ok::<_, anyhow::Error>(burned)
            })
        })
        .collect();
    let mut burned = Vec::new();
    for worker in workers {
        burned.extend(worker.await??);
    }
    Ok((burned, started.elapsed()))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

async fn run() -> Result<()> {
    let stored = env_count("TOOLS_DESCRIPTORS", REFERENCE_DESCRIPTORS);
    let stream_count = env_count("TOOLS_STREAM_IDS", 1_000_000);
    let churn_writes = env_count("TOOLS_CHURN", 100_000);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("descriptors.db");

    println!("== load: {stored} crafted descriptors into SQLite");
    let store = SqliteStore::open(&db)?;
    let load_time = load(&store, stored).await?;
    println!(
        "tools: loaded {stored} in {:.1} s ({:.0}/s)",
        load_time.as_secs_f64(),
        rate(stored as u64, load_time)
    );

    println!("== export: the CLI through the HTTP listing vs a raw store scan");
    let (scanned, scan_time) = raw_scan(&store).await?;
    ensure!(scanned == stored, "the scan saw {scanned} of {stored}");
    drop(store);
    let scan_rate = rate(scanned as u64, scan_time);
    let service = Service::start(&db).await?;
    let first = dir.path().join("export.ndjson");
    let service_cpu = cpu_of(service.child.id());
    let exported = export(&service.url, &first).await?;
    let service_cpu = cpu_of(service.child.id()) - service_cpu;
    let lines = exported_ids(&first)?.len();
    ensure!(lines == stored, "the export wrote {lines} of {stored}");
    let export_rate = rate(lines as u64, exported.elapsed);
    println!(
        "tools: raw scan {scanned} in {:.1} s ({scan_rate:.0}/s); CLI export {lines} in {:.1} s ({export_rate:.0}/s), peak RSS {:.1} MiB; CPU: CLI {:.1} s, service {:.1} s",
        scan_time.as_secs_f64(),
        exported.elapsed.as_secs_f64(),
        mib(exported.peak_rss),
        exported.cpu.as_secs_f64(),
        service_cpu.as_secs_f64()
    );
    std::fs::remove_file(&first)?;

    println!("== stream: {stream_count} ids through stream_many vs sequential raw batch POSTs");
    let client = DescriptorClient::builder(&service.url)
        .with_bearer_token(READ_TOKEN)
        .with_max_in_flight(STREAM_IN_FLIGHT)
        .build()?;
    let ids = stream_ids(stream_count, stored);
    // An unmeasured pass warms the service's cache as far as it holds them;
    // then each way goes first once.
    ensure!(raw_batches(&service.url, &ids).await? == stream_count);
    let (mut raw_time, mut stream_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..2 {
        let mut raw = Duration::ZERO;
        let mut stream = Duration::ZERO;
        for raw_turn in [round == 0, round != 0] {
            let started = Instant::now();
            let found = if raw_turn {
                raw_batches(&service.url, &ids).await?
            } else {
                streamed(&client, ids.clone()).await?
            };
            ensure!(found == stream_count, "found {found} of {stream_count}");
            *(if raw_turn { &mut raw } else { &mut stream }) = started.elapsed();
        }
        println!(
            "tools: round {round}: raw batches {:.0} ids/s, stream_many {:.0} ids/s",
            rate(stream_count as u64, raw),
            rate(stream_count as u64, stream)
        );
        raw_time += raw;
        stream_time += stream;
    }
    let stream_ratio = raw_time.as_secs_f64() / stream_time.as_secs_f64();

    println!("== churn: an export while {churn_writes} crafts and burns run");
    let second = dir.path().join("export-churn.ndjson");
    let (exported_churn, churned) = tokio::join!(
        export(&service.url, &second),
        churn(&service.url, stored, churn_writes)
    );
    let (exported_churn, (burned, churn_time)) = (exported_churn?, churned?);
    let ids = exported_ids(&second)?;
    let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let twice = ids.len() - distinct.len();
    let burned: HashSet<String> = burned.into_iter().collect();
    let skipped = (0..stored)
        .map(reference_id)
        .filter(|id| !burned.contains(id.as_str()) && !distinct.contains(id.as_str()))
        .count();
    println!(
        "tools: export under churn wrote {} lines in {:.1} s; {churn_writes} writes took {:.1} s ({:.0}/s); {skipped} skipped, {twice} twice",
        ids.len(),
        exported_churn.elapsed.as_secs_f64(),
        churn_time.as_secs_f64(),
        rate(churn_writes as u64, churn_time)
    );
    drop(service);

    goal(
        NAME,
        "export_rate_over_store_scan",
        export_rate / scan_rate,
        "x",
        GoalOp::AtLeast,
        0.5,
    );
    goal(
        NAME,
        "export_client_rss",
        mib(exported.peak_rss.max(exported_churn.peak_rss)),
        "MiB",
        GoalOp::AtMost,
        64.0,
    );
    goal(
        NAME,
        "stream_many_over_batch",
        stream_ratio,
        "x",
        GoalOp::AtLeast,
        0.8,
    );
    goal(
        NAME,
        "pages_consistent_under_churn",
        (skipped + twice) as f64,
        "descriptors",
        GoalOp::AtMost,
        0.0,
    );
    Ok(())
}

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}
