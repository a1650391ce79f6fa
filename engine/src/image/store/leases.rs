//! Leases: what keeps the garbage collector off content an operation has written (or is about
//! to reuse) but not yet recorded, in the manner of containerd's leases.
//!
//! A pull, load, import, commit or build takes a [`Lease`] before it writes anything and drops
//! it once its image is recorded or the operation is abandoned. While it is held:
//! - everything written since it began is kept (the collector keeps any blob, snapshot or
//!   scratch entry whose ctime is at or after the oldest live lease's start, less a margin for
//!   the file system's coarse clock), which covers content whose digest is only known once it
//!   is written;
//! - every digest it [`Lease::protect`]s is kept: content that already exists and that the
//!   operation will refer to (a layer another image has, a blob a pull finds present).
//!
//! The collector asks [`Leases::sweep`] for each candidate, which decides and removes under the
//! table's lock: a `protect` racing a removal waits for it and then finds the content gone (and
//! writes it again), so "present" seen after `protect` stays true until the lease is dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::image::reference::Digest;

/// How much earlier than a lease's start a file's ctime may read and still count as written
/// during it (file systems stamp times from a clock that lags the precise one by a tick).
const CLOCK_MARGIN: Duration = Duration::from_secs(2);

/// The live leases of one image store.
#[derive(Debug, Default)]
pub struct Leases {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    live: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    started: SystemTime,
    protected: BTreeSet<Digest>,
}

/// One operation's hold on what it writes; released when dropped.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    leases: Arc<Leases>,
}

/// What a sweep decided for a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// A lease keeps it.
    Kept,
    /// It was removed (or `remove` was run and said why not).
    Removed,
}

impl Leases {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begins a lease, now.
    pub fn begin(self: &Arc<Self>) -> Lease {
        let mut t = self.table();
        t.next += 1;
        let id = t.next;
        t.live.insert(
            id,
            Entry {
                started: SystemTime::now(),
                protected: BTreeSet::new(),
            },
        );
        Lease {
            id,
            leases: self.clone(),
        }
    }

    /// How many leases are live.
    pub fn live(&self) -> usize {
        self.table().live.len()
    }

    /// Runs `remove` on candidate `digest` (`None` for scratch entries that have no digest)
    /// unless a live lease keeps it. `ctime` says when the candidate last changed; it is read
    /// under the table's lock, so content renamed over a stale candidate meanwhile is seen as
    /// new. Decided and run under that lock; `remove` should be short (an unlink or a rename
    /// into a trash directory).
    pub fn sweep<E>(
        &self,
        digest: Option<&Digest>,
        ctime: impl FnOnce() -> SystemTime,
        remove: impl FnOnce() -> Result<(), E>,
    ) -> Result<Swept, E> {
        let t = self.table();
        let ctime = ctime();
        let oldest = t.live.values().map(|e| e.started).min();
        let recent = oldest.is_some_and(|o| ctime + CLOCK_MARGIN >= o);
        let protected = digest.is_some_and(|d| t.live.values().any(|e| e.protected.contains(d)));
        if recent || protected {
            return Ok(Swept::Kept);
        }
        remove()?;
        Ok(Swept::Removed)
    }
}

impl Lease {
    /// Keeps `digest` (a blob or a snapshot's chain ID) until this lease is dropped. Call it
    /// before looking whether the content exists: what exists then stays.
    pub fn protect(&self, digest: &Digest) {
        let mut t = self.leases.table();
        if let Some(e) = t.live.get_mut(&self.id) {
            e.protected.insert(digest.clone());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leases.table().live.remove(&self.id);
    }
}

/// When `path` last changed (its ctime, which a rename into place and every write move on):
/// what [`Leases::sweep`] compares with the leases' start. The epoch when it cannot be read.
pub fn ctime_of(path: &std::path::Path) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).map_or(SystemTime::UNIX_EPOCH, |m| {
        SystemTime::UNIX_EPOCH
            + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().max(0) as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest of one hex digit `c` repeated.
    fn d(c: char) -> Digest {
        Digest::sha256(&c.to_string().repeat(64)).unwrap()
    }

    fn sweep(l: &Leases, digest: char, ctime: SystemTime) -> Swept {
        l.sweep(Some(&d(digest)), || ctime, || Ok::<_, ()>(()))
            .unwrap()
    }

    #[test]
    fn without_leases_everything_unrecorded_goes() {
        let l = Arc::new(Leases::default());
        assert_eq!(sweep(&l, 'a', SystemTime::now()), Swept::Removed);
    }

    #[test]
    fn a_lease_keeps_what_was_written_since_and_what_it_protects() {
        let l = Arc::new(Leases::default());
        let old = SystemTime::now() - Duration::from_secs(60);
        let lease = l.begin();
        lease.protect(&d('c'));
        // Written during the lease (even stamped a clock tick early).
        assert_eq!(
            sweep(&l, 'a', SystemTime::now() - Duration::from_millis(10)),
            Swept::Kept
        );
        // Old content: kept only when protected.
        assert_eq!(sweep(&l, 'c', old), Swept::Kept);
        assert_eq!(sweep(&l, 'b', old), Swept::Removed);
        assert_eq!(l.live(), 1);
        drop(lease);
        assert_eq!(l.live(), 0);
        assert_eq!(sweep(&l, 'c', old), Swept::Removed);
        assert_eq!(sweep(&l, 'a', SystemTime::now()), Swept::Removed);
    }

    #[test]
    fn the_oldest_live_lease_sets_the_horizon() {
        let l = Arc::new(Leases::default());
        let first = l.begin();
        std::thread::sleep(Duration::from_millis(5));
        let second = l.begin();
        let between = SystemTime::now() - Duration::from_millis(1);
        drop(second);
        assert_eq!(
            sweep(&l, 'd', between),
            Swept::Kept,
            "the first still holds"
        );
        drop(first);
        assert_eq!(sweep(&l, 'd', between), Swept::Removed);
    }

    #[test]
    fn a_failed_removal_is_reported() {
        let l = Arc::new(Leases::default());
        let r = l.sweep(Some(&d('a')), SystemTime::now, || Err("busy"));
        assert_eq!(r, Err("busy"));
    }
}
