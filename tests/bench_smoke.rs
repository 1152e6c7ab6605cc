//! `keelson bench` runs against a live member and reports what it measured (no timing
//! assertions: performance figures live in BENCHMARKS.md, produced by `keelson bench
//! compare-etcd`).

mod common;

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_healthy, ChildGuard, EtcdLikeConfig};

const BIN: &str = env!("CARGO_BIN_EXE_keelson");

/// Runs `keelson <args...>` (bounded by `timeout`) and returns its stdout; panics with its
/// output unless it exits 0.
fn keelson(args: &[&str], timeout: Duration) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("stdout file"))
        .stderr(File::create(&err).expect("stderr file"));
    let mut child = ChildGuard::spawn_group(&args.join(" "), &mut cmd).expect("spawn");
    let status = child.wait_timeout(timeout).expect("wait");
    let stdout = fs::read_to_string(&out).unwrap_or_default();
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    match status {
        Some(s) if s.success() => stdout,
        other => {
            panic!("keelson {args:?} ended with {other:?}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
    }
}

#[test]
fn every_kv_workload_reports_json_without_errors() {
    let server = EtcdLikeConfig::keelson(BIN).start();
    let ep = server.client_url();
    wait_healthy(
        std::path::Path::new(BIN),
        std::slice::from_ref(&ep),
        Duration::from_secs(30),
    );
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "put",
            "--total",
            "300",
            "--key-space-size",
            "50",
            "--sequential-keys",
        ],
        vec![
            "range",
            "/bench-key",
            "--total",
            "300",
            "--consistency",
            "l",
        ],
        vec![
            "range",
            "/bench-key",
            "--total",
            "300",
            "--consistency",
            "s",
        ],
        vec!["txn-put", "--total", "200", "--cas"],
        vec!["txn-mixed", "--total", "200"],
        vec![
            "watch-latency",
            "--watchers",
            "20",
            "--put-total",
            "50",
            "--put-rate",
            "200",
        ],
        vec!["watch", "--watchers", "10", "--put-total", "100"],
        vec!["lease-keepalive", "--total", "100"],
    ];
    for case in cases {
        let mut args = vec![
            "bench",
            "kv",
            "--endpoints",
            &ep,
            "--clients",
            "8",
            "--conns",
            "2",
        ];
        args.extend(case.iter().copied());
        args.extend(["-w", "json"]);
        let out = keelson(&args, Duration::from_secs(60));
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{case:?}: not JSON ({e}): {out}"));
        assert_eq!(v["errors"].as_u64(), Some(0), "{case:?}: {out}");
        assert!(v["requests"].as_u64().unwrap_or(0) > 0, "{case:?}: {out}");
        for field in [
            "throughput",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p99_9_ms",
            "max_ms",
        ] {
            assert!(v[field].as_f64().is_some(), "{case:?} lacks {field}: {out}");
        }
    }
    // The simple report has etcd benchmark's sections.
    let simple = keelson(
        &["bench", "kv", "--endpoints", &ep, "put", "--total", "50"],
        Duration::from_secs(60),
    );
    for section in [
        "Summary:",
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
    ] {
        assert!(simple.contains(section), "missing {section:?}:\n{simple}");
    }
}

#[test]
fn compare_etcd_prints_every_figure() {
    if std::env::var("KEELSON_SKIP_ETCD_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!("SKIPPED compare-etcd smoke test: KEELSON_SKIP_ETCD_CONFORMANCE=1");
        return;
    }
    assert!(
        common::which("etcd").is_some(),
        "compare-etcd needs etcd 3.4 on PATH (Debian etcd-server)"
    );
    let root = tempfile::tempdir().expect("temp dir");
    let out = keelson(
        &[
            "bench",
            "compare-etcd",
            "--scale",
            "0.005",
            "--data-root",
            &root.path().join("bench").display().to_string(),
            "-w",
            "json",
        ],
        Duration::from_secs(240),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("compare-etcd JSON");
    let rows = v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {out}"));
    let figures: Vec<&str> = rows.iter().filter_map(|r| r["figure"].as_str()).collect();
    for wanted in [
        "put seq (1 client, leader): throughput",
        "put 100 clients/10 conns: throughput",
        "put 1000 clients/100 conns: throughput",
        "range 1 key, linearizable: throughput",
        "range 1 key, serializable: throughput",
        "txn-put compare-and-put: throughput",
        "watch-latency 1 watcher: p50",
        "watch-latency 1000 watchers: p99",
        "RSS after the run, max member",
        "data dir after",
        "restart to serving",
    ] {
        assert!(
            figures.iter().any(|f| f.starts_with(wanted)),
            "no {wanted:?} row in {figures:?}"
        );
    }
    for r in rows {
        if r["figure"]
            .as_str()
            .is_some_and(|f| f.starts_with("errors"))
        {
            assert_eq!(r["etcd"].as_f64(), Some(0.0), "{r}");
            assert_eq!(r["keelson"].as_f64(), Some(0.0), "{r}");
        }
    }
    assert!(
        !root.path().join("bench").exists()
            || fs::read_dir(root.path().join("bench"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
        "compare-etcd removes its data dirs unless --keep"
    );
}

#[test]
fn pod_start_reports_raw_podman_and_keelson() {
    assert!(
        common::which("podman").is_some(),
        "pod-start needs podman and runc (scripts/test installs them)"
    );
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("bench");
    let out = keelson(
        &[
            "bench",
            "pod-start",
            "--pods",
            "3",
            "--timeout",
            "270s",
            "--data-root",
            &data.display().to_string(),
            "--json",
        ],
        Duration::from_secs(300),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("pod-start JSON");
    for figure in [
        "/raw_serial/per_pod/p50_s",
        "/raw_serial/per_pod/p99_s",
        "/raw_parallel/wall_s",
        "/raw_parallel/per_pod/p50_s",
        "/keelson/per_pod/p50_s",
        "/keelson/per_pod/p99_s",
        "/keelson/per_pod/max_s",
        "/keelson/wall_s",
        "/keelson_serial/per_pod/p50_s",
        "/added_p50_s",
        "/wall_vs_raw_parallel",
    ] {
        assert!(
            v.pointer(figure).and_then(|f| f.as_f64()).is_some(),
            "no {figure}: {out}"
        );
    }
    assert!(
        !data.exists(),
        "pod-start removes its data dir unless --keep"
    );
}
