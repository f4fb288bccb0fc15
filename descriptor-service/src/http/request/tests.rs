//! Unit tests of request decoding: table-driven cases and property tests that
//! arbitrary bodies never panic.

use proptest::prelude::*;
use protocol::ErrorCode;

use super::*;

fn check_batch(body: &str, expected: Result<&[&str], ErrorCode>) {
    let got = decode_batch_request(body.as_bytes());
    match (got, expected) {
        (Ok(ids), Ok(want)) => {
            let ids: Vec<&str> = ids.iter().map(ItemId::as_str).collect();
            assert_eq!(ids, want, "{body}");
        }
        (Err(e), Err(code)) => assert_eq!(e.code(), code, "{body}: {e}"),
        (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn batch_requests() {
    check_batch(r#"{"ids":[]}"#, Ok(&[]));
    check_batch(r#"{"ids":["a","b","a","c","b"]}"#, Ok(&["a", "b", "c"]));
    check_batch(r#"{"ids":["a b"]}"#, Err(ErrorCode::InvalidId));
    check_batch(r#"{"ids":[""]}"#, Err(ErrorCode::InvalidId));
    check_batch(
        r#"{"ids":["a"],"more":1}"#,
        Err(ErrorCode::MalformedRequest),
    );
    check_batch(r#"{"ids":"a"}"#, Err(ErrorCode::MalformedRequest));
    check_batch(r#"{"ids":[1]}"#, Err(ErrorCode::MalformedRequest));
    check_batch(r#"{"ids":["a""#, Err(ErrorCode::MalformedRequest));
    check_batch("", Err(ErrorCode::MalformedRequest));
    let too_many = format!(
        r#"{{"ids":[{}]}}"#,
        vec![r#""x""#; MAX_BATCH_IDS + 1].join(",")
    );
    check_batch(&too_many, Err(ErrorCode::BatchTooLarge));
}

#[test]
fn descriptors() {
    let good = r#"{"id":"sword-1","kind":"crafted","name":"Sword","stacking":"unique",
        "revision":1,"created_at":1,"crafted_by":"alice","attributes":{"attack":3}}"#;
    assert!(decode_descriptor(good.as_bytes()).is_ok());
    let code = |body: &str| decode_descriptor(body.as_bytes()).unwrap_err().code();
    assert_eq!(
        code(&good.replace(r#""name""#, r#""colour":"red","name""#)),
        ErrorCode::MalformedRequest
    );
    assert_eq!(
        code(&good.replace(r#""name":"Sword""#, r#""name":"""#)),
        ErrorCode::InvalidDescriptor
    );
    let lore = "x".repeat(2_000);
    let mut huge = String::from(
        r#"{"id":"sword-1","kind":"crafted","name":"Sword","stacking":"unique","revision":1,"created_at":1,"crafted_by":"alice","attributes":{"#,
    );
    huge.push_str(
        &(0..10)
            .map(|n| format!(r#""lore{n}":"{lore}""#))
            .collect::<Vec<_>>()
            .join(","),
    );
    huge.push_str("}}");
    assert_eq!(code(&huge), ErrorCode::PayloadTooLarge);
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_batch_request(&body);
        let _ = decode_descriptor(&body);
    }

    #[test]
    fn decoding_json_like_text_never_panics(body in r#"\{"(ids|id|kind|name)":(\[("[a-z_ -]{0,70}",?){0,5}\]|"[a-z]*"|[0-9]{1,25}|null|\{\})\}"#) {
        let _ = decode_batch_request(body.as_bytes());
        let _ = decode_descriptor(body.as_bytes());
    }

    #[test]
    fn valid_batches_decode_to_distinct_ids_in_order(ids in proptest::collection::vec("[a-c]{1,2}", 0..50)) {
        let body = serde_json::to_vec(&serde_json::json!({ "ids": ids })).unwrap();
        let decoded = decode_batch_request(&body).unwrap();
        let mut expected: Vec<&String> = Vec::new();
        for id in &ids {
            if !expected.contains(&id) {
                expected.push(id);
            }
        }
        let decoded: Vec<&str> = decoded.iter().map(ItemId::as_str).collect();
        let expected: Vec<&str> = expected.into_iter().map(String::as_str).collect();
        prop_assert_eq!(decoded, expected);
    }
}
