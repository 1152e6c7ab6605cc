//! Lease-based concurrency recipes over plain KV, Lease and Watch calls (so they work against
//! any etcd), with etcd clientv3/concurrency's semantics:
//!
//! - a [`Session`] is a lease kept alive in the background; closing it revokes the lease;
//! - a mutex holder and an election candidate is the key `<prefix>/<lease hex>`, created only if
//!   absent; holders queue by create revision and each waits until every key created before its
//!   own is deleted (watching the newest of them), so the lock passes on in order and a dead
//!   holder's key goes away with its lease.

use keelson_proto::etcdserverpb as pb;
use keelson_proto::mvccpb;

use super::client::Clients;
use super::error::KvError;

/// A lease kept alive until [`Session::close`] or until the server ends it.
pub struct Session {
    pub clients: Clients,
    pub lease: i64,
    done: tokio::sync::watch::Receiver<bool>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Session {
    pub async fn new(clients: &Clients, ttl: i64) -> Result<Session, KvError> {
        let grant = clients
            .timed(async {
                clients
                    .lease()
                    .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
                    .await
            })
            .await?
            .into_inner();
        let lease = grant.id;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(pb::LeaseKeepAliveRequest { id: lease })
            .await
            .map_err(|_| KvError::Failed("keep-alive stream closed".into()))?;
        let mut stream = clients
            .lease()
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let keepalive = tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(r)) if r.ttl > 0 => {
                        let wait =
                            std::time::Duration::from_millis((r.ttl as u64 * 1000 / 3).max(300));
                        tokio::time::sleep(wait).await;
                        if tx
                            .send(pb::LeaseKeepAliveRequest { id: lease })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let _ = done_tx.send(true);
        });
        Ok(Session {
            clients: clients.clone(),
            lease,
            done,
            keepalive,
        })
    }

    /// Resolves when the lease can no longer be kept alive (expired, revoked, server gone).
    pub async fn expired(&self) {
        let mut d = self.done.clone();
        let _ = d.wait_for(|v| *v).await;
    }

    /// Stops the keep-alives and revokes the lease (its keys go with it).
    pub async fn close(self) -> Result<(), KvError> {
        self.keepalive.abort();
        let c = &self.clients;
        c.timed(async {
            c.lease()
                .lease_revoke(pb::LeaseRevokeRequest { id: self.lease })
                .await
        })
        .await?;
        Ok(())
    }
}

fn range_of(r: &pb::ResponseOp) -> Option<&pb::RangeResponse> {
    match &r.response {
        Some(pb::response_op::Response::ResponseRange(x)) => Some(x),
        _ => None,
    }
}

fn prefix_req(prefix: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: super::get::prefix_end(prefix.as_bytes()),
        ..Default::default()
    }
}

/// The first-created key under `prefix` (clientv3's WithFirstCreate).
fn first_created(prefix: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        limit: 1,
        sort_order: pb::range_request::SortOrder::Ascend as i32,
        sort_target: pb::range_request::SortTarget::Create as i32,
        ..prefix_req(prefix)
    }
}

/// Creates `key` with `value` on the session's lease unless it exists. Returns the key's
/// create revision, the txn's header and the owner (first-created key) under `prefix`.
async fn enqueue(
    s: &Session,
    prefix: &str,
    key: &str,
    value: &[u8],
) -> Result<(i64, Option<mvccpb::KeyValue>, bool), KvError> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    use pb::request_op::Request;
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.as_bytes().to_vec(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::CreateRevision(0)),
        }],
        success: vec![
            pb::RequestOp {
                request: Some(Request::RequestPut(pb::PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    lease: s.lease,
                    ..Default::default()
                })),
            },
            pb::RequestOp {
                request: Some(Request::RequestRange(first_created(prefix))),
            },
        ],
        failure: vec![
            pb::RequestOp {
                request: Some(Request::RequestRange(pb::RangeRequest {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                })),
            },
            pb::RequestOp {
                request: Some(Request::RequestRange(first_created(prefix))),
            },
        ],
    };
    let c = &s.clients;
    let resp = c.timed(async { c.kv().txn(txn).await }).await?.into_inner();
    let mut my_rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
    let mut existing_value_differs = false;
    if !resp.succeeded {
        let mine = resp
            .responses
            .first()
            .and_then(range_of)
            .and_then(|r| r.kvs.first())
            .ok_or_else(|| KvError::Failed("lock key vanished".into()))?;
        my_rev = mine.create_revision;
        existing_value_differs = mine.value != value;
    }
    let owner = resp
        .responses
        .get(1)
        .and_then(range_of)
        .and_then(|r| r.kvs.first().cloned());
    Ok((my_rev, owner, existing_value_differs))
}

/// Waits until `key` is deleted, watching from revision `rev`.
async fn wait_delete(c: &Clients, key: &[u8], rev: i64) -> Result<(), KvError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: key.to_vec(),
                start_revision: rev,
                ..Default::default()
            },
        )),
    });
    let mut stream = c
        .watch()
        .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(resp) = stream.message().await? {
        if resp
            .events
            .iter()
            .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
        {
            return Ok(());
        }
        if resp.canceled {
            return Err(KvError::Failed(format!(
                "watch canceled while waiting: {}",
                resp.cancel_reason
            )));
        }
    }
    Err(KvError::Failed("watch stream ended while waiting".into()))
}

/// Waits until every key under `prefix` created at or before `max_create_rev` is deleted.
async fn wait_deletes(c: &Clients, prefix: &str, max_create_rev: i64) -> Result<(), KvError> {
    loop {
        let req = pb::RangeRequest {
            limit: 1,
            sort_order: pb::range_request::SortOrder::Descend as i32,
            sort_target: pb::range_request::SortTarget::Create as i32,
            max_create_revision: max_create_rev,
            ..prefix_req(prefix)
        };
        let r = c
            .timed(async { c.kv().range(req).await })
            .await?
            .into_inner();
        let Some(last) = r.kvs.first() else {
            return Ok(());
        };
        let rev = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
        wait_delete(c, &last.key, rev).await?;
    }
}

/// A held (or wanted) lock: the key `<name>/<lease hex>`.
pub struct Mutex {
    pub key: String,
    pub rev: i64,
}

impl Mutex {
    /// Blocks until the lock `name` is ours.
    pub async fn lock(s: &Session, name: &str) -> Result<Mutex, KvError> {
        let prefix = format!("{name}/");
        let key = format!("{prefix}{:x}", s.lease);
        let (rev, owner, _) = enqueue(s, &prefix, &key, b"").await?;
        let mine = owner.as_ref().is_none_or(|o| o.create_revision == rev);
        if !mine {
            wait_deletes(&s.clients, &prefix, rev - 1).await?;
        }
        Ok(Mutex { key, rev })
    }

    pub async fn unlock(&self, s: &Session) -> Result<(), KvError> {
        let c = &s.clients;
        let req = pb::DeleteRangeRequest {
            key: self.key.as_bytes().to_vec(),
            ..Default::default()
        };
        c.timed(async { c.kv().delete_range(req).await }).await?;
        Ok(())
    }
}

/// A candidate in the election `name`.
pub struct Election {
    prefix: String,
    pub key: String,
    pub rev: i64,
}

impl Election {
    /// Blocks until this session leads `name`, with `value` as its proposal.
    pub async fn campaign(s: &Session, name: &str, value: &[u8]) -> Result<Election, KvError> {
        let prefix = format!("{name}/");
        let key = format!("{prefix}{:x}", s.lease);
        let (rev, _, differs) = enqueue(s, &prefix, &key, value).await?;
        let e = Election { prefix, key, rev };
        if differs {
            e.proclaim(s, value).await?;
        }
        wait_deletes(&s.clients, &e.prefix, rev - 1).await?;
        Ok(e)
    }

    /// Changes the leader's value without an election; fails unless still the leader's key.
    pub async fn proclaim(&self, s: &Session, value: &[u8]) -> Result<(), KvError> {
        use pb::compare::{CompareResult, CompareTarget, TargetUnion};
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: self.key.as_bytes().to_vec(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::CreateRevision(self.rev)),
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: self.key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    lease: s.lease,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        let c = &s.clients;
        let r = c.timed(async { c.kv().txn(txn).await }).await?.into_inner();
        if r.succeeded {
            Ok(())
        } else {
            Err(KvError::Failed("election: not leader".into()))
        }
    }

    /// Gives up leadership (or the place in the queue).
    pub async fn resign(&self, s: &Session) -> Result<(), KvError> {
        let c = &s.clients;
        let req = pb::DeleteRangeRequest {
            key: self.key.as_bytes().to_vec(),
            ..Default::default()
        };
        c.timed(async { c.kv().delete_range(req).await }).await?;
        Ok(())
    }
}

/// Calls `on_leader` with the leader's key-value every time the leader (or its value) of the
/// election `name` changes. Runs until the watch fails.
pub async fn observe(
    c: &Clients,
    name: &str,
    mut on_leader: impl FnMut(&mvccpb::KeyValue),
) -> Result<(), KvError> {
    let prefix = format!("{name}/");
    // After a leader's key is deleted, the next leader is read as of that deletion, so a
    // leader that resigns at once is still reported (etcd's Observe reads the latest
    // revision and can skip it).
    let mut at: Option<i64> = None;
    loop {
        let read = |revision: i64| {
            let req = pb::RangeRequest {
                revision,
                ..first_created(&prefix)
            };
            c.timed(async move { c.kv().range(req).await })
        };
        let r = match at.take() {
            Some(revision) => match read(revision).await {
                Ok(r) => Some((r.into_inner(), revision)),
                // Compacted meanwhile: the latest is all there is.
                Err(KvError::Grpc(s)) if s.code() == tonic::Code::OutOfRange => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (r, rev) = match r {
            Some(read_at) => read_at,
            None => {
                let r = read(0).await?.into_inner();
                let rev = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
                (r, rev)
            }
        };
        let Some(leader) = r.kvs.first().cloned() else {
            // No candidate yet: wait for the first put under the prefix.
            wait_put(c, &prefix, rev + 1).await?;
            continue;
        };
        on_leader(&leader);
        // Follow the leader's key until it is deleted.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: leader.key.clone(),
                    start_revision: rev + 1,
                    ..Default::default()
                },
            )),
        });
        let mut stream = c
            .watch()
            .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
            .await?
            .into_inner();
        'follow: while let Some(resp) = stream.message().await? {
            for e in &resp.events {
                if e.r#type == mvccpb::event::EventType::Delete as i32 {
                    at = e.kv.as_ref().map(|kv| kv.mod_revision).filter(|r| *r > 0);
                    break 'follow;
                }
                if let Some(kv) = &e.kv {
                    on_leader(kv);
                }
            }
        }
        drop(tx);
    }
}

async fn wait_put(c: &Clients, prefix: &str, rev: i64) -> Result<(), KvError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: super::get::prefix_end(prefix.as_bytes()),
                start_revision: rev,
                ..Default::default()
            },
        )),
    });
    let mut stream = c
        .watch()
        .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(resp) = stream.message().await? {
        if resp
            .events
            .iter()
            .any(|e| e.r#type == mvccpb::event::EventType::Put as i32)
        {
            return Ok(());
        }
    }
    Err(KvError::Failed("watch stream ended while waiting".into()))
}
