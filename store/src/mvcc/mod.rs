//! Multi-version key-value state with etcd's exact semantics.
//!
//! Values live in RocksDB (column family `kv`) keyed by revision, encoded as etcd does it; the
//! key index lives in memory and is rebuilt at start-up. [`Mvcc`] serves reads under a read lock;
//! [`Applier`] applies raft entries under the write lock, gathering one RocksDB write batch per
//! apply call together with the applied log id and counters, so data and bookkeeping can never
//! disagree after a crash.

pub mod index;
pub mod revision;
pub mod snapshot;
mod txn;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use keelson_proto::etcdserverpb as pb;
use keelson_proto::mvccpb::{event::EventType, Event, KeyValue};
use parking_lot::RwLock;
use prost::Message;
use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::error::{EtcdError, Result, StoreError};
use crate::storage::db::{self, CF_KV, CF_LEASE, CF_SM_META};
use crate::types::{AlarmKind, LogId, NodeId, StoredMembership};
use index::TreeIndex;
use revision::Revision;

pub use txn::{check_delete, check_put, check_range, check_txn, txn_has_writes, MAX_TXN_OPS};

/// Longest lease TTL etcd accepts, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

const META_APPLIED: &[u8] = b"applied";
const META_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const META_COUNTERS: &[u8] = b"counters";
const META_ALARMS: &[u8] = b"alarms";
const META_AUTH: &[u8] = b"auth";

/// A granted lease as the state machine knows it. Expiry times are not replicated state: the
/// leader keeps them (see `lease.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRec {
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Counters {
    current_rev: i64,
    compact_rev: i64,
}

/// The events of one revision, published once to the watch hub.
#[derive(Clone, Debug, PartialEq)]
pub struct RevEvents {
    pub revision: i64,
    pub events: Vec<Event>,
}

/// Everything the state machine holds in memory.
#[derive(Debug)]
pub struct KvState {
    pub index: TreeIndex,
    pub current_rev: i64,
    /// -1 until the first compaction, like etcd.
    pub compact_rev: i64,
    pub leases: BTreeMap<i64, LeaseRec>,
    pub key_lease: HashMap<Vec<u8>, i64>,
    pub alarms: BTreeSet<(NodeId, AlarmKind)>,
    pub auth: crate::auth::AuthState,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

impl Default for KvState {
    fn default() -> Self {
        KvState {
            index: TreeIndex::default(),
            current_rev: 1,
            compact_rev: -1,
            leases: BTreeMap::new(),
            key_lease: HashMap::new(),
            alarms: BTreeSet::new(),
            auth: Default::default(),
            last_applied: None,
            membership: StoredMembership::default(),
        }
    }
}

impl KvState {
    pub fn has_alarm(&self, kind: AlarmKind) -> bool {
        self.alarms.iter().any(|(_, k)| *k == kind)
    }
}

/// Source of values by revision.
pub(crate) trait Values {
    fn value(&self, rev: Revision) -> Result<Option<KeyValue>>;
}

pub(crate) struct DbValues<'a> {
    db: &'a DB,
    cf: &'a ColumnFamily,
}

impl<'a> DbValues<'a> {
    pub(crate) fn new(db: &'a DB) -> Result<Self> {
        Ok(DbValues {
            db,
            cf: db::cf(db, CF_KV)?,
        })
    }
}

impl Values for DbValues<'_> {
    fn value(&self, rev: Revision) -> Result<Option<KeyValue>> {
        match self.db.get_pinned_cf(self.cf, rev.to_bytes(false))? {
            Some(v) => Ok(Some(decode_kv(&v)?)),
            None => Ok(None),
        }
    }
}

pub(crate) fn decode_kv(b: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(b).map_err(|e| StoreError::Corrupt(format!("stored key-value: {e}")))
}

/// etcd's `mkGteRange`: an empty range end is a single key (`None`), `"\0"` means every key
/// from `key` on (`Some(&[])`).
pub fn range_end(end: &[u8]) -> Option<&[u8]> {
    match end {
        [] => None,
        [0] => Some(&[]),
        e => Some(e),
    }
}

/// Result of a range read inside the state machine.
pub(crate) struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub count: i64,
    pub rev: i64,
}

/// How to read a key range: at which revision (0 = current), how many values at most
/// (0 = all), or only count them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeysOpts {
    pub at: i64,
    pub limit: usize,
    pub count_only: bool,
}

/// etcd's `rangeKeys`: keys live at `opts.at` (or `cur_rev`), optionally limited, with the
/// total.
pub(crate) fn range_keys(
    st: &KvState,
    vals: &impl Values,
    key: &[u8],
    end: Option<&[u8]>,
    opts: KeysOpts,
    cur_rev: i64,
) -> Result<RangeResult> {
    let KeysOpts {
        at,
        limit,
        count_only,
    } = opts;
    if at > cur_rev {
        return Err(EtcdError::FutureRev.into());
    }
    let rev = if at <= 0 { cur_rev } else { at };
    if rev < st.compact_rev {
        return Err(EtcdError::Compacted.into());
    }
    let mut count = 0i64;
    let mut revs = Vec::new();
    for (_, at) in st.index.revisions(key, end, rev) {
        count += 1;
        if !count_only && (limit == 0 || revs.len() < limit) {
            revs.push(at.modified);
        }
    }
    let mut kvs = Vec::with_capacity(revs.len());
    for r in revs {
        match vals.value(r)? {
            Some(kv) => kvs.push(kv),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "revision {r} is in the index but not in the database"
                )))
            }
        }
    }
    Ok(RangeResult {
        kvs,
        count,
        rev: cur_rev,
    })
}

/// etcd's Range on top of [`range_keys`]: filters, sorting, limit and `more`.
pub(crate) fn range(
    st: &KvState,
    vals: &impl Values,
    r: &pb::RangeRequest,
    cur_rev: i64,
) -> Result<pb::RangeResponse> {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = SortOrder::try_from(r.sort_order).map_err(|_| EtcdError::InvalidSortOption)?;
    let sort_target =
        SortTarget::try_from(r.sort_target).map_err(|_| EtcdError::InvalidSortOption)?;
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let mut limit = if sort_order != SortOrder::None || filtered {
        0
    } else {
        r.limit.max(0) as usize
    };
    if limit > 0 {
        // One extra tells whether there is more.
        limit += 1;
    }
    let opts = KeysOpts {
        at: r.revision,
        limit,
        count_only: r.count_only,
    };
    let rr = range_keys(st, vals, &r.key, range_end(&r.range_end), opts, cur_rev)?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let mut order = sort_order;
    if sort_target != SortTarget::Key && order == SortOrder::None {
        // Results come sorted by key; any other target sorts ascending by default.
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| match sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        // Stable in both directions: equal elements stay in key order, as etcd's insertion
        // sort leaves them for small results.
        match order {
            SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
            _ => kvs.sort_by(cmp),
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            revision: rr.rev,
            ..Default::default()
        }),
        kvs,
        more,
        count: rr.count,
    })
}

/// The MVCC store: the database plus the in-memory state, shared by readers and the applier.
pub struct Mvcc {
    db: Arc<DB>,
    state: RwLock<KvState>,
}

impl Mvcc {
    /// Opens the state stored in `db`, rebuilding the key index from the stored revisions.
    pub fn open(db: Arc<DB>) -> Result<Self> {
        let st = load_state(&db)?;
        Ok(Mvcc {
            db,
            state: RwLock::new(st),
        })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, KvState> {
        self.state.read()
    }

    pub fn current_rev(&self) -> i64 {
        self.state.read().current_rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.state.read().compact_rev
    }

    pub fn last_applied(&self) -> Option<LogId> {
        self.state.read().last_applied
    }

    /// A Range served from local state (serializable).
    pub fn range(&self, r: &pb::RangeRequest) -> Result<pb::RangeResponse> {
        if r.key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let st = self.state.read();
        let vals = DbValues::new(&self.db)?;
        range(&st, &vals, r, st.current_rev)
    }

    /// A transaction of range operations only, against local state.
    pub fn txn_readonly(&self, t: &pb::TxnRequest) -> Result<pb::TxnResponse> {
        let st = self.state.read();
        let vals = DbValues::new(&self.db)?;
        txn::txn_readonly(&st, &vals, t)
    }

    /// The key-value of `key` as of revision `at` (0 = current), if it was live.
    pub fn get_at(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>> {
        let st = self.state.read();
        let vals = DbValues::new(&self.db)?;
        let opts = KeysOpts {
            at,
            limit: 1,
            count_only: false,
        };
        let rr = range_keys(&st, &vals, key, None, opts, st.current_rev)?;
        Ok(rr.kvs.into_iter().next())
    }

    /// Events of revisions `from..=to` (at most `max_revs` revisions) read back from history,
    /// for watchers that start in the past or fell behind. Fails with `Compacted` if `from` is
    /// below the compacted revision (etcd lets a watcher start exactly at it).
    pub fn events_between(&self, from: i64, to: i64, max_revs: usize) -> Result<Vec<RevEvents>> {
        let st = self.state.read();
        if from < st.compact_rev {
            return Err(EtcdError::Compacted.into());
        }
        let cf = db::cf(&self.db, CF_KV)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(Revision::start_of(to.saturating_add(1)));
        let start = Revision::start_of(from);
        let iter = self
            .db
            .iterator_cf_opt(cf, ro, IteratorMode::From(&start, Direction::Forward));
        let mut out: Vec<RevEvents> = Vec::new();
        for item in iter {
            let (k, v) = item?;
            let Some((rev, tomb)) = Revision::from_bytes(&k) else {
                continue;
            };
            let mut kv = decode_kv(&v)?;
            let ty = if tomb {
                kv.mod_revision = rev.main;
                EventType::Delete
            } else {
                EventType::Put
            };
            let ev = Event {
                r#type: ty as i32,
                kv: Some(kv),
                prev_kv: None,
            };
            match out.last_mut() {
                Some(last) if last.revision == rev.main => last.events.push(ev),
                _ => {
                    if out.len() == max_revs {
                        break;
                    }
                    out.push(RevEvents {
                        revision: rev.main,
                        events: vec![ev],
                    })
                }
            }
        }
        Ok(out)
    }

    /// etcd's HashKV: CRC-32C over `"key"` and every stored revision key and value up to `rev`
    /// (0 = current). Below the compacted revision only the revisions the index still keeps
    /// as of `rev` count, exactly as etcd 3.4 computes it (`Keep(rev)`), so the hash equals
    /// etcd's for the same history. Returns (hash, current revision, compact revision).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        let st = self.state.read();
        let (cur, compact) = (st.current_rev, st.compact_rev);
        if rev > 0 && rev <= compact {
            return Err(EtcdError::Compacted.into());
        }
        if rev > 0 && rev > cur {
            return Err(EtcdError::FutureRev.into());
        }
        let rev = if rev == 0 { cur } else { rev };
        let keep = st.index.keep(rev);
        let cf = db::cf(&self.db, CF_KV)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(Revision::start_of(rev + 1));
        let mut crc = crc32c::crc32c(b"key");
        for item in self.db.iterator_cf_opt(cf, ro, IteratorMode::Start) {
            let (k, v) = item?;
            if let Some((r, _)) = Revision::from_bytes(&k) {
                if r.main <= compact && !keep.is_empty() && !keep.contains(&r) {
                    continue;
                }
            }
            crc = crc32c::crc32c_append(crc, &k);
            crc = crc32c::crc32c_append(crc, &v);
        }
        Ok((crc, cur, compact))
    }

    /// Starts applying a batch of raft entries. Holds the write lock until the batch is
    /// committed to the database.
    pub fn applier(&self) -> Result<Applier<'_>> {
        Applier::new(&self.db, self.state.write())
    }

    /// Replaces the whole state from a snapshot.
    pub fn install(&self, data: &[u8]) -> Result<snapshot::SnapshotHeader> {
        let mut st = self.state.write();
        let header = snapshot::install(&self.db, data)?;
        *st = load_state(&self.db)?;
        Ok(header)
    }

    /// Serialises the current state (under the read lock: consistent with `last_applied`).
    pub fn snapshot(&self) -> Result<(snapshot::SnapshotHeader, Vec<u8>)> {
        let st = self.state.read();
        snapshot::build(&self.db, &st)
    }
}

pub(crate) fn load_state(db: &DB) -> Result<KvState> {
    let mut st = KvState::default();
    let meta = db::cf(db, CF_SM_META)?;
    if let Some(v) = db.get_cf(meta, META_APPLIED)? {
        st.last_applied = bincode::deserialize(&v).map_err(corrupt("applied log id"))?;
    }
    if let Some(v) = db.get_cf(meta, META_MEMBERSHIP)? {
        st.membership = bincode::deserialize(&v).map_err(corrupt("membership"))?;
    }
    if let Some(v) = db.get_cf(meta, META_COUNTERS)? {
        let c: Counters = bincode::deserialize(&v).map_err(corrupt("counters"))?;
        st.current_rev = c.current_rev;
        st.compact_rev = c.compact_rev;
    }
    if let Some(v) = db.get_cf(meta, META_ALARMS)? {
        st.alarms = bincode::deserialize(&v).map_err(corrupt("alarms"))?;
    }
    if let Some(v) = db.get_cf(meta, META_AUTH)? {
        st.auth = bincode::deserialize(&v).map_err(corrupt("auth"))?;
    }
    let leases = db::cf(db, CF_LEASE)?;
    for item in db.iterator_cf(leases, IteratorMode::Start) {
        let (k, v) = item?;
        let id = i64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("lease key".into()))?,
        );
        let ttl: i64 = bincode::deserialize(&v).map_err(corrupt("lease"))?;
        st.leases.insert(
            id,
            LeaseRec {
                ttl,
                keys: BTreeSet::new(),
            },
        );
    }
    let kv = db::cf(db, CF_KV)?;
    // Latest value per key, to reattach keys to their leases.
    let mut latest_lease: HashMap<Vec<u8>, i64> = HashMap::new();
    for item in db.iterator_cf(kv, IteratorMode::Start) {
        let (k, v) = item?;
        let (rev, tomb) =
            Revision::from_bytes(&k).ok_or_else(|| StoreError::Corrupt("revision key".into()))?;
        let kv = decode_kv(&v)?;
        st.index
            .restore(&kv.key, rev, tomb, kv.create_revision, kv.version);
        if tomb {
            latest_lease.remove(&kv.key);
        } else {
            latest_lease.insert(kv.key, kv.lease);
        }
        st.current_rev = st.current_rev.max(rev.main);
    }
    for (key, lease) in latest_lease {
        if lease == 0 {
            continue;
        }
        if let Some(l) = st.leases.get_mut(&lease) {
            l.keys.insert(key.clone());
            st.key_lease.insert(key, lease);
        }
    }
    Ok(st)
}

fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

/// Applies raft entries: see [`Mvcc::applier`].
pub struct Applier<'a> {
    db: &'a DB,
    st: parking_lot::RwLockWriteGuard<'a, KvState>,
    batch: WriteBatch,
    /// Values written by this batch, not yet in the database.
    pending: HashMap<Revision, KeyValue>,
    /// Tombstones written by this batch, not yet in the database.
    pending_tombstones: Vec<Revision>,
    events: Vec<RevEvents>,
    compacted: Option<i64>,
    /// The auth state changed in this batch (written with it).
    auth_changed: bool,
}

struct PendingValues<'a> {
    pending: &'a HashMap<Revision, KeyValue>,
    db: DbValues<'a>,
}

impl Values for PendingValues<'_> {
    fn value(&self, rev: Revision) -> Result<Option<KeyValue>> {
        if let Some(kv) = self.pending.get(&rev) {
            return Ok(Some(kv.clone()));
        }
        self.db.value(rev)
    }
}

/// What committing an apply batch produced for the rest of the member.
#[derive(Debug, Default)]
pub struct Applied {
    pub events: Vec<RevEvents>,
    /// Set when a compaction was applied.
    pub compacted: Option<i64>,
}

impl<'a> Applier<'a> {
    fn new(db: &'a DB, st: parking_lot::RwLockWriteGuard<'a, KvState>) -> Result<Self> {
        Ok(Applier {
            db,
            st,
            batch: WriteBatch::default(),
            pending: HashMap::new(),
            pending_tombstones: Vec::new(),
            events: Vec::new(),
            compacted: None,
            auth_changed: false,
        })
    }

    pub fn state(&self) -> &KvState {
        &self.st
    }

    pub fn set_applied(&mut self, log_id: LogId) {
        self.st.last_applied = Some(log_id);
    }

    pub fn set_membership(&mut self, m: StoredMembership) {
        self.st.membership = m;
    }

    /// Writes the batch and the bookkeeping in one atomic write (not synced: the raft log is
    /// the durable record; a lost tail is re-applied from it after a crash).
    pub fn commit(mut self) -> Result<Applied> {
        self.flush()?;
        Ok(Applied {
            events: std::mem::take(&mut self.events),
            compacted: self.compacted,
        })
    }

    fn flush(&mut self) -> Result<()> {
        let meta = db::cf(self.db, CF_SM_META)?;
        self.batch
            .put_cf(meta, META_APPLIED, enc(&self.st.last_applied)?);
        self.batch
            .put_cf(meta, META_MEMBERSHIP, enc(&self.st.membership)?);
        let counters = Counters {
            current_rev: self.st.current_rev,
            compact_rev: self.st.compact_rev,
        };
        self.batch.put_cf(meta, META_COUNTERS, enc(&counters)?);
        self.batch.put_cf(meta, META_ALARMS, enc(&self.st.alarms)?);
        if std::mem::take(&mut self.auth_changed) {
            self.batch.put_cf(meta, META_AUTH, enc(&self.st.auth)?);
        }
        let batch = std::mem::take(&mut self.batch);
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(batch, &wo)?;
        self.pending.clear();
        self.pending_tombstones.clear();
        Ok(())
    }

    fn values(&self) -> Result<PendingValues<'_>> {
        Ok(PendingValues {
            pending: &self.pending,
            db: DbValues::new(self.db)?,
        })
    }

    /// Applies one client request. Deterministic: every member computes the same response.
    pub fn apply(&mut self, req: &crate::types::Request) -> Result<crate::types::Response> {
        use crate::types::{Pb, Request as R, Response as S};
        if let R::Batch(reqs) = req {
            return reqs
                .iter()
                .map(|r| self.apply(r))
                .collect::<Result<_>>()
                .map(S::Batch);
        }
        if self.st.has_alarm(AlarmKind::NoSpace) && req.may_grow() {
            return Ok(S::Error(EtcdError::NoSpace));
        }
        let out = match req {
            R::Put(p) => self
                .txn_single(txn::Op::Put(&p.0))
                .map(|r| S::Put(Pb(r.into_put()))),
            R::DeleteRange(d) => self
                .txn_single(txn::Op::Delete(&d.0))
                .map(|r| S::DeleteRange(Pb(r.into_delete()))),
            R::Txn(t) => self.txn(&t.0).map(|r| S::Txn(Pb(r))),
            R::Compact { revision, .. } => self.compact(*revision).map(|()| S::Compact {
                revision: self.st.current_rev,
            }),
            R::LeaseGrant { id, ttl } => self.lease_grant(*id, *ttl).map(|()| S::LeaseGrant {
                id: *id,
                ttl: *ttl,
                revision: self.st.current_rev,
            }),
            R::LeaseRevoke { id } => self.lease_revoke(*id).map(|()| S::LeaseRevoke {
                revision: self.st.current_rev,
            }),
            R::Alarm {
                activate,
                member,
                kind,
            } => {
                if *activate {
                    self.st.alarms.insert((*member, *kind));
                } else {
                    self.st.alarms.remove(&(*member, *kind));
                }
                Ok(S::Alarm {
                    alarms: self.st.alarms.iter().copied().collect(),
                    revision: self.st.current_rev,
                })
            }
            R::Auth(a) => match self.st.auth.apply(a) {
                Ok(()) => {
                    self.auth_changed = true;
                    Ok(S::Auth {
                        auth_revision: self.st.auth.revision,
                        revision: self.st.current_rev,
                    })
                }
                Err(e) => Err(e.into()),
            },
            R::Batch(_) => Err(EtcdError::Internal("nested batch".into()).into()),
        };
        match out {
            Ok(r) => Ok(r),
            Err(StoreError::Etcd(e)) => Ok(S::Error(e)),
            Err(e) => Err(e),
        }
    }

    fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<()> {
        if self.st.leases.contains_key(&id) {
            return Err(EtcdError::LeaseExist.into());
        }
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        let cf = db::cf(self.db, CF_LEASE)?;
        self.batch.put_cf(
            cf,
            id.to_be_bytes(),
            bincode::serialize(&ttl).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        self.st.leases.insert(
            id,
            LeaseRec {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    fn lease_revoke(&mut self, id: i64) -> Result<()> {
        let Some(lease) = self.st.leases.get(&id) else {
            return Err(EtcdError::LeaseNotFound.into());
        };
        let keys: Vec<Vec<u8>> = lease.keys.iter().cloned().collect();
        let mut tw = txn::WriteTxn::new(self.st.current_rev);
        for k in &keys {
            self.delete_key(&mut tw, k)?;
        }
        self.finish_write(tw);
        let cf = db::cf(self.db, CF_LEASE)?;
        self.batch.delete_cf(cf, id.to_be_bytes());
        self.st.leases.remove(&id);
        Ok(())
    }

    fn compact(&mut self, rev: i64) -> Result<()> {
        if rev <= self.st.compact_rev {
            return Err(EtcdError::Compacted.into());
        }
        if rev > self.st.current_rev {
            return Err(EtcdError::FutureRev.into());
        }
        let keep = self.st.index.compact(rev);
        let cf = db::cf(self.db, CF_KV)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(Revision::start_of(rev + 1));
        for item in self.db.iterator_cf_opt(cf, ro, IteratorMode::Start) {
            let (k, _) = item?;
            if let Some((r, _)) = Revision::from_bytes(&k) {
                if !keep.contains(&r) {
                    self.batch.delete_cf(cf, &k);
                }
            }
        }
        // Revisions written earlier in this same batch are not in the database yet: a delete
        // after their put in the batch removes them (a batch applies in order).
        let doomed: Vec<(Revision, bool)> = self
            .pending
            .keys()
            .map(|r| (*r, false))
            .chain(self.pending_tombstones.iter().map(|r| (*r, true)))
            .filter(|(r, _)| r.main <= rev && !keep.contains(r))
            .collect();
        for (r, tomb) in doomed {
            self.pending.remove(&r);
            self.batch.delete_cf(cf, r.to_bytes(tomb));
        }
        self.pending_tombstones
            .retain(|r| r.main > rev || keep.contains(r));
        self.st.compact_rev = rev;
        self.compacted = Some(rev);
        Ok(())
    }

    fn finish_write(&mut self, tw: txn::WriteTxn) {
        if tw.changes.is_empty() {
            return;
        }
        let rev = tw.begin + 1;
        self.st.current_rev = rev;
        let events = tw
            .changes
            .into_iter()
            .map(|kv| {
                let ty = if kv.create_revision == 0 {
                    EventType::Delete
                } else {
                    EventType::Put
                };
                Event {
                    r#type: ty as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            })
            .collect();
        self.events.push(RevEvents {
            revision: rev,
            events,
        });
    }

    fn put_key(
        &mut self,
        tw: &mut txn::WriteTxn,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
    ) -> Result<()> {
        let rev = tw.begin + 1;
        let idx_rev = Revision::new(rev, tw.changes.len() as i64);
        let (created, ver) = match self.st.index.get(key, rev) {
            Some(at) => (at.created.main, at.version),
            None => (rev, 0),
        };
        let old_lease = self.st.key_lease.get(key).copied().unwrap_or(0);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: created,
            mod_revision: rev,
            version: ver + 1,
            value,
            lease,
        };
        let cf = db::cf(self.db, CF_KV)?;
        self.batch
            .put_cf(cf, idx_rev.to_bytes(false), kv.encode_to_vec());
        self.pending.insert(idx_rev, kv.clone());
        self.st.index.put(key, idx_rev);
        if old_lease != 0 && old_lease != lease {
            if let Some(l) = self.st.leases.get_mut(&old_lease) {
                l.keys.remove(key);
            }
            self.st.key_lease.remove(key);
        }
        if lease != 0 {
            if let Some(l) = self.st.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
                self.st.key_lease.insert(key.to_vec(), lease);
            }
        }
        tw.changes.push(kv);
        Ok(())
    }

    fn delete_key(&mut self, tw: &mut txn::WriteTxn, key: &[u8]) -> Result<bool> {
        let rev = tw.begin + 1;
        let idx_rev = Revision::new(rev, tw.changes.len() as i64);
        if !self.st.index.tombstone(key, idx_rev) {
            return Ok(false);
        }
        let kv = KeyValue {
            key: key.to_vec(),
            ..Default::default()
        };
        let cf = db::cf(self.db, CF_KV)?;
        self.batch
            .put_cf(cf, idx_rev.to_bytes(true), kv.encode_to_vec());
        self.pending_tombstones.push(idx_rev);
        if let Some(lease) = self.st.key_lease.remove(key) {
            if let Some(l) = self.st.leases.get_mut(&lease) {
                l.keys.remove(key);
            }
        }
        tw.changes.push(KeyValue {
            key: key.to_vec(),
            mod_revision: rev,
            ..Default::default()
        });
        Ok(true)
    }
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serialize(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Pb, Request};

    fn put(k: &str, v: &str) -> Request {
        Request::Put(Pb(pb::PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }))
    }

    fn del(k: &str) -> Request {
        Request::DeleteRange(Pb(pb::DeleteRangeRequest {
            key: k.into(),
            ..Default::default()
        }))
    }

    fn stored_revisions(m: &Mvcc) -> Vec<Vec<u8>> {
        let cf = db::cf(m.db(), CF_KV).expect("cf");
        m.db()
            .iterator_cf(cf, IteratorMode::Start)
            .map(|i| i.expect("read").0.to_vec())
            .collect()
    }

    fn open() -> (tempfile::TempDir, Mvcc) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db::open(&dir.path().join("db")).expect("open");
        (dir, Mvcc::open(db).expect("mvcc"))
    }

    /// A compaction applied in the same batch as the writes it compacts must leave exactly
    /// what applying them one batch at a time leaves, including across a restart.
    #[test]
    fn compaction_inside_a_batch_equals_compaction_after_it() {
        let reqs = vec![
            put("a", "1"),
            put("a", "2"),
            put("b", "1"),
            del("b"),
            put("c", "1"),
            Request::Compact {
                revision: 5,
                physical: true,
            },
            put("a", "3"),
        ];
        let (_d1, one_batch) = open();
        let mut ap = one_batch.applier().expect("applier");
        for r in &reqs {
            let resp = ap.apply(r).expect("apply");
            assert!(
                !matches!(resp, crate::types::Response::Error(_)),
                "{resp:?}"
            );
        }
        ap.commit().expect("commit");

        let (_d2, separate) = open();
        for r in &reqs {
            let mut ap = separate.applier().expect("applier");
            ap.apply(r).expect("apply");
            ap.commit().expect("commit");
        }
        assert_eq!(stored_revisions(&one_batch), stored_revisions(&separate));
        assert_eq!(
            one_batch.hash_kv(0).expect("hash"),
            separate.hash_kv(0).expect("hash")
        );
        // Kept: a@3 (a's latest at 5) and everything after 5. b's only generation ended at 5,
        // so its put and its tombstone are both gone.
        assert_eq!(one_batch.compact_rev(), 5);
        let kept: Vec<(Revision, bool)> = stored_revisions(&one_batch)
            .iter()
            .map(|k| Revision::from_bytes(k).expect("revision key"))
            .collect();
        assert_eq!(
            kept,
            vec![
                (Revision::new(3, 0), false),
                (Revision::new(6, 0), false),
                (Revision::new(7, 0), false)
            ]
        );

        // The index rebuilt from disk agrees.
        let db = one_batch.db().clone();
        drop(one_batch);
        let reopened = Mvcc::open(db).expect("reopen");
        assert_eq!(reopened.compact_rev(), 5);
        assert_eq!(reopened.current_rev(), 7);
        let a = reopened.get_at(b"a", 0).expect("get").expect("a exists");
        assert_eq!(
            (a.version, a.create_revision, a.value.as_slice()),
            (3, 2, &b"3"[..])
        );
        assert!(reopened.get_at(b"b", 0).expect("get").is_none());
    }
}
