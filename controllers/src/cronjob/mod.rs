//! The CronJob controller: applies [`plan::cronjob_plan`] through the API, and looks again
//! at each cron job exactly at its next schedule time (`Next::After`).
//!
//! A job named in `status.active` that the job informer does not have (yet) is read from
//! the apiserver before it is dropped from the list, as Kubernetes does, so a lagging cache
//! does not make a running job look gone. Creating a job whose name exists already (the
//! status write after an earlier creation was lost) adopts the outcome if the job is ours.

pub mod plan;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, DeleteParams, PostParams, Preconditions, PropagationPolicy};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::error::is_code;
use crate::events::{Kind, Recorder};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::queue::{run_workers, spawn_resync, Next, Queue, Reconcile};
use crate::replicaset::diff::controller_ref;
use plan::{cronjob_plan, record_created};

/// Periodic resync of every cron job.
const RESYNC: Duration = Duration::from_secs(30);

pub struct CronJobController {
    client: Client,
    cronjobs: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    queue: Queue,
    events: Recorder,
}

/// The key of the cron job controlling `job`, if any.
fn owner_key(job: &Job) -> Option<String> {
    let r = controller_ref(&job.metadata)?;
    if r.kind != "CronJob" || !r.api_version.starts_with("batch/") {
        return None;
    }
    Some(format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or_default(),
        r.name
    ))
}

impl CronJobController {
    pub fn new(client: Client) -> Arc<CronJobController> {
        let me = Arc::new(CronJobController {
            events: Recorder::new(client.clone(), "cronjob-controller"),
            client,
            cronjobs: Informer::new(),
            jobs: Informer::new(),
            queue: Queue::new(),
        });
        let q = me.queue.clone();
        me.cronjobs.on_change(move |c| match c {
            Change::Applied { new, .. } => q.add(key_of(new)),
            Change::Deleted(old) => q.add(key_of(old)),
        });
        let q = me.queue.clone();
        me.jobs.on_change(move |c| match c {
            Change::Applied { old, new } => {
                if let Some(k) = owner_key(new) {
                    q.add(k);
                }
                if let Some(k) = old.and_then(owner_key) {
                    q.add(k);
                }
            }
            Change::Deleted(old) => {
                if let Some(k) = owner_key(old) {
                    q.add(k);
                }
            }
        });
        me
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.cronjobs.start_all(&self.client, &stop);
        self.jobs.start_all(&self.client, &stop);
        self.cronjobs.wait_synced(stop.clone()).await;
        self.jobs.wait_synced(stop.clone()).await;
        let resync = {
            let me = Arc::clone(&self);
            spawn_resync(RESYNC, stop.clone(), move || {
                for k in me.cronjobs.keys() {
                    me.queue.add(k);
                }
            })
        };
        let keys = self.cronjobs.keys();
        run_workers(
            "cronjob",
            Arc::clone(&self),
            self.queue.clone(),
            2,
            keys,
            stop,
        )
        .await;
        resync.abort();
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(cj) = self.cronjobs.get_key(key) else {
            return Ok(Next::Done);
        };
        let (ns, name) = split_key(key);
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let mut jobs: Vec<Job> = self
            .jobs
            .list_namespace(ns)
            .into_iter()
            .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            .map(|j| (*j).clone())
            .collect();
        // Active jobs the cache does not have: gone, or not seen yet?
        let listed = cj
            .status
            .as_ref()
            .and_then(|s| s.active.clone())
            .unwrap_or_default();
        for r in listed {
            if jobs.iter().any(|j| j.metadata.uid == r.uid) {
                continue;
            }
            let Some(n) = r.name.as_deref() else { continue };
            match jobs_api.get(n).await {
                Ok(j) if j.metadata.uid == r.uid => jobs.push(j),
                Ok(_) => {}
                Err(e) if is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        let now = jiff::Timestamp::now();
        let plan = cronjob_plan(&cj, &jobs, now);
        let mut status = plan.status.clone();

        for d in &plan.delete {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: d.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match jobs_api.delete(&d.name, &dp).await {
                Ok(_) => {
                    let msg = format!("Deleted job {}", d.name);
                    self.events
                        .record(&*cj, Kind::Normal, "SuccessfulDelete", &msg)
                        .await;
                }
                Err(e) if is_code(&e, 404) || is_code(&e, 409) => {}
                Err(e) => {
                    let msg = format!("Error deleting job {}: {e}", d.name);
                    self.events
                        .record(&*cj, Kind::Warning, "FailedDelete", &msg)
                        .await;
                    return Err(e);
                }
            }
        }

        if let Some((job, scheduled)) = &plan.create {
            let job_name = job.name_any();
            match jobs_api.create(&PostParams::default(), job).await {
                Ok(created) => {
                    record_created(&mut status, &created, *scheduled);
                    let msg = format!("Created job {job_name}");
                    self.events
                        .record(&*cj, Kind::Normal, "SuccessfulCreate", &msg)
                        .await;
                }
                Err(e) if is_code(&e, 409) => match jobs_api.get(&job_name).await {
                    Ok(existing)
                        if controller_ref(&existing.metadata).is_some_and(|r| r.uid == uid) =>
                    {
                        record_created(&mut status, &existing, *scheduled);
                    }
                    Ok(_) => {
                        let msg = format!(
                            "Error creating job: a job named {job_name} that this cron job does \
                             not control exists"
                        );
                        self.events
                            .record(&*cj, Kind::Warning, "FailedCreate", &msg)
                            .await;
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    let msg = format!("Error creating job: {e}");
                    self.events
                        .record(&*cj, Kind::Warning, "FailedCreate", &msg)
                        .await;
                    return Err(e);
                }
            }
        }

        if cj.status.clone().unwrap_or_default() != status {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            let mut updated = (*cj).clone();
            updated.status = Some(status);
            match api
                .replace_status(name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                // Changed meanwhile (its update event brings it back) or gone.
                Err(e) if is_code(&e, 404) || is_code(&e, 409) => return Ok(Next::Done),
                Err(e) => return Err(e),
            }
        }
        for n in &plan.notes {
            let kind = if n.warning {
                Kind::Warning
            } else {
                Kind::Normal
            };
            self.events.record(&*cj, kind, n.reason, &n.message).await;
        }
        Ok(match plan.requeue_after {
            Some(after) => Next::After(after),
            None => Next::Done,
        })
    }
}

impl Reconcile for CronJobController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
