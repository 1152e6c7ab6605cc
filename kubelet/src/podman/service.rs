//! A `podman system service` this process runs and supervises, or one the user runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::PodmanClient;
use crate::error::{KubeletError, Result};

/// The containers.conf the service runs with (crun does not work on these hosts; see
/// ENVIRONMENT.md).
pub const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"#;

/// How long a started service may take to answer `/_ping`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(500);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A service that ran this long resets the restart back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

struct Supervised {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    pid: Arc<Mutex<Option<u32>>>,
}

/// A Podman API service: either a child process of this one (restarted if it exits, killed
/// on `shutdown` or drop) or an existing socket.
pub struct PodmanService {
    socket: PathBuf,
    supervised: Option<Supervised>,
}

/// The settings of a supervised service.
#[derive(Clone, Debug)]
struct Launch {
    binary: PathBuf,
    root: PathBuf,
    socket: PathBuf,
    conf: PathBuf,
    log: PathBuf,
}

impl Launch {
    fn spawn(&self) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| KubeletError::Runtime(format!("opening {}: {e}", self.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| KubeletError::Runtime(format!("{}: {e}", self.log.display())))?;
        // A stale socket file would make `connect` fail in confusing ways.
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(&self.binary);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe. The service dies with the agent even when the agent
        // is SIGKILLed (containers live on: conmon runs them in sessions of their own).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .env("CONTAINERS_CONF", &self.conf)
            // conmon (of Podman 4) leaves an `oom` file in its working directory.
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                KubeletError::Runtime(format!(
                    "starting {} system service: {e}",
                    self.binary.display()
                ))
            })
    }

    /// Waits until the service answers, or it exits, or `READY_TIMEOUT` passes.
    async fn wait_ready(&self, child: &mut Child) -> Result<()> {
        let client = PodmanClient::new(&self.socket);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(KubeletError::Runtime(format!(
                    "podman system service exited ({status}) before answering; see {}",
                    self.log.display()
                )));
            }
            let last = match client.ping(Duration::from_secs(2)).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(KubeletError::Runtime(format!(
                    "podman system service did not answer within {READY_TIMEOUT:?} ({last}); \
                     see {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory effects; the pid is our own child's.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Stops a child: SIGTERM, then SIGKILL after `STOP_TIMEOUT`.
async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        signal(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("podman system service ignored SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Keeps the service running until `stop`.
async fn supervise(
    launch: Launch,
    mut child: Child,
    pid: Arc<Mutex<Option<u32>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                *pid.lock() = None;
                match status {
                    Ok(s) => tracing::warn!(status = %s, log = %launch.log.display(), "podman system service exited; restarting"),
                    Err(e) => tracing::warn!(error = %e, "waiting for podman system service; restarting"),
                }
            }
            () = stopped(&mut stop) => {
                stop_child(&mut child).await;
                *pid.lock() = None;
                return;
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = RESTART_BACKOFF_MIN;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                () = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
            match launch.spawn() {
                Ok(mut c) => {
                    *pid.lock() = c.id();
                    match launch.wait_ready(&mut c).await {
                        Ok(()) => tracing::info!("podman system service restarted"),
                        Err(e) => tracing::warn!(error = %e, "restarted podman system service"),
                    }
                    child = c;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "restarting podman system service"),
            }
        }
    }
}

impl PodmanService {
    /// Starts `podman system service` with its socket, containers.conf and log in
    /// `root_dir`, waits until it answers, and keeps it running.
    pub async fn start(root_dir: impl Into<PathBuf>) -> Result<PodmanService> {
        PodmanService::start_with("podman", root_dir).await
    }

    /// Like `start`, with the `podman` binary to run.
    pub async fn start_with(
        binary: impl Into<PathBuf>,
        root_dir: impl Into<PathBuf>,
    ) -> Result<PodmanService> {
        let root: PathBuf = root_dir.into();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| KubeletError::Runtime(format!("creating {}: {e}", root.display())))?;
        let conf = root.join("containers.conf");
        tokio::fs::write(&conf, CONTAINERS_CONF)
            .await
            .map_err(|e| KubeletError::Runtime(format!("writing {}: {e}", conf.display())))?;
        let launch = Launch {
            binary: binary.into(),
            socket: root.join("podman.sock"),
            log: root.join("podman.log"),
            conf,
            root,
        };
        let mut child = launch.spawn()?;
        if let Err(e) = launch.wait_ready(&mut child).await {
            stop_child(&mut child).await;
            return Err(e);
        }
        let pid = Arc::new(Mutex::new(child.id()));
        tracing::info!(socket = %launch.socket.display(), pid = ?child.id(), "podman system service ready");
        let (stop, stop_rx) = watch::channel(false);
        let socket = launch.socket.clone();
        let task = tokio::spawn(supervise(launch, child, pid.clone(), stop_rx));
        Ok(PodmanService {
            socket,
            supervised: Some(Supervised {
                stop,
                task: Mutex::new(Some(task)),
                pid,
            }),
        })
    }

    /// A service someone else runs at `socket` (`--podman-socket`); nothing is started.
    pub fn external(socket: impl Into<PathBuf>) -> PodmanService {
        PodmanService {
            socket: socket.into(),
            supervised: None,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A client of this service.
    pub fn client(&self) -> PodmanClient {
        PodmanClient::new(&self.socket)
    }

    /// The service process' id, while this process runs one.
    pub fn pid(&self) -> Option<u32> {
        self.supervised.as_ref().and_then(|s| *s.pid.lock())
    }

    /// Stops the service this process runs (SIGTERM, then SIGKILL) and waits for it.
    pub async fn shutdown(&self) {
        let Some(s) = &self.supervised else {
            return;
        };
        let _ = s.stop.send(true);
        let task = s.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if let Some(s) = &self.supervised {
            let _ = s.stop.send(true);
            if let Some(pid) = *s.pid.lock() {
                signal(pid, libc::SIGKILL);
            }
            if let Some(task) = s.task.lock().take() {
                task.abort();
            }
        }
    }
}
