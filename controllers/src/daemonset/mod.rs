//! The DaemonSet controller: one pod per eligible node, applied from [`plan::plan`].
//!
//! Each pass over a daemon set:
//! 1. history ([`history`]): find or create the ControllerRevision of the current template
//!    (`<ds>-<hash>`), adopt/release revisions, drop duplicates;
//! 2. plan ([`plan`]) over the informers' nodes and pods: adopt/release pods, create pods on
//!    eligible nodes that lack one (placed by the scheduler through a required node affinity
//!    `matchFields metadata.name`), delete pods where they no longer belong, failed pods
//!    (with a per-node back-off) and duplicates, then the rolling update (maxUnavailable,
//!    maxSurge) or nothing for `OnDelete`;
//! 3. clean up revisions beyond `revisionHistoryLimit`, write the status.
//!
//! Like Kubernetes' controller it keeps "expectations": after asking for N creations and M
//! deletions it does not act again on that daemon set until the pod informer has seen them
//! (or five minutes passed); until then it only refreshes the status, without raising
//! `observedGeneration`. Nodes matter only through their labels and taints, so node status
//! heartbeats do not wake the controller.

pub mod eligibility;
pub mod history;
pub mod plan;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use crate::error::is_code;
use crate::events::{Kind, Recorder};
use crate::expectations::Expectations;
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, spawn_resync, Next, Queue, Reconcile};
use crate::replicaset::diff::{controller_ref, selector_matches, slow_start_batches};
use history::{Current, HASH_LABEL};
use plan::{Deletion, Input};

/// Periodic resync of every daemon set.
const RESYNC: Duration = Duration::from_secs(30);
/// Failed-pod back-off per (daemon set, node): 1 s doubling to 15 min (Kubernetes' values).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// How soon to look again after bumping the collision count.
const COLLISION_RETRY: Duration = Duration::from_secs(1);

/// One node's failed-pod back-off (client-go's `flowcontrol.Backoff` entry).
#[derive(Clone, Copy)]
struct Backoff {
    delay: Duration,
    last: Instant,
}

impl Backoff {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last) > 2 * BACKOFF_MAX
    }
}

pub struct DaemonSetController {
    client: Client,
    sets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    queue: Queue,
    expect: Expectations,
    /// Keyed by `<ds uid>/<node>`.
    backoff: Mutex<HashMap<String, Backoff>>,
    events: Recorder,
}

/// The key of the daemon set controlling an object, if any.
fn owner_key(meta: &ObjectMeta) -> Option<String> {
    let r = controller_ref(meta)?;
    if r.kind != "DaemonSet" {
        return None;
    }
    Some(format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        r.name
    ))
}

/// Whether a node changed in a way that can change where daemon pods belong.
fn node_changed(old: &Node, new: &Node) -> bool {
    let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
    old.metadata.labels != new.metadata.labels || taints(old) != taints(new)
}

impl DaemonSetController {
    pub fn new(client: Client, shared: &Shared) -> Arc<DaemonSetController> {
        let me = Arc::new(DaemonSetController {
            events: Recorder::new(client.clone(), "daemonset-controller"),
            client,
            sets: Informer::new(),
            pods: Arc::clone(&shared.pods),
            nodes: Arc::clone(&shared.nodes),
            revisions: Informer::new(),
            queue: Queue::new(),
            expect: Expectations::new(),
            backoff: Mutex::new(HashMap::new()),
        });
        let q = me.queue.clone();
        me.sets.on_change(move |c| match c {
            Change::Applied { new, .. } => q.add(key_of(new)),
            Change::Deleted(old) => q.add(key_of(old)),
        });
        let weak = Arc::downgrade(&me);
        me.pods.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            match c {
                Change::Applied { old, new } => {
                    let key = owner_key(&new.metadata);
                    if let Some(k) = &key {
                        if old.is_none() {
                            me.expect.observed(k, true);
                        }
                        // A pod marked for deletion counts as deleted (the kubelet may take
                        // its grace period to remove it).
                        let marked = new.metadata.deletion_timestamp.is_some()
                            && old.is_some_and(|o| o.metadata.deletion_timestamp.is_none());
                        if marked {
                            me.expect.observed(k, false);
                        }
                        me.queue.add(k.clone());
                    } else {
                        me.enqueue_matching(new);
                    }
                    if let Some(k) = old.and_then(|o| owner_key(&o.metadata)) {
                        if Some(&k) != key.as_ref() {
                            me.queue.add(k);
                        }
                    }
                }
                Change::Deleted(old) => {
                    if let Some(k) = owner_key(&old.metadata) {
                        if old.metadata.deletion_timestamp.is_none() {
                            me.expect.observed(&k, false);
                        }
                        me.queue.add(k);
                    }
                }
            }
        });
        let weak = Arc::downgrade(&me);
        me.nodes.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            let relevant = match c {
                Change::Applied { old: None, .. } | Change::Deleted(_) => true,
                Change::Applied {
                    old: Some(old),
                    new,
                } => node_changed(old, new),
            };
            if relevant {
                for k in me.sets.keys() {
                    me.queue.add(k);
                }
            }
        });
        let q = me.queue.clone();
        me.revisions.on_change(move |c| {
            let meta = match c {
                Change::Applied { new, .. } => &new.metadata,
                Change::Deleted(old) => &old.metadata,
            };
            if let Some(k) = owner_key(meta) {
                q.add(k);
            }
        });
        me
    }

    /// Queues every daemon set whose selector matches an orphan pod (it may be adopted).
    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for ds in self.sets.list_namespace(ns) {
            if let Some(spec) = &ds.spec {
                if selector_matches(&spec.selector, &labels) {
                    self.queue.add(key_of(&*ds));
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.sets.start_all(&self.client, &stop);
        self.pods.start_all(&self.client, &stop);
        self.nodes.start_all(&self.client, &stop);
        self.revisions.start_all(&self.client, &stop);
        self.sets.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        self.nodes.wait_synced(stop.clone()).await;
        self.revisions.wait_synced(stop.clone()).await;
        if *stop.borrow() {
            return;
        }
        let resync = {
            let me = Arc::clone(&self);
            spawn_resync(RESYNC, stop.clone(), move || {
                let now = Instant::now();
                me.backoff.lock().retain(|_, b| !b.expired(now));
                for k in me.sets.keys() {
                    me.queue.add(k);
                }
            })
        };
        let keys = self.sets.keys();
        run_workers(
            "daemonset",
            Arc::clone(&self),
            self.queue.clone(),
            4,
            keys,
            stop,
        )
        .await;
        resync.abort();
    }

    /// Per node, how long deleting another failed pod must still wait.
    fn backoff_snapshot(&self, uid: &str) -> HashMap<String, Duration> {
        let now = Instant::now();
        let prefix = format!("{uid}/");
        self.backoff
            .lock()
            .iter()
            .filter_map(|(k, b)| {
                let node = k.strip_prefix(&prefix)?;
                let elapsed = now.duration_since(b.last);
                (elapsed < b.delay).then(|| (node.to_string(), b.delay - elapsed))
            })
            .collect()
    }

    /// A failed pod was deleted on `node`: the next one waits twice as long.
    fn backoff_step(&self, uid: &str, node: &str) {
        let now = Instant::now();
        let mut map = self.backoff.lock();
        let e = map.entry(format!("{uid}/{node}")).or_insert(Backoff {
            delay: Duration::ZERO,
            last: now,
        });
        e.delay = if e.delay.is_zero() || e.expired(now) {
            BACKOFF_INITIAL
        } else {
            (e.delay * 2).min(BACKOFF_MAX)
        };
        e.last = now;
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(ds) = self.sets.get_key(key) else {
            self.expect.forget(key);
            return Ok(Next::Done);
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        if ds.metadata.deletion_timestamp.is_some() {
            // Its revisions may already be gone or orphaned: no status can be trusted.
            self.backoff
                .lock()
                .retain(|k, _| !k.starts_with(&format!("{uid}/")));
            return Ok(Next::Done);
        }
        let (ns, name) = split_key(key);
        let selector_empty = ds
            .spec
            .as_ref()
            .is_none_or(|s| crate::labels::is_empty(&s.selector));
        if selector_empty {
            self.events
                .record(
                    &*ds,
                    Kind::Warning,
                    "SelectingAll",
                    "This daemon set is selecting all pods. A non-empty selector is required.",
                )
                .await;
            return Ok(Next::Done);
        }

        let Some((hash, old)) = self.revision(&ds, ns).await? else {
            return Ok(Next::After(COLLISION_RETRY));
        };

        let pods = self.pods.list_namespace(ns);
        let nodes = self.nodes.list();
        let backoff = self.backoff_snapshot(&uid);
        let mut p = plan::plan(&Input {
            ds: &ds,
            nodes: &nodes,
            pods: &pods,
            hash: &hash,
            backoff: &backoff,
            now: jiff::Timestamp::now(),
        });
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for pod in &p.adopt {
            if let Some(cur) = self.pods.get(ns, pod) {
                set_controller(&pods_api, &cur.metadata, &ds, true).await?;
            }
        }
        for pod in &p.release {
            if let Some(cur) = self.pods.get(ns, pod) {
                set_controller(&pods_api, &cur.metadata, &ds, false).await?;
            }
        }

        let satisfied = self.expect.satisfied(key);
        let mut failure = None;
        if satisfied {
            for f in &p.failed {
                self.backoff_step(&uid, &f.node);
                let msg = format!(
                    "Found failed daemon pod {ns}/{} on node {}, will try to kill it",
                    f.pod, f.node
                );
                self.events
                    .record(&*ds, Kind::Warning, "FailedDaemonPod", &msg)
                    .await;
            }
            let expected_dels = p.delete.iter().filter(|d| d.expected).count();
            if !p.create.is_empty() || expected_dels > 0 {
                self.expect.expect(key, p.create.len(), expected_dels);
            }
            let created = self.create_pods(key, &ds, &pods_api, &p.create, &hash);
            let deleted = self.delete_pods(key, &ds, &pods_api, &p.delete);
            let (created, deleted) = tokio::join!(created, deleted);
            failure = created.err().or(deleted.err());
            if failure.is_none() {
                let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
                for rev in history::cleanup(&ds, &old, &p.live_hashes) {
                    match api.delete(&rev, &DeleteParams::default()).await {
                        Ok(_) => tracing::debug!(revision = %rev, "deleted an old revision"),
                        Err(e) if is_code(&e, 404) => {}
                        Err(e) => failure = Some(e),
                    }
                }
            }
        } else {
            // Not acting on a cache that lags our own writes; report, but not as having
            // seen this generation.
            p.status.observed_generation = ds.status.as_ref().and_then(|s| s.observed_generation);
        }

        let current = ds.status.clone().unwrap_or_default();
        if current != p.status {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
            let patch = json!({"status": p.status});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, 404) => {}
                Err(e) => return Err(failure.unwrap_or(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(match p.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }

    /// The current revision's hash and the old revisions, creating the current revision if
    /// needed; None after a hash collision (the collision count was bumped, try again).
    async fn revision(
        &self,
        ds: &DaemonSet,
        ns: &str,
    ) -> Result<Option<(String, Vec<history::Old>)>, kube::Error> {
        let revs = self.revisions.list_namespace(ns);
        let refs: Vec<&ControllerRevision> = revs.iter().map(|r| &**r).collect();
        let h = history::construct(ds, &refs);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for (names, adopt) in [(&h.adopt, true), (&h.release, false)] {
            for n in names {
                if let Some(cur) = self.revisions.get(ns, n) {
                    set_controller(&api, &cur.metadata, ds, adopt).await?;
                }
            }
        }
        match h.current {
            Current::Existing {
                name,
                hash,
                bump_to,
            } => {
                if let Some(r) = bump_to {
                    let patch = json!({"revision": r});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_code(&e, 404) => {}
                        Err(e) => return Err(e),
                    }
                }
                for (dup, dup_hash) in &h.duplicates {
                    self.move_pods_to_hash(ds, ns, dup_hash, &hash).await?;
                    match api.delete(dup, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if is_code(&e, 404) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Some((hash, h.old)))
            }
            Current::Create(rev) => {
                let name = rev.metadata.name.clone().unwrap_or_default();
                match api.create(&PostParams::default(), &rev).await {
                    Ok(created) => {
                        tracing::debug!(revision = %name, "created a revision");
                        Ok(Some((history::hash_of(&created), h.old)))
                    }
                    Err(e) if is_code(&e, 409) => {
                        // Ours, not yet in the informer? Or another template's (a collision).
                        let live = api.get(&name).await?;
                        if history::matches(ds, &live) {
                            return Ok(Some((history::hash_of(&live), h.old)));
                        }
                        self.bump_collision_count(ds, ns).await?;
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Kubernetes' collision handling: bump `status.collisionCount` (unless the one the
    /// hash was computed with is already stale), which changes the hash.
    async fn bump_collision_count(&self, ds: &DaemonSet, ns: &str) -> Result<(), kube::Error> {
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        let live = api.get(&ds.name_any()).await?;
        let count = |d: &DaemonSet| d.status.as_ref().and_then(|s| s.collision_count);
        if count(&live) != count(ds) {
            return Ok(());
        }
        let next = count(&live).unwrap_or(0).saturating_add(1);
        tracing::info!(daemonset = %ds.name_any(), collision_count = next, "revision hash collision");
        let patch = json!({
            "metadata": {"resourceVersion": live.metadata.resource_version},
            "status": {"collisionCount": next},
        });
        match api
            .patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) || is_code(&e, 409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Relabels the daemon set's pods of a duplicate revision with the kept one's hash.
    async fn move_pods_to_hash(
        &self,
        ds: &DaemonSet,
        ns: &str,
        from: &str,
        to: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let uid = ds.metadata.uid.as_deref().unwrap_or_default();
        for pod in self.pods.list_namespace(ns) {
            let owned = controller_ref(&pod.metadata).is_some_and(|r| r.uid == uid);
            let hash = pod.labels().get(HASH_LABEL).map(String::as_str);
            if !owned || hash != Some(from) {
                continue;
            }
            let patch = json!({"metadata": {"labels": {HASH_LABEL: to}}});
            match api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn create_pods(
        &self,
        key: &str,
        ds: &DaemonSet,
        api: &Api<Pod>,
        nodes: &[String],
        hash: &str,
    ) -> Result<(), kube::Error> {
        let mut done = 0usize;
        for batch in slow_start_batches(nodes.len()) {
            let chunk = &nodes[done..done + batch];
            let pp = PostParams::default();
            let pp = &pp;
            let results = join_all(chunk.iter().map(|node| {
                let pod = plan::pod_for_node(ds, node, hash);
                async move { api.create(pp, &pod).await }
            }))
            .await;
            done += batch;
            let mut failure = None;
            for r in results {
                match r {
                    Ok(p) => {
                        let msg = format!("Created pod: {}", p.name_any());
                        self.events
                            .record(ds, Kind::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    Err(e) => {
                        // A pod never made will never be observed.
                        self.expect.observed(key, true);
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                self.expect.lower(key, nodes.len() - done, 0);
                let msg = format!("Error creating: {e}");
                self.events
                    .record(ds, Kind::Warning, "FailedCreate", &msg)
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &str,
        ds: &DaemonSet,
        api: &Api<Pod>,
        deletions: &[Deletion],
    ) -> Result<(), kube::Error> {
        let results = join_all(deletions.iter().map(|d| {
            let mut dp = DeleteParams {
                preconditions: d.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if d.force {
                dp = dp.grace_period(0);
            }
            async move { (d, api.delete(&d.pod, &dp).await) }
        }))
        .await;
        let mut failure = None;
        for (d, r) in results {
            match r {
                Ok(_) => {
                    let msg = format!("Deleted pod: {}", d.pod);
                    self.events
                        .record(ds, Kind::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Err(e) => {
                    if d.expected {
                        self.expect.observed(key, false);
                    }
                    if is_code(&e, 404) || is_code(&e, 409) {
                        continue;
                    }
                    let msg = format!("Error deleting pod {}: {e}", d.pod);
                    self.events
                        .record(ds, Kind::Warning, "FailedDelete", &msg)
                        .await;
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Adds (adopt) or removes (release) the daemon set's controller ownerReference on an object,
/// guarded by its resourceVersion.
async fn set_controller<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    ds: &DaemonSet,
    adopt: bool,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let mut refs: Vec<OwnerReference> = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != uid);
    if adopt {
        refs.push(history::owner_ref(ds));
    }
    let name = meta.name.clone().unwrap_or_default();
    let patch =
        json!({"metadata": {"resourceVersion": meta.resource_version, "ownerReferences": refs}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone, or changed meanwhile (the next pass decides again).
        Err(e) if is_code(&e, 404) || is_code(&e, 409) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Reconcile for DaemonSetController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        let (ns, name) = split_key(key);
        let span = tracing::debug_span!("daemonset", namespace = ns, name);
        self.sync(key).instrument(span)
    }
}
