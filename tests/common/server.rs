//! `keelson server` as a child process on loopback ports of its own, and real clients
//! (kubectl) pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{file_tail, free_port, wait_until, which, ChildGuard};

/// kubectl 1.32: the version-matched binary when the image has it, else `kubectl` on PATH.
pub fn kubectl_binary() -> PathBuf {
    let direct = PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.32");
    if direct.exists() {
        return direct;
    }
    which("kubectl").expect("kubectl 1.32 must be installed (the image ships it)")
}

pub struct KeelsonServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub client_port: u16,
    pub peer_port: u16,
    pub child: Option<ChildGuard>,
    pub kubectl: PathBuf,
    args: Vec<String>,
    binary: PathBuf,
}

/// The flags of a `keelson server` member on loopback ports, its data under `dir`.
fn loopback_args(
    name: &str,
    dir: &Path,
    port: u16,
    client_port: u16,
    peer_port: u16,
) -> Vec<String> {
    vec![
        "server".into(),
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--bind-address".into(),
        "127.0.0.1".into(),
        "--secure-port".into(),
        port.to_string(),
        // Plain etcd clients on loopback keep the tests' store checks simple; the peer port
        // is mutual TLS as always (tests/etcd_tls.rs covers the client port's TLS).
        "--listen-client-urls".into(),
        format!("http://127.0.0.1:{client_port}"),
        "--etcd-insecure-loopback".into(),
        "--listen-peer-urls".into(),
        format!("https://127.0.0.1:{peer_port}"),
        "--log-level".into(),
        "warn".into(),
        // Tests that want a kubelet run `keelson agent` themselves.
        "--disable-agent".into(),
    ]
}

/// What a command printed.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl KeelsonServer {
    /// Starts a single-node `keelson server` and waits until it serves the API.
    pub fn start(binary: impl Into<PathBuf>, extra: &[&str]) -> KeelsonServer {
        let mut s = Self::prepared_inner(binary.into(), extra, false);
        s.boot();
        s
    }

    /// Like [`KeelsonServer::start`], with the embedded node agent (kubelet on Podman).
    pub fn start_with_agent(binary: impl Into<PathBuf>, extra: &[&str]) -> KeelsonServer {
        let mut s = Self::prepared_inner(binary.into(), extra, true);
        s.boot();
        s
    }

    /// Like [`KeelsonServer::start`], with the store's client port as a server has it by
    /// default: `https`, client certificates of the store CA required.
    pub fn start_secure_store(binary: impl Into<PathBuf>, extra: &[&str]) -> KeelsonServer {
        let mut s = Self::prepared_inner(binary.into(), extra, false);
        let plain = format!("http://127.0.0.1:{}", s.client_port);
        s.args.retain(|a| a != "--etcd-insecure-loopback");
        for a in &mut s.args {
            if *a == plain {
                *a = format!("https://127.0.0.1:{}", s.client_port);
            }
        }
        s.boot();
        s
    }

    /// The server [`KeelsonServer::start`] would start, not started: for a command that must
    /// run to its end first ([`KeelsonServer::run_to_exit`]).
    pub fn prepared(binary: impl Into<PathBuf>, extra: &[&str]) -> KeelsonServer {
        Self::prepared_inner(binary.into(), extra, false)
    }

    /// Drops the arguments `unwanted` selects, then starts the server and waits until it
    /// serves the API.
    pub fn start_without(&mut self, unwanted: impl Fn(&str) -> bool) {
        self.args.retain(|a| !unwanted(a));
        self.boot();
    }

    fn prepared_inner(binary: PathBuf, extra: &[&str], agent: bool) -> KeelsonServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let client_port = free_port();
        let peer_port = free_port();
        let mut args = loopback_args("k1", dir.path(), port, client_port, peer_port);
        if agent {
            args.retain(|a| a != "--disable-agent");
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        KeelsonServer {
            dir,
            port,
            client_port,
            peer_port,
            child: None,
            kubectl: kubectl_binary(),
            args,
            binary,
        }
    }

    fn boot(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    fn spawn(&mut self) {
        // Appended to, so a restarted server's log keeps what the earlier run said.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child =
            Some(ChildGuard::spawn("keelson server", &mut cmd).expect("spawn keelson server"));
    }

    fn wait_ready(&mut self) {
        let kubeconfig = self.kubeconfig();
        wait_until(
            Duration::from_secs(60),
            "keelson server serves /readyz",
            || {
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        panic!(
                            "keelson server exited ({status}):\n{}",
                            file_tail(&self.log_path(), 40)
                        );
                    }
                }
                kubeconfig.exists()
                    && self.kubectl(&["get", "--raw", "/readyz"]).stdout.trim() == "ok"
            },
        );
        // Pods need their namespace's `default` ServiceAccount, which the namespace
        // controller creates a moment after it starts (as in Kubernetes, where test
        // frameworks wait for it too).
        let controllers_off = self
            .args
            .windows(2)
            .any(|w| w[0] == "--disable" && w[1].contains("controllers"));
        if !controllers_off {
            wait_until(
                Duration::from_secs(60),
                "the default namespace's default ServiceAccount",
                || {
                    self.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                        .ok
                },
            );
        }
    }

    /// Starts a `keelson server` named `name` that joins the cluster of `server` with
    /// `--server`/`--token`, and waits until it serves the API.
    pub fn join(
        binary: impl Into<PathBuf>,
        name: &str,
        server: &KeelsonServer,
        token: &str,
        extra: &[&str],
    ) -> KeelsonServer {
        let mut s = Self::joiner(binary, name, server, token, extra);
        s.boot();
        s
    }

    /// The server [`KeelsonServer::join`] would start, not started.
    pub fn joiner(
        binary: impl Into<PathBuf>,
        name: &str,
        server: &KeelsonServer,
        token: &str,
        extra: &[&str],
    ) -> KeelsonServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, client_port, peer_port) = (free_port(), free_port(), free_port());
        let mut args = loopback_args(name, dir.path(), port, client_port, peer_port);
        args.extend([
            "--server".to_string(),
            server.url(),
            "--token".into(),
            token.into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        KeelsonServer {
            dir,
            port,
            client_port,
            peer_port,
            child: None,
            kubectl: kubectl_binary(),
            args,
            binary: binary.into(),
        }
    }

    /// Runs the server's command to its end (bounded to 60 s): for starts that must fail.
    pub fn run_to_exit(&self) -> Out {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args);
        run_bounded(cmd, None, Duration::from_secs(60))
    }

    /// The API's URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The join token the server wrote to its data dir.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("token"))
            .expect("the server's join token")
            .trim()
            .to_string()
    }

    /// Starts `n` `keelson server`s forming one cluster (static bootstrap) and waits until
    /// each serves the API.
    pub fn start_cluster(
        binary: impl Into<PathBuf>,
        n: usize,
        extra: &[&str],
    ) -> Vec<KeelsonServer> {
        let binary = binary.into();
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, _, peer))| format!("s{i}=https://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("test-{}-{}", std::process::id(), free_port());
        let mut servers: Vec<KeelsonServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, client_port, peer_port))| {
                let dir = tempfile::tempdir().expect("temp dir");
                let mut args = loopback_args(
                    &format!("s{i}"),
                    dir.path(),
                    *port,
                    *client_port,
                    *peer_port,
                );
                args.extend([
                    "--initial-cluster".into(),
                    initial.clone(),
                    "--initial-cluster-token".into(),
                    token.clone(),
                ]);
                args.extend(extra.iter().map(|s| s.to_string()));
                KeelsonServer {
                    dir,
                    port: *port,
                    client_port: *client_port,
                    peer_port: *peer_port,
                    child: None,
                    kubectl: kubectl_binary(),
                    args,
                    binary: binary.clone(),
                }
            })
            .collect();
        // One cluster, one set of CAs: the first data dir's, copied to the others (what
        // `keelson certificate ca` tells an operator to do).
        let first = servers[0].data_dir();
        let out = run_bounded(
            {
                let mut c = Command::new(&binary);
                c.args(["certificate", "ca", "--data-dir"]).arg(&first);
                c
            },
            None,
            Duration::from_secs(60),
        );
        assert!(out.ok, "keelson certificate ca: {}", out.stderr);
        for s in &servers[1..] {
            for f in out.stdout.lines() {
                let rel = Path::new(f)
                    .strip_prefix(&first)
                    .expect("a file of the data dir");
                let to = s.data_dir().join(rel);
                std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
                std::fs::copy(f, &to).expect("copy a CA file");
            }
        }
        for s in &mut servers {
            s.spawn();
        }
        for s in &mut servers {
            s.wait_ready();
        }
        servers
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// Kills the server by PID (SIGKILL) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Kills the server (SIGKILL, by PID) and starts it again on the same ports and data dir.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
        self.boot();
    }

    /// Stops the server with SIGTERM (SIGKILL if it has not exited after 60 s), starts it
    /// again on the same ports and data dir and waits until it serves; returns how long the
    /// graceful stop took.
    pub fn graceful_restart(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(mut c) = self.child.take() {
            c.signal(libc::SIGTERM);
            let exited = c
                .wait_timeout(Duration::from_secs(60))
                .expect("waiting for the server");
            assert!(
                exited.is_some(),
                "keelson server ignored SIGTERM for 60 s:\n{}",
                file_tail(&self.log_path(), 40)
            );
        }
        let stopped = started.elapsed();
        self.boot();
        stopped
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/admin.kubeconfig")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs kubectl with this server's kubeconfig (bounded to 60 s).
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl, panicking with its output and the server's log unless it succeeds; its
    /// stdout.
    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.stdout,
            out.stderr,
            self.server_log()
        );
        out.stdout
    }

    /// Runs kubectl with `stdin` piped in.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(cmd, stdin, Duration::from_secs(60))
    }

    /// Writes `content` to a file in the test dir and returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p.display().to_string()
    }

    pub fn server_log(&self) -> String {
        file_tail(&self.log_path(), 60)
    }

    /// The whole server log.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// Runs a command to completion within `timeout`, killing it (by PID) if it overruns.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Out {
    let out_path = tempfile::NamedTempFile::new().expect("temp");
    let err_path = tempfile::NamedTempFile::new().expect("temp");
    cmd.stdout(out_path.reopen().expect("reopen"))
        .stderr(err_path.reopen().expect("reopen"));
    let mut child = ChildGuard::spawn("client", &mut cmd).expect("spawn client");
    if let Some(input) = stdin {
        child.write_stdin(input.as_bytes());
    }
    let status = child.wait_timeout(timeout).expect("wait");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    match status {
        Some(s) => Out {
            ok: s.success(),
            stdout: read(out_path.path()),
            stderr: read(err_path.path()),
        },
        None => {
            child.kill();
            Out {
                ok: false,
                stdout: read(out_path.path()),
                stderr: format!("{}\n<killed after {timeout:?}>", read(err_path.path())),
            }
        }
    }
}
