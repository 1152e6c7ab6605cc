//! Objects in the store: JSON values under `/registry/...` keys, `resourceVersion` = the key's
//! `mod_revision`. Every conditional write is one store transaction, like Kubernetes' etcd3
//! storage (create = "create_revision is 0", update/delete = "mod_revision is what I read").

use std::sync::Arc;

use keelson_proto::etcdserverpb::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use keelson_store::StoreNode;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::meta;

/// An object read from the store.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The object, with `metadata.resourceVersion` set.
    pub obj: Value,
    /// Its `mod_revision`.
    pub rv: i64,
    /// Stored with an encryption key (or provider) other than the one writes use now: an
    /// update that changes nothing still rewrites it, to encrypt it anew.
    pub stale: bool,
}

/// What a conditional write found.
#[derive(Debug)]
pub enum Outcome {
    /// Written at this revision.
    Done(i64),
    /// The condition failed; the key's current object (None = absent).
    Failed(Option<Stored>),
}

/// One extra key a write creates or deletes in the same transaction (IP and port
/// allocations of services).
#[derive(Clone, Debug)]
pub enum Extra {
    /// Create a key that must not exist yet.
    Claim(String),
    /// Delete a key.
    Release(String),
}

#[derive(Clone)]
pub struct Storage {
    node: Arc<StoreNode>,
    /// Encryption at rest of the resources it covers.
    encryption: Option<Arc<crate::encryption::Transformer>>,
}

/// `prefix` + 1 in the last byte: the etcd range end of every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Encodes an object for the store (without its resourceVersion).
pub fn encode(obj: &Value) -> Result<Vec<u8>> {
    // The resourceVersion is the key's mod revision, never stored; copy the object only to
    // drop one that is there.
    let has_rv = meta::metadata(obj).is_some_and(|m| m.contains_key("resourceVersion"));
    let bytes = if has_rv {
        let mut o = obj.clone();
        meta::remove_resource_version(&mut o);
        serde_json::to_vec(&o)
    } else {
        serde_json::to_vec(obj)
    };
    bytes.map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(value: &[u8], rv: i64) -> Result<Value> {
    let mut obj: Value = serde_json::from_slice(value)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    meta::set_resource_version(&mut obj, rv);
    Ok(obj)
}

fn put_op(key: &str, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..Default::default()
        })),
    }
}

fn delete_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            },
        )),
    }
}

fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn cmp_mod(key: &str, rv: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(rv)),
        ..Default::default()
    }
}

fn cmp_absent(key: &str) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(0)),
        ..Default::default()
    }
}

impl Storage {
    pub fn new(
        node: Arc<StoreNode>,
        encryption: Option<Arc<crate::encryption::Transformer>>,
    ) -> Storage {
        Storage { node, encryption }
    }

    /// What is stored for `obj` at `key`: its JSON, encrypted if configured.
    fn seal(&self, key: &str, obj: &Value) -> Result<Vec<u8>> {
        let plain = encode(obj)?;
        match &self.encryption {
            Some(t) => t.encrypt(key, plain),
            None => Ok(plain),
        }
    }

    /// The object stored at `key`, decrypted, and whether it is stale.
    fn unseal(&self, key: &[u8], value: &[u8], rv: i64) -> Result<Stored> {
        let (obj, stale) = match &self.encryption {
            Some(t) => {
                let (plain, stale) = t.decrypt(&String::from_utf8_lossy(key), value)?;
                (decode(&plain, rv)?, stale)
            }
            None => (decode(value, rv)?, false),
        };
        Ok(Stored { obj, rv, stale })
    }

    pub fn node(&self) -> &Arc<StoreNode> {
        &self.node
    }

    /// The store's current revision, linearizably.
    pub async fn current_revision(&self) -> Result<i64> {
        self.node.linearize().await?;
        Ok(self.node.mvcc().current_rev())
    }

    /// Reads one object (linearizable unless `serializable`), at `rev` when given.
    pub async fn get(
        &self,
        key: &str,
        rev: Option<i64>,
        serializable: bool,
    ) -> Result<Option<Stored>> {
        let resp = self
            .node
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                revision: rev.unwrap_or(0),
                serializable,
                ..Default::default()
            })
            .await?;
        match resp.kvs.into_iter().next() {
            Some(kv) => Ok(Some(self.unseal(&kv.key, &kv.value, kv.mod_revision)?)),
            None => Ok(None),
        }
    }

    /// One page of a list: keys in `[from, prefix_end(prefix))` at `rev` (0 = now), at most
    /// `limit` (0 = all). Returns the objects, the revision read at, and whether more remain.
    pub async fn list(
        &self,
        prefix: &str,
        from: Option<&[u8]>,
        rev: i64,
        limit: i64,
    ) -> Result<(Vec<(Vec<u8>, Stored)>, i64, bool)> {
        let resp = self
            .node
            .range(RangeRequest {
                key: from.map_or_else(|| prefix.as_bytes().to_vec(), <[u8]>::to_vec),
                range_end: prefix_end(prefix.as_bytes()),
                revision: rev,
                limit,
                ..Default::default()
            })
            .await?;
        let read_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        let read_rev = if rev > 0 { rev } else { read_rev };
        let mut out = Vec::with_capacity(resp.kvs.len());
        for kv in resp.kvs {
            let stored = self.unseal(&kv.key, &kv.value, kv.mod_revision)?;
            out.push((kv.key, stored));
        }
        Ok((out, read_rev, resp.more))
    }

    fn extras(extra: &[Extra], compares: &mut Vec<Compare>, ops: &mut Vec<RequestOp>) {
        for e in extra {
            match e {
                Extra::Claim(k) => {
                    compares.push(cmp_absent(k));
                    ops.push(put_op(k, b"{}".to_vec()));
                }
                Extra::Release(k) => ops.push(delete_op(k)),
            }
        }
    }

    async fn conditional(
        &self,
        key: &str,
        mut compare: Vec<Compare>,
        mut success: Vec<RequestOp>,
        extra: &[Extra],
    ) -> Result<Outcome> {
        Self::extras(extra, &mut compare, &mut success);
        let resp = self
            .node
            .txn(TxnRequest {
                compare,
                success,
                failure: vec![get_op(key)],
            })
            .await?;
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if resp.succeeded {
            return Ok(Outcome::Done(rev));
        }
        let current = resp.responses.into_iter().find_map(|r| match r.response {
            Some(response_op::Response::ResponseRange(rr)) => rr.kvs.into_iter().next(),
            _ => None,
        });
        match current {
            Some(kv) => Ok(Outcome::Failed(Some(self.unseal(
                &kv.key,
                &kv.value,
                kv.mod_revision,
            )?))),
            None => Ok(Outcome::Failed(None)),
        }
    }

    /// Creates `key` if it does not exist.
    pub async fn create(&self, key: &str, obj: &Value, extra: &[Extra]) -> Result<Outcome> {
        let value = self.seal(key, obj)?;
        self.conditional(key, vec![cmp_absent(key)], vec![put_op(key, value)], extra)
            .await
    }

    /// Replaces `key` if its mod_revision is still `rv`.
    pub async fn update(
        &self,
        key: &str,
        rv: i64,
        obj: &Value,
        extra: &[Extra],
    ) -> Result<Outcome> {
        let value = self.seal(key, obj)?;
        self.conditional(key, vec![cmp_mod(key, rv)], vec![put_op(key, value)], extra)
            .await
    }

    /// Deletes `key` if its mod_revision is still `rv`.
    pub async fn delete(&self, key: &str, rv: i64, extra: &[Extra]) -> Result<Outcome> {
        self.conditional(key, vec![cmp_mod(key, rv)], vec![delete_op(key)], extra)
            .await
    }

    /// An unconditional put of an auxiliary key (not an API object).
    pub async fn put_raw(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let resp = self
            .node
            .put(PutRequest {
                key: key.as_bytes().to_vec(),
                value,
                ..Default::default()
            })
            .await?;
        Ok(resp.header.map_or(0, |h| h.revision))
    }

    /// Deletes every key under `prefix` in one revision.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64> {
        let resp = self
            .node
            .delete_range(DeleteRangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                ..Default::default()
            })
            .await?;
        Ok(resp.deleted)
    }

    /// Every key under `prefix` (no values), serializable: for allocators rebuilding state.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let resp = self
            .node
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                keys_only: true,
                ..Default::default()
            })
            .await?;
        Ok(resp
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn encoding_drops_and_decoding_stamps_the_resource_version() {
        let obj = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode(&obj).expect("encode");
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = decode(&bytes, 9).expect("decode");
        assert_eq!(back["metadata"]["resourceVersion"], "9");
    }
}
