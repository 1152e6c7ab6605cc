//! Revisions and their on-disk encoding.
//!
//! A revision is `(main, sub)`: `main` is the store revision of a mutating request, `sub` orders
//! the changes inside it. On disk a revision is etcd's 17-byte key: `main` as 8 big-endian bytes,
//! `_`, `sub` as 8 big-endian bytes, plus a trailing `t` for a tombstone. Using etcd's exact bytes
//! (and storing the value as the protobuf `mvccpb.KeyValue`, like etcd) makes `HashKV` agree with
//! etcd's for the same history.

use std::fmt;

pub const REV_BYTES_LEN: usize = 17;
pub const MARKED_REV_BYTES_LEN: usize = 18;
const TOMBSTONE_MARK: u8 = b't';

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    pub fn to_bytes(self, tombstone: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(MARKED_REV_BYTES_LEN);
        b.extend_from_slice(&self.main.to_be_bytes());
        b.push(b'_');
        b.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            b.push(TOMBSTONE_MARK);
        }
        b
    }

    /// Smallest key at or after every encoding of `(main, 0)`: the start of `main`'s records.
    pub fn start_of(main: i64) -> Vec<u8> {
        Revision::new(main, 0).to_bytes(false)
    }

    /// Decodes a key written by [`Revision::to_bytes`]; returns the revision and whether it is a
    /// tombstone, or `None` for bytes of another shape.
    pub fn from_bytes(b: &[u8]) -> Option<(Revision, bool)> {
        if b.len() != REV_BYTES_LEN && b.len() != MARKED_REV_BYTES_LEN {
            return None;
        }
        if b[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(b[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(b[9..17].try_into().ok()?);
        let tomb = b.len() == MARKED_REV_BYTES_LEN;
        if tomb && b[17] != TOMBSTONE_MARK {
            return None;
        }
        Some((Revision { main, sub }, tomb))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_etcd_layout_and_sorts_by_revision() {
        let r = Revision::new(5, 2);
        let b = r.to_bytes(false);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(Revision::from_bytes(&b), Some((r, false)));
        let t = r.to_bytes(true);
        assert_eq!(t.len(), 18);
        assert_eq!(Revision::from_bytes(&t), Some((r, true)));
        assert!(Revision::new(5, 3).to_bytes(false) > t);
        assert!(Revision::new(6, 0).to_bytes(false) > Revision::new(5, 9).to_bytes(true));
        assert_eq!(Revision::from_bytes(b"short"), None);
    }
}
