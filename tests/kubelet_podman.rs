//! `keelson agent` on Podman, against a real `keelson server`: pods become containers, kept
//! healthy (restarts, back-off, probes), observable, and stopped with their grace period.
//!
//! Each test runs its own server and agent (its own node, its own `podman system service`);
//! they share the host's Podman storage and a busybox image built here from Debian's
//! busybox-static (there is no registry). scripts/test installs podman, runc and
//! busybox-static.

mod common;
#[allow(dead_code)]
mod harness;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{json, Value};

use common::server::KeelsonServer;
use common::ChildGuard;
use harness::*;

/// The image every test runs: busybox with a tag, so the default pull policy is
/// IfNotPresent.
const IMAGE: &str = "localhost/keelson-busybox:test";
const LONG: Duration = Duration::from_secs(90);

const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"#;

fn containers_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        // One file for every test process (same content), replaced atomically, so runs
        // leave nothing new behind.
        let p = std::env::temp_dir().join("keelson-test-containers.conf");
        let tmp = std::env::temp_dir().join(format!(
            "keelson-test-containers.conf.{}",
            std::process::id()
        ));
        std::fs::write(&tmp, CONTAINERS_CONF).expect("containers.conf");
        std::fs::rename(&tmp, &p).expect("containers.conf");
        p
    })
}

/// The podman CLI with the containers.conf that works on these hosts.
fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("podman must be installed: run scripts/test, which installs podman, runc and busybox-static")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the busybox image once per test process.
fn busybox_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: run scripts/test, which installs busybox-static"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("rootfs");
        for d in ["bin", "tmp", "etc", "proc", "sys", "dev", "mnt", "data"] {
            std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
        }
        std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
        let applets = Command::new(busybox)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for a in String::from_utf8_lossy(&applets.stdout).lines() {
            let a = a.trim();
            if !a.is_empty() && a != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .expect("passwd");
        let tar = dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar failed");
        podman_ok(&["import", &tar.display().to_string(), IMAGE]);
    });
}

/// A server, and an agent on Podman registered as its own node.
struct PodmanNode {
    s: KeelsonServer,
    node: String,
    root: tempfile::TempDir,
    agent: Option<ChildGuard>,
    log: PathBuf,
    agent_args: Vec<String>,
}

impl PodmanNode {
    /// keelson-proxy off: tests run side by side on this host, and only the proxy's own
    /// test may program its nftables.
    fn start() -> PodmanNode {
        Self::start_with(&[], &["--disable-proxy"])
    }

    /// With extra flags for the server and for the agent.
    fn start_with(server: &[&str], agent: &[&str]) -> PodmanNode {
        busybox_image();
        let s = KeelsonServer::start(keelson(), server);
        let node = format!("pm-{}-{}", std::process::id(), common::free_port());
        let root = tempfile::tempdir().expect("agent root");
        let log = s.dir.path().join("agent.log");
        let mut n = PodmanNode {
            s,
            node,
            root,
            agent: None,
            log,
            agent_args: agent.iter().map(|a| a.to_string()).collect(),
        };
        n.start_agent();
        n
    }

    fn start_agent(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let mut cmd = Command::new(keelson());
        cmd.arg("agent")
            .arg("--kubeconfig")
            .arg(self.s.kubeconfig())
            .args([
                "--runtime",
                "podman",
                "--node-name",
                &self.node,
                "--log-level",
                "info",
            ])
            // Tests run several agents at once: each on a free port.
            .args(["--port", "0"])
            .arg("--root-dir")
            .arg(self.root.path())
            .args(&self.agent_args)
            .stdout(Stdio::null())
            .stderr(log);
        // Its own process group: killing it kills its `podman system service` too, while
        // the containers (under conmon) live on, as they would after a kubelet crash.
        self.agent =
            Some(ChildGuard::spawn_group("keelson agent", &mut cmd).expect("start the agent"));
    }

    fn stop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill();
        }
    }

    fn agent_log(&self) -> String {
        common::file_tail(&self.log, 60)
    }

    async fn client(&self) -> Client {
        let c = client(&self.s).await;
        let nodes: Api<Node> = Api::all(c.clone());
        self.eventually("the Podman node registers Ready", LONG, || async {
            let n = nodes.get(&self.node).await.ok()?;
            n.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;
        c
    }

    /// Polls `f` until Some, failing with the agent's and server's logs after `timeout`.
    async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for: {what}\nagent log:\n{}\nserver log:\n{}",
                self.agent_log(),
                self.s.server_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the pod's container `container` runs; the pod.
    async fn running(&self, pods: &Api<Pod>, name: &str, container: &str) -> Pod {
        self.eventually(&format!("{name}/{container} runs"), LONG, || async {
            let p = pods.get(name).await.ok()?;
            container_status(&p, container)["state"]["running"]
                .is_object()
                .then_some(p)
        })
        .await
    }

    /// A pod bound to this node (no scheduler round trip needed).
    fn pod(&self, name: &str, spec: Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(self.node);
        spec["terminationGracePeriodSeconds"]
            .as_i64()
            .is_none()
            .then(|| spec["terminationGracePeriodSeconds"] = json!(2));
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
        .expect("pod")
    }

    /// Podman pods of this node (`podman pod ps` by the agent's node label).
    fn podman_pods(&self) -> Vec<String> {
        podman_ok(&[
            "pod",
            "ps",
            "-q",
            "--filter",
            &format!("label=io.keelson.node={}", self.node),
        ])
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
    }
}

impl Drop for PodmanNode {
    fn drop(&mut self) {
        self.stop_agent();
        // What the agent left in Podman goes, even when the test failed.
        for id in self.podman_pods() {
            let _ = podman(&["pod", "rm", "-f", "-t", "0", &id]);
        }
    }
}

fn status(p: &Pod) -> Value {
    serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap_or_default()
}

fn container_status(p: &Pod, name: &str) -> Value {
    status(p)["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    status(p)["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn podman_id(cs: &Value) -> String {
    cs["containerID"]
        .as_str()
        .and_then(|i| i.strip_prefix("podman://"))
        .unwrap_or_default()
        .to_string()
}

/// An HTTP GET from the host; the status code.
async fn http_status(ip: &str, port: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let get = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(2), get)
        .await
        .ok()
        .flatten()
}

#[test]
fn kubectl_applied_deployment_runs_ready_busybox_httpd_pods_that_answer_http() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let manifest = n.s.dir.path().join("web.yaml");
        std::fs::write(
            &manifest,
            format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {IMAGE}
        command: [sh, -c, "mkdir -p /www && echo hello from $(POD_NAME) > /www/index.html && exec httpd -f -p 8080 -h /www"]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#,
                node = n.node
            ),
        )
        .expect("manifest");
        kubectl_ok(&n.s, &["apply", "-f", &manifest.display().to_string()]);
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let ready_pods = n
            .eventually("3 web pods Running and Ready", LONG, || async {
                let l = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
                (l.items.len() == 3 && l.items.iter().all(ready)).then_some(l.items)
            })
            .await;
        for p in &ready_pods {
            let st = status(p);
            assert_eq!(st["phase"], "Running");
            let ip = st["podIP"].as_str().expect("pod IP").to_string();
            assert!(ip.starts_with("10.88."), "pod IP {ip}");
            assert_eq!(st["hostIP"], "127.0.0.1");
            let cs = container_status(p, "httpd");
            assert_eq!(cs["ready"], true);
            assert_eq!(cs["restartCount"], 0);
            assert!(cs["imageID"].as_str().is_some_and(|i| !i.is_empty()), "{cs}");
            assert!(cs["state"]["running"]["startedAt"].is_string());
            assert_eq!(http_status(&ip, 8080).await, Some(200), "GET http://{ip}:8080/");
        }
        assert_eq!(n.podman_pods().len(), 3, "one Podman pod per pod");
        let names: Vec<String> = ready_pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), 3);
    });
}

#[test]
fn killed_and_crashing_containers_restart_with_growing_back_off() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        pods.create(
            &pp,
            &n.pod(
                "victim",
                json!({"containers": [{"name": "web", "image": IMAGE,
            "command": ["httpd", "-f", "-p", "8080"]}]}),
            ),
        )
        .await
        .expect("victim");
        pods.create(
            &pp,
            &n.pod(
                "crasher",
                json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sh", "-c", "exit 1"]}]}),
            ),
        )
        .await
        .expect("crasher");
        let running = n.running(&pods, "victim", "web").await;
        let id = podman_id(&container_status(&running, "web"));
        let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &id]);
        let pid = pid.trim();
        assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "pid {pid:?}");
        // Killed from outside: restarted at once (the first restart has no back-off).
        let st = Command::new("kill")
            .args(["-9", pid])
            .status()
            .expect("kill");
        assert!(st.success());
        let restarted = n
            .eventually("the killed container restarted", LONG, || async {
                let p = pods.get("victim").await.ok()?;
                let cs = container_status(&p, "web");
                (cs["restartCount"] == 1 && cs["state"]["running"].is_object()).then_some(cs)
            })
            .await;
        assert_eq!(
            restarted["lastState"]["terminated"]["exitCode"], 137,
            "{restarted}"
        );
        assert_eq!(restarted["lastState"]["terminated"]["reason"], "Error");
        assert_ne!(podman_id(&restarted), id, "a new container instance");

        // Exits 1 over and over: CrashLoopBackOff, 10 s then 20 s.
        let mut messages = Vec::new();
        for delay in ["back-off 10s", "back-off 20s"] {
            let cs = n
                .eventually(&format!("CrashLoopBackOff with {delay}"), LONG, || async {
                    let p = pods.get("crasher").await.ok()?;
                    let cs = container_status(&p, "c");
                    (cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
                        && cs["state"]["waiting"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(delay)))
                    .then_some(cs)
                })
                .await;
            assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
            messages.push(cs);
        }
        let counts: Vec<i64> = messages
            .iter()
            .map(|m| m["restartCount"].as_i64().unwrap_or(-1))
            .collect();
        assert!(counts[1] > counts[0], "restarts grow: {counts:?}");
        let p = pods.get("crasher").await.expect("crasher");
        assert_eq!(
            status(&p)["phase"],
            "Running",
            "restartPolicy Always keeps it Running"
        );
        assert!(!ready(&p));
    });
}

#[test]
fn liveness_failure_restarts_and_readiness_failure_only_unreadies() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        // Healthy for a few seconds, then its liveness file goes.
        pods.create(&pp, &n.pod("live", json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 1000"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                "periodSeconds": 1, "failureThreshold": 2}}],
            "terminationGracePeriodSeconds": 1})))
            .await
            .expect("live");
        // Ready for a few seconds, then not, and it keeps running.
        pods.create(&pp, &n.pod("ready", json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sh", "-c", "touch /tmp/ready; sleep 4; rm /tmp/ready; exec sleep 1000"],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}]})))
            .await
            .expect("ready");
        n.eventually("the readiness pod becomes Ready", LONG, || async {
            pods.get("ready").await.ok().filter(ready)
        })
        .await;
        let unready = n
            .eventually("the readiness pod turns not Ready", LONG, || async {
                pods.get("ready").await.ok().filter(|p| {
                    status(p)["phase"] == "Running" && !ready(p) && container_status(p, "c")["ready"] == false
                })
            })
            .await;
        let cs = container_status(&unready, "c");
        assert_eq!(cs["restartCount"], 0, "readiness never restarts: {cs}");
        assert!(cs["state"]["running"].is_object());

        let restarted = n
            .eventually("the liveness pod restarted by its probe", LONG, || async {
                let p = pods.get("live").await.ok()?;
                let cs = container_status(&p, "c");
                (cs["restartCount"].as_i64() >= Some(1)).then_some(cs)
            })
            .await;
        assert!(restarted["lastState"]["terminated"].is_object(), "{restarted}");
    });
}

#[test]
fn deleting_a_pod_sends_sigterm_waits_its_grace_and_removes_it() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let marks = tempfile::tempdir().expect("marker dir");
        let host = marks.path().display().to_string();
        pods.create(&PostParams::default(), &n.pod("graceful", json!({
            "terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "marks", "hostPath": {"path": host}}],
            "containers": [{"name": "c", "image": IMAGE, "volumeMounts": [{"name": "marks", "mountPath": "/marks"}],
                "command": ["sh", "-c", "trap 'echo term > /marks/term; sleep 2; echo done > /marks/done; exit 0' TERM; while true; do sleep 0.2; done"]}]})))
            .await
            .expect("pod");
        let running = n.running(&pods, "graceful", "c").await;
        let uid = running.uid().expect("uid");
        let started = Instant::now();
        pods.delete("graceful", &DeleteParams::default()).await.expect("delete");
        n.eventually("the pod is gone from the API", LONG, || async {
            match pods.get_opt("graceful").await {
                Ok(None) => Some(()),
                _ => None,
            }
        })
        .await;
        let took = started.elapsed();
        assert_eq!(std::fs::read_to_string(marks.path().join("term")).expect("SIGTERM marker").trim(), "term");
        // The handler's 2 s ran to completion inside the 20 s grace, no SIGKILL before.
        assert_eq!(std::fs::read_to_string(marks.path().join("done")).expect("handler finished").trim(), "done");
        assert!(took >= Duration::from_secs(2), "deleted after {took:?}, before the handler finished");
        let left = podman_ok(&["ps", "-a", "-q", "--filter", &format!("label=io.keelson.pod.uid={uid}")]);
        assert!(left.trim().is_empty(), "containers left in Podman: {left}");
        assert!(n.podman_pods().is_empty());
    });
}

#[test]
fn config_maps_and_secrets_as_env_and_files_and_mounted_files_follow_updates() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        cms.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "cfg"},
            "data": {"greeting": "hello", "mode": "fast"}})).expect("cm"))
            .await
            .expect("configmap");
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.clone(), "default");
        secrets.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "sec"},
            "stringData": {"password": "s3cret"}})).expect("secret"))
            .await
            .expect("secret");
        let out = tempfile::tempdir().expect("out dir");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(&pp, &n.pod("consumer", json!({
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "sec", "secret": {"secretName": "sec", "items": [{"key": "password", "path": "pw"}]}},
                        {"name": "out", "hostPath": {"path": out.path().display().to_string()}}],
            "containers": [{"name": "c", "image": IMAGE,
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"},
                                 {"name": "out", "mountPath": "/out"}],
                "command": ["sh", "-c", "echo \"$GREETING $PASSWORD $MY_NS $CFG_mode\" > /out/env; cat /etc/sec/pw > /out/pw; while true; do cat /etc/cfg/greeting > /out/greeting.tmp; mv /out/greeting.tmp /out/greeting; sleep 0.2; done"]}]})))
            .await
            .expect("pod");
        let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap_or_default().trim().to_string();
        n.eventually("the container wrote its environment", LONG, || async {
            (read("env") == "hello s3cret default fast").then_some(())
        })
        .await;
        n.eventually("the container copied the mounted files", LONG, || async {
            (read("pw") == "s3cret" && read("greeting") == "hello").then_some(())
        })
        .await;
        cms.patch("cfg", &PatchParams::default(), &Patch::Merge(json!({"data": {"greeting": "changed"}})))
            .await
            .expect("update the configmap");
        n.eventually("the mounted file follows the ConfigMap", LONG, || async {
            (read("greeting") == "changed").then_some(())
        })
        .await;
        // A missing ConfigMap key is a clear waiting reason, not a start.
        pods.create(&pp, &n.pod("missing", json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sleep", "100"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}]})))
            .await
            .expect("pod");
        let cs = n
            .eventually("CreateContainerConfigError", LONG, || async {
                let p = pods.get("missing").await.ok()?;
                let cs = container_status(&p, "c");
                (cs["state"]["waiting"]["reason"] == "CreateContainerConfigError").then_some(cs)
            })
            .await;
        assert!(cs["state"]["waiting"]["message"].as_str().is_some_and(|m| m.contains("nope")), "{cs}");
    });
}

#[test]
fn pods_get_a_projected_service_account_token_the_apiserver_accepts() {
    use k8s_openapi::api::authentication::v1::TokenReview;
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pp = PostParams::default();
        let out = tempfile::tempdir().expect("out dir");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
        pods.create(&pp, &n.pod("sa-user", json!({
            "volumes": [{"name": "out", "hostPath": {"path": out.path().display().to_string()}}],
            "containers": [{"name": "c", "image": IMAGE,
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                "command": ["sh", "-c", format!("cp {dir}/token {dir}/ca.crt {dir}/namespace /out/ && touch /out/done; sleep 1000")]}]})))
            .await
            .expect("pod");
        // Admission gave the pod its account and the projected volume.
        let p = pods.get("sa-user").await.expect("pod");
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("default"));
        assert!(
            spec.volumes.iter().flatten().any(|v| v.name.starts_with("kube-api-access-")),
            "{:?}",
            spec.volumes
        );
        let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap_or_default();
        n.eventually("the container copied the service account files", LONG, || async {
            out.path().join("done").exists().then_some(())
        })
        .await;
        assert_eq!(read("namespace"), "default");
        let ca = std::fs::read_to_string(n.s.data_dir().join("pki/ca.crt")).expect("ca");
        assert_eq!(read("ca.crt"), ca);
        let token = read("token");
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let reviews: Api<TokenReview> = Api::all(c.clone());
        let review = |token: String| {
            let reviews = reviews.clone();
            async move {
                let r: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).expect("review");
                reviews.create(&PostParams::default(), &r).await.expect("token review").status.expect("status")
            }
        };
        let s = review(token.clone()).await;
        assert_eq!(s.authenticated, Some(true), "{s:?}");
        let user = s.user.expect("user");
        assert_eq!(user.username.as_deref(), Some("system:serviceaccount:default:default"));
        assert!(user.groups.iter().flatten().any(|g| g == "system:serviceaccounts:default"));
        // The token is bound to the pod: deleting the pod revokes it.
        pods.delete("sa-user", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
            .await
            .expect("delete");
        n.eventually("the deleted pod's token is refused", LONG, || async {
            (review(token.clone()).await.authenticated != Some(true)).then_some(())
        })
        .await;
    });
}

#[test]
fn a_restarted_agent_adopts_running_pods_and_cleans_up_what_was_deleted_meanwhile() {
    let mut n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        for name in ["keep", "doomed"] {
            pods.create(
                &pp,
                &n.pod(
                    name,
                    json!({"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "1000"]}]}),
                ),
            )
            .await
            .expect("pod");
        }
        let before = n
            .eventually("both pods run", LONG, || async {
                let keep = pods.get("keep").await.ok()?;
                let doomed = pods.get("doomed").await.ok()?;
                (container_status(&keep, "c")["state"]["running"].is_object()
                    && container_status(&doomed, "c")["state"]["running"].is_object())
                .then_some(container_status(&keep, "c"))
            })
            .await;
        n.stop_agent();
        // Deleted while the agent is away: the API keeps it (terminating) until a kubelet
        // finishes it; and one force-deleted at once.
        pods.delete("doomed", &DeleteParams::default())
            .await
            .expect("delete");
        let doomed_uid = pods
            .get("doomed")
            .await
            .expect("terminating")
            .uid()
            .expect("uid");
        n.start_agent();
        n.eventually("the terminating pod is finished", LONG, || async {
            matches!(pods.get_opt("doomed").await, Ok(None)).then_some(())
        })
        .await;
        let left = podman_ok(&[
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=io.keelson.pod.uid={doomed_uid}"),
        ]);
        assert!(left.trim().is_empty(), "doomed containers left: {left}");
        // The kept pod runs on in the same container, never restarted.
        let after = n
            .eventually(
                "the kept pod is reported by the new agent",
                LONG,
                || async {
                    let keep = pods.get("keep").await.ok()?;
                    let cs = container_status(&keep, "c");
                    (cs["state"]["running"].is_object() && n.agent_log().contains("registered"))
                        .then_some(cs)
                },
            )
            .await;
        assert_eq!(
            podman_id(&after),
            podman_id(&before),
            "adopted, not recreated"
        );
        assert_eq!(after["restartCount"], 0);

        // Gone from the API for good while the agent is away (force delete): removed from
        // Podman when it comes back.
        let keep_uid = pods.get("keep").await.expect("keep").uid().expect("uid");
        n.stop_agent();
        pods.delete(
            "keep",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("force delete");
        n.start_agent();
        n.eventually("the orphaned pod is removed from Podman", LONG, || async {
            podman_ok(&[
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label=io.keelson.pod.uid={keep_uid}"),
            ])
            .trim()
            .is_empty()
            .then_some(())
        })
        .await;
    });
}

#[test]
fn a_missing_image_backs_off_while_the_rest_of_the_node_works() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        pods.create(
            &pp,
            &n.pod(
                "nope",
                json!({"containers": [{"name": "c",
            "image": "localhost/keelson-does-not-exist:1"}]}),
            ),
        )
        .await
        .expect("pod");
        // The failed pull (ErrImagePull), then the back-off before the next one.
        let cs = n
            .eventually("ImagePullBackOff", LONG, || async {
                let p = pods.get("nope").await.ok()?;
                let cs = container_status(&p, "c");
                (cs["state"]["waiting"]["reason"] == "ImagePullBackOff").then_some(cs)
            })
            .await;
        let message = cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("keelson-does-not-exist"), "{cs}");
        assert!(message.contains("Back-off pulling image"), "{cs}");
        // The node still runs other pods.
        pods.create(
            &pp,
            &n.pod(
                "fine",
                json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .expect("pod");
        n.eventually("the other pod runs", LONG, || async {
            let p = pods.get("fine").await.ok()?;
            (status(&p)["phase"] == "Running").then_some(())
        })
        .await;
        let p = pods.get("nope").await.expect("nope");
        assert_eq!(status(&p)["phase"], "Pending");
    });
}

#[test]
fn exceeding_the_memory_limit_ends_oom_killed_and_jobs_pods_end_by_exit_code() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        // One process that only grows, so the OOM killer has exactly one candidate (with a
        // pipeline it could kill `tr`, and the shell went on to exit 0).
        pods.create(
            &pp,
            &n.pod(
                "hog",
                json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE,
            "resources": {"limits": {"memory": "16Mi"}},
            "command": ["sh", "-c", "x=a; while :; do x=$x$x; done"]}]}),
            ),
        )
        .await
        .expect("hog");
        pods.create(
            &pp,
            &n.pod(
                "ok",
                json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE,
            "command": ["true"]}]}),
            ),
        )
        .await
        .expect("ok");
        pods.create(
            &pp,
            &n.pod(
                "fails",
                json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE,
            "command": ["sh", "-c", "exit 3"]}]}),
            ),
        )
        .await
        .expect("fails");
        let hog = n
            .eventually("the hog ends", LONG, || async {
                let p = pods.get("hog").await.ok()?;
                let phase = status(&p)["phase"].as_str()?.to_string();
                (phase == "Failed" || phase == "Succeeded").then_some(p)
            })
            .await;
        assert_eq!(status(&hog)["phase"], "Failed", "{}", status(&hog));
        let cs = container_status(&hog, "c");
        assert_eq!(cs["state"]["terminated"]["reason"], "OOMKilled", "{cs}");
        assert_eq!(cs["state"]["terminated"]["exitCode"], 137);
        for (name, phase, code) in [("ok", "Succeeded", 0), ("fails", "Failed", 3)] {
            let p = n
                .eventually(&format!("{name} ends {phase}"), LONG, || async {
                    let p = pods.get(name).await.ok()?;
                    (status(&p)["phase"] == phase).then_some(p)
                })
                .await;
            assert_eq!(
                container_status(&p, "c")["state"]["terminated"]["exitCode"],
                code
            );
        }
    });
}

/// Reads lines from a child's stdout on a thread, so a test can wait for them with a deadline.
fn line_reader(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn kubectl_logs_through_the_apiserver_tail_follow_previous_timestamps_and_container() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        pods.create(&pp, &n.pod("talker", json!({"containers": [
            {"name": "main", "image": IMAGE, "command": ["sh", "-c",
                "echo one; echo two; echo three >&2; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"]},
            {"name": "side", "image": IMAGE, "command": ["sh", "-c", "echo from-side; exec sleep 1000"]}]})))
            .await
            .expect("talker");
        pods.create(&pp, &n.pod("crashy", json!({"containers": [{"name": "c", "image": IMAGE,
            "command": ["sh", "-c", "echo attempt-output; sleep 1; exit 1"]}]})))
            .await
            .expect("crashy");
        n.eventually("the talker runs", LONG, || async {
            let p = pods.get("talker").await.ok()?;
            (status(&p)["phase"] == "Running").then_some(())
        })
        .await;
        let logs = |args: &[&str]| n.s.kubectl(&[&["logs"], args].concat());
        // Everything so far, stdout and stderr.
        let out = n
            .eventually("kubectl logs shows the first lines", LONG, || async {
                let o = logs(&["talker", "-c", "main"]);
                (o.ok && o.stdout.contains("tick-2")).then_some(o.stdout)
            })
            .await;
        for want in ["one", "two", "three", "tick-1"] {
            assert!(out.lines().any(|l| l == want), "{want:?} missing from {out:?}");
        }
        assert_eq!(kubectl_ok(&n.s, &["logs", "talker", "-c", "side"]).trim(), "from-side");
        // Two containers and no -c: kubectl picks the first; the API itself asks for one.
        let o = logs(&["talker"]);
        assert!(o.ok && o.stderr.contains("Defaulted container \"main\""), "{o:?}");
        let o = n.s.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/talker/log"]);
        assert!(!o.ok && o.stderr.contains("a container name must be specified for pod talker, choose one of: [main side]"), "{o:?}");
        let o = logs(&["talker", "-c", "nope"]);
        assert!(!o.ok && o.stderr.contains("container nope is not valid"), "{o:?}");
        // --tail and --timestamps.
        let tail = kubectl_ok(&n.s, &["logs", "talker", "-c", "main", "--tail=1"]);
        assert_eq!(tail.lines().count(), 1, "{tail:?}");
        assert!(tail.starts_with("tick-"), "{tail:?}");
        let stamped = kubectl_ok(&n.s, &["logs", "talker", "-c", "main", "--tail=2", "--timestamps"]);
        for line in stamped.lines() {
            let (ts, rest) = line.split_once(' ').unwrap_or(("", ""));
            assert!(ts.parse::<jiff::Timestamp>().is_ok(), "not a timestamp: {line:?}");
            assert!(rest.starts_with("tick-"), "{line:?}");
        }
        assert!(kubectl_ok(&n.s, &["logs", "talker", "-c", "main", "--since=1h"]).contains("one"));
        // -f: new lines keep coming.
        let mut cmd = Command::new(&n.s.kubectl);
        cmd.arg("--kubeconfig")
            .arg(n.s.kubeconfig())
            .arg("--cache-dir")
            .arg(n.s.dir.path().join("kubectl-cache"))
            .args(["logs", "-f", "talker", "-c", "main", "--tail=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut follow = ChildGuard::spawn("kubectl logs -f", &mut cmd).expect("kubectl logs -f");
        let rx = line_reader(follow.take_stdout().expect("stdout"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(e) => panic!("kubectl logs -f: {e} after {seen:?}\nagent log:\n{}", n.agent_log()),
            }
        }
        let ticks: Vec<u64> = seen
            .iter()
            .filter_map(|l| l.strip_prefix("tick-").and_then(|n| n.parse().ok()))
            .collect();
        assert_eq!(ticks.len(), 4, "{seen:?}");
        assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "consecutive lines as they come: {ticks:?}");
        follow.kill();
        // -p: the instance before the restart.
        let o = logs(&["talker", "-c", "main", "-p"]);
        assert!(!o.ok && o.stderr.contains("previous terminated container \"main\" in pod \"talker\" not found"), "{o:?}");
        n.eventually("the crashy pod restarted", LONG, || async {
            let p = pods.get("crashy").await.ok()?;
            (container_status(&p, "c")["restartCount"].as_i64() >= Some(1)).then_some(())
        })
        .await;
        let previous = kubectl_ok(&n.s, &["logs", "crashy", "-p"]);
        assert_eq!(previous.trim(), "attempt-output");
    });
}

#[test]
fn kubectl_exec_runs_commands_over_websocket_and_returns_their_exit_code() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(
            &PostParams::default(),
            &n.pod(
                "shell",
                json!({"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .expect("pod");
        n.running(&pods, "shell", "c").await;
        let out = kubectl_ok(&n.s, &["exec", "shell", "--", "sh", "-c", "echo hello; echo $HOSTNAME"]);
        assert_eq!(out, "hello\nshell\n");
        // Exit codes come back as kubectl's own.
        let o = n.s.kubectl(&["exec", "shell", "-c", "c", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert!(!o.ok, "{o:?}");
        assert_eq!(o.stdout, "out\n");
        assert!(o.stderr.contains("err"), "{o:?}");
        assert!(o.stderr.contains("command terminated with exit code 3"), "{o:?}");
        let status = {
            let mut cmd = Command::new(&n.s.kubectl);
            cmd.arg("--kubeconfig")
                .arg(n.s.kubeconfig())
                .arg("--cache-dir")
                .arg(n.s.dir.path().join("kubectl-cache"))
                .args(["exec", "shell", "--", "sh", "-c", "exit 7"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = ChildGuard::spawn("kubectl exec", &mut cmd).expect("kubectl exec");
            child
                .wait_timeout(Duration::from_secs(60))
                .expect("wait")
                .expect("kubectl exec ended")
        };
        assert_eq!(status.code(), Some(7), "kubectl's exit code is the command's");
        // A command that does not exist fails clearly.
        let o = n.s.kubectl(&["exec", "shell", "--", "no-such-command"]);
        assert!(!o.ok, "{o:?}");
        // -i: stdin reaches the command, and its end is the command's EOF.
        let o = n.s.kubectl_stdin(&["exec", "-i", "shell", "--", "sh", "-c", "read x; echo got-$x; wc -l"], Some("hello\na\nb\nc\n"));
        assert!(o.ok, "{o:?}");
        assert_eq!(o.stdout, "got-hello\n3\n");
        // -it on a terminal (script(1) gives kubectl one): a tty in the container.
        let cmd = format!(
            "{} --kubeconfig {} exec -it shell -- sh -c 'tty; stty size; exit 4'",
            n.s.kubectl.display(),
            n.s.kubeconfig().display()
        );
        let out = Command::new("timeout")
            .args(["60", "script", "-qec", &cmd, "/dev/null"])
            .env("COLUMNS", "91")
            .env("LINES", "33")
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/dev/pts/"), "a tty in the container: {text:?}");
        assert_eq!(out.status.code(), Some(4), "{text:?}");
    });
}

/// An HTTP/1.0 GET through a local port; the whole answer (empty when the connection
/// closed without one).
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let get = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).to_string())
    };
    tokio::time::timeout(Duration::from_secs(20), get)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

#[test]
fn kubectl_port_forward_carries_http_to_the_pods_loopback_over_websocket_and_spdy() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        // httpd listens on the pod's loopback only: only a forward from inside the pod's
        // network namespace reaches it.
        pods.create(&PostParams::default(), &n.pod("fwd", json!({"containers": [{"name": "web", "image": IMAGE,
            "command": ["sh", "-c", "mkdir -p /www && echo hello-through-the-tunnel > /www/index.html && i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done > /www/big.txt && exec httpd -f -p 127.0.0.1:8080 -h /www"]}]})))
            .await
            .expect("pod");
        let p = n.running(&pods, "fwd", "web").await;
        let ip = status(&p)["podIP"].as_str().unwrap_or_default().to_string();
        assert_eq!(http_status(&ip, 8080).await, None, "not reachable from outside the pod");
        // kubectl 1.32 tunnels SPDY in a WebSocket by default, and speaks plain SPDY when
        // told not to (as it does against servers without the WebSocket tunnel).
        for websockets in [true, false] {
            let (local, closed) = (common::free_port(), common::free_port());
            let stderr = n.s.dir.path().join(format!("port-forward-{websockets}.err"));
            let mut cmd = Command::new(&n.s.kubectl);
            cmd.arg("--kubeconfig")
                .arg(n.s.kubeconfig())
                .args(["port-forward", "--address", "127.0.0.1", "pod/fwd"])
                .arg(format!("{local}:8080"))
                .arg(format!("{closed}:9"))
                .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string())
                .stdout(Stdio::piped())
                .stderr(File::create(&stderr).expect("stderr file"));
            let mut pf = ChildGuard::spawn("kubectl port-forward", &mut cmd).expect("kubectl port-forward");
            let rx = line_reader(pf.take_stdout().expect("stdout"));
            let deadline = Instant::now() + LONG;
            let mut forwarding = Vec::new();
            while forwarding.len() < 2 {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => forwarding.push(line),
                    Err(e) => panic!(
                        "kubectl port-forward (websockets={websockets}) did not start: {e}: {forwarding:?}\n{}\nserver log:\n{}",
                        std::fs::read_to_string(&stderr).unwrap_or_default(),
                        n.s.server_log()
                    ),
                }
            }
            assert_eq!(forwarding[0], format!("Forwarding from 127.0.0.1:{local} -> 8080"));
            // Two connections one after the other (two stream pairs on one session), then
            // two at once; a larger answer crosses many data frames.
            for _ in 0..2 {
                let answer = http_get(local, "/index.html").await;
                assert!(answer.starts_with("HTTP/1.1 200"), "websockets={websockets}: {answer:?}\n{}", std::fs::read_to_string(&stderr).unwrap_or_default());
                assert!(answer.ends_with("hello-through-the-tunnel\n"), "{answer:?}");
            }
            let (a, b) = tokio::join!(http_get(local, "/big.txt"), http_get(local, "/index.html"));
            assert!(a.starts_with("HTTP/1.1 200") && a.ends_with("line-2999\n"), "{} bytes: {:?}", a.len(), a.get(..200));
            assert!(a.contains("\r\n\r\nline-0\nline-1\n"), "the body arrives in order");
            assert!(b.ends_with("hello-through-the-tunnel\n"), "{b:?}");
            // Nothing listens on port 9 in the pod: the connection closes and kubectl
            // reports the kubelet's error.
            let answer = http_get(closed, "/").await;
            assert_eq!(answer, "", "no answer from a port nothing listens on");
            n.eventually("kubectl reports the forwarding error", LONG, || async {
                let err = std::fs::read_to_string(&stderr).unwrap_or_default();
                err.contains("error forwarding port 9 to pod default/fwd").then_some(())
            })
            .await;
            pf.kill();
        }
    });
}

#[test]
fn init_containers_run_in_order_to_completion_before_the_app_containers() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        pods.create(&pp, &n.pod("staged", json!({
            "volumes": [{"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}],
            "initContainers": [
                {"name": "first", "image": IMAGE, "command": ["sh", "-c", "echo first >> /work/order; sleep 1"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": IMAGE, "command": ["sh", "-c", "echo second >> /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{"name": "app", "image": IMAGE,
                "command": ["sh", "-c", "echo app >> /work/order; cat /work/order; exec sleep 1000"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]})))
            .await
            .expect("staged");
        pods.create(&pp, &n.pod("blocked", json!({"restartPolicy": "Never",
            "initContainers": [{"name": "fails", "image": IMAGE, "command": ["sh", "-c", "exit 2"]}],
            "containers": [{"name": "app", "image": IMAGE, "command": ["sleep", "1000"]}]})))
            .await
            .expect("blocked");
        let p = n
            .eventually("the app container runs after both init containers", LONG, || async {
                let p = pods.get("staged").await.ok()?;
                (status(&p)["phase"] == "Running" && container_status(&p, "app")["state"]["running"].is_object())
                    .then_some(p)
            })
            .await;
        let st = status(&p);
        let inits = st["initContainerStatuses"].as_array().cloned().unwrap_or_default();
        assert_eq!(inits.len(), 2, "{st}");
        for i in &inits {
            assert_eq!(i["state"]["terminated"]["exitCode"], 0, "{i}");
            assert_eq!(i["state"]["terminated"]["reason"], "Completed");
        }
        let initialized = st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Initialized").cloned())
            .unwrap_or_default();
        assert_eq!(initialized["status"], "True");
        let out = n
            .eventually("the app's log", LONG, || async {
                let o = n.s.kubectl(&["logs", "staged", "-c", "app"]);
                (o.ok && o.stdout.contains("app")).then_some(o.stdout)
            })
            .await;
        assert_eq!(out, "first\nsecond\napp\n", "in order, each once");
        // The Memory emptyDir is one tmpfs all the pod's containers share.
        let mounts = kubectl_ok(&n.s, &["exec", "staged", "--", "grep", " /work ", "/proc/mounts"]);
        assert!(mounts.starts_with("tmpfs /work tmpfs"), "{mounts}");
        let uid = p.uid().expect("uid");
        pods.delete("staged", &DeleteParams::default()).await.expect("delete");
        n.eventually("the staged pod is gone", LONG, || async {
            matches!(pods.get_opt("staged").await, Ok(None)).then_some(())
        })
        .await;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mountinfo.contains(&uid), "the pod's tmpfs is unmounted: {mountinfo}");
        // A failing init container with restartPolicy Never fails the pod; the app never runs.
        let p = n
            .eventually("the blocked pod fails", LONG, || async {
                let p = pods.get("blocked").await.ok()?;
                (status(&p)["phase"] == "Failed").then_some(p)
            })
            .await;
        let st = status(&p);
        assert_eq!(st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 2, "{st}");
        assert!(container_status(&p, "app")["state"]["waiting"].is_object(), "{st}");
    });
}

#[test]
fn kubectl_top_reads_node_and_pod_usage_from_the_kubelets() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(
            &PostParams::default(),
            &n.pod(
                "busy",
                json!({"containers": [{"name": "spin", "image": IMAGE,
                    "resources": {"limits": {"cpu": "200m"}},
                    "command": ["sh", "-c", "while true; do :; done"]}]}),
            ),
        )
        .await
        .expect("pod");
        n.running(&pods, "busy", "spin").await;
        // Discovery lists the group, as kubectl top requires.
        let groups = kubectl_ok(&n.s, &["api-versions"]);
        assert!(
            groups.lines().any(|l| l == "metrics.k8s.io/v1beta1"),
            "{groups}"
        );
        // Every discovery path answers for it (a 404 there broke the garbage collector's
        // discovery once).
        let resources = kubectl_ok(
            &n.s,
            &[
                "api-resources",
                "--api-group=metrics.k8s.io",
                "--no-headers",
            ],
        );
        assert!(
            resources.lines().any(|l| l.starts_with("nodes ")),
            "{resources}"
        );
        assert!(
            resources.lines().any(|l| l.starts_with("pods ")),
            "{resources}"
        );
        for path in ["/apis/metrics.k8s.io", "/apis/metrics.k8s.io/v1beta1"] {
            kubectl_ok(&n.s, &["get", "--raw", path]);
        }
        kube::discovery::Discovery::new(c.clone())
            .run()
            .await
            .expect("full discovery");
        // Usage appears once the kubelet has two samples; CPU is bounded by the 200m limit.
        let millis = n
            .eventually(
                "kubectl top pod shows the spinning container",
                LONG,
                || async {
                    let o = n.s.kubectl(&["top", "pod", "busy", "--no-headers"]);
                    let line = o.stdout.lines().next()?.to_string();
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let m: u64 = cols.get(1)?.strip_suffix('m')?.parse().ok()?;
                    (o.ok && cols[0] == "busy" && m >= 50 && cols.get(2)?.ends_with("Mi"))
                        .then_some(m)
                },
            )
            .await;
        assert!(millis <= 320, "the CPU limit holds: {millis}m");
        let o = kubectl_ok(
            &n.s,
            &["top", "pod", "busy", "--containers", "--no-headers"],
        );
        assert!(o.contains("spin"), "{o}");
        let nodes = n
            .eventually("kubectl top node shows the node", LONG, || async {
                let o = n.s.kubectl(&["top", "node", &n.node, "--no-headers"]);
                (o.ok && o.stdout.starts_with(&n.node)).then_some(o.stdout)
            })
            .await;
        let cols: Vec<&str> = nodes.split_whitespace().collect();
        assert!(cols.get(1).is_some_and(|c| c.ends_with('m')), "{nodes}");
        assert!(cols.get(3).is_some_and(|c| c.ends_with("Mi")), "{nodes}");
        // Only the pods a selector picks.
        let o = n.s.kubectl(&["top", "pod", "-l", "app=nothing"]);
        assert!(!o.stdout.contains("busy"), "{o:?}");

        // The kubelet's own /metrics, with the certificate the apiserver calls kubelets with
        // (the kubelet's serving certificate is self-signed, as a kubelet's is by default, so
        // curl does not verify it: `-k`).
        let port = kubectl_ok(
            &n.s,
            &[
                "get",
                "node",
                &n.node,
                "-o",
                "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
            ],
        );
        let pki = n.s.data_dir().join("pki");
        let out = std::process::Command::new("curl")
            .args(["-sSk", "--fail", "--max-time", "10"])
            .arg("--cert")
            .arg(pki.join("apiserver-kubelet-client.crt"))
            .arg("--key")
            .arg(pki.join("apiserver-kubelet-client.key"))
            .arg(format!("https://127.0.0.1:{}/metrics", port.trim()))
            .output()
            .expect("curl");
        let metrics = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            metrics.contains("kubelet_runtime_operations_duration_seconds_count{operation_type=\"start_container\"} "),
            "{metrics}"
        );
        let started: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("kubelet_pod_start_duration_seconds_count ")?.parse().ok())
            .unwrap_or(0.0);
        assert!(started >= 1.0, "{metrics}");
        // Without a client certificate the kubelet refuses.
        let anon = std::process::Command::new("curl")
            .args(["-sSk", "--fail", "--max-time", "10"])
            .arg(format!("https://127.0.0.1:{}/metrics", port.trim()))
            .output()
            .expect("curl");
        assert!(!anon.status.success());
    });
}

#[test]
fn security_context_downward_api_host_ports_and_lifecycle_hooks_reach_the_container() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let marks = tempfile::tempdir().expect("marker dir");
        std::fs::set_permissions(marks.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let host_port = common::free_port();
        let mut pod = n.pod("locked", json!({
            "terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsUser": 1000},
            "volumes": [{"name": "marks", "hostPath": {"path": marks.path().display().to_string()}},
                        {"name": "info", "downwardAPI": {"items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}}],
            "containers": [{"name": "c", "image": IMAGE,
                "command": ["sh", "-c", "mkdir -p /tmp/www 2>/dev/null; exec httpd -f -p 8080 -h /marks"],
                "ports": [{"containerPort": 8080, "hostPort": host_port}],
                "resources": {"limits": {"memory": "64Mi"}},
                "securityContext": {"runAsGroup": 2000, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
                "volumeMounts": [{"name": "marks", "mountPath": "/marks"}, {"name": "info", "mountPath": "/info"}],
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", "echo started > /marks/post-start"]}},
                    "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /marks/pre-stop"]}}}}]}));
        pod.metadata.labels = Some([("tier".to_string(), "web".to_string())].into());
        pods.create(&PostParams::default(), &pod).await.expect("pod");
        n.running(&pods, "locked", "c").await;
        let exec = |cmd: &str| kubectl_ok(&n.s, &["exec", "locked", "--", "sh", "-c", cmd]);
        assert_eq!(exec("id -u; id -g").trim(), "1000\n2000");
        assert_eq!(exec("touch /rootfs-write 2>/dev/null && echo wrote || echo refused").trim(), "refused");
        assert_eq!(exec("grep CapEff /proc/self/status | tr -d ' \\t'").trim(), "CapEff:0000000000000000");
        assert_eq!(exec("echo $MEM; cat /info/mem").trim(), "64\n64");
        assert_eq!(exec("cat /info/labels").trim(), "tier=\"web\"");
        assert_eq!(std::fs::read_to_string(marks.path().join("post-start")).expect("postStart ran").trim(), "started");
        // hostPort: the node's port reaches the container.
        std::fs::write(marks.path().join("index.html"), "via host port").expect("index");
        let body = n
            .eventually("the host port answers", LONG, || async {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await.ok()?;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
                let mut out = Vec::new();
                s.read_to_end(&mut out).await.ok()?;
                Some(String::from_utf8_lossy(&out).into_owned())
            })
            .await;
        assert!(body.contains("via host port"), "{body}");
        // preStop runs before the stop signal.
        pods.delete("locked", &DeleteParams::default()).await.expect("delete");
        n.eventually("the pod is gone", LONG, || async {
            matches!(pods.get_opt("locked").await, Ok(None)).then_some(())
        })
        .await;
        assert_eq!(std::fs::read_to_string(marks.path().join("pre-stop")).expect("preStop ran").trim(), "stopping");
    });
}

#[test]
fn keelson_server_runs_an_embedded_agent_unless_disabled() {
    busybox_image();
    let node = format!("embedded-{}-{}", std::process::id(), common::free_port());
    let s = KeelsonServer::start_with_agent(
        keelson(),
        &[
            "--node-name",
            &node,
            "--kubelet-port",
            "0",
            "--disable-proxy",
        ],
    );
    // What it left in Podman goes when the test ends, even on failure.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let ids = podman_ok(&[
                "pod",
                "ps",
                "-q",
                "--filter",
                &format!("label=io.keelson.node={}", self.0),
            ]);
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = podman(&["pod", "rm", "-f", "-t", "0", id]);
            }
        }
    }
    let _cleanup = Cleanup(node.clone());
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        let nodes: Api<Node> = Api::all(c.clone());
        let n = eventually(&s, "the embedded agent's node is Ready", LONG, || async {
            let n = nodes.get(&node).await.ok()?;
            n.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(n)
        })
        .await;
        let info = n
            .status
            .clone()
            .and_then(|s| s.node_info)
            .expect("nodeInfo");
        assert!(
            info.container_runtime_version.starts_with("podman://"),
            "{info:?}"
        );
        // The scheduler puts a pod there and it runs.
        kubectl_ok(
            &s,
            &[
                "run",
                "hello",
                &format!("--image={IMAGE}"),
                "--restart=Never",
                "--",
                "sh",
                "-c",
                "echo hello from the embedded agent",
            ],
        );
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        eventually(&s, "the pod succeeds", LONG, || async {
            let p = pods.get("hello").await.ok()?;
            (status(&p)["phase"] == "Succeeded").then_some(())
        })
        .await;
        assert_eq!(
            kubectl_ok(&s, &["logs", "hello"]).trim(),
            "hello from the embedded agent"
        );
    });
}

#[test]
fn kubectl_attach_reaches_the_main_process_stdin_and_stdout() {
    let n = PodmanNode::start();
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(
            &PostParams::default(),
            &n.pod(
                "echoer",
                json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE, "stdin": true,
                    "command": ["sh", "-c", "while read l; do echo got-$l; done; echo bye"]}]}),
            ),
        )
        .await
        .expect("pod");
        n.running(&pods, "echoer", "c").await;
        let o = n.s.kubectl_stdin(&["attach", "-i", "echoer", "-c", "c"], Some("one\ntwo\n"));
        assert!(o.ok, "{o:?}");
        assert_eq!(o.stdout, "got-one\ngot-two\nbye\n", "{o:?}");
        // The end of stdin ended the process.
        let p = n
            .eventually("the pod completes", LONG, || async {
                let p = pods.get("echoer").await.ok()?;
                (status(&p)["phase"] == "Succeeded").then_some(p)
            })
            .await;
        assert_eq!(container_status(&p, "c")["state"]["terminated"]["exitCode"], 0);
    });
}

/// The gateway of Podman's default network: the host address its pods reach.
fn podman_gateway() -> String {
    let out = podman_ok(&[
        "network",
        "inspect",
        "podman",
        "--format",
        "{{range .Subnets}}{{.Gateway}}{{end}}",
    ]);
    let gw = out.trim().to_string();
    assert!(
        gw.parse::<std::net::Ipv4Addr>().is_ok(),
        "podman's gateway: {out:?}"
    );
    gw
}

#[test]
fn pods_resolve_service_names_through_the_cluster_dns() {
    busybox_image();
    // The default network exists once Podman has run a container on it.
    let _ = podman(&["run", "--rm", IMAGE, "true"]);
    let gateway = podman_gateway();
    let n = PodmanNode::start_with(
        &["--cluster-dns-bind", "0.0.0.0:53"],
        &["--cluster-dns", &gateway, "--disable-proxy"],
    );
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.0.80\n  ports: [{port: 80}]\n";
        kubectl_ok(&n.s, &["apply", "-f", &n.s.file("web.yaml", svc)]);
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(
            &PostParams::default(),
            &n.pod(
                "asker",
                json!({"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .expect("pod");
        pods.create(
            &PostParams::default(),
            &n.pod(
                "hostly",
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.53"], "searches": ["example.test"], "options": [{"name": "ndots", "value": "2"}]},
                       "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .expect("pod");
        n.running(&pods, "asker", "c").await;
        n.running(&pods, "hostly", "c").await;
        // ClusterFirst: the cluster DNS, Kubernetes' search domains, ndots:5.
        let conf = kubectl_ok(&n.s, &["exec", "asker", "--", "cat", "/etc/resolv.conf"]);
        assert!(conf.contains(&format!("nameserver {gateway}")), "{conf}");
        assert!(
            conf.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
            "{conf}"
        );
        assert!(conf.contains("ndots:5"), "{conf}");
        // A Service's name resolves from inside the pod.
        let out = kubectl_ok(
            &n.s,
            &["exec", "asker", "--", "nslookup", "web.default.svc.cluster.local"],
        );
        assert!(out.contains("10.96.0.80"), "{out}");
        // And a pod's own dashed-address name.
        let ip = status(&pods.get("asker").await.expect("pod"))["podIP"]
            .as_str()
            .expect("pod IP")
            .to_string();
        let out = kubectl_ok(
            &n.s,
            &[
                "exec",
                "asker",
                "--",
                "nslookup",
                &format!("{}.default.pod.cluster.local", ip.replace('.', "-")),
            ],
        );
        assert!(out.contains(&ip), "{out}");
        // dnsPolicy None: exactly its dnsConfig.
        let conf = kubectl_ok(&n.s, &["exec", "hostly", "--", "cat", "/etc/resolv.conf"]);
        assert!(conf.contains("nameserver 192.0.2.53"), "{conf}");
        assert!(!conf.contains(&gateway), "{conf}");
        assert!(conf.contains("search example.test"), "{conf}");
        assert!(conf.contains("ndots:2"), "{conf}");
    });
}

#[test]
fn services_balance_over_ready_pods_through_keelson_proxy() {
    busybox_image();
    let _ = podman(&["run", "--rm", IMAGE, "true"]);
    let gateway = podman_gateway();
    let n = PodmanNode::start_with(&[], &[]);
    // The table is the proxy's alone, and it goes with the test.
    struct DropTable;
    impl Drop for DropTable {
        fn drop(&mut self) {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", "keelson"])
                .status();
        }
    }
    let _table = DropTable;
    let rt = runtime();
    rt.block_on(async {
        let c = n.client().await;
        let manifest = format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {IMAGE}
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          exec: {{command: ["cat", "/tmp/ready"]}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  clusterIP: 10.96.0.90
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http, nodePort: 30090}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  clusterIP: 10.96.0.91
  selector: {{app: nobody}}
  ports: [{{port: 80}}]
"#
        );
        kubectl_ok(&n.s, &["apply", "-f", &n.s.file("web.yaml", &manifest)]);
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let web = n
            .eventually("3 ready web pods", LONG, || async {
                let list = pods
                    .list(&kube::api::ListParams::default().labels("app=web"))
                    .await
                    .ok()?;
                let names: Vec<String> = list
                    .items
                    .iter()
                    .filter(|p| ready(p))
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                (names.len() == 3).then_some(names)
            })
            .await;
        pods.create(
            &PostParams::default(),
            &n.pod(
                "client",
                json!({"containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "1000"]}]}),
            ),
        )
        .await
        .expect("client pod");
        n.running(&pods, "client", "c").await;
        let hits = |script: &str| {
            let out = kubectl_ok(&n.s, &["exec", "client", "--", "sh", "-c", script]);
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            for l in out.lines().filter(|l| !l.is_empty()) {
                *counts.entry(l.to_string()).or_default() += 1;
            }
            counts
        };
        // 300 requests from a pod to the ClusterIP reach all three pods (busybox's nc: its
        // static wget crashes here). The answer's last line is the pod's name.
        let get = |n: usize, ip: &str| {
            format!(
                "for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80 | tail -1; done"
            )
        };
        n.eventually("the ClusterIP answers", LONG, || async {
            (!hits(&format!("{} || true", get(1, "10.96.0.90"))).is_empty()).then_some(())
        })
        .await;
        let counts = hits(&get(300, "10.96.0.90"));
        assert_eq!(counts.values().sum::<usize>(), 300, "{counts:?}");
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            {
                let mut w = web.clone();
                w.sort();
                w
            },
            "every pod answers, and only they: {counts:?}"
        );
        assert!(counts.values().all(|c| *c >= 30), "random balancing: {counts:?}");
        // A pod that turns unready stops getting traffic.
        let gone = web[0].clone();
        kubectl_ok(&n.s, &["exec", &gone, "--", "rm", "/tmp/ready"]);
        n.eventually("the unready pod gets no more requests", LONG, || async {
            let c = hits(&get(40, "10.96.0.90"));
            (c.values().sum::<usize>() == 40 && !c.contains_key(&gone)).then_some(())
        })
        .await;
        // The NodePort on the node's address, from the host.
        let out = Command::new("curl")
            .args(["-s", "-m", "5", &format!("http://{gateway}:30090/")])
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(web.contains(&body) && body != gone, "NodePort answered {body:?}");
        // A Service without endpoints refuses at once instead of hanging.
        let started = std::time::Instant::now();
        let o = n.s.kubectl(&["exec", "client", "--", "nc", "-w", "10", "10.96.0.91", "80"]);
        assert!(!o.ok, "{o:?}");
        assert!(o.stderr.contains("refused"), "{o:?}");
        assert!(started.elapsed() < Duration::from_secs(8), "it hung for {:?}", started.elapsed());
    });
}
