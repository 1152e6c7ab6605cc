//! The snapshot file: a point-in-time copy of the state machine.
//!
//! The same bytes serve raft snapshot transfer (to a lagging or new member) and the etcd
//! `Maintenance.Snapshot` stream (a backup that `keelson` can restore). Layout:
//!
//! ```text
//! "KEELSNAP" version:u8
//! header_len:u32be  header (bincode SnapshotHeader)
//! { tag:u8  key_len:u32be key  value_len:u32be value }*     tag = column family
//! 0x00                                                       end of records
//! zero bytes up to a multiple of 512
//! sha256 of every byte above (32 bytes)
//! ```
//!
//! The padding makes the file look like etcd's to etcdctl, which checks that a snapshot's
//! size is a multiple of 512 plus a 32-byte SHA-256 trailer (`snapshot save` refuses anything
//! else with "sha256 checksum not found").
//!
//! ```text
//! ```

use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::KvState;
use crate::error::{Result, StoreError};
use crate::storage::db::{self, CF_KV, CF_LEASE, CF_SM_META};
use crate::types::{LogId, StoredMembership};

const MAGIC: &[u8; 8] = b"KEELSNAP";
const VERSION: u8 = 1;
const TAGS: [(u8, &str); 3] = [(1, CF_SM_META), (2, CF_LEASE), (3, CF_KV)];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotHeader {
    pub current_rev: i64,
    pub compact_rev: i64,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

pub(crate) fn build(db: &DB, st: &KvState) -> Result<(SnapshotHeader, Vec<u8>)> {
    let header = SnapshotHeader {
        current_rev: st.current_rev,
        compact_rev: st.compact_rev,
        last_applied: st.last_applied,
        membership: st.membership.clone(),
    };
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let hb = bincode::serialize(&header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    push_chunk(&mut out, &hb)?;
    for (tag, name) in TAGS {
        let cf = db::cf(db, name)?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            out.push(tag);
            push_chunk(&mut out, &k)?;
            push_chunk(&mut out, &v)?;
        }
    }
    out.push(0);
    out.resize(out.len().div_ceil(512) * 512, 0);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok((header, out))
}

fn push_chunk(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| StoreError::Corrupt("record too large".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| StoreError::Corrupt("snapshot is truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn chunk(&mut self) -> Result<&'a [u8]> {
        let len = self.take(4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        self.take(len)
    }
}

/// A parsed, checksum-verified snapshot.
pub struct Parsed<'a> {
    pub header: SnapshotHeader,
    /// (column family, key, value)
    pub records: Vec<(&'static str, &'a [u8], &'a [u8])>,
}

/// Checks the magic, version and checksum, and splits the snapshot into records.
pub fn parse(data: &[u8]) -> Result<Parsed<'_>> {
    if data.len() < MAGIC.len() + 1 + 32 {
        return Err(StoreError::Corrupt("snapshot is too short".into()));
    }
    let (body, sum) = data.split_at(data.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(StoreError::Corrupt("snapshot checksum mismatch".into()));
    }
    let mut r = Reader { b: body, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(StoreError::Corrupt("not a keelson snapshot".into()));
    }
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(StoreError::Corrupt(format!(
            "snapshot format version {version} is not supported"
        )));
    }
    let header: SnapshotHeader = bincode::deserialize(r.chunk()?)
        .map_err(|e| StoreError::Corrupt(format!("snapshot header: {e}")))?;
    let mut records = Vec::new();
    loop {
        let tag = r.take(1)?[0];
        if tag == 0 {
            break;
        }
        let cf = TAGS
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, n)| *n)
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot record tag {tag}")))?;
        let k = r.chunk()?;
        let v = r.chunk()?;
        records.push((cf, k, v));
    }
    if body[r.pos..].iter().any(|b| *b != 0) {
        return Err(StoreError::Corrupt(
            "trailing bytes after snapshot records".into(),
        ));
    }
    Ok(Parsed { header, records })
}

/// Replaces the state machine's column families with the snapshot's contents in one synced
/// write.
pub(crate) fn install(db: &DB, data: &[u8]) -> Result<SnapshotHeader> {
    let parsed = parse(data)?;
    let mut batch = WriteBatch::default();
    for (_, name) in TAGS {
        let cf = db::cf(db, name)?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, _) = item?;
            batch.delete_cf(cf, k);
        }
    }
    for (name, k, v) in &parsed.records {
        batch.put_cf(db::cf(db, name)?, k, v);
    }
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)?;
    Ok(parsed.header)
}
