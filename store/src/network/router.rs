//! An in-process peer network with fault switches, for tests of whole clusters in one process.
//!
//! Members register their [`PeerService`] under their id and peer URLs; each member's
//! transport is [`Router::transport`]. Every message is encoded and decoded exactly as on the
//! wire. Switches act per direction: `cut(a, b)` drops what `a` sends to `b`, `delay` holds it
//! back, `partition` cuts both ways between two groups, `heal` clears everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::{
    decode, encode, BoxFuture, NetError, PeerReply, PeerRequest, PeerService, PeerTransport, Target,
};
use crate::types::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Drop,
    Delay(Duration),
}

struct Registered {
    urls: Vec<String>,
    service: Weak<dyn PeerService>,
}

#[derive(Default)]
pub struct Router {
    members: RwLock<HashMap<NodeId, Registered>>,
    faults: Mutex<HashMap<(NodeId, NodeId), Fault>>,
}

impl Router {
    pub fn new() -> Arc<Self> {
        Arc::new(Router::default())
    }

    pub fn register(&self, id: NodeId, urls: Vec<String>, service: &Arc<dyn PeerService>) {
        self.members.write().insert(
            id,
            Registered {
                urls,
                service: Arc::downgrade(service),
            },
        );
    }

    pub fn unregister(&self, id: NodeId) {
        self.members.write().remove(&id);
    }

    /// The transport member `from` sends with (`from` may be set later, see
    /// [`PeerTransport::set_identity`]).
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<dyn PeerTransport> {
        Arc::new(RouterTransport {
            router: self.clone(),
            from: AtomicU64::new(from),
        })
    }

    pub fn set_fault(&self, from: NodeId, to: NodeId, fault: Fault) {
        self.faults.lock().insert((from, to), fault);
    }

    /// Drops everything `from` sends to `to`.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.set_fault(from, to, Fault::Drop);
    }

    pub fn delay(&self, from: NodeId, to: NodeId, d: Duration) {
        self.set_fault(from, to, Fault::Delay(d));
    }

    /// Cuts both directions between every member of `a` and every member of `b`.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    /// Cuts `id` off from every other registered member.
    pub fn isolate(&self, id: NodeId) {
        let others: Vec<NodeId> = self
            .members
            .read()
            .keys()
            .copied()
            .filter(|&m| m != id)
            .collect();
        self.partition(&[id], &others);
    }

    pub fn heal(&self) {
        self.faults.lock().clear();
    }

    fn resolve(&self, target: &Target) -> Option<(NodeId, Arc<dyn PeerService>)> {
        let members = self.members.read();
        if let Some(id) = target.id {
            let r = members.get(&id)?;
            return Some((id, r.service.upgrade()?));
        }
        members
            .iter()
            .find(|(_, r)| r.urls.iter().any(|u| target.urls.contains(u)))
            .and_then(|(id, r)| Some((*id, r.service.upgrade()?)))
    }
}

struct RouterTransport {
    router: Arc<Router>,
    from: AtomicU64,
}

impl PeerTransport for RouterTransport {
    fn call(
        &self,
        target: Target,
        req: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<PeerReply, NetError>> {
        let router = self.router.clone();
        let from = self.from.load(Ordering::Relaxed);
        Box::pin(async move {
            let Some((to, service)) = router.resolve(&target) else {
                return Err(NetError::Unreachable(format!("no member at {target:?}")));
            };
            let fault = router.faults.lock().get(&(from, to)).copied();
            let bytes = encode(&req)?;
            let work = async {
                if let Some(Fault::Delay(d)) = fault {
                    tokio::time::sleep(d).await;
                }
                let req: PeerRequest = decode(&bytes)?;
                let reply = service.handle(from, req).await;
                // The answer crosses the same (possibly faulty) link back.
                if router.faults.lock().get(&(to, from)) == Some(&Fault::Drop) {
                    return Err(NetError::Unreachable(format!("{to} -> {from} is cut")));
                }
                decode::<PeerReply>(&encode(&reply)?)
            };
            if fault == Some(Fault::Drop) {
                return Err(NetError::Unreachable(format!("{from} -> {to} is cut")));
            }
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(NetError::Timeout(timeout)),
            }
        })
    }

    fn set_identity(&self, _cluster_id: u64, member_id: NodeId) {
        self.from.store(member_id, Ordering::Relaxed);
    }
}
