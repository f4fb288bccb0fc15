//! The session without IO: each case feeds inputs with the time and checks
//! the actions, events and timers that come out.

use std::collections::BTreeMap;

use proptest::prelude::*;
use protocol::{
    ChangeId, ChangeKind, ErrorBody, ItemDelta, OwnerDelta, OwnerSnapshot, UserId, Version,
};

use super::*;

const T0: Millis = 1_800_000_000_000;

fn alice() -> UserId {
    UserId::parse("alice").expect("id")
}

fn bank() -> OwnerId {
    OwnerId::account(alice())
}

fn hero() -> OwnerId {
    OwnerId::parse("c:alice:hero").expect("id")
}

fn wood() -> ItemId {
    ItemId::parse("wood").expect("id")
}

fn snapshot(owner: &OwnerId, version: u64, wood: u64) -> OwnerSnapshot {
    OwnerSnapshot {
        owner: owner.clone(),
        version: Version::new(version),
        items: if wood > 0 {
            [(self::wood(), wood)].into()
        } else {
            BTreeMap::new()
        },
    }
}

fn delta(owner: &OwnerId, version: u64, change: i64) -> ServerMessage {
    ServerMessage::Delta {
        change_id: ChangeId::nil(),
        kind: ChangeKind::Adjust,
        owner: OwnerDelta {
            owner: owner.clone(),
            version: Version::new(version),
            deltas: vec![ItemDelta {
                item: wood(),
                change,
            }],
        },
    }
}

fn welcome(owners: &[OwnerId]) -> ServerMessage {
    ServerMessage::Welcome {
        user: alice(),
        owners: owners.to_vec(),
    }
}

/// An unsigned JWT whose `exp` is `exp_ms` (rounded down to seconds).
fn jwt(exp_ms: Millis) -> String {
    crate::testing::unsigned_jwt("alice", exp_ms / 1000)
}

/// A session and its clock, with helpers that feed it and read it out.
struct Harness {
    session: Session,
    now: Millis,
}

impl Harness {
    fn new(session: Session) -> Self {
        Self { session, now: T0 }
    }

    fn fixed() -> Self {
        Self::new(Session::new(SessionConfig::default(), "token"))
    }

    fn provided() -> Self {
        Self::new(Session::with_token_provider(SessionConfig::default()))
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// The one socket the actions open.
    fn opened(&mut self) -> SocketId {
        let opens: Vec<SocketId> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Open(id) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(opens.len(), 1, "one socket opened: {opens:?}");
        opens[0]
    }

    /// The client messages sent since the last read.
    fn sent(&mut self) -> Vec<ClientMessage> {
        self.actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Send(frame) => {
                    Some(protocol::decode_client(Encoding::Json, &frame).expect("decodes"))
                }
                _ => None,
            })
            .collect()
    }

    fn receive(&mut self, id: SocketId, message: &ServerMessage) {
        let frame = protocol::encode_server(Encoding::Json, message).expect("encodes");
        self.session.frame(self.now, id, &frame);
    }

    fn advance_to(&mut self, at: Millis) {
        self.now = at;
        self.session.handle_timeout(at);
    }

    /// Runs the clock to the next timer.
    fn next_timer(&mut self) {
        let at = self.session.poll_timeout().expect("a timer is armed");
        self.advance_to(at.max(self.now));
    }

    fn ready(&mut self) -> Vec<Result<(), ErrorCode>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                SessionEvent::Ready(r) => Some(r.map_err(|e| e.code())),
                _ => None,
            })
            .collect()
    }

    /// Connects with a fixed token and hydrates both owners.
    fn connected() -> (Self, SocketId) {
        let mut h = Self::fixed();
        h.session.connect(h.now);
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        h.receive(id, &welcome(&[bank(), hero()]));
        h.receive(
            id,
            &ServerMessage::Snapshot {
                owners: vec![snapshot(&bank(), 3, 10), snapshot(&hero(), 1, 0)],
            },
        );
        assert_eq!(h.ready(), [Ok(())]);
        let _ = h.actions();
        (h, id)
    }
}

fn is_hello(message: &ClientMessage) -> Option<(&str, Option<&BTreeMap<OwnerId, Version>>)> {
    match message {
        ClientMessage::Hello { token, resume } => Some((token.as_str(), resume.as_ref())),
        ClientMessage::Ping { .. } => None,
    }
}

#[test]
fn connect_resolves_once_every_inventory_is_held() {
    let mut h = Harness::fixed();
    h.session.connect(h.now);
    let id = h.opened();
    assert_eq!(
        h.session.connection(),
        ConnectionState::Connecting { attempt: 0 }
    );
    h.session.socket_opened(h.now, id);
    let sent = h.sent();
    assert_eq!(is_hello(&sent[0]), Some(("token", None)));
    h.receive(id, &welcome(&[bank(), hero()]));
    h.receive(
        id,
        &ServerMessage::Snapshot {
            owners: vec![snapshot(&bank(), 3, 10)],
        },
    );
    assert!(h.ready().is_empty(), "the hero is not held yet");
    assert_ne!(h.session.connection(), ConnectionState::Connected);
    h.receive(
        id,
        &ServerMessage::Snapshot {
            owners: vec![snapshot(&hero(), 1, 0)],
        },
    );
    assert_eq!(h.ready(), [Ok(())]);
    assert_eq!(h.session.connection(), ConnectionState::Connected);
    // The first ping goes at once, so the latency is known early.
    assert!(matches!(h.sent()[..], [ClientMessage::Ping { nonce: 1 }]));
    h.receive(id, &ServerMessage::Pong { nonce: 1 });
    assert_eq!(h.session.latency(), Some(Duration::ZERO));
}

/// Each row: what ends the first attempt, before any inventory is held.
#[test]
fn the_first_attempt_failing_fails_connect_and_closes() {
    type Fail = fn(&mut Harness, SocketId);
    let cases: [(&str, Fail, ErrorCode); 4] = [
        (
            "socket refused",
            |h, id| h.session.socket_closed(h.now, id, None, "refused"),
            ErrorCode::Unavailable,
        ),
        (
            "no welcome in time",
            |h, _| h.next_timer(),
            ErrorCode::Unavailable,
        ),
        (
            "token refused",
            |h, id| {
                h.receive(
                    id,
                    &ServerMessage::Error(ErrorBody::new(ErrorCode::Unauthorized, "bad")),
                );
            },
            ErrorCode::Unauthorized,
        ),
        (
            "token expired, no provider",
            |h, id| {
                h.receive(
                    id,
                    &ServerMessage::Error(ErrorBody::new(ErrorCode::TokenExpired, "expired")),
                );
            },
            ErrorCode::TokenExpired,
        ),
    ];
    for (name, fail, code) in cases {
        let mut h = Harness::fixed();
        h.session.connect(h.now);
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        fail(&mut h, id);
        assert_eq!(h.ready(), [Err(code)], "{name}");
        assert_eq!(h.session.connection(), ConnectionState::Closed, "{name}");
        assert_eq!(h.session.poll_timeout(), None, "{name}: no timer left");
        h.session.connect(h.now);
        assert_eq!(h.ready(), [Err(ErrorCode::Unavailable)], "{name}: closed");
    }
}

#[test]
fn a_lost_session_reconnects_with_growing_delays_and_resumes() {
    let (mut h, first) = Harness::connected();
    h.session.socket_closed(h.now, first, Some(1006), "gone");
    let ConnectionState::Reconnecting { attempt: 1, delay } = h.session.connection() else {
        panic!("{:?}", h.session.connection());
    };
    assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(100));
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, SessionEvent::Error(_)))
    );
    // The next attempt fails too: a longer delay.
    h.next_timer();
    let second = h.opened();
    h.session.socket_closed(h.now, second, None, "refused");
    let ConnectionState::Reconnecting { attempt: 2, delay } = h.session.connection() else {
        panic!("{:?}", h.session.connection());
    };
    assert!(delay >= Duration::from_millis(100), "{delay:?}");
    h.next_timer();
    let third = h.opened();
    h.session.socket_opened(h.now, third);
    let sent = h.sent();
    let (_, resume) = is_hello(&sent[0]).expect("hello");
    assert_eq!(
        resume.expect("resumes"),
        &BTreeMap::from([(bank(), Version::new(3)), (hero(), Version::new(1))])
    );
    // The node resumes: no snapshot, the missed delta.
    h.receive(third, &welcome(&[bank(), hero()]));
    h.receive(third, &delta(&bank(), 4, -4));
    assert_eq!(h.session.connection(), ConnectionState::Connected);
    assert!(h.ready().is_empty(), "connect() settled once");
    assert_eq!(
        h.session.state().owner(&bank()).expect("held").items[&wood()],
        6
    );
    assert_eq!(h.session.stats().snapshots, 2, "only the first session's");
}

#[test]
fn events_of_a_socket_given_up_are_ignored() {
    let (mut h, old) = Harness::connected();
    h.session.reconnect(h.now);
    let actions = h.actions();
    assert_eq!(actions[0], Action::CloseSocket);
    let Action::Open(new) = actions[1] else {
        panic!("{actions:?}");
    };
    h.receive(old, &delta(&bank(), 4, -4));
    h.session.socket_closed(h.now, old, None, "late");
    assert_eq!(
        h.session.state().owner(&bank()).expect("held").version,
        Version::new(3)
    );
    assert_eq!(
        h.session.connection(),
        ConnectionState::Connecting { attempt: 0 }
    );
    h.session.socket_opened(h.now, new);
    assert!(is_hello(&h.sent()[0]).is_some());
}

#[test]
fn a_silent_node_is_dead_after_two_ping_intervals() {
    let (mut h, _) = Harness::connected();
    let interval = SessionConfig::default().ping_interval.as_millis() as u64;
    h.advance_to(T0 + interval);
    assert!(matches!(h.sent()[..], [ClientMessage::Ping { .. }]));
    h.advance_to(T0 + 2 * interval + 1);
    assert!(h.actions().contains(&Action::CloseSocket));
    assert!(matches!(
        h.session.connection(),
        ConnectionState::Reconnecting { attempt: 1, .. }
    ));
}

#[test]
fn a_gap_asks_the_node_to_resume_on_the_open_socket() {
    let (mut h, id) = Harness::connected();
    h.receive(id, &delta(&bank(), 6, -1));
    let sent = h.sent();
    let (_, resume) = is_hello(&sent[0]).expect("a resume hello");
    assert_eq!(resume.expect("versions")[&bank()], Version::new(3));
    // A version from the future never shows.
    assert_eq!(
        h.session.state().owner(&bank()).expect("held").version,
        Version::new(3)
    );
}

/// Each row: a frame that breaks the contract, and the code reported.
#[test]
fn garbage_from_the_node_is_reported_and_the_session_starts_over() {
    let oversized = vec![b' '; protocol::MAX_SERVER_FRAME_BYTES + 1];
    let cases: [(&str, &[u8], ErrorCode); 5] = [
        (
            "unknown type",
            b"{\"type\":\"surprise\"}",
            ErrorCode::MalformedRequest,
        ),
        ("not JSON", b"\xff\xfe", ErrorCode::MalformedRequest),
        (
            "type not first",
            b"{\"nonce\":1,\"type\":\"pong\"}",
            ErrorCode::MalformedRequest,
        ),
        (
            "a field missing",
            b"{\"type\":\"welcome\",\"owners\":[]}",
            ErrorCode::MalformedRequest,
        ),
        ("oversized", &oversized, ErrorCode::PayloadTooLarge),
    ];
    for (name, frame, code) in cases {
        let (mut h, id) = Harness::connected();
        let before = h.session.state().view();
        h.session.frame(h.now, id, frame);
        let errors: Vec<ErrorCode> = h
            .events()
            .into_iter()
            .filter_map(|e| match e {
                SessionEvent::Error(e) => Some(e.code()),
                _ => None,
            })
            .collect();
        assert_eq!(errors, [code], "{name}");
        assert!(h.actions().contains(&Action::CloseSocket), "{name}");
        assert_eq!(h.session.stats().bad_frames, 1, "{name}");
        assert_eq!(h.session.state().view(), before, "{name}: nothing shown");
        h.next_timer();
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        assert!(
            is_hello(&h.sent()[0]).expect("hello").1.is_some(),
            "{name}: resumes"
        );
    }
}

#[test]
fn a_provider_is_asked_before_connecting_and_before_expiry() {
    let mut h = Harness::provided();
    h.session.connect(h.now);
    assert_eq!(h.actions(), [Action::RefreshToken]);
    let first = jwt(T0 + 8_000);
    h.session.token(h.now, Ok(first.clone()));
    let id = h.opened();
    h.session.socket_opened(h.now, id);
    assert_eq!(is_hello(&h.sent()[0]).expect("hello").0, first);
    h.hydrate(id, snapshot(&bank(), 3, 10));
    assert_eq!(h.ready(), [Ok(())]);
    let _ = h.actions();
    // Three quarters of the 8 s lifetime: a fresh token, sent on the open
    // socket as a resuming hello; no reconnect.
    assert_eq!(h.session.poll_timeout(), Some(T0 + 6_000));
    h.advance_to(T0 + 6_000);
    assert_eq!(h.actions(), [Action::RefreshToken]);
    let second = jwt(T0 + 14_000);
    h.session.token(h.now, Ok(second.clone()));
    let sent = h.sent();
    let (token, resume) = is_hello(&sent[0]).expect("hello");
    assert_eq!(token, second);
    assert_eq!(resume.expect("resumes")[&bank()], Version::new(3));
    assert_eq!(h.session.connection(), ConnectionState::Connected);
    assert_eq!(h.session.stats().sockets, 1);
}

#[test]
fn an_expiry_close_reconnects_at_once_with_a_fresh_token() {
    let mut h = Harness::provided();
    h.session.connect(h.now);
    let _ = h.actions();
    h.session.token(h.now, Ok(jwt(T0 + 4_000)));
    let id = h.opened();
    h.session.socket_opened(h.now, id);
    h.hydrate(id, snapshot(&bank(), 3, 10));
    let _ = (h.actions(), h.events());
    // The proactive refresh fails; the node closes at expiry.
    h.advance_to(T0 + 3_000);
    assert_eq!(h.actions(), [Action::RefreshToken]);
    h.session
        .token(h.now, Err(Error::HttpStatus { status: 503 }));
    h.now = T0 + 4_500;
    h.session
        .socket_closed(h.now, id, Some(protocol::CLOSE_TOKEN_EXPIRED), "expired");
    assert_eq!(h.actions(), [Action::RefreshToken], "no backoff delay");
    h.session.token(h.now, Ok(jwt(T0 + 20_000)));
    let id = h.opened();
    h.session.socket_opened(h.now, id);
    let sent = h.sent();
    assert!(is_hello(&sent[0]).expect("hello").1.is_some(), "resumes");
    h.receive(id, &welcome(&[bank()]));
    h.receive(id, &delta(&bank(), 4, 1));
    assert_eq!(h.session.connection(), ConnectionState::Connected);
    assert_eq!(h.session.stats().snapshots, 1);
}

#[test]
fn a_provider_handing_out_expired_tokens_is_given_up() {
    let mut h = Harness::provided();
    h.session.connect(h.now);
    for _ in 0..=MAX_EXPIRED_REFUSALS {
        let actions = h.actions();
        assert_eq!(actions.last(), Some(&Action::RefreshToken), "{actions:?}");
        h.session.token(h.now, Ok("opaque".to_owned()));
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        let _ = h.sent();
        h.receive(
            id,
            &ServerMessage::Error(ErrorBody::new(ErrorCode::TokenExpired, "expired")),
        );
    }
    assert_eq!(h.session.connection(), ConnectionState::Closed);
    assert_eq!(h.ready(), [Err(ErrorCode::TokenExpired)]);
}

#[test]
fn descriptors_are_batched_and_retried_after_a_retryable_failure() {
    let config = SessionConfig {
        fetch_descriptors: true,
        ..SessionConfig::default()
    };
    let mut h = Harness::new(Session::new(config, "token"));
    h.session.connect(h.now);
    let id = h.opened();
    h.session.socket_opened(h.now, id);
    h.hydrate(id, snapshot(&bank(), 3, 10));
    assert!(
        !h.actions()
            .iter()
            .any(|a| matches!(a, Action::FetchDescriptors(_)))
    );
    h.next_timer();
    let fetches: Vec<Vec<ItemId>> = h
        .actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::FetchDescriptors(ids) => Some(ids),
            _ => None,
        })
        .collect();
    assert_eq!(fetches, [vec![wood()]]);
    h.session
        .descriptors(h.now, &[wood()], Err(Error::HttpStatus { status: 503 }));
    let retry = h.session.poll_timeout().expect("a retry");
    assert!(retry > h.now);
    h.advance_to(retry);
    h.next_timer();
    assert!(
        h.actions()
            .contains(&Action::FetchDescriptors(vec![wood()]))
    );
}

#[test]
fn close_is_final_and_settles_a_pending_connect() {
    let mut h = Harness::fixed();
    h.session.connect(h.now);
    let _ = h.opened();
    h.session.close();
    assert_eq!(h.actions(), [Action::CloseSocket]);
    assert_eq!(h.ready(), [Err(ErrorCode::Unavailable)]);
    assert_eq!(h.session.connection(), ConnectionState::Closed);
    assert_eq!(h.session.poll_timeout(), None);
    let (mut h, _) = Harness::connected();
    h.session.close();
    assert!(h.session.state().view().owners.is_empty(), "close lets go");
}

#[test]
fn jwt_expiry_is_read_without_verifying() {
    assert_eq!(jwt_expiry(&jwt(T0 + 5_000)), Some(T0 + 5_000));
    assert_eq!(jwt_expiry("opaque"), None);
    assert_eq!(jwt_expiry("a.!!!.c"), None);
    assert_eq!(jwt_expiry("a.e30.c"), None, "{{}} has no exp");
}

/// What the node does with one frame of the bank's history.
#[derive(Clone, Debug)]
enum Step {
    /// Sends delta `k` (1-based) of the history, perhaps again or out of order.
    Delta(usize),
    /// The socket drops; the session reconnects and the node resumes.
    Drop,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            8 => (1usize..=12).prop_map(Step::Delta),
            1 => Just(Step::Drop),
        ],
        0..60,
    )
}

proptest! {
    /// Any interleaving of duplicated, reordered and dropped deltas and
    /// reconnects: the view only ever shows a state the store had, and after
    /// a final resume it is the last one.
    #[test]
    fn the_view_only_shows_states_the_store_had(steps in steps()) {
        // The store's history: version v holds 100 + the sum of changes 1..=v.
        let changes: Vec<i64> = (1..=12).map(|v| if v % 3 == 0 { -2 } else { 1 }).collect();
        let balance_at = |v: usize| (100 + changes[..v].iter().sum::<i64>()) as u64;
        let (mut h, mut id) = Harness::connected_with(snapshot(&bank(), 0, 100));
        for step in steps {
            match step {
                Step::Delta(k) => h.receive(id, &delta(&bank(), k as u64, changes[k - 1])),
                Step::Drop => {
                    h.session.socket_closed(h.now, id, None, "dropped");
                    h.next_timer();
                    id = h.opened();
                    h.session.socket_opened(h.now, id);
                    h.receive(id, &welcome(&[bank()]));
                }
            }
            // A resume asked for on the open socket is answered like the node
            // would: the deltas after the held version.
            for message in h.sent() {
                if let Some((_, Some(resume))) = is_hello(&message) {
                    let from = resume[&bank()].get() as usize;
                    h.receive(id, &welcome(&[bank()]));
                    for k in from + 1..=12 {
                        h.receive(id, &delta(&bank(), k as u64, changes[k - 1]));
                    }
                }
            }
            let held = h.session.state().owner(&bank()).expect("held").clone();
            let v = held.version.get() as usize;
            prop_assert_eq!(held.items.get(&wood()).copied().unwrap_or(0), balance_at(v));
        }
        // A final resume brings the last state.
        h.session.socket_closed(h.now, id, None, "end");
        h.next_timer();
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        let sent = h.sent();
        let from = is_hello(&sent[0]).and_then(|(_, r)| r.map(|r| r[&bank()].get())).unwrap_or(0) as usize;
        h.receive(id, &welcome(&[bank()]));
        for k in from + 1..=12 {
            h.receive(id, &delta(&bank(), k as u64, changes[k - 1]));
        }
        let held = h.session.state().owner(&bank()).expect("held");
        prop_assert_eq!(held.version.get(), 12);
        prop_assert_eq!(held.items[&wood()], balance_at(12));
    }
}

impl Harness {
    /// The node welcomes the client with `bank` alone, then sends it.
    fn hydrate(&mut self, id: SocketId, bank: OwnerSnapshot) {
        self.receive(id, &welcome(std::slice::from_ref(&bank.owner)));
        self.receive(id, &ServerMessage::Snapshot { owners: vec![bank] });
    }

    /// Connected with the bank alone, held as `bank`.
    fn connected_with(bank: OwnerSnapshot) -> (Self, SocketId) {
        let mut h = Self::fixed();
        h.session.connect(h.now);
        let id = h.opened();
        h.session.socket_opened(h.now, id);
        h.hydrate(id, bank);
        assert_eq!(h.ready(), [Ok(())]);
        let _ = (h.actions(), h.events());
        (h, id)
    }
}
