//! Change ids that carry the time they were made: UUID version 7 (48 bits of
//! Unix milliseconds) with the microseconds within the millisecond in the
//! 12 bits RFC 9562 lets an implementation use for sub-millisecond precision.
//! Any process on the same machine reads the age of a change from its id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::ChangeId;

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A change id stamped with `micros` (since the Unix epoch) and `random`
/// bits that make it unique.
#[must_use]
pub fn stamped(micros: u64, random: u64) -> ChangeId {
    let millis = micros / 1000;
    let sub = micros % 1000;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    // Version 7, then 12 bits: the microseconds within the millisecond.
    let rand_a = 0x7000 | u16::try_from(sub).unwrap_or(0);
    bytes[6..8].copy_from_slice(&rand_a.to_be_bytes());
    bytes[8..].copy_from_slice(&random.to_be_bytes());
    // The RFC 4122 variant.
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    ChangeId::from_bytes(bytes)
}

/// When a stamped change id was made (microseconds since the Unix epoch);
/// `None` for any other id.
#[must_use]
pub fn stamp_of(id: &ChangeId) -> Option<u64> {
    let bytes = id.as_uuid().as_bytes();
    if bytes[6] >> 4 != 7 {
        return None;
    }
    let mut millis = [0u8; 8];
    millis[2..].copy_from_slice(&bytes[..6]);
    let sub = u64::from(u16::from_be_bytes([bytes[6], bytes[7]]) & 0x0fff);
    (sub < 1000).then(|| u64::from_be_bytes(millis) * 1000 + sub)
}

/// How old a stamped change is at `now_micros`; `None` for an unstamped id.
#[must_use]
pub fn age(id: &ChangeId, now_micros: u64) -> Option<Duration> {
    stamp_of(id).map(|made| Duration::from_micros(now_micros.saturating_sub(made)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_to_the_microsecond() {
        for micros in [0, 999, 1_000, 1_733_350_000_123_456, (1 << 48) * 1000 - 1] {
            let id = stamped(micros, 0xdead_beef_0123_4567);
            assert_eq!(stamp_of(&id), Some(micros), "{micros}");
            assert_eq!(id.as_uuid().get_version_num(), 7);
            assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn random_ids_carry_no_stamp() {
        assert_eq!(stamp_of(&ChangeId::from_bytes([0x11; 16])), None);
        assert_eq!(stamp_of(&ChangeId::nil()), None);
    }

    #[test]
    fn age_is_now_minus_the_stamp() {
        let id = stamped(5_000_000, 1);
        assert_eq!(age(&id, 5_250_000), Some(Duration::from_millis(250)));
        assert_eq!(age(&id, 4_000_000), Some(Duration::ZERO));
    }
}
