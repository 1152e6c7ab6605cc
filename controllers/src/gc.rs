//! The garbage collector: deletes objects whose owners are gone, and carries out Foreground
//! and Orphan deletion of owners.
//!
//! It watches the metadata of every deletable type and keeps a graph of ownerReferences by
//! uid. The work queue holds uids:
//! - an object whose owners are all gone is deleted (in the background); dangling references
//!   next to a live owner are removed;
//! - an owner being deleted with the `orphan` finalizer has its reference removed from every
//!   dependent, then the finalizer;
//! - an owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted
//!   (in the foreground too); once no dependent with `blockOwnerDeletion` remains, the
//!   finalizer goes.
//!
//! "Gone" is checked with a live read of the owner when the graph lacks it, since the owner's
//! type may not have been listed yet (Kubernetes' GC does the same).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use parking_lot::RwLock;
use serde_json::json;
use tokio::sync::watch;

use crate::queue::{run_workers, Next, Queue, Reconcile};
use crate::resources::{self, Res};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// How often new types (custom resources) are looked for.
const DISCOVERY_PERIOD: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Node {
    res: usize,
    namespace: Option<String>,
    name: String,
    rv: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

#[derive(Default)]
struct Graph {
    types: Vec<Res>,
    /// (apiVersion, kind) → index in `types`.
    by_kind: HashMap<(String, String), usize>,
    nodes: HashMap<String, Node>,
    /// owner uid → dependent uids.
    dependents: HashMap<String, HashSet<String>>,
    /// Types whose first list is not in yet.
    unsynced: HashSet<usize>,
}

impl Graph {
    fn upsert(&mut self, uid: String, node: Node) -> Vec<String> {
        let mut touched = vec![uid.clone()];
        if let Some(old) = self.nodes.get(&uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(&uid);
                }
                touched.push(o.uid.clone());
            }
        }
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
            touched.push(o.uid.clone());
        }
        self.nodes.insert(uid, node);
        touched
    }

    fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut touched = Vec::new();
        if let Some(old) = self.nodes.remove(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                }
                touched.push(o.uid.clone());
            }
        }
        // Its dependents lost an owner.
        if let Some(d) = self.dependents.get(uid) {
            touched.extend(d.iter().cloned());
        }
        touched
    }
}

/// The garbage collector (run it under the controllers' leader lease).
pub struct GarbageCollector {
    client: Client,
    graph: RwLock<Graph>,
    queue: Queue,
}

impl GarbageCollector {
    pub fn new(client: Client) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector {
            client,
            graph: RwLock::new(Graph::default()),
            queue: Queue::new(),
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let workers = tokio::spawn(run_workers(
            "garbage-collector",
            Arc::clone(&self),
            self.queue.clone(),
            4,
            Vec::new(),
            stop.clone(),
        ));
        let mut stop2 = stop.clone();
        loop {
            if let Err(e) = self.discover(&stop).await {
                tracing::debug!(error = %e, "garbage collector discovery failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(DISCOVERY_PERIOD) => {}
                _ = stop2.wait_for(|s| *s) => break,
            }
        }
        let _ = workers.await;
    }

    /// Starts a metadata watch for every type not watched yet.
    async fn discover(self: &Arc<Self>, stop: &watch::Receiver<bool>) -> Result<(), kube::Error> {
        let found = resources::deletable(&self.client).await?;
        for res in found {
            let idx = {
                let mut g = self.graph.write();
                let key = (res.ar.api_version.clone(), res.ar.kind.clone());
                if g.by_kind.contains_key(&key) {
                    continue;
                }
                let idx = g.types.len();
                g.types.push(res.clone());
                g.by_kind.insert(key, idx);
                g.unsynced.insert(idx);
                idx
            };
            let me = Arc::clone(self);
            let stop = stop.clone();
            tokio::spawn(async move { me.watch_type(idx, res.ar, stop).await });
        }
        Ok(())
    }

    async fn watch_type(
        self: Arc<Self>,
        idx: usize,
        ar: ApiResource,
        mut stop: watch::Receiver<bool>,
    ) {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listed: Option<HashSet<String>> = None;
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            let touched = match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, kind = %ar.kind, "garbage collector watch failed");
                    continue;
                }
                Some(Ok(Event::Init)) => {
                    listed = Some(HashSet::new());
                    continue;
                }
                Some(Ok(Event::InitApply(m))) => {
                    if let (Some(l), Some(uid)) = (listed.as_mut(), m.metadata.uid.clone()) {
                        l.insert(uid);
                    }
                    self.observe(idx, &m)
                }
                Some(Ok(Event::InitDone)) => {
                    // Objects of this type that vanished while we were not watching.
                    let keep = listed.take().unwrap_or_default();
                    let mut g = self.graph.write();
                    let gone: Vec<String> = g
                        .nodes
                        .iter()
                        .filter(|(uid, n)| n.res == idx && !keep.contains(*uid))
                        .map(|(uid, _)| uid.clone())
                        .collect();
                    let mut touched = Vec::new();
                    for uid in gone {
                        touched.extend(g.remove(&uid));
                    }
                    let was_unsynced = g.unsynced.remove(&idx);
                    let all_synced = g.unsynced.is_empty();
                    drop(g);
                    if was_unsynced && all_synced {
                        // Everything is listed: look at every object once.
                        let uids: Vec<String> = self.graph.read().nodes.keys().cloned().collect();
                        touched.extend(uids);
                    }
                    touched
                }
                Some(Ok(Event::Apply(m))) => self.observe(idx, &m),
                Some(Ok(Event::Delete(m))) => match m.metadata.uid.as_deref() {
                    Some(uid) => self.graph.write().remove(uid),
                    None => Vec::new(),
                },
            };
            for uid in touched {
                self.queue.add(uid);
            }
        }
    }

    fn observe(&self, idx: usize, m: &PartialObjectMeta<DynamicObject>) -> Vec<String> {
        let meta = &m.metadata;
        let Some(uid) = meta.uid.clone() else {
            return Vec::new();
        };
        let node = Node {
            res: idx,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            rv: meta.resource_version.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        };
        self.graph.write().upsert(uid, node)
    }

    fn api_for(&self, res: &Res, namespace: Option<&str>) -> Api<DynamicObject> {
        match (res.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &res.ar),
            _ => Api::all_with(self.client.clone(), &res.ar),
        }
    }

    async fn sync(&self, uid: &str) -> Result<Next, kube::Error> {
        let (node, res, ready) = {
            let g = self.graph.read();
            let Some(node) = g.nodes.get(uid).cloned() else {
                return Ok(Next::Done);
            };
            let res = g.types[node.res].clone();
            (node, res, g.unsynced.is_empty())
        };
        if !ready {
            // Owners of types not listed yet would look missing; all come back at sync.
            return Ok(Next::Done);
        }
        if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
            return self.orphan_dependents(uid, &node, &res).await;
        }
        if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
            return self.delete_dependents(uid, &node, &res).await;
        }
        if node.owners.is_empty() {
            return Ok(Next::Done);
        }
        self.check_owners(uid, &node, &res).await
    }

    /// Whether the owner named by `r` exists (graph first, then a live read).
    async fn owner_state(
        &self,
        r: &OwnerReference,
        dependent_ns: Option<&str>,
    ) -> Result<OwnerState, kube::Error> {
        let (known, res) = {
            let g = self.graph.read();
            let known = g
                .nodes
                .get(&r.uid)
                .map(|n| n.deleting && n.finalizers.iter().any(|f| f == FOREGROUND));
            let res = g
                .by_kind
                .get(&(r.api_version.clone(), r.kind.clone()))
                .map(|i| g.types[*i].clone());
            (known, res)
        };
        if let Some(waiting) = known {
            return Ok(if waiting {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Present
            });
        }
        let Some(res) = res else {
            // A type the server does not serve (yet): not proof of absence.
            return Ok(OwnerState::Present);
        };
        let api = self.api_for(&res, if res.namespaced { dependent_ns } else { None });
        match api.get_metadata_opt(&r.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => Ok(OwnerState::Present),
            _ => Ok(OwnerState::Absent),
        }
    }

    async fn check_owners(&self, uid: &str, node: &Node, res: &Res) -> Result<Next, kube::Error> {
        let mut absent = Vec::new();
        let mut waiting = false;
        let mut present = 0;
        for r in &node.owners {
            match self.owner_state(r, node.namespace.as_deref()).await? {
                OwnerState::Absent => absent.push(r.uid.clone()),
                OwnerState::WaitingForDependents => waiting = true,
                OwnerState::Present => present += 1,
            }
        }
        let api = self.api_for(res, node.namespace.as_deref());
        if absent.is_empty() {
            return Ok(Next::Done);
        }
        if present > 0 || waiting {
            // Keep the object for its live owners; drop the dangling references.
            let keep: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|r| !absent.contains(&r.uid))
                .collect();
            let patch = json!({"metadata": {"resourceVersion": node.rv, "ownerReferences": keep}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(kind = %res.ar.kind, name = %node.name, "removed references to deleted owners");
            return Ok(Next::Done);
        }
        tracing::info!(kind = %res.ar.kind, namespace = ?node.namespace, name = %node.name, "deleting an object whose owners are gone");
        delete(&api, &node.name, uid, "Background").await?;
        Ok(Next::Done)
    }

    fn dependents_of(&self, uid: &str) -> Vec<(String, Node, Res)> {
        let g = self.graph.read();
        g.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| {
                g.nodes
                    .get(d)
                    .map(|n| (d.clone(), n.clone(), g.types[n.res].clone()))
            })
            .collect()
    }

    async fn orphan_dependents(
        &self,
        uid: &str,
        node: &Node,
        res: &Res,
    ) -> Result<Next, kube::Error> {
        for (duid, dep, dres) in self.dependents_of(uid) {
            // As Kubernetes' GC does: a strategic merge patch deleting just this owner's
            // reference (ownerReferences merge by uid), for this very object (its uid). No
            // resourceVersion: a dependent whose status changes all the time (a ReplicaSet
            // under its controller) would otherwise conflict again and again.
            let patch = json!({"metadata": {"uid": duid,
                "ownerReferences": [{"$patch": "delete", "uid": uid}]}});
            let api = self.api_for(&dres, dep.namespace.as_deref());
            match api
                .patch(
                    &dep.name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
            tracing::debug!(dependent = %duid, owner = %uid, "orphaned");
        }
        self.remove_finalizer(uid, node, res, ORPHAN).await?;
        Ok(Next::Done)
    }

    async fn delete_dependents(
        &self,
        uid: &str,
        node: &Node,
        res: &Res,
    ) -> Result<Next, kube::Error> {
        let deps = self.dependents_of(uid);
        let mut blocking = 0;
        for (duid, dep, dres) in &deps {
            let blocks = dep
                .owners
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if dep.deleting {
                continue;
            }
            let api = self.api_for(dres, dep.namespace.as_deref());
            delete(&api, &dep.name, duid, "Foreground").await?;
        }
        if blocking > 0 {
            // Dependents' deletions re-queue the owner as they finish.
            return Ok(Next::After(Duration::from_secs(5)));
        }
        self.remove_finalizer(uid, node, res, FOREGROUND).await?;
        Ok(Next::Done)
    }

    async fn remove_finalizer(
        &self,
        uid: &str,
        node: &Node,
        res: &Res,
        finalizer: &str,
    ) -> Result<(), kube::Error> {
        let keep: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {"resourceVersion": node.rv, "finalizers": keep}});
        let api = self.api_for(res, node.namespace.as_deref());
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(kind = %res.ar.kind, name = %node.name, uid, finalizer, "finalized");
                Ok(())
            }
            Err(e) if crate::error::is_code(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

enum OwnerState {
    Present,
    Absent,
    /// Being deleted in the foreground: its dependents go first.
    WaitingForDependents,
}

/// Deletes `name` if it still has `uid`; gone already is fine.
async fn delete(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    propagation: &str,
) -> Result<(), kube::Error> {
    let dp = DeleteParams {
        propagation_policy: Some(match propagation {
            "Foreground" => kube::api::PropagationPolicy::Foreground,
            _ => kube::api::PropagationPolicy::Background,
        }),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

impl Reconcile for GarbageCollector {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
