//! Many lightweight client sessions in one process.
//!
//! Each session is one WebSocket (JSON encoding) that says `Hello` with its
//! player's token, then reads: it keeps only each owner's version, counts a
//! delta as the next version, a repeat or a gap, and records the age of
//! every new delta from its stamped change id. A lost connection is opened
//! again with `Hello` and the versions held, as a real client resumes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use protocol::{ClientMessage, Encoding, OwnerId, ServerMessage, Version};
use rand::Rng;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::{Report, player, stamp};

/// How often a session pings, well within the node's idle timeout.
const PING_EVERY: Duration = Duration::from_secs(20);

/// What a clients process does.
#[derive(Clone, Debug)]
pub struct ClientsConfig {
    /// The node's WebSocket URL (`ws://host:port/v1/ws`).
    pub url: String,
    /// The node's JWT secret, to mint each player's token.
    pub jwt_secret: String,
    /// Player names are `<prefix><n>`.
    pub prefix: String,
    /// The first player's number.
    pub first: u64,
    /// How many players.
    pub players: u64,
    /// Sessions per player (a player on several devices; default 1).
    pub sessions_per_player: u64,
    /// Sessions opened per second while ramping up.
    pub connect_rate: u64,
    /// How long to wait for every session's welcome before going on with
    /// those welcomed.
    pub ramp_timeout: Duration,
    /// How long the sessions stay after the last one was welcomed.
    pub hold: Duration,
    /// Whether the report lists the version each session holds of each owner
    /// at the end (for checks against the store).
    pub keep_versions: bool,
}

/// A session token for `user`, valid for `ttl`.
pub fn token(secret: &str, user: &str, ttl: Duration) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = stamp::now_micros() / 1_000_000 + ttl.as_secs();
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims { sub: user, exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

struct Shared {
    config: ClientsConfig,
    report: Mutex<Report>,
    welcomed: AtomicU64,
}

impl Shared {
    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Opens every session, calls `ready` once all are welcomed (or after
/// `ramp_timeout`, with how many are), holds them for `hold`, and reports.
/// The measured time is the hold.
pub async fn run(config: ClientsConfig, ready: impl FnOnce(u64)) -> anyhow::Result<Report> {
    let ttl = config.hold + Duration::from_secs(3600);
    let shared = Arc::new(Shared {
        config: config.clone(),
        report: Mutex::new(Report::default()),
        welcomed: AtomicU64::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::with_capacity(usize::try_from(config.players).unwrap_or(0));
    let gap = Duration::from_secs_f64(1.0 / config.connect_rate.max(1) as f64);
    let mut next = tokio::time::Instant::now();
    for n in config.first..config.first + config.players {
        let user = player(&config.prefix, n);
        let token = token(&config.jwt_secret, &user, ttl)?;
        for _ in 0..config.sessions_per_player.max(1) {
            tasks.push(tokio::spawn(session(
                Arc::clone(&shared),
                token.clone(),
                stopped.clone(),
            )));
            next += gap;
            tokio::time::sleep_until(next).await;
        }
    }
    let sessions = config.players * config.sessions_per_player.max(1);
    let ramp_deadline = Instant::now() + config.ramp_timeout;
    while shared.welcomed.load(Ordering::Relaxed) < sessions && Instant::now() < ramp_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ready(shared.welcomed.load(Ordering::Relaxed));
    let held = Instant::now();
    tokio::time::sleep(config.hold).await;
    let elapsed = held.elapsed();
    stop.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
    let mut report = std::mem::take(&mut *shared.report());
    report.sessions = shared.welcomed.load(Ordering::Relaxed);
    report.elapsed_secs = elapsed.as_secs_f64();
    report.record_process();
    Ok(report)
}

/// One player's session until the stop, reconnecting when the connection
/// is lost.
async fn session(shared: Arc<Shared>, token: String, mut stopped: watch::Receiver<bool>) {
    let mut versions: HashMap<OwnerId, Version> = HashMap::new();
    let mut welcomed_once = false;
    loop {
        match tokio_tungstenite::connect_async(shared.config.url.as_str()).await {
            Ok((socket, _)) => {
                connection(
                    &shared,
                    socket,
                    &token,
                    &mut versions,
                    &mut welcomed_once,
                    &mut stopped,
                )
                .await;
            }
            Err(e) => shared.report().error(format!("connect: {}", kind(&e))),
        }
        if *stopped.borrow() {
            if shared.config.keep_versions {
                let mut report = shared.report();
                for (owner, version) in &versions {
                    report.versions.insert(owner.to_string(), version.get());
                }
            }
            return;
        }
        shared.report().reconnects += 1;
        let pause = Duration::from_millis(rand::rng().random_range(250..750));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The kind of a WebSocket error, short enough to count by.
fn kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    let text = e.to_string();
    text.split(':').next().unwrap_or(&text).to_owned()
}

async fn connection<S>(
    shared: &Shared,
    socket: tokio_tungstenite::WebSocketStream<S>,
    token: &str,
    versions: &mut HashMap<OwnerId, Version>,
    welcomed_once: &mut bool,
    stopped: &mut watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    let resume = (!versions.is_empty()).then(|| {
        versions
            .iter()
            .map(|(owner, version)| (owner.clone(), *version))
            .collect::<BTreeMap<_, _>>()
    });
    let hello = ClientMessage::Hello {
        token: token.to_owned(),
        resume,
    };
    let Some(frame) = text_frame(&hello) else {
        return;
    };
    if sink.send(frame).await.is_err() {
        shared.report().error("send");
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let decoded = match &frame {
                    Some(Ok(Message::Text(text))) => protocol::decode_server(Encoding::Json, text.as_bytes()),
                    Some(Ok(Message::Binary(bytes))) => protocol::decode_server(Encoding::Json, bytes),
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        shared.report().error(format!("receive: {}", kind(e)));
                        return;
                    }
                };
                match decoded {
                    Ok(message) => on_message(shared, message, versions, welcomed_once),
                    Err(_) => shared.report().error("undecodable frame"),
                }
            }
            _ = ping.tick() => {
                nonce += 1;
                if let Some(frame) = text_frame(&ClientMessage::Ping { nonce }) {
                    let _ = sink.send(frame).await;
                }
            }
            _ = stopped.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// A client message as the JSON text frame the node reads.
fn text_frame(message: &ClientMessage) -> Option<Message> {
    let json = protocol::encode_client(Encoding::Json, message).ok()?;
    String::from_utf8(json).ok().map(Message::text)
}

fn on_message(
    shared: &Shared,
    message: ServerMessage,
    versions: &mut HashMap<OwnerId, Version>,
    welcomed_once: &mut bool,
) {
    match message {
        ServerMessage::Welcome { owners, .. } => {
            versions.retain(|owner, _| owners.contains(owner));
            if !*welcomed_once {
                *welcomed_once = true;
                shared.welcomed.fetch_add(1, Ordering::Relaxed);
            }
        }
        ServerMessage::Snapshot { owners } => {
            for snapshot in owners {
                versions.insert(snapshot.owner, snapshot.version);
            }
            shared.report().snapshots += 1;
        }
        ServerMessage::Delta {
            change_id, owner, ..
        } => {
            let now = stamp::now_micros();
            // An owner the snapshot did not list has never been touched.
            let held = versions
                .get(&owner.owner)
                .copied()
                .unwrap_or(Version::new(0));
            let mut report = shared.report();
            if owner.version <= held {
                report.duplicates += 1;
                return;
            }
            if owner.version == held.next() {
                report.deltas += 1;
            } else {
                report.gaps += 1;
            }
            versions.insert(owner.owner, owner.version);
            if let Some(age) = stamp::age(&change_id, now) {
                report.delta_latency.record(age);
            }
        }
        ServerMessage::Error(body) => shared.report().error(body.code.to_string()),
        ServerMessage::Resumed { .. } | ServerMessage::Pong { .. } => {}
    }
}
