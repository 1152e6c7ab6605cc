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
    let leaders: usize = [&first, &second, &third]
        .iter()
        .map(|s| kubectl_ok(s, &["get", "--raw", "/metrics"]))
        .filter(|m| m.contains("etcd_server_is_leader 1\n"))
        .count();
    assert_eq!(leaders, 1, "exactly one server's store member leads");

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
    let mut first_args = vec!["--cluster-init"];
    first_args.extend(extra);
    let first = KeelsonServer::start(keelson(), &first_args);
    let token = first.token();
    let second = KeelsonServer::join(keelson(), "k2", &first, &token, &extra);
    let third = KeelsonServer::join(keelson(), "k3", &first, &token, &extra);
    wait_voters(&first, &["k1", "k2", "k3"]);
    let mut servers = [first, second, third];

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
