//! Shared helpers for the integration tests (each test file does `mod common;`).
//!
//! - [`ChildGuard`]: a spawned child process that is SIGKILLed (by its own PID,
//!   or its process group) and reaped on drop, so nothing outlives a panicking
//!   test; children also get `PR_SET_PDEATHSIG(SIGKILL)`.
//! - [`free_port`]: loopback ports that are free now and never handed out
//!   twice by this process.
//! - [`wait_until`] / [`wait_for`]: bounded polling; tests never sleep a fixed
//!   time to wait for a condition.
//! - [`EtcdLike`]: a single-member server started with etcd's flags, either
//!   the real `etcd` or `keelson store`.
//! - [`netns`]: network namespaces joined by a bridge, for real partitions.
//! - `lincheck.rs` (a WGL linearizability checker) is included only by `tests/jepsen.rs`, so
//!   its own unit tests run once.

#![allow(dead_code)]

pub mod netns;
pub mod server;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A child process that is killed with SIGKILL and reaped when dropped, so it
/// dies even when the test panics.
///
/// Every child spawned through [`ChildGuard::spawn`] also has
/// `PR_SET_PDEATHSIG(SIGKILL)` set, so it dies if the test process dies
/// without running destructors (e.g. it is itself SIGKILLed). Note that Linux
/// delivers the death signal when the *thread* that spawned the child exits,
/// so spawn children from the thread that owns the guard (the test's thread).
pub struct ChildGuard {
    name: String,
    child: Child,
    /// The child leads its own process group; kill the whole group on drop.
    own_group: bool,
    reaped: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` with `PR_SET_PDEATHSIG(SIGKILL)`.
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<ChildGuard> {
        Self::spawn_inner(name, cmd, false)
    }

    /// Like [`ChildGuard::spawn`], but the child leads a new process group and
    /// the whole group is SIGKILLed on drop: use it for shell scripts whose own
    /// children must not outlive them.
    pub fn spawn_group(name: &str, cmd: &mut Command) -> io::Result<ChildGuard> {
        cmd.process_group(0);
        Self::spawn_inner(name, cmd, true)
    }

    fn spawn_inner(name: &str, cmd: &mut Command, own_group: bool) -> io::Result<ChildGuard> {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only
        // calls async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
            own_group,
            reaped: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, if it was piped at spawn (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Writes `data` to the child's stdin (piped at spawn) and closes it.
    pub fn write_stdin(&mut self, data: &[u8]) {
        use std::io::Write as _;
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(data);
        }
    }

    /// Non-blocking: the exit status if the child has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.reaped {
            return Ok(Some(status));
        }
        let status = self.child.try_wait()?;
        self.reaped = status;
        Ok(status)
    }

    /// Polls until the child exits or `timeout` passes; `None` on timeout (the
    /// child is left running: drop or [`ChildGuard::kill`] it).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` to the child by PID without reaping it (a no-op once it
    /// has been reaped, so the PID cannot have been reused). Use it to signal
    /// several children at once, then [`ChildGuard::kill`] each to reap it.
    pub fn signal(&self, signal: libc::c_int) {
        if self.reaped.is_none() {
            // SAFETY: plain kill(2) on our own unreaped child.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGKILLs the child (and its group, for [`ChildGuard::spawn_group`]) by
    /// PID and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let pid = self.child.id() as libc::pid_t;
        if self.own_group {
            // Even when the leader has exited, members of its group may live on.
            // SAFETY: plain kill(2) on a process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        if self.reaped.is_none() {
            // The PID cannot have been reused: we have not reaped it yet.
            // SAFETY: plain kill(2) on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            self.reaped = self.child.wait().ok();
        }
        self.reaped
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

fn handed_out_ports() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback TCP port that was free a moment ago and that this process has
/// never handed out before.
pub fn free_port() -> u16 {
    let mut handed_out = handed_out_ports().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("free_port: could not find an unused loopback port");
}

// ---------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------

pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A deadline: either an [`Instant`] or a [`Duration`] from now.
pub trait IntoDeadline {
    fn into_deadline(self) -> Instant;
}

impl IntoDeadline for Instant {
    fn into_deadline(self) -> Instant {
        self
    }
}

impl IntoDeadline for Duration {
    fn into_deadline(self) -> Instant {
        Instant::now() + self
    }
}

/// Polls `condition` every [`POLL_INTERVAL`] until it returns true; panics
/// with `description` if `deadline` passes first.
#[track_caller]
pub fn wait_until(
    deadline: impl IntoDeadline,
    description: &str,
    mut condition: impl FnMut() -> bool,
) {
    wait_for(deadline, description, || condition().then_some(()))
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Some`; panics with
/// `description` if `deadline` passes first.
#[track_caller]
pub fn wait_for<T>(
    deadline: impl IntoDeadline,
    description: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let deadline = deadline.into_deadline();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:.1?} waiting for: {description}",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------
// Tools on PATH
// ---------------------------------------------------------------------------

/// Looks `program` up on `$PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `max_lines` lines of a (log) file, or a note why it can't be read.
pub fn file_tail(path: &Path, max_lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            lines[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

// ---------------------------------------------------------------------------
// etcd-flag-compatible server
// ---------------------------------------------------------------------------

/// How to start an [`EtcdLike`] server.
#[derive(Clone, Debug)]
pub struct EtcdLikeConfig {
    /// The server binary (`etcd`, or the keelson binary).
    pub binary: PathBuf,
    /// Arguments before etcd's flags, e.g. `["store"]` for keelson.
    pub leading_args: Vec<String>,
    /// `--name`.
    pub name: String,
    /// `--initial-cluster-token`.
    pub cluster_token: String,
    /// Appended after the standard flags, e.g. `--max-request-bytes 1048576`.
    pub extra_args: Vec<String>,
    /// How long to wait for the server to become healthy.
    pub start_timeout: Duration,
}

impl EtcdLikeConfig {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        EtcdLikeConfig {
            binary: binary.into(),
            leading_args: Vec::new(),
            name: "keelson-test".to_string(),
            cluster_token: "keelson-test-token".to_string(),
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(30),
        }
    }

    /// The real etcd found on `$PATH`; panics with a clear message if absent.
    pub fn etcd() -> Self {
        let etcd = which("etcd").unwrap_or_else(|| {
            panic!("`etcd` is not on PATH (install etcd 3.4, e.g. `apt-get install etcd-server etcd-client`)")
        });
        Self::new(etcd)
    }

    /// The keelson binary of this workspace, run as `keelson store`.
    pub fn keelson(binary: impl Into<PathBuf>) -> Self {
        let mut config = Self::new(binary);
        config.leading_args = vec!["store".to_string()];
        config
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    pub fn cluster_token(mut self, token: &str) -> Self {
        self.cluster_token = token.to_string();
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts the server and waits until it is healthy.
    #[track_caller]
    pub fn start(self) -> EtcdLike {
        EtcdLike::start(self)
    }
}

/// A running single-member server started with etcd's command-line flags, in
/// its own temporary directory, listening on fresh loopback ports. Killed
/// (SIGKILL) and its directory removed on drop.
pub struct EtcdLike {
    // Field order matters: the process dies before its directory is removed.
    process: ChildGuard,
    config: EtcdLikeConfig,
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

impl EtcdLike {
    /// Starts the server and waits (bounded by `config.start_timeout`) until
    /// it is healthy; panics with the tail of its logs otherwise. If it fails
    /// because a freshly allocated port was taken in the meantime, it is
    /// retried on new ports.
    #[track_caller]
    pub fn start(config: EtcdLikeConfig) -> EtcdLike {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut server = Self::spawn(config.clone());
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(failure) => {
                    let logs = server.log_tail(60);
                    server.kill();
                    let port_clash = logs.to_ascii_lowercase().contains("address already in use");
                    if port_clash && attempt < ATTEMPTS {
                        eprintln!(
                            "{failure}; port clash, retrying on new ports (attempt {attempt}/{ATTEMPTS})"
                        );
                        continue;
                    }
                    panic!("{failure}\n{logs}");
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(config: EtcdLikeConfig) -> EtcdLike {
        let dir = tempfile::Builder::new()
            .prefix("keelson-etcdlike-")
            .tempdir()
            .expect("create temp dir");
        let client_port = free_port();
        let peer_port = free_port();
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.path().join("data");
        let stdout = File::create(dir.path().join("stdout.log")).expect("create stdout.log");
        let stderr = File::create(dir.path().join("stderr.log")).expect("create stderr.log");

        let mut cmd = Command::new(&config.binary);
        cmd.args(&config.leading_args)
            .arg("--name")
            .arg(&config.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .arg("--initial-cluster")
            .arg(format!("{}={peer_url}", config.name))
            .arg("--initial-cluster-token")
            .arg(&config.cluster_token)
            .args(["--initial-cluster-state", "new"])
            .args(&config.extra_args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let process = ChildGuard::spawn(&display_name(&config.binary), &mut cmd)
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", config.binary.display()));
        EtcdLike {
            process,
            config,
            client_port,
            peer_port,
            dir,
        }
    }

    /// Polls until the client port accepts TCP connections and (when
    /// `etcdctl` is on PATH) `etcdctl endpoint health` succeeds.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.config.start_timeout;
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        let etcdctl = which("etcdctl");
        let mut last_probe = String::from("<client port not accepting connections>");
        loop {
            if let Some(status) = self.process.try_wait().expect("try_wait") {
                return Err(format!(
                    "{} {:?} exited during startup ({status})",
                    self.process.name(),
                    self.config.leading_args
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let Some(etcdctl) = &etcdctl else {
                    return Ok(());
                };
                match self
                    .etcdctl_with(etcdctl)
                    .args([
                        "--dial-timeout=1s",
                        "--command-timeout=2s",
                        "endpoint",
                        "health",
                    ])
                    .output()
                {
                    Ok(out) if out.status.success() => return Ok(()),
                    Ok(out) => {
                        last_probe = format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        )
                    }
                    Err(e) => last_probe = format!("cannot run etcdctl: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not become healthy on {} within {:?}; last health probe: {}",
                    self.process.name(),
                    self.client_url(),
                    self.config.start_timeout,
                    last_probe.trim_end()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// An `etcdctl` command (API v3) pointed at this server, stdin closed.
    /// Panics if etcdctl is not on PATH.
    pub fn etcdctl(&self) -> Command {
        let etcdctl = which("etcdctl").expect("`etcdctl` is not on PATH");
        self.etcdctl_with(&etcdctl)
    }

    fn etcdctl_with(&self, etcdctl: &Path) -> Command {
        let mut cmd = Command::new(etcdctl);
        cmd.env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg(format!("--endpoints={}", self.client_url()))
            .stdin(Stdio::null());
        cmd
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    pub fn config(&self) -> &EtcdLikeConfig {
        &self.config
    }

    /// The temp dir holding `data/`, `stdout.log` and `stderr.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Has the server exited? (Its status, if so.)
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.process.try_wait().expect("try_wait")
    }

    /// The tails of the server's stdout and stderr, for failure messages.
    pub fn log_tail(&self, max_lines: usize) -> String {
        format!(
            "--- {} stdout (last {max_lines} lines) ---\n{}\n--- {} stderr (last {max_lines} lines) ---\n{}\n--- end of logs ---",
            self.process.name(),
            file_tail(&self.stdout_path(), max_lines),
            self.process.name(),
            file_tail(&self.stderr_path(), max_lines),
        )
    }

    /// Kills the server (SIGKILL) and waits for it; the temp dir stays until drop.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.process.kill()
    }
}

fn display_name(binary: &Path) -> String {
    binary
        .file_name()
        .unwrap_or_else(|| OsStr::new("server"))
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------
// Multi-process keelson clusters
// ---------------------------------------------------------------------------

/// One member of a [`KeelsonCluster`]: its ports, data dir, log file and the
/// exact flags it is (re)started with.
pub struct KeelsonMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    /// stdout and stderr of every incarnation, appended, each preceded by a
    /// `=== start #n ...` line.
    pub log_path: PathBuf,
    /// The flags after `keelson store`.
    args: Vec<String>,
    process: Option<ChildGuard>,
    starts: usize,
}

impl KeelsonMember {
    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The flags after `keelson store` used for the next start.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildGuard::pid)
    }

    /// How many times this member has been started.
    pub fn starts(&self) -> usize {
        self.starts
    }
}

/// N `keelson store` processes on loopback ports sharing one
/// `--initial-cluster`, each with its own data dir (under one temp dir) and
/// log file. Members can be SIGKILLed and restarted with the same flags. On
/// drop every process is SIGKILLed; if the thread is panicking, the tail of
/// every member's log is printed first.
pub struct KeelsonCluster {
    // Field order matters: the processes die before the directory is removed.
    members: Vec<KeelsonMember>,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl KeelsonCluster {
    /// Starts one `keelson store` member per name (`--initial-cluster-state
    /// new`, `--initial-cluster-token keelson-test-cluster`), with
    /// `extra_args` appended to every member's flags. Does not wait for them
    /// to be ready: see [`KeelsonCluster::wait_ready`].
    pub fn start(binary: impl Into<PathBuf>, names: &[&str], extra_args: &[&str]) -> Self {
        let mut cluster = Self::new(binary, names, extra_args);
        cluster.start_all();
        cluster
    }

    /// Like [`KeelsonCluster::start`] but starts nothing.
    pub fn new(binary: impl Into<PathBuf>, names: &[&str], extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keelson-cluster-")
            .tempdir()
            .expect("create temp dir");
        let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
        let initial_cluster = names
            .iter()
            .zip(&ports)
            .map(|(name, (_, peer))| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = names
            .iter()
            .zip(&ports)
            .map(|(name, &(client_port, peer_port))| {
                let data_dir = dir.path().join(format!("{name}.data"));
                let client_url = format!("http://127.0.0.1:{client_port}");
                let peer_url = format!("http://127.0.0.1:{peer_port}");
                let mut args: Vec<String> = vec![
                    "--name".into(),
                    name.to_string(),
                    "--data-dir".into(),
                    data_dir.display().to_string(),
                    "--listen-client-urls".into(),
                    client_url.clone(),
                    "--advertise-client-urls".into(),
                    client_url,
                    "--listen-peer-urls".into(),
                    peer_url.clone(),
                    "--initial-advertise-peer-urls".into(),
                    peer_url,
                    "--initial-cluster".into(),
                    initial_cluster.clone(),
                    "--initial-cluster-state".into(),
                    "new".into(),
                    "--initial-cluster-token".into(),
                    "keelson-test-cluster".into(),
                ];
                args.extend(extra_args.iter().map(|a| a.to_string()));
                KeelsonMember {
                    name: name.to_string(),
                    client_port,
                    peer_port,
                    data_dir,
                    log_path: dir.path().join(format!("{name}.log")),
                    args,
                    process: None,
                    starts: 0,
                }
            })
            .collect();
        KeelsonCluster {
            members,
            binary: binary.into(),
            dir,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member(&self, i: usize) -> &KeelsonMember {
        &self.members[i]
    }

    pub fn members(&self) -> &[KeelsonMember] {
        &self.members
    }

    /// Index of the member called `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member named {name:?}"))
    }

    pub fn client_url(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(KeelsonMember::client_url).collect()
    }

    /// The temp dir holding every member's data dir and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets `flag` (e.g. `--initial-cluster-token`) to `value` in member `i`'s
    /// flags for its next start, replacing an existing value or appending.
    pub fn set_flag(&mut self, i: usize, flag: &str, value: &str) {
        let args = &mut self.members[i].args;
        match args.iter().position(|a| a == flag) {
            Some(p) if p + 1 < args.len() => args[p + 1] = value.to_string(),
            _ => {
                args.push(flag.to_string());
                args.push(value.to_string());
            }
        }
    }

    /// Starts every member that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                self.start_member(i);
            }
        }
    }

    /// (Re)starts member `i` with its flags; panics if it is running.
    ///
    /// Call this from the test's own thread (see [`ChildGuard`] about
    /// `PR_SET_PDEATHSIG`); inside `#[tokio::test]` the test body runs there.
    pub fn start_member(&mut self, i: usize) {
        let binary = self.binary.clone();
        let m = &mut self.members[i];
        assert!(m.process.is_none(), "member {} is already running", m.name);
        m.starts += 1;
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .expect("open member log");
        {
            use std::io::Write;
            writeln!(
                log,
                "=== start #{} of {}: keelson store {} ===",
                m.starts,
                m.name,
                m.args.join(" ")
            )
            .expect("write member log");
        }
        let stderr = log.try_clone().expect("clone log file");
        let mut cmd = Command::new(&binary);
        cmd.arg("store")
            .args(&m.args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = ChildGuard::spawn(&format!("keelson[{}]", m.name), &mut cmd)
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", binary.display()));
        m.process = Some(child);
    }

    /// SIGKILLs member `i` by PID and reaps it.
    pub fn kill_member(&mut self, i: usize) -> Option<ExitStatus> {
        self.members[i].process.take().and_then(|mut p| p.kill())
    }

    /// SIGKILLs every running member at once (all signals are sent before
    /// any is reaped), then reaps them.
    pub fn kill_all(&mut self) {
        for m in &self.members {
            if let Some(p) = &m.process {
                p.signal(libc::SIGKILL);
            }
        }
        for m in &mut self.members {
            if let Some(mut p) = m.process.take() {
                p.kill();
            }
        }
    }

    /// If member `i` was started and has exited, its exit status.
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        self.members[i]
            .process
            .as_mut()
            .and_then(|p| p.try_wait().expect("try_wait"))
    }

    /// Panics (with every member's log tail) if a member that should be
    /// running has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        for i in 0..self.members.len() {
            if let Some(status) = self.exited(i) {
                panic!(
                    "member {} exited unexpectedly ({status})\n{}",
                    self.members[i].name,
                    self.log_tails(40)
                );
            }
        }
    }

    /// The last `max_lines` lines of every member's log.
    pub fn log_tails(&self, max_lines: usize) -> String {
        let mut out = String::new();
        for m in &self.members {
            out.push_str(&format!(
                "--- {} log {} (last {max_lines} lines) ---\n{}\n",
                m.name,
                m.log_path.display(),
                file_tail(&m.log_path, max_lines)
            ));
        }
        out.push_str("--- end of logs ---");
        out
    }

    /// A client for member `i` alone (see [`etcd_connect`]).
    pub async fn client(&self, i: usize) -> etcd_client::Client {
        etcd_connect(&self.client_url(i)).await
    }

    /// Clients for every member, in member order.
    pub async fn clients(&self) -> Vec<etcd_client::Client> {
        let mut out = Vec::new();
        for i in 0..self.members.len() {
            out.push(self.client(i).await);
        }
        out
    }

    /// Polls until every running member answers `Status` naming the same
    /// leader (one of the running members); returns the leader's index.
    /// Panics with the logs on `timeout` or if a member exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            let last = match self.probe_leader().await {
                Ok(i) => return i,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "cluster not ready within {timeout:?}: {last}\n{}",
                    self.log_tails(40)
                );
            }
            tokio::time::sleep(POLL_INTERVAL * 4).await;
        }
    }

    /// One round of [`KeelsonCluster::wait_ready`]: the index of the leader
    /// every running member agrees on.
    pub async fn probe_leader(&self) -> Result<usize, String> {
        let mut ids = Vec::new();
        let mut leaders = std::collections::BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if !m.is_running() {
                continue;
            }
            let status = member_status(&m.client_url())
                .await
                .map_err(|e| format!("member {}: {e}", m.name))?;
            let header = status
                .header()
                .ok_or_else(|| format!("member {}: status without header", m.name))?;
            ids.push((i, header.member_id()));
            leaders.insert(status.leader());
        }
        if leaders.len() != 1 || leaders.contains(&0) {
            return Err(format!("members disagree on the leader: {leaders:x?}"));
        }
        let leader = *leaders.iter().next().expect("one leader");
        ids.iter()
            .find(|(_, id)| *id == leader)
            .map(|(i, _)| *i)
            .ok_or_else(|| format!("leader {leader:x} is not a running member"))
    }

    /// Polls until every running member lists all members of the cluster
    /// with the name and client URLs they publish once started (as etcd's
    /// `member list` shows started members).
    pub async fn wait_published(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let expected: std::collections::BTreeSet<(String, String)> = self
            .members
            .iter()
            .map(|m| (m.name.clone(), m.client_url()))
            .collect();
        loop {
            let mut last = String::new();
            let mut all = true;
            for m in self.members.iter().filter(|m| m.is_running()) {
                let mut client = etcd_connect(&m.client_url()).await;
                let listed =
                    tokio::time::timeout(Duration::from_secs(3), client.member_list()).await;
                let seen: std::collections::BTreeSet<(String, String)> = match listed {
                    Ok(Ok(list)) => list
                        .members()
                        .iter()
                        .map(|x| (x.name().to_string(), x.client_urls().join(",")))
                        .collect(),
                    Ok(Err(e)) => {
                        last = format!("{}: {e}", m.name);
                        all = false;
                        break;
                    }
                    Err(_) => {
                        last = format!("{}: member list timed out", m.name);
                        all = false;
                        break;
                    }
                };
                if seen != expected {
                    last = format!("{} lists {seen:?}", m.name);
                    all = false;
                    break;
                }
            }
            if all {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "members not all published within {timeout:?} (want {expected:?}): {last}\n{}",
                    self.log_tails(40)
                );
            }
            tokio::time::sleep(POLL_INTERVAL * 4).await;
        }
    }

    /// Member IDs by member index, from each running member's `Status` header.
    pub async fn member_ids(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for m in &self.members {
            let status = member_status(&m.client_url())
                .await
                .unwrap_or_else(|e| panic!("status of {}: {e}", m.name));
            out.push(status.header().expect("status header").member_id());
        }
        out
    }
}

impl Drop for KeelsonCluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            eprintln!(
                "{}",
                self.log_tails(
                    std::env::var("KEELSON_TEST_LOG_LINES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(60)
                )
            );
        }
    }
}

/// Per-request bound used by the cluster helpers.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// An `etcd-client` client for `url` alone, with connect and request
/// timeouts. The client connects lazily, so this only fails on a bad URL.
pub async fn etcd_connect(url: &str) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(CLIENT_TIMEOUT);
    tokio::time::timeout(
        CLIENT_TIMEOUT,
        etcd_client::Client::connect([url], Some(options)),
    )
    .await
    .unwrap_or_else(|_| panic!("connecting to {url} timed out"))
    .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// `Status` of the member at `url` through a fresh client, bounded in time.
pub async fn member_status(url: &str) -> Result<etcd_client::StatusResponse, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let work = async {
        let mut client = etcd_client::Client::connect([url], Some(options))
            .await
            .map_err(|e| e.to_string())?;
        client.status().await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .map_err(|_| "status timed out".to_string())?
}

/// Async [`wait_for`]: polls `probe` every [`POLL_INTERVAL`] until it returns
/// `Some`; panics with `description` (and the last `Err` of the probe) once
/// `timeout` has passed.
pub async fn poll_for<T, E, F, Fut>(timeout: Duration, description: &str, mut probe: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, E>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        let remaining = timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
            Ok(Ok(Some(value))) => return value,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_err = Some(e),
            Err(_) => {}
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {:.1?} waiting for: {description} (last error: {last_err:?})",
                start.elapsed()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------
// `keelson kv` as a child process
// ---------------------------------------------------------------------------

/// What one `keelson kv` run printed.
#[derive(Debug)]
pub struct KvRun {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl KvRun {
    /// Panics with everything printed unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "keelson kv failed: stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// A `keelson kv` process in the background, its output in files.
pub struct KvProcess {
    pub guard: ChildGuard,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KvProcess {
    /// Starts `keelson kv --endpoints=<endpoints> <args...>` with stdin from /dev/null.
    pub fn spawn(binary: &Path, endpoints: &[String], args: &[&str]) -> KvProcess {
        Self::spawn_with_stdin(binary, endpoints, args, None)
    }

    /// Like [`KvProcess::spawn`], with stdin read from `stdin` when given.
    pub fn spawn_with_stdin(
        binary: &Path,
        endpoints: &[String],
        args: &[&str],
        stdin: Option<&Path>,
    ) -> KvProcess {
        let dir = tempfile::Builder::new()
            .prefix("keelson-kv-")
            .tempdir()
            .expect("create temp dir");
        let stdout_path = dir.path().join("stdout");
        let stderr_path = dir.path().join("stderr");
        let mut cmd = Command::new(binary);
        cmd.arg("kv")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(args)
            .stdin(match stdin {
                Some(p) => Stdio::from(File::open(p).expect("open stdin file")),
                None => Stdio::null(),
            })
            .stdout(File::create(&stdout_path).expect("create stdout file"))
            .stderr(File::create(&stderr_path).expect("create stderr file"));
        let guard = ChildGuard::spawn_group(&format!("keelson kv {}", args.join(" ")), &mut cmd)
            .expect("spawn keelson kv");
        KvProcess {
            guard,
            stdout_path,
            stderr_path,
            _dir: dir,
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit and returns what it printed; kills it and
    /// panics if it does not exit in time.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> KvRun {
        match self
            .guard
            .wait_timeout(timeout)
            .expect("wait for keelson kv")
        {
            Some(status) => KvRun {
                code: status.code(),
                stdout: self.stdout(),
                stderr: self.stderr(),
            },
            None => {
                self.guard.kill();
                panic!(
                    "`{}` did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    self.guard.name(),
                    self.stdout(),
                    self.stderr()
                );
            }
        }
    }
}

/// Runs `keelson kv --endpoints=<endpoints> <args...>` to completion (bounded by 30 s).
#[track_caller]
pub fn keelson_kv(binary: &Path, endpoints: &[String], args: &[&str]) -> KvRun {
    KvProcess::spawn(binary, endpoints, args).wait(Duration::from_secs(30))
}

/// `(hash, compact revision)` of `endpoint hashkv --rev=<rev>` at one endpoint.
pub fn hashkv_at(binary: &Path, endpoint: &str, rev: i64) -> (u64, i64) {
    let out = keelson_kv(
        binary,
        &[endpoint.to_string()],
        &["endpoint", "hashkv", &format!("--rev={rev}"), "-w", "json"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("hashkv json");
    (
        v[0]["HashKV"]["hash"].as_u64().expect("hash"),
        v[0]["HashKV"]["compact_revision"].as_i64().unwrap_or(0),
    )
}

/// Waits until every endpoint answers `endpoint health`.
#[track_caller]
pub fn wait_healthy(binary: &Path, endpoints: &[String], timeout: Duration) {
    wait_until(timeout, "every endpoint is healthy", || {
        keelson_kv(
            binary,
            endpoints,
            &["endpoint", "health", "--command-timeout=2s"],
        )
        .code
            == Some(0)
    });
}
