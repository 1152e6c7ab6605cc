//! A three-member keelson cluster (three `keelson store` processes on
//! loopback) exercised with the `etcd-client` crate, one client per member:
//! KV, Txn, Watch, Lease, Cluster and Maintenance behave as a single etcd
//! cluster would, whichever member a request goes to.
//!
//! Every test starts its own cluster, bounds its body with a timeout, and
//! kills the processes on drop (printing their logs if the test failed).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{free_port, poll_for, KeelsonCluster};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, LeaseTimeToLiveOptions,
    MemberAddOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchResponse,
    WatchStream,
};
use sha2::{Digest, Sha256};

/// Whole-test bound (cluster start included).
const LIMIT: Duration = Duration::from_secs(60);
/// Bound for the cluster to elect a leader that every member knows.
const READY: Duration = Duration::from_secs(30);
/// Bound for one expected watch message.
const WATCH_WAIT: Duration = Duration::from_secs(10);

fn three_members() -> KeelsonCluster {
    KeelsonCluster::start(
        env!("CARGO_BIN_EXE_keelson"),
        &["a", "b", "c"],
        &["--heartbeat-interval", "50", "--election-timeout", "500"],
    )
}

/// The two members that are not `leader`.
fn followers(leader: usize) -> (usize, usize) {
    let f: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    (f[0], f[1])
}

fn grpc(e: &etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}

#[track_caller]
fn assert_grpc_error<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: tonic::Code,
    message: &str,
) {
    let e = result.expect_err("the request should have failed");
    let (got_code, got_message) = grpc(&e);
    assert_eq!(got_code, code, "wrong code for {got_message:?}");
    assert!(
        got_message.contains(message),
        "message {got_message:?} should contain {message:?}"
    );
}

async fn value_of(client: &mut Client, key: &str) -> Option<String> {
    let resp = client.get(key, None).await.expect("get");
    resp.kvs()
        .first()
        .map(|kv| kv.value_str().expect("utf-8 value").to_string())
}

fn rev_of<H>(header: Option<&etcd_client::ResponseHeader>, what: H) -> i64
where
    H: std::fmt::Display,
{
    header
        .unwrap_or_else(|| panic!("{what}: response without header"))
        .revision()
}

/// The next watch response, bounded by [`WATCH_WAIT`].
async fn next_watch(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WATCH_WAIT, stream.message())
        .await
        .expect("timed out waiting for a watch response")
        .expect("watch stream error")
        .expect("watch stream ended")
}

/// Reads watch responses until `n` events have arrived.
async fn watch_events(stream: &mut WatchStream, n: usize) -> Vec<etcd_client::Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let resp = next_watch(stream).await;
        assert!(
            !resp.canceled(),
            "watch canceled: {:?} (compact revision {})",
            resp.cancel_reason(),
            resp.compact_revision()
        );
        events.extend(resp.events().iter().cloned());
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

fn kv_str(kv: Option<&etcd_client::KeyValue>) -> Option<(String, String)> {
    kv.map(|kv| {
        (
            kv.key_str().expect("utf-8 key").to_string(),
            kv.value_str().expect("utf-8 value").to_string(),
        )
    })
}

// ---------------------------------------------------------------------------
// KV and Txn
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_and_txn_through_every_member() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, kv_and_txn_body(&mut c))
        .await
        .expect("test timed out");
}

async fn kv_and_txn_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (f1, f2) = followers(leader);
    let mut cl = c.clients().await;

    // put / get / delete, with revisions and versions, through different members.
    let r1 = rev_of(
        cl[f1].put("kv/a", "1", None).await.expect("put").header(),
        "put",
    );
    let got = cl[f2].get("kv/a", None).await.expect("get");
    assert_eq!(got.kvs().len(), 1, "{got:?}");
    let kv = &got.kvs()[0];
    assert_eq!(kv.value(), b"1");
    assert_eq!(kv.create_revision(), r1);
    assert_eq!(kv.mod_revision(), r1);
    assert_eq!(kv.version(), 1);
    assert!(rev_of(got.header(), "get") >= r1);

    let put2 = cl[leader]
        .put("kv/a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put with prev_kv");
    let r2 = rev_of(put2.header(), "put");
    assert_eq!(r2, r1 + 1, "one write, one revision");
    let prev = put2.prev_key().expect("prev_kv requested");
    assert_eq!(prev.value(), b"1");
    assert_eq!(prev.mod_revision(), r1);

    let got = cl[f1].get("kv/a", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"2"[..], r1, r2, 2)
    );
    // The old revision is still readable, from another member.
    let old = cl[f2]
        .get("kv/a", Some(GetOptions::new().with_revision(r1)))
        .await
        .expect("get at revision");
    assert_eq!(old.kvs()[0].value(), b"1");

    let del = cl[f2]
        .delete("kv/a", Some(DeleteOptions::new().with_prev_key()))
        .await
        .expect("delete");
    assert_eq!(del.deleted(), 1);
    assert_eq!(del.prev_kvs()[0].value(), b"2");
    assert_eq!(rev_of(del.header(), "delete"), r2 + 1);
    let gone = cl[f1].get("kv/a", None).await.expect("get");
    assert!(gone.kvs().is_empty(), "{gone:?}");
    assert_eq!(gone.count(), 0);
    let del = cl[leader].delete("kv/a", None).await.expect("delete");
    assert_eq!(del.deleted(), 0, "deleting a missing key deletes nothing");

    // Prefix ranges, limit, more and count.
    for i in 0..5 {
        cl[i % 3]
            .put(format!("kv/p/{i}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    cl[leader].put("kv/q", "outside", None).await.expect("put");
    for (i, client) in cl.iter_mut().enumerate() {
        let all = client
            .get("kv/p/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("prefix get");
        let keys: Vec<&str> = all.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(
            keys,
            ["kv/p/0", "kv/p/1", "kv/p/2", "kv/p/3", "kv/p/4"],
            "member {i}"
        );
        assert_eq!(all.count(), 5);
        assert!(!all.more());

        let page = client
            .get("kv/p/", Some(GetOptions::new().with_prefix().with_limit(2)))
            .await
            .expect("limited get");
        assert_eq!(page.kvs().len(), 2, "member {i}");
        assert_eq!(page.kvs()[0].key(), b"kv/p/0");
        assert!(page.more(), "member {i}: more must be set");
        assert_eq!(page.count(), 5, "member {i}: count ignores the limit");

        let counted = client
            .get(
                "kv/p/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .expect("count-only get");
        assert!(counted.kvs().is_empty());
        assert_eq!(counted.count(), 5);
    }

    // Read-your-writes across members: a put through one follower is seen
    // by a linearizable get through the other follower right after it returns.
    for i in 0..30 {
        let (writer, reader) = if i % 2 == 0 { (f1, f2) } else { (f2, f1) };
        let value = format!("ryw-{i}");
        cl[writer]
            .put("kv/ryw", value.clone(), None)
            .await
            .expect("put");
        assert_eq!(
            value_of(&mut cl[reader], "kv/ryw").await.as_deref(),
            Some(value.as_str()),
            "iteration {i}: linearizable get through member {reader} after a put through member {writer}"
        );
    }

    // A serializable get on the leader sees a write acknowledged by a follower.
    cl[f1].put("kv/ser", "s", None).await.expect("put");
    let ser = cl[leader]
        .get("kv/ser", Some(GetOptions::new().with_serializable()))
        .await
        .expect("serializable get");
    assert_eq!(
        ser.kvs().len(),
        1,
        "serializable get on the leader: {ser:?}"
    );
    assert_eq!(ser.kvs()[0].value(), b"s");

    // Txn: every kind of compare, both branches.
    let rc = rev_of(
        cl[f2].put("tx/k", "v", None).await.expect("put").header(),
        "put",
    );
    let rm = rev_of(
        cl[f1].put("tx/k", "v", None).await.expect("put").header(),
        "put",
    );
    let all_true = vec![
        Compare::value("tx/k", CompareOp::Equal, "v"),
        Compare::version("tx/k", CompareOp::Equal, 2),
        Compare::create_revision("tx/k", CompareOp::Equal, rc),
        Compare::mod_revision("tx/k", CompareOp::Equal, rm),
        Compare::mod_revision("tx/k", CompareOp::Greater, rc),
        Compare::version("tx/k", CompareOp::Less, 3),
        Compare::value("tx/k", CompareOp::NotEqual, "w"),
    ];
    let txn = Txn::new()
        .when(all_true.clone())
        .and_then(vec![
            TxnOp::put("tx/then", "yes", None),
            TxnOp::get("tx/k", None),
        ])
        .or_else(vec![TxnOp::put("tx/else", "yes", None)]);
    let resp = cl[f2].txn(txn).await.expect("txn");
    assert!(resp.succeeded(), "all compares hold");
    let ops = resp.op_responses();
    assert_eq!(ops.len(), 2);
    match &ops[1] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"v"),
        other => panic!("expected a get response, got {other:?}"),
    }
    assert_eq!(
        value_of(&mut cl[f1], "tx/then").await.as_deref(),
        Some("yes")
    );
    assert_eq!(value_of(&mut cl[leader], "tx/else").await, None);

    // Each compare, made false on its own, takes the else branch.
    let falsified = [
        Compare::value("tx/k", CompareOp::Equal, "other"),
        Compare::version("tx/k", CompareOp::Equal, 1),
        Compare::create_revision("tx/k", CompareOp::Equal, rm),
        Compare::mod_revision("tx/k", CompareOp::Less, rm),
    ];
    for (n, wrong) in falsified.into_iter().enumerate() {
        let mut compares = all_true.clone();
        compares.push(wrong);
        let else_key = format!("tx/else/{n}");
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![TxnOp::put(format!("tx/then/{n}"), "yes", None)])
            .or_else(vec![
                TxnOp::put(else_key.clone(), "yes", None),
                TxnOp::get("tx/k", None),
            ]);
        let resp = cl[n % 3].txn(txn).await.expect("txn");
        assert!(!resp.succeeded(), "compare #{n} is false");
        match &resp.op_responses()[1] {
            TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].version(), 2),
            other => panic!("expected a get response, got {other:?}"),
        }
        assert_eq!(
            value_of(&mut cl[(n + 1) % 3], &else_key).await.as_deref(),
            Some("yes")
        );
        assert_eq!(
            value_of(&mut cl[(n + 2) % 3], &format!("tx/then/{n}")).await,
            None
        );
    }
    // A txn on a missing key: create_revision 0 compares equal to 0.
    let txn = Txn::new()
        .when(vec![Compare::create_revision(
            "tx/missing",
            CompareOp::Equal,
            0,
        )])
        .and_then(vec![TxnOp::put("tx/missing", "created", None)]);
    assert!(cl[f1].txn(txn).await.expect("txn").succeeded());
    assert_eq!(
        value_of(&mut cl[f2], "tx/missing").await.as_deref(),
        Some("created")
    );
}

/// etcd answers a write only after the member that received it has applied
/// it, so a serializable read on that same member sees the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_read_on_the_proposing_follower_sees_its_write() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, async {
        let leader = c.wait_ready(READY).await;
        let (f1, _) = followers(leader);
        let mut client = c.client(f1).await;
        for i in 0..50 {
            let value = format!("v{i}");
            let rev = rev_of(
                client
                    .put("own/k", value.clone(), None)
                    .await
                    .expect("put")
                    .header(),
                "put",
            );
            let got = client
                .get("own/k", Some(GetOptions::new().with_serializable()))
                .await
                .expect("serializable get");
            let seen = got
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision()));
            assert_eq!(
                seen,
                Some((value.into_bytes(), rev)),
                "iteration {i}: serializable get on the follower that proposed the put \
                 (header revision {})",
                rev_of(got.header(), "get")
            );
        }
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_across_members_history_and_compaction() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, watch_body(&mut c))
        .await
        .expect("test timed out");
}

async fn watch_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (a, b) = followers(leader);
    let mut cl = c.clients().await;

    // A watcher on member A sees writes made through members B and the leader.
    let mut watch = cl[a]
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("watch");
    let created = next_watch(&mut watch).await;
    assert!(
        created.created(),
        "first response confirms creation: {created:?}"
    );

    let r1 = rev_of(cl[b].put("w/k", "v1", None).await.unwrap().header(), "put");
    let r2 = rev_of(
        cl[leader].put("w/k", "v2", None).await.unwrap().header(),
        "put",
    );
    let r3 = rev_of(cl[b].delete("w/k", None).await.unwrap().header(), "delete");
    let events = watch_events(&mut watch, 3).await;
    assert_eq!(events[0].event_type(), EventType::Put);
    assert_eq!(kv_str(events[0].kv()), Some(("w/k".into(), "v1".into())));
    assert_eq!(events[0].kv().unwrap().mod_revision(), r1);
    assert_eq!(events[0].kv().unwrap().version(), 1);
    assert!(events[0].prev_kv().is_none(), "a creation has no prev_kv");
    assert_eq!(events[1].event_type(), EventType::Put);
    assert_eq!(kv_str(events[1].kv()), Some(("w/k".into(), "v2".into())));
    assert_eq!(events[1].kv().unwrap().mod_revision(), r2);
    assert_eq!(
        kv_str(events[1].prev_kv()),
        Some(("w/k".into(), "v1".into()))
    );
    assert_eq!(events[2].event_type(), EventType::Delete);
    assert_eq!(events[2].kv().unwrap().key(), b"w/k");
    assert_eq!(events[2].kv().unwrap().mod_revision(), r3);
    assert_eq!(
        kv_str(events[2].prev_kv()),
        Some(("w/k".into(), "v2".into()))
    );

    // A watch from an old revision, on the third member, replays the history.
    let mut replay = cl[leader]
        .watch("w/k", Some(WatchOptions::new().with_start_revision(r1)))
        .await
        .expect("watch from revision");
    let created = next_watch(&mut replay).await;
    assert!(created.created(), "{created:?}");
    let mut events = Vec::new();
    if !created.events().is_empty() {
        events.extend(created.events().iter().cloned());
    }
    events.extend(watch_events(&mut replay, 3 - events.len()).await);
    let seen: Vec<(EventType, i64)> = events
        .iter()
        .map(|e| (e.event_type(), e.kv().unwrap().mod_revision()))
        .collect();
    assert_eq!(
        seen,
        [
            (EventType::Put, r1),
            (EventType::Put, r2),
            (EventType::Delete, r3)
        ]
    );
    // ...and then keeps following new writes.
    let r4 = rev_of(cl[a].put("w/k", "v4", None).await.unwrap().header(), "put");
    let more = watch_events(&mut replay, 1).await;
    assert_eq!(more[0].kv().unwrap().mod_revision(), r4);

    // Compact at r3 (through a follower), then watch from r1 < r3 on member B.
    cl[a].compact(r3, None).await.expect("compact");
    // Make sure B has applied the compaction: a linearizable read through B.
    cl[b].get("w/k", None).await.expect("get");
    let mut compacted = cl[b]
        .watch("w/k", Some(WatchOptions::new().with_start_revision(r1)))
        .await
        .expect("watch from a compacted revision");
    let mut responses = Vec::new();
    loop {
        let resp = next_watch(&mut compacted).await;
        assert!(
            resp.events().is_empty(),
            "no events from a compacted revision: {resp:?}"
        );
        let done = resp.canceled() || resp.compact_revision() != 0;
        responses.push(resp);
        if done || responses.len() > 3 {
            break;
        }
    }
    let last = responses.last().unwrap();
    assert!(
        last.canceled() && last.compact_revision() == r3,
        "expected a canceled response with compact_revision {r3}, got {responses:?}"
    );
    // A watch from the compaction revision itself is not compacted (the
    // tombstone at r3 itself may have been compacted away, as in etcd).
    let mut at_compaction = cl[b]
        .watch("w/k", Some(WatchOptions::new().with_start_revision(r3)))
        .await
        .expect("watch");
    let mut seen = Vec::new();
    while !seen.contains(&r4) {
        let resp = next_watch(&mut at_compaction).await;
        assert!(!resp.canceled(), "{resp:?}");
        seen.extend(resp.events().iter().map(|e| e.kv().unwrap().mod_revision()));
    }
    assert!(
        seen.iter().all(|r| *r >= r3) && seen.last() == Some(&r4),
        "events from revision {r3}: {seen:?}"
    );
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_across_members() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, leases_body(&mut c))
        .await
        .expect("test timed out");
}

async fn leases_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (f1, f2) = followers(leader);
    let mut cl = c.clients().await;

    // Grant through a follower; attach keys through the others.
    let grant = cl[f1].lease_grant(30, None).await.expect("lease grant");
    let id = grant.id();
    assert!(id > 0, "{grant:?}");
    assert_eq!(grant.ttl(), 30);
    cl[f2]
        .put("l/k1", "x", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with lease");
    cl[leader]
        .put("l/k2", "y", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with lease");
    let got = cl[f1].get("l/k1", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), id);

    // Keep-alive through a follower. (That this works right after the grant
    // is checked by `keep_alive_right_after_a_grant_through_a_follower`; here
    // it may take the leader a moment to start the lease's clock.)
    let (mut keeper, mut responses) = poll_for(
        Duration::from_secs(5),
        "keep-alive through a follower finds the lease",
        || {
            let mut client = cl[f2].clone();
            async move {
                match client.lease_keep_alive(id).await {
                    Ok(pair) => Ok(Some(pair)),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await;
    assert_eq!(keeper.id(), id);
    keeper.keep_alive().await.expect("send keep-alive");
    let renewed = tokio::time::timeout(WATCH_WAIT, responses.message())
        .await
        .expect("keep-alive response timed out")
        .expect("keep-alive stream error")
        .expect("keep-alive stream ended");
    assert_eq!(renewed.id(), id);
    assert_eq!(renewed.ttl(), 30, "a renewal restores the granted TTL");

    // Time-to-live, with keys, through each member.
    for (i, client) in cl.iter_mut().enumerate() {
        let ttl = client
            .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .expect("time to live");
        assert_eq!(ttl.id(), id);
        assert_eq!(ttl.granted_ttl(), 30, "member {i}");
        assert!(
            ttl.ttl() > 20 && ttl.ttl() <= 30,
            "member {i}: remaining TTL {}",
            ttl.ttl()
        );
        let keys: BTreeSet<&[u8]> = ttl.keys().iter().map(Vec::as_slice).collect();
        assert_eq!(
            keys,
            BTreeSet::from([&b"l/k1"[..], &b"l/k2"[..]]),
            "member {i}"
        );
    }

    // The lease is listed by the member that granted it, and by every member
    // once it has applied the grant.
    let listed = cl[f1].leases().await.expect("leases");
    assert!(
        listed.leases().iter().any(|l| l.id() == id),
        "the granting member lists the lease: {listed:?}"
    );
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        poll_for(
            Duration::from_secs(10),
            &format!("member {i} lists lease {id:x}"),
            || {
                let mut client = client.clone();
                async move {
                    let listed = client.leases().await?;
                    Ok::<_, etcd_client::Error>(
                        listed.leases().iter().any(|l| l.id() == id).then_some(()),
                    )
                }
            },
        )
        .await;
    }

    // Revoking (through a follower) deletes the attached keys everywhere.
    cl[f2].lease_revoke(id).await.expect("revoke");
    for (i, client) in cl.iter_mut().enumerate() {
        let got = client
            .get("l/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        assert!(
            got.kvs().is_empty(),
            "member {i} still has keys of a revoked lease: {got:?}"
        );
        let ttl = client
            .lease_time_to_live(id, None)
            .await
            .expect("time to live of a revoked lease");
        assert_eq!(ttl.ttl(), -1, "member {i}: a revoked lease has TTL -1");
        let listed = client.leases().await.expect("leases");
        assert!(
            listed.leases().iter().all(|l| l.id() != id),
            "member {i} still lists the revoked lease"
        );
    }
    assert_grpc_error(
        cl[f1]
            .put("l/k3", "z", Some(PutOptions::new().with_lease(id)))
            .await,
        tonic::Code::NotFound,
        "requested lease not found",
    );

    // A lease that is not kept alive expires, and its key disappears everywhere.
    let short = cl[f2].lease_grant(2, None).await.expect("lease grant");
    cl[f1]
        .put(
            "l/expiring",
            "soon gone",
            Some(PutOptions::new().with_lease(short.id())),
        )
        .await
        .expect("put with lease");
    assert!(value_of(&mut cl[leader], "l/expiring").await.is_some());
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        poll_for(
            Duration::from_secs(15),
            &format!("the key of an expired lease disappears from member {i}"),
            || {
                let mut client = client.clone();
                async move {
                    let got = client.get("l/expiring", None).await?;
                    Ok::<_, etcd_client::Error>(got.kvs().is_empty().then_some(()))
                }
            },
        )
        .await;
    }
    let ttl = cl[f1]
        .lease_time_to_live(short.id(), None)
        .await
        .expect("time to live of an expired lease");
    assert_eq!(ttl.ttl(), -1, "an expired lease has TTL -1");
}

/// etcd starts a lease's clock on the leader as soon as the grant is
/// applied, wherever it was granted, so a keep-alive right after the grant
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_right_after_a_grant_through_a_follower() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, async {
        let leader = c.wait_ready(READY).await;
        let (f1, f2) = followers(leader);
        let mut cl = c.clients().await;
        for i in 0..10 {
            let (granter, keeper) = if i % 2 == 0 { (f1, f2) } else { (f2, f1) };
            let id = cl[granter]
                .lease_grant(60, None)
                .await
                .expect("lease grant")
                .id();
            if let Err(e) = cl[keeper].lease_keep_alive(id).await {
                panic!(
                    "iteration {i}: keep-alive of lease {id:x} through member {} right after \
                     it was granted through member {} failed: {e:?}",
                    c.member(keeper).name,
                    c.member(granter).name
                );
            }
        }
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_member_list_and_learner_add_remove() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, cluster_body(&mut c))
        .await
        .expect("test timed out");
}

async fn cluster_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (f1, f2) = followers(leader);
    let ids = c.member_ids().await;
    let mut expected: Vec<MemberRow> = (0..3)
        .map(|i| {
            let m = c.member(i);
            (
                ids[i],
                m.name.clone(),
                vec![m.peer_url()],
                vec![m.client_url()],
                false,
            )
        })
        .collect();
    expected.sort();
    let cl = c.clients().await;

    // Every member lists the three started members, with their names and
    // client URLs (published once each member is up), identically.
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        let expected = expected.clone();
        poll_for(
            Duration::from_secs(15),
            &format!("member {i} lists the 3 started members: {expected:?}"),
            || {
                let mut client = client.clone();
                let expected = expected.clone();
                async move {
                    let rows = member_rows(&mut client).await?;
                    Ok::<_, etcd_client::Error>((rows == expected).then_some(()))
                }
            },
        )
        .await;
    }

    // Add a learner through a follower.
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let added = cl[f1]
        .clone()
        .member_add(
            [learner_url.as_str()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("member add (learner)");
    let new = added.member().expect("added member");
    let new_id = new.id();
    assert_ne!(new_id, 0);
    assert!(!ids.contains(&new_id));
    assert!(new.is_learner());
    assert_eq!(new.peer_urls(), std::slice::from_ref(&learner_url));
    // (The member list in the answer is checked by
    // `member_add_and_remove_through_a_follower_answer_the_new_list`.)

    let mut with_learner = expected.clone();
    with_learner.push((
        new_id,
        String::new(),
        vec![learner_url.clone()],
        vec![],
        true,
    ));
    with_learner.sort();
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        let want = with_learner.clone();
        poll_for(
            Duration::from_secs(10),
            &format!("member {i} lists the unstarted learner"),
            || {
                let mut client = client.clone();
                let want = want.clone();
                async move {
                    let rows = member_rows(&mut client).await?;
                    Ok::<_, etcd_client::Error>((rows == want).then_some(()))
                }
            },
        )
        .await;
    }

    // Adding the same peer URL again is refused.
    assert_grpc_error(
        cl[leader]
            .clone()
            .member_add([learner_url.as_str()], None)
            .await,
        tonic::Code::FailedPrecondition,
        "Peer URLs already exists",
    );

    // Remove it through the other follower.
    let removed = cl[f2]
        .clone()
        .member_remove(new_id)
        .await
        .expect("member remove");
    drop(removed);
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        let want = expected.clone();
        poll_for(
            Duration::from_secs(10),
            &format!("member {i} no longer lists the learner"),
            || {
                let mut client = client.clone();
                let want = want.clone();
                async move {
                    let rows = member_rows(&mut client).await?;
                    Ok::<_, etcd_client::Error>((rows == want).then_some(()))
                }
            },
        )
        .await;
    }
    assert_grpc_error(
        cl[f1].clone().member_remove(new_id).await,
        tonic::Code::NotFound,
        "member not found",
    );

    // The cluster still serves writes through every member.
    for (i, client) in cl.iter().enumerate() {
        client
            .clone()
            .put(format!("after-remove/{i}"), "ok", None)
            .await
            .expect("put after member remove");
    }
}

/// etcd answers MemberAdd / MemberRemove only once the member that took the
/// request has applied the change, so the member list in the answer already
/// holds the new member (or no longer holds the removed one) — `etcdctl
/// member add` prints its `ETCD_INITIAL_CLUSTER` from that list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_add_and_remove_through_a_follower_answer_the_new_list() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, async {
        let leader = c.wait_ready(READY).await;
        let (f1, f2) = followers(leader);
        let cl = c.clients().await;
        let mut problems = Vec::new();
        for i in 0..10 {
            let (adder, remover) = if i % 2 == 0 { (f1, f2) } else { (f2, f1) };
            let url = format!("http://127.0.0.1:{}", free_port());
            let added = cl[adder]
                .clone()
                .member_add(
                    [url.as_str()],
                    Some(MemberAddOptions::new().with_is_learner()),
                )
                .await
                .expect("member add (learner)");
            let id = added.member().expect("added member").id();
            let ids: Vec<u64> = added.member_list().iter().map(|m| m.id()).collect();
            if !ids.contains(&id) || ids.len() != 4 {
                problems.push(format!(
                    "round {i}: MemberAdd through follower {} answered a member list without \
                     the new member {id:x}: {ids:x?}",
                    c.member(adder).name
                ));
            }
            let removed = cl[remover]
                .clone()
                .member_remove(id)
                .await
                .expect("member remove");
            let ids: Vec<u64> = removed.members().iter().map(|m| m.id()).collect();
            if ids.contains(&id) || ids.len() != 3 {
                problems.push(format!(
                    "round {i}: MemberRemove through follower {} answered a member list still \
                     holding the removed member {id:x}: {ids:x?}",
                    c.member(remover).name
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_status_hash_snapshot_and_move_leader() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, maintenance_body(&mut c))
        .await
        .expect("test timed out");
}

async fn maintenance_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (f1, f2) = followers(leader);
    let mut cl = c.clients().await;

    // Status from each member: one leader, one cluster, etcd 3.5's version.
    let mut member_ids = Vec::new();
    let mut cluster_ids = BTreeSet::new();
    let mut leaders = BTreeSet::new();
    for (i, client) in cl.iter_mut().enumerate() {
        let status = client.status().await.expect("status");
        assert!(
            status.version().starts_with("3.5."),
            "member {i}: version {:?}",
            status.version()
        );
        let header = status.header().expect("status header");
        member_ids.push(header.member_id());
        cluster_ids.insert(header.cluster_id());
        leaders.insert(status.leader());
        assert!(!status.is_learner());
        assert!(status.db_size() > 0, "member {i}: db size");
        assert!(status.raft_term() > 0);
    }
    assert_eq!(
        leaders.len(),
        1,
        "members disagree on the leader: {leaders:x?}"
    );
    assert_eq!(
        cluster_ids.len(),
        1,
        "members disagree on the cluster: {cluster_ids:x?}"
    );
    let distinct: BTreeSet<u64> = member_ids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "member IDs {member_ids:x?}");
    assert_eq!(leaders.first(), Some(&member_ids[leader]));

    // Writes through every member, then the same hash at the same revision.
    let mut last = 0;
    for i in 0..30 {
        let resp = cl[i % 3]
            .put(format!("m/{i:02}"), format!("value {i}"), None)
            .await
            .expect("put");
        last = last.max(rev_of(resp.header(), "put"));
    }
    cl[f1].delete("m/00", None).await.expect("delete");
    let last = last + 1;
    let mut hashes = Vec::new();
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        let hash = poll_for(
            Duration::from_secs(10),
            &format!("member {i} hashes revision {last}"),
            || {
                let mut client = client.clone();
                async move {
                    match client.hash_kv(last).await {
                        Ok(h) => Ok(Some((h.hash(), h.hash_revision()))),
                        // Not applied there yet.
                        Err(e) if grpc(&e).0 == tonic::Code::OutOfRange => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            },
        )
        .await;
        hashes.push(hash);
    }
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "hash_kv({last}) differs between members: {hashes:?}"
    );
    assert_eq!(hashes[0].1, last);

    // Snapshot from a follower: the stream ends with a sha256 of everything before it.
    let mut stream = cl[f2].snapshot().await.expect("snapshot");
    let mut data = Vec::new();
    let mut last_remaining = None;
    while let Some(msg) = stream.message().await.expect("snapshot stream") {
        data.extend_from_slice(msg.blob());
        last_remaining = Some(msg.remaining_bytes());
    }
    assert_eq!(
        last_remaining,
        Some(0),
        "the last message has 0 remaining bytes"
    );
    assert!(data.len() > 32, "snapshot of {} bytes", data.len());
    assert_eq!(
        data.len() % 512,
        32,
        "snapshot size {} is a 512-byte multiple plus the 32-byte sha256",
        data.len()
    );
    let (body, trailer) = data.split_at(data.len() - 32);
    assert_eq!(
        Sha256::digest(body).as_slice(),
        trailer,
        "the snapshot's trailer is the sha256 of the bytes before it"
    );

    // MoveLeader, sent to the leader, hands leadership to a follower.
    c.wait_published(Duration::from_secs(15)).await;
    let target = member_ids[f1];
    let moved = cl[leader].move_leader(target).await;
    if let Err(e) = &moved {
        panic!(
            "move_leader from {:x} (member {}) to {target:x} (member {}) failed: {e:?}",
            member_ids[leader],
            c.member(leader).name,
            c.member(f1).name
        );
    }
    for (i, client) in cl.iter().enumerate() {
        let client = client.clone();
        poll_for(
            Duration::from_secs(10),
            &format!("member {i} reports {target:x} as the leader after move_leader"),
            || {
                let mut client = client.clone();
                async move {
                    let status = client.status().await?;
                    Ok::<_, etcd_client::Error>((status.leader() == target).then_some(()))
                }
            },
        )
        .await;
    }
    // The new leader serves; the old one refuses to move leadership now.
    cl[f2].put("m/after-move", "ok", None).await.expect("put");
    assert_eq!(
        value_of(&mut cl[leader], "m/after-move").await.as_deref(),
        Some("ok")
    );
    assert_grpc_error(
        cl[leader].move_leader(member_ids[f2]).await,
        tonic::Code::FailedPrecondition,
        "not leader",
    );
}

/// etcd's MoveLeader also works while clients keep writing: the transferee
/// catches up and takes over; writes during the hand-over may fail but the
/// transfer does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_while_writes_continue() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, async {
        let leader = c.wait_ready(READY).await;
        let (f1, f2) = followers(leader);
        c.wait_published(Duration::from_secs(15)).await;
        let ids = c.member_ids().await;
        let cl = c.clients().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Three writers through the other follower, three through the leader.
        let writers: Vec<_> = [f2, f2, f2, leader, leader, leader]
            .into_iter()
            .enumerate()
            .map(|(lane, via)| {
                let mut client = cl[via].clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u32, 0u32);
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        n += 1;
                        let put = client.put(format!("ml/{lane}/{n}"), "x", None);
                        match tokio::time::timeout(Duration::from_secs(5), put).await {
                            Ok(Ok(_)) => ok += 1,
                            _ => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        // Let the writes get going.
        let mut probe = cl[f1].clone();
        poll_for(Duration::from_secs(10), "writes are flowing", || {
            let mut probe = probe.clone();
            async move {
                let got = probe
                    .get(
                        "ml/",
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await?;
                Ok::<_, etcd_client::Error>((got.count() >= 20).then_some(()))
            }
        })
        .await;
        // Three hand-overs in a row, each to a member that is not leading.
        let mut current = leader;
        let mut failure = None;
        for round in 0..3 {
            let next = if round == 0 { f1 } else { (current + 1) % 3 };
            let target = ids[next];
            if let Err(e) = cl[current].clone().move_leader(target).await {
                let written = probe
                    .get(
                        "ml/",
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                    .map(|r| r.count());
                failure = Some(format!(
                    "round {round}: move_leader from {:x} (member {}) to {target:x} (member {}) \
                     during writes failed: {e:?}; keys written so far: {written:?}",
                    ids[current],
                    c.member(current).name,
                    c.member(next).name,
                ));
                break;
            }
            for (i, client) in cl.iter().enumerate() {
                let client = client.clone();
                poll_for(
                    Duration::from_secs(10),
                    &format!("round {round}: member {i} reports {target:x} as the leader"),
                    || {
                        let mut client = client.clone();
                        async move {
                            let status = client.status().await?;
                            Ok::<_, etcd_client::Error>((status.leader() == target).then_some(()))
                        }
                    },
                )
                .await;
            }
            current = next;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for w in writers {
            outcomes.push(w.await.expect("writer"));
        }
        if let Some(failure) = failure {
            panic!("{failure}; writers (ok, failed): {outcomes:?}");
        }
        probe
            .put("ml/after", "ok", None)
            .await
            .expect("put after the move");
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_error_codes_and_messages() {
    let mut c = three_members();
    tokio::time::timeout(LIMIT, errors_body(&mut c))
        .await
        .expect("test timed out");
}

async fn errors_body(c: &mut KeelsonCluster) {
    let leader = c.wait_ready(READY).await;
    let (f1, _) = followers(leader);
    let mut cl = c.clients().await;

    let rev = rev_of(cl[f1].put("e/k", "v", None).await.unwrap().header(), "put");
    for (i, client) in cl.iter_mut().enumerate() {
        assert_grpc_error(
            client
                .get("e/k", Some(GetOptions::new().with_revision(rev + 1000)))
                .await,
            tonic::Code::OutOfRange,
            "required revision is a future revision",
        );
        assert_grpc_error(
            client
                .put("e/leased", "v", Some(PutOptions::new().with_lease(0x7777)))
                .await,
            tonic::Code::NotFound,
            "requested lease not found",
        );
        let dup = Txn::new().and_then(vec![
            TxnOp::put("e/dup", "1", None),
            TxnOp::put("e/dup", "2", None),
        ]);
        assert_grpc_error(
            client.txn(dup).await,
            tonic::Code::InvalidArgument,
            "duplicate key given in txn request",
        );
        assert!(
            value_of(client, "e/dup").await.is_none(),
            "member {i}: a rejected txn wrote nothing"
        );
    }

    // Reads below the compaction revision.
    let rev2 = rev_of(
        cl[leader].put("e/k", "w", None).await.unwrap().header(),
        "put",
    );
    cl[leader].compact(rev2, None).await.expect("compact");
    for client in cl.iter_mut() {
        assert_grpc_error(
            client
                .get("e/k", Some(GetOptions::new().with_revision(rev)))
                .await,
            tonic::Code::OutOfRange,
            "required revision has been compacted",
        );
    }
    assert_grpc_error(
        cl[f1].compact(rev2, None).await,
        tonic::Code::OutOfRange,
        "required revision has been compacted",
    );
}
