//! [`unique_name`]: collision-free names for databases, keys and user ids shared by parallel tests.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// MongoDB database names must be shorter than 64 bytes, and ids in the
/// protocol may be at most 64: staying at 63 fits both.
const MAX_LEN: usize = 63;

/// `prefix` followed by `_` and a suffix unique across threads and processes.
///
/// The result matches `[A-Za-z0-9_-]{1,63}`: characters of `prefix` outside
/// that set become `_`, and a long prefix is shortened so the suffix always fits.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `RandomState` is seeded from the OS, so two processes (two test
    // binaries sharing one server) get unrelated suffixes; the counter makes
    // names within one process distinct even if the hash collided.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(count);
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    let suffix = format!("_{:016x}{count:x}", hasher.finish());
    let room = MAX_LEN.saturating_sub(suffix.len());
    let prefix: String = prefix
        .chars()
        .take(room)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    prefix + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_grammar(name: &str) -> bool {
        (1..=MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn names_keep_their_prefix_and_differ() {
        let first = unique_name("inventory");
        let second = unique_name("inventory");
        assert!(first.starts_with("inventory_"), "{first}");
        assert_ne!(first, second);
        assert!(in_grammar(&first), "{first}");
    }

    #[test]
    fn awkward_prefixes_are_sanitized_and_shortened() {
        for prefix in ["", "a.b/c d$é", &"x".repeat(200)] {
            let name = unique_name(prefix);
            assert!(in_grammar(&name), "{prefix:?} gave {name:?}");
        }
    }
}
