//! Tiny in-test servers that speak the protocol: a zone node (WebSocket) and a
//! descriptor service (HTTP), each counting what it was asked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use protocol::{
    BatchGetRequest, BatchGetResponse, ChangeId, ChangeKind, ClientMessage, Descriptor, Encoding,
    ErrorBody, ErrorCode, ItemDelta, ItemId, OwnerDelta, OwnerId, OwnerSnapshot, ServerMessage,
    UserId, Version,
};
use tokio::sync::mpsc;

pub type Resume = Option<BTreeMap<OwnerId, Version>>;
type Script = Box<dyn Fn(&Resume) -> Vec<ServerMessage> + Send + Sync>;

enum Push {
    Send(ServerMessage),
    Drop,
}

struct NodeInner {
    script: Script,
    hellos: Mutex<Vec<Resume>>,
    encodings: Mutex<Vec<Encoding>>,
    connections: AtomicUsize,
    closed: AtomicUsize,
    current: Mutex<Option<mpsc::UnboundedSender<Push>>>,
}

/// A zone node that answers every `Hello` with `Welcome` plus what its script
/// returns for the hello's resume versions; the token `bad` is refused and
/// the token `silent` never answered; after welcoming the token `deaf`, the
/// node ignores the client (pings included).
pub struct TestNode {
    pub url: String,
    inner: Arc<NodeInner>,
}

impl TestNode {
    pub async fn start(
        script: impl Fn(&Resume) -> Vec<ServerMessage> + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(NodeInner {
            script: Box::new(script),
            hellos: Mutex::new(Vec::new()),
            encodings: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            current: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/ws", any(upgrade))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    /// Sends a message on the current connection.
    pub fn push(&self, message: ServerMessage) {
        self.current().send(Push::Send(message)).ok().unwrap();
    }

    /// Drops the current connection without a close frame.
    pub fn drop_connection(&self) {
        self.current().send(Push::Drop).ok().unwrap();
    }

    fn current(&self) -> mpsc::UnboundedSender<Push> {
        self.inner
            .current
            .lock()
            .unwrap()
            .clone()
            .expect("a connection")
    }

    /// The resume versions of every hello received, in order.
    pub fn hellos(&self) -> Vec<Resume> {
        self.inner.hellos.lock().unwrap().clone()
    }

    pub fn encodings(&self) -> Vec<Encoding> {
        self.inner.encodings.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// How many connections have ended.
    pub fn closed(&self) -> usize {
        self.inner.closed.load(Ordering::SeqCst)
    }
}

async fn upgrade(State(inner): State<Arc<NodeInner>>, ws: WebSocketUpgrade) -> Response {
    ws.protocols(Encoding::ALL.map(Encoding::subprotocol))
        .on_upgrade(move |socket| serve(socket, inner))
}

async fn serve(socket: WebSocket, inner: Arc<NodeInner>) {
    converse(socket, &inner).await;
    inner.closed.fetch_add(1, Ordering::SeqCst);
}

async fn converse(mut socket: WebSocket, inner: &NodeInner) {
    let encoding = socket
        .protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or_default();
    inner.encodings.lock().unwrap().push(encoding);
    inner.connections.fetch_add(1, Ordering::SeqCst);
    let (tx, mut pushes) = mpsc::unbounded_channel();
    *inner.current.lock().unwrap() = Some(tx);
    let mut deaf = false;
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let bytes = match frame {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(_)) => continue,
                    _ => return,
                };
                if deaf {
                    continue;
                }
                let replies = match protocol::decode_client(encoding, &bytes) {
                    Ok(ClientMessage::Hello { token, resume }) => {
                        inner.hellos.lock().unwrap().push(resume.clone());
                        if token == "silent" {
                            continue;
                        }
                        deaf = token == "deaf";
                        if token == "bad" {
                            let refusal = ServerMessage::error(ErrorCode::Unauthorized, "bad token");
                            send(&mut socket, encoding, &refusal).await;
                            return;
                        }
                        let mut replies = vec![ServerMessage::Welcome {
                            user: user(),
                            owners: vec![owner("a:alice")],
                        }];
                        replies.extend((inner.script)(&resume));
                        replies
                    }
                    Ok(ClientMessage::Ping { nonce }) => vec![ServerMessage::Pong { nonce }],
                    Err(error) => vec![ServerMessage::from(&error)],
                };
                for reply in &replies {
                    send(&mut socket, encoding, reply).await;
                }
            }
            push = pushes.recv() => match push {
                Some(Push::Send(message)) => send(&mut socket, encoding, &message).await,
                Some(Push::Drop) | None => return,
            },
        }
    }
}

async fn send(socket: &mut WebSocket, encoding: Encoding, message: &ServerMessage) {
    let frame = protocol::encode_server(encoding, message).unwrap();
    let message = match encoding {
        Encoding::Json => Message::Text(String::from_utf8(frame).unwrap().into()),
        _ => Message::Binary(frame.into()),
    };
    let _ = socket.send(message).await;
}

#[derive(Default)]
struct ServiceInner {
    /// The ids of every POST received, in order.
    batches: Mutex<Vec<Vec<ItemId>>>,
    /// How many POSTs to answer 503 before answering properly.
    fail_first: AtomicUsize,
    delay: Mutex<Duration>,
}

/// A descriptor service: ids starting with `missing` are missing, with
/// `burned` burned, the id `refuse` is answered 400; anything else is found.
pub struct TestDescriptorService {
    pub url: String,
    inner: Arc<ServiceInner>,
}

impl TestDescriptorService {
    pub async fn start() -> Self {
        let inner = Arc::new(ServiceInner::default());
        let app = axum::Router::new()
            .route("/v1/descriptors/batch", post(batch))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    pub fn fail_first(&self, n: usize) {
        self.inner.fail_first.store(n, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    pub fn batches(&self) -> Vec<Vec<ItemId>> {
        self.inner.batches.lock().unwrap().clone()
    }
}

async fn batch(
    State(inner): State<Arc<ServiceInner>>,
    Json(request): Json<BatchGetRequest>,
) -> Response {
    inner.batches.lock().unwrap().push(request.ids.clone());
    let delay = *inner.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let failing = inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        let body = ErrorBody::new(ErrorCode::Unavailable, "store unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if request.ids.iter().any(|id| id.as_str() == "refuse") {
        let body = ErrorBody::new(ErrorCode::MalformedRequest, "refused");
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let mut response = BatchGetResponse {
        descriptors: Vec::new(),
        missing: Vec::new(),
        burned: Vec::new(),
    };
    for id in request.ids {
        if id.as_str().starts_with("missing") {
            response.missing.push(id);
        } else if id.as_str().starts_with("burned") {
            response.burned.push(id);
        } else {
            response.descriptors.push(descriptor(id.as_str()));
        }
    }
    Json(response).into_response()
}

pub fn user() -> UserId {
    UserId::parse("alice").unwrap()
}

pub fn owner(id: &str) -> OwnerId {
    OwnerId::parse(id).unwrap()
}

pub fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

pub fn descriptor(id: &str) -> Descriptor {
    Descriptor::catalog(item(id), format!("The {id}"))
}

pub fn snapshot(of: &str, version: u64, items: &[(&str, u64)]) -> ServerMessage {
    ServerMessage::Snapshot {
        owners: vec![OwnerSnapshot {
            owner: owner(of),
            version: Version::new(version),
            items: items.iter().map(|&(i, q)| (item(i), q)).collect(),
        }],
    }
}

pub fn delta(of: &str, version: u64, deltas: &[(&str, i64)]) -> ServerMessage {
    ServerMessage::Delta {
        change_id: ChangeId::from_bytes([version as u8; 16]),
        kind: ChangeKind::Adjust,
        owner: OwnerDelta {
            owner: owner(of),
            version: Version::new(version),
            deltas: deltas
                .iter()
                .map(|&(i, change)| ItemDelta {
                    item: item(i),
                    change,
                })
                .collect(),
        },
    }
}

/// Waits until `condition` holds, failing after five seconds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
