//! Backup and restore with `keelson kv snapshot`: a snapshot of a three-member cluster,
//! restored into a new three-member cluster, serves exactly the snapshot's keys and the same
//! HashKV on every member.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{keelson_kv, wait_healthy, KeelsonCluster};

const BIN: &str = env!("CARGO_BIN_EXE_keelson");

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// The `"kvs"` array and the revision of a `get -w json` answer.
fn kvs_and_revision(json: &str) -> (serde_json::Value, i64) {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("get -w json output");
    let rev = v["header"]["revision"].as_i64().expect("header revision");
    (v["kvs"].clone(), rev)
}

fn hash_at(endpoint: &str, rev: i64) -> (u64, i64) {
    common::hashkv_at(bin(), endpoint, rev)
}

#[test]
fn snapshot_restores_into_a_new_three_member_cluster() {
    let old = KeelsonCluster::start(BIN, &["a", "b", "c"], &[]);
    let eps = old.endpoints();
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let kv = |args: &[&str]| keelson_kv(bin(), &eps, args).ok();

    // History worth restoring: creates, overwrites, deletes, a lease-attached key and a
    // compaction (so the snapshot starts at a compacted revision).
    for i in 0..20 {
        kv(&["put", &format!("key/{i:02}"), &format!("v{i}")]);
    }
    for i in 0..10 {
        kv(&["put", &format!("key/{i:02}"), &format!("v{i}-b")]);
    }
    // Deletes the range [key/15, key/18): three keys.
    kv(&["del", "key/15", "key/18"]);
    let lease = kv(&["lease", "grant", "600"]);
    let lease_id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    kv(&["put", "leased", "x", &format!("--lease={lease_id}")]);
    let (_, rev) = kvs_and_revision(&kv(&["get", "key/00", "-w", "json"]));
    kv(&["compaction", &(rev - 5).to_string()]);
    kv(&["put", "key/03", "after-compaction"]);

    let (old_kvs, snap_rev) = kvs_and_revision(&kv(&["get", "", "--from-key", "-w", "json"]));
    assert_eq!(old_kvs.as_array().map(Vec::len), Some(18), "{old_kvs}");
    let (old_hash, old_compact) = hash_at(&eps[0], snap_rev);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("backup.db");
    let file_s = file.display().to_string();
    let saved = keelson_kv(bin(), &[eps[1].clone()], &["snapshot", "save", &file_s]).ok();
    assert_eq!(saved.trim(), format!("Snapshot saved at {file_s}"));

    let status = keelson_kv(bin(), &[], &["snapshot", "status", &file_s, "-w", "json"]).ok();
    let st: serde_json::Value = serde_json::from_str(status.trim()).expect("status json");
    assert_eq!(st["revision"].as_i64(), Some(snap_rev), "{status}");
    assert!(st["totalKey"].as_i64().unwrap_or(0) > 18, "{status}");
    let table = keelson_kv(bin(), &[], &["snapshot", "status", &file_s, "-w", "table"]).ok();
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table.contains("| REVISION | TOTAL KEYS | TOTAL SIZE |")
            && table.contains(&format!(" {snap_rev} |")),
        "{table}"
    );

    // The old cluster goes away entirely; the new one has new names, ports and IDs.
    drop(old);
    let mut new = KeelsonCluster::new(BIN, &["x", "y", "z"], &[]);
    let initial_cluster = new
        .members()
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for m in new.members() {
        let out = keelson_kv(
            bin(),
            &[],
            &[
                "snapshot",
                "restore",
                &file_s,
                "--name",
                &m.name,
                "--data-dir",
                &m.data_dir.display().to_string(),
                "--initial-cluster",
                &initial_cluster,
                "--initial-advertise-peer-urls",
                &m.peer_url(),
                "--initial-cluster-token",
                "keelson-test-cluster",
            ],
        )
        .ok();
        assert!(out.contains(&format!("revision {snap_rev}")), "{out}");
    }
    // Restoring over an existing data dir is refused.
    let again = keelson_kv(
        bin(),
        &[],
        &[
            "snapshot",
            "restore",
            &file_s,
            "--name",
            "x",
            "--data-dir",
            &new.member(0).data_dir.display().to_string(),
            "--initial-cluster",
            &initial_cluster,
            "--initial-advertise-peer-urls",
            &new.member(0).peer_url(),
        ],
    );
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("exists"), "{again:?}");

    new.start_all();
    let new_eps = new.endpoints();
    wait_healthy(bin(), &new_eps, Duration::from_secs(30));

    // Exactly the snapshot's keys, with their revisions and versions, on every member.
    for ep in &new_eps {
        let got = keelson_kv(
            bin(),
            std::slice::from_ref(ep),
            &["get", "", "--from-key", "-w", "json", "--consistency=s"],
        )
        .ok();
        let (kvs, rev) = kvs_and_revision(&got);
        assert_eq!(kvs, old_kvs, "keys served by {ep} differ from the snapshot");
        assert_eq!(rev, snap_rev, "revision served by {ep}");
        assert_eq!(
            hash_at(ep, snap_rev),
            (old_hash, old_compact),
            "HashKV of {ep} differs from the old cluster's"
        );
    }
    // The restored lease still holds its key.
    let ttl = keelson_kv(
        bin(),
        &new_eps,
        &["lease", "timetolive", &lease_id, "--keys"],
    )
    .ok();
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    // And the new cluster takes writes.
    keelson_kv(bin(), &new_eps, &["put", "fresh", "1"]).ok();
}

#[test]
fn bad_snapshot_files_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![7u8; 4096]).expect("write file");
    let c = corrupt.display().to_string();
    let r = keelson_kv(bin(), &[], &["snapshot", "status", &c]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.starts_with("Error: "), "{r:?}");
    assert!(r.stderr.contains("not a valid keelson snapshot"), "{r:?}");
    let r = keelson_kv(
        bin(),
        &[],
        &[
            "snapshot",
            "restore",
            &c,
            "--data-dir",
            &dir.path().join("d").display().to_string(),
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        !dir.path().join("d").exists(),
        "a failed restore leaves no data dir"
    );
    let missing = keelson_kv(bin(), &[], &["snapshot", "status", "/nonexistent/file.db"]);
    assert_eq!(missing.code, Some(6), "{missing:?}");
}
