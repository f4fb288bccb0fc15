//! Listing pages and their cursors: the pure half of
//! [`Descriptors::list`](crate::Descriptors::list).
//!
//! A cursor is opaque to clients. It carries a fingerprint of the filter it
//! was made for and the last id of its page, so that it is refused under any
//! other filter rather than silently reinterpreted.

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

/// Digits of the filter fingerprint at the head of a cursor.
const FINGERPRINT_DIGITS: usize = 16;

/// A stable 64-bit FNV-1a fingerprint of what `filter` selects.
fn fingerprint(filter: &ScanFilter) -> u64 {
    let canonical = format!(
        "v1|{:?}|{:?}|{:?}|{:?}|{}",
        filter.kind,
        filter.crafted_by.as_ref().map(|u| u.as_str()),
        filter.since,
        filter.until,
        filter.include_burned
    );
    canonical.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cursor that resumes `filter` after `last`.
pub(crate) fn encode_cursor(filter: &ScanFilter, last: &ItemId) -> String {
    let mut cursor = format!("{:016x}", fingerprint(filter));
    for byte in last.as_str().bytes() {
        cursor.push_str(&format!("{byte:02x}"));
    }
    cursor
}

/// The id a cursor resumes after, if it was made for `filter`.
pub(crate) fn decode_cursor(filter: &ScanFilter, cursor: &str) -> Result<ItemId, Error> {
    let bad = || Error::Unprocessable("the cursor is not one this service issued".into());
    if !cursor.is_ascii() || cursor.len() <= FINGERPRINT_DIGITS || !cursor.len().is_multiple_of(2) {
        return Err(bad());
    }
    let (head, tail) = cursor.split_at(FINGERPRINT_DIGITS);
    let issued_for = u64::from_str_radix(head, 16).map_err(|_| bad())?;
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

/// The page of `records` a scan answered for `limit`.
pub(crate) fn page(filter: &ScanFilter, records: Vec<Record>, limit: usize) -> Page {
    let next_cursor = if records.len() < limit {
        None
    } else {
        records.last().map(|last| encode_cursor(filter, last.id()))
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

    fn id(value: &str) -> ItemId {
        ItemId::parse(value).expect("valid id")
    }

    #[test]
    fn a_cursor_resumes_its_own_filter_only() {
        let crafted = ScanFilter {
            kind: Some(DescriptorKind::Crafted),
            ..ScanFilter::default()
        };
        let cursor = encode_cursor(&crafted, &id("sword-7"));
        assert_eq!(
            decode_cursor(&crafted, &cursor).expect("own"),
            id("sword-7")
        );
        let other = decode_cursor(&ScanFilter::default(), &cursor).expect_err("other filter");
        assert_eq!(other.code(), ErrorCode::Unprocessable);
    }

    #[test]
    fn garbled_cursors_are_refused() {
        let filter = ScanFilter::default();
        let good = encode_cursor(&filter, &id("sword-7"));
        for cursor in [
            "",
            "zz",
            &good[..good.len() - 1],
            &format!("{}zz", &good[..FINGERPRINT_DIGITS]),
            &format!("{}ff", &good[..FINGERPRINT_DIGITS]),
            "é0000000000000000000",
        ] {
            let error = decode_cursor(&filter, cursor).expect_err(cursor);
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
