//! `keelson kv lock` and `keelson kv elect` against a three-member cluster: mutual exclusion
//! among five concurrent holders, a killed holder losing the lock with its lease, and an
//! election with exactly one leader at a time handing over as leaders resign or die.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{wait_healthy, wait_until, KeelsonCluster, KvProcess};

const BIN: &str = env!("CARGO_BIN_EXE_keelson");

fn bin() -> &'static Path {
    Path::new(BIN)
}

#[test]
fn five_lock_holders_never_overlap() {
    let cluster = KeelsonCluster::start(BIN, &["a", "b", "c"], &[]);
    let eps = cluster.endpoints();
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    // The critical section claims a marker file with noclobber (fails if another holder has
    // it), logs entry and exit, and holds the lock for a moment of "work".
    let section = format!(
        "set -C; echo $ID > {d}/held || {{ echo overlap $ID >> {d}/log; exit 3; }}; \
         echo enter $ID >> {d}/log; sleep 0.2; echo exit $ID >> {d}/log; rm {d}/held"
    );
    let holders: Vec<KvProcess> = (0..5)
        .map(|i| {
            // Each holder talks to a different member.
            let ep = vec![eps[i % eps.len()].clone()];
            let script = format!("ID={i}; {section}");
            KvProcess::spawn(
                bin(),
                &ep,
                &["lock", "shared-lock", "--", "sh", "-c", &script],
            )
        })
        .collect();
    for h in holders {
        let r = h.wait(Duration::from_secs(60));
        assert_eq!(r.code, Some(0), "{r:?}");
    }
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        10,
        "every holder entered and left once:\n{log}"
    );
    let mut seen = Vec::new();
    for pair in lines.chunks(2) {
        let (enter, exit) = (pair[0], pair[1]);
        let id = enter.strip_prefix("enter ").expect("an entry");
        assert_eq!(exit, format!("exit {id}"), "holders overlapped:\n{log}");
        seen.push(id.to_string());
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2", "3", "4"], "{log}");
}

#[test]
fn a_killed_holder_loses_the_lock_with_its_lease() {
    let cluster = KeelsonCluster::start(BIN, &["a", "b", "c"], &[]);
    let eps = cluster.endpoints();
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let mut first = KvProcess::spawn(bin(), &eps, &["lock", "ttl-lock", "--ttl", "2"]);
    wait_until(
        Duration::from_secs(20),
        "the first holder prints its key",
        || first.stdout().starts_with("ttl-lock/"),
    );
    let second = KvProcess::spawn(bin(), &eps, &["lock", "ttl-lock", "--", "echo", "acquired"]);
    // The second waits while the first holds the lock: give it every chance to misbehave,
    // bounded by the point where it must still be waiting.
    let held_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < held_until {
        assert_eq!(second.stdout(), "", "the second holder got a held lock");
        std::thread::sleep(common::POLL_INTERVAL);
    }
    first.guard.kill();
    let killed_at = Instant::now();
    let r = second.wait(Duration::from_secs(30));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "acquired\n"),
        "{r:?}"
    );
    // It had to wait for the 2 s lease to expire (the dead holder could not unlock).
    assert!(
        killed_at.elapsed() >= Duration::from_millis(500),
        "{:?}",
        killed_at.elapsed()
    );
}

#[test]
fn one_leader_at_a_time_and_every_proposal_leads_in_turn() {
    let cluster = KeelsonCluster::start(BIN, &["a", "b", "c"], &[]);
    let eps = cluster.endpoints();
    wait_healthy(bin(), &eps, Duration::from_secs(30));
    let observer = KvProcess::spawn(bin(), &eps, &["elect", "-l", "ballot"]);
    let mut candidates: Vec<(String, KvProcess)> = (0..5)
        .map(|i| {
            let prop = format!("proposal-{i}");
            let p = KvProcess::spawn(bin(), &eps, &["elect", "--ttl", "2", "ballot", &prop]);
            (prop, p)
        })
        .collect();
    let mut order = Vec::new();
    for round in 0..5 {
        // Wait until some remaining candidate announces it leads ...
        let leader = common::wait_for(Duration::from_secs(30), "a new leader", || {
            candidates.iter().position(|(_, p)| !p.stdout().is_empty())
        });
        // ... and check it is the only one.
        let leading: Vec<&String> = candidates
            .iter()
            .filter(|(_, p)| !p.stdout().is_empty())
            .map(|(prop, _)| prop)
            .collect();
        assert_eq!(leading.len(), 1, "more than one leader: {leading:?}");
        let (prop, mut p) = candidates.remove(leader);
        let out = p.stdout();
        assert!(
            out.starts_with("ballot/") && out.ends_with(&format!("\n{prop}\n")),
            "{out:?}"
        );
        // The observer reports this leader before it goes (it may start after the first
        // leader was elected: a process start and a connect on a loaded machine).
        common::wait_until(
            Duration::from_secs(10),
            "the observer saw this leader",
            || observer.stdout().lines().any(|l| l == prop),
        );
        order.push(prop);
        // Alternate a clean resignation (SIGTERM) and a crash (SIGKILL: the lease expires).
        if round % 2 == 0 {
            p.guard.signal(libc::SIGTERM);
            let r = p.wait(Duration::from_secs(10));
            assert_eq!(r.code, Some(0), "a resigning leader exits cleanly: {r:?}");
        } else {
            p.guard.kill();
        }
    }
    let mut all = order.clone();
    all.sort();
    assert_eq!(
        all,
        (0..5).map(|i| format!("proposal-{i}")).collect::<Vec<_>>()
    );
    // The observer saw the same succession.
    wait_until(
        Duration::from_secs(10),
        "the observer saw every leader",
        || {
            observer
                .stdout()
                .lines()
                .filter(|l| l.starts_with("proposal-"))
                .count()
                >= 5
        },
    );
    let seen: Vec<String> = observer
        .stdout()
        .lines()
        .filter(|l| l.starts_with("proposal-"))
        .map(String::from)
        .collect();
    assert_eq!(seen, order, "observer output:\n{}", observer.stdout());
}
