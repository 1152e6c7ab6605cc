//! keelson's MVCC semantics pinned against etcd's exact rules, through a single in-process
//! member's Rust API: revisions, key metadata, range conventions, errors and their texts,
//! transactions, leases, HashKV, the NOSPACE alarm and automatic compaction.
//!
//! Every expectation is etcd 3.5's behaviour (server/etcdserver/apply.go, server/mvcc,
//! server/etcdserver/api/v3compactor, server/storage/quota.go); a failing assertion here is
//! a deviation from etcd unless the message says otherwise.

mod support;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb as pb;
use keelson_proto::mvccpb::{event::EventType, Event, KeyValue};
use keelson_store::config::AutoCompaction;
use keelson_store::mvcc::revision::Revision;
use keelson_store::storage::db::{self, CF_KV};
use keelson_store::types::AlarmKind;
use keelson_store::watch::{WatchFilter, WatchMsg};
use keelson_store::{EtcdError, StoreConfig, StoreError, StoreNode};
use pb::compare::{CompareResult as CR, CompareTarget as CT, TargetUnion as TU};
use pb::range_request::{SortOrder, SortTarget};
use pb::request_op::Request as Req;
use pb::response_op::Response as Resp;
use support::*;

const LIMIT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------------------------ helpers

/// A one-member cluster that has elected itself.
async fn single(tweak: impl Fn(&mut StoreConfig)) -> TestCluster {
    let c = TestCluster::start(&["a"], tweak).await;
    c.wait_leader().await;
    c
}

/// The etcd error a call failed with; panics if it succeeded or failed otherwise.
#[track_caller]
fn etcd_err<T: Debug>(r: Result<T, StoreError>, what: &str) -> EtcdError {
    match r {
        Err(StoreError::Etcd(e)) => e,
        other => panic!("{what}: expected an etcd error, got {other:?}"),
    }
}

/// Asserts a call failed with `want`, whose text is etcd's `text`.
#[track_caller]
fn expect_err<T: Debug>(r: Result<T, StoreError>, want: EtcdError, text: &str, what: &str) {
    let e = etcd_err(r, what);
    assert_eq!(e, want, "{what}");
    assert_eq!(e.to_string(), text, "{what}: etcd's error text");
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| s(&kv.key)).collect()
}

fn rng(key: &str, end: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn rng_at(key: &str, end: &str, revision: i64) -> pb::RangeRequest {
    pb::RangeRequest {
        revision,
        ..rng(key, end)
    }
}

fn del(key: &str, end: &str) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn put_lease(k: &str, v: &str, lease: i64) -> pb::PutRequest {
    pb::PutRequest {
        lease,
        ..put_req(k, v)
    }
}

fn put_op(k: &str, v: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Req::RequestPut(put_req(k, v))),
    }
}

fn del_op(k: &str, end: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Req::RequestDeleteRange(del(k, end))),
    }
}

fn range_op(k: &str, end: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Req::RequestRange(rng(k, end))),
    }
}

fn txn_op(t: pb::TxnRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Req::RequestTxn(t)),
    }
}

fn txn(
    compare: Vec<pb::Compare>,
    success: Vec<pb::RequestOp>,
    failure: Vec<pb::RequestOp>,
) -> pb::TxnRequest {
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

fn cmp(key: &str, target: CT, result: CR, value: TU) -> pb::Compare {
    pb::Compare {
        key: key.as_bytes().to_vec(),
        target: target as i32,
        result: result as i32,
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

fn header_rev(h: &Option<pb::ResponseHeader>) -> i64 {
    h.as_ref().expect("response header").revision
}

/// The member's current revision, read linearizably.
async fn rev_of(n: &StoreNode) -> i64 {
    header_rev(&n.range(get_req("\0")).await.expect("range").header)
}

async fn kv(n: &StoreNode, key: &str) -> Option<KeyValue> {
    n.range(get_req(key))
        .await
        .expect("range")
        .kvs
        .into_iter()
        .next()
}

async fn kv_at(n: &StoreNode, key: &str, rev: i64) -> Option<KeyValue> {
    n.range(rng_at(key, "", rev))
        .await
        .expect("historical range")
        .kvs
        .into_iter()
        .next()
}

fn kvrec(key: &str, value: &str, create: i64, modr: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modr,
        version,
        lease,
    }
}

/// The responses of a Txn's taken branch.
fn responses(t: &pb::TxnResponse) -> Vec<&Resp> {
    t.responses
        .iter()
        .map(|r| r.response.as_ref().expect("response op"))
        .collect()
}

/// Events of keys in `[key, end)` from revision `from` on, as a watcher replaying history
/// receives them; waits until at least `want` arrived.
async fn events_from(n: &StoreNode, key: &str, end: &str, from: i64, want: usize) -> Vec<Event> {
    let hub = n.hub();
    let (stream, mut rx) = hub.open_stream();
    let filter = WatchFilter {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        ..Default::default()
    };
    hub.watch(stream, filter, from, false).expect("watch");
    let mut out = Vec::new();
    while out.len() < want {
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("watch events within 10 s")
            .expect("watch stream open");
        match msg {
            WatchMsg::Events { events, .. } => out.extend(events),
            WatchMsg::Progress { .. } => {}
            WatchMsg::Compacted {
                compact_revision, ..
            } => panic!("watch from {from}: compacted at {compact_revision}"),
        }
    }
    hub.close_stream(stream);
    out
}

/// (type, key, mod_revision) of each event.
fn evs(events: &[Event]) -> Vec<(&'static str, String, i64)> {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().expect("event kv");
            let t = if e.r#type == EventType::Put as i32 {
                "PUT"
            } else {
                "DELETE"
            };
            (t, s(&kv.key), kv.mod_revision)
        })
        .collect()
}

fn ev(t: &'static str, k: &str, rev: i64) -> (&'static str, String, i64) {
    (t, k.to_string(), rev)
}

/// Every revision stored in the member's key-value column family, oldest first
/// (white box: what compaction physically left).
fn stored_revisions(n: &StoreNode) -> Vec<(i64, i64, bool)> {
    let dbh = n.mvcc().db();
    let cf = db::cf(dbh, CF_KV).expect("kv column family");
    dbh.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|item| {
            let (k, _) = item.expect("read kv column family");
            let (r, tomb) = Revision::from_bytes(&k).expect("a revision key");
            (r.main, r.sub, tomb)
        })
        .collect()
}

/// Incompressible bytes (xorshift), so neither LZ4 nor anything else shrinks them.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ------------------------------------------------------------------------------ 1. revisions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_count_changes_not_requests() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|_| {}).await;
        let n = c.node("a").clone();
        assert_eq!(rev_of(&n).await, 1, "an empty store is at revision 1");

        let p = n.put(put_req("a", "1")).await.expect("put");
        let h = p.header.expect("header");
        assert_eq!(h.revision, 2, "the first write gets revision 2");
        assert_eq!((h.cluster_id, h.member_id), (n.cluster_id, n.id));
        assert_eq!(
            header_rev(&n.put(put_req("b", "1")).await.expect("put").header),
            3
        );
        assert_eq!(
            header_rev(&n.put(put_req("b", "1")).await.expect("put").header),
            4,
            "writing the same value again is still a change"
        );
        assert_eq!(rev_of(&n).await, 4);

        // A DeleteRange that deletes nothing changes nothing.
        let d = n.delete_range(del("nope", "")).await.expect("delete");
        assert_eq!((d.deleted, header_rev(&d.header)), (0, 4));
        let d = n.delete_range(del("x", "z")).await.expect("delete");
        assert_eq!((d.deleted, header_rev(&d.header)), (0, 4));
        assert_eq!(rev_of(&n).await, 4, "an empty delete must not bump");

        // A read-only Txn is not a change.
        let t = n
            .txn(txn(
                vec![cmp("a", CT::Value, CR::Equal, TU::Value(b"1".to_vec()))],
                vec![range_op("a", "")],
                vec![],
            ))
            .await
            .expect("read-only txn");
        assert!(t.succeeded);
        assert_eq!(header_rev(&t.header), 4);
        // Neither is a write Txn whose taken branch writes nothing...
        let t = n
            .txn(txn(
                vec![cmp("a", CT::Value, CR::Equal, TU::Value(b"other".to_vec()))],
                vec![put_op("c", "1")],
                vec![],
            ))
            .await
            .expect("txn");
        assert!(!t.succeeded);
        assert!(t.responses.is_empty());
        assert_eq!(header_rev(&t.header), 4);
        // ...nor one that only deletes a missing key.
        let t = n
            .txn(txn(vec![], vec![del_op("nope", "")], vec![]))
            .await
            .expect("txn");
        assert!(t.succeeded);
        match responses(&t)[..] {
            [Resp::ResponseDeleteRange(d)] => {
                assert_eq!((d.deleted, header_rev(&d.header)), (0, 4))
            }
            ref other => panic!("unexpected responses {other:?}"),
        }
        assert_eq!(header_rev(&t.header), 4);
        // A failed request is not a change either.
        let failed = n
            .put(pb::PutRequest {
                ignore_value: true,
                ..put_req("missing", "")
            })
            .await;
        assert_eq!(
            etcd_err(failed, "ignore_value on a missing key"),
            EtcdError::KeyNotFound
        );
        assert_eq!(rev_of(&n).await, 4, "nothing above may bump the revision");
        assert!(kv(&n, "c").await.is_none());

        // All changes of one Txn share one revision; the sub-revision order is the op order.
        let t = n
            .txn(txn(
                vec![],
                vec![put_op("t/3", "x"), put_op("t/1", "x"), put_op("t/2", "x")],
                vec![],
            ))
            .await
            .expect("txn");
        assert_eq!(header_rev(&t.header), 5);
        for r in responses(&t) {
            match r {
                Resp::ResponsePut(p) => assert_eq!(header_rev(&p.header), 5),
                other => panic!("unexpected response {other:?}"),
            }
        }
        let r = n.range(rng("t/", "t0")).await.expect("range");
        for kv in &r.kvs {
            assert_eq!(
                (kv.create_revision, kv.mod_revision, kv.version),
                (5, 5, 1),
                "{}",
                s(&kv.key)
            );
        }
        assert_eq!(
            evs(&events_from(&n, "t/", "t0", 5, 3).await),
            vec![
                ev("PUT", "t/3", 5),
                ev("PUT", "t/1", 5),
                ev("PUT", "t/2", 5)
            ],
            "events of one revision come in sub-revision (operation) order"
        );

        // One DeleteRange of three keys: one revision, deletes in key order.
        let d = n.delete_range(del("t/", "t0")).await.expect("delete");
        assert_eq!((d.deleted, header_rev(&d.header)), (3, 6));
        assert_eq!(
            evs(&events_from(&n, "t/", "t0", 6, 3).await),
            vec![
                ev("DELETE", "t/1", 6),
                ev("DELETE", "t/2", 6),
                ev("DELETE", "t/3", 6)
            ]
        );

        // Mixed puts and a delete in one Txn.
        let t = n
            .txn(txn(
                vec![],
                vec![put_op("u/2", "x"), del_op("a", ""), put_op("u/1", "x")],
                vec![],
            ))
            .await
            .expect("txn");
        assert_eq!(header_rev(&t.header), 7);
        match responses(&t)[..] {
            [Resp::ResponsePut(p1), Resp::ResponseDeleteRange(d), Resp::ResponsePut(p2)] => {
                assert_eq!(header_rev(&p1.header), 7);
                assert_eq!((d.deleted, header_rev(&d.header)), (1, 7));
                assert_eq!(header_rev(&p2.header), 7);
            }
            ref other => panic!("unexpected responses {other:?}"),
        }
        assert_eq!(
            evs(&events_from(&n, "\0", "\0", 7, 3).await),
            vec![
                ev("PUT", "u/2", 7),
                ev("DELETE", "a", 7),
                ev("PUT", "u/1", 7)
            ]
        );

        // Lease grant, revoking a lease without keys, and compaction are not changes.
        let g = n.lease_grant(0x10, 60).await.expect("grant");
        assert_eq!(header_rev(&g.header), 7);
        let r = n.lease_revoke(0x10).await.expect("revoke");
        assert_eq!(header_rev(&r.header), 7);
        let cr = n.compact(3, false).await.expect("compact");
        assert_eq!(
            header_rev(&cr.header),
            7,
            "compaction answers the current revision"
        );
        assert_eq!(rev_of(&n).await, 7);

        // Concurrent writers: one revision each, no gaps, each key at the revision its put
        // reported.
        let mut tasks = Vec::new();
        for i in 0..16 {
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                let k = format!("conc/{i:02}");
                let r = n.put(put_req(&k, "v")).await.expect("concurrent put");
                (k, header_rev(&r.header))
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("join"));
        }
        let mut revs: Vec<i64> = got.iter().map(|(_, r)| *r).collect();
        revs.sort_unstable();
        assert_eq!(revs, (8..24).collect::<Vec<_>>(), "16 puts, 16 revisions");
        assert_eq!(rev_of(&n).await, 23);
        for (k, r) in &got {
            let kv = kv(&n, k).await.expect("written");
            assert_eq!((kv.create_revision, kv.mod_revision), (*r, *r), "{k}");
        }
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ------------------------------------------------------------- 2. create/mod revision, version

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_mod_revision_version_and_lease_fields() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|_| {}).await;
        let n = c.node("a").clone();

        n.put(put_req("k", "v1")).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "v1", 2, 2, 1, 0)));
        n.put(put_req("k", "v2")).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "v2", 2, 3, 2, 0)));
        n.put(put_req("k", "v3")).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "v3", 2, 4, 3, 0)));
        let p = n
            .put(pb::PutRequest {
                prev_kv: true,
                ..put_req("k", "v4")
            })
            .await
            .expect("put");
        assert_eq!(p.prev_kv, Some(kvrec("k", "v3", 2, 4, 3, 0)));
        assert_eq!(header_rev(&p.header), 5);
        let p = n.put(put_req("other", "x")).await.expect("put");
        assert_eq!(p.prev_kv, None, "prev_kv only when asked");

        let d = n
            .delete_range(pb::DeleteRangeRequest {
                prev_kv: true,
                ..del("k", "")
            })
            .await
            .expect("delete");
        assert_eq!(d.deleted, 1);
        assert_eq!(d.prev_kvs, vec![kvrec("k", "v4", 2, 5, 4, 0)]);
        assert_eq!(header_rev(&d.header), 7);
        assert_eq!(kv(&n, "k").await, None);

        // History is intact: each revision shows the key as it was.
        assert_eq!(kv_at(&n, "k", 2).await, Some(kvrec("k", "v1", 2, 2, 1, 0)));
        assert_eq!(kv_at(&n, "k", 3).await, Some(kvrec("k", "v2", 2, 3, 2, 0)));
        assert_eq!(kv_at(&n, "k", 6).await, Some(kvrec("k", "v4", 2, 5, 4, 0)));
        assert_eq!(kv_at(&n, "k", 7).await, None);
        assert_eq!(kv_at(&n, "k", 1).await, None, "before its creation");

        // Re-creation starts a new generation: version 1 and a new create_revision.
        n.put(put_req("k", "again")).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "again", 8, 8, 1, 0)));

        // The lease field.
        n.lease_grant(0x77, 60).await.expect("grant");
        n.put(put_lease("k", "leased", 0x77)).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "leased", 8, 9, 2, 0x77)));
        // ignore_value keeps the value, ignore_lease keeps the lease; both are changes.
        n.put(pb::PutRequest {
            ignore_value: true,
            ..put_lease("k", "", 0x77)
        })
        .await
        .expect("put ignore_value");
        assert_eq!(
            kv(&n, "k").await,
            Some(kvrec("k", "leased", 8, 10, 3, 0x77))
        );
        n.put(pb::PutRequest {
            ignore_lease: true,
            ..put_req("k", "v")
        })
        .await
        .expect("put ignore_lease");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "v", 8, 11, 4, 0x77)));
        // A plain put clears the lease.
        n.put(put_req("k", "plain")).await.expect("put");
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "plain", 8, 12, 5, 0)));
        assert_eq!(
            kv_at(&n, "k", 9).await,
            Some(kvrec("k", "leased", 8, 9, 2, 0x77))
        );
        // The key is detached: revoking the lease leaves it alone and changes nothing.
        let r = n.lease_revoke(0x77).await.expect("revoke");
        assert_eq!(header_rev(&r.header), 12);
        assert_eq!(kv(&n, "k").await, Some(kvrec("k", "plain", 8, 12, 5, 0)));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ------------------------------------------------------------------------- 3. range conventions

/// a=3 (rev 2, rewritten at 9), b=1 (3), b/1=2 (4), b/2=2 (5), c=1 (6, rewritten at 8), d=3 (7).
/// Versions: a 2, b 1, b/1 1, b/2 1, c 2, d 1. Values tie pairwise, so do versions.
async fn range_fixture(n: &StoreNode) {
    for (k, v) in [
        ("a", "3"),
        ("b", "1"),
        ("b/1", "2"),
        ("b/2", "2"),
        ("c", "1"),
        ("d", "3"),
        ("c", "1"),
        ("a", "3"),
    ] {
        n.put(put_req(k, v)).await.expect("put");
    }
}

fn sorted(target: SortTarget, order: SortOrder) -> pb::RangeRequest {
    pb::RangeRequest {
        sort_target: target as i32,
        sort_order: order as i32,
        ..rng("\0", "\0")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_conventions_sorting_filters_and_history() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|_| {}).await;
        let n = c.node("a").clone();
        range_fixture(&n).await;
        assert_eq!(rev_of(&n).await, 9);
        let all = ["a", "b", "b/1", "b/2", "c", "d"];

        let q = |r: pb::RangeRequest| {
            let n = n.clone();
            async move { n.range(r).await.expect("range") }
        };

        // Empty range_end: exactly one key.
        let r = q(rng("b", "")).await;
        assert_eq!(
            (keys(&r.kvs), r.count, r.more),
            (vec!["b".to_string()], 1, false)
        );
        assert_eq!(header_rev(&r.header), 9);
        let r = q(rng("bb", "")).await;
        assert_eq!((r.kvs.len(), r.count), (0, 0), "a missing key");
        // range_end "\0": every key >= key.
        let r = q(rng("b", "\0")).await;
        assert_eq!(keys(&r.kvs), ["b", "b/1", "b/2", "c", "d"]);
        assert_eq!(r.count, 5);
        // Prefix: [prefix, prefix with its last byte + 1).
        let r = q(rng("b/", "b0")).await;
        assert_eq!(keys(&r.kvs), ["b/1", "b/2"]);
        // key "\0" with range_end "\0": everything.
        let r = q(rng("\0", "\0")).await;
        assert_eq!(keys(&r.kvs), all);
        assert_eq!(r.count, 6);
        // A half-open interval, and an inverted (empty) one.
        assert_eq!(keys(&q(rng("b", "c")).await.kvs), ["b", "b/1", "b/2"]);
        let r = q(rng("c", "b")).await;
        assert_eq!((r.kvs.len(), r.count, r.more), (0, 0, false));

        // limit: count is the whole range, more says the limit cut it.
        let limited = |limit| pb::RangeRequest {
            limit,
            ..rng("\0", "\0")
        };
        let r = q(limited(2)).await;
        assert_eq!(
            (keys(&r.kvs), r.count, r.more),
            (vec!["a".into(), "b".into()], 6, true)
        );
        let r = q(limited(5)).await;
        assert_eq!((r.kvs.len(), r.count, r.more), (5, 6, true));
        let r = q(limited(6)).await;
        assert_eq!((r.kvs.len(), r.count, r.more), (6, 6, false));
        let r = q(limited(7)).await;
        assert_eq!((r.kvs.len(), r.count, r.more), (6, 6, false));

        // keys_only: everything but the value.
        let r = q(pb::RangeRequest {
            keys_only: true,
            ..rng("\0", "\0")
        })
        .await;
        assert_eq!(keys(&r.kvs), all);
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
        assert_eq!(r.kvs[0], kvrec("a", "", 2, 9, 2, 0));
        // count_only: no key-values, the total, never "more".
        for limit in [0, 2] {
            let r = q(pb::RangeRequest {
                count_only: true,
                limit,
                ..rng("\0", "\0")
            })
            .await;
            assert_eq!(
                (r.kvs.len(), r.count, r.more),
                (0, 6, false),
                "limit {limit}"
            );
        }

        // Sorting, by every target in both directions. Equal elements stay in key order in
        // both directions (etcd's sort of a small result is an insertion sort, stable even
        // under sort.Reverse).
        use SortOrder::{Ascend, Descend};
        use SortTarget::{Create, Key, Mod, Value, Version};
        let cases: Vec<(SortTarget, SortOrder, [&str; 6])> = vec![
            (Key, SortOrder::None, ["a", "b", "b/1", "b/2", "c", "d"]),
            (Key, Ascend, ["a", "b", "b/1", "b/2", "c", "d"]),
            (Key, Descend, ["d", "c", "b/2", "b/1", "b", "a"]),
            (Value, Ascend, ["b", "c", "b/1", "b/2", "a", "d"]),
            (Value, Descend, ["a", "d", "b/1", "b/2", "b", "c"]),
            // A target other than KEY with order NONE sorts ascending.
            (Value, SortOrder::None, ["b", "c", "b/1", "b/2", "a", "d"]),
            (Version, Ascend, ["b", "b/1", "b/2", "d", "a", "c"]),
            (Version, Descend, ["a", "c", "b", "b/1", "b/2", "d"]),
            (Create, Ascend, ["a", "b", "b/1", "b/2", "c", "d"]),
            (Create, Descend, ["d", "c", "b/2", "b/1", "b", "a"]),
            (Mod, Ascend, ["b", "b/1", "b/2", "d", "c", "a"]),
            (Mod, Descend, ["a", "c", "d", "b/2", "b/1", "b"]),
            (Mod, SortOrder::None, ["b", "b/1", "b/2", "d", "c", "a"]),
        ];
        for (target, order, want) in cases {
            let r = q(sorted(target, order)).await;
            assert_eq!(keys(&r.kvs), want, "sort by {target:?} {order:?}");
        }
        // Sorting happens before the limit.
        let r = q(pb::RangeRequest {
            limit: 2,
            ..sorted(Mod, Descend)
        })
        .await;
        assert_eq!(
            (keys(&r.kvs), r.count, r.more),
            (vec!["a".into(), "c".into()], 6, true)
        );
        let r = q(pb::RangeRequest {
            limit: 3,
            ..sorted(Value, Descend)
        })
        .await;
        assert_eq!(keys(&r.kvs), ["a", "d", "b/1"]);
        // An unknown sort option.
        let bad = n
            .range(pb::RangeRequest {
                sort_order: 9,
                ..rng("a", "")
            })
            .await;
        expect_err(
            bad,
            EtcdError::InvalidSortOption,
            "etcdserver: invalid sort option",
            "sort_order 9",
        );

        // Revision filters (count stays the total of the range; more is computed after
        // filtering).
        let f = |min_mod, max_mod, min_create, max_create| pb::RangeRequest {
            min_mod_revision: min_mod,
            max_mod_revision: max_mod,
            min_create_revision: min_create,
            max_create_revision: max_create,
            ..rng("\0", "\0")
        };
        let r = q(f(5, 0, 0, 0)).await;
        assert_eq!(
            (keys(&r.kvs), r.count),
            (vec!["a".into(), "b/2".into(), "c".into(), "d".into()], 6)
        );
        assert_eq!(keys(&q(f(0, 5, 0, 0)).await.kvs), ["b", "b/1", "b/2"]);
        assert_eq!(keys(&q(f(5, 7, 0, 0)).await.kvs), ["b/2", "d"]);
        assert_eq!(keys(&q(f(0, 0, 4, 6)).await.kvs), ["b/1", "b/2", "c"]);
        assert_eq!(keys(&q(f(0, 0, 0, 3)).await.kvs), ["a", "b"]);
        assert_eq!(keys(&q(f(0, 0, 7, 0)).await.kvs), ["d"]);
        let r = q(pb::RangeRequest {
            limit: 2,
            ..f(5, 0, 0, 0)
        })
        .await;
        assert_eq!(
            (keys(&r.kvs), r.count, r.more),
            (vec!["a".into(), "b/2".into()], 6, true)
        );
        let r = q(pb::RangeRequest {
            limit: 4,
            ..f(5, 0, 0, 0)
        })
        .await;
        assert_eq!(
            (r.kvs.len(), r.more),
            (4, false),
            "exactly the limit left after filtering"
        );

        // Historical reads return the old values; the header carries the current revision.
        let r = q(rng_at("\0", "\0", 5)).await;
        assert_eq!(keys(&r.kvs), ["a", "b", "b/1", "b/2"]);
        assert_eq!(r.count, 4);
        assert_eq!(r.kvs[0], kvrec("a", "3", 2, 2, 1, 0));
        assert_eq!(
            header_rev(&r.header),
            9,
            "header.revision is the current revision"
        );
        let r = q(rng_at("c", "", 7)).await;
        assert_eq!(r.kvs, vec![kvrec("c", "1", 6, 6, 1, 0)]);
        let r = q(rng_at("c", "", 8)).await;
        assert_eq!(r.kvs, vec![kvrec("c", "1", 6, 8, 2, 0)]);
        let r = q(rng_at("\0", "\0", 1)).await;
        assert_eq!(
            (r.kvs.len(), r.count),
            (0, 0),
            "revision 1 is the empty store"
        );
        let r = q(pb::RangeRequest {
            limit: 1,
            ..rng_at("b", "\0", 6)
        })
        .await;
        assert_eq!((keys(&r.kvs), r.count, r.more), (vec!["b".into()], 4, true));
        // A negative limit is no limit; a revision <= 0 is the current one.
        let r = q(pb::RangeRequest {
            limit: -1,
            ..rng("\0", "\0")
        })
        .await;
        assert_eq!((r.kvs.len(), r.count, r.more), (6, 6, false));
        let r = q(rng_at("a", "", -1)).await;
        assert_eq!(r.kvs, vec![kvrec("a", "3", 2, 9, 2, 0)]);
        // keys_only still sorts by the values it leaves out.
        let r = q(pb::RangeRequest {
            keys_only: true,
            ..sorted(Value, Descend)
        })
        .await;
        assert_eq!(keys(&r.kvs), ["a", "d", "b/1", "b/2", "b", "c"]);
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
        // Serializable reads agree.
        let r = q(pb::RangeRequest {
            serializable: true,
            ..rng_at("\0", "\0", 5)
        })
        .await;
        assert_eq!(keys(&r.kvs), ["a", "b", "b/1", "b/2"]);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// -------------------------------------------------------------------------------- 4. errors

const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_carry_etcds_texts() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|cfg| cfg.max_request_bytes = 4096).await;
        let n = c.node("a").clone();
        n.put(put_req("k", "v")).await.expect("put");

        // Future revisions.
        expect_err(
            n.range(rng_at("k", "", 3)).await,
            EtcdError::FutureRev,
            FUTURE,
            "range at 3",
        );
        expect_err(
            n.range(pb::RangeRequest {
                serializable: true,
                ..rng_at("k", "", 3)
            })
            .await,
            EtcdError::FutureRev,
            FUTURE,
            "serializable range at 3",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![pb::RequestOp {
                    request: Some(Req::RequestRange(rng_at("k", "", 3))),
                }],
                vec![],
            ))
            .await,
            EtcdError::FutureRev,
            FUTURE,
            "read-only txn ranging at 3",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![
                    put_op("w", "1"),
                    pb::RequestOp {
                        request: Some(Req::RequestRange(rng_at("k", "", 3))),
                    },
                ],
                vec![],
            ))
            .await,
            EtcdError::FutureRev,
            FUTURE,
            "write txn ranging at 3 (checked against the revision before the txn)",
        );
        assert!(kv(&n, "w").await.is_none(), "a failed txn writes nothing");
        expect_err(
            n.compact(3, false).await,
            EtcdError::FutureRev,
            FUTURE,
            "compact at 3",
        );
        assert_eq!(
            kv_at(&n, "k", 2).await.map(|kv| kv.value),
            Some(b"v".to_vec())
        );

        // Duplicate keys in one Txn.
        let dup = "etcdserver: duplicate key given in txn request";
        expect_err(
            n.txn(txn(
                vec![],
                vec![put_op("x", "1"), put_op("x", "2")],
                vec![],
            ))
            .await,
            EtcdError::DuplicateKey,
            dup,
            "two puts of x",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![],
                vec![put_op("y", "1"), put_op("y", "2")],
            ))
            .await,
            EtcdError::DuplicateKey,
            dup,
            "two puts of y in the failure branch",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![del_op("a", "c"), put_op("b", "1")],
                vec![],
            ))
            .await,
            EtcdError::DuplicateKey,
            dup,
            "a put inside a deleted range",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![
                    put_op("x", "1"),
                    txn_op(txn(vec![], vec![put_op("x", "2")], vec![])),
                ],
                vec![],
            ))
            .await,
            EtcdError::DuplicateKey,
            dup,
            "a put repeated in a nested txn",
        );
        // Not duplicates: the same key in both branches, overlapping deletes, a put and a
        // range of one key.
        let t = n
            .txn(txn(
                vec![],
                vec![put_op("x", "s"), range_op("x", "")],
                vec![put_op("x", "f")],
            ))
            .await
            .expect("same key in both branches");
        assert!(t.succeeded);
        n.txn(txn(
            vec![],
            vec![del_op("a", "c"), del_op("b", "d")],
            vec![],
        ))
        .await
        .expect("overlapping deletes");
        let mut expected_rev = 3;
        assert_eq!(
            rev_of(&n).await,
            expected_rev,
            "overlapping deletes of nothing"
        );

        // Too many operations.
        let many = "etcdserver: too many operations in txn request";
        let puts = |count: usize| {
            (0..count)
                .map(|i| put_op(&format!("m/{i:03}"), ""))
                .collect()
        };
        expect_err(
            n.txn(txn(vec![], puts(129), vec![])).await,
            EtcdError::TooManyOps,
            many,
            "129 puts",
        );
        let compares = (0..129)
            .map(|i| cmp(&format!("m/{i:03}"), CT::Version, CR::Equal, TU::Version(0)))
            .collect();
        expect_err(
            n.txn(txn(compares, vec![], vec![])).await,
            EtcdError::TooManyOps,
            many,
            "129 compares",
        );
        expect_err(
            n.txn(txn(vec![], vec![], puts(129))).await,
            EtcdError::TooManyOps,
            many,
            "129 puts in the failure branch",
        );
        let t = n
            .txn(txn(vec![], puts(128), vec![]))
            .await
            .expect("128 puts are fine");
        expected_rev += 1;
        assert_eq!(header_rev(&t.header), expected_rev);
        assert_eq!(n.range(rng("m/", "m0")).await.expect("range").count, 128);
        // A nested txn may use what its parent leaves of the 128.
        let nested = |inner: usize| {
            let mut outer: Vec<pb::RequestOp> =
                (0..99).map(|i| put_op(&format!("o/{i:03}"), "")).collect();
            let inner_ops = (0..inner)
                .map(|i| put_op(&format!("i/{i:03}"), ""))
                .collect();
            outer.push(txn_op(txn(vec![], inner_ops, vec![])));
            txn(vec![], outer, vec![])
        };
        expect_err(
            n.txn(nested(29)).await,
            EtcdError::TooManyOps,
            many,
            "100 ops with a nested txn of 29",
        );
        n.txn(nested(28))
            .await
            .expect("100 ops with a nested txn of 28");
        expected_rev += 1;

        // A request over --max-request-bytes.
        let large = "etcdserver: request is too large";
        let big = "x".repeat(5000);
        expect_err(
            n.put(put_req("big", &big)).await,
            EtcdError::RequestTooLarge,
            large,
            "a 5000-byte put with a 4096-byte limit",
        );
        let half = "x".repeat(2500);
        expect_err(
            n.txn(txn(
                vec![],
                vec![put_op("h1", &half), put_op("h2", &half)],
                vec![],
            ))
            .await,
            EtcdError::RequestTooLarge,
            large,
            "a 5000-byte txn",
        );
        n.put(put_req("ok", &"x".repeat(3000)))
            .await
            .expect("3000 bytes fit");
        expected_rev += 1;
        assert!(kv(&n, "big").await.is_none());

        // Empty keys.
        let empty = "etcdserver: key is not provided";
        expect_err(
            n.put(put_req("", "v")).await,
            EtcdError::EmptyKey,
            empty,
            "put",
        );
        expect_err(
            n.range(get_req("")).await,
            EtcdError::EmptyKey,
            empty,
            "range",
        );
        expect_err(
            n.delete_range(del("", "")).await,
            EtcdError::EmptyKey,
            empty,
            "delete",
        );
        expect_err(
            n.txn(txn(
                vec![cmp("", CT::Version, CR::Equal, TU::Version(0))],
                vec![],
                vec![],
            ))
            .await,
            EtcdError::EmptyKey,
            empty,
            "txn compare",
        );
        expect_err(
            n.txn(txn(vec![], vec![put_op("", "v")], vec![])).await,
            EtcdError::EmptyKey,
            empty,
            "txn put",
        );
        expect_err(
            n.txn(txn(vec![], vec![range_op("", "")], vec![])).await,
            EtcdError::EmptyKey,
            empty,
            "txn range",
        );

        // ignore_value / ignore_lease.
        let not_found = "etcdserver: key not found";
        expect_err(
            n.put(pb::PutRequest {
                ignore_value: true,
                ..put_req("missing", "")
            })
            .await,
            EtcdError::KeyNotFound,
            not_found,
            "ignore_value on a missing key",
        );
        expect_err(
            n.put(pb::PutRequest {
                ignore_lease: true,
                ..put_req("missing", "v")
            })
            .await,
            EtcdError::KeyNotFound,
            not_found,
            "ignore_lease on a missing key",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![
                    put_op("t1", "v"),
                    pb::RequestOp {
                        request: Some(Req::RequestPut(pb::PutRequest {
                            ignore_value: true,
                            ..put_req("missing", "")
                        })),
                    },
                ],
                vec![],
            ))
            .await,
            EtcdError::KeyNotFound,
            not_found,
            "ignore_value on a missing key inside a txn",
        );
        assert!(kv(&n, "t1").await.is_none(), "the txn failed as a whole");
        expect_err(
            n.put(pb::PutRequest {
                ignore_value: true,
                ..put_req("k", "v")
            })
            .await,
            EtcdError::ValueProvided,
            "etcdserver: value is provided",
            "ignore_value with a value",
        );
        expect_err(
            n.put(pb::PutRequest {
                ignore_lease: true,
                ..put_lease("k", "v", 5)
            })
            .await,
            EtcdError::LeaseProvided,
            "etcdserver: lease is provided",
            "ignore_lease with a lease",
        );

        // Unknown leases.
        let no_lease = "etcdserver: requested lease not found";
        expect_err(
            n.put(put_lease("l", "v", 0x999)).await,
            EtcdError::LeaseNotFound,
            no_lease,
            "put with an unknown lease",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![pb::RequestOp {
                    request: Some(Req::RequestPut(put_lease("t3", "v", 0x999))),
                }],
                vec![],
            ))
            .await,
            EtcdError::LeaseNotFound,
            no_lease,
            "txn put with an unknown lease",
        );
        expect_err(
            n.lease_revoke(0x999).await,
            EtcdError::LeaseNotFound,
            no_lease,
            "revoke of an unknown lease",
        );
        n.lease_grant(0x5, 60).await.expect("grant");
        expect_err(
            n.lease_grant(0x5, 60).await,
            EtcdError::LeaseExist,
            "etcdserver: lease already exists",
            "granting an existing lease id",
        );
        expect_err(
            n.lease_grant(0x6, 9_000_000_001).await,
            EtcdError::LeaseTtlTooLarge,
            "etcdserver: too large lease TTL",
            "a TTL over 9e9 s",
        );
        assert_eq!(
            rev_of(&n).await,
            expected_rev,
            "failed requests change nothing"
        );
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_latest_live_revisions_and_rejects_old_reads() {
    tokio::time::timeout(LIMIT, async {
        let mut c = single(|_| {}).await;
        let n = c.node("a").clone();
        // a@2 a@3 b@4 delete(b)@5 c@6 a@7 e@8
        n.put(put_req("a", "1")).await.expect("put");
        n.put(put_req("a", "2")).await.expect("put");
        n.put(put_req("b", "1")).await.expect("put");
        n.delete_range(del("b", "")).await.expect("delete");
        n.put(put_req("c", "1")).await.expect("put");
        n.put(put_req("a", "3")).await.expect("put");
        n.put(put_req("e", "1")).await.expect("put");
        assert_eq!(rev_of(&n).await, 8);
        assert_eq!(
            stored_revisions(&n),
            vec![
                (2, 0, false),
                (3, 0, false),
                (4, 0, false),
                (5, 0, true),
                (6, 0, false),
                (7, 0, false),
                (8, 0, false)
            ]
        );

        let cr = n.compact(6, true).await.expect("compact at 6");
        assert_eq!(header_rev(&cr.header), 8);
        // Physically left: the newest revision at or before 6 of each key live at 6 (a@3, c@6)
        // and everything after 6. b's whole life (put and tombstone) is gone.
        assert_eq!(
            stored_revisions(&n),
            vec![(3, 0, false), (6, 0, false), (7, 0, false), (8, 0, false)]
        );
        // Reads below the compact revision fail; exactly at it they work.
        expect_err(
            n.range(rng_at("a", "", 5)).await,
            EtcdError::Compacted,
            COMPACTED,
            "range at 5",
        );
        expect_err(
            n.range(rng_at("a", "", 2)).await,
            EtcdError::Compacted,
            COMPACTED,
            "range at 2",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![pb::RequestOp {
                    request: Some(Req::RequestRange(rng_at("a", "", 5))),
                }],
                vec![],
            ))
            .await,
            EtcdError::Compacted,
            COMPACTED,
            "read-only txn at 5",
        );
        expect_err(
            n.txn(txn(
                vec![],
                vec![
                    put_op("w", "1"),
                    pb::RequestOp {
                        request: Some(Req::RequestRange(rng_at("a", "", 5))),
                    },
                ],
                vec![],
            ))
            .await,
            EtcdError::Compacted,
            COMPACTED,
            "write txn ranging at 5",
        );
        let r = n
            .range(rng_at("\0", "\0", 6))
            .await
            .expect("range at the compact revision");
        assert_eq!(
            r.kvs,
            vec![kvrec("a", "2", 2, 3, 2, 0), kvrec("c", "1", 6, 6, 1, 0)]
        );
        assert_eq!(header_rev(&r.header), 8);
        let r = n.range(rng_at("\0", "\0", 7)).await.expect("range at 7");
        assert_eq!(keys(&r.kvs), ["a", "c"]);
        assert_eq!(r.kvs[0], kvrec("a", "3", 2, 7, 3, 0));
        // create_revision and version survive the compaction of the revisions they count.
        assert_eq!(kv(&n, "a").await, Some(kvrec("a", "3", 2, 7, 3, 0)));

        // Compacting again at or below the compact revision, or in the future, fails.
        expect_err(
            n.compact(6, false).await,
            EtcdError::Compacted,
            COMPACTED,
            "compact at 6 again",
        );
        expect_err(
            n.compact(4, false).await,
            EtcdError::Compacted,
            COMPACTED,
            "compact at 4",
        );
        expect_err(
            n.compact(9, false).await,
            EtcdError::FutureRev,
            FUTURE,
            "compact at 9",
        );
        assert_eq!(rev_of(&n).await, 8);

        // Life goes on: b is re-created fresh, a keeps counting.
        n.put(put_req("b", "2")).await.expect("put");
        n.put(put_req("a", "4")).await.expect("put");
        assert_eq!(kv(&n, "b").await, Some(kvrec("b", "2", 9, 9, 1, 0)));
        assert_eq!(kv(&n, "a").await, Some(kvrec("a", "4", 2, 10, 4, 0)));

        // All of it survives a restart (the index is rebuilt from the compacted data).
        drop(n);
        c.stop("a").await;
        c.boot("a").await;
        c.wait_leader().await;
        let n = c.node("a").clone();
        assert_eq!(rev_of(&n).await, 10);
        expect_err(
            n.range(rng_at("a", "", 5)).await,
            EtcdError::Compacted,
            COMPACTED,
            "after restart",
        );
        let r = n
            .range(rng_at("\0", "\0", 6))
            .await
            .expect("range at 6 after restart");
        assert_eq!(
            r.kvs,
            vec![kvrec("a", "2", 2, 3, 2, 0), kvrec("c", "1", 6, 6, 1, 0)]
        );
        assert_eq!(kv(&n, "a").await, Some(kvrec("a", "4", 2, 10, 4, 0)));
        expect_err(
            n.compact(6, false).await,
            EtcdError::Compacted,
            COMPACTED,
            "compact at 6 after restart",
        );
        n.put(put_req("a", "5")).await.expect("put");
        assert_eq!(kv(&n, "a").await, Some(kvrec("a", "5", 2, 11, 5, 0)));
        n.delete_range(del("e", "")).await.expect("delete");

        // Compacting at the current revision is allowed; that revision stays readable.
        n.compact(12, true)
            .await
            .expect("compact at the current revision");
        assert_eq!(kv_at(&n, "a", 12).await, Some(kvrec("a", "5", 2, 11, 5, 0)));
        assert_eq!(kv_at(&n, "e", 12).await, None);
        expect_err(
            n.range(rng_at("a", "", 11)).await,
            EtcdError::Compacted,
            COMPACTED,
            "range at 11",
        );
        assert_eq!(
            stored_revisions(&n),
            vec![(6, 0, false), (9, 0, false), (11, 0, false)],
            "one revision per live key (c@6 b@9 a@11); e's put and tombstone are gone"
        );
        // The current revision is not lost with the tombstone that made it.
        drop(n);
        c.stop("a").await;
        c.boot("a").await;
        c.wait_leader().await;
        let n = c.node("a").clone();
        assert_eq!(rev_of(&n).await, 12);
        let p = n.put(put_req("e", "again")).await.expect("put");
        assert_eq!(header_rev(&p.header), 13);
        assert_eq!(kv(&n, "e").await, Some(kvrec("e", "again", 13, 13, 1, 0)));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------------- 5. txn

/// (key, target, actual value, operand constructor) of an integer compare target.
type IntCase = (&'static str, CT, i64, fn(i64) -> TU);

/// Whether `c` holds, through a read-only Txn (success: range k, failure: nothing).
async fn holds(n: &StoreNode, c: pb::Compare) -> bool {
    let what = format!("{c:?}");
    let t = n
        .txn(txn(vec![c], vec![range_op("k", "")], vec![]))
        .await
        .expect("compare txn");
    assert_eq!(
        t.responses.len(),
        usize::from(t.succeeded),
        "{what}: branch taken"
    );
    t.succeeded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_compares_branches_and_nesting() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|_| {}).await;
        let n = c.node("a").clone();
        n.lease_grant(0x42, 60).await.expect("grant");
        n.put(put_req("k", "b")).await.expect("put"); // 2
        n.put(put_req("k", "m")).await.expect("put"); // 3: k = m, version 2, create 2, mod 3
        n.put(put_lease("l", "x", 0x42)).await.expect("put"); // 4
        n.put(put_req("r/1", "x")).await.expect("put"); // 5
        n.put(put_req("r/2", "x")).await.expect("put"); // 6

        // Integer targets of k: VERSION 2, CREATE 2, MOD 3, LEASE 0 (and LEASE 0x42 of l).
        let ints: Vec<IntCase> = vec![
            ("k", CT::Version, 2, TU::Version),
            ("k", CT::Create, 2, TU::CreateRevision),
            ("k", CT::Mod, 3, TU::ModRevision),
            ("k", CT::Lease, 0, TU::Lease),
            ("l", CT::Lease, 0x42, TU::Lease),
        ];
        for (key, target, v, mk) in ints {
            for (result, operand, want) in [
                (CR::Equal, v, true),
                (CR::Equal, v + 1, false),
                (CR::Equal, v - 1, false),
                (CR::NotEqual, v, false),
                (CR::NotEqual, v - 1, true),
                (CR::NotEqual, v + 1, true),
                (CR::Greater, v - 1, true),
                (CR::Greater, v, false),
                (CR::Greater, v + 1, false),
                (CR::Less, v + 1, true),
                (CR::Less, v, false),
                (CR::Less, v - 1, false),
            ] {
                assert_eq!(
                    holds(&n, cmp(key, target, result, mk(operand))).await,
                    want,
                    "{key} {target:?} {result:?} {operand} (actual {v})"
                );
            }
        }
        // VALUE compares bytes.
        for (result, operand, want) in [
            (CR::Equal, "m", true),
            (CR::Equal, "a", false),
            (CR::Equal, "mm", false),
            (CR::NotEqual, "m", false),
            (CR::NotEqual, "a", true),
            (CR::Greater, "a", true),
            (CR::Greater, "m", false),
            (CR::Greater, "z", false),
            (CR::Greater, "", true),
            (CR::Less, "z", true),
            (CR::Less, "mm", true),
            (CR::Less, "m", false),
            (CR::Less, "a", false),
        ] {
            assert_eq!(
                holds(&n, cmp("k", CT::Value, result, TU::Value(operand.into()))).await,
                want,
                "k VALUE {result:?} {operand:?}"
            );
        }
        // A missing key: VALUE never matches; the integer targets compare as 0.
        for result in [CR::Equal, CR::NotEqual, CR::Greater, CR::Less] {
            for operand in ["", "x"] {
                assert!(
                    !holds(&n, cmp("nope", CT::Value, result, TU::Value(operand.into()))).await,
                    "VALUE {result:?} {operand:?} on a missing key must fail"
                );
            }
        }
        assert!(holds(&n, cmp("nope", CT::Version, CR::Equal, TU::Version(0))).await);
        assert!(holds(&n, cmp("nope", CT::Create, CR::Equal, TU::CreateRevision(0))).await);
        assert!(holds(&n, cmp("nope", CT::Mod, CR::Equal, TU::ModRevision(0))).await);
        assert!(holds(&n, cmp("nope", CT::Lease, CR::Equal, TU::Lease(0))).await);
        assert!(!holds(&n, cmp("nope", CT::Version, CR::Greater, TU::Version(0))).await);
        assert!(holds(&n, cmp("nope", CT::Mod, CR::Less, TU::ModRevision(1))).await);

        // Compares over a range: every key in it must match.
        let over = |target, result, value, end: &str| pb::Compare {
            range_end: end.as_bytes().to_vec(),
            ..cmp("r/", target, result, value)
        };
        assert!(holds(&n, over(CT::Value, CR::Equal, TU::Value(b"x".to_vec()), "r0")).await);
        assert!(holds(&n, over(CT::Version, CR::Equal, TU::Version(1), "r0")).await);
        assert!(holds(&n, over(CT::Mod, CR::Greater, TU::ModRevision(4), "r0")).await);
        assert!(!holds(&n, over(CT::Mod, CR::Greater, TU::ModRevision(5), "r0")).await);
        n.put(put_req("r/2", "y")).await.expect("put"); // 7
        assert!(!holds(&n, over(CT::Value, CR::Equal, TU::Value(b"x".to_vec()), "r0")).await);
        assert!(!holds(&n, over(CT::Version, CR::Equal, TU::Version(1), "r0")).await);
        assert!(holds(&n, over(CT::Version, CR::Greater, TU::Version(0), "r0")).await);
        assert!(holds(&n, over(CT::Value, CR::Less, TU::Value(b"z".to_vec()), "r0")).await);
        // "\0" as range_end: every key from r/ on (r/1, r/2 only).
        assert!(holds(&n, over(CT::Create, CR::Greater, TU::CreateRevision(4), "\0")).await);
        // An empty range behaves like a missing key.
        assert!(!holds(&n, over(CT::Value, CR::NotEqual, TU::Value(b"q".to_vec()), "r/")).await);
        assert!(holds(&n, over(CT::Version, CR::Equal, TU::Version(0), "r/")).await);
        // A target_union that does not match the target counts as 0 (or empty bytes).
        assert!(!holds(&n, cmp("k", CT::Version, CR::Equal, TU::ModRevision(2))).await);
        assert!(holds(&n, cmp("k", CT::Version, CR::Greater, TU::Value(b"x".to_vec()))).await);
        assert!(holds(&n, cmp("k", CT::Value, CR::Greater, TU::Version(5))).await);
        assert!(!holds(&n, cmp("k", CT::Value, CR::Equal, TU::Version(5))).await);
        // No compares at all: the success branch; with no operations, a read-only txn.
        let t = n.txn(txn(vec![], vec![], vec![])).await.expect("empty txn");
        assert!(t.succeeded);
        assert!(t.responses.is_empty());
        assert_eq!(header_rev(&t.header), 7);
        // Several compares: all must hold.
        let both = |second| {
            txn(
                vec![cmp("k", CT::Value, CR::Equal, TU::Value(b"m".to_vec())), second],
                vec![range_op("k", "")],
                vec![],
            )
        };
        assert!(n.txn(both(cmp("k", CT::Version, CR::Equal, TU::Version(2)))).await.expect("txn").succeeded);
        assert!(!n.txn(both(cmp("k", CT::Version, CR::Equal, TU::Version(3)))).await.expect("txn").succeeded);

        // Both branches of a write txn.
        let guarded = |expect: &str| {
            txn(
                vec![cmp("k", CT::Value, CR::Equal, TU::Value(expect.as_bytes().to_vec()))],
                vec![put_op("then", expect), range_op("then", "")],
                vec![put_op("else", expect), del_op("r/", "r0")],
            )
        };
        let t = n.txn(guarded("m")).await.expect("txn");
        assert!(t.succeeded);
        assert_eq!(header_rev(&t.header), 8);
        match responses(&t)[..] {
            [Resp::ResponsePut(_), Resp::ResponseRange(r)] => {
                // Reads inside a write txn see its earlier writes, at the txn's revision.
                assert_eq!(r.kvs, vec![kvrec("then", "m", 8, 8, 1, 0)]);
                assert_eq!(header_rev(&r.header), 8);
            }
            ref other => panic!("unexpected responses {other:?}"),
        }
        let t = n.txn(guarded("q")).await.expect("txn");
        assert!(!t.succeeded);
        assert_eq!(header_rev(&t.header), 9);
        match responses(&t)[..] {
            [Resp::ResponsePut(p), Resp::ResponseDeleteRange(d)] => {
                assert_eq!(header_rev(&p.header), 9);
                assert_eq!((d.deleted, header_rev(&d.header)), (2, 9));
            }
            ref other => panic!("unexpected responses {other:?}"),
        }
        assert_eq!(kv(&n, "else").await, Some(kvrec("else", "q", 9, 9, 1, 0)));
        assert_eq!(n.range(rng("r/", "r0")).await.expect("range").count, 0);

        // Reads before and after writes inside one txn.
        let t = n
            .txn(txn(
                vec![],
                vec![
                    range_op("k", ""),
                    put_op("k", "n"),
                    range_op("k", ""),
                    del_op("then", ""),
                    range_op("then", ""),
                ],
                vec![],
            ))
            .await
            .expect("txn");
        assert_eq!(header_rev(&t.header), 10);
        match responses(&t)[..] {
            [Resp::ResponseRange(before), Resp::ResponsePut(_), Resp::ResponseRange(after), Resp::ResponseDeleteRange(d), Resp::ResponseRange(gone)] =>
            {
                assert_eq!(before.kvs, vec![kvrec("k", "m", 2, 3, 2, 0)]);
                assert_eq!(header_rev(&before.header), 9, "nothing written yet");
                assert_eq!(after.kvs, vec![kvrec("k", "n", 2, 10, 3, 0)]);
                assert_eq!(header_rev(&after.header), 10);
                assert_eq!(d.deleted, 1);
                assert!(gone.kvs.is_empty());
                assert_eq!(gone.count, 0);
            }
            ref other => panic!("unexpected responses {other:?}"),
        }

        // Nested txns: the response nests a TxnResponse with its own succeeded flag, and every
        // compare on the path is evaluated against the state before the outer txn's writes.
        let inner_then = txn(
            vec![cmp("k", CT::Value, CR::Equal, TU::Value(b"n".to_vec()))],
            vec![put_op("in/then", "1"), range_op("k", "")],
            vec![put_op("in/else", "1")],
        );
        let inner_else = txn(
            vec![cmp("k", CT::Value, CR::Equal, TU::Value(b"zzz".to_vec()))],
            vec![put_op("in2/then", "1")],
            vec![put_op("in2/else", "1"), range_op("in/then", "")],
        );
        let t = n
            .txn(txn(
                vec![cmp("k", CT::Version, CR::Equal, TU::Version(3))],
                vec![put_op("k", "o"), txn_op(inner_then), txn_op(inner_else)],
                vec![put_op("outer/else", "1")],
            ))
            .await
            .expect("nested txn");
        assert!(t.succeeded);
        assert_eq!(header_rev(&t.header), 11);
        match responses(&t)[..] {
            [Resp::ResponsePut(p), Resp::ResponseTxn(t1), Resp::ResponseTxn(t2)] => {
                assert_eq!(header_rev(&p.header), 11);
                assert!(
                    t1.succeeded,
                    "the nested compare sees k = n, from before the outer put of o"
                );
                match responses(t1)[..] {
                    [Resp::ResponsePut(_), Resp::ResponseRange(r)] => {
                        assert_eq!(r.kvs, vec![kvrec("k", "o", 2, 11, 4, 0)]);
                    }
                    ref other => panic!("unexpected nested responses {other:?}"),
                }
                assert!(!t2.succeeded);
                match responses(t2)[..] {
                    [Resp::ResponsePut(_), Resp::ResponseRange(r)] => {
                        assert_eq!(keys(&r.kvs), ["in/then"], "an earlier nested txn's write");
                    }
                    ref other => panic!("unexpected nested responses {other:?}"),
                }
            }
            ref other => panic!("unexpected responses {other:?}"),
        }
        let r = n.range(rng("\0", "\0")).await.expect("range");
        let written: BTreeSet<String> = keys(&r.kvs).into_iter().collect();
        assert!(written.contains("in/then") && written.contains("in2/else"));
        assert!(!written.contains("in/else") && !written.contains("in2/then"));
        assert!(!written.contains("outer/else"));
        for k in ["in/then", "in2/else"] {
            assert_eq!(kv(&n, k).await.expect(k).mod_revision, 11, "{k}: one revision");
        }
        // A nested txn that writes nothing: no revision.
        let t = n
            .txn(txn(
                vec![],
                vec![txn_op(txn(vec![], vec![range_op("k", "")], vec![]))],
                vec![],
            ))
            .await
            .expect("nested read-only txn");
        assert_eq!(header_rev(&t.header), 11);
        assert_eq!(rev_of(&n).await, 11);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// -------------------------------------------------------------------------------- 6. leases

/// etcd's minimum lease TTL: 1.5 election timeouts (counted in heartbeat ticks), rounded up
/// to whole seconds.
fn min_lease_ttl(cfg: &StoreConfig) -> i64 {
    let hb = cfg.heartbeat_interval.as_millis() as i64;
    let election_ticks = cfg.election_timeout.as_millis() as i64 / hb;
    let min_ms = (3 * election_ticks / 2) * hb;
    (min_ms + 999) / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_revoke_in_one_revision_detach_and_expire() {
    tokio::time::timeout(LIMIT, async {
        // A 1 s election timeout makes the minimum TTL 1.5 s, rounded up to 2 s.
        let mut c = single(|cfg| cfg.election_timeout = Duration::from_millis(1000)).await;
        let n = c.node("a").clone();
        let min_ttl = min_lease_ttl(&c.configs["a"]);
        assert_eq!(min_ttl, 2);

        let g = n.lease_grant(0xA, 100).await.expect("grant");
        assert_eq!((g.id, g.ttl), (0xA, 100));
        n.lease_grant(0xB, 100).await.expect("grant");
        for k in ["l/1", "l/2", "l/3", "l/4"] {
            n.put(put_lease(k, "v", 0xA)).await.expect("put");
        }
        n.put(put_req("plain", "v")).await.expect("put");
        let ttl = n.lease_time_to_live(0xA, true).await.expect("ttl");
        let attached: BTreeSet<String> = ttl.keys.iter().map(|k| s(k)).collect();
        assert_eq!(
            attached,
            BTreeSet::from(["l/1", "l/2", "l/3", "l/4"].map(String::from))
        );
        assert_eq!(ttl.granted_ttl, 100);
        assert!((1..=100).contains(&ttl.ttl), "remaining {}", ttl.ttl);
        assert!(
            n.lease_time_to_live(0xA, false)
                .await
                .expect("ttl")
                .keys
                .is_empty(),
            "keys only when asked"
        );

        // Re-put without a lease detaches; with another lease moves it.
        n.put(put_req("l/2", "v2")).await.expect("put");
        n.put(put_lease("l/3", "v3", 0xB)).await.expect("put");
        let ttl = n.lease_time_to_live(0xA, true).await.expect("ttl");
        let attached: BTreeSet<String> = ttl.keys.iter().map(|k| s(k)).collect();
        assert_eq!(attached, BTreeSet::from(["l/1", "l/4"].map(String::from)));
        // Deleting a key detaches it too.
        n.put(put_lease("l/5", "v", 0xA)).await.expect("put");
        n.delete_range(del("l/5", "")).await.expect("delete");
        n.put(put_req("l/5", "fresh")).await.expect("put");
        // Attachments are rebuilt from the data after a restart.
        drop(n);
        c.stop("a").await;
        c.boot("a").await;
        c.wait_leader().await;
        let n = c.node("a").clone();
        let ttl = n.lease_time_to_live(0xA, true).await.expect("ttl");
        let attached: BTreeSet<String> = ttl.keys.iter().map(|k| s(k)).collect();
        assert_eq!(
            attached,
            BTreeSet::from(["l/1", "l/4"].map(String::from)),
            "after restart"
        );
        let before = rev_of(&n).await;

        // Revoke: every attached key deleted, in one revision.
        let r = n.lease_revoke(0xA).await.expect("revoke");
        assert_eq!(
            header_rev(&r.header),
            before + 1,
            "one revision for the whole revoke"
        );
        assert_eq!(rev_of(&n).await, before + 1);
        assert_eq!(
            evs(&events_from(&n, "l/", "l0", before + 1, 2).await),
            vec![
                ev("DELETE", "l/1", before + 1),
                ev("DELETE", "l/4", before + 1)
            ]
        );
        let left = n.range(rng("l/", "l0")).await.expect("range");
        assert_eq!(keys(&left.kvs), ["l/2", "l/3", "l/5"]);
        assert!(kv(&n, "plain").await.is_some());
        assert_eq!(n.lease_time_to_live(0xA, true).await.expect("ttl").ttl, -1);
        expect_err(
            n.lease_revoke(0xA).await,
            EtcdError::LeaseNotFound,
            "etcdserver: requested lease not found",
            "revoking twice",
        );
        let r = n.lease_revoke(0xB).await.expect("revoke");
        assert_eq!(header_rev(&r.header), before + 2);
        assert!(kv(&n, "l/3").await.is_none());

        // TTL 1 is raised to the minimum; the lease expires when nobody keeps it alive.
        let started = Instant::now();
        let g = n.lease_grant(0, 1).await.expect("grant");
        assert_eq!(g.ttl, min_ttl, "TTL raised to ceil(1.5 x election timeout)");
        assert!(g.id > 0);
        n.put(put_lease("ephemeral", "v", g.id)).await.expect("put");
        let at = rev_of(&n).await;
        wait_until(Duration::from_secs(20), "the lease expires", || {
            let n = n.clone();
            async move { kv(&n, "ephemeral").await.is_none() }
        })
        .await;
        let lived = started.elapsed();
        assert!(
            lived >= Duration::from_secs(min_ttl as u64),
            "expired after {lived:?}, before its TTL of {min_ttl} s"
        );
        assert_eq!(rev_of(&n).await, at + 1, "expiry is one revoke revision");
        assert_eq!(
            n.lease_time_to_live(g.id, false).await.expect("ttl").ttl,
            -1
        );
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ------------------------------------------------------------------------------- 7. HashKV

/// Feeds one member a fixed history; returns (revision, HashKV) after each step and the
/// HashKV at revision 8 taken right after it was written.
async fn hash_history(n: &StoreNode) -> (Vec<(i64, u32)>, u32) {
    let mut out = Vec::new();
    let mut snap = |n: &StoreNode| {
        let h = n.hash_kv(0).expect("hash_kv");
        assert_eq!(h.hash_revision, header_rev(&h.header));
        out.push((header_rev(&h.header), h.hash));
    };
    snap(n);
    for k in ["a", "b", "c"] {
        n.put(put_req(k, "1")).await.expect("put");
        snap(n);
    }
    n.txn(txn(
        vec![],
        vec![put_op("d", "1"), put_op("e", "1"), del_op("b", "")],
        vec![],
    ))
    .await
    .expect("txn");
    snap(n);
    n.lease_grant(0x42, 600).await.expect("grant");
    n.put(put_lease("l", "1", 0x42)).await.expect("put");
    snap(n);
    n.put(put_req("a", "2")).await.expect("put");
    snap(n);
    n.compact(5, true).await.expect("compact");
    snap(n);
    n.put(put_req("a", "3")).await.expect("put");
    snap(n);
    let at8 = n.hash_kv(8).expect("hash_kv at 8").hash;
    n.delete_range(del("c", "")).await.expect("delete");
    snap(n);
    n.put(put_req("f", "1")).await.expect("put");
    snap(n);
    n.lease_revoke(0x42).await.expect("revoke");
    snap(n);
    (out, at8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_kv_agrees_across_members_and_is_stable_for_old_revisions() {
    tokio::time::timeout(LIMIT, async {
        let c1 = single(|_| {}).await;
        let mut c2 = single(|_| {}).await;
        let (n1, n2) = (c1.node("a").clone(), c2.node("a").clone());
        let (h1, at8_1) = hash_history(&n1).await;
        let (h2, at8_2) = hash_history(&n2).await;
        assert_eq!(
            h1, h2,
            "two members fed the same requests must hash the same"
        );
        assert_eq!(at8_1, at8_2);
        let revs: Vec<i64> = h1.iter().map(|(r, _)| *r).collect();
        assert_eq!(revs, vec![1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11]);
        // Every write changes the hash; the compaction step (7 -> 7) may or may not.
        for w in h1.windows(2) {
            if w[0].0 != w[1].0 {
                assert_ne!(w[0].1, w[1].1, "a write at {} must change the hash", w[1].0);
            }
        }
        // The hash at an old revision does not move with later writes.
        for n in [&n1, &n2] {
            let h = n.hash_kv(8).expect("hash_kv at 8");
            assert_eq!(h.hash, at8_1, "hash at 8 after later writes");
            assert_eq!((h.hash_revision, h.compact_revision), (8, 5));
            assert_eq!(header_rev(&h.header), 11);
            assert_eq!(
                n.hash_kv(6).expect("hash at 6").hash,
                n.hash_kv(6).expect("again").hash
            );
        }
        // A restarted member (its key index rebuilt from compacted data) hashes the same.
        drop(n2);
        c2.stop("a").await;
        c2.boot("a").await;
        c2.wait_leader().await;
        let n2 = c2.node("a").clone();
        assert_eq!(
            n2.hash_kv(0).expect("h").hash,
            h1.last().expect("steps").1,
            "after restart"
        );
        assert_eq!(n2.hash_kv(8).expect("h").hash, at8_1, "at 8 after restart");
        assert_eq!(
            n1.hash_kv(9).expect("h").hash,
            n2.hash_kv(9).expect("h").hash
        );
        assert_eq!(
            n1.hash_kv(6).expect("h").hash,
            n2.hash_kv(6).expect("h").hash
        );
        // Below or at the compact revision: Compacted; beyond the current one: FutureRev.
        expect_err(
            n1.hash_kv(5),
            EtcdError::Compacted,
            COMPACTED,
            "hash_kv at the compact revision",
        );
        expect_err(
            n1.hash_kv(3),
            EtcdError::Compacted,
            COMPACTED,
            "hash_kv at 3",
        );
        expect_err(
            n1.hash_kv(12),
            EtcdError::FutureRev,
            FUTURE,
            "hash_kv at 12",
        );
        c1.shutdown().await;
        c2.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ------------------------------------------------------------------------------ 8. NOSPACE

/// The database size keelson compares with the quota (`storage::db::size_bytes`) counts
/// RocksDB memtables by their arena blocks, which come in 1 MiB steps per column family
/// (`arena_block_size` = min(1 MiB, write_buffer_size / 8)): a member that wrote anything at
/// all already reports about 2 MiB (the `kv` and `sm_meta` memtables), so a quota below that
/// trips on the first write. 4 MiB leaves room for about 2 MiB of values.
const QUOTA: u64 = 4 << 20;
const VALUE_BYTES: usize = 16 * 1024;
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Puts incompressible values under `fill/` until the quota trips; returns how many fit.
async fn fill_until_nospace(n: &StoreNode) -> usize {
    let start = n.status().db_size;
    let most = (QUOTA as usize / VALUE_BYTES) * 4 + 16;
    for i in 0..most {
        let put = pb::PutRequest {
            key: format!("fill/{i:05}").into_bytes(),
            value: noise(i as u64, VALUE_BYTES),
            ..Default::default()
        };
        match n.put(put).await {
            Ok(_) => {}
            Err(e) => {
                let e = etcd_err::<()>(Err(e), "filling the quota");
                assert_eq!(e, EtcdError::NoSpace);
                assert_eq!(e.to_string(), NOSPACE);
                eprintln!(
                    "NOSPACE after {i} puts of {VALUE_BYTES} B: db_size {} (started at {start}), quota {QUOTA}",
                    n.status().db_size
                );
                return i;
            }
        }
    }
    panic!(
        "{most} puts of {VALUE_BYTES} incompressible bytes never exceeded a {QUOTA}-byte quota \
         (db_size now {}, started at {start})",
        n.status().db_size
    );
}

fn nospace_alarm(n: &StoreNode) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: n.id,
        alarm: pb::AlarmType::Nospace as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_alarm_blocks_growth_until_compact_defrag_and_disarm() {
    tokio::time::timeout(LIMIT, async {
        let mut c = single(|cfg| cfg.quota_backend_bytes = QUOTA).await;
        let n = c.node("a").clone();
        assert!(n.alarms().is_empty());
        n.lease_grant(0x1EA5E, 600).await.expect("grant");
        n.put(put_lease("leased", "v", 0x1EA5E)).await.expect("put");
        let fitted = fill_until_nospace(&n).await;
        // At least the 1 MiB the two baseline memtable blocks and the step granularity leave
        // free, at most the quota itself.
        assert!(
            (64..=QUOTA as usize / VALUE_BYTES).contains(&fitted),
            "{fitted} values of {VALUE_BYTES} B fitted in a {QUOTA}-byte quota"
        );
        assert_eq!(n.alarms(), vec![nospace_alarm(&n)]);
        assert!(
            n.status()
                .errors
                .iter()
                .any(|e| e.contains("alarm:NOSPACE")),
            "status errors: {:?}",
            n.status().errors
        );
        let rev = rev_of(&n).await;

        // Everything that may grow the database is refused, even tiny requests.
        expect_err(
            n.put(put_req("tiny", "x")).await,
            EtcdError::NoSpace,
            NOSPACE,
            "small put",
        );
        expect_err(
            n.txn(txn(vec![], vec![put_op("tiny", "x")], vec![])).await,
            EtcdError::NoSpace,
            NOSPACE,
            "txn with a put",
        );
        expect_err(
            n.lease_grant(0, 60).await,
            EtcdError::NoSpace,
            NOSPACE,
            "lease grant",
        );
        assert_eq!(rev_of(&n).await, rev);

        // The alarm is replicated state: it survives a restart, even though the restarted
        // member's database (memtables flushed) may measure below the quota.
        drop(n);
        c.stop("a").await;
        c.boot("a").await;
        c.wait_leader().await;
        let n = c.node("a").clone();
        eprintln!("after restart: db_size {}", n.status().db_size);
        assert_eq!(n.alarms(), vec![nospace_alarm(&n)]);
        expect_err(
            n.put(put_req("tiny", "x")).await,
            EtcdError::NoSpace,
            NOSPACE,
            "put after restart",
        );

        // Reads work.
        let r = n.range(rng("fill/", "fill0")).await.expect("range");
        assert_eq!(r.count, fitted as i64);
        assert_eq!(r.kvs[0].value, noise(0, VALUE_BYTES));
        let t = n
            .txn(txn(vec![], vec![range_op("fill/00000", "")], vec![]))
            .await
            .expect("read-only txn");
        assert_eq!(t.responses.len(), 1);

        // Deletes and compaction work.
        let d = n
            .delete_range(del("fill/", "fill0"))
            .await
            .expect("delete under NOSPACE");
        assert_eq!(d.deleted, fitted as i64);
        assert_eq!(header_rev(&d.header), rev + 1);
        // So does revoking a lease (it only deletes).
        let r = n.lease_revoke(0x1EA5E).await.expect("revoke under NOSPACE");
        assert_eq!(header_rev(&r.header), rev + 2);
        assert!(kv(&n, "leased").await.is_none());
        n.compact(rev + 2, true)
            .await
            .expect("compaction under NOSPACE");
        // Still refused: the alarm stays until disarmed.
        expect_err(
            n.put(put_req("tiny", "x")).await,
            EtcdError::NoSpace,
            NOSPACE,
            "put after compaction",
        );

        let before = n.status().db_size;
        n.defragment().await.expect("defragment under NOSPACE");
        let after = n.status().db_size;
        eprintln!("defragment: db_size {before} -> {after}");
        assert!(
            (after as u64) < QUOTA / 2,
            "compaction and defragmentation must give the space back: {before} -> {after}"
        );
        expect_err(
            n.put(put_req("tiny", "x")).await,
            EtcdError::NoSpace,
            NOSPACE,
            "put before disarm",
        );
        assert_eq!(n.alarms(), vec![nospace_alarm(&n)]);

        let cleared = n
            .alarm_set(false, n.id, AlarmKind::NoSpace)
            .await
            .expect("disarm");
        assert_eq!(cleared, vec![nospace_alarm(&n)]);
        assert!(n.alarms().is_empty());
        assert!(n.status().errors.is_empty());
        let p = n.put(put_req("tiny", "x")).await.expect("put after disarm");
        assert_eq!(header_rev(&p.header), rev + 3);
        n.txn(txn(vec![], vec![put_op("tiny2", "x")], vec![]))
            .await
            .expect("txn after disarm");
        n.lease_grant(0, 60)
            .await
            .expect("lease grant after disarm");
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// etcd charges a Txn only for its puts (quota.go `costTxn`), and the capped applier rejects
/// a Txn only if that cost is positive: a Txn that just deletes (Kubernetes deletes objects
/// this way: compare mod_revision, then delete, else get) works under NOSPACE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_allows_a_txn_that_only_deletes() {
    tokio::time::timeout(LIMIT, async {
        let c = single(|cfg| cfg.quota_backend_bytes = QUOTA).await;
        let n = c.node("a").clone();
        fill_until_nospace(&n).await;
        let victim = kv(&n, "fill/00000").await.expect("written");
        let t = n
            .txn(txn(
                vec![cmp(
                    "fill/00000",
                    CT::Mod,
                    CR::Equal,
                    TU::ModRevision(victim.mod_revision),
                )],
                vec![del_op("fill/00000", "")],
                vec![range_op("fill/00000", "")],
            ))
            .await
            .expect("a delete-only txn must pass under NOSPACE, as in etcd");
        assert!(t.succeeded);
        match responses(&t)[..] {
            [Resp::ResponseDeleteRange(d)] => assert_eq!(d.deleted, 1),
            ref other => panic!("unexpected responses {other:?}"),
        }
        assert!(kv(&n, "fill/00000").await.is_none());
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

// ----------------------------------------------------------------------- 9. auto-compaction

/// The member's compact revision, as HashKV reports it.
fn compact_rev(n: &StoreNode) -> i64 {
    n.hash_kv(0).expect("hash_kv").compact_revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_keeps_the_retention_window() {
    tokio::time::timeout(LIMIT, async {
        let retention = Duration::from_secs(1);
        let c = single(|cfg| cfg.auto_compaction = AutoCompaction::Periodic(retention)).await;
        let n = c.node("a").clone();
        for i in 0..5 {
            n.put(put_req(&format!("p/{i}"), "v")).await.expect("put");
        }
        let target = rev_of(&n).await; // 6
        assert_eq!(target, 6);
        wait_until(
            Duration::from_secs(20),
            "periodic compaction reaches the writes",
            || {
                let n = n.clone();
                async move { compact_rev(&n) >= target }
            },
        )
        .await;
        expect_err(
            n.range(rng_at("p/", "p0", target - 1)).await,
            EtcdError::Compacted,
            COMPACTED,
            "history older than the retention window",
        );
        // Nothing newer than the retention window goes: revisions written moments ago stay
        // readable. (Only checked when this read finishes within the window: a stalled
        // machine may legitimately see it compacted.)
        let t0 = Instant::now();
        n.put(put_req("p/x", "1")).await.expect("put");
        let r = n.put(put_req("p/x", "2")).await.expect("put");
        let fresh = header_rev(&r.header) - 1;
        let read = n.range(rng_at("p/x", "", fresh)).await;
        if t0.elapsed() < retention {
            let read = read.expect("a revision younger than the retention is kept");
            assert_eq!(read.kvs[0].value, b"1");
        }
        // It keeps going: the next compaction passes the new writes.
        let newest = rev_of(&n).await;
        wait_until(
            Duration::from_secs(20),
            "periodic compaction catches up again",
            || {
                let n = n.clone();
                async move { compact_rev(&n) >= newest }
            },
        )
        .await;
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// etcd's periodic compactor compacts at most once per retention period (for periods up to
/// an hour): it samples the revision every period/10 but waits `compactInterval`
/// (= min(period, 1 h)) after each successful compaction (v3compactor/periodic.go `Run`), so
/// the history kept varies between one and two periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_runs_once_per_retention_period() {
    tokio::time::timeout(LIMIT, async {
        let retention = Duration::from_secs(1);
        let c = single(|cfg| cfg.auto_compaction = AutoCompaction::Periodic(retention)).await;
        let n = c.node("a").clone();
        n.put(put_req("w", "0")).await.expect("put");
        wait_until(
            Duration::from_secs(20),
            "the first periodic compaction",
            || {
                let n = n.clone();
                async move { compact_rev(&n) > 0 }
            },
        )
        .await;
        // Keep writing for a few periods and count the compactions.
        let start = Instant::now();
        let mut last = compact_rev(&n);
        let mut seen = vec![last];
        let mut i = 0u64;
        while start.elapsed() < retention * 7 / 2 {
            i += 1;
            n.put(put_req("w", &i.to_string())).await.expect("put");
            let now = compact_rev(&n);
            if now != last {
                seen.push(now);
                last = now;
            }
        }
        let elapsed = start.elapsed();
        let compactions = seen.len() - 1;
        assert!(compactions >= 2, "compaction keeps running: {seen:?}");
        let allowed = (elapsed.as_secs_f64() / retention.as_secs_f64()).floor() as usize + 1;
        assert!(
            compactions <= allowed,
            "{compactions} compactions in {elapsed:?} with a {retention:?} period (etcd: at most \
             {allowed}); compact revisions seen: {seen:?}"
        );
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// etcd's revision mode checks every 5 minutes (v3compactor `revInterval`), keelson's too by
/// default; the test shortens the check interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_auto_compaction_keeps_the_last_n_revisions() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = single(|cfg| {
            cfg.auto_compaction = AutoCompaction::Revision(5);
            cfg.revision_compaction_interval = Duration::from_millis(200);
        })
        .await;
        let n = c.node("a").clone();
        for i in 0..20 {
            n.put(put_req(&format!("r/{i}"), "v")).await.expect("put");
        }
        let cur = rev_of(&n).await;
        assert_eq!(cur, 21);
        wait_until(
            Duration::from_secs(30),
            "revision-mode compaction runs",
            || {
                let n = n.clone();
                async move { compact_rev(&n) > 0 }
            },
        )
        .await;
        assert_eq!(
            compact_rev(&n),
            cur - 5,
            "keeps exactly the last 5 revisions"
        );
        expect_err(
            n.range(rng_at("r/", "r0", cur - 6)).await,
            EtcdError::Compacted,
            COMPACTED,
            "older than the last 5 revisions",
        );
        n.range(rng_at("r/", "r0", cur - 5))
            .await
            .expect("the retained window");
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}
