//! `cargo xtask bench wasm`: the release bundle's size, and the rate at which
//! the wasm build applies deltas in Node against the native SDK core on the
//! same stream, in the same run.
//!
//! xtask builds the bundle first and names its directory in
//! `SDK_WASM_BUNDLE`. Both sides decode JSON frames and apply them through
//! the same `ClientState`: natively `protocol::decode_server` +
//! `ClientState::handle`; in Node `InventoryState.applyFrame`, which adds the
//! string crossing into wasm and the changes handed back as JS objects, the
//! cost a browser app pays.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use protocol::{
    ChangeId, ChangeKind, Encoding, ItemDelta, ItemId, OwnerDelta, OwnerId, OwnerSnapshot,
    ServerMessage, UserId, Version,
};
use testkit::bench::{GoalOp, goal, rate};

const DELTAS: usize = 200_000;
const ITEMS_PER_OWNER: usize = 200;
const ROUNDS: usize = 3;

/// Welcome and snapshots (not timed), then `DELTAS` deltas over five owners,
/// each moving one to three stacks, in version order.
fn stream() -> (Vec<String>, Vec<String>) {
    let user = UserId::parse("bench").unwrap();
    let owners: Vec<OwnerId> = std::iter::once(OwnerId::account(user.clone()))
        .chain((0..4).map(|c| {
            OwnerId::character(
                user.clone(),
                protocol::CharacterId::parse(format!("hero{c}")).unwrap(),
            )
        }))
        .collect();
    let item = |i: usize| ItemId::parse(format!("item-{i}")).unwrap();
    let encode = |message: &ServerMessage| {
        String::from_utf8(protocol::encode_server(Encoding::Json, message).unwrap()).unwrap()
    };
    let setup = vec![
        encode(&ServerMessage::Welcome {
            user,
            owners: owners.clone(),
        }),
        encode(&ServerMessage::Snapshot {
            owners: owners
                .iter()
                .map(|owner| OwnerSnapshot {
                    owner: owner.clone(),
                    version: Version::new(1),
                    items: (0..ITEMS_PER_OWNER).map(|i| (item(i), 1_000_000)).collect(),
                })
                .collect(),
        }),
    ];
    let mut versions: BTreeMap<OwnerId, u64> = owners.iter().map(|o| (o.clone(), 1)).collect();
    let deltas = (0..DELTAS)
        .map(|n| {
            let owner = &owners[n % owners.len()];
            let version = versions.get_mut(owner).unwrap();
            *version += 1;
            let deltas = (0..1 + n % 3)
                .map(|k| ItemDelta {
                    item: item((n * 7 + k * 13) % ITEMS_PER_OWNER),
                    change: if n % 2 == 0 { -1 } else { 1 },
                })
                .collect();
            encode(&ServerMessage::Delta {
                change_id: ChangeId::from_bytes((n as u128).to_be_bytes()),
                kind: ChangeKind::Adjust,
                owner: OwnerDelta {
                    owner: owner.clone(),
                    version: Version::new(*version),
                    deltas,
                },
            })
        })
        .collect();
    (setup, deltas)
}

fn native_round(setup: &[String], deltas: &[String]) -> Duration {
    let mut state = sdk::ClientState::default();
    for frame in setup {
        state.handle(protocol::decode_server(Encoding::Json, frame.as_bytes()).unwrap());
    }
    let mut changes = 0;
    let started = Instant::now();
    for frame in deltas {
        let message = protocol::decode_server(Encoding::Json, frame.as_bytes()).unwrap();
        changes += state.handle(message).len();
    }
    let elapsed = started.elapsed();
    assert!(changes > 0 && !state.needs_resume());
    elapsed
}

fn wasm_rounds(bundle: &Path, setup: &[String], deltas: &[String]) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.json");
    let json = serde_json::json!({ "setup": setup, "deltas": deltas });
    std::fs::write(&frames, json.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/bench-node.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(bundle)
        .arg(&frames)
        .arg(ROUNDS.to_string())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the Node bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let ms: f64 = line.rsplit(' ').next()?.parse().ok()?;
            Some(Duration::from_secs_f64(ms / 1000.0))
        })
        .collect()
}

fn gzip_size(path: &Path) -> u64 {
    let output = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .expect("gzip runs");
    assert!(output.status.success());
    output.stdout.len() as u64
}

fn main() {
    let bundle = PathBuf::from(std::env::var_os("SDK_WASM_BUNDLE").expect(
        "SDK_WASM_BUNDLE names the built bundle: run this through `cargo xtask bench wasm`",
    ));
    let wasm = bundle.join("sdk_wasm_bg.wasm");
    let raw = std::fs::metadata(&wasm).expect("the bundle's .wasm").len();
    let gzip = gzip_size(&wasm);

    let (setup, deltas) = stream();
    let native_best = (0..ROUNDS)
        .map(|_| native_round(&setup, &deltas))
        .min()
        .unwrap();
    let wasm_best = wasm_rounds(&bundle, &setup, &deltas)
        .into_iter()
        .min()
        .expect("the Node bench printed its rounds");
    let native_rate = rate(DELTAS as u64, native_best);
    let wasm_rate = rate(DELTAS as u64, wasm_best);

    println!("{}: {raw} bytes raw, {gzip} bytes gzip -9", wasm.display());
    println!(
        "stream: {DELTAS} JSON delta frames over 5 owners of {ITEMS_PER_OWNER} items, best of {ROUNDS} rounds each"
    );
    println!("native sdk core (decode + ClientState::handle)   {native_rate:>10.0} deltas/s");
    println!("wasm in Node (InventoryState.applyFrame)        {wasm_rate:>10.0} deltas/s");
    let ratio = wasm_rate / native_rate;
    println!("ratio wasm/native: {ratio:.2} x");
    goal(
        "wasm",
        "size_raw",
        raw as f64 / 1000.0,
        "KB",
        GoalOp::AtMost,
        200.0,
    );
    goal(
        "wasm",
        "size_gzip",
        gzip as f64 / 1000.0,
        "KB",
        GoalOp::AtMost,
        80.0,
    );
    goal("wasm", "deltas_ratio", ratio, "x", GoalOp::AtLeast, 0.3);
}
