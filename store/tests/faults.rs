//! Faults injected in-process: partitions, restarts, late members, slow links.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use keelson_store::config::{url_string, ClusterState};
use keelson_store::{EtcdError, StoreError};
use support::*;

const LIMIT: Duration = Duration::from_secs(120);

fn assert_one_history(hashes: &std::collections::BTreeMap<String, (u32, i64)>) {
    let distinct: BTreeSet<(u32, i64)> = hashes.values().copied().collect();
    assert_eq!(distinct.len(), 1, "members disagree: {hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_partitioned_into_minority_acknowledges_nothing_and_heals_into_one_history() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        let leader = c.wait_leader().await;
        let old = c.node(&leader).clone();
        for i in 0..20 {
            old.put(put_req(&format!("before/{i}"), "x"))
                .await
                .expect("put before partition");
        }

        c.router.isolate(old.id);
        let majority: Vec<String> = c.nodes.keys().filter(|n| **n != leader).cloned().collect();
        wait_until(
            Duration::from_secs(20),
            "the majority elects a new leader",
            || {
                let l0 = c.node(&majority[0]).leader();
                let l1 = c.node(&majority[1]).leader();
                let ok = l0.is_some() && l0 == l1 && l0 != Some(old.id);
                async move { ok }
            },
        )
        .await;

        // The old leader still believes it leads; nothing it is asked to do may succeed.
        let lost = tokio::spawn({
            let old = old.clone();
            async move { old.put(put_req("lost", "never")).await }
        });
        let stale = old.range(get_req("before/0")).await;
        assert!(
            stale.is_err(),
            "a minority leader served a linearizable read: {stale:?}"
        );

        // The majority keeps serving, through either of its members.
        for i in 0..20 {
            let via = c.node(&majority[i % 2]);
            via.put(put_req(&format!("during/{i}"), "y"))
                .await
                .expect("majority put");
        }
        assert_eq!(
            get(c.node(&majority[1]), "during/19").await.as_deref(),
            Some("y")
        );

        let lost = lost.await.expect("join");
        match lost {
            Err(StoreError::Etcd(
                EtcdError::Timeout | EtcdError::NoLeader | EtcdError::LeaderChanged,
            )) => {}
            other => panic!("the isolated leader must not acknowledge a write, got {other:?}"),
        }

        c.router.heal();
        c.wait_leader().await;
        // The healed member takes the majority's history; the unacknowledged write is gone.
        old.put(put_req("after", "z"))
            .await
            .expect("put after heal via old leader");
        let hashes = c.converged_hashes().await;
        assert_one_history(&hashes);
        for n in c.nodes.values() {
            assert_eq!(
                get_local(n, "lost").await,
                None,
                "unacknowledged write survived"
            );
            assert_eq!(get_local(n, "during/19").await.as_deref(), Some("y"));
            assert_eq!(get_local(n, "before/0").await.as_deref(), Some("x"));
            assert_eq!(get_local(n, "after").await.as_deref(), Some("z"));
        }
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_member_catches_up() {
    tokio::time::timeout(LIMIT, async {
        let mut c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        let leader = c.wait_leader().await;
        for i in 0..50 {
            c.node(&leader)
                .put(put_req(&format!("k/{i:03}"), "1"))
                .await
                .expect("put");
        }
        let follower = c
            .nodes
            .keys()
            .find(|n| **n != leader)
            .cloned()
            .expect("follower");
        let id_before = c.node(&follower).id;
        c.stop(&follower).await;
        let leader = c.wait_leader().await;
        for i in 50..120 {
            c.node(&leader)
                .put(put_req(&format!("k/{i:03}"), "2"))
                .await
                .expect("put while down");
        }
        let back = c.boot(&follower).await;
        assert_eq!(back.id, id_before, "a restarted member keeps its identity");
        let hashes = c.converged_hashes().await;
        assert_one_history(&hashes);
        assert_eq!(get_local(&back, "k/119").await.as_deref(), Some("2"));
        assert_eq!(get_local(&back, "k/000").await.as_deref(), Some("1"));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_added_after_log_purge_is_brought_up_by_snapshot() {
    tokio::time::timeout(LIMIT, async {
        let mut c = TestCluster::start(&["a", "b", "c"], |cfg| {
            cfg.snapshot_count = 40;
            cfg.snapshot_catchup_entries = 5;
        })
        .await;
        let leader = c.wait_leader().await;
        for i in 0..200 {
            c.node(&leader)
                .put(put_req(&format!("k/{i:03}"), &format!("v{i}")))
                .await
                .expect("put");
        }
        let lnode = c.node(&leader).clone();
        wait_until(Duration::from_secs(20), "the leader purged its log", || {
            let purged = lnode.metrics().purged.map(|l| l.index).unwrap_or(0);
            async move { purged > 100 }
        })
        .await;

        // Add through a follower: membership changes are forwarded to the leader.
        let follower = c
            .nodes
            .keys()
            .find(|n| **n != leader)
            .cloned()
            .expect("follower");
        let added = c
            .node(&follower)
            .member_add(vec![url_string(&peer_url("d"))], false)
            .await
            .expect("member add");
        assert_eq!(added.name, "", "an added member is unnamed until it starts");
        let cfg = c.config("d", &["a", "b", "c", "d"], ClusterState::Existing);
        c.configs.insert("d".into(), cfg);
        let d = c.boot("d").await;
        assert_eq!(
            d.id, added.id,
            "the new member learns its id from the cluster"
        );

        let hashes = c.converged_hashes().await;
        assert_one_history(&hashes);
        assert!(
            d.metrics().snapshot.is_some(),
            "the new member should have been brought up by a snapshot"
        );
        assert_eq!(get_local(&d, "k/199").await.as_deref(), Some("v199"));
        wait_until(Duration::from_secs(20), "d publishes its name", || {
            let named = lnode
                .member_list()
                .iter()
                .any(|m| m.id == d.id && m.name == "d" && !m.is_learner);
            async move { named }
        })
        .await;
        // Writes still commit with four voters, and reach the new member.
        lnode
            .put(put_req("after", "4"))
            .await
            .expect("put with 4 members");
        let hashes = c.converged_hashes().await;
        assert_one_history(&hashes);
        assert_eq!(get_local(&d, "after").await.as_deref(), Some("4"));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_linearizable_reads_share_read_index_rounds() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        let leader = c.wait_leader().await;
        let lnode = c.node(&leader).clone();
        lnode.put(put_req("k", "v")).await.expect("put");
        let follower = c
            .node(c.nodes.keys().find(|n| **n != leader).expect("follower"))
            .clone();
        // Each round trip to the leader takes at least 100 ms, so readers pile up behind it.
        c.router
            .delay(follower.id, lnode.id, Duration::from_millis(100));
        let before = follower.read_index_rounds();
        let reads: Vec<_> = (0..100)
            .map(|_| {
                let f = follower.clone();
                tokio::spawn(async move { get(&f, "k").await })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.expect("join").as_deref(), Some("v"));
        }
        let rounds = follower.read_index_rounds() - before;
        assert!(rounds >= 1, "reads must go through a read index");
        assert!(
            rounds <= 5,
            "100 concurrent reads took {rounds} read-index rounds"
        );
        c.router.heal();
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_and_reads_work_on_every_member() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        c.wait_leader().await;
        let names: Vec<String> = c.nodes.keys().cloned().collect();
        // Every member publishes its name and client URLs, and every member sees the same list.
        wait_until(
            Duration::from_secs(20),
            "all members list the same published members",
            || {
                let lists: Vec<_> = c.nodes.values().map(|n| n.member_list()).collect();
                let same = lists.iter().all(|l| *l == lists[0]);
                let published = lists[0].len() == 3
                    && lists[0].iter().all(|m| {
                        m.client_ur_ls == vec![format!("http://{}.client.test:2379", m.name)]
                    });
                async move { same && published }
            },
        )
        .await;
        for (i, writer) in names.iter().enumerate() {
            let key = format!("from/{writer}");
            c.node(writer)
                .put(put_req(&key, &i.to_string()))
                .await
                .expect("put");
            // Read-your-writes through every other member, linearizably.
            for reader in &names {
                assert_eq!(
                    get(c.node(reader), &key).await.as_deref(),
                    Some(i.to_string().as_str()),
                    "{reader} must see {writer}'s acknowledged write"
                );
            }
        }
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_member_stops_and_the_rest_keep_serving() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        let leader = c.wait_leader().await;
        let lnode = c.node(&leader).clone();
        let follower = c
            .nodes
            .keys()
            .find(|n| **n != leader)
            .cloned()
            .expect("follower");
        let gone = c.node(&follower).clone();
        // Removed through the member itself: the request is forwarded to the leader.
        gone.member_remove(gone.id).await.expect("member remove");
        wait_until(Duration::from_secs(20), "the removed member stops", || {
            let stopped = *gone.shutdown_signal().borrow();
            async move { stopped }
        })
        .await;
        let ids: Vec<u64> = lnode.member_list().iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(!ids.contains(&gone.id));
        lnode
            .put(put_req("still", "here"))
            .await
            .expect("two members still commit");
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_log_syncs() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a"], |_| {}).await;
        c.wait_leader().await;
        let node = c.node("a").clone();
        let stats = node.log_stats();
        let load = |s: &std::sync::atomic::AtomicU64| s.load(std::sync::atomic::Ordering::Relaxed);
        let (entries0, syncs0) = (load(&stats.entries), load(&stats.syncs));
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let n = node.clone();
                tokio::spawn(async move { n.put(put_req(&format!("g/{i}"), "v")).await })
            })
            .collect();
        for w in writers {
            w.await.expect("join").expect("put");
        }
        let entries = load(&stats.entries) - entries0;
        let syncs = load(&stats.syncs) - syncs0;
        assert!(entries >= 1 && syncs >= 1, "writes went through the log");
        assert!(
            syncs * 4 < 200,
            "200 concurrent writes took {syncs} WAL syncs ({entries} log entries): no group commit"
        );
        // Every write was applied, each with its own revision.
        let last = node
            .range(get_req("g/0"))
            .await
            .expect("get")
            .header
            .expect("header")
            .revision;
        assert_eq!(last, 201, "200 writes on a fresh store end at revision 201");
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_change_gives_leases_a_fresh_ttl() {
    tokio::time::timeout(LIMIT, async {
        let c = TestCluster::start(&["a", "b", "c"], |_| {}).await;
        let leader = c.wait_leader().await;
        let old = c.node(&leader).clone();
        let ttl = 5;
        let lease = old.lease_grant(0, ttl).await.expect("grant").id;
        old.put(keelson_proto::etcdserverpb::PutRequest {
            lease,
            ..put_req("leased", "v")
        })
        .await
        .expect("put");
        // Let the lease age on the old leader.
        wait_until(Duration::from_secs(10), "the lease ages below 4 s", || {
            let old = old.clone();
            async move {
                old.lease_time_to_live(lease, false)
                    .await
                    .is_ok_and(|r| r.ttl < 4)
            }
        })
        .await;
        c.router.isolate(old.id);
        let majority: Vec<String> = c.nodes.keys().filter(|n| **n != leader).cloned().collect();
        wait_until(Duration::from_secs(20), "a new leader", || {
            let l = c.node(&majority[0]).leader();
            let ok = l.is_some() && l == c.node(&majority[1]).leader() && l != Some(old.id);
            async move { ok }
        })
        .await;
        let r = c
            .node(&majority[0])
            .lease_time_to_live(lease, true)
            .await
            .expect("time to live from the new leader");
        assert!(
            r.ttl >= ttl,
            "the new leader must restart the lease's full TTL (plus an election timeout), got {}",
            r.ttl
        );
        assert_eq!(r.keys, vec![b"leased".to_vec()]);
        c.router.heal();
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}
