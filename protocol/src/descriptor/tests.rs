//! Unit tests of the descriptor model: its rules, size limit and JSON shape.

use super::*;
use crate::ErrorCode;

fn item(name: &str) -> ItemId {
    ItemId::parse(name).unwrap()
}

fn sword() -> Descriptor {
    Descriptor {
        id: item("sword-1"),
        kind: DescriptorKind::Crafted,
        template: Some(item("iron-sword")),
        name: "Iron Sword".into(),
        stacking: Stacking::Unique,
        revision: 1,
        created_at: 1_700_000_000_000,
        crafted_by: Some(UserId::parse("alice").unwrap()),
        inputs: vec![CraftInput {
            item: item("iron"),
            qty: Quantity::new(3).unwrap(),
        }],
        attributes: BTreeMap::from([
            ("attack".into(), AttributeValue::Int(12)),
            ("rarity".into(), AttributeValue::Text("rare".into())),
            ("weight".into(), AttributeValue::Float(2.5)),
            ("soulbound".into(), AttributeValue::Bool(true)),
        ]),
    }
}

fn check(edit: impl FnOnce(&mut Descriptor), expected: Result<(), ErrorCode>) {
    let mut descriptor = sword();
    edit(&mut descriptor);
    assert_eq!(descriptor.validate().map_err(|e| e.code()), expected);
}

#[test]
fn model_rules() {
    let invalid = Err(ErrorCode::InvalidDescriptor);
    check(|_| {}, Ok(()));
    check(|d| d.name.clear(), invalid);
    check(|d| d.name = "x".repeat(MAX_NAME_LEN + 1), invalid);
    check(|d| d.revision = 2, invalid);
    check(|d| d.revision = 0, invalid);
    check(|d| d.crafted_by = None, invalid);
    check(|d| d.created_at = MAX_TIMESTAMP_MS + 1, invalid);
    check(|d| d.inputs.push(d.inputs[0].clone()), invalid);
    check(
        |d| {
            d.attributes
                .insert("bad key".into(), AttributeValue::Bool(false));
        },
        invalid,
    );
    check(
        |d| {
            d.attributes
                .insert("nan".into(), AttributeValue::Float(f64::NAN));
        },
        invalid,
    );
    check(
        |d| {
            d.attributes.insert(
                "lore".into(),
                AttributeValue::Text("x".repeat(MAX_ATTRIBUTE_TEXT_LEN + 1)),
            );
        },
        invalid,
    );
    check(
        |d| {
            for n in 0..=MAX_ATTRIBUTES {
                d.attributes.insert(format!("k{n}"), AttributeValue::Int(1));
            }
        },
        invalid,
    );
    check(
        |d| {
            d.kind = DescriptorKind::Catalog;
            d.revision = 7;
        },
        invalid,
    );
    check(
        |d| {
            d.kind = DescriptorKind::Catalog;
            d.revision = 7;
            d.crafted_by = None;
            d.inputs.clear();
            d.template = None;
        },
        Ok(()),
    );
}

#[test]
fn size_limit() {
    assert!(Descriptor::check_size(MAX_DESCRIPTOR_BYTES).is_ok());
    assert_eq!(
        Descriptor::check_size(MAX_DESCRIPTOR_BYTES + 1)
            .unwrap_err()
            .code(),
        ErrorCode::PayloadTooLarge
    );
}

#[test]
fn json_round_trip_keeps_attribute_types() {
    let descriptor = sword();
    let json = serde_json::to_string(&descriptor).unwrap();
    assert!(json.contains(r#""weight":2.5"#), "{json}");
    let back: Descriptor = serde_json::from_str(&json).unwrap();
    assert_eq!(back, descriptor);
    let whole_float: AttributeValue = serde_json::from_str("3.0").unwrap();
    assert_eq!(whole_float, AttributeValue::Float(3.0));
}

#[test]
fn unknown_fields_are_refused() {
    let mut json = serde_json::to_value(sword()).unwrap();
    json["colour"] = "red".into();
    assert!(serde_json::from_value::<Descriptor>(json).is_err());
    assert!(serde_json::from_str::<BatchGetRequest>(r#"{"ids":[],"x":1}"#).is_err());
}

#[test]
fn nested_attribute_values_are_refused() {
    let mut json = serde_json::to_value(sword()).unwrap();
    json["attributes"]["stats"] = serde_json::json!({"attack": 1});
    assert!(serde_json::from_value::<Descriptor>(json).is_err());
}
