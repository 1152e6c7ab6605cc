//! The scheduler and controllers inside `keelson server`, driven by kubectl and kube-rs.
//!
//! The fake nodes and the kubelet stand-in are in `harness/`.

mod common;
#[allow(dead_code)]
mod harness;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::ResourceExt as _;
use parking_lot::Mutex;
use serde_json::json;

use common::server::KeelsonServer;
use common::wait_until;
use harness::*;

#[test]
fn deployments_roll_out_scale_and_roll_back() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        for n in ["node-a", "node-b", "node-c"] {
            add_node(&c, n, "8", &[]).await;
        }
        let kubelet = fake_kubelet(c.clone(), alive(&["node-a", "node-b", "node-c"]));
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
        let web = ListParams::default().labels("app=web");

        kubectl_ok(
            &s,
            &[
                "create",
                "deployment",
                "web",
                "--image=registry.invalid/web:1",
                "--replicas=3",
            ],
        );
        let listed = eventually(
            &s,
            "3 pods of web bound and Ready",
            Duration::from_secs(60),
            || async {
                let l = pods.list(&web).await.ok()?;
                let ok = l.items.len() == 3 && l.items.iter().all(is_ready);
                ok.then_some(l.items)
            },
        )
        .await;
        assert_eq!(
            pods_by_node(&listed).len(),
            3,
            "3 replicas on 3 nodes: {:?}",
            pods_by_node(&listed)
        );
        eventually(
            &s,
            "web Available with 3 replicas",
            Duration::from_secs(30),
            || async {
                let d = deploys.get("web").await.ok()?;
                let st = d.status?;
                (st.available_replicas == Some(3)
                    && st.observed_generation == d.metadata.generation)
                    .then_some(())
            },
        )
        .await;
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
        let first = rss.list(&web).await.expect("replica sets").items;
        assert_eq!(first.len(), 1);
        let rs1 = first[0].name_any();
        assert!(rs1.starts_with("web-"), "{rs1}");
        let hash = first[0]
            .labels()
            .get("pod-template-hash")
            .cloned()
            .expect("pod-template-hash");
        assert_eq!(rs1, format!("web-{hash}"));
        let described = kubectl_ok(&s, &["describe", "deployment", "web"]);
        assert!(
            described.contains(&format!("Scaled up replica set {rs1} to 3")),
            "{described}"
        );

        // Scale to 10: spread over all three nodes.
        kubectl_ok(&s, &["scale", "deployment/web", "--replicas=10"]);
        let listed = eventually(&s, "10 Ready pods", Duration::from_secs(60), || async {
            let l = pods.list(&web).await.ok()?;
            (l.items.len() == 10 && l.items.iter().all(is_ready)).then_some(l.items)
        })
        .await;
        let spread = pods_by_node(&listed);
        assert!(
            spread.values().all(|n| (3..=4).contains(n)),
            "10 pods over 3 nodes: {spread:?}"
        );

        // A rolling update with maxUnavailable 25% of 10 = 2 (rounded down): at least 8 pods
        // Ready at every moment, watched.
        let ready_min = Arc::new(Mutex::new(usize::MAX));
        let watch_task = {
            let ready_min = Arc::clone(&ready_min);
            let api = pods.clone();
            tokio::spawn(async move {
                let mut state: HashMap<String, bool> = HashMap::new();
                let mut stream =
                    watcher::watcher(api, watcher::Config::default().labels("app=web"))
                        .default_backoff()
                        .boxed();
                let mut synced = false;
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                            let ready = is_ready(&p) && p.metadata.deletion_timestamp.is_none();
                            state.insert(p.name_any(), ready);
                        }
                        Ok(watcher::Event::Delete(p)) => {
                            state.remove(&p.name_any());
                        }
                        Ok(watcher::Event::InitDone) => synced = true,
                        _ => {}
                    }
                    if synced {
                        let n = state.values().filter(|r| **r).count();
                        let mut m = ready_min.lock();
                        *m = (*m).min(n);
                    }
                }
            })
        };
        eventually(
            &s,
            "the watch has listed",
            Duration::from_secs(10),
            || async { (*ready_min.lock() != usize::MAX).then_some(()) },
        )
        .await;
        kubectl_ok(
            &s,
            &[
                "set",
                "image",
                "deployment/web",
                "web=registry.invalid/web:2",
            ],
        );
        let status = kubectl_ok(
            &s,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        assert!(status.contains("successfully rolled out"), "{status}");
        let listed = pods.list(&web).await.expect("pods").items;
        let images: Vec<String> = listed
            .iter()
            .filter_map(|p| {
                p.spec
                    .as_ref()
                    .map(|s| s.containers[0].image.clone().unwrap_or_default())
            })
            .collect();
        assert_eq!(images.len(), 10, "{images:?}");
        assert!(
            images.iter().all(|i| i == "registry.invalid/web:2"),
            "{images:?}"
        );
        watch_task.abort();
        let min = *ready_min.lock();
        assert!(
            min >= 8,
            "Ready pods fell to {min} during the rollout (maxUnavailable 2 of 10)"
        );

        let history = kubectl_ok(&s, &["rollout", "history", "deployment/web"]);
        let revs: Vec<&str> = history
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(revs.len(), 2, "{history}");

        // Undo: the first template comes back (as revision 3, reusing the first replica set).
        kubectl_ok(&s, &["rollout", "undo", "deployment/web"]);
        kubectl_ok(
            &s,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        let d = deploys.get("web").await.expect("deployment");
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers[0].image.clone().unwrap_or_default());
        assert_eq!(image.as_deref(), Some("registry.invalid/web:1"));
        let rs = rss.get(&rs1).await.expect("first replica set");
        assert_eq!(
            rs.spec.as_ref().and_then(|s| s.replicas),
            Some(10),
            "the first replica set is scaled back up"
        );
        assert_eq!(
            rs.annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str),
            Some("3")
        );

        // Pause: a template change makes no new replica set until resumed.
        kubectl_ok(&s, &["rollout", "pause", "deployment/web"]);
        kubectl_ok(
            &s,
            &[
                "set",
                "image",
                "deployment/web",
                "web=registry.invalid/web:3",
            ],
        );
        eventually(
            &s,
            "the paused deployment's status observed",
            Duration::from_secs(20),
            || async {
                let d = deploys.get("web").await.ok()?;
                (d.status?.observed_generation == d.metadata.generation).then_some(())
            },
        )
        .await;
        assert_eq!(
            rss.list(&web).await.expect("rs").items.len(),
            2,
            "no new replica set while paused"
        );
        kubectl_ok(&s, &["rollout", "resume", "deployment/web"]);
        kubectl_ok(
            &s,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        assert_eq!(rss.list(&web).await.expect("rs").items.len(), 3);
        kubelet.abort();
    });
}

#[test]
fn unschedulable_pod_waits_for_a_node_that_fits() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        for n in ["small-1", "small-2", "small-3"] {
            add_node(&c, n, "2", &[]).await;
        }
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let big: Pod = serde_json::from_value(json!({
            "metadata": {"name": "big"},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/big",
                      "resources": {"requests": {"cpu": "6"}}}]}
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &big)
            .await
            .expect("create");
        let msg = eventually(
            &s,
            "PodScheduled=False",
            Duration::from_secs(30),
            || async {
                let p = pods.get("big").await.ok()?;
                let cond = p
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled")?;
                (cond.status == "False" && cond.reason.as_deref() == Some("Unschedulable"))
                    .then_some(cond.message.unwrap_or_default())
            },
        )
        .await;
        assert_eq!(msg, "0/3 nodes are available: 3 Insufficient cpu.");
        let events: Api<Event> = Api::namespaced(c.clone(), "default");
        eventually(
            &s,
            "a FailedScheduling event",
            Duration::from_secs(10),
            || async {
                let l = events
                    .list(&ListParams::default().fields("involvedObject.name=big"))
                    .await
                    .ok()?;
                l.items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("FailedScheduling")
                            && e.message.as_deref() == Some(msg.as_str())
                    })
                    .then_some(())
            },
        )
        .await;
        let described = kubectl_ok(&s, &["describe", "pod", "big"]);
        assert!(described.contains("FailedScheduling"), "{described}");
        assert_eq!(
            pods.get("big")
                .await
                .expect("pod")
                .spec
                .and_then(|s| s.node_name),
            None
        );

        add_node(&c, "big-node", "16", &[]).await;
        let node = eventually(&s, "big bound", Duration::from_secs(30), || async {
            pods.get("big").await.ok()?.spec?.node_name
        })
        .await;
        assert_eq!(node, "big-node");
    });
}

#[test]
fn garbage_collection_follows_the_propagation_policy_and_namespaces_empty() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        add_node(&c, "node-a", "32", &[]).await;
        let kubelet = fake_kubelet(c.clone(), alive(&["node-a"]));
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
        for (name, policy) in [
            ("orphan", "orphan"),
            ("bg", "background"),
            ("fg", "foreground"),
        ] {
            kubectl_ok(
                &s,
                &[
                    "create",
                    "deployment",
                    name,
                    "--image=registry.invalid/x",
                    "--replicas=2",
                ],
            );
            let sel = ListParams::default().labels(&format!("app={name}"));
            eventually(&s, "2 Ready pods", Duration::from_secs(60), || async {
                let l = pods.list(&sel).await.ok()?;
                (l.items.len() == 2 && l.items.iter().all(is_ready)).then_some(())
            })
            .await;
            kubectl_ok(
                &s,
                &["delete", "deployment", name, &format!("--cascade={policy}")],
            );
            match policy {
                "orphan" => {
                    // The deployment goes; its replica set and pods stay, no longer owned.
                    eventually(&s, "deployment gone", Duration::from_secs(30), || async {
                        deploys.get_opt(name).await.ok()?.is_none().then_some(())
                    })
                    .await;
                    eventually(
                        &s,
                        "replica set orphaned",
                        Duration::from_secs(30),
                        || async {
                            let l = rss.list(&sel).await.ok()?;
                            (l.items.len() == 1 && l.items[0].owner_references().is_empty())
                                .then_some(())
                        },
                    )
                    .await;
                    assert_eq!(pods.list(&sel).await.expect("pods").items.len(), 2);
                }
                _ => {
                    // kubectl waits for foreground deletion to finish, so by now all is gone;
                    // background may still be collecting.
                    eventually(
                        &s,
                        "replica set and pods collected",
                        Duration::from_secs(30),
                        || async {
                            let r = rss.list(&sel).await.ok()?;
                            let p = pods.list(&sel).await.ok()?;
                            (r.items.is_empty() && p.items.is_empty()).then_some(())
                        },
                    )
                    .await;
                    assert!(deploys.get_opt(name).await.expect("get").is_none());
                }
            }
        }

        // The collector has since handled two more deletions; the orphans are still there.
        let sel = ListParams::default().labels("app=orphan");
        assert_eq!(rss.list(&sel).await.expect("rs").items.len(), 1);
        assert_eq!(pods.list(&sel).await.expect("pods").items.len(), 2);

        // A namespace with 50 objects: all of them go, then the namespace.
        let nss: Api<Namespace> = Api::all(c.clone());
        kubectl_ok(&s, &["create", "namespace", "doomed"]);
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
        for i in 0..50 {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("cm-{i}")),
                    ..Default::default()
                },
                ..Default::default()
            };
            cms.create(&PostParams::default(), &cm)
                .await
                .expect("configmap");
        }
        let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "doomed");
        eventually(
            &s,
            "the default service account",
            Duration::from_secs(20),
            || async { sas.get_opt("default").await.ok()?.map(|_| ()) },
        )
        .await;
        kubectl_ok(&s, &["delete", "namespace", "doomed", "--timeout=60s"]);
        assert!(nss.get_opt("doomed").await.expect("get").is_none());
        assert!(cms
            .list(&ListParams::default())
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true));
        kubelet.abort();
    });
}

#[test]
fn pods_leave_a_node_that_stops_heartbeating() {
    let s = KeelsonServer::start(keelson(), &["--node-monitor-grace-period", "3s"]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        for n in ["node-a", "node-b", "node-c"] {
            add_node(&c, n, "8", &[]).await;
        }
        let live = alive(&["node-a", "node-b", "node-c"]);
        let kubelet = fake_kubelet(c.clone(), Arc::clone(&live));
        // Tolerate an unreachable node for 1 s instead of the default 300 s.
        let manifest = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: hardy}
spec:
  replicas: 3
  selector: {matchLabels: {app: hardy}}
  template:
    metadata: {labels: {app: hardy}}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 1}
      containers:
      - {name: c, image: registry.invalid/hardy}
"#;
        let path = s.file("hardy.yaml", manifest);
        kubectl_ok(&s, &["apply", "-f", &path]);
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let sel = ListParams::default().labels("app=hardy");
        let listed = eventually(&s, "3 Ready pods on 3 nodes", Duration::from_secs(60), || async {
            let l = pods.list(&sel).await.ok()?;
            let ok = l.items.len() == 3 && l.items.iter().all(is_ready) && pods_by_node(&l.items).len() == 3;
            ok.then_some(l.items)
        })
        .await;
        let victim = listed
            .iter()
            .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-b"))
            .map(|p| p.name_any())
            .expect("a pod on node-b");

        live.lock().remove("node-b");
        let nodes: Api<Node> = Api::all(c.clone());
        eventually(&s, "node-b Ready=Unknown and tainted", Duration::from_secs(30), || async {
            let n = nodes.get("node-b").await.ok()?;
            let ready = n.status?.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
            let taints = n.spec?.taints.unwrap_or_default();
            let tainted = taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (ready.status == "Unknown" && tainted).then_some(())
        })
        .await;
        let (others, _) = eventually(&s, "a replacement on another node", Duration::from_secs(30), || async {
            let l = pods.list(&sel).await.ok()?;
            let evicted = l.items.iter().any(|p| p.name_any() == victim && p.metadata.deletion_timestamp.is_some());
            let live: Vec<&Pod> = l.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p)).collect();
            let elsewhere = live.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some("node-b"));
            (evicted && live.len() == 3 && elsewhere).then_some((live.len(), ()))
        })
        .await;
        assert_eq!(others, 3);
        // The healthy nodes stayed Ready.
        for n in ["node-a", "node-c"] {
            let node = nodes.get(n).await.expect("node");
            let ready = node.status.and_then(|s| s.conditions).and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
            assert_eq!(ready.map(|c| c.status).as_deref(), Some("True"), "{n}");
        }
        kubelet.abort();
    });
}

/// The server process a leader lease's holder identity (`<host>_<pid>_<random>`) names.
fn holder_pid(lease: &Lease) -> Option<u32> {
    let holder = lease.spec.as_ref()?.holder_identity.as_deref()?;
    holder.split('_').rev().nth(1)?.parse().ok()
}

#[test]
fn one_controller_manager_acts_and_a_successor_takes_over() {
    const LEASE: Duration = Duration::from_secs(3);
    let mut servers =
        KeelsonServer::start_cluster(keelson(), 3, &["--leader-elect-lease-duration", "3s"]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&servers[0]).await;
        for n in ["node-a", "node-b"] {
            add_node(&c, n, "16", &[]).await;
        }
        let kubelet = fake_kubelet(c.clone(), alive(&["node-a", "node-b"]));
        let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
        let pids: Vec<u32> = servers.iter().filter_map(KeelsonServer::pid).collect();
        let leader = eventually(
            &servers[0],
            "a controller-manager leader",
            Duration::from_secs(30),
            || async {
                let l = leases.get_opt("kube-controller-manager").await.ok()??;
                holder_pid(&l).filter(|p| pids.contains(p))
            },
        )
        .await;

        // Every pod ever created for the deployment, seen by a watch from the start.
        let created: Arc<Mutex<HashSet<String>>> = Arc::default();
        let seen = Arc::clone(&created);
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let watch = tokio::spawn({
            let pods = pods.clone();
            async move {
                let mut stream =
                    watcher::watcher(pods, watcher::Config::default().labels("app=solo"))
                        .default_backoff()
                        .applied_objects()
                        .boxed();
                while let Some(p) = stream.next().await {
                    if let Ok(p) = p {
                        seen.lock().insert(p.name_any());
                    }
                }
            }
        });
        kubectl_ok(
            &servers[0],
            &[
                "create",
                "deployment",
                "solo",
                "--image=registry.invalid/solo",
                "--replicas=4",
            ],
        );
        let sel = ListParams::default().labels("app=solo");
        eventually(
            &servers[0],
            "4 Ready pods",
            Duration::from_secs(60),
            || async {
                let l = pods.list(&sel).await.ok()?;
                (l.items.len() == 4 && l.items.iter().all(is_ready)).then_some(())
            },
        )
        .await;
        // Only the leader acted: the other servers' controller managers wrote nothing.
        let events: Api<Event> = Api::namespaced(c.clone(), "default");
        let created_events = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items;
        assert!(
            created_events
                .iter()
                .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
                .count()
                == 4,
            "one SuccessfulCreate per pod"
        );

        // Kill the leader; a survivor takes the lease over within the lease duration (plus
        // one retry period and the time the API takes to notice).
        let idx = servers
            .iter()
            .position(|s| s.pid() == Some(leader))
            .expect("leader server");
        let killed = Instant::now();
        servers[idx].kill();
        let survivor = (idx + 1) % servers.len();
        let c2 = client(&servers[survivor]).await;
        let leases2: Api<Lease> = Api::namespaced(c2.clone(), "kube-system");
        let next = eventually(
            &servers[survivor],
            "a new controller-manager leader",
            Duration::from_secs(30),
            || async {
                let l = leases2.get_opt("kube-controller-manager").await.ok()??;
                holder_pid(&l).filter(|p| *p != leader)
            },
        )
        .await;
        let takeover = killed.elapsed();
        assert!(
            pids.contains(&next),
            "the new holder {next} is one of our servers"
        );
        assert!(
            takeover < LEASE * 3,
            "takeover took {takeover:?} with a {LEASE:?} lease"
        );

        // The new leader acts: scale up, and the pods from before are kept.
        let deploys: Api<Deployment> = Api::namespaced(c2.clone(), "default");
        let scale = json!({"spec": {"replicas": 6}});
        deploys
            .patch("solo", &PatchParams::default(), &Patch::Merge(&scale))
            .await
            .expect("scale");
        let pods2: Api<Pod> = Api::namespaced(c2.clone(), "default");
        eventually(
            &servers[survivor],
            "6 pods after the takeover",
            Duration::from_secs(60),
            || async {
                let l = pods2.list(&sel).await.ok()?;
                (l.items.len() == 6).then_some(())
            },
        )
        .await;
        watch.abort();
        kubelet.abort();
        // The watch went through the killed server only if it was servers[0]; either way the
        // survivor's list is the truth: exactly six pods were ever created (none twice).
        let now: HashSet<String> = pods2
            .list(&sel)
            .await
            .expect("pods")
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        let mut ever = created.lock().clone();
        ever.extend(now.iter().cloned());
        assert_eq!(ever.len(), 6, "pods ever created: {ever:?}");
    });
}

#[test]
fn services_list_their_ready_and_unready_pods_as_endpoints() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        add_node(&c, "node-a", "8", &[]).await;
        let kubelet = fake_kubelet(c.clone(), alive(&["node-a"]));
        let manifest = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - {name: c, image: registry.invalid/shop, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{name: web, port: 80, targetPort: http}]
"#;
        let path = s.file("shop.yaml", manifest);
        kubectl_ok(&s, &["apply", "-f", &path]);
        let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> =
            Api::namespaced(c.clone(), "default");
        let ready_ips =
            |e: &k8s_openapi::api::core::v1::Endpoints, not_ready: bool| -> Vec<String> {
                e.subsets
                    .iter()
                    .flatten()
                    .flat_map(|s| {
                        if not_ready {
                            s.not_ready_addresses.clone()
                        } else {
                            s.addresses.clone()
                        }
                    })
                    .flatten()
                    .map(|a| a.ip)
                    .collect()
            };
        let ep = eventually(&s, "3 ready addresses", Duration::from_secs(60), || async {
            let e = endpoints.get_opt("shop").await.ok()??;
            (ready_ips(&e, false).len() == 3).then_some(e)
        })
        .await;
        let subset = &ep.subsets.as_ref().expect("subsets")[0];
        let port = &subset.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("web"), 8080),
            "named targetPort resolved"
        );
        let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
            Api::namespaced(c.clone(), "default");
        // The slice is written right after the Endpoints object.
        eventually(
            &s,
            "one slice with 3 ready endpoints",
            Duration::from_secs(30),
            || async {
                let l = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=shop"))
                    .await
                    .ok()?
                    .items;
                let ready = |e: &k8s_openapi::api::discovery::v1::Endpoint| {
                    e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
                };
                (l.len() == 1 && l[0].endpoints.len() == 3 && l[0].endpoints.iter().all(ready))
                    .then_some(())
            },
        )
        .await;

        // A pod turning unready moves to notReadyAddresses.
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let victim = pods
            .list(&ListParams::default().labels("app=shop"))
            .await
            .expect("pods")
            .items[0]
            .clone();
        let unready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        pods.patch_status(
            &victim.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&unready),
        )
        .await
        .expect("unready");
        let ip = victim.status.and_then(|s| s.pod_ip).expect("pod ip");
        eventually(
            &s,
            "the pod in notReadyAddresses",
            Duration::from_secs(30),
            || async {
                let e = endpoints.get_opt("shop").await.ok()??;
                (ready_ips(&e, true) == vec![ip.clone()] && ready_ips(&e, false).len() == 2)
                    .then_some(())
            },
        )
        .await;
        kubelet.abort();
    });
}

#[test]
fn load_balancer_services_get_addresses_of_the_pool_and_give_them_back() {
    let s = KeelsonServer::start(keelson(), &["--service-lb-pool", "192.0.2.10-192.0.2.11"]);
    let lb = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n{extra}"
        )
    };
    let ingress = |name: &str| {
        s.kubectl(&[
            "get",
            "service",
            name,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    let wait_ingress = |name: &str, want: &str| {
        wait_until(
            Duration::from_secs(30),
            &format!("{name} at {want:?}"),
            || ingress(name) == want,
        )
    };
    // One asks for the pool's second address, one takes the first free one.
    let f = s.file("b.yaml", &lb("b", "  loadBalancerIP: 192.0.2.11\n"));
    kubectl_ok(&s, &["apply", "-f", &f]);
    wait_ingress("b", "192.0.2.11");
    let f = s.file("a.yaml", &lb("a", ""));
    kubectl_ok(&s, &["apply", "-f", &f]);
    wait_ingress("a", "192.0.2.10");
    let rows = kubectl_ok(&s, &["get", "service", "a"]);
    assert!(rows.contains("192.0.2.10"), "EXTERNAL-IP: {rows}");
    // The pool is used up: the next waits, says why, and shows <pending>.
    let f = s.file("c.yaml", &lb("c", ""));
    kubectl_ok(&s, &["apply", "-f", &f]);
    wait_until(Duration::from_secs(30), "an AllocationFailed event", || {
        s.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=c,reason=AllocationFailed",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .stdout
        .contains("no address is left")
    });
    assert!(kubectl_ok(&s, &["get", "service", "c"]).contains("<pending>"));
    // Another implementation's Service is left alone.
    let f = s.file(
        "d.yaml",
        &lb("d", "  loadBalancerClass: example.com/other\n"),
    );
    kubectl_ok(&s, &["apply", "-f", &f]);
    // Deleting a gives its address to c.
    kubectl_ok(&s, &["delete", "service", "a"]);
    wait_ingress("c", "192.0.2.10");
    // b stops being a LoadBalancer: its status is cleared.
    kubectl_ok(
        &s,
        &[
            "patch",
            "service",
            "b",
            "-p",
            r#"{"spec":{"type":"ClusterIP","loadBalancerIP":null}}"#,
        ],
    );
    wait_ingress("b", "");
    assert_eq!(ingress("d"), "", "another class's Service got an address");
}

#[test]
fn nodes_get_pod_cidrs_of_the_cluster_cidr_and_give_them_back() {
    let s = KeelsonServer::start(
        keelson(),
        &[
            "--cluster-cidr",
            "10.244.0.0/23",
            "--node-cidr-mask-size",
            "24",
        ],
    );
    let cidr = |n: &str| {
        s.kubectl(&[
            "get",
            "node",
            n,
            "-o",
            "jsonpath={.spec.podCIDR} {.spec.podCIDRs[*]}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    let node = |n: &str| {
        let f = s.file(
            &format!("{n}.yaml"),
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n"),
        );
        kubectl_ok(&s, &["create", "-f", &f]);
    };
    node("n1");
    node("n2");
    wait_until(Duration::from_secs(30), "both nodes get a block", || {
        let (a, b) = (cidr("n1"), cidr("n2"));
        let mut got = vec![a, b];
        got.sort();
        got == ["10.244.0.0/24 10.244.0.0/24", "10.244.1.0/24 10.244.1.0/24"]
    });
    // The range is used up: the next node waits and says so.
    node("n3");
    wait_until(Duration::from_secs(30), "a CIDRNotAvailable event", || {
        s.kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "involvedObject.name=n3,reason=CIDRNotAvailable",
            "-o",
            "name",
        ])
        .stdout
        .contains("event")
    });
    assert_eq!(cidr("n3"), "");
    // A deleted node's block goes to the one waiting.
    let freed = cidr("n1");
    kubectl_ok(&s, &["delete", "node", "n1"]);
    wait_until(Duration::from_secs(60), "n3 gets n1's block", || {
        cidr("n3") == freed
    });
}
