//! The Podman runtime against a real Podman: each test starts its own `podman system
//! service` in a directory of its own under /tmp, builds a busybox image from
//! /bin/busybox, and removes what it created when it ends (also when it fails).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keelson_kubelet::podman::{PodmanRuntime, PodmanService};
use keelson_kubelet::runtime::{
    ContainerConfig, ContainerInfo, ContainerState, ImageError, Mount, PodInfo, Runtime,
    SandboxConfig, LABEL_NODE,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const IMAGE: &str = "localhost/keelson-test-busybox:latest";
const BUSYBOX: &str = "/bin/busybox";
/// Applets the tests use (`trap` is a shell builtin).
const APPLETS: &[&str] = &[
    "sh", "httpd", "sleep", "echo", "cat", "kill", "ls", "wget", "nc", "mkdir", "touch", "true",
    "false", "env", "id", "head", "tr", "sort", "dd",
];
const DEADLINE: Duration = Duration::from_secs(30);

fn require_tools() {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: run scripts/test, which installs busybox-static, podman and runc"
    );
    let podman = Command::new("podman").arg("--version").output();
    assert!(
        podman.as_ref().is_ok_and(|o| o.status.success()),
        "podman does not run ({podman:?}): run scripts/test, which installs podman, runc and \
         busybox-static"
    );
}

/// One test's Podman service, runtime and scratch directory; removes them when dropped.
struct Env {
    dir: PathBuf,
    node: String,
    runtime: PodmanRuntime,
    service: PodmanService,
}

impl Env {
    async fn new(test: &str) -> Env {
        require_tools();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = PathBuf::from(format!(
            "/tmp/keelson-podman-{}-{test}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("test dir");
        let service = PodmanService::start(dir.join("podman"))
            .await
            .expect("podman system service starts");
        let node = format!("pt-{}-{test}", std::process::id());
        let runtime = PodmanRuntime::connect(service.client(), node.clone())
            .await
            .expect("connect");
        let env = Env {
            dir,
            node,
            runtime,
            service,
        };
        env.ensure_busybox().await;
        env
    }

    async fn ensure_busybox(&self) {
        // One import at a time: two at once would leave an untagged copy behind.
        static IMPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = IMPORT.lock().await;
        if self.runtime.ensure_image(IMAGE, "Never").await.is_ok() {
            return;
        }
        let rootfs = self.dir.join("rootfs");
        let bin = rootfs.join("bin");
        for d in ["bin", "tmp", "etc", "mnt", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
        }
        std::fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        let tar = self.dir.join("busybox.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar runs");
        assert!(status.success(), "tar failed");
        let bytes = std::fs::read(&tar).expect("read tar");
        let id = self
            .runtime
            .import_image(bytes, IMAGE)
            .await
            .expect("import busybox");
        assert!(id.starts_with("sha256:"), "{id}");
    }

    fn sandbox(&self, name: &str) -> SandboxConfig {
        SandboxConfig {
            uid: format!("{}-{name}", self.node),
            namespace: "default".into(),
            name: name.into(),
            hostname: name.into(),
            ..SandboxConfig::default()
        }
    }

    /// Polls `pod(uid)` until `ok` holds.
    async fn wait_for(&self, uid: &str, what: &str, ok: impl Fn(&PodInfo) -> bool) -> PodInfo {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let pod = self.runtime.pod(uid).await.expect("pod");
            if let Some(p) = pod.as_ref().filter(|p| ok(p)) {
                return p.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {DEADLINE:?}; last seen {pod:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finished(&self, uid: &str, name: &str, attempt: u32) -> ContainerInfo {
        let pod = self
            .wait_for(uid, &format!("{name}#{attempt} exits"), |p| {
                p.latest(name, false).is_some_and(|c| {
                    c.attempt == attempt && matches!(c.state, ContainerState::Exited { .. })
                })
            })
            .await;
        pod.latest(name, false).cloned().expect("container")
    }

    /// Runs podman's CLI against this test's service configuration.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("podman/containers.conf"))
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let filter = format!("label={LABEL_NODE}={}", self.node);
        let pods = self.cli(&["pod", "ps", "-q", "--filter", &filter]);
        let pods: Vec<&str> = pods.split_whitespace().collect();
        if !pods.is_empty() {
            let mut args = vec!["pod", "rm", "-f", "-t", "0"];
            args.extend(pods);
            self.cli(&args);
        }
        let containers = self.cli(&["ps", "-aq", "--filter", &filter]);
        let containers: Vec<&str> = containers.split_whitespace().collect();
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(containers);
            self.cli(&args);
        }
        if let Some(pid) = self.service.pid() {
            // SAFETY: kill(2) of our own child process.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn container(name: &str, attempt: u32, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        attempt,
        image: IMAGE.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        ..ContainerConfig::default()
    }
}

fn is_running(p: &PodInfo, name: &str) -> bool {
    p.latest(name, false).is_some_and(|c| c.state.is_running())
}

/// The body of `GET /` from `ip:port`, once it answers.
async fn http_get(ip: &str, port: u16) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").await?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(body)) if body.starts_with("HTTP/1.") => return body,
            Ok(Ok(body)) => last = body,
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ip}:{port} did not answer within {DEADLINE:?}: {last}");
}

#[tokio::test]
async fn sandbox_and_httpd_answer_from_the_pod_ip() {
    let env = Env::new("httpd").await;
    let rt = &env.runtime;
    assert_eq!(rt.name(), "podman");
    assert!(rt.version().starts_with("podman://"), "{}", rt.version());
    let sb = env.sandbox("web");
    let sandbox = rt.run_sandbox(&sb).await.expect("sandbox");
    assert!(sandbox.ip.starts_with("10.88."), "{sandbox:?}");
    // Idempotent: the same sandbox again.
    let again = rt.run_sandbox(&sb).await.expect("sandbox again");
    assert_eq!(again, sandbox);

    let web = container(
        "web",
        0,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo \"$GREETING from keelson\" > /www/index.html && \
             exec httpd -f -p 8080 -h /www",
        ],
    );
    rt.start_container(&sb, &web).await.expect("start");
    let pod = env
        .wait_for(&sb.uid, "web runs", |p| is_running(p, "web"))
        .await;
    assert_eq!(pod.sandbox.as_ref(), Some(&sandbox));
    assert_eq!(pod.name, "web");
    assert_eq!(pod.namespace, "default");
    let c = pod.latest("web", false).expect("web");
    assert!(c.image_id.starts_with("sha256:"), "{c:?}");
    assert_eq!(c.attempt, 0);
    assert!(!c.init);

    let body = http_get(&sandbox.ip, 8080).await;
    assert!(body.contains("hello from keelson"), "{body}");

    let all = rt.list_pods().await.expect("list");
    assert!(all.iter().any(|p| p.uid == sb.uid), "{all:#?}");
    // Other tests' kubelets share this Podman: this one sees only its own node's pods.
    assert!(all.iter().all(|p| p.uid.starts_with(&env.node)), "{all:#?}");
    rt.remove_pod(&sb.uid, Duration::from_secs(1))
        .await
        .expect("remove");
}

#[tokio::test]
async fn exited_container_and_its_next_attempt() {
    let env = Env::new("exit").await;
    let rt = &env.runtime;
    let sb = env.sandbox("job");
    rt.run_sandbox(&sb).await.expect("sandbox");
    rt.start_container(&sb, &container("main", 0, &["sh", "-c", "exit 3"]))
        .await
        .expect("start");
    let first = env.finished(&sb.uid, "main", 0).await;
    let ContainerState::Exited {
        exit_code,
        reason,
        started_at,
        finished_at,
    } = &first.state
    else {
        unreachable!()
    };
    assert_eq!((*exit_code, reason.as_str()), (3, "Error"));
    assert!(finished_at >= started_at);

    rt.start_container(&sb, &container("main", 1, &["sh", "-c", "exit 0"]))
        .await
        .expect("restart");
    let second = env.finished(&sb.uid, "main", 1).await;
    assert_ne!(second.id, first.id);
    assert!(
        matches!(&second.state, ContainerState::Exited { exit_code: 0, reason, .. } if reason == "Completed"),
        "{second:?}"
    );
    let pod = rt.pod(&sb.uid).await.expect("pod").expect("present");
    assert_eq!(pod.containers.len(), 2);
    let previous = pod.previous("main", false).expect("previous");
    assert_eq!(previous.id, first.id);
    assert_eq!(previous.state, first.state);

    // Starting an attempt whose container exists and has run already (a worker acting on a
    // stale view) leaves it as it is: it is never killed and replaced.
    rt.start_container(&sb, &container("main", 1, &["sh", "-c", "exit 5"]))
        .await
        .expect("the same attempt again");
    let again = rt.pod(&sb.uid).await.expect("pod").expect("present");
    assert_eq!(again.containers.len(), 2);
    let latest = again.latest("main", false).expect("latest");
    assert_eq!(latest.id, second.id, "the attempt that ran is kept");
    assert_eq!(latest.state, second.state);

    // An init container is told apart from an app container of the same name.
    let init = ContainerConfig {
        init: true,
        ..container("main", 0, &["true"])
    };
    rt.start_container(&sb, &init).await.expect("init");
    let pod = env
        .wait_for(&sb.uid, "init completes", |p| {
            p.latest("main", true)
                .is_some_and(|c| matches!(&c.state, ContainerState::Exited { reason, .. } if reason == "Completed"))
        })
        .await;
    assert_eq!(pod.containers.len(), 3);
}

#[tokio::test]
async fn exec_returns_exit_code_and_output_and_times_out() {
    let env = Env::new("exec").await;
    let rt = &env.runtime;
    let sb = env.sandbox("exec");
    rt.run_sandbox(&sb).await.expect("sandbox");
    rt.start_container(&sb, &container("app", 0, &["sleep", "1000"]))
        .await
        .expect("start");
    let pod = env
        .wait_for(&sb.uid, "app runs", |p| is_running(p, "app"))
        .await;
    let id = pod.latest("app", false).expect("app").id.clone();
    let cmd: Vec<String> = ["sh", "-c", "echo hi; echo oops >&2; exit 4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let result = rt
        .exec(&id, &cmd, Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(result.exit_code, 4);
    assert!(result.output.contains("hi"), "{result:?}");
    assert!(result.output.contains("oops"), "{result:?}");

    let slow: Vec<String> = ["sleep", "30"].iter().map(|s| s.to_string()).collect();
    let started = Instant::now();
    let err = rt
        .exec(&id, &slow, Duration::from_millis(500))
        .await
        .expect_err("times out");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stop_sends_sigterm_first() {
    let env = Env::new("stop").await;
    let rt = &env.runtime;
    let host_dir = env.dir.join("mnt");
    std::fs::create_dir_all(&host_dir).expect("mount dir");
    let sb = env.sandbox("stop");
    rt.run_sandbox(&sb).await.expect("sandbox");
    let mut cfg = container(
        "trap",
        0,
        &[
            "sh",
            "-c",
            "trap 'echo term > /mnt/marker; exit 0' TERM; touch /mnt/ready; \
             while true; do sleep 0.1; done",
        ],
    );
    cfg.mounts.push(Mount {
        host_path: host_dir.clone(),
        container_path: "/mnt".into(),
        read_only: false,
        tmpfs: false,
    });
    rt.start_container(&sb, &cfg).await.expect("start");
    let pod = env
        .wait_for(&sb.uid, "trap runs", |p| is_running(p, "trap"))
        .await;
    let id = pod.latest("trap", false).expect("trap").id.clone();
    // The trap is set once the script has got as far as touching the file.
    let deadline = Instant::now() + DEADLINE;
    while !host_dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "the script never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    rt.stop_container(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stop took {:?}: SIGTERM was not handled",
        started.elapsed()
    );
    let marker = std::fs::read_to_string(host_dir.join("marker")).expect("marker written");
    assert_eq!(marker.trim(), "term");
    let stopped = env.finished(&sb.uid, "trap", 0).await;
    assert!(
        matches!(&stopped.state, ContainerState::Exited { exit_code: 0, reason, .. } if reason == "Completed"),
        "{stopped:?}"
    );
    // Stopping again, or a container that is gone, is fine.
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stop again");
    rt.remove_container(&id).await.expect("remove");
    rt.remove_container(&id).await.expect("remove again");
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stop removed");
    let pod = rt
        .pod(&sb.uid)
        .await
        .expect("pod")
        .expect("sandbox still there");
    assert!(pod.containers.is_empty(), "{pod:?}");
    assert!(pod.sandbox.is_some());
}

#[tokio::test]
async fn missing_images_fail_fast() {
    let env = Env::new("image").await;
    let rt = &env.runtime;
    let started = Instant::now();
    let err = rt
        .ensure_image("localhost/does-not-exist:1", "IfNotPresent")
        .await
        .expect_err("no such image");
    assert!(matches!(err, ImageError::Pull(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "pull took {:?}",
        started.elapsed()
    );
    let err = rt
        .ensure_image("localhost/does-not-exist:1", "Never")
        .await
        .expect_err("never");
    assert_eq!(
        err,
        ImageError::NeverPull(
            "image \"localhost/does-not-exist:1\" is not present with pull policy of Never".into()
        )
    );
    // A local image serves every policy, even Always with no registry to pull from.
    let local = rt.ensure_image(IMAGE, "IfNotPresent").await.expect("local");
    assert!(local.starts_with("sha256:"), "{local}");
    assert_eq!(rt.ensure_image(IMAGE, "Never").await.expect("never"), local);
    assert_eq!(
        rt.ensure_image(IMAGE, "Always").await.expect("always"),
        local
    );
}

#[tokio::test]
async fn memory_limit_ends_in_oom_killed() {
    let env = Env::new("oom").await;
    let rt = &env.runtime;
    let sb = env.sandbox("oom");
    rt.run_sandbox(&sb).await.expect("sandbox");
    let mut cfg = container(
        "hog",
        0,
        // The shell itself holds 64 MiB against a 16 MiB limit.
        &[
            "sh",
            "-c",
            "x=$(head -c 64m /dev/zero | tr '\\0' a); echo ${#x}",
        ],
    );
    cfg.memory_limit = Some(16 << 20);
    rt.start_container(&sb, &cfg).await.expect("start");
    let hog = env.finished(&sb.uid, "hog", 0).await;
    assert!(
        matches!(&hog.state, ContainerState::Exited { exit_code: 137, reason, .. } if reason == "OOMKilled"),
        "{hog:?}"
    );
    // A container killed by SIGKILL (exit 137) is no OOM kill.
    rt.start_container(&sb, &container("killed", 0, &["sleep", "1000"]))
        .await
        .expect("start");
    let pod = env
        .wait_for(&sb.uid, "killed runs", |p| is_running(p, "killed"))
        .await;
    let id = pod.latest("killed", false).expect("killed").id.clone();
    rt.stop_container(&id, Duration::ZERO).await.expect("kill");
    let killed = env.finished(&sb.uid, "killed", 0).await;
    assert!(
        matches!(&killed.state, ContainerState::Exited { exit_code: 137, reason, .. } if reason == "Error"),
        "{killed:?}"
    );
}

#[tokio::test]
async fn remove_pod_removes_everything() {
    let env = Env::new("remove").await;
    let rt = &env.runtime;
    let sb = env.sandbox("gone");
    rt.run_sandbox(&sb).await.expect("sandbox");
    rt.start_container(&sb, &container("a", 0, &["sleep", "1000"]))
        .await
        .expect("start a");
    rt.start_container(&sb, &container("b", 0, &["true"]))
        .await
        .expect("start b");
    env.wait_for(&sb.uid, "a runs", |p| is_running(p, "a"))
        .await;

    // A host-network sandbox: no address of its own (the worker uses the node's).
    let mut host = env.sandbox("host");
    host.host_network = true;
    let hs = rt.run_sandbox(&host).await.expect("host sandbox");
    assert_eq!(hs.ip, "");
    rt.start_container(&host, &container("c", 0, &["sleep", "1000"]))
        .await
        .expect("start c");
    env.wait_for(&host.uid, "c runs", |p| is_running(p, "c"))
        .await;

    let started = Instant::now();
    rt.remove_pod(&sb.uid, Duration::from_secs(2))
        .await
        .expect("remove");
    // `sleep` as PID 1 ignores SIGTERM: the grace period bounds the stop.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "removal took {:?}",
        started.elapsed()
    );
    assert_eq!(rt.pod(&sb.uid).await.expect("pod"), None);
    let left = env.cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.keelson.pod.uid={}", sb.uid),
    ]);
    assert_eq!(left.trim(), "", "containers left behind");
    assert!(rt.pod(&host.uid).await.expect("pod").is_some());

    rt.remove_pod(&host.uid, Duration::ZERO)
        .await
        .expect("remove host");
    let all = rt.list_pods().await.expect("list");
    assert!(all.is_empty(), "{all:#?}");
    // Removing what is not there is no error.
    rt.remove_pod(&sb.uid, Duration::ZERO).await.expect("again");
}

#[tokio::test]
async fn service_restarts_when_it_exits_and_stops_on_shutdown() {
    let env = Env::new("service").await;
    let first = env.service.pid().expect("running");
    // SAFETY: kill(2) of our own child process.
    unsafe {
        libc::kill(first as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let restarted = env.service.pid().filter(|p| *p != first);
        if restarted.is_some()
            && env
                .service
                .client()
                .ping(Duration::from_secs(2))
                .await
                .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the service was not restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The runtime carries on against the new process.
    let sb = env.sandbox("after");
    env.runtime.run_sandbox(&sb).await.expect("sandbox");
    env.runtime
        .remove_pod(&sb.uid, Duration::ZERO)
        .await
        .expect("remove");
    // An existing socket can be used without starting anything.
    let external = PodmanService::external(env.service.socket());
    assert_eq!(external.pid(), None);
    external
        .client()
        .ping(Duration::from_secs(5))
        .await
        .expect("external");
    let second = env.service.pid().expect("running");
    env.service.shutdown().await;
    assert_eq!(env.service.pid(), None);
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(second as libc::pid_t, 0) } == 0;
    assert!(!alive, "podman system service {second} still runs");
}
