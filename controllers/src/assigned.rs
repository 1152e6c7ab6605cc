//! What a one-worker allocator (service load balancer addresses, node pod CIDRs) gave out
//! this leadership term, by object key, until its informer shows the write: without it the
//! next object reconciled right after a write could be given the same value.

use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct Assigned {
    by_key: Mutex<HashMap<String, u32>>,
}

impl Assigned {
    pub fn set(&self, key: &str, value: u32) {
        self.by_key.lock().insert(key.to_string(), value);
    }

    pub fn forget(&self, key: &str) {
        self.by_key.lock().remove(key);
    }

    /// The values given to keys other than `key` that still `exist` (the others are
    /// forgotten).
    pub fn others(&self, key: &str, exists: impl Fn(&str) -> bool) -> Vec<u32> {
        let mut m = self.by_key.lock();
        m.retain(|k, _| exists(k));
        m.iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(_, v)| *v)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_are_the_live_keys_but_this_one() {
        let a = Assigned::default();
        a.set("x", 1);
        a.set("y", 2);
        a.set("gone", 3);
        assert_eq!(a.others("x", |k| k != "gone"), [2]);
        let mut all = a.others("z", |_| true);
        all.sort_unstable();
        assert_eq!(all, [1, 2], "a key that was gone stays forgotten");
        a.forget("y");
        assert_eq!(a.others("z", |_| true), [1]);
    }
}
