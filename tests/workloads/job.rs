//! Jobs and CronJobs on fake nodes: completions with bounded parallelism, the back-off limit,
//! the active deadline, the TTL after finishing, and a cron job firing on the minute.
//!
//! The kubelet stand-in runs a pod annotated with `harness::EXIT_CODE` to completion at once;
//! pods without it run forever (Running and Ready).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt as _;
use kube::{Client, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use crate::common::server::KeelsonServer;
use crate::harness::*;

/// The pod template of a test job: one container; `exit` makes it run to completion.
fn template(exit: Option<i32>) -> serde_json::Value {
    let annotations = match exit {
        Some(code) => json!({ EXIT_CODE: code.to_string() }),
        None => json!({}),
    };
    json!({
        "metadata": {"annotations": annotations, "labels": {"app": "batch-test"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.invalid/batch:1"}],
        },
    })
}

fn job(name: &str, spec: serde_json::Value, exit: Option<i32>) -> Job {
    let mut spec = spec;
    spec["template"] = template(exit);
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("job")
}

/// A server with two Ready fake nodes and the kubelet stand-in.
async fn cluster(s: &KeelsonServer) -> (Client, tokio::task::JoinHandle<()>) {
    let c = client(s).await;
    for n in ["node-a", "node-b"] {
        add_node(&c, n, "8", &[]).await;
    }
    let kubelet = fake_kubelet(c.clone(), alive(&["node-a", "node-b"]));
    (c, kubelet)
}

fn condition(j: &Job, type_: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn job_pods(pods: &Api<Pod>, job: &str) -> Option<Vec<Pod>> {
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    Some(pods.list(&lp).await.ok()?.items)
}

async fn has_event(c: &Client, object: &str, reason: &str) -> bool {
    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
    events
        .list(&lp)
        .await
        .is_ok_and(|l| l.items.iter().any(|e| e.reason.as_deref() == Some(reason)))
}

#[test]
fn job_completes_with_at_most_parallelism_pods_active() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");

        // Watch the job's pods from before it exists: the most active at once.
        let max_active = Arc::new(Mutex::new(None::<usize>));
        let watch_task = {
            let max_active = Arc::clone(&max_active);
            let api = pods.clone();
            tokio::spawn(async move {
                let cfg = watcher::Config::default().labels("batch.kubernetes.io/job-name=five");
                let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
                let mut active: HashMap<String, bool> = HashMap::new();
                let mut synced = false;
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                            let running = p.metadata.deletion_timestamp.is_none()
                                && !matches!(phase(&p), "Succeeded" | "Failed");
                            active.insert(p.name_any(), running);
                        }
                        Ok(watcher::Event::Delete(p)) => {
                            active.remove(&p.name_any());
                        }
                        Ok(watcher::Event::InitDone) => synced = true,
                        _ => {}
                    }
                    if synced {
                        let n = active.values().filter(|a| **a).count();
                        let mut m = max_active.lock();
                        *m = Some(m.unwrap_or(0).max(n));
                    }
                }
            })
        };
        eventually(
            &s,
            "the pod watch has listed",
            Duration::from_secs(10),
            || async { max_active.lock().is_some().then_some(()) },
        )
        .await;

        let j = job("five", json!({"completions": 5, "parallelism": 2}), Some(0));
        jobs.create(&PostParams::default(), &j)
            .await
            .expect("create job");
        let done = eventually(&s, "five Complete", Duration::from_secs(60), || async {
            let j = jobs.get("five").await.ok()?;
            condition(&j, "Complete").map(|_| j)
        })
        .await;
        let st = done.status.clone().expect("status");
        assert_eq!(st.succeeded, Some(5), "{st:?}");
        assert_eq!(st.failed, None, "{st:?}");
        assert_eq!(st.active, None, "{st:?}");
        assert!(
            st.start_time.is_some() && st.completion_time.is_some(),
            "{st:?}"
        );
        assert_eq!(
            condition(&done, "Complete").map(|c| c.0).as_deref(),
            Some("CompletionsReached")
        );
        let listed = job_pods(&pods, "five").await.expect("pods");
        assert_eq!(listed.len(), 5, "exactly 5 pods, all kept");
        assert!(listed.iter().all(|p| phase(p) == "Succeeded"));
        for p in &listed {
            let r = p.owner_references();
            assert!(
                r.iter().any(|r| r.kind == "Job"
                    && r.name == "five"
                    && r.controller == Some(true)
                    && Some(&r.uid) == done.metadata.uid.as_ref()),
                "{r:?}"
            );
        }
        let most = max_active.lock().unwrap_or(0);
        assert!(
            (1..=2).contains(&most),
            "at most 2 active at once, saw {most}"
        );
        watch_task.abort();

        kubectl_ok(
            &s,
            &[
                "wait",
                "--for=condition=complete",
                "job/five",
                "--timeout=30s",
            ],
        );
        let table = kubectl_ok(&s, &["get", "jobs"]);
        let row = table
            .lines()
            .find(|l| l.starts_with("five "))
            .unwrap_or_default();
        assert!(row.contains("Complete") && row.contains("5/5"), "{table}");
        eventually(&s, "Completed event", Duration::from_secs(10), || async {
            has_event(&c, "five", "Completed").await.then_some(())
        })
        .await;
        assert!(has_event(&c, "five", "SuccessfulCreate").await);
        kubelet.abort();
    });
}

#[test]
fn indexed_job_runs_each_index_once() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let spec = json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"});
        jobs.create(&PostParams::default(), &job("idx", spec, Some(0)))
            .await
            .expect("create job");
        let done = eventually(&s, "idx Complete", Duration::from_secs(60), || async {
            let j = jobs.get("idx").await.ok()?;
            condition(&j, "Complete").map(|_| j)
        })
        .await;
        let st = done.status.clone().expect("status");
        assert_eq!(st.completed_indexes.as_deref(), Some("0-2"), "{st:?}");
        assert_eq!(st.succeeded, Some(3), "{st:?}");
        let listed = job_pods(&pods, "idx").await.expect("pods");
        let mut indexes: Vec<String> = listed
            .iter()
            .filter_map(|p| {
                p.annotations()
                    .get("batch.kubernetes.io/job-completion-index")
                    .cloned()
            })
            .collect();
        indexes.sort();
        assert_eq!(indexes, ["0", "1", "2"], "one pod per index");
        for p in &listed {
            let i = &p.annotations()["batch.kubernetes.io/job-completion-index"];
            let spec = p.spec.as_ref().expect("spec");
            assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
            assert!(
                p.name_any().starts_with(&format!("idx-{i}-")),
                "{}",
                p.name_any()
            );
        }
        kubelet.abort();
    });
}

#[test]
fn job_fails_after_its_backoff_limit() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let j = job("flaky", json!({"backoffLimit": 1}), Some(3));
        let start = Instant::now();
        jobs.create(&PostParams::default(), &j)
            .await
            .expect("create job");
        // The retry waits out the first back-off (10 s).
        let failed = eventually(&s, "flaky Failed", Duration::from_secs(60), || async {
            let j = jobs.get("flaky").await.ok()?;
            condition(&j, "Failed").map(|_| j)
        })
        .await;
        assert!(
            start.elapsed() >= Duration::from_secs(9),
            "the second pod waited for the back-off ({:?})",
            start.elapsed()
        );
        assert_eq!(
            condition(&failed, "Failed").map(|c| c.0).as_deref(),
            Some("BackoffLimitExceeded")
        );
        assert!(condition(&failed, "FailureTarget").is_some());
        assert!(condition(&failed, "Complete").is_none());
        let st = failed.status.clone().expect("status");
        assert_eq!(st.failed, Some(2), "{st:?}");
        assert_eq!(st.succeeded, None, "{st:?}");
        assert_eq!(
            st.completion_time, None,
            "a failed job has no completionTime"
        );
        let listed = job_pods(&pods, "flaky").await.expect("pods");
        assert_eq!(listed.len(), 2, "exactly 2 pods");
        assert!(listed.iter().all(|p| phase(p) == "Failed"));
        eventually(
            &s,
            "BackoffLimitExceeded event",
            Duration::from_secs(10),
            || async {
                has_event(&c, "flaky", "BackoffLimitExceeded")
                    .await
                    .then_some(())
            },
        )
        .await;
        let table = kubectl_ok(&s, &["get", "job", "flaky"]);
        assert!(table.contains("Failed") && table.contains("0/1"), "{table}");
        // Finished for good: a resync later there are still 2 pods.
        let again = jobs.get("flaky").await.expect("job");
        assert_eq!(again.status.and_then(|s| s.failed), Some(2));
        kubelet.abort();
    });
}

#[test]
fn job_past_its_active_deadline_fails_and_its_pod_is_deleted() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let j = job("forever", json!({"activeDeadlineSeconds": 2}), None);
        jobs.create(&PostParams::default(), &j)
            .await
            .expect("create job");
        let running = eventually(&s, "the pod Running", Duration::from_secs(30), || async {
            let l = job_pods(&pods, "forever").await?;
            (l.len() == 1 && is_ready(&l[0])).then(|| l[0].name_any())
        })
        .await;
        let failed = eventually(&s, "forever Failed", Duration::from_secs(30), || async {
            let j = jobs.get("forever").await.ok()?;
            condition(&j, "Failed").map(|_| j)
        })
        .await;
        assert_eq!(
            condition(&failed, "Failed").map(|c| c.0).as_deref(),
            Some("DeadlineExceeded")
        );
        let st = failed.status.clone().expect("status");
        assert_eq!(st.active, None, "{st:?}");
        assert_eq!(
            st.failed,
            Some(1),
            "the stopped pod counts as failed: {st:?}"
        );
        let started = st.start_time.expect("startTime").0;
        let failed_at = failed
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
            .and_then(|c| c.last_transition_time.clone())
            .expect("transition time")
            .0;
        assert!(
            failed_at.duration_since(started) >= jiff::SignedDuration::from_secs(1),
            "not before the deadline: {started} → {failed_at}"
        );
        // Failed is set only once the pod is gone.
        assert!(pods.get_opt(&running).await.expect("get").is_none());
        assert!(job_pods(&pods, "forever").await.expect("pods").is_empty());
        eventually(
            &s,
            "DeadlineExceeded event",
            Duration::from_secs(10),
            || async {
                has_event(&c, "forever", "DeadlineExceeded")
                    .await
                    .then_some(())
            },
        )
        .await;
        assert!(has_event(&c, "forever", "SuccessfulDelete").await);
        kubelet.abort();
    });
}

#[test]
fn finished_job_is_deleted_after_its_ttl_with_its_pods() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let quick = job("quick", json!({"ttlSecondsAfterFinished": 0}), Some(0));
        let later = job("later", json!({"ttlSecondsAfterFinished": 2}), Some(0));
        jobs.create(&PostParams::default(), &quick)
            .await
            .expect("create job");
        jobs.create(&PostParams::default(), &later)
            .await
            .expect("create job");
        // `later` is seen complete before it goes.
        let done = eventually(&s, "later Complete", Duration::from_secs(30), || async {
            let j = jobs.get("later").await.ok()?;
            condition(&j, "Complete").map(|_| j)
        })
        .await;
        let completed_at = done
            .status
            .and_then(|s| s.completion_time)
            .expect("completionTime")
            .0;
        for name in ["quick", "later"] {
            eventually(
                &s,
                &format!("job {name} deleted"),
                Duration::from_secs(30),
                || async { jobs.get_opt(name).await.ok()?.is_none().then_some(()) },
            )
            .await;
        }
        // Seconds are what the API keeps: a TTL of 2 s may run out after 1 s and a bit.
        let lived = jiff::Timestamp::now().duration_since(completed_at);
        assert!(
            lived >= jiff::SignedDuration::from_secs(1),
            "later lived {lived} after completing"
        );
        for name in ["quick", "later"] {
            eventually(
                &s,
                &format!("the pods of {name} collected"),
                Duration::from_secs(30),
                || async { job_pods(&pods, name).await?.is_empty().then_some(()) },
            )
            .await;
        }
        kubelet.abort();
    });
}

#[test]
fn cronjob_fires_on_the_minute_and_records_success() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let (c, kubelet) = cluster(&s).await;
        let cronjobs: Api<CronJob> = Api::namespaced(c.clone(), "default");
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let cj: CronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "metadata": {"labels": {"cron": "tick"}},
                    "spec": {"template": template(Some(0))},
                },
            },
        }))
        .expect("cronjob");
        let created = cronjobs
            .create(&PostParams::default(), &cj)
            .await
            .expect("create cronjob");
        let uid = created.metadata.uid.clone().expect("uid");
        let fired = eventually(&s, "a job of tick", Duration::from_secs(75), || async {
            let l = jobs
                .list(&ListParams::default().labels("cron=tick"))
                .await
                .ok()?;
            l.items.into_iter().next()
        })
        .await;
        let name = fired.name_any();
        let minutes: i64 = name
            .strip_prefix("tick-")
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("job name {name}"));
        let r = fired.owner_references();
        assert!(
            r.iter().any(|r| r.kind == "CronJob"
                && r.name == "tick"
                && r.uid == uid
                && r.controller == Some(true)),
            "{r:?}"
        );
        let scheduled = fired
            .annotations()
            .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
            .cloned()
            .expect("scheduled-timestamp annotation");
        let at: jiff::Timestamp = scheduled.parse().expect("RFC 3339");
        assert_eq!(at.as_second(), minutes * 60, "{scheduled} vs {name}");
        assert_eq!(at.as_second() % 60, 0);

        let status = eventually(
            &s,
            "tick's lastScheduleTime and lastSuccessfulTime",
            Duration::from_secs(30),
            || async {
                let st = cronjobs.get("tick").await.ok()?.status?;
                (st.last_schedule_time.is_some() && st.last_successful_time.is_some()).then_some(st)
            },
        )
        .await;
        let last = status.last_schedule_time.expect("lastScheduleTime").0;
        assert!(
            last >= at,
            "lastScheduleTime {last} is the run's time {at} or later"
        );
        assert_eq!(last.as_second() % 60, 0);
        eventually(
            &s,
            "tick has no active job",
            Duration::from_secs(30),
            || async {
                let st = cronjobs.get("tick").await.ok()?.status?;
                st.active.is_none_or(|a| a.is_empty()).then_some(())
            },
        )
        .await;
        let j = jobs.get(&name).await.expect("the fired job");
        assert!(condition(&j, "Complete").is_some());
        assert!(has_event(&c, "tick", "SuccessfulCreate").await);
        let table = kubectl_ok(&s, &["get", "cronjobs"]);
        assert!(
            table.contains("tick") && table.contains("* * * * *"),
            "{table}"
        );
        kubelet.abort();
    });
}
