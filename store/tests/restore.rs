//! Snapshot → restore into a new three-member cluster: the same keys, history and leases, and
//! the same HashKV, under new member and cluster ids.

mod support;

use std::time::Duration;

use keelson_proto::etcdserverpb as pb;
use keelson_store::restore::{restore, status};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_restores_into_a_new_three_member_cluster() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let src = TestCluster::start(&["src"], |_| {}).await;
        src.wait_leader().await;
        let n = src.node("src").clone();
        for i in 0..50 {
            n.put(put_req(&format!("k/{i:02}"), &format!("v{i}")))
                .await
                .expect("put");
        }
        for i in 0..10 {
            n.put(put_req(&format!("k/{i:02}"), "again"))
                .await
                .expect("overwrite");
        }
        n.delete_range(pb::DeleteRangeRequest {
            key: b"k/40".to_vec(),
            range_end: b"k/45".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete");
        n.compact(20, true).await.expect("compact");
        let lease = n.lease_grant(0, 3600).await.expect("grant").id;
        n.put(pb::PutRequest {
            lease,
            ..put_req("leased", "x")
        })
        .await
        .expect("put with lease");
        let data = n.snapshot().await.expect("snapshot");
        let want = n.hash_kv(0).expect("hash");
        let rev = want.header.expect("header").revision;
        let st = status(&data).expect("status");
        assert_eq!(st.revision, rev);
        assert_eq!(st.total_size, data.len());
        assert_eq!(data.len() % 512, 32, "sized like etcd's snapshots");

        // A corrupted file is refused.
        let mut bad = data.clone();
        bad[100] ^= 1;
        assert!(status(&bad).is_err());

        let mut dst = TestCluster::configure(&["a", "b", "c"], |_| {});
        // A refused restore leaves no data dir a member could start from.
        {
            let (_, cfg) = dst.configs.iter().next().expect("a config");
            let mut wrong = cfg.clone();
            wrong.name = "not-in-the-cluster".into();
            assert!(restore(&data, &wrong).is_err());
            assert!(!cfg.data_dir.exists());
        }
        for (name, cfg) in dst.configs.clone() {
            // Left over by an interrupted restore: replaced, and gone afterwards.
            let mut staging = cfg.data_dir.clone().into_os_string();
            staging.push(".restoring");
            let staging = std::path::PathBuf::from(staging);
            std::fs::create_dir_all(staging.join("member/db")).expect("stale staging dir");
            std::fs::write(staging.join("member/db/CURRENT"), b"junk").expect("junk");
            let r = restore(&data, &cfg).expect("restore");
            assert!(!staging.exists(), "{name}: staging dir renamed into place");
            assert!(cfg.data_dir.join("member/db").is_dir());
            assert_eq!(r.revision, rev);
            assert_ne!(r.cluster_id, n.cluster_id, "{name} joins a new cluster");
            // Restoring over an existing data dir is refused.
            assert!(restore(&data, &cfg).is_err());
        }
        for name in ["a", "b", "c"] {
            dst.boot(name).await;
        }
        let leader = dst.wait_leader().await;
        let hashes = dst.converged_hashes().await;
        for (name, (hash, hrev)) in &hashes {
            assert_eq!(
                (*hash, *hrev),
                (want.hash, rev),
                "{name} serves the snapshot's history"
            );
        }
        let l = dst.node(&leader).clone();
        assert_eq!(get(&l, "k/00").await.as_deref(), Some("again"));
        assert_eq!(get(&l, "k/41").await, None);
        assert_eq!(get(&l, "leased").await.as_deref(), Some("x"));
        let ttl = l.lease_time_to_live(lease, true).await.expect("ttl");
        assert_eq!(
            ttl.keys,
            vec![b"leased".to_vec()],
            "leases survive the restore"
        );
        let hist = l
            .range(pb::RangeRequest {
                revision: 19,
                ..get_req("k/00")
            })
            .await;
        assert!(
            hist.is_err(),
            "history below the compaction stays compacted"
        );
        // The restored cluster takes writes, continuing the revision sequence.
        let next = l
            .put(put_req("new", "1"))
            .await
            .expect("put")
            .header
            .expect("h")
            .revision;
        assert_eq!(next, rev + 1);
        assert_eq!(l.member_list().len(), 3);
        src.shutdown().await;
        dst.shutdown().await;
    })
    .await
    .expect("test timed out");
}
