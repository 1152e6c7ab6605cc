//! Transactions: request validation (before proposing) and execution (in the state machine),
//! following etcd's rules for compare evaluation, pre-checks and response shapes.

use std::collections::HashSet;

use keelson_proto::etcdserverpb::{
    self as pb, compare::CompareResult, compare::CompareTarget, compare::TargetUnion,
    request_op::Request as Req, response_op::Response as Resp,
};
use keelson_proto::mvccpb::KeyValue;

use super::{range, range_end, range_keys, Applier, KeysOpts, KvState, Values};
use crate::error::{EtcdError, Result};

/// Most operations one Txn may carry (etcd's `--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;

/// A write transaction in progress: its starting revision and the changes made so far.
pub(crate) struct WriteTxn {
    pub begin: i64,
    pub changes: Vec<KeyValue>,
}

impl WriteTxn {
    pub fn new(begin: i64) -> Self {
        WriteTxn {
            begin,
            changes: Vec::new(),
        }
    }

    /// The revision reads inside the transaction see: its own writes included.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin
        } else {
            self.begin + 1
        }
    }
}

pub(crate) enum Op<'a> {
    Put(&'a pb::PutRequest),
    Delete(&'a pb::DeleteRangeRequest),
}

pub(crate) enum OpResp {
    Put(pb::PutResponse),
    Delete(pb::DeleteRangeResponse),
}

impl OpResp {
    pub fn into_put(self) -> pb::PutResponse {
        match self {
            OpResp::Put(p) => p,
            OpResp::Delete(_) => pb::PutResponse::default(),
        }
    }
    pub fn into_delete(self) -> pb::DeleteRangeResponse {
        match self {
            OpResp::Delete(d) => d,
            OpResp::Put(_) => pb::DeleteRangeResponse::default(),
        }
    }
}

fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// etcd's `isTxnReadonly`, negated: does any branch hold something other than a range?
pub fn txn_has_writes(t: &pb::TxnRequest) -> bool {
    t.success
        .iter()
        .chain(t.failure.iter())
        .any(|op| !matches!(op.request, Some(Req::RequestRange(_))))
}

// ---- validation, before a request is proposed (etcd's v3rpc checks) ----

pub fn check_range(r: &pb::RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if pb::range_request::SortOrder::try_from(r.sort_order).is_err()
        || pb::range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &pb::PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &pb::DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

fn check_op(op: &pb::RequestOp, max_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(Req::RequestRange(r)) => check_range(r),
        Some(Req::RequestPut(r)) => check_put(r),
        Some(Req::RequestDeleteRange(r)) => check_delete(r),
        Some(Req::RequestTxn(t)) => check_txn_ops(t, max_ops),
        None => Err(EtcdError::KeyNotFound),
    }
}

fn check_txn_ops(t: &pb::TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let opc = t.compare.len().max(t.success.len()).max(t.failure.len());
    if opc > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in t.success.iter().chain(t.failure.iter()) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

/// Validates a Txn like etcd does before proposing it: operation counts, keys, and no key
/// written twice on one path (puts of one key, or a put inside a deleted range).
pub fn check_txn(t: &pb::TxnRequest) -> Result<(), EtcdError> {
    check_txn_ops(t, MAX_TXN_OPS)?;
    check_intervals(&t.success)?;
    check_intervals(&t.failure)?;
    Ok(())
}

/// A deleted interval `[begin, end)` (or a single key when `end` is empty), compared as plain
/// byte strings exactly like etcd's interval tree does.
#[derive(Clone)]
struct Del {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Del {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            self.begin == k
        } else {
            self.begin.as_slice() <= k && k < self.end.as_slice()
        }
    }
}

fn check_intervals(reqs: &[pb::RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Del>), EtcdError> {
    let mut dels: Vec<Del> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(Req::RequestDeleteRange(d)) => Some(Del {
                begin: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let hit = |dels: &[Del], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in reqs {
        let Some(Req::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hit(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // A key in both branches is fine: only one of them runs.
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(EtcdError::DuplicateKey);
            }
            if hit(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(Req::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || hit(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

// ---- execution, in the state machine ----

fn compare_kv(c: &pb::Compare, kv: &KeyValue) -> bool {
    // An unknown target compares as equal, like etcd (its comparison result stays 0).
    let Ok(target) = CompareTarget::try_from(c.target) else {
        return CompareResult::try_from(c.result) == Ok(CompareResult::Equal);
    };
    let ord = match target {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => {
            let v = match c.target_union {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            };
            kv.create_revision.cmp(&v)
        }
        CompareTarget::Mod => {
            let v = match c.target_union {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            };
            kv.mod_revision.cmp(&v)
        }
        CompareTarget::Version => {
            let v = match c.target_union {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            };
            kv.version.cmp(&v)
        }
        CompareTarget::Lease => {
            let v = match c.target_union {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            };
            kv.lease.cmp(&v)
        }
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

fn apply_compare(st: &KvState, vals: &impl Values, c: &pb::Compare) -> Result<bool> {
    let cur = st.current_rev;
    let rr = match range_keys(
        st,
        vals,
        &c.key,
        range_end(&c.range_end),
        KeysOpts::default(),
        cur,
    ) {
        Ok(rr) => rr,
        Err(crate::error::StoreError::Etcd(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    if rr.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            // No way to compare a value of a key that does not exist.
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, kv)))
}

/// Evaluates the compares of a transaction and of every nested transaction on the chosen
/// path, against the state before any of its writes (etcd's `compareToPath`).
fn compare_path(
    st: &KvState,
    vals: &impl Values,
    t: &pb::TxnRequest,
    path: &mut Vec<bool>,
) -> Result<()> {
    let mut ok = true;
    for c in &t.compare {
        if !apply_compare(st, vals, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &t.success } else { &t.failure };
    for op in ops {
        if let Some(Req::RequestTxn(nested)) = &op.request {
            compare_path(st, vals, nested, path)?;
        }
    }
    Ok(())
}

/// A transaction with only range operations, evaluated against local state.
pub(crate) fn txn_readonly(
    st: &KvState,
    vals: &impl Values,
    t: &pb::TxnRequest,
) -> Result<pb::TxnResponse> {
    let mut path = Vec::new();
    compare_path(st, vals, t, &mut path)?;
    let succeeded = path[0];
    let ops = if succeeded { &t.success } else { &t.failure };
    let cur = st.current_rev;
    for op in ops {
        if let Some(Req::RequestRange(r)) = &op.request {
            if r.revision > cur {
                return Err(EtcdError::FutureRev.into());
            }
            if r.revision != 0 && r.revision < st.compact_rev {
                return Err(EtcdError::Compacted.into());
            }
        }
    }
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let Some(Req::RequestRange(r)) = &op.request else {
            return Err(EtcdError::Internal("read-only transaction with a write".into()).into());
        };
        responses.push(pb::ResponseOp {
            response: Some(Resp::ResponseRange(range(st, vals, r, cur)?)),
        });
    }
    Ok(pb::TxnResponse {
        header: header(cur),
        succeeded,
        responses,
    })
}

impl Applier<'_> {
    /// Runs `check` on every operation of the chosen path; returns how many path entries the
    /// (nested) transaction consumed.
    fn check_path(
        &self,
        t: &pb::TxnRequest,
        path: &[bool],
        check: &dyn Fn(&Self, &pb::RequestOp) -> Result<()>,
    ) -> Result<usize> {
        let mut used = 1;
        let ops = if path[0] { &t.success } else { &t.failure };
        for op in ops {
            if let Some(Req::RequestTxn(nested)) = &op.request {
                used += self.check_path(nested, &path[used..], check)?;
                continue;
            }
            check(self, op)?;
        }
        Ok(used)
    }

    fn check_put_op(&self, op: &pb::RequestOp) -> Result<()> {
        let Some(Req::RequestPut(p)) = &op.request else {
            return Ok(());
        };
        if p.ignore_value || p.ignore_lease {
            let vals = self.values()?;
            let cur = self.st.current_rev;
            let rr = range_keys(&self.st, &vals, &p.key, None, KeysOpts::default(), cur)?;
            if rr.kvs.is_empty() {
                return Err(EtcdError::KeyNotFound.into());
            }
        }
        if p.lease != 0 && !self.st.leases.contains_key(&p.lease) {
            return Err(EtcdError::LeaseNotFound.into());
        }
        Ok(())
    }

    fn check_range_op(&self, op: &pb::RequestOp) -> Result<()> {
        let Some(Req::RequestRange(r)) = &op.request else {
            return Ok(());
        };
        if r.revision == 0 {
            return Ok(());
        }
        if r.revision > self.st.current_rev {
            return Err(EtcdError::FutureRev.into());
        }
        if r.revision < self.st.compact_rev {
            return Err(EtcdError::Compacted.into());
        }
        Ok(())
    }

    /// A plain Put or DeleteRange: a write transaction of one operation.
    pub(crate) fn txn_single(&mut self, op: Op<'_>) -> Result<OpResp> {
        if let Op::Put(p) = op {
            if p.lease != 0 && !self.st.leases.contains_key(&p.lease) {
                return Err(EtcdError::LeaseNotFound.into());
            }
        }
        let mut tw = WriteTxn::new(self.st.current_rev);
        let resp = self.exec_write(&mut tw, op)?;
        self.finish_write(tw);
        Ok(resp)
    }

    pub(crate) fn txn(&mut self, t: &pb::TxnRequest) -> Result<pb::TxnResponse> {
        let mut path = Vec::new();
        {
            let vals = self.values()?;
            compare_path(&self.st, &vals, t, &mut path)?;
        }
        if txn_has_writes(t) {
            self.check_path(t, &path, &|a, op| a.check_put_op(op))?;
        }
        self.check_path(t, &path, &|a, op| a.check_range_op(op))?;
        let mut tw = WriteTxn::new(self.st.current_rev);
        let (mut resp, _) = self.exec_txn(&mut tw, t, &path)?;
        let rev = tw.read_rev();
        self.finish_write(tw);
        resp.header = header(rev);
        Ok(resp)
    }

    fn exec_txn(
        &mut self,
        tw: &mut WriteTxn,
        t: &pb::TxnRequest,
        path: &[bool],
    ) -> Result<(pb::TxnResponse, usize)> {
        let succeeded = path[0];
        let ops = if succeeded { &t.success } else { &t.failure };
        let mut used = 1;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match &op.request {
                Some(Req::RequestRange(r)) => {
                    let vals = self.values()?;
                    let rev = tw.read_rev();
                    Resp::ResponseRange(range(&self.st, &vals, r, rev)?)
                }
                Some(Req::RequestPut(p)) => match self.exec_write(tw, Op::Put(p))? {
                    OpResp::Put(r) => Resp::ResponsePut(r),
                    OpResp::Delete(_) => unreachable_op()?,
                },
                Some(Req::RequestDeleteRange(d)) => match self.exec_write(tw, Op::Delete(d))? {
                    OpResp::Delete(r) => Resp::ResponseDeleteRange(r),
                    OpResp::Put(_) => unreachable_op()?,
                },
                Some(Req::RequestTxn(nested)) => {
                    let (mut r, n) = self.exec_txn(tw, nested, &path[used..])?;
                    used += n;
                    r.header = Some(pb::ResponseHeader::default());
                    Resp::ResponseTxn(r)
                }
                None => return Err(EtcdError::KeyNotFound.into()),
            };
            responses.push(pb::ResponseOp {
                response: Some(resp),
            });
        }
        Ok((
            pb::TxnResponse {
                header: None,
                succeeded,
                responses,
            },
            used,
        ))
    }

    fn exec_write(&mut self, tw: &mut WriteTxn, op: Op<'_>) -> Result<OpResp> {
        match op {
            Op::Put(p) => {
                let mut value = p.value.clone();
                let mut lease = p.lease;
                let mut prev = None;
                if p.ignore_value || p.ignore_lease || p.prev_kv {
                    let vals = self.values()?;
                    let rr = range_keys(
                        &self.st,
                        &vals,
                        &p.key,
                        None,
                        KeysOpts::default(),
                        tw.read_rev(),
                    )?;
                    prev = rr.kvs.into_iter().next();
                }
                if p.ignore_value || p.ignore_lease {
                    let Some(prev) = &prev else {
                        return Err(EtcdError::KeyNotFound.into());
                    };
                    if p.ignore_value {
                        value = prev.value.clone();
                    }
                    if p.ignore_lease {
                        lease = prev.lease;
                    }
                }
                self.put_key(tw, &p.key, value, lease)?;
                Ok(OpResp::Put(pb::PutResponse {
                    header: header(tw.begin + 1),
                    prev_kv: if p.prev_kv { prev } else { None },
                }))
            }
            Op::Delete(d) => {
                let end = range_end(&d.range_end);
                let keys: Vec<Vec<u8>> = {
                    let read = tw.read_rev();
                    self.st
                        .index
                        .revisions(&d.key, end, read)
                        .map(|(k, _)| k.clone())
                        .collect()
                };
                let mut prev_kvs = Vec::new();
                if d.prev_kv {
                    let vals = self.values()?;
                    let rr = range_keys(
                        &self.st,
                        &vals,
                        &d.key,
                        end,
                        KeysOpts::default(),
                        tw.read_rev(),
                    )?;
                    prev_kvs = rr.kvs;
                }
                let mut deleted = 0;
                for k in &keys {
                    if self.delete_key(tw, k)? {
                        deleted += 1;
                    }
                }
                let rev = if deleted > 0 || !tw.changes.is_empty() {
                    tw.begin + 1
                } else {
                    tw.begin
                };
                Ok(OpResp::Delete(pb::DeleteRangeResponse {
                    header: header(rev),
                    deleted,
                    prev_kvs,
                }))
            }
        }
    }
}

fn unreachable_op<T>() -> Result<T> {
    Err(EtcdError::Internal("operation produced a mismatched response".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Req::RequestPut(pb::PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Req::RequestDeleteRange(pb::DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn txn(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn duplicate_keys_follow_etcd_rules() {
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), put("b")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
        // The same key in success and failure is fine.
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")])), Ok(()));
        // Overlapping deletes are fine.
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), del("b", "d")], vec![])),
            Ok(())
        );
        // Nested: a put in a nested txn that a sibling already puts.
        let nested = pb::RequestOp {
            request: Some(Req::RequestTxn(txn(vec![put("x")], vec![put("x")]))),
        };
        assert_eq!(
            check_txn(&txn(vec![nested.clone(), put("x")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(check_txn(&txn(vec![nested, put("y")], vec![])), Ok(()));
    }

    #[test]
    fn operation_limits_and_empty_keys() {
        let many: Vec<_> = (0..129).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(many, vec![])), Err(EtcdError::TooManyOps));
        let ok: Vec<_> = (0..128).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(ok, vec![])), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![put("")], vec![])),
            Err(EtcdError::EmptyKey)
        );
        let empty_op = pb::RequestOp { request: None };
        assert_eq!(
            check_txn(&txn(vec![empty_op], vec![])),
            Err(EtcdError::KeyNotFound)
        );
    }
}
