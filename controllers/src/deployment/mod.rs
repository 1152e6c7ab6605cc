//! The Deployment controller: applies [`plan::plan`] through the API. Each pass takes one
//! step of a rollout (create the new replica set, scale one side, clean up history); the
//! replica sets' status changes that follow bring the next pass.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::events::{Kind, Recorder};
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, Next, Queue, Reconcile};
use crate::replicaset::diff::{controller_ref, selector_matches};

/// How soon a deployment waiting for its replica sets' status looks again (their status
/// updates normally bring it back sooner).
const SETTLE_RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

pub struct DeploymentController {
    client: Client,
    deployments: Arc<Informer<Deployment>>,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    queue: Queue,
    events: Recorder,
}

/// The deployment controlling a replica set, as a key.
fn owner_key(rs: &ReplicaSet) -> Option<String> {
    let r = controller_ref(&rs.metadata)?;
    (r.kind == "Deployment").then(|| {
        format!(
            "{}/{}",
            rs.metadata.namespace.as_deref().unwrap_or_default(),
            r.name
        )
    })
}

impl DeploymentController {
    pub fn new(client: Client, shared: &Shared) -> Arc<DeploymentController> {
        let me = Arc::new(DeploymentController {
            events: Recorder::new(client.clone(), "deployment-controller"),
            client,
            deployments: Informer::new(),
            sets: Informer::new(),
            pods: Arc::clone(&shared.pods),
            queue: Queue::new(),
        });
        let q = me.queue.clone();
        me.deployments.on_change(move |c| match c {
            Change::Applied { new, .. } => q.add(key_of(new)),
            Change::Deleted(old) => q.add(key_of(old)),
        });
        let weak = Arc::downgrade(&me);
        me.sets.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            let rs = match c {
                Change::Applied { new, .. } => new,
                Change::Deleted(old) => old,
            };
            match owner_key(rs) {
                Some(k) => me.queue.add(k),
                None => me.enqueue_matching(rs),
            }
        });
        // Recreate waits for the old pods to go: their deletion moves it on.
        let weak = Arc::downgrade(&me);
        me.pods.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            if let Change::Deleted(pod) = c {
                let Some(r) = controller_ref(&pod.metadata) else {
                    return;
                };
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                if let Some(rs) = me.sets.get(ns, &r.name) {
                    if let Some(k) = owner_key(&rs) {
                        me.queue.add(k);
                    }
                }
            }
        });
        me
    }

    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        for d in self.deployments.list_namespace(ns) {
            if let Some(spec) = &d.spec {
                if selector_matches(&spec.selector, &labels) {
                    self.queue.add(key_of(&*d));
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let c = &self.client;
        self.deployments.start_all(c, &stop);
        self.sets.start_all(c, &stop);
        self.pods.start_all(c, &stop);
        self.deployments.wait_synced(stop.clone()).await;
        self.sets.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        let keys = self.deployments.keys();
        run_workers(
            "deployment",
            Arc::clone(&self),
            self.queue.clone(),
            4,
            keys,
            stop,
        )
        .await;
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(d) = self.deployments.get_key(key) else {
            return Ok(Next::Done);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let (ns, name) = split_key(key);
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let sets: Vec<ReplicaSet> = self
            .sets
            .list_namespace(ns)
            .into_iter()
            .filter(|rs| controller_ref(&rs.metadata).is_some_and(|r| r.uid == uid))
            .map(|rs| (*rs).clone())
            .collect();
        // A replica set whose status has not caught up with its spec (a new generation not
        // yet observed, or pods it is deleting still counted) would make the rollout math
        // count availability twice and scale old sets down past maxUnavailable: wait for it
        // (its status update brings this deployment back).
        let settling = sets.iter().any(|rs| {
            let st = rs.status.as_ref();
            let observed = st.and_then(|s| s.observed_generation).unwrap_or(0);
            let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            observed < rs.metadata.generation.unwrap_or(0) || st.map_or(0, |s| s.replicas) > want
        });
        if settling {
            return Ok(Next::After(SETTLE_RECHECK));
        }
        let set_uids: Vec<&str> = sets
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let pods: Vec<Pod> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                controller_ref(&p.metadata).is_some_and(|r| set_uids.contains(&r.uid.as_str()))
            })
            .map(|p| (*p).clone())
            .collect();
        let p = plan::plan(&d, &sets, &pods, jiff::Timestamp::now());
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);

        if let Some(new) = &p.create {
            match rs_api.create(&PostParams::default(), new).await {
                Ok(created) => {
                    let msg = format!(
                        "Scaled up replica set {} to {}",
                        created.name_any(),
                        new.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                    );
                    self.events
                        .record(&*d, Kind::Normal, "ScalingReplicaSet", &msg)
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // A replica set of that name exists: ours (the cache is behind) or a hash
                    // collision, which a new collision count resolves.
                    let existing = rs_api.get(&new.name_any()).await?;
                    if plan::hash_collision(&d, &existing) {
                        let count = d
                            .status
                            .as_ref()
                            .and_then(|s| s.collision_count)
                            .unwrap_or(0)
                            + 1;
                        let patch = json!({"status": {"collisionCount": count}});
                        d_api
                            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                    }
                    return Ok(Next::After(std::time::Duration::from_millis(100)));
                }
                Err(e) => return Err(e),
            }
        }
        let annotations = plan::rs_annotations(&d);
        for (rs_name, replicas) in &p.scale {
            let Some(cur) = sets
                .iter()
                .find(|rs| rs.metadata.name.as_deref() == Some(rs_name))
            else {
                continue;
            };
            let from = cur.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let patch = json!({
                "metadata": {"resourceVersion": cur.metadata.resource_version, "annotations": annotations},
                "spec": {"replicas": replicas},
            });
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            if from != *replicas {
                let (verb, dir) = if *replicas > from {
                    ("up", "to")
                } else {
                    ("down", "to")
                };
                let msg =
                    format!("Scaled {verb} replica set {rs_name} from {from} {dir} {replicas}");
                self.events
                    .record(&*d, Kind::Normal, "ScalingReplicaSet", &msg)
                    .await;
            }
        }
        if let Some((rs_name, secs)) = &p.rs_min_ready_seconds {
            let patch = json!({"spec": {"minReadySeconds": secs}});
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        for (rs_name, ann) in &p.annotate {
            let patch = json!({"metadata": {"annotations": ann}});
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        for rs_name in &p.delete {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match rs_api.delete(rs_name, &dp).await {
                Ok(_) => {}
                Err(e) if crate::error::is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        let have: BTreeMap<String, String> = d.metadata.annotations.clone().unwrap_or_default();
        if p.deployment_annotations
            .iter()
            .any(|(k, v)| have.get(k) != Some(v))
        {
            let patch = json!({"metadata": {"annotations": p.deployment_annotations}});
            d_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        if d.status.as_ref() != Some(&p.status) {
            let patch = json!({"status": p.status});
            d_api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(match p.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }
}

impl Reconcile for DeploymentController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
