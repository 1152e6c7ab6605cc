//! `keelson bench pod-start`: real pod start latency on Podman, against the raw Podman floor
//! measured in the same run.
//!
//! All in one run, bounded by `--timeout`:
//!
//! 1. The busybox image (`localhost/keelson-busybox:bench`) is built if Podman's store lacks
//!    it: `/bin/busybox` of Debian's busybox-static, its applet symlinks and an `etc/passwd`,
//!    tarred and `podman import`ed (there is no registry).
//! 2. **Raw floor**: N times, one after another, `podman pod create --name <x>` +
//!    `podman run -d --pod <x> <image> sleep 3600` (per pod: create + run), then N of them
//!    started all at once (wall time for all N, and per pod). Removed after each phase.
//! 3. **keelson**: one `keelson server` (scheduler and controllers on, no embedded agent) and
//!    one `keelson agent --runtime podman` child process; once the node is Ready, one
//!    `kubectl apply -f` of a manifest of N busybox pods pinned to that node by
//!    `nodeSelector`. A pod's latency is the moment this process' watch first sees it
//!    `Running` with its container running, minus the moment just before kubectl started.
//!    Then, those gone, the same N again one at a time (one `kubectl apply` per pod, each
//!    waited for), the like-for-like counterpart of raw Podman's one-at-a-time figure.
//!
//! The podman CLI runs with a containers.conf of its own (runc, cgroupfs: crun fails on these
//! hosts; see ENVIRONMENT.md). The agent's own `podman system service` uses the same settings.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::sync::watch as tokio_watch;

use super::density::{percentiles, Percentiles};
use super::error::{BenchError, Result};
use super::kv::OutputFormat;
use super::servers::{ensure_namespace, server_binary, wait_serving, ServerCluster};
use super::util::parse_duration;

/// The image the bench builds when Podman's store lacks it.
pub const DEFAULT_IMAGE: &str = "localhost/keelson-busybox:bench";
/// Any tag of this repository is built like the default image when missing.
const BUILT_REPOSITORY: &str = "localhost/keelson-busybox:";
/// kubectl 1.32 as the image installs it (the `kubectl` on PATH is a dispatcher).
const KUBECTL_132: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
const NAMESPACE: &str = "pod-start";
/// This project's goal: what keelson may add to raw Podman, per pod (p50).
const GOAL_ADDED_S: f64 = 0.2;
/// Longest any single podman CLI call may take.
const PODMAN_CALL: Duration = Duration::from_secs(120);
/// How long the agent gets to stop after SIGTERM before its process group is SIGKILLed.
const AGENT_STOP: Duration = Duration::from_secs(30);
/// How long deleted pods may take to go from the API at the end.
const DELETE_WAIT: Duration = Duration::from_secs(60);

/// The containers.conf that works on these hosts (ENVIRONMENT.md, section Podman).
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"#;

#[derive(Args, Debug)]
pub struct PodStartArgs {
    /// Pods to start (raw Podman serially, raw Podman at once, and through keelson).
    #[arg(long, default_value_t = 20)]
    pub pods: usize,
    /// The image every pod runs (`sleep 3600`); `localhost/keelson-busybox:<tag>` is built
    /// from /bin/busybox if missing.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// The `keelson` binary to run as `keelson server` and `keelson agent` [default: this
    /// executable].
    #[arg(long)]
    pub keelson: Option<PathBuf>,
    /// kubectl [default: /usr/lib/google-cloud-sdk/bin/kubectl.1.32 if present, else `kubectl`].
    #[arg(long)]
    pub kubectl: Option<PathBuf>,
    /// Where the server's and the agent's data and logs go [default: a new dir under
    /// /var/tmp].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the data dir and logs (the pods and containers are removed regardless).
    #[arg(long)]
    pub keep: bool,
    /// The agent's `--log-level` (its log is `<data-root>/agent/agent.log`).
    #[arg(long, default_value = "info")]
    pub agent_log_level: String,
    /// Deadline of the whole run.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'w', long = "output", value_enum, default_value = "simple")]
    pub output: OutputFormat,
    /// Same as `-w json`.
    #[arg(long)]
    pub json: bool,
}

fn progress(msg: &str) {
    eprintln!("keelson bench pod-start: {msg}");
}

/// The run's deadline, handing out bounded timeouts.
#[derive(Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    /// At most `cap`, and no later than the deadline.
    fn within(&self, cap: Duration) -> Duration {
        self.0.saturating_duration_since(Instant::now()).min(cap)
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// The podman CLI with this run's containers.conf.
struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `podman <args>` (killed after `timeout`) and returns its output, whatever the
    /// exit status.
    async fn output(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        let out = self.command(args).output();
        match tokio::time::timeout(timeout, out).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(source)) => Err(BenchError::Spawn {
                binary: PathBuf::from("podman (Debian podman and runc; scripts/run installs them)"),
                source,
            }),
            Err(_) => Err(BenchError::Timeout {
                what: format!("podman {}", args.join(" ")),
                secs: timeout.as_secs_f64(),
                detail: String::new(),
            }),
        }
    }

    /// Runs `podman <args>` and returns its stdout; a non-zero exit is an error.
    async fn ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.output(args, timeout).await?;
        if !out.status.success() {
            return Err(BenchError::Failed(format!(
                "podman {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Removes every Podman pod labelled `label` (`key=value`), containers and all.
    async fn remove_labelled(&self, label: &str, timeout: Duration) -> Result<usize> {
        let filter = format!("label={label}");
        let ids = self
            .ok(&["pod", "ps", "-q", "--filter", &filter], timeout)
            .await?;
        let ids: Vec<&str> = ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let mut args = vec!["pod", "rm", "-f", "-t", "0"];
        args.extend(ids.iter().copied());
        self.ok(&args, timeout).await?;
        Ok(ids.len())
    }
}

/// Runs a command to completion, killed after `timeout`, without an async runtime (for
/// `Drop`). True if it exited 0.
fn run_blocking(cmd: &mut StdCommand, timeout: Duration) -> bool {
    let Ok(mut child) = cmd.stdin(Stdio::null()).stderr(Stdio::null()).spawn() else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// What must go even when the run fails or is interrupted: Podman pods by label (the normal
/// path removes them itself and clears `labels`), and the data dir unless `--keep`.
struct Leftovers {
    conf: PathBuf,
    labels: Vec<String>,
    remove_dir: Option<PathBuf>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for label in &self.labels {
            // `podman pod ps -q --filter … | xargs podman pod rm -f -t 0`, bounded.
            let script = "podman pod ps -q --filter \"label=$1\" | xargs -r podman pod rm -f -t 0";
            let _ = run_blocking(
                StdCommand::new("sh")
                    .args(["-c", script, "sh", label])
                    .env("CONTAINERS_CONF", &self.conf)
                    .stdout(Stdio::null()),
                PODMAN_CALL,
            );
        }
        if let Some(dir) = &self.remove_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; the pid is our own child's.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends `sig` to the process group led by `pid` (the agent and its `podman system
/// service`).
fn signal_group(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: as above; the group is the one our child leads (process_group(0)).
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

/// A `keelson agent --runtime podman` child in a process group of its own. Stopped with
/// SIGTERM (it then stops its `podman system service`), its whole group SIGKILLed if it does
/// not exit in time; on drop too.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(
        binary: &Path,
        kubeconfig: &Path,
        node: &str,
        root: &Path,
        log_level: &str,
    ) -> Result<Agent> {
        use std::os::unix::process::CommandExt as _;
        fs::create_dir_all(root)
            .map_err(|e| BenchError::io(format!("creating {}", root.display()), e))?;
        let log = root.join("agent.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| BenchError::io(format!("opening {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("duplicating a log handle", e))?;
        let child = StdCommand::new(binary)
            .arg("agent")
            .args(["--runtime", "podman", "--node-name", node])
            .args(["--log-level", log_level])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--root-dir")
            .arg(root.join("root"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        Ok(Agent {
            child: Some(child),
            log,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn check_alive(&mut self) -> Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        if let Ok(Some(status)) = child.try_wait() {
            let pid = child.id();
            self.child = None;
            // Its podman service may still run in its group.
            signal_group(pid, libc::SIGKILL);
            return Err(BenchError::MemberExited {
                member: "keelson agent".into(),
                status: status.to_string(),
                log: log_tail(&self.log, 30),
            });
        }
        Ok(())
    }

    /// SIGTERM, then waits (bounded) for it to exit; SIGKILLs its group after that.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + AGENT_STOP;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    progress("the agent did not stop in time after SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Whatever is left of its group (a podman service it could not stop).
        signal_group(pid, libc::SIGKILL);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_group(pid, libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Builds the busybox image unless Podman has `image`. True if it was built.
async fn ensure_image(
    podman: &Podman,
    image: &str,
    work: &Path,
    deadline: Deadline,
) -> Result<bool> {
    let exists = podman
        .output(&["image", "exists", image], deadline.within(PODMAN_CALL))
        .await?;
    if exists.status.success() {
        return Ok(false);
    }
    if !image.starts_with(BUILT_REPOSITORY) {
        return Err(BenchError::Failed(format!(
            "image {image} is not in Podman's store and there is no registry to pull it from; \
             build it first, or omit --image to use {DEFAULT_IMAGE}, which this bench builds"
        )));
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err(BenchError::Failed(
            "/bin/busybox is missing: install Debian busybox-static (scripts/test installs it)"
                .into(),
        ));
    }
    progress(&format!("building {image} from /bin/busybox"));
    let dir = work.join("busybox-image");
    let _ = fs::remove_dir_all(&dir);
    let root = dir.join("rootfs");
    for d in ["bin", "tmp", "etc", "proc", "sys", "dev", "mnt", "data"] {
        let p = root.join(d);
        fs::create_dir_all(&p)
            .map_err(|e| BenchError::io(format!("creating {}", p.display()), e))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))
        .map_err(|e| BenchError::io("copying /bin/busybox", e))?;
    let applets = Command::new(busybox)
        .arg("--list")
        .output()
        .await
        .map_err(|source| BenchError::Spawn {
            binary: busybox.to_path_buf(),
            source,
        })?;
    for a in String::from_utf8_lossy(&applets.stdout).lines() {
        let a = a.trim();
        if !a.is_empty() && a != "busybox" && !a.contains('/') {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a))
                .map_err(|e| BenchError::io(format!("linking applet {a}"), e))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .map_err(|e| BenchError::io("writing etc/passwd", e))?;
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .await
        .map_err(|source| BenchError::Spawn {
            binary: PathBuf::from("tar"),
            source,
        })?;
    if !st.success() {
        return Err(BenchError::Failed(format!(
            "tar of the busybox rootfs failed ({st})"
        )));
    }
    let tar = tar.display().to_string();
    podman
        .ok(&["import", &tar, image], deadline.within(PODMAN_CALL))
        .await?;
    let _ = fs::remove_dir_all(&dir);
    Ok(true)
}

/// `podman pod create` + `podman run -d --pod` of one pod; how long both took.
async fn raw_pod(
    podman: &Podman,
    name: &str,
    label: &str,
    image: &str,
    deadline: Deadline,
) -> Result<Duration> {
    let t0 = Instant::now();
    podman
        .ok(
            &["pod", "create", "--name", name, "--label", label],
            deadline.within(PODMAN_CALL),
        )
        .await?;
    podman
        .ok(
            &["run", "-d", "--pod", name, image, "sleep", "3600"],
            deadline.within(PODMAN_CALL),
        )
        .await?;
    Ok(t0.elapsed())
}

/// The raw Podman floor.
#[derive(Debug, Default)]
struct Raw {
    /// Each pod's create + run, one pod after another.
    serial: Vec<Duration>,
    /// Each pod's create + run, all N started at once.
    parallel: Vec<Duration>,
    /// From starting all N at once until the last one ran.
    parallel_wall: Duration,
}

async fn measure_raw(
    podman: &Podman,
    args: &PodStartArgs,
    label: &str,
    tag: &str,
    deadline: Deadline,
) -> Result<Raw> {
    let n = args.pods;
    progress(&format!("raw Podman: {n} pods one after another"));
    let mut raw = Raw::default();
    for i in 0..n {
        let name = format!("{tag}-serial-{i}");
        raw.serial
            .push(raw_pod(podman, &name, label, &args.image, deadline).await?);
    }
    let removed = podman
        .remove_labelled(label, deadline.within(PODMAN_CALL))
        .await?;
    if removed != n {
        return Err(BenchError::Failed(format!(
            "removed {removed} raw pods, expected {n}"
        )));
    }
    progress(&format!("raw Podman: {n} pods at once"));
    let names: Vec<String> = (0..n).map(|i| format!("{tag}-parallel-{i}")).collect();
    let t0 = Instant::now();
    let results = futures::future::join_all(
        names
            .iter()
            .map(|name| raw_pod(podman, name, label, &args.image, deadline)),
    )
    .await;
    raw.parallel_wall = t0.elapsed();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(d) => raw.parallel.push(d),
            Err(e) => errors.push(e.to_string()),
        }
    }
    podman
        .remove_labelled(label, deadline.within(PODMAN_CALL))
        .await?;
    if !errors.is_empty() {
        return Err(BenchError::Failed(format!(
            "{} of {n} raw Podman pods started at once failed, first: {}",
            errors.len(),
            errors[0]
        )));
    }
    Ok(raw)
}

/// What this process' watch saw of one pod.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// First event of the pod.
    created: Option<Instant>,
    /// First event with `spec.nodeName`.
    bound: Option<Instant>,
    /// First event with phase Running and every container running.
    running: Option<Instant>,
    /// `metadata.creationTimestamp` (ms since the epoch; the API gives whole seconds).
    creation_ts: Option<i64>,
    /// The container's `state.running.startedAt` (ms since the epoch, whole seconds).
    started_ts: Option<i64>,
    /// A hash of the container IDs it first ran with.
    container_ids: Option<u64>,
    /// Seen again, before its deletion, not running or running other containers.
    replaced: bool,
}

#[derive(Default)]
struct Watched {
    pods: HashMap<String, Seen>,
}

/// A hash of the pod's container IDs (`status.containerStatuses[].containerID`).
fn container_ids(pod: &Pod) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
    {
        c.container_id.hash(&mut h);
    }
    h.finish()
}

fn running_with_containers(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status.container_statuses.as_ref().is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// Watches the bench namespace's pods into `seen`; `ready` turns true once the initial list
/// is done.
fn start_watch(
    client: Client,
    seen: Arc<Mutex<Watched>>,
    ready: tokio_watch::Sender<bool>,
    mut stop: tokio_watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(ev) = ev else { return };
            let pod = match ev {
                Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => p,
                Ok(Event::InitDone) => {
                    let _ = ready.send(true);
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "pod-start watch error");
                    continue;
                }
            };
            let now = Instant::now();
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            let running = running_with_containers(&pod);
            let mut w = seen.lock();
            let s = w.pods.entry(name).or_default();
            s.created.get_or_insert(now);
            if s.creation_ts.is_none() {
                s.creation_ts = pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_millisecond());
            }
            if bound {
                s.bound.get_or_insert(now);
            }
            let ids = container_ids(&pod);
            if s.running.is_some() && pod.metadata.deletion_timestamp.is_none() {
                // Once running, the same containers keep running until the pod is deleted.
                if !running || Some(ids) != s.container_ids {
                    s.replaced = true;
                }
            }
            if running && s.running.is_none() {
                s.running = Some(now);
                s.container_ids = Some(ids);
                s.started_ts = pod
                    .status
                    .as_ref()
                    .and_then(|st| st.container_statuses.as_ref())
                    .and_then(|cs| {
                        cs.iter()
                            .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                            .map(|t| t.0.as_millisecond())
                            .max()
                    });
            }
        }
    })
}

fn pod_names(prefix: &str, n: usize) -> Vec<String> {
    let width = n.saturating_sub(1).to_string().len().max(2);
    (0..n).map(|i| format!("{prefix}-{i:0width$}")).collect()
}

/// The manifest `kubectl apply -f` gets: a List of N pods pinned to `node`.
fn manifest(names: &[String], image: &str, node: &str) -> Value {
    let items: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE,
                             "labels": {"app": "pod-start-bench"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{
                        "name": "busybox",
                        "image": image,
                        "command": ["sleep", "3600"],
                    }],
                },
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn kubectl_binary(given: &Option<PathBuf>) -> PathBuf {
    match given {
        Some(k) => k.clone(),
        None if Path::new(KUBECTL_132).exists() => PathBuf::from(KUBECTL_132),
        None => PathBuf::from("kubectl"),
    }
}

/// What the keelson phase measured.
#[derive(Debug, Default)]
struct Keelson {
    /// Per pod: apply start → seen Running.
    per_pod: Vec<Duration>,
    /// Apply start → the last pod seen Running.
    wall: Duration,
    /// How long `kubectl apply` itself ran.
    kubectl: Duration,
    /// Per pod: apply start → first seen by the watch (created).
    to_created: Vec<Duration>,
    /// Per pod: created → bound (the scheduler).
    to_bound: Vec<Duration>,
    /// Per pod: bound → Running (the agent and Podman).
    to_running: Vec<Duration>,
    /// Σ bound → Running over the span from the first binding to the last Running: how many
    /// pods the agent had starting at once, on average.
    agent_concurrency: f64,
    /// Kubernetes' pod startup SLI: container startedAt − creationTimestamp (whole seconds).
    sli: Vec<Duration>,
    /// Per pod, one pod at a time (after the burst is gone): apply start → seen Running.
    serial: Vec<Duration>,
    /// Pods (of both phases) seen not running, or with other containers, after they ran and
    /// before they were deleted: their containers were stopped or replaced.
    replaced: Vec<String>,
}

fn keelson_result(
    seen: &HashMap<String, Seen>,
    names: &[String],
    t0: Instant,
    kubectl: Duration,
) -> Keelson {
    let pods: Vec<Seen> = names.iter().filter_map(|n| seen.get(n).copied()).collect();
    let since = |a: Option<Instant>, b: Option<Instant>| Some(b?.saturating_duration_since(a?));
    let per_pod: Vec<Duration> = pods
        .iter()
        .filter_map(|p| since(Some(t0), p.running))
        .collect();
    let first_bound = pods.iter().filter_map(|p| p.bound).min();
    let last_running = pods.iter().filter_map(|p| p.running).max();
    let to_running: Vec<Duration> = pods
        .iter()
        .filter_map(|p| since(p.bound, p.running))
        .collect();
    let span = since(first_bound, last_running).unwrap_or_default();
    let agent_concurrency = if span > Duration::ZERO {
        to_running.iter().map(Duration::as_secs_f64).sum::<f64>() / span.as_secs_f64()
    } else {
        0.0
    };
    Keelson {
        wall: per_pod.iter().max().copied().unwrap_or_default(),
        per_pod,
        kubectl,
        to_created: pods
            .iter()
            .filter_map(|p| since(Some(t0), p.created))
            .collect(),
        to_bound: pods
            .iter()
            .filter_map(|p| since(p.created, p.bound))
            .collect(),
        to_running,
        agent_concurrency,
        sli: pods
            .iter()
            .filter_map(|p| {
                let ms = p.started_ts? - p.creation_ts?;
                Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
            })
            .collect(),
        serial: Vec::new(),
        replaced: Vec::new(),
    }
}

/// The server and agent of the keelson phase, stopped in order at the end.
struct Cluster {
    server: Option<ServerCluster>,
    agent: Option<Agent>,
}

impl Cluster {
    fn check_alive(&mut self) -> Result<()> {
        if let Some(s) = &mut self.server {
            s.check_alive()?;
        }
        if let Some(a) = &mut self.agent {
            a.check_alive()?;
        }
        Ok(())
    }
}

async fn wait_node_ready(
    client: &Client,
    node: &str,
    cluster: &mut Cluster,
    deadline: Deadline,
) -> Result<()> {
    let timeout = deadline.within(Duration::from_secs(120));
    let until = Instant::now() + timeout;
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        cluster.check_alive()?;
        if let Ok(n) = nodes.get(node).await {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return Ok(());
            }
        }
        if Instant::now() >= until {
            let log = cluster
                .agent
                .as_ref()
                .map(|a| log_tail(&a.log, 30))
                .unwrap_or_default();
            return Err(BenchError::Timeout {
                what: format!("node {node} becoming Ready"),
                secs: timeout.as_secs_f64(),
                detail: format!("; agent log:\n{log}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `kubectl apply -f manifest_path` and waits until every one of `names` runs. Returns the apply start and how long
/// kubectl ran.
async fn apply_and_wait(
    args: &PodStartArgs,
    kubeconfig: &Path,
    manifest_path: &Path,
    names: &[String],
    seen: &Arc<Mutex<Watched>>,
    cluster: &mut Cluster,
    deadline: Deadline,
) -> Result<(Instant, Duration)> {
    let kubectl = kubectl_binary(&args.kubectl);
    let mut cmd = Command::new(&kubectl);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f"])
        .arg(manifest_path)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let t0 = Instant::now();
    let timeout = deadline.within(Duration::from_secs(120));
    let out = match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(source)) => {
            return Err(BenchError::Spawn {
                binary: kubectl,
                source,
            })
        }
        Err(_) => {
            return Err(BenchError::Timeout {
                what: "kubectl apply".into(),
                secs: timeout.as_secs_f64(),
                detail: String::new(),
            })
        }
    };
    let kubectl_took = t0.elapsed();
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "kubectl apply failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let want = names.len();
    let mut last_report = Instant::now();
    loop {
        let (running, seen_n) = {
            let w = seen.lock();
            let of = |f: fn(&Seen) -> bool| {
                names
                    .iter()
                    .filter(|n| w.pods.get(*n).is_some_and(f))
                    .count()
            };
            (of(|s| s.running.is_some()), of(|_| true))
        };
        if running >= want {
            return Ok((t0, kubectl_took));
        }
        cluster.check_alive()?;
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(&format!("{seen_n} pods seen, {running} of {want} running"));
            last_report = Instant::now();
        }
        if deadline.passed() {
            let log = cluster
                .agent
                .as_ref()
                .map(|a| log_tail(&a.log, 30))
                .unwrap_or_default();
            return Err(BenchError::Timeout {
                what: format!("{want} pods Running"),
                secs: args.timeout.as_secs_f64(),
                detail: format!(" ({seen_n} seen, {running} running); agent log:\n{log}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes the bench's pods and waits (bounded) until the API has none left.
async fn delete_pods(client: &Client, names: &[String]) {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let dp = DeleteParams::default();
    let deletes = names.iter().map(|n| {
        let api = api.clone();
        let dp = dp.clone();
        async move { api.delete(n, &dp).await }
    });
    let _ = futures::future::join_all(deletes).await;
    let until = Instant::now() + DELETE_WAIT;
    loop {
        match api.list(&Default::default()).await {
            Ok(list) if list.items.is_empty() => return,
            Ok(list) if Instant::now() >= until => {
                progress(&format!(
                    "{} pods still in the API after {DELETE_WAIT:?}; removing their containers directly",
                    list.items.len()
                ));
                return;
            }
            Err(e) if Instant::now() >= until => {
                progress(&format!("listing pods at cleanup: {e}"));
                return;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure_keelson(
    args: &PodStartArgs,
    root: &Path,
    node: &str,
    cluster: &mut Cluster,
    deadline: Deadline,
) -> Result<Keelson> {
    let binary = server_binary(&args.keelson)?;
    progress("starting keelson server and keelson agent --runtime podman");
    let server = ServerCluster::start(&binary, &root.join("server"), "podstart", 1, &[])?;
    let kubeconfig = server
        .kubeconfigs()
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::Failed("the server has no kubeconfig".into()))?;
    cluster.server = Some(server);
    let clients = wait_serving(
        &mut cluster.server,
        std::slice::from_ref(&kubeconfig),
        deadline.within(Duration::from_secs(120)),
    )
    .await?;
    let client = clients
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::Failed("no API client".into()))?;
    cluster.agent = Some(Agent::start(
        &binary,
        &kubeconfig,
        node,
        &root.join("agent"),
        &args.agent_log_level,
    )?);
    wait_node_ready(&client, node, cluster, deadline).await?;
    ensure_namespace(&client, NAMESPACE).await?;

    let burst = pod_names("busybox", args.pods);
    let one_by_one = pod_names("one", args.pods);
    let write_manifest = |file: &str, names: &[String]| -> Result<PathBuf> {
        let path = root.join(file);
        let text = serde_json::to_string_pretty(&manifest(names, &args.image, node))
            .map_err(|e| BenchError::Failed(format!("encoding the manifest: {e}")))?;
        fs::write(&path, text)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    };
    let burst_manifest = write_manifest("pods.json", &burst)?;

    let seen = Arc::new(Mutex::new(Watched::default()));
    let (ready_tx, mut ready_rx) = tokio_watch::channel(false);
    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    let watch = start_watch(client.clone(), Arc::clone(&seen), ready_tx, stop_rx);
    let watch_timeout = deadline.within(Duration::from_secs(30));
    let outcome = match tokio::time::timeout(watch_timeout, ready_rx.wait_for(|r| *r)).await {
        Ok(Ok(_)) => {
            async {
                progress(&format!(
                    "kubectl apply of {} pods at once on node {node}",
                    args.pods
                ));
                let (t0, took) = apply_and_wait(
                    args,
                    &kubeconfig,
                    &burst_manifest,
                    &burst,
                    &seen,
                    cluster,
                    deadline,
                )
                .await?;
                let mut k = keelson_result(&seen.lock().pods, &burst, t0, took);
                progress("deleting them");
                delete_pods(&client, &burst).await;
                progress(&format!(
                    "kubectl apply of {} pods one at a time",
                    args.pods
                ));
                for name in &one_by_one {
                    let path = write_manifest("pod.json", std::slice::from_ref(name))?;
                    let one = std::slice::from_ref(name);
                    let (t0, _) =
                        apply_and_wait(args, &kubeconfig, &path, one, &seen, cluster, deadline)
                            .await?;
                    let running = seen.lock().pods.get(name).and_then(|s| s.running);
                    k.serial
                        .push(running.map_or(Duration::ZERO, |r| r.saturating_duration_since(t0)));
                }
                Ok(k)
            }
            .await
        }
        _ => Err(BenchError::Timeout {
            what: "the pod watch starting".into(),
            secs: watch_timeout.as_secs_f64(),
            detail: String::new(),
        }),
    };
    progress("deleting the pods");
    let all: Vec<String> = burst.into_iter().chain(one_by_one).collect();
    delete_pods(&client, &all).await;
    let _ = stop_tx.send(true);
    let _ = watch.await;
    outcome.map(|mut k| {
        let w = seen.lock();
        k.replaced = all
            .iter()
            .filter(|n| w.pods.get(*n).is_some_and(|s| s.replaced))
            .cloned()
            .collect();
        k
    })
}

/// Everything one run measured.
struct Results {
    raw: Raw,
    keelson: Keelson,
    image_built: bool,
    /// The agent's WARN and ERROR log lines.
    agent_warnings: Vec<String>,
}

/// The WARN and ERROR lines of the agent's log, without ANSI colours.
fn agent_warnings(log: &Path) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(strip_ansi)
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn sum(v: &[Duration]) -> Duration {
    v.iter().sum()
}

pub async fn run(args: PodStartArgs) -> Result<()> {
    if args.pods == 0 {
        return Err(BenchError::InvalidArgs("--pods must be at least 1".into()));
    }
    let deadline = Deadline(Instant::now() + args.timeout);
    let root = match &args.data_root {
        Some(r) => r.clone(),
        None => PathBuf::from(format!(
            "/var/tmp/keelson-bench-pod-start-{}",
            std::process::id()
        )),
    };
    fs::create_dir_all(&root)
        .map_err(|e| BenchError::io(format!("creating {}", root.display()), e))?;
    let conf = root.join("containers.conf");
    fs::write(&conf, CONTAINERS_CONF)
        .map_err(|e| BenchError::io(format!("writing {}", conf.display()), e))?;
    let tag = format!("kbench-{}", std::process::id());
    let raw_label = format!("io.keelson.bench={tag}");
    let node = format!(
        "pod-start-{}-{}",
        std::process::id(),
        super::servers::free_ports(1)?[0]
    );
    let node_label = format!("io.keelson.node={node}");
    let mut leftovers = Leftovers {
        conf: conf.clone(),
        labels: vec![raw_label.clone(), node_label.clone()],
        remove_dir: (!args.keep).then(|| root.clone()),
    };
    let podman = Podman { conf };

    let mut cluster = Cluster {
        server: None,
        agent: None,
    };
    let measured = async {
        let image_built = ensure_image(&podman, &args.image, &root, deadline).await?;
        let raw = measure_raw(&podman, &args, &raw_label, &tag, deadline).await?;
        let keelson = measure_keelson(&args, &root, &node, &mut cluster, deadline).await?;
        Ok::<_, BenchError>(Results {
            raw,
            keelson,
            image_built,
            agent_warnings: Vec::new(),
        })
    }
    .await;

    // Clean up in order: the agent (it stops its podman service), the server, then whatever
    // Podman still has of this run.
    if let Some(a) = &mut cluster.agent {
        progress(&format!(
            "stopping the agent (pid {})",
            a.pid().unwrap_or_default()
        ));
        a.stop().await;
    }
    let warnings = cluster
        .agent
        .as_ref()
        .map(|a| agent_warnings(&a.log))
        .unwrap_or_default();
    drop(cluster);
    let mut cleanup_error = None;
    for label in [&raw_label, &node_label] {
        match podman.remove_labelled(label, PODMAN_CALL).await {
            Ok(0) => {}
            Ok(n) => progress(&format!(
                "removed {n} leftover Podman pods labelled {label}"
            )),
            Err(e) => cleanup_error = Some(e),
        }
    }
    if cleanup_error.is_none() {
        leftovers.labels.clear();
    }
    drop(leftovers);
    if args.keep {
        progress(&format!("data and logs kept in {}", root.display()));
    }
    let mut results = measured?;
    results.agent_warnings = warnings;
    if let Some(e) = cleanup_error {
        return Err(BenchError::Failed(format!(
            "removing the bench's Podman pods: {e}"
        )));
    }
    if args.json || args.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&args, &node, &results)).unwrap_or_default()
        );
    } else {
        print_table(&args, &results);
    }
    Ok(())
}

fn p_json(p: &Percentiles) -> Value {
    let s = |ms: f64| ms / 1000.0;
    json!({"p50_s": s(p.p50), "p90_s": s(p.p90), "p99_s": s(p.p99), "max_s": s(p.max)})
}

fn p50_s(v: &[Duration]) -> f64 {
    percentiles(v.to_vec()).p50 / 1000.0
}

/// The issue's "added" figure: keelson's p50 of the N applied at once minus raw Podman's
/// serial p50, in seconds.
fn added_p50(r: &Results) -> f64 {
    p50_s(&r.keelson.per_pod) - p50_s(&r.raw.serial)
}

/// Like for like, all N at once: keelson's p50 minus raw Podman's p50, in seconds.
fn added_p50_parallel(r: &Results) -> f64 {
    p50_s(&r.keelson.per_pod) - p50_s(&r.raw.parallel)
}

/// Like for like, one pod at a time: keelson's p50 minus raw Podman's p50, in seconds.
fn added_p50_serial(r: &Results) -> f64 {
    p50_s(&r.keelson.serial) - p50_s(&r.raw.serial)
}

/// keelson started the pods in parallel: all N took less than raw Podman one after another.
fn parallel(r: &Results) -> bool {
    r.keelson.wall < sum(&r.raw.serial)
}

fn to_json(args: &PodStartArgs, node: &str, r: &Results) -> Value {
    let k = &r.keelson;
    json!({
        "pods": args.pods,
        "image": args.image,
        "image_built": r.image_built,
        "node": node,
        "raw_serial": {
            "per_pod": p_json(&percentiles(r.raw.serial.clone())),
            "total_s": secs(sum(&r.raw.serial)),
        },
        "raw_parallel": {
            "per_pod": p_json(&percentiles(r.raw.parallel.clone())),
            "wall_s": secs(r.raw.parallel_wall),
        },
        "keelson": {
            "per_pod": p_json(&percentiles(k.per_pod.clone())),
            "wall_s": secs(k.wall),
            "kubectl_apply_s": secs(k.kubectl),
            "apply_to_created": p_json(&percentiles(k.to_created.clone())),
            "created_to_bound": p_json(&percentiles(k.to_bound.clone())),
            "bound_to_running": p_json(&percentiles(k.to_running.clone())),
            "agent_concurrency": k.agent_concurrency,
            "startup_sli": p_json(&percentiles(k.sli.clone())),
            "pods_replaced_after_running": k.replaced,
        },
        "keelson_serial": {
            "per_pod": p_json(&percentiles(k.serial.clone())),
            "total_s": secs(sum(&k.serial)),
        },
        "added_p50_s": added_p50(r),
        "added_p50_serial_s": added_p50_serial(r),
        "added_p50_parallel_s": added_p50_parallel(r),
        "goal_added_p50_s": GOAL_ADDED_S,
        "goal_added_met": added_p50(r) <= GOAL_ADDED_S,
        "wall_vs_raw_parallel": secs(k.wall) / secs(r.raw.parallel_wall).max(1e-9),
        "parallel": parallel(r),
        "agent_warnings": r.agent_warnings.len(),
        "agent_warning_lines": r.agent_warnings.iter().take(20).collect::<Vec<_>>(),
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_table(args: &PodStartArgs, r: &Results) {
    let k = &r.keelson;
    let n = args.pods;
    println!(
        "keelson bench pod-start: {n} pods of {}{}\n",
        args.image,
        if r.image_built {
            " (built by this run)"
        } else {
            ""
        }
    );
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>8}",
        "per pod (s)", "p50", "p99", "max", "wall"
    );
    let row = |name: &str, v: &[Duration], wall: Option<Duration>| {
        let p = percentiles(v.to_vec());
        println!(
            "{:<48} {:>8.3} {:>8.3} {:>8.3} {:>8}",
            name,
            p.p50 / 1000.0,
            p.p99 / 1000.0,
            p.max / 1000.0,
            wall.map(|w| format!("{:.3}", secs(w))).unwrap_or_default()
        );
    };
    row(
        "raw podman, one at a time: pod create + run",
        &r.raw.serial,
        Some(sum(&r.raw.serial)),
    );
    row(
        &format!("raw podman, {n} at once: pod create + run"),
        &r.raw.parallel,
        Some(r.raw.parallel_wall),
    );
    row(
        &format!("keelson, {n} at once: kubectl apply → Running"),
        &k.per_pod,
        Some(k.wall),
    );
    row("  apply → created (seen by the watch)", &k.to_created, None);
    row("  created → bound (scheduler)", &k.to_bound, None);
    row("  bound → Running (agent + Podman)", &k.to_running, None);
    row(
        "  startup SLI: startedAt − creation (1-s res.)",
        &k.sli,
        None,
    );
    row(
        "keelson, one at a time: kubectl apply → Running",
        &k.serial,
        Some(sum(&k.serial)),
    );
    println!(
        "\nkubectl apply of {n} ran {:.3} s; agent concurrency (Σ bound → Running / span) {:.1}",
        secs(k.kubectl),
        k.agent_concurrency
    );
    let added = added_p50(r);
    println!(
        "added by keelson ({n} at once p50 − raw one-at-a-time p50): {added:+.3} s per pod; goal ≤ {GOAL_ADDED_S:.1} s {}",
        verdict(added <= GOAL_ADDED_S)
    );
    println!(
        "like for like: one at a time {:+.3} s per pod (p50); {n} at once {:+.3} s per pod (p50)",
        added_p50_serial(r),
        added_p50_parallel(r)
    );
    println!(
        "parallel: keelson wall {:.3} s vs raw parallel wall {:.3} s ({:.2}x) and raw one-at-a-time total {:.3} s; parallel starts {}",
        secs(k.wall),
        secs(r.raw.parallel_wall),
        secs(k.wall) / secs(r.raw.parallel_wall).max(1e-9),
        secs(sum(&r.raw.serial)),
        verdict(parallel(r))
    );
    if !k.replaced.is_empty() {
        println!(
            "\n{} pods stopped running or got new containers after they ran (before deletion): {}",
            k.replaced.len(),
            k.replaced.join(", ")
        );
    }
    if !r.agent_warnings.is_empty() {
        println!(
            "\nthe agent logged {} warnings; the first ones:",
            r.agent_warnings.len()
        );
        for l in r.agent_warnings.iter().take(5) {
            let cut: String = l.chars().take(300).collect();
            println!("  {cut}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_pins_every_pod_to_the_node() {
        let names = pod_names("busybox", 3);
        assert_eq!(names, ["busybox-00", "busybox-01", "busybox-02"]);
        assert_eq!(pod_names("one", 120)[119], "one-119");
        let m = manifest(&names, DEFAULT_IMAGE, "n1");
        let items = m["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        for p in items {
            let pod: Pod = serde_json::from_value(p.clone()).expect("a pod");
            let spec = pod.spec.expect("spec");
            assert_eq!(spec.termination_grace_period_seconds, Some(0));
            assert_eq!(
                spec.node_selector
                    .and_then(|s| s.get("kubernetes.io/hostname").cloned()),
                Some("n1".into())
            );
            assert_eq!(spec.containers[0].image.as_deref(), Some(DEFAULT_IMAGE));
        }
    }

    #[test]
    fn ansi_colours_are_stripped() {
        let l = "\u{1b}[2m2026-12-02T17:19:11Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x";
        assert_eq!(strip_ansi(l), "2026-12-02T17:19:11Z  WARN x");
    }

    #[test]
    fn keelson_result_splits_the_path() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let names = pod_names("busybox", 2);
        let seen: HashMap<String, Seen> = [
            (
                names[0].clone(),
                Seen {
                    created: at(100),
                    bound: at(150),
                    running: at(650),
                    creation_ts: Some(10_000),
                    started_ts: Some(11_000),
                    ..Default::default()
                },
            ),
            (
                names[1].clone(),
                Seen {
                    created: at(100),
                    bound: at(150),
                    running: at(1150),
                    ..Default::default()
                },
            ),
        ]
        .into();
        let k = keelson_result(&seen, &names, t0, Duration::from_millis(90));
        assert_eq!(k.wall, Duration::from_millis(1150));
        assert_eq!(k.per_pod.len(), 2);
        assert_eq!(k.to_bound, vec![Duration::from_millis(50); 2]);
        // 0.5 s + 1.0 s of starting over a 1.0-s span.
        assert!((k.agent_concurrency - 1.5).abs() < 1e-9);
        assert_eq!(k.sli, vec![Duration::from_secs(1)]);
    }
}
