//! The ReplicaSet controller: applies [`diff::replicaset_diff`] through the API.
//!
//! Like Kubernetes' controller it keeps "expectations": after asking for N creations (or
//! deletions) it does not plan again for that replica set until the pod informer has seen
//! them (or five minutes passed), because a plan made from a cache that has not caught up
//! with its own writes would create the same pods twice.

pub mod diff;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::events::{Kind, Recorder};
use crate::expectations::Expectations;
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, spawn_resync, Next, Queue, Reconcile};
use diff::{controller_ref, replicaset_diff, selector_matches, slow_start_batches};

/// Periodic resync of every replica set.
const RESYNC: Duration = Duration::from_secs(30);

pub struct ReplicaSetController {
    client: Client,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    queue: Queue,
    expect: Expectations,
    events: Recorder,
}

/// The key of the replica set controlling `pod`, if any.
fn owner_key(pod: &Pod) -> Option<String> {
    let r = controller_ref(&pod.metadata)?;
    if r.kind != "ReplicaSet" {
        return None;
    }
    Some(format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        r.name
    ))
}

impl ReplicaSetController {
    pub fn new(client: Client, shared: &Shared) -> Arc<ReplicaSetController> {
        let me = Arc::new(ReplicaSetController {
            events: Recorder::new(client.clone(), "replicaset-controller"),
            client,
            sets: Informer::new(),
            pods: Arc::clone(&shared.pods),
            queue: Queue::new(),
            expect: Expectations::new(),
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
                    if let Some(k) = owner_key(new) {
                        if old.is_none() {
                            me.expect.observed(&k, true);
                        }
                        // A pod marked for deletion counts as deleted (the kubelet may take
                        // its grace period to remove it).
                        let marked = new.metadata.deletion_timestamp.is_some()
                            && old.is_some_and(|o| o.metadata.deletion_timestamp.is_none());
                        if marked {
                            me.expect.observed(&k, false);
                        }
                        me.queue.add(k);
                    } else {
                        // An orphan: any replica set whose selector matches may adopt it.
                        me.enqueue_matching(new);
                    }
                    if let Some(k) = old.and_then(owner_key) {
                        if Some(&k) != owner_key(new).as_ref() {
                            me.queue.add(k);
                        }
                    }
                }
                Change::Deleted(old) => {
                    if let Some(k) = owner_key(old) {
                        if old.metadata.deletion_timestamp.is_none() {
                            me.expect.observed(&k, false);
                        }
                        me.queue.add(k);
                    }
                }
            }
        });
        me
    }

    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for rs in self.sets.list_namespace(ns) {
            if let Some(spec) = &rs.spec {
                if selector_matches(&spec.selector, &labels) {
                    self.queue.add(key_of(&*rs));
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.sets.start_all(&self.client, &stop);
        self.pods.start_all(&self.client, &stop);
        self.sets.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
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
            "replicaset",
            Arc::clone(&self),
            self.queue.clone(),
            4,
            keys,
            stop,
        )
        .await;
        resync.abort();
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(rs) = self.sets.get_key(key) else {
            self.expect.forget(key);
            return Ok(Next::Done);
        };
        let (ns, name) = split_key(key);
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let selector = rs
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        // Only the pods this replica set owns or could adopt.
        let pods: Vec<Pod> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| match controller_ref(&p.metadata) {
                Some(r) => r.uid == uid,
                None => selector_matches(
                    &selector,
                    p.metadata.labels.as_ref().unwrap_or(&Default::default()),
                ),
            })
            .map(|p| (*p).clone())
            .collect();
        let d = replicaset_diff(&rs, &pods, jiff::Timestamp::now());
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for p in &d.adopt {
            self.set_owner(&pods_api, &rs, p, true).await?;
        }
        for p in &d.release {
            self.set_owner(&pods_api, &rs, p, false).await?;
        }
        let satisfied = self.expect.satisfied(key);
        if satisfied && d.create > 0 {
            self.create_pods(key, &rs, &pods_api, d.create).await?;
        } else if satisfied && !d.delete.is_empty() {
            self.delete_pods(key, &rs, &pods_api, &pods, &d.delete)
                .await?;
        }
        let current = rs.status.clone().unwrap_or_default();
        if current != d.status {
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            let patch = json!({"status": d.status});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if crate::error::is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(match d.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }

    async fn set_owner(
        &self,
        api: &Api<Pod>,
        rs: &ReplicaSet,
        pod: &str,
        adopt: bool,
    ) -> Result<(), kube::Error> {
        let Some(cur) = self
            .pods
            .get(rs.metadata.namespace.as_deref().unwrap_or_default(), pod)
        else {
            return Ok(());
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut refs: Vec<OwnerReference> =
            cur.metadata.owner_references.clone().unwrap_or_default();
        refs.retain(|r| r.uid != uid);
        if adopt {
            refs.push(OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: rs.name_any(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            });
        }
        let patch = json!({"metadata": {"resourceVersion": cur.metadata.resource_version, "ownerReferences": refs}});
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if crate::error::is_code(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_pods(
        &self,
        key: &str,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        n: usize,
    ) -> Result<(), kube::Error> {
        self.expect.expect(key, n, 0);
        let template = diff::pod_from_template(rs);
        let mut created = 0usize;
        for batch in slow_start_batches(n) {
            let pp = PostParams::default();
            let results = join_all((0..batch).map(|_| api.create(&pp, &template))).await;
            let mut failure = None;
            for r in results {
                match r {
                    Ok(p) => {
                        created += 1;
                        let msg = format!("Created pod: {}", p.name_any());
                        self.events
                            .record(rs, Kind::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                // Pods never asked for will never be observed.
                self.expect.lower(key, n - created, 0);
                let msg = format!("Error creating: {e}");
                self.events
                    .record(rs, Kind::Warning, "FailedCreate", &msg)
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &str,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        pods: &[Pod],
        names: &[String],
    ) -> Result<(), kube::Error> {
        self.expect.expect(key, 0, names.len());
        let uid_of = |n: &str| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(n))
                .and_then(|p| p.metadata.uid.clone())
        };
        let results = join_all(names.iter().map(|n| {
            let dp = DeleteParams {
                preconditions: uid_of(n).map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            async move { (n, api.delete(n, &dp).await) }
        }))
        .await;
        for (n, r) in results {
            match r {
                Ok(_) => {
                    let msg = format!("Deleted pod: {n}");
                    self.events
                        .record(rs, Kind::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    self.expect.lower(key, 0, 1);
                }
                Err(e) => {
                    self.expect.lower(key, 0, 1);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Reconcile for ReplicaSetController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
