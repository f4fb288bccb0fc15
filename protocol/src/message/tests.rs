use proptest::prelude::*;

use super::*;
use crate::{CharacterId, ItemDelta, ItemId};

fn alice() -> UserId {
    UserId::parse("alice").unwrap()
}

fn account() -> OwnerId {
    OwnerId::account(alice())
}

fn hero() -> OwnerId {
    OwnerId::character(alice(), CharacterId::parse("hero").unwrap())
}

/// One example of every message, with its exact compact JSON.
fn server_examples() -> Vec<(ServerMessage, &'static str)> {
    vec![
        (
            ServerMessage::Welcome {
                user: alice(),
                owners: vec![account(), hero()],
            },
            r#"{"type":"welcome","user":"alice","owners":["a:alice","c:alice:hero"]}"#,
        ),
        (
            ServerMessage::Snapshot {
                owners: vec![OwnerSnapshot {
                    owner: account(),
                    version: Version::new(7),
                    items: [(ItemId::parse("wood").unwrap(), 12)].into(),
                }],
            },
            r#"{"type":"snapshot","owners":[{"owner":"a:alice","version":7,"items":{"wood":12}}]}"#,
        ),
        (
            ServerMessage::Resumed {
                owners: vec![hero()],
            },
            r#"{"type":"resumed","owners":["c:alice:hero"]}"#,
        ),
        (
            ServerMessage::Delta {
                change_id: ChangeId::nil(),
                kind: ChangeKind::Trade,
                owner: OwnerDelta {
                    owner: hero(),
                    version: Version::new(8),
                    deltas: vec![ItemDelta {
                        item: ItemId::parse("sword-1").unwrap(),
                        change: -1,
                    }],
                },
            },
            r#"{"type":"delta","change_id":"00000000-0000-0000-0000-000000000000","kind":"trade","owner":{"owner":"c:alice:hero","version":8,"deltas":[{"item":"sword-1","change":-1}]}}"#,
        ),
        (
            ServerMessage::Pong { nonce: 42 },
            r#"{"type":"pong","nonce":42}"#,
        ),
        (
            ServerMessage::error(ErrorCode::Unauthorized, "token expired"),
            r#"{"type":"error","code":"unauthorized","message":"token expired"}"#,
        ),
    ]
}

fn client_examples() -> Vec<(ClientMessage, &'static str)> {
    vec![
        (
            ClientMessage::Hello {
                token: "t".into(),
                resume: None,
            },
            r#"{"type":"hello","token":"t"}"#,
        ),
        (
            ClientMessage::Hello {
                token: "t".into(),
                resume: Some([(account(), Version::new(7)), (hero(), Version::ZERO)].into()),
            },
            r#"{"type":"hello","token":"t","resume":{"a:alice":7,"c:alice:hero":0}}"#,
        ),
        (
            ClientMessage::Ping { nonce: 1 },
            r#"{"type":"ping","nonce":1}"#,
        ),
    ]
}

#[test]
fn every_message_has_the_documented_json_and_round_trips_in_both_encodings() {
    for (message, json) in server_examples() {
        let frame = encode_server(Encoding::Json, &message).unwrap();
        assert_eq!(std::str::from_utf8(&frame).unwrap(), json);
        for encoding in built_in() {
            let frame = encode_server(encoding, &message).unwrap();
            assert_eq!(decode_server(encoding, &frame).unwrap(), message);
        }
    }
    for (message, json) in client_examples() {
        let frame = encode_client(Encoding::Json, &message).unwrap();
        assert_eq!(std::str::from_utf8(&frame).unwrap(), json);
        for encoding in built_in() {
            let frame = encode_client(encoding, &message).unwrap();
            assert_eq!(decode_client(encoding, &frame).unwrap(), message);
        }
    }
}

/// The encodings this build has (MessagePack with the `msgpack` feature).
fn built_in() -> impl Iterator<Item = Encoding> {
    Encoding::ALL.into_iter().filter(|e| e.is_built_in())
}

fn check_refused(frame: &[u8], expected: ErrorCode) {
    let error = decode_client(Encoding::Json, frame).unwrap_err();
    assert_eq!(error.code(), expected, "{}", String::from_utf8_lossy(frame));
}

#[test]
fn client_frames_that_are_not_exactly_hello_or_ping_are_refused() {
    let m = ErrorCode::MalformedRequest;
    check_refused(
        br#"{"type":"grant","owner":"a:alice","item":"gold","qty":1}"#,
        m,
    );
    check_refused(br#"{"type":"delta","change_id":"x"}"#, m);
    check_refused(br#"{"type":"ping","nonce":1,"grant":"gold"}"#, m);
    check_refused(
        br#"{"type":"hello","token":"t","resume":{"a:bad owner":1}}"#,
        m,
    );
    check_refused(br#"{"type":"hello"}"#, m);
    check_refused(br#"{"type":"ping","nonce":-1}"#, m);
    check_refused(br#"{"nonce":1}"#, m);
    check_refused(br#"{"type":"ping","nonce":1} trailing"#, m);
    check_refused(b"", m);
    check_refused(b"\xff\xfe", m);
    let big = format!(
        r#"{{"type":"hello","token":"{}"}}"#,
        "x".repeat(MAX_CLIENT_FRAME_BYTES)
    );
    check_refused(big.as_bytes(), ErrorCode::PayloadTooLarge);
}

#[cfg(feature = "msgpack")]
#[test]
fn messagepack_refuses_trailing_bytes_and_garbage() {
    let mut frame =
        encode_client(Encoding::MessagePack, &ClientMessage::Ping { nonce: 3 }).unwrap();
    frame.push(0xc0);
    let error = decode_client(Encoding::MessagePack, &frame).unwrap_err();
    assert_eq!(error.code(), ErrorCode::MalformedRequest);
    let error = decode_client(Encoding::MessagePack, &[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(error.code(), ErrorCode::MalformedRequest);
}

#[test]
fn debug_output_hides_the_token() {
    let hello = ClientMessage::Hello {
        token: "secret.jwt.value".into(),
        resume: None,
    };
    let shown = format!("{hello:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("16 bytes"), "{shown}");
}

#[test]
fn subprotocol_names_round_trip() {
    for encoding in Encoding::ALL {
        assert_eq!(
            Encoding::from_subprotocol(encoding.subprotocol()),
            Some(encoding)
        );
    }
    assert_eq!(Encoding::from_subprotocol("inv.v2.json"), None);
    assert_eq!(Encoding::default(), Encoding::Json);
}

fn arb_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,12}"
}

fn arb_owner() -> impl Strategy<Value = OwnerId> {
    (arb_id(), proptest::option::of(arb_id())).prop_map(|(user, character)| {
        let user = UserId::parse(user).unwrap();
        match character {
            Some(c) => OwnerId::character(user, CharacterId::parse(c).unwrap()),
            None => OwnerId::account(user),
        }
    })
}

fn arb_item() -> impl Strategy<Value = ItemId> {
    arb_id().prop_map(|id| ItemId::parse(id).unwrap())
}

fn arb_kind() -> impl Strategy<Value = ChangeKind> {
    prop_oneof![
        Just(ChangeKind::Adjust),
        Just(ChangeKind::Trade),
        Just(ChangeKind::Craft),
        Just(ChangeKind::Burn),
    ]
}

fn arb_client() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            ".{0,40}",
            proptest::option::of(proptest::collection::btree_map(
                arb_owner(),
                any::<u64>().prop_map(Version::new),
                0..4
            ))
        )
            .prop_map(|(token, resume)| ClientMessage::Hello { token, resume }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
    ]
}

fn arb_server() -> impl Strategy<Value = ServerMessage> {
    let snapshot = (
        arb_owner(),
        any::<u64>(),
        proptest::collection::btree_map(arb_item(), any::<u64>(), 0..4),
    )
        .prop_map(|(owner, version, items)| OwnerSnapshot {
            owner,
            version: Version::new(version),
            items,
        });
    let delta = (
        any::<[u8; 16]>(),
        arb_kind(),
        arb_owner(),
        any::<u64>(),
        proptest::collection::vec((arb_item(), any::<i64>()), 0..4),
    )
        .prop_map(|(id, kind, owner, version, deltas)| ServerMessage::Delta {
            change_id: ChangeId::from_bytes(id),
            kind,
            owner: OwnerDelta {
                owner,
                version: Version::new(version),
                deltas: deltas
                    .into_iter()
                    .map(|(item, change)| ItemDelta { item, change })
                    .collect(),
            },
        });
    prop_oneof![
        (arb_id(), proptest::collection::vec(arb_owner(), 0..4)).prop_map(|(user, owners)| {
            ServerMessage::Welcome {
                user: UserId::parse(user).unwrap(),
                owners,
            }
        }),
        proptest::collection::vec(snapshot, 0..3)
            .prop_map(|owners| ServerMessage::Snapshot { owners }),
        proptest::collection::vec(arb_owner(), 0..4)
            .prop_map(|owners| ServerMessage::Resumed { owners }),
        delta,
        any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
        (proptest::sample::select(ErrorCode::ALL), ".{0,40}")
            .prop_map(|(code, message)| ServerMessage::error(code, message)),
    ]
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("hello".to_string()),
            Just("ping".to_string()),
            Just("a:alice".to_string()),
            ".{0,12}"
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("token".to_string()),
                    Just("resume".to_string()),
                    Just("nonce".to_string()),
                    ".{0,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for encoding in built_in() {
            if let Err(e) = decode_client(encoding, &bytes) {
                prop_assert!(matches!(e.code(), ErrorCode::MalformedRequest | ErrorCode::PayloadTooLarge));
            }
            let _ = decode_server(encoding, &bytes);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoders(value in arb_json()) {
        let json = serde_json::to_vec(&value).unwrap();
        #[cfg(feature = "msgpack")]
        let frames = [(Encoding::Json, json.clone()), (Encoding::MessagePack, rmp_serde::to_vec_named(&value).unwrap())];
        #[cfg(not(feature = "msgpack"))]
        let frames = [(Encoding::Json, json.clone())];
        for (encoding, frame) in &frames {
            let (encoding, frame) = (*encoding, frame);
            if let Err(e) = decode_client(encoding, frame) {
                prop_assert!(matches!(e.code(), ErrorCode::MalformedRequest | ErrorCode::PayloadTooLarge));
            }
            let _ = decode_server(encoding, frame);
        }
    }

    #[test]
    fn client_messages_round_trip(message in arb_client()) {
        for encoding in built_in() {
            let frame = encode_client(encoding, &message).unwrap();
            prop_assert_eq!(decode_client(encoding, &frame).unwrap(), message.clone());
        }
    }

    #[test]
    fn server_messages_round_trip(message in arb_server()) {
        for encoding in built_in() {
            let frame = encode_server(encoding, &message).unwrap();
            prop_assert_eq!(decode_server(encoding, &frame).unwrap(), message.clone());
        }
    }
}
