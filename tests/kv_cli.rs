//! `keelson kv` behaviour the conformance script does not cover: check perf, watch's
//! exec-on-event, interactive txn, endpoint environment variables, connection errors and
//! shell completions.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{keelson_kv, wait_healthy, wait_until, EtcdLikeConfig, KvProcess};

const BIN: &str = env!("CARGO_BIN_EXE_keelson");

fn bin() -> &'static Path {
    Path::new(BIN)
}

#[test]
fn check_perf_passes_and_cleans_up() {
    let server = EtcdLikeConfig::keelson(BIN).start();
    let eps = vec![server.client_url()];
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let r = keelson_kv(bin(), &eps, &["check", "perf", "--duration", "2s"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{r:?}");
    assert!(
        lines[0].starts_with("PASS: Throughput is ")
            || lines[0].starts_with("FAIL: Throughput too low"),
        "{r:?}"
    );
    assert!(lines[1].contains("Slowest request took"), "{r:?}");
    assert!(lines[2].contains("Stddev"), "{r:?}");
    assert!(lines[3] == "PASS" || lines[3] == "FAIL", "{r:?}");
    let left = keelson_kv(
        bin(),
        &eps,
        &["get", "--prefix", "/etcdctl-check-perf/", "--keys-only"],
    )
    .ok();
    assert_eq!(left, "", "check perf leaves no keys behind");
    let bad = keelson_kv(bin(), &eps, &["check", "perf", "--load", "xxl"]);
    assert_eq!(bad.code, Some(128), "{bad:?}");
}

#[test]
fn watch_runs_a_command_per_event_and_txn_prompts_interactively() {
    let server = EtcdLikeConfig::keelson(BIN).start();
    let eps = vec![server.client_url()];
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events");
    let script = format!(
        "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_REVISION\" >> {}",
        log.display()
    );
    let watcher = KvProcess::spawn(
        bin(),
        &eps,
        &[
            "watch", "--prefix", "w/", "--rev=1", "--", "sh", "-c", &script,
        ],
    );
    keelson_kv(bin(), &eps, &["put", "w/a", "hello world"]).ok();
    keelson_kv(bin(), &eps, &["del", "w/a"]).ok();
    wait_until(Duration::from_secs(20), "two events handled", || {
        std::fs::read_to_string(&log)
            .map(|s| s.lines().count() >= 2)
            .unwrap_or(false)
    });
    let events = std::fs::read_to_string(&log).expect("events");
    assert_eq!(
        events,
        "\"PUT\" \"w/a\" \"hello world\" 2\n\"DELETE\" \"w/a\" \"\" 3\n"
    );
    drop(watcher);

    // txn -i prints etcdctl's prompts and reads the same input.
    let input = dir.path().join("txn");
    std::fs::write(&input, "version(\"t\") = \"0\"\n\nput t 1\n\nput t 2\n\n").expect("write");
    let r = KvProcess::spawn_with_stdin(bin(), &eps, &["txn", "-i"], Some(&input))
        .wait(Duration::from_secs(30));
    assert_eq!(
        r.ok(),
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
    );
}

#[test]
fn endpoints_from_the_environment_and_connection_errors() {
    let server = EtcdLikeConfig::keelson(BIN).start();
    let url = server.client_url();
    wait_healthy(bin(), std::slice::from_ref(&url), Duration::from_secs(30));
    for var in ["KEELSON_ENDPOINTS", "ETCDCTL_ENDPOINTS"] {
        let out = Command::new(BIN)
            .args(["kv", "put", "env", var])
            .env(var, &url)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n", "{var}");
    }
    // Nothing listens on a fresh port: etcdctl's dial timeout error, exit code 2.
    let dead = format!("127.0.0.1:{}", common::free_port());
    let r = keelson_kv(bin(), &[dead], &["get", "x", "--dial-timeout=500ms"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.stderr, "Error: context deadline exceeded\n");
    // --user against a server without authentication: used without a token, as etcdctl does.
    let r = keelson_kv(
        bin(),
        std::slice::from_ref(&url),
        &["get", "env", "--user", "root:pw", "--print-value-only"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "ETCDCTL_ENDPOINTS\n"),
        "{r:?}"
    );
    // No password and no prompt: a clear error (etcdctl would prompt).
    let r = keelson_kv(
        bin(),
        std::slice::from_ref(&url),
        &["get", "x", "--user", "root"],
    );
    assert!(
        r.code != Some(0) && r.stderr.contains("no password"),
        "{r:?}"
    );
    let r = keelson_kv(bin(), &[url], &["get", "x", "-w", "yaml"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (Some(4), "Error: unsupported output format\n")
    );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef keelson"),
        ("fish", "complete -c keelson"),
    ] {
        let out = Command::new(BIN)
            .args(["completion", shell])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(text.contains(marker), "{shell} completion lacks {marker:?}");
        assert!(
            text.contains("snapshot") && text.contains("move-leader"),
            "{shell}"
        );
    }
}
