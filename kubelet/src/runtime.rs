//! What the pod workers need of a container runtime, and the fake ("hollow node") runtime.
//!
//! The kubelet's logic (ordering, restarts and their back-off, probes, status) lives in the
//! pod workers; a runtime only does what it is told and reports what it has, like the CRI.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use parking_lot::Mutex;

use crate::error::{KubeletError, Result};

/// The annotation that makes the fake runtime's containers exit at once with this code.
pub const FAKE_EXIT_CODE: &str = "fake-kubelet.keelson.io/exit-code";

/// Labels the runtime puts on what it creates, so a restarted kubelet finds what it owns.
pub const LABEL_POD_UID: &str = "io.keelson.pod.uid";
pub const LABEL_POD_NAME: &str = "io.keelson.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.keelson.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.keelson.container.name";
pub const LABEL_ATTEMPT: &str = "io.keelson.container.attempt";
pub const LABEL_INIT: &str = "io.keelson.container.init";
/// The node whose kubelet created it (several kubelets may share one Podman).
pub const LABEL_NODE: &str = "io.keelson.node";

/// What one container instance is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started yet.
    Created,
    Running {
        started_at: Timestamp,
    },
    Exited {
        exit_code: i32,
        /// `Completed` (exit 0), `Error`, or `OOMKilled`.
        reason: String,
        started_at: Timestamp,
        finished_at: Timestamp,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// One container instance of a pod, as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The runtime's id (the status' containerID is `<runtime>://<id>`).
    pub id: String,
    /// The Kubernetes container name.
    pub name: String,
    /// 0 for the first instance, then one more per restart.
    pub attempt: u32,
    pub init: bool,
    /// The image's id (`sha256:…` or the runtime's form of it).
    pub image_id: String,
    pub state: ContainerState,
}

/// A pod's sandbox (Podman: the pod and its infra container, which holds the network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    pub ip: String,
    pub created_at: Timestamp,
}

/// A pod as the runtime has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub sandbox: Option<SandboxInfo>,
    /// Every instance of every container, older attempts included.
    pub containers: Vec<ContainerInfo>,
}

impl PodInfo {
    /// The newest instance of the container `name`.
    pub fn latest(&self, name: &str, init: bool) -> Option<&ContainerInfo> {
        self.containers
            .iter()
            .filter(|c| c.name == name && c.init == init)
            .max_by_key(|c| c.attempt)
    }

    /// The instance before the newest one (the status' lastState).
    pub fn previous(&self, name: &str, init: bool) -> Option<&ContainerInfo> {
        let latest = self.latest(name, init)?.attempt;
        self.containers
            .iter()
            .filter(|c| c.name == name && c.init == init && c.attempt < latest)
            .max_by_key(|c| c.attempt)
    }
}

/// A bind mount into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
    /// `Memory` emptyDirs are a tmpfs instead of a bind mount.
    pub tmpfs: bool,
}

/// A published port of the pod (`hostPort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    pub host_ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// Everything a runtime needs to create one container: the pod worker has resolved the
/// environment and prepared the volumes already.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    pub attempt: u32,
    pub init: bool,
    pub image: String,
    /// Kubernetes `command`: replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image's cmd when not empty.
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    /// Bytes.
    pub memory_limit: Option<i64>,
    /// Millicores.
    pub cpu_limit_millis: Option<i64>,
    /// Millicores (CPU shares).
    pub cpu_request_millis: Option<i64>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub read_only_root: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
}

/// A pod's sandbox settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub ports: Vec<PortMapping>,
    pub host_network: bool,
    /// The pod's annotations (as the CRI passes them; the fake runtime reads its exit code
    /// from them).
    pub annotations: BTreeMap<String, String>,
    /// The pod's resolv.conf (None: the runtime's default, the host's).
    pub dns: Option<crate::dns::Resolv>,
}

/// Why an image could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The pull failed (`ErrImagePull`).
    Pull(String),
    /// Not present and the policy is `Never` (`ErrImageNeverPull`).
    NeverPull(String),
}

/// The result of a command run in a container (exec probes, exec hooks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub output: String,
}

/// What `kubectl logs` asks of a container's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming what the container writes after what it has written.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<u64>,
    /// Only what was written since.
    pub since: Option<Timestamp>,
    /// Each line prefixed with its RFC 3339 time.
    pub timestamps: bool,
}

/// A container's log as it comes (stdout and stderr interleaved).
pub type LogStream = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// A command running in a container for `kubectl exec`: its output (stream 1 stdout, 2
/// stderr) and, to await after the output ended, its exit code.
pub struct ExecStream {
    pub output: futures::stream::BoxStream<'static, Result<(u8, bytes::Bytes)>>,
    pub exit_code: BoxFuture<'static, Result<i32>>,
    /// Terminal size changes (width, height), with a tty.
    pub resize: Option<tokio::sync::mpsc::UnboundedSender<(u16, u16)>>,
}

/// Resource usage of one running container, cumulative (rates come from two samples).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStats {
    pub id: String,
    /// CPU time used so far, in nanoseconds.
    pub cpu_nanos: u64,
    /// Memory in use (the working set), in bytes.
    pub memory_bytes: u64,
    /// When the sample was taken.
    pub at: Timestamp,
}

/// What `kubectl exec` runs.
pub struct ExecRequest {
    pub command: Vec<String>,
    pub tty: bool,
    /// The command's stdin (`-i`); it ends when the sender is dropped.
    pub stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
}

/// What the pod workers need of a container runtime.
pub trait Runtime: Send + Sync + 'static {
    /// `<name>://<version>` for the node's `containerRuntimeVersion`.
    fn version(&self) -> String;
    /// The runtime's name as in container IDs (`podman`, `fake`).
    fn name(&self) -> &'static str;
    /// Makes `image` present by `policy` (`Always`, `IfNotPresent`, `Never`); returns its id.
    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, ImageError>>;
    /// Creates (or finds) and starts the sandbox of a pod.
    fn run_sandbox<'a>(&'a self, config: &'a SandboxConfig) -> BoxFuture<'a, Result<SandboxInfo>>;
    /// Creates and starts one container in the pod's sandbox.
    fn start_container<'a>(
        &'a self,
        sandbox: &'a SandboxConfig,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<()>>;
    /// Stops a container: its stop signal (SIGTERM), then SIGKILL after `grace`.
    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;
    /// Removes a (stopped) container instance.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Runs `command` in a running container, bounded by `timeout`.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecResult>>;
    /// Runs a command in a running container, streaming its output (and its stdin).
    fn exec_stream<'a>(
        &'a self,
        id: &'a str,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecStream>>;
    /// Attaches to a running container's main process (`kubectl attach`).
    fn attach<'a>(
        &'a self,
        _id: &'a str,
        _tty: bool,
        _stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ) -> BoxFuture<'a, Result<ExecStream>> {
        Box::pin(async move {
            Err(KubeletError::Runtime(format!(
                "the {} runtime cannot attach",
                self.name()
            )))
        })
    }
    /// A TCP connection to `port` on the loopback of the pod's network namespace
    /// (`kubectl port-forward`).
    fn port_forward<'a>(
        &'a self,
        _uid: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, Result<tokio::net::TcpStream>> {
        Box::pin(async move {
            Err(KubeletError::Runtime(format!(
                "the {} runtime has no network namespaces to forward ports into",
                self.name()
            )))
        })
    }
    /// (used, total) bytes of the file system containers live on, if the runtime knows.
    fn disk_usage(&self) -> BoxFuture<'_, Result<Option<(u64, u64)>>> {
        Box::pin(async move { Ok(None) })
    }
    /// Resource usage of every running container.
    fn stats(&self) -> BoxFuture<'_, Result<Vec<ContainerStats>>>;
    /// The log of a container instance.
    fn logs<'a>(&'a self, id: &'a str, options: &'a LogOptions)
        -> BoxFuture<'a, Result<LogStream>>;
    /// Every pod this runtime has that a kubelet created (by the pod-uid label).
    fn list_pods(&self) -> BoxFuture<'_, Result<Vec<PodInfo>>>;
    /// The pod of this uid, if the runtime has it.
    fn pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<Option<PodInfo>>>;
    /// Stops every container of the pod (grace as in `stop_container`) and removes the pod.
    fn remove_pod<'a>(&'a self, uid: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;
}

/// Containers of the fake runtime.
struct FakePod {
    info: PodInfo,
    exit: Option<i32>,
}

/// A runtime that runs nothing: sandboxes get an address, containers are running (or have
/// exited with the code of the pod's `fake-kubelet.keelson.io/exit-code` annotation) at
/// once after `start_delay`.
pub struct FakeRuntime {
    start_delay: Duration,
    /// Second octet of this runtime's pod addresses (10.<net>.x.y).
    net: u8,
    pods: Mutex<HashMap<String, FakePod>>,
    next: Mutex<u32>,
}

impl FakeRuntime {
    pub fn new(start_delay: Duration, net: u8) -> FakeRuntime {
        FakeRuntime {
            start_delay,
            net,
            pods: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        }
    }

    /// Pods this runtime holds.
    pub fn len(&self) -> usize {
        self.pods.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn address(&self) -> String {
        let mut next = self.next.lock();
        // 65,024 addresses per node: x.1 … x.254 for x in 0..=255.
        let n = *next;
        *next = (*next + 1) % (256 * 254);
        format!("10.{}.{}.{}", self.net, n / 254, n % 254 + 1)
    }
}

impl Runtime for FakeRuntime {
    fn version(&self) -> String {
        format!("fake://{}", env!("CARGO_PKG_VERSION"))
    }

    fn name(&self) -> &'static str {
        "fake"
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        _policy: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, ImageError>> {
        Box::pin(async move { Ok(format!("fake-image:{image}")) })
    }

    fn run_sandbox<'a>(&'a self, config: &'a SandboxConfig) -> BoxFuture<'a, Result<SandboxInfo>> {
        Box::pin(async move {
            if !self.start_delay.is_zero() {
                tokio::time::sleep(self.start_delay).await;
            }
            let exit = config
                .annotations
                .get(FAKE_EXIT_CODE)
                .and_then(|v| v.trim().parse().ok());
            let mut pods = self.pods.lock();
            let pod = pods.entry(config.uid.clone()).or_insert_with(|| FakePod {
                info: PodInfo {
                    uid: config.uid.clone(),
                    namespace: config.namespace.clone(),
                    name: config.name.clone(),
                    sandbox: None,
                    containers: Vec::new(),
                },
                exit,
            });
            if pod.info.sandbox.is_none() {
                pod.info.sandbox = Some(SandboxInfo {
                    ip: self.address(),
                    created_at: Timestamp::now(),
                });
            }
            pod.info
                .sandbox
                .clone()
                .ok_or_else(|| KubeletError::Runtime("no sandbox".into()))
        })
    }

    fn start_container<'a>(
        &'a self,
        sandbox: &'a SandboxConfig,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut pods = self.pods.lock();
            let pod = pods
                .get_mut(&sandbox.uid)
                .ok_or_else(|| KubeletError::Runtime(format!("no sandbox for {}", sandbox.uid)))?;
            let now = Timestamp::now();
            // Init containers always complete; app containers run or exit as annotated.
            let state = match (config.init, pod.exit) {
                (true, _) => ContainerState::Exited {
                    exit_code: 0,
                    reason: "Completed".into(),
                    started_at: now,
                    finished_at: now,
                },
                (false, None) => ContainerState::Running { started_at: now },
                (false, Some(code)) => ContainerState::Exited {
                    exit_code: code,
                    reason: if code == 0 { "Completed" } else { "Error" }.into(),
                    started_at: now,
                    finished_at: now,
                },
            };
            let id = format!("{}-{}-{}", sandbox.uid, config.name, config.attempt);
            pod.info.containers.push(ContainerInfo {
                id,
                name: config.name.clone(),
                attempt: config.attempt,
                init: config.init,
                image_id: format!("fake-image:{}", config.image),
                state,
            });
            Ok(())
        })
    }

    fn stop_container<'a>(&'a self, id: &'a str, _grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let now = Timestamp::now();
            for pod in self.pods.lock().values_mut() {
                for c in &mut pod.info.containers {
                    if c.id == id {
                        if let ContainerState::Running { started_at } = c.state {
                            c.state = ContainerState::Exited {
                                exit_code: 137,
                                reason: "Error".into(),
                                started_at,
                                finished_at: now,
                            };
                        }
                    }
                }
            }
            Ok(())
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for pod in self.pods.lock().values_mut() {
                pod.info.containers.retain(|c| c.id != id);
            }
            Ok(())
        })
    }

    fn exec<'a>(
        &'a self,
        _id: &'a str,
        _command: &'a [String],
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecResult>> {
        Box::pin(async move {
            Ok(ExecResult {
                exit_code: 0,
                output: String::new(),
            })
        })
    }

    fn exec_stream<'a>(
        &'a self,
        _id: &'a str,
        _req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecStream>> {
        Box::pin(async move {
            Err(KubeletError::Runtime(
                "the fake runtime runs no commands".into(),
            ))
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<ContainerStats>>> {
        // Fake containers use nothing.
        Box::pin(async move {
            let now = Timestamp::now();
            Ok(self
                .pods
                .lock()
                .values()
                .flat_map(|p| p.info.containers.iter())
                .filter(|c| c.state.is_running())
                .map(|c| ContainerStats {
                    id: c.id.clone(),
                    cpu_nanos: 0,
                    memory_bytes: 0,
                    at: now,
                })
                .collect())
        })
    }

    fn logs<'a>(
        &'a self,
        _id: &'a str,
        _options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<LogStream>> {
        // Fake containers write nothing.
        Box::pin(async move { Ok(Box::pin(futures::stream::empty()) as LogStream) })
    }

    fn list_pods(&self) -> BoxFuture<'_, Result<Vec<PodInfo>>> {
        Box::pin(async move { Ok(self.pods.lock().values().map(|p| p.info.clone()).collect()) })
    }

    fn pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<Option<PodInfo>>> {
        Box::pin(async move { Ok(self.pods.lock().get(uid).map(|p| p.info.clone())) })
    }

    fn remove_pod<'a>(&'a self, uid: &'a str, _grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.pods.lock().remove(uid);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(uid: &str) -> SandboxConfig {
        SandboxConfig {
            uid: uid.into(),
            namespace: "ns".into(),
            name: uid.into(),
            ..SandboxConfig::default()
        }
    }

    fn container(name: &str, attempt: u32) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            attempt,
            image: "img".into(),
            ..ContainerConfig::default()
        }
    }

    #[tokio::test]
    async fn fake_pods_run_or_exit_as_told_with_distinct_addresses() {
        let rt = FakeRuntime::new(Duration::ZERO, 7);
        let a = rt.run_sandbox(&sandbox("u1")).await.expect("sandbox");
        rt.start_container(&sandbox("u1"), &container("a", 0))
            .await
            .expect("start");
        let mut failing = sandbox("u2");
        failing
            .annotations
            .insert(FAKE_EXIT_CODE.into(), "3".into());
        let b = rt.run_sandbox(&failing).await.expect("sandbox");
        rt.start_container(&failing, &container("a", 0))
            .await
            .expect("start");
        assert_ne!(a.ip, b.ip);
        assert!(a.ip.starts_with("10.7."));
        // The same pod keeps its sandbox.
        let again = rt.run_sandbox(&sandbox("u1")).await.expect("sandbox");
        assert_eq!(again.ip, a.ip);
        let p1 = rt.pod("u1").await.expect("pod").expect("present");
        assert!(p1.latest("a", false).expect("a").state.is_running());
        let p2 = rt.pod("u2").await.expect("pod").expect("present");
        assert!(matches!(
            &p2.latest("a", false).expect("a").state,
            ContainerState::Exited { exit_code: 3, reason, .. } if reason == "Error"
        ));
        // A restart is a new attempt; the previous one is kept for lastState.
        rt.start_container(&sandbox("u2"), &container("a", 1))
            .await
            .expect("restart");
        let p2 = rt.pod("u2").await.expect("pod").expect("present");
        assert_eq!(p2.latest("a", false).expect("latest").attempt, 1);
        assert_eq!(p2.previous("a", false).expect("previous").attempt, 0);
        assert_eq!(rt.len(), 2);
        rt.remove_pod("u1", Duration::ZERO).await.expect("stop");
        assert_eq!(rt.len(), 1);
        assert!(rt.pod("u1").await.expect("pod").is_none());
    }
}
