//! The Job controller: applies [`plan::job_plan`] through the API.
//!
//! Like the ReplicaSet controller it keeps "expectations": after asking for pod creations or
//! deletions it does not plan again for that job until the pod informer has seen them (or
//! five minutes passed), so a cache that lags behind the controller's own writes never makes
//! it create a pod twice or decide an outcome from pods it does not see yet.
//!
//! It also does the TTL-after-finished controller's work: a finished job whose
//! `ttlSecondsAfterFinished` ran out is deleted (propagation Background, so the garbage
//! collector removes its pods), after re-reading it from the apiserver.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::error::is_code;
use crate::events::{Kind, Recorder};
use crate::expectations::Expectations;
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, spawn_resync, Next, Queue, Reconcile};
use crate::replicaset::diff::{controller_ref, selector_matches, slow_start_batches};
use plan::{effective_selector, job_plan, pod_from_template, Plan};

/// Periodic resync of every job.
const RESYNC: Duration = Duration::from_secs(30);
/// Retry after a TTL deletion lost a race with an update.
const TTL_RETRY: Duration = Duration::from_secs(1);

pub struct JobController {
    client: Client,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    queue: Queue,
    expect: Expectations,
    events: Recorder,
}

/// The key of the job controlling `pod`, if any.
fn owner_key(pod: &Pod) -> Option<String> {
    let r = controller_ref(&pod.metadata)?;
    if r.kind != "Job" || !r.api_version.starts_with("batch/") {
        return None;
    }
    Some(format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        r.name
    ))
}

impl JobController {
    pub fn new(client: Client, shared: &Shared) -> Arc<JobController> {
        let me = Arc::new(JobController {
            events: Recorder::new(client.clone(), "job-controller"),
            client,
            jobs: Informer::new(),
            pods: Arc::clone(&shared.pods),
            queue: Queue::new(),
            expect: Expectations::new(),
        });
        let q = me.queue.clone();
        me.jobs.on_change(move |c| match c {
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
                        let marked = new.metadata.deletion_timestamp.is_some()
                            && old.is_some_and(|o| o.metadata.deletion_timestamp.is_none());
                        if marked {
                            me.expect.observed(&k, false);
                        }
                        me.queue.add(k);
                    } else {
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

    /// An orphan pod: any unfinished job whose selector matches may adopt it.
    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for job in self.jobs.list_namespace(ns) {
            if !plan::is_finished(&job) && selector_matches(&effective_selector(&job), &labels) {
                self.queue.add(key_of(&*job));
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.jobs.start_all(&self.client, &stop);
        self.pods.start_all(&self.client, &stop);
        self.jobs.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        let resync = {
            let me = Arc::clone(&self);
            spawn_resync(RESYNC, stop.clone(), move || {
                for k in me.jobs.keys() {
                    me.queue.add(k);
                }
            })
        };
        let keys = self.jobs.keys();
        run_workers("job", Arc::clone(&self), self.queue.clone(), 4, keys, stop).await;
        resync.abort();
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(job) = self.jobs.get_key(key) else {
            self.expect.forget(key);
            return Ok(Next::Done);
        };
        // The pod informer will requeue the job when it has seen our last writes.
        if !self.expect.satisfied(key) {
            return Ok(Next::Done);
        }
        let (ns, name) = split_key(key);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let selector = effective_selector(&job);
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
        let plan = job_plan(&job, &pods, jiff::Timestamp::now());
        if plan.delete_job {
            return self.delete_expired(ns, name).await;
        }
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for p in &plan.adopt {
            self.set_owner(&pods_api, &job, p, true).await?;
        }
        for p in &plan.release {
            self.set_owner(&pods_api, &job, p, false).await?;
        }
        if !plan.create.is_empty() {
            self.create_pods(key, &job, &pods_api, &plan.create).await?;
        }
        if !plan.delete.is_empty() {
            self.delete_pods(key, &job, &pods_api, &pods, &plan.delete)
                .await?;
        }
        if !self.write_status(ns, name, &job, &plan).await? {
            // Stale: the job's update event brings it back.
            return Ok(Next::Done);
        }
        for n in &plan.notes {
            let kind = if n.warning {
                Kind::Warning
            } else {
                Kind::Normal
            };
            self.events.record(&*job, kind, n.reason, &n.message).await;
        }
        Ok(match plan.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }

    /// Writes the planned status if it changed; false if the job changed meanwhile (or went).
    async fn write_status(
        &self,
        ns: &str,
        name: &str,
        job: &Job,
        plan: &Plan,
    ) -> Result<bool, kube::Error> {
        if job.status.clone().unwrap_or_default() == plan.status {
            return Ok(true);
        }
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let mut updated = job.clone();
        updated.status = Some(plan.status.clone());
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, 404) || is_code(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a finished job whose TTL ran out, checking a fresh copy first (its TTL may
    /// have been changed since the cache saw it).
    async fn delete_expired(&self, ns: &str, name: &str) -> Result<Next, kube::Error> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let fresh = match api.get(name).await {
            Ok(j) => j,
            Err(e) if is_code(&e, 404) => return Ok(Next::Done),
            Err(e) => return Err(e),
        };
        let again = job_plan(&fresh, &[], jiff::Timestamp::now());
        if !again.delete_job {
            return Ok(again.requeue_after.map_or(Next::Done, Next::After));
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: fresh.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {
                tracing::info!(
                    namespace = ns,
                    job = name,
                    "deleted finished job after its TTL"
                );
                Ok(Next::Done)
            }
            Err(e) if is_code(&e, 404) => Ok(Next::Done),
            Err(e) if is_code(&e, 409) => Ok(Next::After(TTL_RETRY)),
            Err(e) => Err(e),
        }
    }

    async fn set_owner(
        &self,
        api: &Api<Pod>,
        job: &Job,
        pod: &str,
        adopt: bool,
    ) -> Result<(), kube::Error> {
        let Some(cur) = self
            .pods
            .get(job.metadata.namespace.as_deref().unwrap_or_default(), pod)
        else {
            return Ok(());
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let mut refs: Vec<OwnerReference> =
            cur.metadata.owner_references.clone().unwrap_or_default();
        refs.retain(|r| r.uid != uid);
        if adopt {
            refs.push(OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: job.name_any(),
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
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_pods(
        &self,
        key: &str,
        job: &Job,
        api: &Api<Pod>,
        indexes: &[Option<i32>],
    ) -> Result<(), kube::Error> {
        let n = indexes.len();
        self.expect.expect(key, n, 0);
        let mut created = 0usize;
        let mut next = 0usize;
        for batch in slow_start_batches(n) {
            let pp = PostParams::default();
            let pods: Vec<Pod> = indexes[next..next + batch]
                .iter()
                .map(|i| pod_from_template(job, *i))
                .collect();
            next += batch;
            let results = join_all(pods.iter().map(|p| api.create(&pp, p))).await;
            let mut failure = None;
            for r in results {
                match r {
                    Ok(p) => {
                        created += 1;
                        let msg = format!("Created pod: {}", p.name_any());
                        self.events
                            .record(job, Kind::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                // Pods never created will never be observed.
                self.expect.lower(key, n - created, 0);
                let msg = format!("Error creating: {e}");
                self.events
                    .record(job, Kind::Warning, "FailedCreate", &msg)
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &str,
        job: &Job,
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
        let mut failure = None;
        for (n, r) in results {
            match r {
                Ok(_) => {
                    let msg = format!("Deleted pod: {n}");
                    self.events
                        .record(job, Kind::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Err(e) => {
                    self.expect.lower(key, 0, 1);
                    if !(is_code(&e, 404) || is_code(&e, 409)) {
                        let msg = format!("Error deleting: {e}");
                        self.events
                            .record(job, Kind::Warning, "FailedDelete", &msg)
                            .await;
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Reconcile for JobController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
