//! `keelson agent --runtime fake`: hollow nodes that register, heartbeat and run their pods,
//! against a real `keelson server` (scheduler and controllers included).

mod common;
#[allow(dead_code)]
mod harness;

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::ResourceExt as _;
use serde_json::json;

use common::server::KeelsonServer;
use common::{wait_until, ChildGuard};
use harness::*;

const LONG: Duration = Duration::from_secs(60);

fn agent(s: &KeelsonServer, extra: &[&str]) -> Command {
    let mut cmd = Command::new(keelson());
    cmd.arg("agent")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(extra);
    cmd
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

#[test]
fn hollow_nodes_register_heartbeat_and_run_their_pods() {
    let s = KeelsonServer::start(keelson(), &[]);
    let log = File::create(s.dir.path().join("agent.log")).expect("agent log");
    let _agent = ChildGuard::spawn(
        "keelson agent",
        agent(
            &s,
            &[
                "--runtime",
                "fake",
                "--fake-nodes",
                "3",
                "--node-name",
                "hollow",
                "--node-labels",
                "pool=hollow",
                "--max-pods",
                "50",
            ],
        )
        .stdout(Stdio::null())
        .stderr(log),
    )
    .expect("start the agent");
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        let nodes: Api<Node> = Api::all(c.clone());
        let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");

        // Three Ready nodes with what a kubelet reports, and their Leases.
        let listed = eventually(&s, "three hollow nodes Ready", LONG, || async {
            let l = nodes
                .list(&ListParams::default().labels("pool=hollow"))
                .await
                .ok()?;
            (l.items.len() == 3 && l.items.iter().all(node_ready)).then_some(l.items)
        })
        .await;
        let mut names: Vec<String> = listed.iter().map(|n| n.name_any()).collect();
        names.sort();
        assert_eq!(names, ["hollow-0", "hollow-1", "hollow-2"]);
        for n in &listed {
            let st = n.status.clone().unwrap_or_default();
            let info = st.node_info.expect("nodeInfo");
            assert!(
                info.container_runtime_version.starts_with("fake://"),
                "{info:?}"
            );
            assert_eq!(info.operating_system, "linux");
            let alloc = st.allocatable.unwrap_or_default();
            assert_eq!(alloc.get("pods").map(|q| q.0.as_str()), Some("50"));
            assert_eq!(
                n.labels().get("kubernetes.io/hostname"),
                Some(&n.name_any())
            );
            let lease = eventually(&s, "the node's lease", LONG, || async {
                leases.get(&n.name_any()).await.ok()
            })
            .await;
            let spec = lease.spec.expect("lease spec");
            assert_eq!(spec.holder_identity.as_deref(), Some(n.name_any().as_str()));
            assert!(spec.renew_time.is_some());
            assert_eq!(
                lease
                    .metadata
                    .owner_references
                    .map(|o| o[0].kind.clone())
                    .as_deref(),
                Some("Node")
            );
        }

        // A Deployment's pods run on the hollow nodes.
        kubectl_ok(
            &s,
            &[
                "create",
                "deployment",
                "web",
                "--image=registry.invalid/web:1",
                "--replicas=6",
            ],
        );
        kubectl_ok(
            &s,
            &["rollout", "status", "deployment/web", "--timeout=60s"],
        );
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let running = eventually(&s, "6 web pods Running and Ready", LONG, || async {
            let l = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let ok =
                l.items.len() == 6 && l.items.iter().all(|p| phase(p) == "Running" && is_ready(p));
            ok.then_some(l.items)
        })
        .await;
        let mut ips = std::collections::HashSet::new();
        for p in &running {
            let st = p.status.clone().unwrap_or_default();
            assert!(p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with("hollow-")));
            assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
            assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
            assert!(st.start_time.is_some());
            let cs = st.container_statuses.unwrap_or_default();
            assert_eq!(cs.len(), 1);
            assert!(
                cs[0].ready
                    && cs[0]
                        .state
                        .as_ref()
                        .and_then(|s| s.running.as_ref())
                        .is_some()
            );
            ips.insert(st.pod_ip.expect("pod IP"));
        }
        assert_eq!(ips.len(), 6, "pod IPs are distinct: {ips:?}");
        let used = pods_by_node(&running);
        assert!(used.len() >= 2, "spread over the nodes: {used:?}");

        // Deleting a pod with the default grace period: the agent stops it and makes the
        // final delete, long before the 30 s grace period would end.
        let victim = running[0].name_any();
        let started = std::time::Instant::now();
        kubectl_ok(&s, &["delete", "pod", &victim, "--wait=false"]);
        eventually(
            &s,
            "the deleted pod gone",
            Duration::from_secs(20),
            || async {
                match pods.get(&victim).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                    _ => None,
                }
            },
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(20));
        kubectl_ok(
            &s,
            &["rollout", "status", "deployment/web", "--timeout=60s"],
        );

        // Pods that end: exit codes decide Succeeded and Failed, and a Job completes.
        for (name, code, want) in [("ok", "0", "Succeeded"), ("bad", "3", "Failed")] {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {EXIT_CODE: code}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "registry.invalid/task:1"}]},
            }))
            .expect("pod");
            pods.create(&PostParams::default(), &p)
                .await
                .expect("create pod");
            let done = eventually(&s, &format!("{name} {want}"), LONG, || async {
                let p = pods.get(name).await.ok()?;
                (phase(&p) == want).then_some(p)
            })
            .await;
            let cs = done
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default();
            let term = cs[0]
                .state
                .as_ref()
                .and_then(|s| s.terminated.clone())
                .expect("terminated");
            assert_eq!(term.exit_code.to_string(), code);
        }
        let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "task"},
            "spec": {"completions": 2, "parallelism": 2, "template": {
                "metadata": {"annotations": {EXIT_CODE: "0"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "registry.invalid/task:1"}]}}},
        }))
        .expect("job");
        jobs.create(&PostParams::default(), &job)
            .await
            .expect("create job");
        eventually(&s, "the job complete", LONG, || async {
            let j = jobs.get("task").await.ok()?;
            let st = j.status?;
            let complete = st
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
            (complete && st.succeeded == Some(2)).then_some(())
        })
        .await;
    });
}

#[test]
fn agent_flags_are_checked() {
    let s = KeelsonServer::start(keelson(), &[]);
    let root = s.dir.path().join("agent-root").display().to_string();
    for (extra, want) in [
        (
            vec!["--runtime", "podman", "--fake-nodes", "2"],
            "--fake-nodes needs --runtime fake",
        ),
        (
            vec![
                "--runtime",
                "podman",
                "--podman-socket",
                "/nonexistent/podman.sock",
                "--root-dir",
                &root,
            ],
            "connecting to Podman at /nonexistent/podman.sock",
        ),
        (
            vec!["--runtime", "fake", "--register-with-taints", "a=b"],
            "--register-with-taints",
        ),
        (
            vec!["--runtime", "fake", "--node-labels", "novalue"],
            "--node-labels",
        ),
        (
            vec!["--runtime", "fake", "--fake-nodes", "0"],
            "--fake-nodes must be at least 1",
        ),
    ] {
        let err_path = s.dir.path().join("agent-flags.err");
        let err = File::create(&err_path).expect("stderr file");
        let mut child = ChildGuard::spawn(
            "keelson agent",
            agent(&s, &extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err),
        )
        .expect("run the agent");
        // Bounded: a flag that is wrongly accepted leaves an agent running, killed on drop.
        let status = child
            .wait_timeout(Duration::from_secs(20))
            .expect("wait")
            .unwrap_or_else(|| panic!("{extra:?}: the agent kept running"));
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        assert!(!status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
}

/// The base64 client certificate in an agent's kubeconfig.
fn client_cert(kubeconfig: &std::path::Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).unwrap_or_default();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn a_joined_agent_renews_its_client_certificate_when_it_is_due_and_keeps_working() {
    let s = KeelsonServer::start(keelson(), &["--cluster-init"]);
    let token = s.token();
    let root = s.dir.path().join("agent-root");
    let kubeconfig = root.join("kubelet.kubeconfig");
    let joined = |extra: &[&str], log: &str| {
        let log = File::create(s.dir.path().join(log)).expect("agent log");
        let mut cmd = Command::new(keelson());
        cmd.args([
            "agent",
            "--server",
            &s.url(),
            "--token",
            &token,
            "--runtime",
            "fake",
            "--node-name",
            "joined",
            "--port",
            "0",
        ])
        .arg("--root-dir")
        .arg(&root)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        ChildGuard::spawn("keelson agent", &mut cmd).expect("agent")
    };
    let ready = |what: &str| {
        wait_until(LONG, what, || {
            s.kubectl(&[
                "get",
                "node",
                "joined",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .stdout
            .trim()
                == "True"
        })
    };
    // A fresh join: a year's certificate, not due for renewal.
    let first = joined(&[], "agent-1.log");
    ready("the joined node is Ready");
    let cert = client_cert(&kubeconfig);
    assert!(!cert.is_empty(), "no client certificate in the kubeconfig");
    drop(first);
    assert_eq!(client_cert(&kubeconfig), cert, "nothing renewed it");

    // Renewal due (a 400-day window covers the 365-day certificate): the restarted agent gets
    // a new certificate through the join endpoint, writes it and goes on with it.
    let _second = joined(&["--renew-client-certificate-days", "400"], "agent-2.log");
    wait_until(
        LONG,
        "a renewed client certificate in the kubeconfig",
        || {
            let now = client_cert(&kubeconfig);
            !now.is_empty() && now != cert
        },
    );
    let log = s.dir.path().join("agent-2.log");
    wait_until(LONG, "the agent says it renewed", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("renewed the client certificate")
    });
    let kc = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(kc.contains("system:node:joined"), "{kc}");
    // It keeps heartbeating: the node's Lease is renewed after the certificate was.
    let renew_time = || {
        s.kubectl(&[
            "get",
            "lease",
            "joined",
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    let before = renew_time();
    wait_until(LONG, "a Lease renewal with the new certificate", || {
        let now = renew_time();
        !now.is_empty() && now != before
    });
    ready("the node stays Ready");
}
