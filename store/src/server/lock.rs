//! `v3lockpb.Lock`: distributed locks on leases (etcd's lock service).
//!
//! etcd serves Lock (and Election, see [`super::election`]) through an in-process client that
//! runs the `clientv3/concurrency` recipes: a lock is a key `name/<lease in hex>` attached to the
//! caller's lease, and the oldest such key (lowest create revision) under `name/` holds the lock.
//! This module reproduces that recipe on the member API, and holds the pieces both services
//! share.
//!
//! Errors reach clients the way etcd's do. The recipes' own errors ("mutex: session is
//! expired", "election: not leader", ...) and the etcd errors relayed by etcd's in-process
//! client are plain Go errors to grpc-go, so they travel with code `Unknown` and etcd's exact
//! message (Go clients map the known messages back to their error values).

use std::sync::Arc;

use keelson_proto::etcdserverpb::{
    self as epb, compare, range_request, request_op, response_op, ResponseHeader,
};
use keelson_proto::mvccpb::{event::EventType, Event, KeyValue};
use keelson_proto::v3lockpb::{self as pb, lock_server::Lock};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status};

use super::auth::{authorize, on_prefix};
use super::check_size;
use crate::auth::Access;
use crate::error::{EtcdError, StoreError};
use crate::node::StoreNode;
use crate::watch::{StreamId, WatchFilter, WatchHub, WatchMsg};

/// TTL of the lease etcd's concurrency session grants when a request names no lease
/// (`concurrency.defaultSessionTTL`).
pub(crate) const SESSION_TTL: i64 = 60;

/// `concurrency.ErrSessionExpired`: the waiter's own key vanished while it waited.
const ERR_SESSION_EXPIRED: &str = "mutex: session is expired";
/// `waitDelete`'s error when its watch ends without the delete.
const ERR_LOST_WATCHER: &str = "lost watcher waiting for delete";

pub struct LockService {
    node: Arc<StoreNode>,
}

impl LockService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        LockService { node }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(
        &self,
        r: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        on_prefix(&self.node, &r, &r.get_ref().name, Access::Write)?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let node = &self.node;
        let lease = session_lease(node, r.lease).await?;
        let prefix = election_prefix(r.name);
        let key = session_key(&prefix, lease);

        // Mutex.tryAcquire: enqueue (or find our key from an earlier call on the same lease) and
        // learn the current owner, in one round.
        let txn = epb::TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![
                put_op(&key, Vec::new(), lease),
                range_op(first_created(&prefix)),
            ],
            failure: vec![range_op(get_key(&key)), range_op(first_created(&prefix))],
        };
        let (resp, mut cleanup) = acquire(node, txn, &key).await?;
        let my_rev = if resp.succeeded {
            header_of(node, resp.header).revision
        } else {
            range_kvs(&resp, 0)
                .first()
                .map(|kv| kv.create_revision)
                .ok_or_else(|| {
                    Status::internal("lock: existing key missing from its txn response")
                })?
        };
        let owner = range_kvs(&resp, 1).first().map(|kv| kv.create_revision);
        if owner.is_none() || owner == Some(my_rev) {
            cleanup.disarm();
            return Ok(Response::new(pb::LockResponse {
                header: Some(header_of(node, resp.header)),
                key,
            }));
        }

        // Wait for every earlier waiter to go. Like etcd's Mutex, a failed or abandoned wait
        // releases our key, even one an earlier call on the same lease created.
        cleanup.set(Undo::delete(key.clone()));
        if let Err(e) = wait_deletes(node, &prefix, my_rev - 1).await {
            cleanup.run().await;
            return Err(e);
        }
        // Make sure our key survived the wait (its lease may have expired meanwhile).
        let got = match node.range(get_key(&key)).await {
            Ok(got) => got,
            Err(e) => {
                cleanup.run().await;
                return Err(client_status(e));
            }
        };
        cleanup.disarm();
        if got.kvs.is_empty() {
            return Err(Status::unknown(ERR_SESSION_EXPIRED));
        }
        Ok(Response::new(pb::LockResponse {
            header: Some(header_of(node, got.header)),
            key,
        }))
    }

    async fn unlock(
        &self,
        r: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        authorize(&self.node, &r, |st, u| {
            st.auth.permitted(u, Access::Write, &r.get_ref().key, &[])
        })?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let resp = self
            .node
            .delete_range(epb::DeleteRangeRequest {
                key: r.key,
                ..Default::default()
            })
            .await
            .map_err(client_status)?;
        Ok(Response::new(pb::UnlockResponse {
            header: Some(header_of(&self.node, resp.header)),
        }))
    }
}

// ------------------------------------------------------------------ shared with election.rs

/// A member error as etcd's lock and election services return it: etcd errors travel with code
/// `Unknown` and their message (see the module documentation); infrastructure failures keep
/// their own code.
pub(crate) fn client_status(e: StoreError) -> Status {
    match e {
        StoreError::Etcd(e @ EtcdError::Internal(_)) => e.into(),
        StoreError::Etcd(e) => Status::unknown(e.to_string()),
        other => other.into(),
    }
}

/// The lease a concurrency session uses: the request's, or (for 0, "no lease") a new lease of
/// [`SESSION_TTL`] seconds that nobody keeps alive, as etcd's `NewSession` grants.
pub(crate) async fn session_lease(node: &StoreNode, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let granted = node
        .lease_grant(0, SESSION_TTL)
        .await
        .map_err(client_status)?;
    Ok(granted.id)
}

/// The key prefix of a mutex or election: `name + "/"`.
pub(crate) fn election_prefix(mut name: Vec<u8>) -> Vec<u8> {
    name.push(b'/');
    name
}

/// A session's key under `prefix`: the lease ID as Go's `%x` prints it.
pub(crate) fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// etcd's `GetPrefixRangeEnd`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

pub(crate) fn get_key(key: &[u8]) -> epb::RangeRequest {
    epb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// `Get(prefix, WithFirstCreate()...)`: the oldest key under the prefix.
pub(crate) fn first_created(prefix: &[u8]) -> epb::RangeRequest {
    epb::RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: range_request::SortTarget::Create as i32,
        sort_order: range_request::SortOrder::Ascend as i32,
        limit: 1,
        ..Default::default()
    }
}

/// `Get(prefix, WithLastCreate(), WithMaxCreateRev(max))`: the newest key under the prefix
/// created at or before `max`.
fn last_created_up_to(prefix: &[u8], max_create_revision: i64) -> epb::RangeRequest {
    epb::RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: range_request::SortTarget::Create as i32,
        sort_order: range_request::SortOrder::Descend as i32,
        limit: 1,
        max_create_revision,
        ..Default::default()
    }
}

pub(crate) fn range_op(r: epb::RangeRequest) -> epb::RequestOp {
    epb::RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub(crate) fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> epb::RequestOp {
    epb::RequestOp {
        request: Some(request_op::Request::RequestPut(epb::PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(crate) fn delete_op(key: &[u8]) -> epb::RequestOp {
    epb::RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            epb::DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// `Compare(CreateRevision(key), "=", rev)`.
pub(crate) fn create_revision_is(key: &[u8], rev: i64) -> epb::Compare {
    epb::Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
    }
}

/// The key-values of the `i`th response of a txn, if it is a range.
pub(crate) fn range_kvs(resp: &epb::TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// A response's header, or the member's current one if the response had none.
pub(crate) fn header_of(node: &StoreNode, h: Option<ResponseHeader>) -> ResponseHeader {
    h.unwrap_or_else(|| node.header(0))
}

/// A write that gives up a session key: a plain delete (what etcd's `Mutex.Unlock` does) or a
/// delete guarded by the key's create revision (`Election.Resign`), so that a newer key of the
/// same name is left alone.
pub(crate) struct Undo {
    key: Vec<u8>,
    create_revision: Option<i64>,
}

impl Undo {
    pub(crate) fn delete(key: Vec<u8>) -> Self {
        Undo {
            key,
            create_revision: None,
        }
    }

    pub(crate) fn resign(key: Vec<u8>, create_revision: i64) -> Self {
        Undo {
            key,
            create_revision: Some(create_revision),
        }
    }

    /// Performs the write; returns its response header.
    pub(crate) async fn run(self, node: &StoreNode) -> Result<ResponseHeader, StoreError> {
        let header = match self.create_revision {
            None => {
                node.delete_range(epb::DeleteRangeRequest {
                    key: self.key,
                    ..Default::default()
                })
                .await?
                .header
            }
            Some(rev) => {
                node.txn(epb::TxnRequest {
                    compare: vec![create_revision_is(&self.key, rev)],
                    success: vec![delete_op(&self.key)],
                    failure: Vec::new(),
                })
                .await?
                .header
            }
        };
        Ok(header_of(node, header))
    }
}

/// Gives up a session key unless disarmed: the recipes' clean-up when a wait fails, and — since
/// a tonic handler is simply dropped when its client cancels or disconnects — when the request
/// goes away mid-way (etcd's "context canceled" path). Dropping it with an armed [`Undo`] runs
/// the undo on a task of its own.
pub(crate) struct Cleanup {
    node: Arc<StoreNode>,
    undo: Option<Undo>,
}

impl Cleanup {
    pub(crate) fn set(&mut self, undo: Undo) {
        self.undo = Some(undo);
    }

    pub(crate) fn disarm(&mut self) {
        self.undo = None;
    }

    /// Runs the undo now (if armed), ignoring its failure like the recipes do.
    pub(crate) async fn run(&mut self) {
        if let Some(undo) = self.undo.take() {
            if let Err(e) = undo.run(&self.node).await {
                tracing::debug!(error = %e, "releasing a lock or election key failed");
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        let key = String::from_utf8_lossy(&undo.key).into_owned();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let node = self.node.clone();
                rt.spawn(async move {
                    if let Err(e) = undo.run(&node).await {
                        tracing::warn!(key = %key, error = %e, "releasing an abandoned lock or election key failed");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(key = %key, "no runtime to release an abandoned lock or election key")
            }
        }
    }
}

/// Runs a recipe's enqueueing txn (compare `create_revision(key) == 0`, put `key` on success) so
/// that it completes even if the caller goes away meanwhile. The returned [`Cleanup`] is armed
/// with a guarded delete of `key` if the txn created it, so a request abandoned at any point
/// after the txn was proposed leaves no key behind; the caller re-arms or disarms it.
pub(crate) async fn acquire(
    node: &Arc<StoreNode>,
    txn: epb::TxnRequest,
    key: &[u8],
) -> Result<(epb::TxnResponse, Cleanup), Status> {
    let (tx, rx) = oneshot::channel();
    let n = node.clone();
    let key = key.to_vec();
    tokio::spawn(async move {
        let out = n.txn(txn).await.map(|resp| {
            let undo = resp
                .succeeded
                .then(|| Undo::resign(key, header_of(&n, resp.header).revision));
            let cleanup = Cleanup {
                node: n.clone(),
                undo,
            };
            (resp, cleanup)
        });
        // If the caller is gone, `out` (and with it the armed clean-up) is dropped here or with
        // the channel.
        let _ = tx.send(out);
    });
    match rx.await {
        Ok(out) => out.map_err(client_status),
        Err(_) => Err(Status::internal("lock: enqueueing transaction task failed")),
    }
}

/// Resolves once the member is shutting down.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Why a [`HubWatch`] ended.
pub(crate) enum WatchEnd {
    /// The history it needed was compacted.
    Compacted,
    /// The hub dropped the stream.
    Lost,
    /// The member is shutting down.
    Stopped,
}

/// One watcher on the member's watch hub, on a stream of its own that is closed on drop.
pub(crate) struct HubWatch {
    hub: Arc<WatchHub>,
    stream: StreamId,
    rx: mpsc::Receiver<WatchMsg>,
    stop: watch::Receiver<bool>,
}

impl HubWatch {
    /// Watches `filter` from `start_revision` (inclusive; 0 = from the next revision).
    pub(crate) fn open(
        node: &StoreNode,
        filter: WatchFilter,
        start_revision: i64,
    ) -> Result<Self, Status> {
        let hub = node.hub().clone();
        let (stream, rx) = hub.open_stream();
        let w = HubWatch {
            hub,
            stream,
            rx,
            stop: node.shutdown_signal(),
        };
        w.hub
            .watch(w.stream, filter, start_revision, false)
            .map_err(client_status)?;
        Ok(w)
    }

    /// The next batch of events and the revision it brings the watcher up to.
    pub(crate) async fn next(&mut self) -> Result<(i64, Vec<Event>), WatchEnd> {
        let HubWatch { rx, stop, .. } = self;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(WatchMsg::Events { revision, events, .. }) => return Ok((revision, events)),
                    Some(WatchMsg::Compacted { .. }) => return Err(WatchEnd::Compacted),
                    Some(WatchMsg::Progress { .. }) => {}
                    None => return Err(WatchEnd::Lost),
                },
                _ = stopped(stop) => return Err(WatchEnd::Stopped),
            }
        }
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        self.hub.close_stream(self.stream);
    }
}

pub(crate) fn is_delete(ev: &Event) -> bool {
    ev.r#type == EventType::Delete as i32
}

/// etcd's `waitDelete`: waits for `key` to be deleted at or after revision `rev`.
async fn wait_delete(node: &StoreNode, key: Vec<u8>, rev: i64) -> Result<(), Status> {
    let filter = WatchFilter {
        key,
        range_end: Vec::new(),
        no_put: true,
        no_delete: false,
    };
    let mut w = HubWatch::open(node, filter, rev)?;
    loop {
        match w.next().await {
            Ok((_, events)) => {
                if events.iter().any(is_delete) {
                    return Ok(());
                }
            }
            Err(WatchEnd::Compacted) => return Err(client_status(EtcdError::Compacted.into())),
            Err(WatchEnd::Lost) => return Err(Status::unknown(ERR_LOST_WATCHER)),
            Err(WatchEnd::Stopped) => return Err(EtcdError::Stopped.into()),
        }
    }
}

/// etcd's `waitDeletes`: waits until no key under `prefix` created at or before
/// `max_create_revision` is left, one (the newest) at a time.
pub(crate) async fn wait_deletes(
    node: &StoreNode,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, Status> {
    if max_create_revision < 1 {
        // Nothing precedes revision 1 (and a 0 bound would mean "no bound" to the range).
        return Ok(node.header(0));
    }
    loop {
        let resp = node
            .range(last_created_up_to(prefix, max_create_revision))
            .await
            .map_err(client_status)?;
        let header = header_of(node, resp.header);
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Ok(header);
        };
        wait_delete(node, kv.key, header.revision).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_use_go_hex() {
        assert_eq!(
            session_key(b"l/", 0x694d_7b1c_9a3e_0f01),
            b"l/694d7b1c9a3e0f01".to_vec()
        );
        assert_eq!(session_key(b"l/", 26), b"l/1a".to_vec());
        assert_eq!(session_key(b"l/", -26), b"l/-1a".to_vec());
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
