//! Lease expiry, kept by the leader only (etcd's "primary lessor").
//!
//! Granted leases and their TTLs are replicated state (in the state machine); when each lease
//! expires is not. The leader tracks deadlines, renews them on keep-alive, and proposes a revoke
//! through raft once a deadline passes. A new leader gives every lease a fresh deadline of its
//! TTL plus an election timeout (etcd's `Promote`), so a leader change never expires a lease
//! early.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::mvcc::LeaseRec;

#[derive(Default)]
struct Inner {
    primary: bool,
    deadlines: HashMap<i64, Instant>,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    /// Extra time a new leader grants every lease.
    extend: Duration,
}

impl Lessor {
    pub fn new(extend: Duration) -> Self {
        Lessor {
            inner: Mutex::new(Inner::default()),
            extend,
        }
    }

    pub fn is_primary(&self) -> bool {
        self.inner.lock().primary
    }

    /// This member became leader: every lease gets `ttl + extend` from now.
    pub fn promote(&self, leases: &BTreeMap<i64, LeaseRec>) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.primary = true;
        inner.deadlines = leases
            .iter()
            .map(|(id, l)| (*id, now + secs(l.ttl) + self.extend))
            .collect();
    }

    pub fn demote(&self) {
        let mut inner = self.inner.lock();
        inner.primary = false;
        inner.deadlines.clear();
    }

    /// Brings the deadlines in line with the replicated leases: new leases start their TTL now,
    /// revoked ones are forgotten.
    pub fn sync(&self, leases: &BTreeMap<i64, LeaseRec>) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if !inner.primary {
            return;
        }
        inner.deadlines.retain(|id, _| leases.contains_key(id));
        for (id, l) in leases {
            inner
                .deadlines
                .entry(*id)
                .or_insert_with(|| now + secs(l.ttl));
        }
    }

    /// Keep-alive of a granted lease with this `ttl`: a live lease gets a full TTL again, and
    /// a lease this leader has not started timing yet (granted a moment ago, before the next
    /// sync) starts now. `None` if it already expired: it is about to be revoked and must not
    /// come back.
    pub fn renew(&self, id: i64, ttl: i64) -> Option<i64> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if !inner.primary {
            return None;
        }
        let d = inner.deadlines.entry(id).or_insert(now + secs(ttl));
        if *d <= now {
            return None;
        }
        *d = now + secs(ttl);
        Some(ttl)
    }

    /// Starts the clock of a lease this leader just granted.
    pub fn granted(&self, id: i64, ttl: i64) {
        let mut inner = self.inner.lock();
        if inner.primary {
            inner.deadlines.insert(id, Instant::now() + secs(ttl));
        }
    }

    /// Whole seconds left (etcd truncates), or `None` if unknown here.
    pub fn remaining(&self, id: i64) -> Option<i64> {
        let inner = self.inner.lock();
        let d = inner.deadlines.get(&id)?;
        Some(d.saturating_duration_since(Instant::now()).as_secs() as i64)
    }

    /// When a lease expires, if this member tracks it.
    pub fn deadline(&self, id: i64) -> Option<Instant> {
        self.inner.lock().deadlines.get(&id).copied()
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let inner = self.inner.lock();
        let mut v: Vec<i64> = inner
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases(ttls: &[(i64, i64)]) -> BTreeMap<i64, LeaseRec> {
        ttls.iter()
            .map(|(id, ttl)| {
                (
                    *id,
                    LeaseRec {
                        ttl: *ttl,
                        keys: Default::default(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn only_primary_tracks_and_promotion_extends() {
        let l = Lessor::new(Duration::from_secs(2));
        l.sync(&leases(&[(1, 10)]));
        assert_eq!(l.remaining(1), None, "followers keep no deadlines");
        l.promote(&leases(&[(1, 10)]));
        let r = l.remaining(1).expect("tracked");
        assert!((10..=12).contains(&r), "ttl plus extension, got {r}");
        assert_eq!(l.renew(1, 10), Some(10));
        assert_eq!(
            l.renew(2, 10),
            Some(10),
            "a lease granted before the last sync"
        );
        l.sync(&leases(&[(3, 0)]));
        assert_eq!(l.remaining(1), None, "revoked lease forgotten");
        assert_eq!(l.expired(), vec![3]);
        assert_eq!(l.renew(3, 0), None, "an expired lease cannot be renewed");
        l.demote();
        assert!(l.expired().is_empty());
    }
}
