//! Jepsen-style tests of the store under faults. Three `keelson store` members run in network
//! namespaces this test makes (see `common::netns`), so a partition is real: packets between
//! the sides are dropped while the test still reaches every member.
//!
//! - `partitioned_leader…`: the leader is cut off from the other two. The majority elects a
//!   new leader and serves reads and writes; the old leader answers linearizable reads and
//!   writes with errors, never stale data; after healing there is one history.
//! - `histories_stay_linearizable…`: concurrent clients put, get and compare-and-set a few
//!   keys through all three members while a nemesis kills, restarts, pauses (SIGSTOP/SIGCONT)
//!   and partitions members. The recorded history is checked with the WGL checker in
//!   `common::lincheck`, and a watch that resumes across failures is checked to be ordered,
//!   gap-free and duplicate-free against the final state. `KEELSON_JEPSEN_SEEDS` (comma
//!   separated) and `KEELSON_JEPSEN_SECS` run other seeds and longer runs.
//!
//! Without root (network namespaces need it) the tests say so and pass vacuously only when
//! `CI` is unset; under `CI=true` they fail instead.

mod common;
#[path = "common/lincheck.rs"]
mod lincheck;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{self, Net};
use common::{file_tail, ChildGuard};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use lincheck::{Event, Op, Outcome, Ret, Verdict};

const BIN: &str = env!("CARGO_BIN_EXE_keelson");

/// SplitMix64: a seeded, reproducible choice of operations and faults.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `range`.
    fn within(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start).max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
const MEMBERS: usize = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether the machine lets this test make network namespaces; under CI it must.
fn netns_or_skip() -> bool {
    if netns::available() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run the Jepsen tests: network namespaces need root and iproute2"
    );
    eprintln!("skipping: network namespaces need root and iproute2");
    false
}

struct Member {
    args: Vec<String>,
    log: PathBuf,
    child: Option<ChildGuard>,
    paused: bool,
}

/// Three `keelson store` members, member `i` in host `i` of `net`.
struct Cluster {
    members: Vec<Member>,
    endpoints: Vec<String>,
    _dir: tempfile::TempDir,
    // Declared last: dropped after the members are killed.
    net: Net,
}

impl Cluster {
    fn start() -> Cluster {
        let net = Net::new(MEMBERS);
        let dir = tempfile::tempdir().expect("temp dir");
        let initial = (0..MEMBERS)
            .map(|i| format!("m{i}=http://{}:2380", net.addr(i)))
            .collect::<Vec<_>>()
            .join(",");
        let endpoints: Vec<String> = (0..MEMBERS)
            .map(|i| format!("http://{}:2379", net.addr(i)))
            .collect();
        let members = (0..MEMBERS)
            .map(|i| {
                let a = net.addr(i);
                let args = [
                    "store",
                    "--name",
                    &format!("m{i}"),
                    "--data-dir",
                    &dir.path().join(format!("m{i}")).display().to_string(),
                    "--listen-client-urls",
                    &format!("http://{a}:2379"),
                    "--advertise-client-urls",
                    &format!("http://{a}:2379"),
                    "--listen-peer-urls",
                    &format!("http://{a}:2380"),
                    "--initial-advertise-peer-urls",
                    &format!("http://{a}:2380"),
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-token",
                    "jepsen",
                    "--heartbeat-interval",
                    "50",
                    "--election-timeout",
                    "500",
                    // Snapshots and log purges happen during the runs.
                    "--snapshot-count",
                    "500",
                    "--log-level",
                    "warn",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                Member {
                    args,
                    log: dir.path().join(format!("m{i}.log")),
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let mut c = Cluster {
            members,
            endpoints,
            _dir: dir,
            net,
        };
        for i in 0..MEMBERS {
            c.start_member(i);
        }
        c
    }

    fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("log");
        let mut cmd = self.net.command(i, Path::new(BIN));
        cmd.args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        m.child = Some(ChildGuard::spawn(&format!("keelson store m{i}"), &mut cmd).expect("spawn"));
        m.paused = false;
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            c.kill();
        }
        self.members[i].paused = false;
    }

    fn pause(&mut self, i: usize) {
        if let Some(c) = &self.members[i].child {
            c.signal(libc::SIGSTOP);
            self.members[i].paused = true;
        }
    }

    fn resume(&mut self, i: usize) {
        if let Some(c) = &self.members[i].child {
            c.signal(libc::SIGCONT);
        }
        self.members[i].paused = false;
    }

    /// Every member running, unpaused, connected.
    fn restore_all(&mut self) {
        self.net.heal();
        for i in 0..MEMBERS {
            if self.members[i].child.is_none() {
                self.start_member(i);
            } else if self.members[i].paused {
                self.resume(i);
            }
        }
    }

    fn logs(&self) -> String {
        (0..MEMBERS)
            .map(|i| format!("--- m{i}:\n{}", file_tail(&self.members[i].log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn connect(endpoint: &str) -> Option<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    tokio::time::timeout(
        Duration::from_secs(3),
        Client::connect([endpoint], Some(opts)),
    )
    .await
    .ok()?
    .ok()
}

/// `(member id, leader id)` as the member at `endpoint` reports them.
async fn status(endpoint: &str) -> Option<(u64, u64)> {
    let mut c = connect(endpoint).await?;
    let s = tokio::time::timeout(Duration::from_secs(2), c.status())
        .await
        .ok()?
        .ok()?;
    Some((s.header()?.member_id(), s.leader()))
}

/// Index of the member that leads, as a majority of members report it.
async fn leader(c: &Cluster) -> Option<usize> {
    let mut ids = Vec::new();
    for e in &c.endpoints {
        ids.push(status(e).await);
    }
    let leader = ids.iter().flatten().map(|(_, l)| *l).find(|l| *l != 0)?;
    ids.iter()
        .position(|s| s.is_some_and(|(me, _)| me == leader))
}

/// A linearizable get of `key`: `Ok(value)` or the error.
async fn get(c: &mut Client, key: &str) -> Result<Option<String>, String> {
    match tokio::time::timeout(Duration::from_secs(3), c.get(key, None)).await {
        Ok(Ok(r)) => Ok(r
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn wait_all_serve(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for e in &c.endpoints {
        loop {
            if let Some(mut client) = connect(e).await {
                if get(&mut client, "health").await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{e} never served a linearizable read\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// HashKV of every member at `rev`.
async fn hashes(c: &Cluster, rev: i64) -> Vec<u32> {
    let mut out = Vec::new();
    for e in &c.endpoints {
        let mut client = connect(e).await.expect("connect");
        let h = client.hash_kv(rev).await.expect("hashkv");
        out.push(h.hash());
    }
    out
}

#[test]
fn partitioned_leader_serves_nothing_stale_and_the_majority_goes_on() {
    if !netns_or_skip() {
        return;
    }
    let mut c = Cluster::start();
    let rt = runtime();
    rt.block_on(async {
        wait_all_serve(&c).await;
        let mut any = connect(&c.endpoints[0]).await.expect("connect");
        any.put("p", "before", None).await.expect("put before");
        let old = leader(&c).await.expect("a leader");
        let majority: Vec<usize> = (0..MEMBERS).filter(|i| *i != old).collect();
        c.net.partition(&[old]);
        let cut = Instant::now();

        // The majority elects a leader and takes writes and linearizable reads.
        let mut m = connect(&c.endpoints[majority[0]]).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let put = tokio::time::timeout(Duration::from_secs(3), m.put("p", "majority", None));
            if matches!(put.await, Ok(Ok(_))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the majority never took a write\n{}",
                c.logs()
            );
        }
        eprintln!(
            "partition: the majority took a write {:?} after the leader was cut off",
            cut.elapsed()
        );
        for i in &majority {
            let mut client = connect(&c.endpoints[*i]).await.expect("connect");
            assert_eq!(get(&mut client, "p").await, Ok(Some("majority".into())));
        }

        // The old leader: linearizable reads and writes fail; nothing stale comes back.
        let mut minority = connect(&c.endpoints[old]).await.expect("connect minority");
        for attempt in 0..2 {
            match get(&mut minority, "p").await {
                Err(_) => {}
                Ok(v) => panic!(
                    "attempt {attempt}: a cut-off member answered a linearizable read with {v:?}"
                ),
            }
            let put = tokio::time::timeout(
                Duration::from_secs(3),
                minority.put("p", format!("minority-{attempt}"), None),
            )
            .await;
            assert!(
                !matches!(put, Ok(Ok(_))),
                "a cut-off member acknowledged a write"
            );
        }
        // A serializable read may be stale, as in etcd; it is the member's own state.
        let local = minority
            .get("p", Some(GetOptions::new().with_serializable()))
            .await
            .expect("serializable get");
        assert_eq!(local.kvs()[0].value(), b"before");

        // Healed: one history. The old leader catches up, and every member holds the same
        // revisions, with none of the minority's writes.
        c.net.heal();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(mut client) = connect(&c.endpoints[old]).await {
                if get(&mut client, "p").await == Ok(Some("majority".into())) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the old leader never caught up\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = m.put("p", "healed", None).await.expect("put after heal");
        let rev = r.header().expect("header").revision();
        for e in &c.endpoints {
            let mut client = connect(e).await.expect("connect");
            assert_eq!(get(&mut client, "p").await, Ok(Some("healed".into())));
        }
        let h = hashes(&c, rev).await;
        assert!(h.windows(2).all(|w| w[0] == w[1]), "HashKV differs: {h:?}");
        // Every value `p` ever had, from its history: no write of the minority's is in it.
        let opts = etcd_client::WatchOptions::new().with_start_revision(1);
        let mut stream = m.watch("p", Some(opts)).await.expect("watch");
        let mut values = Vec::new();
        while !values.iter().any(|(r, _)| *r == rev) {
            let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("watch events")
                .expect("watch")
                .expect("watch stream");
            for ev in resp.events() {
                let kv = ev.kv().expect("kv");
                values.push((
                    kv.mod_revision(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                ));
            }
        }
        assert!(
            values.iter().all(|(_, v)| !v.starts_with("minority")),
            "a cut-off member's write is in the history: {values:?}"
        );
    });
}

// ---------------------------------------------------------------------------
// Linearizability under a nemesis
// ---------------------------------------------------------------------------

const KEYS: [&str; 3] = ["lin/a", "lin/b", "lin/c"];
const CLIENTS: usize = 6;

struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// One client: random ops on [`KEYS`] through member `home` (and the others when it cannot
/// be reached), recorded with their call and return times.
async fn client_loop(
    id: usize,
    endpoints: Vec<String>,
    seed: u64,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Mix(seed ^ ((id as u64 + 1) << 32));
    let mut n = 0u64;
    let mut home = id % endpoints.len();
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect(&endpoints[home]).await;
            if client.is_none() {
                home = (home + 1) % endpoints.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let key = KEYS[rng.within(0..KEYS.len() as u64) as usize].to_string();
        n += 1;
        let value = format!("c{id}-{n}");
        let op = match rng.within(0..10) {
            0..=3 => Op::Get { key: key.clone() },
            4..=6 => Op::Put {
                key: key.clone(),
                value: value.clone(),
            },
            _ => {
                // Compare against a value some client may have written.
                let other = rng.within(0..CLIENTS as u64);
                let expected = if rng.chance(20) {
                    None
                } else {
                    Some(format!("c{other}-{}", n.saturating_sub(rng.within(0..4))))
                };
                Op::Cas {
                    key: key.clone(),
                    expected,
                    new: value.clone(),
                }
            }
        };
        let call = rec.now();
        let limit = Duration::from_secs(2);
        let outcome = match &op {
            Op::Get { key } => match tokio::time::timeout(limit, c.get(key.as_str(), None)).await {
                Ok(Ok(r)) => Outcome::Ok(Ret::Value(
                    r.kvs()
                        .first()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                )),
                _ => Outcome::Unknown,
            },
            Op::Put { key, value } => {
                match tokio::time::timeout(limit, c.put(key.as_str(), value.as_str(), None)).await {
                    Ok(Ok(_)) => Outcome::Ok(Ret::Done),
                    _ => Outcome::Unknown,
                }
            }
            Op::Cas { key, expected, new } => {
                let cmp = match expected {
                    Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.as_str()),
                    None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                };
                let txn =
                    Txn::new()
                        .when([cmp])
                        .and_then([TxnOp::put(key.as_str(), new.as_str(), None)]);
                match tokio::time::timeout(limit, c.txn(txn)).await {
                    Ok(Ok(r)) => Outcome::Ok(Ret::Swapped(r.succeeded())),
                    _ => Outcome::Unknown,
                }
            }
            Op::Delete { .. } => Outcome::Unknown,
        };
        let ret = rec.now();
        let failed = matches!(outcome, Outcome::Unknown);
        rec.events.lock().expect("events").push(Event {
            client: id,
            op,
            call,
            ret,
            outcome,
        });
        if failed {
            // Reconnect, maybe elsewhere: the member may be dead, paused or cut off.
            client = None;
            home = (home + 1) % endpoints.len();
        }
    }
}

/// A watch on `lin/` from `from`, resumed through another member whenever its stream fails:
/// every event seen, in arrival order, as (revision, key, value).
async fn watch_loop(
    endpoints: Vec<String>,
    from: i64,
    until: Arc<Mutex<Option<i64>>>,
    seen: Arc<Mutex<Vec<(i64, String, String)>>>,
) {
    let mut next = from;
    let mut at = 0;
    loop {
        if let Some(end) = *until.lock().expect("until") {
            if next > end {
                return;
            }
        }
        let Some(mut c) = connect(&endpoints[at]).await else {
            at = (at + 1) % endpoints.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let opts = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(next);
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), c.watch("lin/", Some(opts))).await
        else {
            at = (at + 1) % endpoints.len();
            continue;
        };
        loop {
            // A stream that goes quiet may be on a cut-off member: move on.
            match tokio::time::timeout(Duration::from_secs(3), stream.message()).await {
                Ok(Ok(Some(resp))) => {
                    // Nothing compacts here: a cancelled watch is a member going away.
                    assert_eq!(
                        resp.compact_revision(),
                        0,
                        "the watch from {next} was compacted"
                    );
                    if resp.canceled() {
                        break;
                    }
                    let mut s = seen.lock().expect("seen");
                    for ev in resp.events() {
                        let kv = ev.kv().expect("event kv");
                        s.push((
                            kv.mod_revision(),
                            String::from_utf8_lossy(kv.key()).into_owned(),
                            String::from_utf8_lossy(kv.value()).into_owned(),
                        ));
                        next = kv.mod_revision() + 1;
                    }
                }
                _ => break,
            }
            if let Some(end) = *until.lock().expect("until") {
                if next > end {
                    return;
                }
            }
        }
        at = (at + 1) % endpoints.len();
    }
}

/// The nemesis: every 1–3 s one fault on a random member (kill -9 and restart, SIGSTOP and
/// SIGCONT, or a partition of one member from the other two), at most one at a time.
fn nemesis(c: &mut Cluster, rng: &mut Mix, until: Instant, log: &mut Vec<String>) {
    while Instant::now() < until {
        let victim = rng.within(0..MEMBERS as u64) as usize;
        let hold = Duration::from_millis(rng.within(500..2500));
        match rng.within(0..3) {
            0 => {
                log.push(format!("kill -9 m{victim} for {hold:?}"));
                c.kill(victim);
                std::thread::sleep(hold);
                c.start_member(victim);
            }
            1 => {
                log.push(format!("SIGSTOP m{victim} for {hold:?}"));
                c.pause(victim);
                std::thread::sleep(hold);
                c.resume(victim);
            }
            _ => {
                log.push(format!("partition m{victim} for {hold:?}"));
                c.net.partition(&[victim]);
                std::thread::sleep(hold);
                c.net.heal();
            }
        }
        std::thread::sleep(Duration::from_millis(rng.within(500..1500)));
    }
}

fn run_seed(seed: u64, secs: u64) {
    let mut c = Cluster::start();
    let rt = runtime();
    let from = rt.block_on(async {
        wait_all_serve(&c).await;
        let mut client = connect(&c.endpoints[0]).await.expect("connect");
        let r = client.put("start", "x", None).await.expect("put");
        r.header().expect("header").revision() + 1
    });
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        events: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let until_rev = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        tasks.push(rt.spawn(client_loop(
            id,
            c.endpoints.clone(),
            seed,
            rec.clone(),
            stop.clone(),
        )));
    }
    let watcher = rt.spawn(watch_loop(
        c.endpoints.clone(),
        from,
        until_rev.clone(),
        seen.clone(),
    ));

    // The nemesis runs on this thread: it owns the members' processes (their PDEATHSIG
    // is tied to the thread that spawned them).
    let mut rng = Mix(seed);
    let mut faults = Vec::new();
    nemesis(
        &mut c,
        &mut rng,
        Instant::now() + Duration::from_secs(secs),
        &mut faults,
    );
    c.restore_all();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("client task");
        }
    });
    let final_rev = rt.block_on(async {
        wait_all_serve(&c).await;
        let mut client = connect(&c.endpoints[0]).await.expect("connect");
        let r = client
            .get("lin/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("final read");
        r.header().expect("header").revision()
    });
    *until_rev.lock().expect("until") = Some(final_rev);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .expect("the watch never reached the final revision")
            .expect("watch task");
    });

    let events = std::mem::take(&mut *rec.events.lock().expect("events"));
    let ok = events
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Ok(_)))
        .count();
    eprintln!(
        "seed {seed}: {} ops ({ok} ok, {} unknown), faults: {}",
        events.len(),
        events.len() - ok,
        faults.join("; ")
    );
    assert!(
        ok > 50,
        "seed {seed}: too few operations completed ({ok})\n{}",
        c.logs()
    );
    let checked = Instant::now();
    match lincheck::check(&events, Duration::from_secs(120)) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, explanation } => panic!(
            "seed {seed}: the history of {key} is not linearizable:\n{explanation}\nfaults: {faults:?}"
        ),
        Verdict::Timeout { key } => panic!("seed {seed}: checking {key} timed out"),
    }
    eprintln!(
        "seed {seed}: linearizable (checked in {:?})",
        checked.elapsed()
    );

    // The watch: ordered, no duplicates, no gaps (every revision from `from` to the final
    // one wrote one of our keys), and each event is what the store holds at that revision.
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let revs: Vec<i64> = seen.iter().map(|(r, _, _)| *r).collect();
    let want: Vec<i64> = (from..=final_rev).collect();
    assert_eq!(
        revs, want,
        "seed {seed}: watch revisions are not exactly {from}..={final_rev}"
    );
    let written: HashMap<String, String> = events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Put { value, key }
            | Op::Cas {
                new: value, key, ..
            } => Some((value.clone(), key.clone())),
            _ => None,
        })
        .collect();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for (rev, key, value) in &seen {
        assert_eq!(
            written.get(value),
            Some(key),
            "seed {seed}: the watch saw {key}={value} at {rev}, which no client wrote there"
        );
        last.insert(key.clone(), value.clone());
    }
    // The last event of each key is the key's final value.
    rt.block_on(async {
        let mut client = connect(&c.endpoints[1]).await.expect("connect");
        for (key, value) in &last {
            assert_eq!(get(&mut client, key).await, Ok(Some(value.clone())));
        }
        let h = hashes(&c, final_rev).await;
        assert!(
            h.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: HashKV differs: {h:?}"
        );
    });
}

#[test]
fn histories_stay_linearizable_while_members_die_pause_and_split() {
    if !netns_or_skip() {
        return;
    }
    let seeds: Vec<u64> = std::env::var("KEELSON_JEPSEN_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3]);
    let secs: u64 = std::env::var("KEELSON_JEPSEN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    for seed in seeds {
        run_seed(seed, secs);
    }
}
