//! `keelson store` and its etcd flags, as a process: bad flag combinations
//! fail fast with a clear message (and a non-zero exit), defaults match
//! etcd's, and a member restarted from its data dir keeps its identity
//! whatever bootstrap flags it is given.

mod common;

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{free_port, poll_for, ChildGuard, KeelsonCluster};
use etcd_client::Client;

const KEELSON: &str = env!("CARGO_BIN_EXE_keelson");
/// How long a process that should fail fast may take to exit.
const FAIL_FAST: Duration = Duration::from_secs(20);
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `keelson store <args>` in `cwd`, expecting it to exit on its own
/// within [`FAIL_FAST`]; returns its status, stdout and stderr.
#[track_caller]
fn run_store(cwd: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let logs = tempfile::tempdir().expect("temp dir");
    let out_path = logs.path().join("stdout");
    let err_path = logs.path().join("stderr");
    let mut cmd = Command::new(KEELSON);
    cmd.arg("store")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout"))
        .stderr(File::create(&err_path).expect("create stderr"));
    let mut child = ChildGuard::spawn("keelson store", &mut cmd).expect("spawn keelson");
    let status = child.wait_timeout(FAIL_FAST).expect("wait");
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let Some(status) = status else {
        child.kill();
        panic!(
            "`keelson store {}` was still running after {FAIL_FAST:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" ")
        );
    };
    (status, stdout, stderr)
}

/// Runs `keelson store <args>`, which must fail with every `needles` in its stderr.
#[track_caller]
fn assert_fails(cwd: &Path, args: &[&str], needles: &[&str]) -> String {
    let (status, stdout, stderr) = run_store(cwd, args);
    assert!(
        !status.success() && status.code().is_some(),
        "`keelson store {}` should exit with an error code, got {status}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr of `keelson store {}` should mention {needle:?}:\n{stderr}",
            args.join(" ")
        );
    }
    stderr
}

/// Loopback flags for one member called `name` (client, peer, initial cluster).
fn member_flags(name: &str) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    vec![
        "--name".into(),
        name.into(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Replaces the value of `flag` in `args`.
fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(p) => args[p + 1] = value.to_string(),
        None => {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
    }
    args
}

#[test]
fn initial_cluster_without_the_local_name_fails_fast() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let args = with_flag(
        member_flags("x"),
        "--initial-cluster",
        &format!("a=http://127.0.0.1:{}", free_port()),
    );
    let mut args = strs(&args);
    args.extend(["--data-dir", "x.data"]);
    assert_fails(cwd.path(), &args, &["couldn't find local name", "\"x\""]);
    assert!(
        !cwd.path().join("x.data").exists(),
        "a rejected configuration must not create the data dir"
    );
}

#[test]
fn unparsable_client_url_fails_fast() {
    let cwd = tempfile::tempdir().expect("temp dir");
    for bad in [
        "http://127.0.0.1:notaport",
        "127.0.0.1:2379",
        "http://[::1",
        "unix://127.0.0.1:2379",
    ] {
        let args = with_flag(member_flags("x"), "--listen-client-urls", bad);
        let mut args = strs(&args);
        args.extend(["--data-dir", "x.data"]);
        assert_fails(cwd.path(), &args, &["--listen-client-urls", bad]);
    }
    assert!(!cwd.path().join("x.data").exists());
}

#[test]
fn bogus_initial_cluster_state_fails_fast() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let args = member_flags("x");
    let mut args = strs(&args);
    args.extend(["--data-dir", "x.data", "--initial-cluster-state", "bogus"]);
    assert_fails(cwd.path(), &args, &["--initial-cluster-state", "bogus"]);
    assert!(!cwd.path().join("x.data").exists());
}

#[test]
fn election_timeout_below_five_heartbeats_fails_fast() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let args = member_flags("x");
    let mut args = strs(&args);
    args.extend([
        "--data-dir",
        "x.data",
        "--heartbeat-interval",
        "100",
        "--election-timeout",
        "400",
    ]);
    assert_fails(
        cwd.path(),
        &args,
        &["--election-timeout", "--heartbeat-interval", "5 times"],
    );
    assert!(!cwd.path().join("x.data").exists());
    // Exactly five heartbeats is accepted (checked by starting a member with
    // it in `restarted_member_keeps_its_identity_whatever_the_bootstrap_flags`).
}

/// The first `Status` answer from `url`, polled for up to `timeout`.
async fn wait_status(url: &str, timeout: Duration) -> etcd_client::StatusResponse {
    poll_for(timeout, &format!("{url} answers Status"), || async move {
        common::member_status(url).await.map(Some)
    })
    .await
}

/// Polls until the member at `url` lists exactly one member with this name,
/// peer URL and client URL. (Unlike etcd, which serves clients only once the
/// member has published its attributes, keelson answers a moment earlier
/// with an empty or incomplete list.)
async fn wait_single_member_listed(url: &str, name: &str, peer_url: &str) {
    let client: Client = common::etcd_connect(url).await;
    let want = vec![(
        name.to_string(),
        vec![peer_url.to_string()],
        vec![url.to_string()],
    )];
    poll_for(
        Duration::from_secs(15),
        &format!("{url} lists itself as {want:?}"),
        || {
            let mut client = client.clone();
            let want = want.clone();
            async move {
                let list = client.member_list().await?;
                let rows: Vec<(String, Vec<String>, Vec<String>)> = list
                    .members()
                    .iter()
                    .map(|m| {
                        (
                            m.name().to_string(),
                            m.peer_urls().to_vec(),
                            m.client_urls().to_vec(),
                        )
                    })
                    .collect();
                Ok::<_, etcd_client::Error>((rows == want).then_some(()))
            }
        },
    )
    .await;
}

/// Starts `keelson store <args>` in `cwd` and waits until `client_url`
/// answers `Status`; returns the process and its stderr path.
async fn start_server(
    cwd: &Path,
    args: &[&str],
    client_url: &str,
    log: &Path,
) -> (ChildGuard, etcd_client::StatusResponse) {
    let mut cmd = Command::new(KEELSON);
    cmd.arg("store")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(log.with_extension("out")).expect("create log"))
        .stderr(File::create(log).expect("create log"));
    let mut child = ChildGuard::spawn("keelson store", &mut cmd).expect("spawn keelson");
    let status = tokio::select! {
        status = wait_status(client_url, Duration::from_secs(30)) => status,
        exit = async {
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    return status;
                }
                tokio::time::sleep(common::POLL_INTERVAL).await;
            }
        } => panic!(
            "`keelson store {}` exited ({exit}) before serving:\n{}",
            args.join(" "),
            common::file_tail(log, 40)
        ),
    };
    (child, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_of_another_member_is_refused() {
    tokio::time::timeout(LIMIT, async {
        let cwd = tempfile::tempdir().expect("temp dir");
        let data_dir = cwd.path().join("shared.data");
        let data = data_dir.to_str().unwrap();

        // Member "a" creates the data dir, then stops.
        let a = member_flags("a");
        let mut a_args = strs(&a);
        a_args.extend(["--data-dir", data]);
        let a_client = a[3].clone();
        let log = cwd.path().join("a.log");
        let (mut child, status) = start_server(cwd.path(), &a_args, &a_client, &log).await;
        let a_id = status.header().expect("header").member_id();
        child.kill();

        // "b" may not use it.
        let b = member_flags("b");
        let mut b_args = strs(&b);
        b_args.extend(["--data-dir", data]);
        let stderr = assert_fails(cwd.path(), &b_args, &["belongs to member \"a\""]);
        assert!(
            stderr.contains(&format!("{a_id:x}")),
            "the error names the owner's member ID {a_id:x}:\n{stderr}"
        );

        // "a" still can (on new ports, even).
        let a2 = member_flags("a");
        let mut a2_args = strs(&a2);
        a2_args.extend(["--data-dir", data]);
        let a2_client = a2[3].clone();
        let log = cwd.path().join("a2.log");
        let (_child, status) = start_server(cwd.path(), &a2_args, &a2_client, &log).await;
        assert_eq!(status.header().unwrap().member_id(), a_id);
    })
    .await
    .expect("test timed out");
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Bare `keelson store` serves etcd's defaults: member `default` on
/// 127.0.0.1:2379 (clients) and :2380 (peers), data in `./default.keelson`.
/// Only run when both ports are free on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_store_uses_etcds_defaults() {
    if !(port_is_free(2379) && port_is_free(2380)) {
        eprintln!(
            "SKIPPED bare_store_uses_etcds_defaults: 127.0.0.1:2379 or :2380 is in use \
             (the default data dir naming is covered by named_member_without_data_dir_uses_name_keelson)"
        );
        return;
    }
    tokio::time::timeout(LIMIT, async {
        let cwd = tempfile::tempdir().expect("temp dir");
        let logs = tempfile::tempdir().expect("temp dir");
        let log = logs.path().join("stderr.log");
        let mut cmd = Command::new(KEELSON);
        cmd.arg("store")
            .current_dir(cwd.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create log"));
        let mut child = ChildGuard::spawn("keelson store", &mut cmd).expect("spawn keelson");
        let url = "http://127.0.0.1:2379";
        let served = tokio::select! {
            status = wait_status(url, Duration::from_secs(30)) => Some(status),
            _ = async {
                while child.try_wait().expect("try_wait").is_none() {
                    tokio::time::sleep(common::POLL_INTERVAL).await;
                }
            } => None,
        };
        let stderr = common::file_tail(&log, 40);
        let Some(status) = served else {
            if stderr
                .to_ascii_lowercase()
                .contains("address already in use")
            {
                eprintln!(
                    "SKIPPED bare_store_uses_etcds_defaults: port taken meanwhile:\n{stderr}"
                );
                return;
            }
            panic!("bare `keelson store` exited before serving:\n{stderr}");
        };
        // It is our process answering.
        assert!(child.try_wait().expect("try_wait").is_none());
        // A single member elects itself.
        let me = status.header().unwrap().member_id();
        poll_for(
            Duration::from_secs(15),
            "the default member leads itself",
            || async move {
                let status = common::member_status(url).await?;
                Ok::<_, String>((status.leader() == me).then_some(()))
            },
        )
        .await;
        wait_single_member_listed(url, "default", "http://127.0.0.1:2380").await;
        assert!(
            cwd.path().join("default.keelson").is_dir(),
            "default data dir ./default.keelson"
        );
        child.kill();
    })
    .await
    .expect("test timed out");
}

/// `--name x` without `--data-dir` keeps its data in `./x.keelson`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_member_without_data_dir_uses_name_keelson() {
    tokio::time::timeout(LIMIT, async {
        let cwd = tempfile::tempdir().expect("temp dir");
        let x = member_flags("x");
        let client_url = x[3].clone();
        let log = cwd.path().join("x.log");
        let (mut child, _) = start_server(cwd.path(), &strs(&x), &client_url, &log).await;
        assert!(
            cwd.path().join("x.keelson").is_dir(),
            "data dir ./x.keelson, found {:?}",
            fs::read_dir(cwd.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
        wait_single_member_listed(&client_url, "x", &x[9]).await;
        child.kill();
    })
    .await
    .expect("test timed out");
}

/// A member restarted from its data dir ignores the bootstrap flags: a
/// different `--initial-cluster-token`, even a different `--initial-cluster`,
/// leave its member ID, cluster ID, member list and data unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_keeps_its_identity_whatever_the_bootstrap_flags() {
    let mut c = KeelsonCluster::start(
        KEELSON,
        &["solo"],
        // Exactly five heartbeats per election timeout is allowed.
        &["--heartbeat-interval", "100", "--election-timeout", "500"],
    );
    tokio::time::timeout(LIMIT, async {
        c.wait_ready(Duration::from_secs(30)).await;
        let identity = |c: &KeelsonCluster| {
            let url = c.client_url(0);
            async move {
                let mut client = common::etcd_connect(&url).await;
                let status = client.status().await.expect("status");
                let header = status.header().expect("header");
                let list = client.member_list().await.expect("member list");
                let mut rows: Vec<(u64, String, Vec<String>)> = list
                    .members()
                    .iter()
                    .map(|m| (m.id(), m.name().to_string(), m.peer_urls().to_vec()))
                    .collect();
                rows.sort();
                (header.cluster_id(), header.member_id(), rows)
            }
        };
        let before = identity(&c).await;
        c.client(0)
            .await
            .put("kept", "yes", None)
            .await
            .expect("put");

        let ghost = format!("ghost=http://127.0.0.1:{}", free_port());
        let own = format!("solo={}", c.member(0).peer_url());
        let changes: [(&str, String); 3] = [
            ("--initial-cluster-token", "another-token".to_string()),
            ("--initial-cluster", format!("{own},{ghost}")),
            ("--initial-cluster-state", "existing".to_string()),
        ];
        for (flag, value) in changes {
            c.kill_member(0);
            c.set_flag(0, flag, &value);
            c.start_member(0);
            c.wait_ready(Duration::from_secs(30)).await;
            let after = identity(&c).await;
            assert_eq!(
                after, before,
                "identity changed after a restart with {flag} {value}"
            );
            let mut client = c.client(0).await;
            let got = client.get("kept", None).await.expect("get");
            assert_eq!(
                got.kvs().len(),
                1,
                "data lost after a restart with {flag} {value}"
            );
            client
                .put("kept", "yes", None)
                .await
                .unwrap_or_else(|e| panic!("put after a restart with {flag} {value}: {e}"));
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_holds_at_most_max_watchers_per_stream() {
    tokio::time::timeout(LIMIT, async {
        let cwd = tempfile::tempdir().expect("temp dir");
        let m = member_flags("w");
        let mut args = strs(&m);
        args.extend(["--max-watchers-per-stream", "2"]);
        let url = m[3].clone();
        let log = cwd.path().join("w.log");
        let (_child, _) = start_server(cwd.path(), &args, &url, &log).await;
        let mut client: Client = common::etcd_connect(&url).await;
        async fn next(s: &mut etcd_client::WatchStream) -> etcd_client::WatchResponse {
            tokio::time::timeout(Duration::from_secs(10), s.message())
                .await
                .expect("a watch response in time")
                .expect("watch stream")
                .expect("the stream is open")
        }
        let mut s = client.watch("a", None).await.expect("watch");
        let first = next(&mut s).await;
        assert!(first.created() && !first.canceled(), "{first:?}");
        s.watch("b", None).await.expect("second create");
        let second = next(&mut s).await;
        assert!(second.created() && !second.canceled(), "{second:?}");
        s.watch("c", None).await.expect("third create");
        let third = next(&mut s).await;
        assert!(third.canceled(), "over the limit: {third:?}");
        assert!(
            third.cancel_reason().contains("too many watchers")
                && third.cancel_reason().contains("limit 2"),
            "{third:?}"
        );
        // Another stream has its own count.
        let mut other = client.watch("c", None).await.expect("watch");
        let r = next(&mut other).await;
        assert!(r.created() && !r.canceled(), "{r:?}");
        // A canceled watcher frees its place.
        s.cancel(first.watch_id()).await.expect("cancel");
        let r = next(&mut s).await;
        assert!(r.canceled() && r.watch_id() == first.watch_id(), "{r:?}");
        s.watch("d", None).await.expect("create again");
        let fourth = next(&mut s).await;
        assert!(fourth.created() && !fourth.canceled(), "{fourth:?}");
        client.put("d", "1", None).await.expect("put");
        let ev = next(&mut s).await;
        assert_eq!(ev.watch_id(), fourth.watch_id());
        assert_eq!(ev.events().len(), 1, "{ev:?}");
    })
    .await
    .expect("test timed out");
}
