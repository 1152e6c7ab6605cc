//! The StatefulSet controller: applies [`plan::plan`] through the API.
//!
//! Pods get stable identities (`<set>-<ordinal>`, `hostname` = the pod's name, `subdomain` =
//! `spec.serviceName`, the `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//! and `controller-revision-hash` labels); `podManagementPolicy` OrderedReady and Parallel,
//! `updateStrategy` RollingUpdate (with `partition`) and OnDelete, ControllerRevision history
//! (`kubectl rollout history/status/undo statefulset/...`) with `revisionHistoryLimit`,
//! `minReadySeconds`, `spec.ordinals.start`, and adoption/release of orphans by selector.
//!
//! Not implemented: `volumeClaimTemplates` are ignored (no PersistentVolumeClaims are made and
//! no volumes are added to the pods: keelson has no volume machinery to bind them), and so is
//! `persistentVolumeClaimRetentionPolicy`; `rollingUpdate.maxUnavailable` (a Kubernetes alpha
//! feature) is ignored: updates go one pod at a time.
//!
//! Pod names are fixed, so the apiserver itself refuses a second pod of one name; on top of
//! that the controller keeps "expectations" like the ReplicaSet controller: after creating or
//! deleting pods it does not act on a set again until its pod cache shows those writes (or
//! five minutes passed), so a lagging cache never makes it create, delete or step a rollout
//! twice.

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::watch;

use crate::events::{Kind, Recorder};
use crate::expectations;
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, spawn_resync, Next, Queue, Reconcile};
use crate::replicaset::diff::{controller_ref, selector_matches, slow_start_batches};
use plan::{owner_ref, revision_template, DeleteReason, PodDelete, RevisionStep};

/// Periodic resync of every set.
const RESYNC: Duration = Duration::from_secs(30);

/// Writes of one set that its pod cache has not shown yet.
#[derive(Default)]
struct Pending {
    /// Names of pods created.
    creates: Vec<String>,
    /// (name, uid) of pods deleted.
    deletes: Vec<(String, String)>,
    since: Option<Instant>,
}

pub struct StatefulSetController {
    client: Client,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    queue: Queue,
    expect: Mutex<HashMap<String, Pending>>,
    events: Recorder,
}

/// The key of the stateful set controlling an object, if any.
fn owner_key(meta: &ObjectMeta) -> Option<String> {
    let r = controller_ref(meta)?;
    (r.kind == "StatefulSet" && r.api_version.starts_with("apps/")).then(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            r.name
        )
    })
}

impl StatefulSetController {
    pub fn new(client: Client, shared: &Shared) -> Arc<StatefulSetController> {
        let me = Arc::new(StatefulSetController {
            events: Recorder::new(client.clone(), "statefulset-controller"),
            client,
            sets: Informer::new(),
            pods: Arc::clone(&shared.pods),
            revisions: Informer::new(),
            queue: Queue::new(),
            expect: Mutex::new(HashMap::new()),
        });
        let q = me.queue.clone();
        me.sets.on_change(move |c| match c {
            Change::Applied { new, .. } => q.add(key_of(new)),
            Change::Deleted(old) => q.add(key_of(old)),
        });
        let weak = Arc::downgrade(&me);
        me.pods.on_change(move |c| {
            if let Some(me) = weak.upgrade() {
                match c {
                    Change::Applied { old, new } => {
                        me.enqueue_for(old.map(|o| &o.metadata), &new.metadata)
                    }
                    Change::Deleted(old) => me.enqueue_for(None, &old.metadata),
                }
            }
        });
        let weak = Arc::downgrade(&me);
        me.revisions.on_change(move |c| {
            if let Some(me) = weak.upgrade() {
                match c {
                    Change::Applied { old, new } => {
                        me.enqueue_for(old.map(|o| &o.metadata), &new.metadata)
                    }
                    Change::Deleted(old) => me.enqueue_for(None, &old.metadata),
                }
            }
        });
        me
    }

    /// Queues the set controlling an object (and the one that controlled its previous
    /// version), or, for an orphan, every set whose selector matches it.
    fn enqueue_for(&self, old: Option<&ObjectMeta>, new: &ObjectMeta) {
        let key = owner_key(new);
        match &key {
            Some(k) => self.queue.add(k.clone()),
            None => {
                let ns = new.namespace.as_deref().unwrap_or_default();
                let labels = new.labels.clone().unwrap_or_default();
                for s in self.sets.list_namespace(ns) {
                    if let Some(spec) = &s.spec {
                        if selector_matches(&spec.selector, &labels) {
                            self.queue.add(key_of(&*s));
                        }
                    }
                }
            }
        }
        if let Some(k) = old.and_then(owner_key) {
            if Some(&k) != key.as_ref() {
                self.queue.add(k);
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.sets.start_all(&self.client, &stop);
        self.pods.start_all(&self.client, &stop);
        self.revisions.start_all(&self.client, &stop);
        self.sets.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        self.revisions.wait_synced(stop.clone()).await;
        let resync = {
            let me = Arc::clone(&self);
            spawn_resync(RESYNC, stop.clone(), move || {
                for k in me.sets.keys() {
                    me.queue.add(k);
                }
            })
        };
        let keys = self.sets.keys();
        run_workers(
            "statefulset",
            Arc::clone(&self),
            self.queue.clone(),
            4,
            keys,
            stop,
        )
        .await;
        resync.abort();
    }

    /// Whether the pod cache shows every write still expected for `key` (dropping the ones
    /// it shows).
    fn expectations_met(&self, key: &str, ns: &str) -> bool {
        let mut all = self.expect.lock();
        let Some(p) = all.get_mut(key) else {
            return true;
        };
        if p.since.is_some_and(|s| s.elapsed() > expectations::TIMEOUT) {
            tracing::warn!(
                statefulset = key,
                "expected pod changes never showed up; going on"
            );
            all.remove(key);
            return true;
        }
        p.creates.retain(|n| self.pods.get(ns, n).is_none());
        p.deletes.retain(|(n, uid)| {
            self.pods.get(ns, n).is_some_and(|pod| {
                pod.metadata.uid.as_deref() == Some(uid.as_str())
                    && pod.metadata.deletion_timestamp.is_none()
            })
        });
        let met = p.creates.is_empty() && p.deletes.is_empty();
        if met {
            all.remove(key);
        }
        met
    }

    fn expect(&self, key: &str, creates: Vec<String>, deletes: Vec<(String, String)>) {
        let mut all = self.expect.lock();
        let p = all.entry(key.to_string()).or_default();
        p.creates.extend(creates);
        p.deletes.extend(deletes);
        p.since = Some(Instant::now());
    }

    fn unexpect_create(&self, key: &str, name: &str) {
        if let Some(p) = self.expect.lock().get_mut(key) {
            p.creates.retain(|n| n != name);
        }
    }

    fn unexpect_delete(&self, key: &str, name: &str) {
        if let Some(p) = self.expect.lock().get_mut(key) {
            p.deletes.retain(|(n, _)| n != name);
        }
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(sts) = self.sets.get_key(key) else {
            self.expect.lock().remove(key);
            return Ok(Next::Done);
        };
        let (ns, name) = split_key(key);
        let prefix = format!("{name}-");
        // Only members can be claimed; revisions are few.
        let pods: Vec<Pod> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .map(|p| (*p).clone())
            .collect();
        let revisions: Vec<ControllerRevision> = self
            .revisions
            .list_namespace(ns)
            .into_iter()
            .map(|r| (*r).clone())
            .collect();
        let p = plan::plan(&sts, &pods, &revisions, jiff::Timestamp::now());
        tracing::trace!(
            statefulset = key,
            creates = p.create.len(),
            deletes = p.delete.len(),
            revision = ?p.revision,
            "planned"
        );

        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let revs_api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for n in &p.adopt {
            let cur = self.pods.get(ns, n);
            set_owner(
                &pods_api,
                &sts,
                cur.as_deref().map(|c| &c.metadata),
                n,
                true,
            )
            .await?;
        }
        for n in &p.release {
            let cur = self.pods.get(ns, n);
            set_owner(
                &pods_api,
                &sts,
                cur.as_deref().map(|c| &c.metadata),
                n,
                false,
            )
            .await?;
        }
        for n in &p.adopt_revisions {
            let cur = self.revisions.get(ns, n);
            set_owner(
                &revs_api,
                &sts,
                cur.as_deref().map(|c| &c.metadata),
                n,
                true,
            )
            .await?;
        }
        for n in &p.release_revisions {
            let cur = self.revisions.get(ns, n);
            set_owner(
                &revs_api,
                &sts,
                cur.as_deref().map(|c| &c.metadata),
                n,
                false,
            )
            .await?;
        }

        // The update revision exists before any pod is made from it.
        match &p.revision {
            RevisionStep::None => {}
            RevisionStep::Collision => {
                tracing::info!(
                    statefulset = key,
                    "revision name collision; bumping collisionCount"
                );
                self.write_status(ns, name, &sts, &p.status).await?;
                return Ok(Next::Done);
            }
            RevisionStep::Renumber {
                name: rev,
                revision,
            } => {
                let patch = json!({"revision": revision});
                revs_api
                    .patch(rev, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            RevisionStep::Create(rev) => {
                if !self.create_revision(&revs_api, &sts, rev).await? {
                    let mut status = sts.status.clone().unwrap_or_default();
                    status.collision_count =
                        Some(status.collision_count.unwrap_or(0).saturating_add(1));
                    self.write_status(ns, name, &sts, &status).await?;
                    return Ok(Next::Done);
                }
            }
        }

        let has_work = !p.create.is_empty() || !p.delete.is_empty() || !p.relabel.is_empty();
        if has_work && self.expectations_met(key, ns) {
            self.delete_pods(key, &sts, &pods_api, &p.delete).await?;
            self.create_pods(key, &sts, &pods_api, &p.create).await?;
            for (pod, labels) in &p.relabel {
                self.relabel(&sts, &pods_api, pod, labels).await?;
            }
        }

        for rev in &p.prune {
            match revs_api.delete(rev, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if crate::error::is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }

        self.write_status(ns, name, &sts, &p.status).await?;
        Ok(match p.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }

    async fn write_status(
        &self,
        ns: &str,
        name: &str,
        sts: &StatefulSet,
        status: &StatefulSetStatus,
    ) -> Result<(), kube::Error> {
        if sts.status.as_ref() == Some(status) {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({"status": status});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if crate::error::is_code(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the update revision. `Ok(false)` when its name is held by something that is
    /// not an equal revision of this set (a hash collision).
    async fn create_revision(
        &self,
        api: &Api<ControllerRevision>,
        sts: &StatefulSet,
        rev: &ControllerRevision,
    ) -> Result<bool, kube::Error> {
        match api.create(&PostParams::default(), rev).await {
            Ok(_) => Ok(true),
            Err(e) if crate::error::is_code(&e, 409) => {
                // Our cache may lag our own earlier create: is it the same revision?
                let name = rev.metadata.name.as_deref().unwrap_or_default();
                let existing = api.get(name).await?;
                let ours = controller_ref(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == sts.metadata.uid.as_ref());
                let same = revision_template(&existing).is_some()
                    && revision_template(&existing) == revision_template(rev);
                Ok(ours && same)
            }
            Err(e) => Err(e),
        }
    }

    async fn create_pods(
        &self,
        key: &str,
        sts: &StatefulSet,
        api: &Api<Pod>,
        pods: &[Pod],
    ) -> Result<(), kube::Error> {
        if pods.is_empty() {
            return Ok(());
        }
        let set = sts.name_any();
        self.expect(key, pods.iter().map(|p| p.name_any()).collect(), Vec::new());
        let mut rest = pods;
        for batch in slow_start_batches(pods.len()) {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            rest = later;
            let pp = PostParams::default();
            let results = join_all(
                now.iter()
                    .map(|p| async { (p.name_any(), api.create(&pp, p).await) }),
            )
            .await;
            let mut failure = None;
            for (pod, r) in results {
                match r {
                    Ok(_) => {
                        let msg = format!("create Pod {pod} in StatefulSet {set} successful");
                        self.events
                            .record(sts, Kind::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    // Already there (the cache will show it).
                    Err(e) if crate::error::is_code(&e, 409) => {}
                    Err(e) => {
                        self.unexpect_create(key, &pod);
                        let msg =
                            format!("create Pod {pod} in StatefulSet {set} failed error: {e}");
                        self.events
                            .record(sts, Kind::Warning, "FailedCreate", &msg)
                            .await;
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                // Pods never asked for will never show up.
                for p in rest {
                    self.unexpect_create(key, &p.name_any());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &str,
        sts: &StatefulSet,
        api: &Api<Pod>,
        victims: &[PodDelete],
    ) -> Result<(), kube::Error> {
        if victims.is_empty() {
            return Ok(());
        }
        let set = sts.name_any();
        self.expect(
            key,
            Vec::new(),
            victims
                .iter()
                .filter_map(|d| Some((d.name.clone(), d.uid.clone()?)))
                .collect(),
        );
        let results = join_all(victims.iter().map(|d| {
            let dp = DeleteParams {
                preconditions: d.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            async move { (d, api.delete(&d.name, &dp).await) }
        }))
        .await;
        let mut failure = None;
        for (d, r) in results {
            let pod = &d.name;
            match r {
                Ok(_) => {
                    let why = match d.reason {
                        DeleteReason::Finished => "it finished",
                        DeleteReason::ScaleDown => "scale down",
                        DeleteReason::Update => "update",
                    };
                    tracing::debug!(statefulset = key, pod, why, "deleted pod");
                    let msg = format!("delete Pod {pod} in StatefulSet {set} successful");
                    self.events
                        .record(sts, Kind::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                // Gone already, or replaced by another pod of that name.
                Err(e) if crate::error::is_code(&e, 404) || crate::error::is_code(&e, 409) => {}
                Err(e) => {
                    self.unexpect_delete(key, pod);
                    let msg = format!("delete Pod {pod} in StatefulSet {set} failed error: {e}");
                    self.events
                        .record(sts, Kind::Warning, "FailedDelete", &msg)
                        .await;
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    async fn relabel(
        &self,
        sts: &StatefulSet,
        api: &Api<Pod>,
        pod: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"labels": labels}});
        let set = sts.name_any();
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                let msg = format!("update Pod {pod} in StatefulSet {set} successful");
                self.events
                    .record(sts, Kind::Normal, "SuccessfulUpdate", &msg)
                    .await;
                Ok(())
            }
            Err(e) if crate::error::is_code(&e, 404) => Ok(()),
            Err(e) => {
                let msg = format!("update Pod {pod} in StatefulSet {set} failed error: {e}");
                self.events
                    .record(sts, Kind::Warning, "FailedUpdate", &msg)
                    .await;
                Err(e)
            }
        }
    }
}

/// Adds (adopt) or removes (release) the set's controller ownerReference on an object,
/// guarded by the cached resourceVersion.
async fn set_owner<K>(
    api: &Api<K>,
    sts: &StatefulSet,
    cur: Option<&ObjectMeta>,
    name: &str,
    adopt: bool,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(cur) = cur else { return Ok(()) };
    let uid = sts.metadata.uid.clone().unwrap_or_default();
    let mut refs: Vec<OwnerReference> = cur.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != uid);
    if adopt {
        refs.push(owner_ref(sts));
    }
    let patch =
        json!({"metadata": {"resourceVersion": cur.resource_version, "ownerReferences": refs}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::error::is_code(&e, 404) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Reconcile for StatefulSetController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
