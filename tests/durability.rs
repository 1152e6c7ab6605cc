//! Writes acknowledged to clients survive `kill -9` of every member at once.
//!
//! Three `keelson store` processes take concurrent writes through different
//! members; mid-stream all three are SIGKILLed together. Every put that
//! returned `Ok` must be there, with its exact value, after all three are
//! restarted with the same flags — and the restarted members must rejoin as
//! themselves (no re-bootstrap: same cluster and member IDs).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{poll_for, KeelsonCluster};
use etcd_client::{Client, GetOptions};

/// Whole-test bound.
const LIMIT: Duration = Duration::from_secs(90);
const READY: Duration = Duration::from_secs(30);
/// One writer per member...
const WRITERS: usize = 3;
/// ...each with this many puts in flight at a time...
const LANES: usize = 4;
/// ...each lane putting up to this many keys, one after the other.
const KEYS_PER_LANE: usize = 100;
/// Kill everything once this many puts have been acknowledged.
const KILL_AFTER_ACKS: usize = 300;
/// Bound for one put.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A put that returned `Ok`.
#[derive(Clone, Debug)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
    via: usize,
}

#[derive(Default)]
struct WriterLog {
    acks: Vec<Ack>,
    errors_before_kill: Vec<String>,
    errors_after_kill: usize,
}

type MemberRow = (u64, String, Vec<String>, Vec<String>, bool);

async fn member_rows(client: &mut Client) -> Result<Vec<MemberRow>, etcd_client::Error> {
    let list = client.member_list().await?;
    let mut rows: Vec<MemberRow> = list
        .members()
        .iter()
        .map(|m| {
            (
                m.id(),
                m.name().to_string(),
                m.peer_urls().to_vec(),
                m.client_urls().to_vec(),
                m.is_learner(),
            )
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// (cluster ID, member ID by member index, member list) as the members report them.
async fn identity(c: &KeelsonCluster) -> (u64, Vec<u64>, Vec<MemberRow>) {
    let mut cluster_ids = Vec::new();
    let mut member_ids = Vec::new();
    for i in 0..c.len() {
        let status = c.client(i).await.status().await.expect("status");
        let header = status.header().expect("status header");
        cluster_ids.push(header.cluster_id());
        member_ids.push(header.member_id());
    }
    assert!(
        cluster_ids.iter().all(|id| *id == cluster_ids[0]),
        "members disagree on the cluster ID: {cluster_ids:x?}"
    );
    // Wait until every member has published its name and client URLs, so the
    // list is comparable before and after the restart.
    let client = c.client(0).await;
    let rows = poll_for(
        Duration::from_secs(15),
        "every member is listed with its name and client URLs",
        || {
            let mut client = client.clone();
            async move {
                let rows = member_rows(&mut client).await?;
                let complete = rows.len() == 3
                    && rows.iter().all(|(_, name, _, client_urls, _)| {
                        !name.is_empty() && !client_urls.is_empty()
                    });
                Ok::<_, etcd_client::Error>(complete.then_some(rows))
            }
        },
    )
    .await;
    (cluster_ids[0], member_ids, rows)
}

async fn writer(
    w: usize,
    lane: usize,
    mut client: Client,
    killed: Arc<AtomicBool>,
    log: Arc<Mutex<WriterLog>>,
) {
    for n in 0..KEYS_PER_LANE {
        let key = format!("dur/{w}/{lane}/{n:04}");
        let value = format!("writer {w} lane {lane} put {n} at {:?}", Instant::now());
        let result =
            tokio::time::timeout(PUT_TIMEOUT, client.put(key.clone(), value.clone(), None)).await;
        let after_kill = killed.load(Ordering::SeqCst);
        let mut log = log.lock().unwrap();
        match result {
            Ok(Ok(resp)) => log.acks.push(Ack {
                key,
                value,
                revision: resp.header().expect("put header").revision(),
                via: w,
            }),
            Ok(Err(e)) if !after_kill => log.errors_before_kill.push(format!("{key}: {e}")),
            Err(_) if !after_kill => log.errors_before_kill.push(format!("{key}: timed out")),
            _ => {
                log.errors_after_kill += 1;
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_of_every_member() {
    let mut c = KeelsonCluster::start(
        env!("CARGO_BIN_EXE_keelson"),
        &["a", "b", "c"],
        &[
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            // Small enough that snapshots and log purges happen during the run.
            "--snapshot-count",
            "200",
        ],
    );
    tokio::time::timeout(LIMIT, durability_body(&mut c))
        .await
        .expect("test timed out");
}

async fn durability_body(c: &mut KeelsonCluster) {
    c.wait_ready(READY).await;
    let (cluster_id, member_ids, rows) = identity(c).await;

    // Concurrent writers, each through its own member.
    let killed = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = c.client(w).await;
        for lane in 0..LANES {
            tasks.push(tokio::spawn(writer(
                w,
                lane,
                client.clone(),
                killed.clone(),
                log.clone(),
            )));
        }
    }

    // Mid-stream, SIGKILL all three members at once.
    let acks_at_kill = poll_for(
        Duration::from_secs(40),
        &format!("{KILL_AFTER_ACKS} acknowledged puts"),
        || {
            let log = log.clone();
            async move {
                let log = log.lock().unwrap();
                let n = log.acks.len();
                Ok::<_, ()>((n >= KILL_AFTER_ACKS).then_some(n))
            }
        },
    )
    .await;
    // (Flag first: a put failing from here on is the kill's doing.)
    killed.store(true, Ordering::SeqCst);
    c.kill_all();
    for t in tasks {
        tokio::time::timeout(PUT_TIMEOUT * 2, t)
            .await
            .expect("a writer did not stop after the kill")
            .expect("writer task panicked");
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    let total = log.acks.len();
    eprintln!(
        "killed all members after {acks_at_kill} acks; {total} acks in all, {} errors before \
         the kill, {} writer lanes stopped by the kill",
        log.errors_before_kill.len(),
        log.errors_after_kill
    );
    assert!(
        total < WRITERS * LANES * KEYS_PER_LANE,
        "the kill should have interrupted the writers (all {total} puts were acknowledged)"
    );
    assert!(
        log.errors_before_kill.is_empty(),
        "puts failed before the kill: {:?}",
        log.errors_before_kill
    );
    let max_rev = log.acks.iter().map(|a| a.revision).max().unwrap_or(0);

    // Restart all three with exactly the same flags.
    c.start_all();
    c.wait_ready(READY).await;

    // They came back as themselves: nothing was bootstrapped again.
    let (cluster_id_after, member_ids_after, rows_after) = identity(c).await;
    assert_eq!(
        cluster_id_after, cluster_id,
        "cluster ID changed across the restart"
    );
    assert_eq!(
        member_ids_after, member_ids,
        "member IDs changed across the restart"
    );
    assert_eq!(rows_after, rows, "member list changed across the restart");
    for m in c.members() {
        let log_text = std::fs::read_to_string(&m.log_path).expect("read member log");
        let second_start = log_text
            .split("=== start #2")
            .nth(1)
            .expect("the log has a second start");
        assert!(
            second_start.contains("restarting member from its data dir"),
            "member {} did not report restarting from its data dir:\n{second_start}",
            m.name
        );
    }

    // Every acknowledged put is there, with its exact value, through every member.
    let mut clients = c.clients().await;
    let expected: BTreeMap<&str, &Ack> = log.acks.iter().map(|a| (a.key.as_str(), a)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let all = client
            .get("dur/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("linearizable range after the restart");
        assert!(
            all.header().expect("header").revision() >= max_rev,
            "member {i}: revision {} after the restart is below the highest acknowledged \
             revision {max_rev}",
            all.header().unwrap().revision()
        );
        let stored: BTreeMap<&str, &str> = all
            .kvs()
            .iter()
            .map(|kv| (kv.key_str().unwrap(), kv.value_str().unwrap()))
            .collect();
        let lost: Vec<_> = expected
            .values()
            .filter(|a| stored.get(a.key.as_str()) != Some(&a.value.as_str()))
            .map(|a| {
                format!(
                    "{} (rev {}, via member {}): stored {:?}",
                    a.key,
                    a.revision,
                    a.via,
                    stored.get(a.key.as_str())
                )
            })
            .collect();
        assert!(
            lost.is_empty(),
            "member {i}: {} of {total} acknowledged puts lost or changed, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
    // And key by key, with linearizable gets spread over the members.
    for (n, ack) in log.acks.iter().enumerate() {
        let client = &mut clients[n % 3];
        let got = client.get(ack.key.as_str(), None).await.expect("get");
        let kv = got.kvs().first().unwrap_or_else(|| {
            panic!(
                "acknowledged key {} (rev {}) is missing",
                ack.key, ack.revision
            )
        });
        assert_eq!(kv.value_str().unwrap(), ack.value, "key {}", ack.key);
        assert_eq!(kv.mod_revision(), ack.revision, "key {}", ack.key);
    }

    // The restarted cluster takes writes again, through every member.
    for (i, client) in clients.iter_mut().enumerate() {
        let resp = client
            .put(format!("after-restart/{i}"), "ok", None)
            .await
            .expect("put after the restart");
        assert!(resp.header().unwrap().revision() > max_rev);
    }
}
