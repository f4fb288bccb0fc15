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
fn zone_id_grammar() {
    for (input, ok) in [
        ("forest", true),
        ("zone-0", true),
        ("n1_z2", true),
        (&"z".repeat(64), true),
        ("", false),
        (&"z".repeat(65), false),
        ("@clients#0", false),
        ("@forest", false),
        ("forest#1", false),
        ("town/square", false),
        ("town square", false),
        ("a.b", false),
        ("é", false),
    ] {
        let parsed = ZoneId::parse(input);
        assert_eq!(parsed.is_ok(), ok, "zone id {input:?}");
        if let Err(err) = parsed {
            assert_eq!(err.code(), crate::ErrorCode::InvalidId, "{input:?}");
        }
    }
}

#[test]
fn zone_ids_parse_from_strings_and_json() {
    let zone: ZoneId = "forest".parse().unwrap();
    assert_eq!(zone.as_str(), "forest");
    assert_eq!(serde_json::to_string(&zone).unwrap(), "\"forest\"");
    assert!(serde_json::from_str::<ZoneId>("\"@clients#0\"").is_err());
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
