//! Striped in-process locks on owners: a node runs the changes of one owner
//! one at a time instead of sending them to conflict in the database.
//!
//! On a hot owner, concurrent transactions on one document abort each other
//! (write conflicts) and retry, and the server spends its time on work it
//! throws away. Queueing them in the node costs nothing the database would
//! not have serialized anyway. Other nodes still conflict, which the retries
//! handle; these locks are an optimization, never a correctness guard.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use protocol::OwnerId;
use tokio::sync::{Mutex, MutexGuard};

/// How many stripes: owners hashing to one stripe share its lock.
const STRIPES: usize = 1024;

/// One lock per stripe of owners.
#[derive(Debug)]
pub(crate) struct OwnerLocks {
    stripes: Vec<Mutex<()>>,
}

impl OwnerLocks {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Locks the stripes of `owners`, in ascending stripe order (so two
    /// callers never wait on each other in a cycle), each stripe once.
    pub(crate) async fn lock<'a>(
        &self,
        owners: impl Iterator<Item = &'a OwnerId>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = owners.map(stripe).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for index in stripes {
            guards.push(self.stripes[index].lock().await);
        }
        guards
    }
}

fn stripe(owner: &OwnerId) -> usize {
    let mut hasher = DefaultHasher::new();
    owner.hash(&mut hasher);
    // The remainder is below STRIPES, so the cast is lossless.
    (hasher.finish() % STRIPES as u64) as usize
}
