use super::*;
use crate::{CharacterId, ErrorCode};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}
fn acct(name: &str) -> OwnerId {
    OwnerId::account(user(name))
}
fn item(name: &str) -> ItemId {
    ItemId::parse(name).unwrap()
}
fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn check(change: Change, expected: Result<(), ErrorCode>) {
    let got = change.validate().map(|_| ()).map_err(|e| e.code());
    assert_eq!(got, expected);
}

#[test]
fn quantity_range() {
    assert!(Quantity::new(0).is_err());
    assert!(Quantity::new(1).is_ok());
    assert!(Quantity::new(MAX_QUANTITY).is_ok());
    assert_eq!(
        Quantity::new(MAX_QUANTITY + 1).unwrap_err().code(),
        ErrorCode::InvalidQuantity
    );
    assert!(serde_json::from_str::<Quantity>("0").is_err());
    assert!(serde_json::from_str::<Quantity>("-1").is_err());
    assert!(serde_json::from_str::<Quantity>("1e3").is_err());
    assert!(serde_json::from_str::<Quantity>("18446744073709551616").is_err());
}

#[test]
fn structural_rules() {
    let id = ChangeId::nil();
    check(Change::new(id), Err(ErrorCode::EmptyChange));
    check(Change::new(id).grant(acct("a"), item("x"), qty(1)), Ok(()));
    check(
        Change::new(id)
            .grant(acct("a"), item("x"), qty(1))
            .consume(acct("a"), item("x"), qty(1)),
        Err(ErrorCode::DuplicateItem),
    );
    check(
        Change::new(id)
            .grant(acct("a"), item("x"), qty(1))
            .grant(acct("b"), item("x"), qty(1)),
        Ok(()),
    );
    let mut many = Change::new(id);
    for i in 0..=MAX_OPERATIONS {
        many = many.grant(acct("a"), item(&format!("i{i}")), qty(1));
    }
    check(many, Err(ErrorCode::TooManyOperations));
    let mut owners = Change::new(id);
    for i in 0..=MAX_OWNERS_PER_CHANGE {
        owners = owners.grant(acct(&format!("u{i}")), item("x"), qty(1));
    }
    check(owners, Err(ErrorCode::TooManyOwners));
}

#[test]
fn trade_rules() {
    let id = ChangeId::nil();
    let gold = [(item("gold"), qty(5))];
    let sword = [(item("sword"), qty(1))];
    check(
        Change::trade(id, (acct("a"), &gold), (acct("b"), &sword)),
        Ok(()),
    );
    let hero = OwnerId::character(user("a"), CharacterId::parse("hero").unwrap());
    check(
        Change::trade(id, (acct("a"), &gold), (hero, &sword)),
        Err(ErrorCode::TradeWithSelf),
    );
    let unbalanced = Change::new(id)
        .with_kind(ChangeKind::Trade)
        .consume(acct("a"), item("gold"), qty(5))
        .grant(acct("b"), item("gold"), qty(6));
    check(unbalanced, Err(ErrorCode::TradeUnbalanced));
    let three = Change::new(id)
        .with_kind(ChangeKind::Trade)
        .consume(acct("a"), item("gold"), qty(2))
        .grant(acct("b"), item("gold"), qty(1))
        .grant(acct("c"), item("gold"), qty(1));
    check(three, Err(ErrorCode::TradeNotBetweenTwoUsers));
}

#[test]
fn valid_change_deserialization_validates() {
    let json = r#"{"id":"00000000-0000-0000-0000-000000000000","ops":[]}"#;
    assert!(serde_json::from_str::<ValidChange>(json).is_err());
    let json = r#"{"id":"00000000-0000-0000-0000-000000000000","ops":[{"op":"grant","owner":"a:alice","item":"wood","qty":3}]}"#;
    let change: ValidChange = serde_json::from_str(json).unwrap();
    assert_eq!(change.ops()[0].delta(), 3);
    let unknown = r#"{"id":"00000000-0000-0000-0000-000000000000","ops":[],"extra":1}"#;
    assert!(serde_json::from_str::<Change>(unknown).is_err());
}

#[test]
fn owners_are_sorted_and_distinct() {
    let change = Change::new(ChangeId::nil())
        .grant(acct("b"), item("x"), qty(1))
        .grant(acct("a"), item("x"), qty(1))
        .grant(acct("b"), item("y"), qty(1))
        .validate()
        .unwrap();
    let owners: Vec<_> = change.owners().cloned().collect();
    assert_eq!(owners, vec![acct("a"), acct("b")]);
    assert_eq!(change.ops_for(&acct("b")).count(), 2);
}

#[test]
fn same_content_ignores_operation_order_and_nothing_else() {
    let id = ChangeId::random();
    let base = || {
        Change::new(id)
            .grant(acct("alice"), item("wood"), qty(1))
            .consume(acct("bob"), item("ore"), qty(2))
    };
    let valid = |change: Change| change.validate().unwrap();
    let original = valid(base());
    let reordered = valid(
        Change::new(id)
            .consume(acct("bob"), item("ore"), qty(2))
            .grant(acct("alice"), item("wood"), qty(1)),
    );
    assert!(original.same_content(&original));
    assert!(original.same_content(&reordered));
    let others = [
        valid(
            Change::new(ChangeId::random())
                .grant(acct("alice"), item("wood"), qty(1))
                .consume(acct("bob"), item("ore"), qty(2)),
        ),
        valid(base().with_kind(ChangeKind::Craft)),
        valid(base().grant(acct("alice"), item("gold"), qty(1))),
        valid(Change::new(id).grant(acct("alice"), item("wood"), qty(1))),
        valid(
            Change::new(id)
                .grant(acct("alice"), item("wood"), qty(2))
                .consume(acct("bob"), item("ore"), qty(2)),
        ),
        valid(
            Change::new(id)
                .grant(acct("carol"), item("wood"), qty(1))
                .consume(acct("bob"), item("ore"), qty(2)),
        ),
        valid(
            Change::new(id)
                .consume(acct("alice"), item("wood"), qty(1))
                .consume(acct("bob"), item("ore"), qty(2)),
        ),
    ];
    for other in &others {
        assert!(!original.same_content(other), "{other:?}");
        assert!(!other.same_content(&original), "{other:?}");
    }
}
