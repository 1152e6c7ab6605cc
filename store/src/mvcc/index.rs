//! The in-memory key index: user key → generations of revisions (etcd's `treeIndex`).
//!
//! A generation is one life of a key: from the put that created it to the delete (tombstone)
//! that ended it. The last generation of a live key is open; a deleted key ends with an empty
//! generation. The index is rebuilt from the revision-keyed values at start-up.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::revision::Revision;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of puts (and the tombstone) in this generation, including compacted ones.
    pub ver: i64,
    /// Revision of the put that created this generation.
    pub created: Revision,
    pub revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Walks revisions newest first; returns the index of the first one for which `keep_going`
    /// is false.
    fn walk(&self, mut keep_going: impl FnMut(Revision) -> bool) -> Option<usize> {
        (0..self.revs.len())
            .rev()
            .find(|&i| !keep_going(self.revs[i]))
    }
}

/// Where a key stood at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyIndex {
    pub modified: Revision,
    pub generations: Vec<Generation>,
}

impl KeyIndex {
    pub fn put(&mut self, rev: Revision) {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("pushed above");
        if g.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Records a delete. Returns false (and changes nothing) if the key is not live.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return false,
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Starts the index of a key at the oldest stored revision of it (after a compaction the
    /// generation's earlier puts are gone, so its creation and version come from the value).
    fn restored(created: i64, modified: Revision, version: i64) -> Self {
        KeyIndex {
            modified,
            generations: vec![Generation {
                ver: version,
                created: Revision::new(created, 0),
                revs: vec![modified],
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty() || self.generations.is_empty()
    }

    /// Is the key live (not deleted) as of its latest change?
    pub fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.is_empty())
    }

    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if g.is_empty() {
                continue;
            }
            if i != last {
                let tomb = g.revs[g.revs.len() - 1].main;
                if tomb <= rev {
                    return None;
                }
            }
            if g.revs[0].main <= rev {
                return Some(g);
            }
        }
        None
    }

    /// The key's revision, creation and version as of `at_rev`, if it was live then.
    pub fn get(&self, at_rev: i64) -> Option<KeyAt> {
        let g = self.find_generation(at_rev)?;
        let n = g.walk(|r| r.main > at_rev)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Revisions to keep when compacting at `at_rev` (etcd's `keyIndex.keep`), without changing
    /// the index.
    pub fn keep(&self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available);
        let g = &self.generations[gen_idx];
        if !g.is_empty() {
            // A tombstone alone in a finished generation is not kept.
            if rev_idx == Some(g.revs.len() - 1) && gen_idx != self.generations.len() - 1 {
                available.remove(&g.revs[g.revs.len() - 1]);
            }
        }
    }

    /// Compacts the index at `at_rev` (etcd's `keyIndex.compact`): drops every revision older
    /// than the newest one at or before `at_rev`, and a tombstone that would be left alone.
    /// Records the revisions that remain at or before `at_rev` in `available`.
    pub fn compact(&mut self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (mut gen_idx, rev_idx) = self.do_compact(at_rev, available);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            if g.revs.len() == 1 && gen_idx != last {
                available.remove(&g.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
    }

    fn do_compact(&self, at_rev: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let g = &self.generations[gen_idx];
            if let Some(tomb) = g.revs.last() {
                if tomb.main > at_rev {
                    break;
                }
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.walk(|r| {
            if r.main <= at_rev {
                available.insert(r);
                false
            } else {
                true
            }
        });
        (gen_idx, rev_idx)
    }
}

/// All keys' indexes, ordered by key.
#[derive(Debug, Default)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

/// Bounds of a key range in etcd's conventions.
pub fn range_bounds<'a>(
    key: &'a [u8],
    end: Option<&'a [u8]>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    match end {
        None => (Bound::Included(key), Bound::Included(key)),
        Some([]) => (Bound::Included(key), Bound::Unbounded),
        Some(end) => (Bound::Included(key), Bound::Excluded(end)),
    }
}

impl TreeIndex {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get_key(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
    }

    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<KeyAt> {
        self.keys.get(key)?.get(at_rev)
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) {
        if let Some(ki) = self.keys.get_mut(key) {
            ki.put(rev);
        } else {
            let mut ki = KeyIndex::default();
            ki.put(rev);
            self.keys.insert(key.to_vec(), ki);
        }
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Replays one stored revision of `key` while rebuilding the index at start-up; revisions
    /// must come in order. `created` and `version` are the stored value's.
    pub fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        created: i64,
        version: i64,
    ) {
        match self.keys.get_mut(key) {
            Some(ki) if tombstone => {
                ki.tombstone(rev);
            }
            Some(ki) => ki.put(rev),
            // A tombstone whose put was compacted away ends nothing.
            None if tombstone => {}
            None => {
                self.keys
                    .insert(key.to_vec(), KeyIndex::restored(created, rev, version));
            }
        }
    }

    /// Iterates keys in `[key, end)` (etcd range conventions: `end == None` is the single key,
    /// `Some(&[])` is every key from `key` on).
    pub fn range<'a>(
        &'a self,
        key: &'a [u8],
        end: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a KeyIndex)> + 'a {
        let (lo, hi) = range_bounds(key, end);
        let empty = matches!((lo, hi), (Bound::Included(a), Bound::Excluded(b)) if a >= b);
        let iter = if empty {
            None
        } else {
            Some(self.keys.range::<[u8], _>((lo, hi)))
        };
        iter.into_iter().flatten()
    }

    /// Keys live at `at_rev` in the range, with where they stood.
    pub fn revisions<'a>(
        &'a self,
        key: &'a [u8],
        end: Option<&'a [u8]>,
        at_rev: i64,
    ) -> impl Iterator<Item = (&'a Vec<u8>, KeyAt)> + 'a {
        self.range(key, end)
            .filter_map(move |(k, ki)| ki.get(at_rev).map(|at| (k, at)))
    }

    /// Compacts every key at `at_rev`; returns the revisions at or before `at_rev` that remain.
    pub fn compact(&mut self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.keys.retain(|_, ki| {
            ki.compact(at_rev, &mut available);
            !ki.is_empty()
        });
        available
    }

    /// The revisions a compaction at `at_rev` would keep.
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at_rev, &mut available);
        }
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The key index from etcd's own documentation of `keyIndex`: put at 1, 2, tombstone 3,
    /// put 4, 5, tombstone 6.
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        ki.put(r(4));
        ki.put(r(5));
        assert!(ki.tombstone(r(6)));
        ki
    }

    #[test]
    fn get_follows_generations() {
        let ki = sample();
        assert_eq!(ki.get(0), None);
        let at2 = ki.get(2).expect("live at 2");
        assert_eq!((at2.modified, at2.created, at2.version), (r(2), r(1), 2));
        assert_eq!(ki.get(3), None, "deleted at 3");
        let at4 = ki.get(4).expect("live at 4");
        assert_eq!((at4.modified, at4.created, at4.version), (r(4), r(4), 1));
        assert_eq!(ki.get(5).map(|a| a.version), Some(2));
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(100), None);
        assert!(!ki.is_live());
    }

    #[test]
    fn tombstone_of_deleted_key_is_refused() {
        let mut ki = sample();
        assert!(!ki.tombstone(r(7)));
    }

    #[test]
    fn compaction_keeps_latest_live_revision_and_drops_lonely_tombstones() {
        let mut ki = sample();
        let mut avail = HashSet::new();
        ki.compact(2, &mut avail);
        assert_eq!(avail, HashSet::from([r(2)]));
        assert_eq!(
            ki.get(2).map(|a| a.version),
            Some(2),
            "version survives compaction"
        );

        let mut avail = HashSet::new();
        ki.compact(3, &mut avail);
        assert!(avail.is_empty(), "tombstone at 3 alone is not kept");
        assert_eq!(ki.generations.len(), 2);

        let mut avail = HashSet::new();
        let mut kept = HashSet::new();
        ki.keep(5, &mut kept);
        ki.compact(5, &mut avail);
        assert_eq!(avail, HashSet::from([r(5)]));
        assert_eq!(kept, avail);

        let mut avail = HashSet::new();
        ki.compact(6, &mut avail);
        assert!(avail.is_empty());
        assert!(ki.is_empty());
    }

    #[test]
    fn restore_after_compaction_keeps_versions() {
        let mut t = TreeIndex::default();
        // Stored after a compaction: the key's put at 7 (created 3, version 4), then 9.
        t.restore(b"k", r(7), false, 3, 4);
        t.restore(b"k", r(9), false, 3, 5);
        t.restore(b"gone", r(8), true, 0, 0);
        let at = t.get(b"k", 9).expect("live");
        assert_eq!((at.created, at.version), (r(3), 5));
        assert_eq!(t.get(b"k", 7).map(|a| a.version), Some(4));
        assert!(t.get_key(b"gone").is_none());
        t.restore(b"k", r(10), true, 0, 0);
        t.restore(b"k", r(11), false, 11, 1);
        let at = t.get(b"k", 11).expect("recreated");
        assert_eq!((at.created, at.version), (r(11), 1));
    }

    #[test]
    fn tree_ranges_use_etcd_conventions() {
        let mut t = TreeIndex::default();
        for (i, k) in [b"a".as_ref(), b"b", b"c", b"d"].iter().enumerate() {
            t.put(k, r(i as i64 + 1));
        }
        let keys = |end: Option<&[u8]>, key: &[u8]| {
            t.revisions(key, end, 10)
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(None, b"b"), vec![b"b".to_vec()]);
        assert_eq!(keys(Some(b"d"), b"b"), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(Some(b""), b"c"), vec![b"c".to_vec(), b"d".to_vec()]);
        assert!(keys(Some(b"a"), b"c").is_empty(), "end before key is empty");
        assert_eq!(
            t.revisions(b"a", Some(b""), 2).count(),
            2,
            "historical view"
        );
    }
}
