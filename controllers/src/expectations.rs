//! client-go's `ControllerExpectations`: after a controller asks for pod creations or
//! deletions for one of its objects, it does not act on that object again until its pod
//! informer has seen them (or [`TIMEOUT`] passed), so a cache that lags behind the
//! controller's own writes never makes it create or delete twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// After this long, expectations are given up on (a watch event was lost).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expect {
    adds: i64,
    dels: i64,
    since: Instant,
}

/// Outstanding creations and deletions, by the controller's work-queue key.
#[derive(Debug, Default)]
pub struct Expectations {
    by_key: Mutex<HashMap<String, Expect>>,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Expectations {
    pub fn new() -> Expectations {
        Expectations::default()
    }

    /// `adds` creations and `dels` deletions are about to be asked for `key` (replacing
    /// whatever was expected before).
    pub fn expect(&self, key: &str, adds: usize, dels: usize) {
        self.by_key.lock().insert(
            key.to_string(),
            Expect {
                adds: count(adds),
                dels: count(dels),
                since: Instant::now(),
            },
        );
    }

    /// Of what was expected, `adds` creations and `dels` deletions will never be seen (they
    /// were not made, or failed).
    pub fn lower(&self, key: &str, adds: usize, dels: usize) {
        if let Some(e) = self.by_key.lock().get_mut(key) {
            e.adds -= count(adds);
            e.dels -= count(dels);
        }
    }

    /// The informer saw one creation (`added`) or deletion for `key`.
    pub fn observed(&self, key: &str, added: bool) {
        if added {
            self.lower(key, 1, 0);
        } else {
            self.lower(key, 0, 1);
        }
    }

    /// Whether `key` may be acted on: nothing outstanding, or waited for too long.
    pub fn satisfied(&self, key: &str) -> bool {
        self.by_key
            .lock()
            .get(key)
            .is_none_or(|e| (e.adds <= 0 && e.dels <= 0) || e.since.elapsed() > TIMEOUT)
    }

    /// `key`'s object is gone.
    pub fn forget(&self, key: &str) {
        self.by_key.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_expected_write_is_seen_or_given_up() {
        let e = Expectations::new();
        assert!(e.satisfied("a"), "nothing expected");
        e.expect("a", 2, 1);
        assert!(!e.satisfied("a"));
        e.observed("a", true);
        e.observed("a", false);
        assert!(!e.satisfied("a"), "one creation still to come");
        e.lower("a", 1, 0);
        assert!(e.satisfied("a"));
        // Observations of other keys, or without expectations, change nothing.
        e.expect("b", 1, 0);
        e.observed("c", true);
        assert!(!e.satisfied("b"));
        e.forget("b");
        assert!(e.satisfied("b"));
        // A new expectation replaces the old one.
        e.expect("a", 1, 0);
        e.expect("a", 0, 0);
        assert!(e.satisfied("a"));
    }
}
