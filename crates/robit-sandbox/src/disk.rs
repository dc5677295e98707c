//! Disk accounting for guests: a per-run quota of bytes and of directory entries, and a
//! bound on the bytes held by all runs of one [`Sandbox`](crate::Sandbox) at once.
//!
//! The scratch directory is an ordinary host directory, so without this a guest could fill
//! the host's disk in its few seconds. The WASI layer (`wasi_quota.rs`) asks this module
//! *before* every operation that can grow a file or add a name, and the operation only
//! happens when the answer is yes; a no ends the run with
//! [`Outcome::DiskLimit`](crate::Outcome::DiskLimit).
//!
//! What is counted, and why it is enough:
//! - Bytes are counted by file size (not blocks), per file identity (the WASI inode
//!   hash), so a sparse file counts its whole length: that is also what reading it back
//!   would cost. Growth is charged before the write at its largest possible extent
//!   (`max(size, position + length)`), then settled to the real size afterwards.
//! - Shrinking a file (truncation) gives bytes back. Deleting a file does not: an open
//!   descriptor keeps an unlinked file's bytes on disk and WASI does not tell us when the
//!   last one closes, so a run's bytes only come back when the run ends.
//! - A file this module has never seen (an input file the host placed) starts at its
//!   current size without charge: every way a guest can grow a file passes through here,
//!   so an unseen file has not been grown by the guest.
//! - Entries (files, directories, links) are counted when created and given back when
//!   removed: names hold no data, only the directory's own blocks.
//!
//! This module does no I/O and must not: it is plain bookkeeping, shared between the
//! guest's store (which changes it) and the host side of the run (which arms the limits
//! and reads the verdict).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The bound on the sum of bytes held by concurrent runs of one sandbox.
#[derive(Debug)]
pub(crate) struct DiskPool {
    limit: u64,
    used: AtomicU64,
}

impl DiskPool {
    pub(crate) fn new(limit: u64) -> Arc<DiskPool> {
        Arc::new(DiskPool {
            limit,
            used: AtomicU64::new(0),
        })
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Bytes currently held by live runs.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}

/// Why a disk operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DiskDenied {
    #[error("disk limit reached: the run's byte quota")]
    RunBytes,
    #[error("disk limit reached: the run's quota of files and directories")]
    RunEntries,
    #[error("disk limit reached: the sandbox's total for concurrent runs")]
    Pool,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    /// Size last seen or granted.
    size: u64,
    /// The part of `size` this run was charged for (an input file's original size is not).
    charged: u64,
}

#[derive(Debug)]
struct State {
    byte_limit: u64,
    entry_limit: u64,
    bytes: u64,
    entries: u64,
    files: HashMap<u64, Tracked>,
    denied: Option<DiskDenied>,
}

/// One run's disk use. Cloning shares it; the bytes go back to the pool when the last
/// clone drops, which is after the scratch directory is gone (see `Prepared`).
#[derive(Clone, Debug)]
pub(crate) struct DiskUse {
    pool: Arc<DiskPool>,
    state: Arc<Mutex<State>>,
    _release: Arc<Release>,
}

/// Gives a run's bytes back to the pool when the run's last `DiskUse` is dropped.
#[derive(Debug)]
struct Release {
    pool: Arc<DiskPool>,
    state: Arc<Mutex<State>>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut lock(&self.state).bytes);
        self.pool.give(bytes);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Plain counters: a panic elsewhere cannot leave them half-updated in a way that matters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DiskUse {
    pub(crate) fn new(pool: Arc<DiskPool>, byte_limit: u64, entry_limit: u64) -> DiskUse {
        let state = Arc::new(Mutex::new(State {
            byte_limit,
            entry_limit,
            bytes: 0,
            entries: 0,
            files: HashMap::new(),
            denied: None,
        }));
        DiskUse {
            _release: Arc::new(Release {
                pool: pool.clone(),
                state: state.clone(),
            }),
            pool,
            state,
        }
    }

    /// Sets the run's quotas (a pooled instance gets its real ones when its job arrives).
    pub(crate) fn arm(&self, byte_limit: u64, entry_limit: u64) {
        let mut s = lock(&self.state);
        s.byte_limit = byte_limit;
        s.entry_limit = entry_limit;
    }

    /// The reason the run was refused disk, if it was.
    pub(crate) fn denied(&self) -> Option<DiskDenied> {
        lock(&self.state).denied
    }

    /// Asks to let the file `id`, now `current` bytes long, grow to `wanted` bytes.
    pub(crate) fn grow(&self, id: u64, current: u64, wanted: u64) -> Result<(), DiskDenied> {
        let mut s = lock(&self.state);
        let tracked = *s.files.entry(id).or_insert(Tracked {
            size: current,
            charged: 0,
        });
        let Some(need) = wanted.checked_sub(tracked.size).filter(|&n| n > 0) else {
            return Ok(());
        };
        if s.bytes.saturating_add(need) > s.byte_limit {
            return Err(*s.denied.insert(DiskDenied::RunBytes));
        }
        if !self.pool.try_take(need) {
            return Err(*s.denied.insert(DiskDenied::Pool));
        }
        s.bytes += need;
        s.files.insert(
            id,
            Tracked {
                size: wanted,
                charged: tracked.charged + need,
            },
        );
        Ok(())
    }

    /// Records the real size of file `id` after an operation; a file smaller than what
    /// was granted gives the difference back (up to what this run was charged for it).
    pub(crate) fn settle(&self, id: u64, actual: u64) {
        let mut s = lock(&self.state);
        let tracked = *s.files.entry(id).or_insert(Tracked {
            size: actual,
            charged: 0,
        });
        if actual >= tracked.size {
            // Larger than granted cannot happen through the WASI layer; adopt it uncharged
            // rather than fail, as `grow` charges everything past it.
            s.files.insert(
                id,
                Tracked {
                    size: actual,
                    ..tracked
                },
            );
            return;
        }
        let back = (tracked.size - actual).min(tracked.charged);
        s.bytes -= back;
        s.files.insert(
            id,
            Tracked {
                size: actual,
                charged: tracked.charged - back,
            },
        );
        drop(s);
        self.pool.give(back);
    }

    /// Asks to create one more directory entry.
    pub(crate) fn add_entry(&self) -> Result<(), DiskDenied> {
        let mut s = lock(&self.state);
        if s.entries >= s.entry_limit {
            return Err(*s.denied.insert(DiskDenied::RunEntries));
        }
        s.entries += 1;
        Ok(())
    }

    /// An entry was removed, or a creation granted by [`add_entry`](Self::add_entry) failed.
    pub(crate) fn remove_entry(&self) {
        let mut s = lock(&self.state);
        s.entries = s.entries.saturating_sub(1);
    }

    #[cfg(test)]
    fn bytes(&self) -> u64 {
        lock(&self.state).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_charged_and_refused_past_the_quota() {
        let pool = DiskPool::new(1000);
        let d = DiskUse::new(pool.clone(), 100, 10);
        d.grow(1, 0, 60).unwrap();
        d.grow(1, 60, 60).unwrap(); // an overwrite inside the file costs nothing
        assert_eq!(d.grow(2, 0, 41), Err(DiskDenied::RunBytes));
        assert_eq!(d.denied(), Some(DiskDenied::RunBytes));
        d.grow(2, 0, 40).unwrap();
        assert_eq!(d.bytes(), 100);
        assert_eq!(pool.used(), 100);
    }

    #[test]
    fn truncation_gives_bytes_back_but_not_an_inputs_original_size() {
        let pool = DiskPool::new(1000);
        let d = DiskUse::new(pool.clone(), 100, 10);
        // An input file of 500 bytes, unseen so far, grows by 50.
        d.grow(7, 500, 550).unwrap();
        assert_eq!(d.bytes(), 50);
        d.settle(7, 0);
        assert_eq!(d.bytes(), 0);
        assert_eq!(pool.used(), 0);
        // Regrowing it from empty is charged in full.
        assert_eq!(d.grow(7, 0, 101), Err(DiskDenied::RunBytes));
    }

    #[test]
    fn the_pool_bounds_the_sum_and_is_refilled_when_a_run_ends() {
        let pool = DiskPool::new(150);
        let a = DiskUse::new(pool.clone(), 100, 10);
        let b = DiskUse::new(pool.clone(), 100, 10);
        a.grow(1, 0, 100).unwrap();
        assert_eq!(b.grow(1, 0, 60), Err(DiskDenied::Pool));
        b.grow(1, 0, 50).unwrap();
        let a2 = a.clone();
        drop(a);
        assert_eq!(pool.used(), 150, "a clone still holds the run");
        drop(a2);
        assert_eq!(pool.used(), 50);
        drop(b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn entries_are_counted_and_given_back() {
        let d = DiskUse::new(DiskPool::new(10), 10, 2);
        d.add_entry().unwrap();
        d.add_entry().unwrap();
        assert_eq!(d.add_entry(), Err(DiskDenied::RunEntries));
        d.remove_entry();
        d.add_entry().unwrap();
    }

    #[test]
    fn arming_changes_the_quota() {
        let d = DiskUse::new(DiskPool::new(1000), 1000, 10);
        d.arm(10, 0);
        assert_eq!(d.grow(1, 0, 11), Err(DiskDenied::RunBytes));
        assert_eq!(d.add_entry(), Err(DiskDenied::RunEntries));
    }
}
