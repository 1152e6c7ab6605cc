//! Installing a multi-server control plane the k3s way: `keelson server --cluster-init`
//! prints a join token; `keelson server --server … --token …` joins more servers (learners
//! that promote themselves once caught up) and `keelson agent --server … --token …` joins
//! workers. Wrong tokens are refused with clear errors.

mod common;
#[allow(dead_code)]
mod harness;

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::KeelsonServer;
use common::{wait_for, ChildGuard};
use harness::*;

/// `(name, is_learner)` of every store member, as a member at `client_port` lists them.
fn members(client_port: u16) -> Option<Vec<(String, bool)>> {
    runtime().block_on(async {
        let mut c = etcd_client::Client::connect([format!("http://127.0.0.1:{client_port}")], None)
            .await
            .ok()?;
        let list = tokio::time::timeout(Duration::from_secs(5), c.member_list())
            .await
            .ok()?
            .ok()?;
        let mut out: Vec<(String, bool)> = list
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.is_learner()))
            .collect();
        out.sort();
        Some(out)
    })
}

/// Waits until the members are exactly `names`, every one a voter.
fn wait_voters(s: &KeelsonServer, names: &[&str]) {
    let want: Vec<(String, bool)> = names.iter().map(|n| (n.to_string(), false)).collect();
    wait_for(
        Duration::from_secs(60),
        &format!("voting members {names:?}"),
        || members(s.client_port).filter(|m| *m == want),
    );
}

#[test]
fn servers_and_agents_join_with_the_token_and_only_with_it() {
    let first = KeelsonServer::start(keelson(), &["--cluster-init"]);
    let token = first.token();
    assert!(
        token.starts_with("K10") && token.contains("::server:"),
        "{token}"
    );
    assert!(
        first.full_log().contains(&token),
        "--cluster-init prints the token:\n{}",
        first.server_log()
    );

    // A token for this cluster's CA with the wrong secret: refused by the server.
    let (hash, _) = token.split_once("::server:").expect("token");
    let wrong_secret = format!("{hash}::server:not-the-secret");
    let out = KeelsonServer::joiner(keelson(), "bad", &first, &wrong_secret, &[]).run_to_exit();
    assert!(!out.ok, "a wrong secret must not join");
    assert!(
        out.stderr.contains("refused the join token"),
        "{}",
        out.stderr
    );
    // A token of another cluster (another CA hash): the joiner refuses the server.
    let other_ca = format!("K10{}::server:whatever", "0".repeat(64));
    let out = KeelsonServer::joiner(keelson(), "bad", &first, &other_ca, &[]).run_to_exit();
    assert!(!out.ok);
    assert!(
        out.stderr.contains("does not match the join token"),
        "{}",
        out.stderr
    );
    let out = KeelsonServer::joiner(keelson(), "bad", &first, "garbage", &[]).run_to_exit();
    assert!(!out.ok);
    assert!(out.stderr.contains("malformed"), "{}", out.stderr);
    // None of that touched the membership.
    assert_eq!(
        members(first.client_port),
        Some(vec![("k1".to_string(), false)])
    );

    // Two servers join, through different members, and become voters.
    let second = KeelsonServer::join(keelson(), "k2", &first, &token, &[]);
    wait_voters(&first, &["k1", "k2"]);
    let third = KeelsonServer::join(keelson(), "k3", &second, &token, &[]);
    wait_voters(&first, &["k1", "k2", "k3"]);
    assert_eq!(
        third.token(),
        token,
        "a joined server admits joiners with the same token"
    );

    // One cluster, one CA: a write through the third is read through the first, and the
    // first server's admin credentials are good at the third.
    kubectl_ok(
        &third,
        &["create", "configmap", "joined", "--from-literal=k=v"],
    );
    let v = kubectl_ok(
        &first,
        &["get", "configmap", "joined", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(v.trim(), "v");
    let out = first.kubectl(&[
        "--server",
        &third.url(),
        "get",
        "configmap",
        "joined",
        "-o",
        "name",
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "configmap/joined");

    // `kubectl delete node` of a server's node leaves its store member alone: the Node goes,
    // the garbage collector removes the node's Lease (so the controllers have seen the
    // deletion), and every member still votes and serves writes.
    {
        let _k3_agent = agent_joining(first.dir.path(), &[third.url()], &token, "k3");
        wait_for(Duration::from_secs(60), "node k3 registered", || {
            let out = first.kubectl(&["get", "lease", "-n", "kube-node-lease", "k3"]);
            out.ok.then_some(())
        });
    }
    kubectl_ok(&first, &["delete", "node", "k3"]);
    wait_for(
        Duration::from_secs(60),
        "the garbage collector deletes node k3's Lease",
        || {
            let out = first.kubectl(&["get", "lease", "-n", "kube-node-lease", "k3"]);
            (!out.ok && out.stderr.contains("NotFound")).then_some(())
        },
    );
    let voters: Vec<(String, bool)> = ["k1", "k2", "k3"]
        .iter()
        .map(|n| (n.to_string(), false))
        .collect();
    assert_eq!(members(first.client_port), Some(voters));
    // (Through the second server: the third's request counts are checked below.)
    kubectl_ok(
        &second,
        &[
            "create",
            "configmap",
            "after-node-delete",
            "--from-literal=k=v",
        ],
    );

    // /metrics: the create counted where it was served, and the store's view of raft.
    let metrics = kubectl_ok(&third, &["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(
            "apiserver_request_total{verb=\"POST\",group=\"\",version=\"v1\",resource=\"configmaps\",subresource=\"\",code=\"201\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE apiserver_request_duration_seconds histogram"));
    assert!(metrics.contains("etcd_server_has_leader 1\n"), "{metrics}");
    assert!(metrics.contains("etcd_server_is_learner 0\n"), "{metrics}");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    assert!(value("etcd_server_leader_changes_seen_total") >= 1.0);
    assert!(value("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0);
    assert!(value("etcd_debugging_mvcc_keys_total") >= 1.0);
    // The apiserver's own watch on the store.
    assert!(value("etcd_debugging_mvcc_watcher_total") >= 1.0);
    assert!(value("etcd_debugging_mvcc_events_total") >= 1.0);
    assert!(value("etcd_server_proposals_pending") >= 0.0);
    assert!(value("etcd_server_proposals_committed_total") >= 1.0);
    assert!(metrics.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} "));
    let leaders: usize = [&first, &second, &third]
        .iter()
        .map(|s| kubectl_ok(s, &["get", "--raw", "/metrics"]))
        .filter(|m| m.contains("etcd_server_is_leader 1\n"))
        .count();
    assert_eq!(leaders, 1, "exactly one server's store member leads");
    // Health as Kubernetes reports it.
    let ready = kubectl_ok(&third, &["get", "--raw", "/readyz?verbose"]);
    assert!(ready.contains("[+]etcd ok\n"), "{ready}");
    assert!(ready.contains("[+]etcd-readiness ok\n"), "{ready}");
    assert!(ready.ends_with("readyz check passed\n"), "{ready}");
    assert_eq!(kubectl_ok(&third, &["get", "--raw", "/readyz/etcd"]), "ok");
    let missing = third.kubectl(&["get", "--raw", "/readyz/no-such-check"]);
    assert!(
        !missing.ok && missing.stderr.contains("NotFound"),
        "{}",
        missing.stderr
    );

    // The controllers' work queues, on whichever server runs the controller manager.
    wait_for(Duration::from_secs(30), "work-queue metrics", || {
        [&first, &second, &third]
            .iter()
            .map(|s| kubectl_ok(s, &["get", "--raw", "/metrics"]))
            .any(|m| m.contains("workqueue_work_duration_seconds_count{name=\"namespace\"} "))
            .then_some(())
    });

    // An agent joins through the second server and registers its node.
    let urls = ["https://127.0.0.1:1".to_string(), second.url()];
    let _agent = agent_joining(first.dir.path(), &urls, &token, "worker-1");
    let root = first.dir.path().join("worker-1-root");
    wait_for(Duration::from_secs(60), "node worker-1 Ready", || {
        let out = first.kubectl(&[
            "get",
            "node",
            "worker-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (out.stdout.trim() == "True").then_some(())
    });
    let kc = std::fs::read_to_string(root.join("kubelet.kubeconfig")).expect("kubeconfig");
    assert!(kc.contains("system:node:worker-1"), "{kc}");
    // The agent's join needs the token too.
    let out = common::server::run_bounded(
        {
            let mut c = Command::new(keelson());
            c.args([
                "agent",
                "--server",
                &second.url(),
                "--token",
                &wrong_secret,
                "--runtime",
                "fake",
                "--node-name",
                "worker-2",
            ])
            .arg("--root-dir")
            .arg(first.dir.path().join("agent-2"));
            c
        },
        None,
        Duration::from_secs(60),
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("refused the join token"),
        "{}",
        out.stderr
    );

    // A joined server restarts from its data dir without joining again.
    let mut second = second;
    second.restart();
    wait_voters(&first, &["k1", "k2", "k3"]);
    let v = kubectl_ok(
        &second,
        &["get", "configmap", "joined", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(v.trim(), "v");
    drop(third);
}

/// `(member id, leader id)` as the member at `client_port` reports them.
fn leader_of(client_port: u16) -> Option<(u64, u64)> {
    runtime().block_on(async {
        let mut c = etcd_client::Client::connect([format!("http://127.0.0.1:{client_port}")], None)
            .await
            .ok()?;
        let s = tokio::time::timeout(Duration::from_secs(3), c.status())
            .await
            .ok()?
            .ok()?;
        let me = s.header()?.member_id();
        (s.leader() != 0).then_some((me, s.leader()))
    })
}

/// `keelson agent --runtime fake` joining through `urls`, its root and log under `dir`.
fn agent_joining(dir: &std::path::Path, urls: &[String], token: &str, node: &str) -> ChildGuard {
    let log = File::create(dir.join(format!("{node}.log"))).expect("log");
    let mut cmd = Command::new(keelson());
    cmd.args([
        "agent",
        "--server",
        &urls.join(","),
        "--token",
        token,
        "--runtime",
        "fake",
        "--node-name",
        node,
        "--port",
        "0",
        "--log-level",
        "warn",
    ])
    .arg("--root-dir")
    .arg(dir.join(format!("{node}-root")))
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("log"))
    .stderr(log);
    ChildGuard::spawn("keelson agent", &mut cmd).expect("agent")
}

/// What `kubectl get` prints for a JSONPath, or "" when the call fails.
fn jsonpath(s: &KeelsonServer, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expr = format!("jsonpath={path}");
    args.extend(["-o", &expr, "--request-timeout=5s"]);
    let out = s.kubectl(&args);
    if out.ok {
        out.stdout.trim().to_string()
    } else {
        String::new()
    }
}

#[test]
fn killing_the_store_leaders_server_loses_neither_writes_nor_replicas() {
    let extra = ["--leader-elect-lease-duration", "3s"];
    let mut servers = three_servers(&extra);
    let token = servers[0].token();

    // Two workers that know every server.
    let urls: Vec<String> = servers.iter().map(KeelsonServer::url).collect();
    let _agents = [
        agent_joining(servers[0].dir.path(), &urls, &token, "worker-a"),
        agent_joining(servers[0].dir.path(), &urls, &token, "worker-b"),
    ];
    for n in ["worker-a", "worker-b"] {
        wait_for(Duration::from_secs(60), &format!("{n} Ready"), || {
            let ready = jsonpath(
                &servers[0],
                &["node", n],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            (ready == "True").then_some(())
        });
    }
    kubectl_ok(
        &servers[0],
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.invalid/web",
            "--replicas=3",
        ],
    );
    let available = |s: &KeelsonServer| {
        jsonpath(s, &["deployment", "web"], "{.status.availableReplicas}") == "3"
    };
    wait_for(Duration::from_secs(60), "3 available replicas", || {
        available(&servers[0]).then_some(())
    });
    // The server whose scheduler led counted the three bindings.
    let scheduled = servers
        .iter()
        .map(|s| kubectl_ok(s, &["get", "--raw", "/metrics"]))
        .filter_map(|m| {
            m.lines()
                .find_map(|l| {
                    l.strip_prefix("scheduler_schedule_attempts_total{result=\"scheduled\"} ")
                })
                .and_then(|v| v.parse::<u64>().ok())
        })
        .max()
        .expect("scheduler metrics on one server");
    assert!(scheduled >= 3, "{scheduled} pods scheduled");

    // The member that leads the store, and its server.
    let leader = wait_for(Duration::from_secs(30), "a store leader", || {
        servers
            .iter()
            .find_map(|s| leader_of(s.client_port))
            .map(|(_, l)| l)
    });
    let at = wait_for(Duration::from_secs(30), "the leader's server", || {
        servers
            .iter()
            .position(|s| leader_of(s.client_port).is_some_and(|(me, _)| me == leader))
    });
    // kubectl through `keelson proxy`, which lists the doomed server first.
    let proxy_port = common::free_port();
    let proxy_url = format!("https://127.0.0.1:{proxy_port}");
    let mut order: Vec<String> = vec![servers[at].url()];
    order.extend((1..3).map(|k| servers[(at + k) % 3].url()));
    let _proxy = {
        let log = File::create(servers[0].dir.path().join("proxy.log")).expect("log");
        let mut cmd = Command::new(keelson());
        cmd.args(["proxy", "--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--server", &order.join(","), "--connect-timeout", "1s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        ChildGuard::spawn("keelson proxy", &mut cmd).expect("proxy")
    };
    let via_proxy = |s: &KeelsonServer, args: &[&str]| {
        let mut all = vec!["--server", proxy_url.as_str()];
        all.extend_from_slice(args);
        s.kubectl(&all)
    };
    wait_for(Duration::from_secs(20), "kubectl through the proxy", || {
        via_proxy(&servers[at], &["get", "--raw", "/readyz"])
            .ok
            .then_some(())
    });
    let killed_pid = servers[at].pid().expect("running");
    servers[at].kill();
    let killed = std::time::Instant::now();
    let survivor = &servers[(at + 1) % 3];

    // Writes through kubectl resume on a surviving server.
    let mut attempt = 0;
    let resumed = wait_for(Duration::from_secs(30), "a write after the kill", || {
        attempt += 1;
        let name = format!("after-kill-{attempt}");
        let out = survivor.kubectl(&[
            "create",
            "configmap",
            &name,
            "--from-literal=k=v",
            "--request-timeout=1s",
        ]);
        out.ok.then(|| killed.elapsed())
    });
    eprintln!(
        "failover: the first kubectl write after kill -9 of the leader's server succeeded {:.0} ms after the kill ({attempt} attempts)",
        resumed.as_secs_f64() * 1000.0
    );
    assert!(
        resumed < Duration::from_secs(10),
        "writes resumed only after {resumed:?}"
    );
    // The proxy moved kubectl to a live server: the write is read back through it.
    let written = format!("after-kill-{attempt}");
    let out = via_proxy(
        survivor,
        &["get", "configmap", &written, "-o", "jsonpath={.data.k}"],
    );
    assert!(
        out.ok,
        "kubectl through the proxy after the kill: {}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "v");

    // The controllers live on a survivor (they move if they lived on the killed server), and
    // the Deployment keeps its replicas: a deleted pod is replaced.
    let live: Vec<u32> = servers.iter().filter_map(KeelsonServer::pid).collect();
    assert!(!live.contains(&killed_pid));
    wait_for(Duration::from_secs(30), "a live controller manager", || {
        let holder = jsonpath(
            survivor,
            &["lease", "-n", "kube-system", "kube-controller-manager"],
            "{.spec.holderIdentity}",
        );
        let pid: Option<u32> = holder.split('_').rev().nth(1).and_then(|p| p.parse().ok());
        pid.filter(|p| live.contains(p))
    });
    let pods = jsonpath(
        survivor,
        &["pods", "-l", "app=web"],
        "{.items[0].metadata.name}",
    );
    assert!(!pods.is_empty());
    kubectl_ok(survivor, &["delete", "pod", &pods, "--wait=false"]);
    wait_for(
        Duration::from_secs(60),
        "3 available replicas again",
        || {
            let names = jsonpath(
                survivor,
                &["pods", "-l", "app=web"],
                "{.items[*].metadata.name}",
            );
            (available(survivor) && !names.split_whitespace().any(|n| n == pods)).then_some(())
        },
    );
    // Both agents still heartbeat: through whichever server is up.
    for n in ["worker-a", "worker-b"] {
        wait_for(
            Duration::from_secs(40),
            &format!("{n} renews its lease"),
            || {
                let renewed = jsonpath(
                    survivor,
                    &["lease", "-n", "kube-node-lease", n],
                    "{.spec.renewTime}",
                );
                let t: jiff::Timestamp = renewed.parse().ok()?;
                let since = jiff::Timestamp::now().duration_since(t);
                (since < jiff::SignedDuration::try_from(killed.elapsed()).ok()?).then_some(())
            },
        );
    }

    // Member replacement: the dead server's member is removed with `keelson kv member
    // remove`, and a new server with a fresh data dir joins under the same name.
    let names = ["k1", "k2", "k3"];
    let dead = names[at];
    let eps = vec![format!("http://127.0.0.1:{}", survivor.client_port)];
    let removed = common::keelson_kv(
        std::path::Path::new(keelson()),
        &eps,
        &["member", "remove", &format!("{leader:x}")],
    );
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    let mut left: Vec<&str> = names.iter().copied().filter(|n| *n != dead).collect();
    wait_voters(survivor, &left);
    let replacement = KeelsonServer::join(keelson(), dead, survivor, &token, &extra);
    left.push(dead);
    left.sort();
    wait_voters(survivor, &left);
    let written = format!("after-kill-{attempt}");
    let v = kubectl_ok(
        &replacement,
        &[
            "get",
            "configmap",
            &written,
            "-o",
            "jsonpath={.metadata.name}",
        ],
    );
    assert_eq!(
        v.trim(),
        written,
        "the replacement serves what was written before it"
    );
}

/// HashKV of the member at `client_port` at `rev`.
fn hash_at(client_port: u16, rev: i64) -> u64 {
    let endpoint = format!("http://127.0.0.1:{client_port}");
    common::hashkv_at(std::path::Path::new(keelson()), &endpoint, rev).0
}

/// `--cluster-init` then two servers joining it with the token (all with `extra`), once
/// all three are voters.
fn three_servers(extra: &[&str]) -> [KeelsonServer; 3] {
    let mut first_args = vec!["--cluster-init"];
    first_args.extend_from_slice(extra);
    let first = KeelsonServer::start(keelson(), &first_args);
    let token = first.token();
    let second = KeelsonServer::join(keelson(), "k2", &first, &token, extra);
    let third = KeelsonServer::join(keelson(), "k3", &first, &token, extra);
    wait_voters(&first, &["k1", "k2", "k3"]);
    [first, second, third]
}

/// Names of the ConfigMaps in `ns` as `s` lists them, sorted.
fn configmaps(s: &KeelsonServer, ns: &str) -> Vec<String> {
    let out = kubectl_ok(s, &["get", "configmaps", "-n", ns, "-o", "name"]);
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_rebuilds_a_new_three_server_cluster_with_the_same_objects() {
    let [first, second, third] = three_servers(&[]);
    kubectl_ok(&first, &["create", "namespace", "restore-me"]);
    for i in 0..5 {
        kubectl_ok(
            &first,
            &[
                "create",
                "configmap",
                &format!("before-{i}"),
                "-n",
                "restore-me",
                &format!("--from-literal=i={i}"),
            ],
        );
    }
    kubectl_ok(
        &second,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "restore-me",
            "--from-literal=password=hunter2",
        ],
    );
    kubectl_ok(
        &third,
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "restore-me",
            "--image=registry.invalid/web",
            "--replicas=2",
        ],
    );

    // `snapshot save` from a member while a client keeps writing through another server;
    // each write's resourceVersion is its store revision.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (bin, kubeconfig) = (common::server::kubectl_binary(), second.kubeconfig());
        std::thread::spawn(move || {
            let mut written: Vec<(String, i64)> = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 400 {
                let name = format!("during-{i:03}");
                let out = Command::new(&bin)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["create", "configmap", &name, "-n", "restore-me"])
                    .args([
                        "--from-literal=k=v",
                        "-o",
                        "jsonpath={.metadata.resourceVersion}",
                    ])
                    .output()
                    .expect("kubectl");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let rv: i64 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("resourceVersion");
                written.push((name, rv));
                i += 1;
            }
            written
        })
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cluster.snapshot");
    let file_s = file.display().to_string();
    // Some writes land before the save, so it runs while writes go on.
    wait_for(Duration::from_secs(60), "writes in flight", || {
        let n = configmaps(&first, "restore-me").len();
        (n >= 5 + 3).then_some(())
    });
    let saved = common::keelson_kv(
        std::path::Path::new(keelson()),
        &[format!("http://127.0.0.1:{}", third.client_port)],
        &["snapshot", "save", &file_s],
    );
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().expect("writer");
    let status = common::keelson_kv(
        std::path::Path::new(keelson()),
        &[],
        &["snapshot", "status", &file_s, "-w", "json"],
    )
    .ok();
    let st: serde_json::Value = serde_json::from_str(status.trim()).expect("status json");
    let snap_rev = st["revision"].as_i64().expect("revision");
    let old_hash = hash_at(first.client_port, snap_rev);
    // Exactly the objects that existed at the snapshot's revision come back.
    let root_ca = "configmap/kube-root-ca.crt".to_string();
    let publishes_root_ca = configmaps(&first, "restore-me").contains(&root_ca);
    let mut expected: Vec<String> = (0..5)
        .map(|i| format!("configmap/before-{i}"))
        .chain(publishes_root_ca.then_some(root_ca))
        .chain(
            written
                .iter()
                .filter(|(_, rv)| *rv <= snap_rev)
                .map(|(n, _)| format!("configmap/{n}")),
        )
        .collect();
    expected.sort();
    let during = written.iter().filter(|(_, rv)| *rv <= snap_rev).count();
    assert!(
        during > 0 && during < written.len(),
        "the save ran while writes went on: {during} of {} writes before it",
        written.len()
    );
    drop((first, second, third));

    // A new first server from the file alone: reset, then an ordinary start.
    let flag = format!("--cluster-reset-restore-path={file_s}");
    let mut restored = KeelsonServer::prepared(keelson(), &["--cluster-reset", &flag]);
    let out = restored.run_to_exit();
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("Restart this server without --cluster-reset"),
        "{}",
        out.stderr
    );
    restored.start_without(|a| a.starts_with("--cluster-reset"));
    let token = restored.token();
    let k2 = KeelsonServer::join(keelson(), "k2", &restored, &token, &[]);
    let k3 = KeelsonServer::join(keelson(), "k3", &k2, &token, &[]);
    wait_voters(&restored, &["k1", "k2", "k3"]);
    // The restored member built a raft snapshot for the newcomers (and reports its size),
    // and they installed it.
    for s in [&restored, &k2, &k3] {
        let metrics = kubectl_ok(s, &["get", "--raw", "/metrics"]);
        let size: f64 = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("keelson_raft_snapshot_size_bytes ")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no snapshot size in /metrics:\n{metrics}"));
        assert!(size > 0.0, "{metrics}");
    }
    for s in [&restored, &k2, &k3] {
        assert_eq!(hash_at(s.client_port, snap_rev), old_hash);
        assert_eq!(configmaps(s, "restore-me"), expected);
        let pw = kubectl_ok(
            s,
            &[
                "get",
                "secret",
                "creds",
                "-n",
                "restore-me",
                "-o",
                "jsonpath={.data.password}",
            ],
        );
        assert_eq!(pw.trim(), "aHVudGVyMg==");
        let replicas = kubectl_ok(
            s,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                "restore-me",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        );
        assert_eq!(replicas.trim(), "2");
    }
    // The new cluster takes writes.
    kubectl_ok(
        &k3,
        &["create", "configmap", "after-restore", "-n", "restore-me"],
    );
}

/// What the rolling-restart writer saw.
#[derive(Default)]
struct RollingLog {
    /// (key, value) of every acknowledged put.
    acked: Vec<(String, String)>,
    /// Puts that still failed when their retry budget ran out.
    failed: Vec<String>,
    /// Attempts that failed and were retried.
    retried: usize,
    /// The longest time between two acknowledged puts.
    longest_gap: Duration,
}

/// Puts `roll/<n>` one after another through a client that knows every member, retrying a
/// failed attempt (as clientv3's retry interceptor does) for up to 15 s, until `stop`.
fn rolling_writer(
    endpoints: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<RollingLog>>,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3));
        let mut client = etcd_client::Client::connect(&endpoints, Some(opts))
            .await
            .expect("etcd client");
        let mut last_ack = std::time::Instant::now();
        let mut n = 0u32;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let key = format!("roll/{n:05}");
            let value = format!("v{n}");
            let budget = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                match client.put(key.as_str(), value.as_str(), None).await {
                    Ok(_) => {
                        let mut l = log.lock().expect("log");
                        l.longest_gap = l.longest_gap.max(last_ack.elapsed());
                        last_ack = std::time::Instant::now();
                        l.acked.push((key.clone(), value.clone()));
                        break;
                    }
                    Err(_) if std::time::Instant::now() < budget => {
                        log.lock().expect("log").retried += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        log.lock().expect("log").failed.push(format!("{key}: {e}"));
                        break;
                    }
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn restarting_every_server_in_turn_and_replacing_one_loses_no_write() {
    let mut servers = three_servers(&[]);
    let endpoints: Vec<String> = servers
        .iter()
        .map(|s| format!("http://127.0.0.1:{}", s.client_port))
        .collect();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = std::sync::Arc::new(std::sync::Mutex::new(RollingLog::default()));
    let writer = {
        let (eps, stop, log) = (endpoints.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || rolling_writer(eps, stop, log))
    };
    let acked = |log: &std::sync::Mutex<RollingLog>| log.lock().expect("log").acked.len();
    // The leader goes last, so the restarts hit followers and then force a hand-over.
    let leader = wait_for(Duration::from_secs(30), "a store leader", || {
        servers
            .iter()
            .find_map(|s| leader_of(s.client_port))
            .map(|(_, l)| l)
    });
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by_key(|i| leader_of(servers[*i].client_port).is_some_and(|(me, _)| me == leader));
    for i in order {
        let before = acked(&log);
        wait_for(Duration::from_secs(60), "writes before the restart", || {
            (acked(&log) >= before + 25).then_some(())
        });
        let stopped = servers[i].graceful_restart();
        eprintln!("rolling restart: server {} stopped in {stopped:?}", i + 1);
        wait_voters(&servers[0], &["k1", "k2", "k3"]);
    }
    let before = acked(&log);
    wait_for(Duration::from_secs(60), "writes after the restarts", || {
        (acked(&log) >= before + 25).then_some(())
    });

    // Member replacement under the same writer: k3's server dies for good, its member is
    // removed, and a new server with a fresh data dir joins under its name.
    let (dead_id, _) = wait_for(Duration::from_secs(30), "k3's member id", || {
        leader_of(servers[2].client_port)
    });
    servers[2].kill();
    let token = servers[0].token();
    let removed = common::keelson_kv(
        std::path::Path::new(keelson()),
        &endpoints[..2],
        &["member", "remove", &format!("{dead_id:x}")],
    );
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    wait_voters(&servers[0], &["k1", "k2"]);
    let before = acked(&log);
    wait_for(Duration::from_secs(60), "writes with two members", || {
        (acked(&log) >= before + 10).then_some(())
    });
    servers[2] = KeelsonServer::join(keelson(), "k3", &servers[0], &token, &[]);
    wait_voters(&servers[0], &["k1", "k2", "k3"]);
    let before = acked(&log);
    wait_for(
        Duration::from_secs(60),
        "writes after the replacement",
        || (acked(&log) >= before + 25).then_some(()),
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().expect("writer");

    let log = log.lock().expect("log");
    eprintln!(
        "rolling restart and replacement: {} puts acknowledged, {} attempts retried, longest gap between acknowledgements {:?}",
        log.acked.len(),
        log.retried,
        log.longest_gap
    );
    assert!(
        log.failed.is_empty(),
        "writes failed after retries: {:?}",
        log.failed
    );
    // Every acknowledged write is there, read linearizably through every member (the
    // replacement included).
    let members_now: Vec<String> = servers
        .iter()
        .map(|s| format!("http://127.0.0.1:{}", s.client_port))
        .collect();
    runtime().block_on(async {
        for ep in &members_now {
            let mut c = etcd_client::Client::connect([ep.as_str()], None)
                .await
                .expect("client");
            let got = c
                .get("roll/", Some(etcd_client::GetOptions::new().with_prefix()))
                .await
                .expect("get");
            let stored: std::collections::HashMap<String, String> = got
                .kvs()
                .iter()
                .map(|kv| {
                    (
                        kv.key_str().expect("key").to_string(),
                        kv.value_str().expect("value").to_string(),
                    )
                })
                .collect();
            for (k, v) in &log.acked {
                assert_eq!(stored.get(k), Some(v), "{k} via {ep}");
            }
        }
    });

    // Two of three servers gone: the last is alive but not ready, and says why.
    servers[1].kill();
    servers[2].kill();
    let ready = wait_for(Duration::from_secs(30), "readyz failing", || {
        let out = servers[0].kubectl(&["get", "--raw", "/readyz?verbose"]);
        (!out.ok).then_some(out)
    });
    assert!(
        ready.stdout.contains("[-]etcd failed") || ready.stderr.contains("[-]etcd failed"),
        "{ready:?}"
    );
    assert_eq!(kubectl_ok(&servers[0], &["get", "--raw", "/livez"]), "ok");
}
