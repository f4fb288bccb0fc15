//! Listing pages and their cursors: the pure half of
//! [`Descriptors::list`](crate::Descriptors::list).
//!
//! A cursor is opaque to clients. It carries a tag of the store it was
//! issued over (see [`DescriptorStore::identity`](crate::DescriptorStore::identity)),
//! a fingerprint of the filter it was made for and the last id of its page,
//! so that it is refused by a service over another store and under any other
//! filter, rather than silently reinterpreted. Replicas over one store, and
//! a restarted service, accept each other's cursors.

use protocol::ItemId;

use crate::Error;
use crate::store::{MAX_SCAN_LIMIT, Record, ScanFilter};

/// One page of a listing.
#[derive(Clone, PartialEq, Debug)]
pub struct Page {
    /// The records, in ascending id order.
    pub records: Vec<Record>,
    /// Where the next page starts; `None` when this page is the last. A
    /// full page always has one, even when the next page turns out empty.
    pub next_cursor: Option<String>,
}

/// Digits of the store tag, then of the filter fingerprint, at the head of a
/// cursor.
const STORE_DIGITS: usize = 8;
const FINGERPRINT_DIGITS: usize = 16;
const HEAD_DIGITS: usize = STORE_DIGITS + FINGERPRINT_DIGITS;

/// 64-bit FNV-1a: stable across builds and platforms.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A fingerprint of what `filter` selects.
fn fingerprint(filter: &ScanFilter) -> u64 {
    fnv1a(&format!(
        "v1|{:?}|{:?}|{:?}|{:?}|{}",
        filter.kind,
        filter.crafted_by.as_ref().map(|u| u.as_str()),
        filter.since,
        filter.until,
        filter.include_burned
    ))
}

/// The tag of the store named `identity`.
fn store_tag(identity: &str) -> u32 {
    let hash = fnv1a(identity);
    // Folding both halves keeps every bit of the hash in the tag.
    (hash ^ (hash >> 32)) as u32
}

/// The cursor that resumes `filter` after `last`, over the store named
/// `store`.
pub(crate) fn encode_cursor(store: &str, filter: &ScanFilter, last: &ItemId) -> String {
    let mut cursor = format!("{:08x}{:016x}", store_tag(store), fingerprint(filter));
    for byte in last.as_str().bytes() {
        cursor.push_str(&format!("{byte:02x}"));
    }
    cursor
}

/// The id a cursor resumes after, if it was made over the store named
/// `store` for `filter`.
pub(crate) fn decode_cursor(
    store: &str,
    filter: &ScanFilter,
    cursor: &str,
) -> Result<ItemId, Error> {
    let bad = || Error::Unprocessable("the cursor is not one this service issued".into());
    if !cursor.is_ascii() || cursor.len() <= HEAD_DIGITS || !cursor.len().is_multiple_of(2) {
        return Err(bad());
    }
    let (head, tail) = cursor.split_at(HEAD_DIGITS);
    let (issued_over, issued_for) = head.split_at(STORE_DIGITS);
    let issued_over = u32::from_str_radix(issued_over, 16).map_err(|_| bad())?;
    let issued_for = u64::from_str_radix(issued_for, 16).map_err(|_| bad())?;
    if issued_over != store_tag(store) {
        return Err(Error::Unprocessable(
            "the cursor was issued by a descriptor service over another store; start the listing again".into(),
        ));
    }
    if issued_for != fingerprint(filter) {
        return Err(Error::Unprocessable(
            "the cursor was issued for other filters; repeat the filters of its first page".into(),
        ));
    }
    let bytes = (0..tail.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tail[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let id = String::from_utf8(bytes).map_err(|_| bad())?;
    ItemId::parse(id).map_err(|_| bad())
}

/// Refuses a page size out of `1..=MAX_SCAN_LIMIT`.
pub(crate) fn check_limit(limit: usize) -> Result<(), Error> {
    if (1..=MAX_SCAN_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::Unprocessable(format!(
            "limit must be between 1 and {MAX_SCAN_LIMIT}, not {limit}"
        )))
    }
}

/// The page of `records` a scan of the store named `store` answered for
/// `limit`.
pub(crate) fn page(store: &str, filter: &ScanFilter, records: Vec<Record>, limit: usize) -> Page {
    let next_cursor = if records.len() < limit {
        None
    } else {
        records
            .last()
            .map(|last| encode_cursor(store, filter, last.id()))
    };
    Page {
        records,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use protocol::{DescriptorKind, ErrorCode};

    use super::*;

    const STORE: &str = "0123456789abcdef0123456789abcdef";

    fn id(value: &str) -> ItemId {
        ItemId::parse(value).expect("valid id")
    }

    #[test]
    fn a_cursor_resumes_its_own_filter_only() {
        let crafted = ScanFilter {
            kind: Some(DescriptorKind::Crafted),
            ..ScanFilter::default()
        };
        let cursor = encode_cursor(STORE, &crafted, &id("sword-7"));
        assert_eq!(
            decode_cursor(STORE, &crafted, &cursor).expect("own"),
            id("sword-7")
        );
        let other =
            decode_cursor(STORE, &ScanFilter::default(), &cursor).expect_err("other filter");
        assert_eq!(other.code(), ErrorCode::Unprocessable);
        assert!(other.to_string().contains("other filters"), "{other}");
    }

    #[test]
    fn a_cursor_is_refused_over_another_store() {
        let filter = ScanFilter::default();
        let cursor = encode_cursor(STORE, &filter, &id("sword-7"));
        let other = decode_cursor("another store", &filter, &cursor).expect_err("other store");
        assert_eq!(other.code(), ErrorCode::Unprocessable);
        assert!(other.to_string().contains("another store"), "{other}");
    }

    #[test]
    fn garbled_cursors_are_refused() {
        let filter = ScanFilter::default();
        let good = encode_cursor(STORE, &filter, &id("sword-7"));
        for cursor in [
            "",
            "zz",
            &good[..good.len() - 1],
            &format!("{}zz", &good[..HEAD_DIGITS]),
            &format!("{}ff", &good[..HEAD_DIGITS]),
            "é0000000000000000000000000000",
        ] {
            let error = decode_cursor(STORE, &filter, cursor).expect_err(cursor);
            assert_eq!(error.code(), ErrorCode::Unprocessable, "{cursor}");
        }
    }

    #[test]
    fn limits_outside_one_to_a_thousand_are_refused() {
        assert!(check_limit(1).is_ok() && check_limit(MAX_SCAN_LIMIT).is_ok());
        for limit in [0, MAX_SCAN_LIMIT + 1] {
            assert_eq!(
                check_limit(limit).expect_err("refused").code(),
                ErrorCode::Unprocessable
            );
        }
    }
}
