//! The Lock and Election services against an in-process single-member store, through the
//! `etcd-client` crate, checking etcd 3.5's semantics and error texts.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Error, GetOptions, LeaderKey, LockOptions, ProclaimOptions, ResignOptions,
};
use keelson_store::server::{run_member, Running};
use keelson_store::StoreConfig;
use tempfile::TempDir;
use tokio::time::Instant;
use tonic::Code;

/// Upper bound for every test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for any single condition to become true.
const WAIT: Duration = Duration::from_secs(15);

struct Member {
    running: Running,
    _dir: TempDir,
}

impl Member {
    async fn start() -> Member {
        let dir = tempfile::tempdir().expect("temp dir");
        let any = url::Url::parse("http://127.0.0.1:0").expect("url");
        let mut config = StoreConfig::default_for("t");
        config.data_dir = dir.path().join("t.keelson");
        config.listen_client_urls = vec![any.clone()];
        config.advertise_client_urls = vec![any.clone()];
        config.listen_peer_urls = vec![any.clone()];
        config.initial_advertise_peer_urls = vec![any.clone()];
        config.initial_cluster = vec![("t".to_string(), vec![any])];
        let running = run_member(config).await.expect("start member");
        let node = running.node.clone();
        wait_until("member has a leader", || {
            let node = node.clone();
            async move { node.leader().is_some() }
        })
        .await;
        Member { running, _dir: dir }
    }

    async fn client(&self) -> Client {
        let ep = format!("http://{}", self.running.client_addrs[0]);
        Client::connect([ep], None).await.expect("connect")
    }

    async fn stop(self) {
        self.running.node.shutdown().await;
    }
}

/// Polls `cond` until it holds; panics after [`WAIT`].
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body with an overall deadline.
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

fn lease_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

async fn keys_under(c: &mut Client, prefix: &str) -> Vec<String> {
    let resp = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get prefix");
    resp.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

async fn grant(c: &mut Client) -> i64 {
    c.lease_grant(60, None).await.expect("lease grant").id()
}

/// The gRPC status of a failed call.
fn status(e: Error) -> tonic::Status {
    match e {
        Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_unlock_round_trip() {
    let m = Member::start().await;
    bounded(async {
        let mut c = m.client().await;
        let lease = grant(&mut c).await;

        let resp = c
            .lock("rt", Some(LockOptions::new().with_lease(lease)))
            .await
            .expect("lock");
        let key = String::from_utf8(resp.key().to_vec()).expect("utf8 key");
        assert_eq!(key, lease_key("rt", lease));
        let header_rev = resp.header().expect("header").revision();
        let got = c.get(key.as_str(), None).await.expect("get lock key");
        let kv = &got.kvs()[0];
        assert_eq!(kv.lease(), lease);
        assert_eq!(kv.value(), b"");
        assert_eq!(
            kv.create_revision(),
            header_rev,
            "header is the acquiring revision"
        );

        // Locking again on the same lease is re-entrant: same key, no second key.
        let again = c
            .lock("rt", Some(LockOptions::new().with_lease(lease)))
            .await
            .expect("relock");
        assert_eq!(again.key(), key.as_bytes());
        assert_eq!(keys_under(&mut c, "rt/").await, vec![key.clone()]);

        let un = c.unlock(key.as_str()).await.expect("unlock");
        assert!(un.header().expect("header").revision() > header_rev);
        assert!(keys_under(&mut c, "rt/").await.is_empty());

        // Without a lease, etcd's session grants one of 60 seconds for the lock.
        let resp = c.lock("rt", None).await.expect("lock without lease");
        let key = String::from_utf8(resp.key().to_vec()).expect("utf8 key");
        let got = c.get(key.as_str(), None).await.expect("get lock key");
        let lease = got.kvs()[0].lease();
        assert_ne!(lease, 0);
        assert_eq!(key, lease_key("rt", lease));
        let ttl = c.lease_time_to_live(lease, None).await.expect("ttl");
        assert_eq!(ttl.granted_ttl(), 60);
        c.unlock(key.as_str()).await.expect("unlock");
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_is_mutually_exclusive() {
    const CLIENTS: usize = 5;
    const ROUNDS: usize = 3;
    let m = Member::start().await;
    bounded(async {
        let holders = Arc::new(AtomicUsize::new(0));
        let overlapped = Arc::new(AtomicBool::new(false));
        let acquisitions = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let mut c = m.client().await;
            let (holders, overlapped, acquisitions) =
                (holders.clone(), overlapped.clone(), acquisitions.clone());
            tasks.push(tokio::spawn(async move {
                let lease = grant(&mut c).await;
                for _ in 0..ROUNDS {
                    let lock = c
                        .lock("mutex", Some(LockOptions::new().with_lease(lease)))
                        .await
                        .expect("lock");
                    if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlapped.store(true, Ordering::SeqCst);
                    }
                    acquisitions.fetch_add(1, Ordering::SeqCst);
                    // Read-modify-write of a shared counter, in several round trips so the
                    // critical section lasts a while.
                    let got = c.get("counter", None).await.expect("get counter");
                    let n: usize = got
                        .kvs()
                        .first()
                        .map(|kv| kv.value_str().expect("utf8").parse().expect("number"))
                        .unwrap_or(0);
                    tokio::task::yield_now().await;
                    c.put("scratch", format!("client {i}"), None)
                        .await
                        .expect("put scratch");
                    c.put("counter", (n + 1).to_string(), None)
                        .await
                        .expect("put counter");
                    if holders.fetch_sub(1, Ordering::SeqCst) != 1 {
                        overlapped.store(true, Ordering::SeqCst);
                    }
                    c.unlock(lock.key()).await.expect("unlock");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut c = m.client().await;
        let got = c.get("counter", None).await.expect("get counter");
        let count: usize = got.kvs()[0]
            .value_str()
            .expect("utf8")
            .parse()
            .expect("number");
        assert!(
            !overlapped.load(Ordering::SeqCst),
            "two clients held the lock at once"
        );
        assert_eq!(acquisitions.load(Ordering::SeqCst), CLIENTS * ROUNDS);
        assert_eq!(count, CLIENTS * ROUNDS);
        assert!(keys_under(&mut c, "mutex/").await.is_empty());
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_with_missing_lease_fails() {
    let m = Member::start().await;
    bounded(async {
        let mut c = m.client().await;
        // Never granted.
        let err = c
            .lock("nolease", Some(LockOptions::new().with_lease(0x1234_5678)))
            .await
            .expect_err("lock on a lease that does not exist");
        let s = status(err);
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "etcdserver: requested lease not found");

        // Granted, then revoked.
        let lease = grant(&mut c).await;
        c.lease_revoke(lease).await.expect("revoke");
        let err = c
            .lock("nolease", Some(LockOptions::new().with_lease(lease)))
            .await
            .expect_err("lock on a revoked lease");
        let s = status(err);
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
        assert!(keys_under(&mut c, "nolease/").await.is_empty());

        // The same for a campaign.
        let err = c
            .campaign("nolease-election", "v", lease)
            .await
            .expect_err("campaign on a revoked lease");
        let s = status(err);
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiter_acquires_when_holder_lease_is_revoked() {
    let m = Member::start().await;
    bounded(async {
        let mut a = m.client().await;
        let mut b = m.client().await;
        let lease_a = grant(&mut a).await;
        let lease_b = grant(&mut b).await;
        a.lock("w", Some(LockOptions::new().with_lease(lease_a)))
            .await
            .expect("first lock");

        let waiter = tokio::spawn(async move {
            b.lock("w", Some(LockOptions::new().with_lease(lease_b)))
                .await
                .expect("second lock")
        });
        let mut c = m.client().await;
        wait_until("the second locker is queued", || {
            let mut c = c.clone();
            async move { keys_under(&mut c, "w/").await.len() == 2 }
        })
        .await;
        assert!(
            !waiter.is_finished(),
            "the second locker must wait for the first"
        );

        let revoked = a
            .lease_revoke(lease_a)
            .await
            .expect("revoke holder's lease");
        let revoke_rev = revoked.header().expect("header").revision();
        let resp = waiter.await.expect("waiter task");
        assert_eq!(resp.key(), lease_key("w", lease_b).as_bytes());
        assert!(resp.header().expect("header").revision() >= revoke_rev);
        assert_eq!(
            keys_under(&mut c, "w/").await,
            vec![lease_key("w", lease_b)]
        );
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_waiters_leave_no_keys() {
    let m = Member::start().await;
    bounded(async {
        let mut c = m.client().await;
        let lease_a = grant(&mut c).await;
        let lease_b = grant(&mut c).await;
        let lock = c
            .lock("cancel", Some(LockOptions::new().with_lease(lease_a)))
            .await
            .expect("lock");

        // A second locker waits, then its client goes away.
        let mut b = m.client().await;
        let waiter = tokio::spawn(async move {
            let _ = b
                .lock("cancel", Some(LockOptions::new().with_lease(lease_b)))
                .await;
        });
        wait_until("the second locker is queued", || {
            let mut c = c.clone();
            async move { keys_under(&mut c, "cancel/").await.len() == 2 }
        })
        .await;
        waiter.abort();
        wait_until("the abandoned locker's key is gone", || {
            let mut c = c.clone();
            async move { keys_under(&mut c, "cancel/").await.len() == 1 }
        })
        .await;
        assert_eq!(
            keys_under(&mut c, "cancel/").await,
            vec![lease_key("cancel", lease_a)]
        );
        c.unlock(lock.key()).await.expect("unlock");

        // The same for a candidate waiting in an election.
        c.campaign("cancel-e", "a", lease_a)
            .await
            .expect("campaign");
        let mut b = m.client().await;
        let candidate = tokio::spawn(async move {
            let _ = b.campaign("cancel-e", "b", lease_b).await;
        });
        wait_until("the second candidate is queued", || {
            let mut c = c.clone();
            async move { keys_under(&mut c, "cancel-e/").await.len() == 2 }
        })
        .await;
        candidate.abort();
        wait_until("the abandoned candidate's key is gone", || {
            let mut c = c.clone();
            async move { keys_under(&mut c, "cancel-e/").await.len() == 1 }
        })
        .await;
        assert_eq!(
            keys_under(&mut c, "cancel-e/").await,
            vec![lease_key("cancel-e", lease_a)]
        );
    })
    .await;
    m.stop().await;
}

/// The next observed leader record, as (key, value).
async fn next_observed(s: &mut etcd_client::ObserveStream) -> (String, String) {
    let msg = tokio::time::timeout(WAIT, s.message())
        .await
        .expect("observe: timed out")
        .expect("observe: stream failed")
        .expect("observe: stream ended");
    assert!(msg.header().is_some());
    let kv = msg.kv().expect("observe: no kv");
    (
        String::from_utf8_lossy(kv.key()).into_owned(),
        String::from_utf8_lossy(kv.value()).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn election_campaign_proclaim_observe_resign() {
    let m = Member::start().await;
    bounded(async {
        let mut c1 = m.client().await;
        let mut c2 = m.client().await;
        let mut obs = m.client().await;
        let l1 = grant(&mut c1).await;
        let l2 = grant(&mut c2).await;
        let k1 = lease_key("e", l1);
        let k2 = lease_key("e", l2);

        // No leader yet.
        let s = status(
            obs.leader("e")
                .await
                .expect_err("leader of an empty election"),
        );
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "election: no leader");

        // An observer started before anyone campaigns sees the first leader.
        let mut early = obs.observe("e").await.expect("observe");

        let won = c1.campaign("e", "v1", l1).await.expect("campaign 1");
        let leader1: LeaderKey = won.leader().expect("leader key").clone();
        assert_eq!(leader1.name(), b"e");
        assert_eq!(leader1.key(), k1.as_bytes());
        assert_eq!(leader1.lease(), l1);
        assert_eq!(leader1.rev(), won.header().expect("header").revision());

        let lead = obs.leader("e").await.expect("leader");
        let kv = lead.kv().expect("leader kv");
        assert_eq!((kv.key(), kv.value()), (k1.as_bytes(), &b"v1"[..]));
        assert_eq!(kv.create_revision(), leader1.rev());

        // An observer started now sees the current leader first.
        let mut late = obs.observe("e").await.expect("observe");
        assert_eq!(
            next_observed(&mut late).await,
            (k1.clone(), "v1".to_string())
        );
        drop(late);

        // The second candidate waits behind the first.
        let campaign2 = tokio::spawn(async move {
            let won = c2.campaign("e", "v2", l2).await.expect("campaign 2");
            (c2, won)
        });
        wait_until("the second candidate is queued", || {
            let mut obs = obs.clone();
            async move { keys_under(&mut obs, "e/").await.len() == 2 }
        })
        .await;
        assert!(!campaign2.is_finished(), "the second candidate must wait");

        c1.proclaim(
            "v1b",
            Some(ProclaimOptions::new().with_leader(leader1.clone())),
        )
        .await
        .expect("proclaim by the leader");
        let lead = obs.leader("e").await.expect("leader");
        assert_eq!(lead.kv().expect("kv").value(), b"v1b");

        c1.resign(Some(ResignOptions::new().with_leader(leader1.clone())))
            .await
            .expect("resign");
        let (mut c2, won2) = campaign2.await.expect("campaign 2 task");
        let leader2: LeaderKey = won2.leader().expect("leader key").clone();
        assert_eq!(leader2.key(), k2.as_bytes());
        assert_eq!(leader2.lease(), l2);
        assert!(leader2.rev() > leader1.rev());
        let lead = obs.leader("e").await.expect("leader");
        assert_eq!(lead.kv().expect("kv").value(), b"v2");

        // The resigned leader cannot proclaim any more.
        let s = status(
            c1.proclaim(
                "stale",
                Some(ProclaimOptions::new().with_leader(leader1.clone())),
            )
            .await
            .expect_err("proclaim by a resigned leader"),
        );
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "election: not leader");
        assert_eq!(
            obs.leader("e")
                .await
                .expect("leader")
                .kv()
                .expect("kv")
                .value(),
            b"v2"
        );

        c2.proclaim(
            "v2b",
            Some(ProclaimOptions::new().with_leader(leader2.clone())),
        )
        .await
        .expect("proclaim by the new leader");

        // The early observer saw every leader and value, in order.
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(next_observed(&mut early).await);
        }
        assert_eq!(
            seen,
            vec![
                (k1.clone(), "v1".to_string()),
                (k1.clone(), "v1b".to_string()),
                (k2.clone(), "v2".to_string()),
                (k2.clone(), "v2b".to_string()),
            ]
        );

        c2.resign(Some(ResignOptions::new().with_leader(leader2.clone())))
            .await
            .expect("resign 2");
        let s = status(
            obs.leader("e")
                .await
                .expect_err("no leader after both resigned"),
        );
        assert_eq!(s.message(), "election: no leader");
        // Resigning again (not leading) is no error, as in etcd.
        c2.resign(Some(ResignOptions::new().with_leader(leader2)))
            .await
            .expect("resign again");
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proclaim_by_non_leader_fails() {
    let m = Member::start().await;
    bounded(async {
        let mut c = m.client().await;
        let l1 = grant(&mut c).await;
        let l2 = grant(&mut c).await;
        let won = c.campaign("p", "a", l1).await.expect("campaign");
        let leader = won.leader().expect("leader key").clone();

        // A key that was never a candidate.
        let bogus = LeaderKey::new()
            .with_name("p")
            .with_key(lease_key("p", l2))
            .with_rev(leader.rev())
            .with_lease(l2);
        let s = status(
            c.proclaim("x", Some(ProclaimOptions::new().with_leader(bogus)))
                .await
                .expect_err("proclaim by a non-candidate"),
        );
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "election: not leader");

        // The leader's key with the wrong revision (a stale incarnation).
        let stale = leader.clone().with_rev(leader.rev() - 1);
        let s = status(
            c.proclaim("x", Some(ProclaimOptions::new().with_leader(stale)))
                .await
                .expect_err("proclaim with a stale revision"),
        );
        assert_eq!(s.message(), "election: not leader");
        assert!(keys_under(&mut c, "p/").await == vec![lease_key("p", l1)]);
        assert_eq!(
            c.leader("p")
                .await
                .expect("leader")
                .kv()
                .expect("kv")
                .value(),
            b"a"
        );

        // No leader key at all.
        let s = status(
            c.proclaim("x", None)
                .await
                .expect_err("proclaim without a leader key"),
        );
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "\"leader\" field must be provided");
    })
    .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_end_when_the_member_stops() {
    let m = Member::start().await;
    bounded(async {
        let mut c = m.client().await;
        let lease_a = grant(&mut c).await;
        let lease_b = grant(&mut c).await;
        c.lock("stop", Some(LockOptions::new().with_lease(lease_a)))
            .await
            .expect("lock");
        c.campaign("stop-e", "a", lease_a).await.expect("campaign");

        let mut b = m.client().await;
        let locker = tokio::spawn(async move {
            b.lock("stop", Some(LockOptions::new().with_lease(lease_b)))
                .await
        });
        let mut b = m.client().await;
        let candidate = tokio::spawn(async move { b.campaign("stop-e", "b", lease_b).await });
        let mut o = m.client().await;
        let mut observer = o.observe("stop-e").await.expect("observe");
        assert_eq!(
            next_observed(&mut observer).await,
            (lease_key("stop-e", lease_a), "a".to_string())
        );
        wait_until("both waiters are queued", || {
            let mut c = c.clone();
            async move {
                keys_under(&mut c, "stop/").await.len() == 2
                    && keys_under(&mut c, "stop-e/").await.len() == 2
            }
        })
        .await;

        m.running.node.shutdown().await;
        let err = locker
            .await
            .expect("locker task")
            .expect_err("lock after shutdown");
        assert!(
            matches!(err, Error::GRpcStatus(ref s) if s.code() == Code::Unavailable),
            "{err:?}"
        );
        let err = candidate
            .await
            .expect("candidate task")
            .expect_err("campaign after shutdown");
        assert!(
            matches!(err, Error::GRpcStatus(ref s) if s.code() == Code::Unavailable),
            "{err:?}"
        );
        let end = tokio::time::timeout(WAIT, observer.message())
            .await
            .expect("observe did not end");
        assert!(
            matches!(end, Err(Error::GRpcStatus(ref s)) if s.code() == Code::Unavailable),
            "{end:?}"
        );
    })
    .await;
}
