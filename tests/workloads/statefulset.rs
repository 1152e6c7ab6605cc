//! The StatefulSet controller inside `keelson server`: ordered creation, ordered scale down,
//! partitioned rolling updates from the highest ordinal down, rollback, stable names, and the
//! Parallel policy. Orderings are checked on the sequence of pod watch events, never on
//! timing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::ResourceExt as _;
use parking_lot::Mutex;
use serde_json::json;

use crate::common::server::KeelsonServer;
use crate::harness::*;

const REVISION: &str = "controller-revision-hash";
const LONG: Duration = Duration::from_secs(60);

/// One pod as a watch event showed it.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    revision: String,
    ready: bool,
    terminating: bool,
    gone: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn seen(p: &Pod, gone: bool) -> Seen {
    Seen {
        name: p.name_any(),
        revision: p.labels().get(REVISION).cloned().unwrap_or_default(),
        ready: is_ready(p),
        terminating: p.metadata.deletion_timestamp.is_some(),
        gone,
    }
}

/// Records every pod event of `labels` into a log; returns once the watch has listed.
async fn record(
    s: &KeelsonServer,
    pods: Api<Pod>,
    labels: &str,
) -> (Log, tokio::task::JoinHandle<()>) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let synced = Arc::new(Mutex::new(false));
    let task = {
        let log = Arc::clone(&log);
        let synced = Arc::clone(&synced);
        let config = watcher::Config::default().labels(labels);
        tokio::spawn(async move {
            let mut stream = watcher::watcher(pods, config).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                        log.lock().push(seen(&p, false))
                    }
                    Ok(watcher::Event::Delete(p)) => log.lock().push(seen(&p, true)),
                    Ok(watcher::Event::InitDone) => *synced.lock() = true,
                    _ => {}
                }
            }
        })
    };
    eventually(
        s,
        "the pod watch has listed",
        Duration::from_secs(10),
        || async { (*synced.lock()).then_some(()) },
    )
    .await;
    (log, task)
}

/// The index of the first event at or after `from` satisfying `f`.
fn first(log: &Log, from: usize, f: impl Fn(&Seen) -> bool) -> Option<usize> {
    log.lock()
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| f(e))
        .map(|(i, _)| i)
}

fn going(e: &Seen, name: &str) -> bool {
    e.name == name && (e.terminating || e.gone)
}

fn dump(log: &Log, from: usize) -> String {
    log.lock()
        .iter()
        .enumerate()
        .skip(from)
        .map(|(i, e)| format!("{i}: {e:?}\n"))
        .collect()
}

/// `n` Ready, not terminating pods of `labels`, by name.
async fn ready_pods(pods: &Api<Pod>, labels: &str, n: usize) -> Option<Vec<Pod>> {
    let mut l = pods
        .list(&ListParams::default().labels(labels))
        .await
        .ok()?
        .items;
    let ok = l.len() == n
        && l.iter()
            .all(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none());
    l.sort_by_key(|p| p.name_any());
    ok.then_some(l)
}

/// The revision numbers `kubectl rollout history` lists.
fn history_revisions(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

fn revision_of(p: &Pod) -> String {
    p.labels().get(REVISION).cloned().unwrap_or_default()
}

fn statefulset(
    name: &str,
    replicas: i32,
    policy: &str,
    node_selector: serde_json::Value,
) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": node_selector,
                    "containers": [{"name": "c", "image": "registry.invalid/web:1"}],
                },
            },
        },
    }))
    .expect("statefulset")
}

/// The set's status once it has observed its generation and `f` holds.
async fn settled(
    s: &KeelsonServer,
    sets: &Api<StatefulSet>,
    what: &str,
    f: impl Fn(&k8s_openapi::api::apps::v1::StatefulSetStatus) -> bool,
) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    eventually(s, what, LONG, || async {
        let set = sets.get("web").await.ok()?;
        let st = set.status?;
        (st.observed_generation == set.metadata.generation && f(&st)).then_some(st)
    })
    .await
}

#[test]
fn statefulset_creates_in_order_and_rolls_back_to_front() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        for n in ["node-a", "node-b"] {
            add_node(&c, n, "8", &[]).await;
        }
        let alive = alive(&["node-a", "node-b"]);
        let kubelet = fake_kubelet(c.clone(), Arc::clone(&alive));
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let sets: Api<StatefulSet> = Api::namespaced(c.clone(), "default");
        let (log, watch) = record(&s, pods.clone(), "app=web").await;

        // OrderedReady: web-(k+1) appears only after web-k was seen Ready.
        let web = statefulset("web", 3, "OrderedReady", json!({}));
        sets.create(&PostParams::default(), &web)
            .await
            .expect("create statefulset");
        let listed = eventually(&s, "web-0..2 Ready", LONG, || ready_pods(&pods, "app=web", 3)).await;
        for k in 1..3 {
            let prev = format!("web-{}", k - 1);
            let this = format!("web-{k}");
            let ready = first(&log, 0, |e| e.name == prev && e.ready && !e.terminating);
            let created = first(&log, 0, |e| e.name == this);
            assert!(
                ready.is_some() && created.is_some() && ready < created,
                "{this} created before {prev} was Ready:\n{}",
                dump(&log, 0)
            );
        }
        for (i, p) in listed.iter().enumerate() {
            let name = format!("web-{i}");
            assert_eq!(p.name_any(), name);
            let l = p.labels();
            assert_eq!(l.get("statefulset.kubernetes.io/pod-name"), Some(&name));
            assert_eq!(l.get("apps.kubernetes.io/pod-index"), Some(&i.to_string()));
            let spec = p.spec.as_ref().expect("spec");
            assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
            assert_eq!(spec.subdomain.as_deref(), Some("web"));
            let owner = &p.owner_references()[0];
            assert_eq!((owner.kind.as_str(), owner.controller), ("StatefulSet", Some(true)));
        }
        let st = settled(&s, &sets, "web status: 3 ready at one revision", |st| {
            st.ready_replicas == Some(3)
                && st.current_replicas == Some(3)
                && st.update_revision.is_some()
                && st.current_revision == st.update_revision
        })
        .await;
        let rev1 = st.update_revision.clone().unwrap_or_default();
        assert!(rev1.starts_with("web-"), "{rev1}");
        assert!(listed.iter().all(|p| revision_of(p) == rev1));
        let out = kubectl_ok(&s, &["rollout", "status", "statefulset/web", "--timeout=60s"]);
        assert!(out.contains("roll out complete"), "{out}");

        // Scale down: web-2 goes completely before web-1 starts going.
        kubectl_ok(&s, &["scale", "statefulset/web", "--replicas=1"]);
        eventually(&s, "only web-0 left", LONG, || ready_pods(&pods, "app=web", 1)).await;
        let gone2 = first(&log, 0, |e| e.name == "web-2" && e.gone);
        let going1 = first(&log, 0, |e| going(e, "web-1"));
        assert!(
            gone2.is_some() && going1.is_some() && gone2 < going1,
            "web-1 deleted before web-2 was gone:\n{}",
            dump(&log, 0)
        );
        kubectl_ok(&s, &["scale", "statefulset/web", "--replicas=3"]);
        let before = eventually(&s, "web back to 3", LONG, || ready_pods(&pods, "app=web", 3)).await;

        // A rolling update with partition 1: web-2, then web-1; web-0 keeps its revision.
        let mark = log.lock().len();
        let patch = json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "c", "image": "registry.invalid/web:2"}]}},
        }});
        sets.patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("update web");
        let st = settled(&s, &sets, "web-2 and web-1 updated", |st| {
            st.updated_replicas == Some(2) && st.ready_replicas == Some(3)
        })
        .await;
        let rev2 = st.update_revision.clone().unwrap_or_default();
        assert_ne!(rev2, rev1);
        assert_eq!(st.current_revision.as_deref(), Some(rev1.as_str()));
        let now = eventually(&s, "3 Ready after the partial update", LONG, || {
            ready_pods(&pods, "app=web", 3)
        })
        .await;
        assert_eq!(revision_of(&now[0]), rev1, "web-0 keeps the old revision");
        assert_eq!(now[0].uid(), before[0].uid(), "web-0 was not replaced");
        assert_eq!(revision_of(&now[1]), rev2);
        assert_eq!(revision_of(&now[2]), rev2);
        assert_eq!(
            now[2].spec.as_ref().expect("spec").containers[0].image.as_deref(),
            Some("registry.invalid/web:2")
        );
        let new2_ready = first(&log, mark, |e| e.name == "web-2" && e.revision == rev2 && e.ready);
        let going1 = first(&log, mark, |e| going(e, "web-1"));
        let going2 = first(&log, mark, |e| going(e, "web-2"));
        assert!(
            going2.is_some() && going2 < new2_ready && new2_ready < going1,
            "web-2 is not replaced (and Ready) before web-1 goes:\n{}",
            dump(&log, mark)
        );
        assert_eq!(first(&log, mark, |e| going(e, "web-0")), None, "{}", dump(&log, mark));
        let out = kubectl_ok(&s, &["rollout", "status", "statefulset/web", "--timeout=60s"]);
        assert!(out.contains("partitioned roll out complete"), "{out}");

        // Partition 0: web-0 follows, and the rollout completes.
        let mark = log.lock().len();
        let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
        sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("partition 0");
        let st = settled(&s, &sets, "web fully at the new revision", |st| {
            st.current_revision == st.update_revision
                && st.updated_replicas == Some(3)
                && st.ready_replicas == Some(3)
        })
        .await;
        assert_eq!(st.current_revision.as_deref(), Some(rev2.as_str()));
        let now = eventually(&s, "3 Ready at the new revision", LONG, || async {
            let l = ready_pods(&pods, "app=web", 3).await?;
            l.iter().all(|p| revision_of(p) == rev2).then_some(l)
        })
        .await;
        assert_ne!(now[0].uid(), before[0].uid());
        assert!(first(&log, mark, |e| going(e, "web-0")).is_some());
        assert_eq!(first(&log, mark, |e| going(e, "web-1") || going(e, "web-2")), None);
        kubectl_ok(&s, &["rollout", "status", "statefulset/web", "--timeout=60s"]);
        let history = kubectl_ok(&s, &["rollout", "history", "statefulset/web"]);
        assert_eq!(history_revisions(&history), ["1", "2"], "{history}");

        // Rollback: the first revision comes back as revision 3, from the highest pod down.
        let mark = log.lock().len();
        kubectl_ok(&s, &["rollout", "undo", "statefulset/web"]);
        let st = settled(&s, &sets, "web rolled back", |st| {
            st.update_revision.as_deref() == Some(rev1.as_str())
                && st.current_revision == st.update_revision
                && st.updated_replicas == Some(3)
                && st.ready_replicas == Some(3)
        })
        .await;
        assert_eq!(st.current_replicas, Some(3));
        let g2 = first(&log, mark, |e| going(e, "web-2"));
        let g1 = first(&log, mark, |e| going(e, "web-1"));
        let g0 = first(&log, mark, |e| going(e, "web-0"));
        assert!(
            g2.is_some() && g2 < g1 && g1 < g0,
            "rollback not from the highest ordinal down:\n{}",
            dump(&log, mark)
        );
        let revisions: Api<ControllerRevision> = Api::namespaced(c.clone(), "default");
        let r1 = revisions.get(&rev1).await.expect("first revision");
        assert_eq!(r1.revision, 3);
        let history = kubectl_ok(&s, &["rollout", "history", "statefulset/web"]);
        assert_eq!(history_revisions(&history), ["2", "3"], "{history}");

        // A deleted pod comes back under its name.
        let old = pods.get("web-1").await.expect("web-1");
        pods.delete("web-1", &DeleteParams::default())
            .await
            .expect("delete web-1");
        let back = eventually(&s, "web-1 recreated", LONG, || async {
            let p = pods.get("web-1").await.ok()?;
            (p.uid() != old.uid() && is_ready(&p) && p.metadata.deletion_timestamp.is_none())
                .then_some(p)
        })
        .await;
        assert_eq!(revision_of(&back), rev1);
        let events = kubectl_ok(&s, &["get", "events", "--field-selector", "involvedObject.name=web"]);
        assert!(events.contains("create Pod web-1 in StatefulSet web successful"), "{events}");
        assert!(events.contains("delete Pod web-2 in StatefulSet web successful"), "{events}");
        watch.abort();

        // Parallel: every pod is made without waiting for any to be Ready. Its node does not
        // exist yet, so none can be Ready until it does.
        let (dblog, dbwatch) = record(&s, pods.clone(), "app=db").await;
        let db = statefulset("db", 3, "Parallel", json!({"pool": "parallel"}));
        sets.create(&PostParams::default(), &db)
            .await
            .expect("create db");
        let waiting = eventually(&s, "db-0..2 created", LONG, || async {
            let l = pods.list(&ListParams::default().labels("app=db")).await.ok()?.items;
            (l.len() == 3).then_some(l)
        })
        .await;
        assert!(waiting.iter().all(|p| !is_ready(p)));
        assert_eq!(first(&dblog, 0, |e| e.ready), None, "{}", dump(&dblog, 0));
        alive.lock().insert("node-p".into());
        add_node(&c, "node-p", "8", &[("pool", "parallel")]).await;
        eventually(&s, "db-0..2 Ready", LONG, || ready_pods(&pods, "app=db", 3)).await;
        kubectl_ok(&s, &["scale", "statefulset/db", "--replicas=0"]);
        eventually(&s, "db scaled to zero", LONG, || async {
            let l = pods.list(&ListParams::default().labels("app=db")).await.ok()?;
            l.items.is_empty().then_some(())
        })
        .await;
        dbwatch.abort();
        kubelet.abort();
    });
}
