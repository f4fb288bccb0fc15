use super::*;

fn check_item(input: &str, ok: bool) {
    assert_eq!(ItemId::parse(input).is_ok(), ok, "item id {input:?}");
}

#[test]
fn item_id_grammar() {
    for (input, ok) in [
        ("wood", true),
        ("iron_ore-2", true),
        ("A", true),
        (&"x".repeat(64), true),
        ("", false),
        (&"x".repeat(65), false),
        ("a.b", false),
        ("$set", false),
        ("nul\0", false),
        ("with space", false),
        ("glob*", false),
        ("colon:x", false),
        ("é", false),
    ] {
        check_item(input, ok);
    }
}

#[test]
fn owner_id_round_trips_through_its_string_form() {
    for input in ["a:alice", "c:alice:hero_1"] {
        let owner = OwnerId::parse(input).unwrap();
        assert_eq!(owner.to_string(), input);
        assert_eq!(owner.user().as_str(), "alice");
        let json = serde_json::to_string(&owner).unwrap();
        assert_eq!(json, format!("\"{input}\""));
        assert_eq!(serde_json::from_str::<OwnerId>(&json).unwrap(), owner);
    }
}

#[test]
fn bad_owner_ids_are_rejected_with_a_code() {
    for input in [
        "",
        "a",
        "a:",
        "x:alice",
        "c:alice",
        "c:alice:",
        "a:alice:extra",
        "a:al.ice",
    ] {
        let err = OwnerId::parse(input).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidId, "{input:?}");
    }
}

#[test]
fn ids_reject_bad_grammar_when_deserialized() {
    assert!(serde_json::from_str::<ItemId>("\"a.b\"").is_err());
    assert!(serde_json::from_str::<ChangeId>("\"not-a-uuid\"").is_err());
}
