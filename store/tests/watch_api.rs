//! The Watch gRPC API option by option, through a raw tonic client (so every field of the
//! wire protocol is visible): watch ids, filters, prev_kv, cancel, progress, fragments,
//! compaction, and replay followed by live events.

mod support;

use std::time::Duration;

use keelson_proto::etcdserverpb::{
    self as pb, kv_client::KvClient, watch_client::WatchClient, watch_create_request::FilterType,
    watch_request::RequestUnion,
};
use keelson_proto::mvccpb::event::EventType;
use support::GrpcMember;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

const LIMIT: Duration = Duration::from_secs(60);

struct Stream {
    tx: mpsc::Sender<pb::WatchRequest>,
    rx: Streaming<pb::WatchResponse>,
}

impl Stream {
    async fn open(ch: Channel) -> Stream {
        let (tx, rx) = mpsc::channel(16);
        let rx = WatchClient::new(ch)
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch stream")
            .into_inner();
        Stream { tx, rx }
    }

    async fn send(&self, r: RequestUnion) {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(r),
            })
            .await
            .expect("send watch request");
    }

    async fn create(&self, c: pb::WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await;
    }

    async fn next(&mut self) -> pb::WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a watch response within 10 s")
            .expect("stream healthy")
            .expect("stream open")
    }

    /// Asserts nothing arrives for a while (used after cancel; bounded, not a wait for a
    /// condition).
    async fn quiet(&mut self, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, self.rx.message()).await {
            panic!("expected no watch response, got {m:?}");
        }
    }
}

fn create(key: &str, end: &str) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

async fn put(kv: &mut KvClient<Channel>, k: &str, v: &str) -> i64 {
    kv.put(pb::PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .header
    .expect("header")
    .revision
}

async fn del(kv: &mut KvClient<Channel>, k: &str) -> i64 {
    kv.delete_range(pb::DeleteRangeRequest {
        key: k.into(),
        ..Default::default()
    })
    .await
    .expect("delete")
    .into_inner()
    .header
    .expect("header")
    .revision
}

async fn setup(tweak: impl FnOnce(&mut keelson_store::StoreConfig)) -> (GrpcMember, Channel) {
    let m = GrpcMember::start(tweak).await;
    let ch = Channel::from_shared(m.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    (m, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ids_filters_prev_kv_and_cancel() {
    tokio::time::timeout(LIMIT, async {
        let (m, ch) = setup(|_| {}).await;
        let mut kv = KvClient::new(ch.clone());
        let mut s = Stream::open(ch).await;

        // A client-chosen id, then an automatic one (etcd starts those at 0).
        s.create(pb::WatchCreateRequest {
            watch_id: 7,
            prev_kv: true,
            ..create("a", "")
        })
        .await;
        let r = s.next().await;
        assert!(r.created && !r.canceled && r.watch_id == 7, "{r:?}");
        s.create(pb::WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            ..create("a", "b")
        })
        .await;
        let r = s.next().await;
        assert!(r.created && r.watch_id == 0, "{r:?}");
        // Reusing an id on the same stream is refused.
        s.create(pb::WatchCreateRequest {
            watch_id: 7,
            ..create("x", "")
        })
        .await;
        let r = s.next().await;
        assert!(r.created && r.canceled && r.watch_id == 7, "{r:?}");
        assert!(r.cancel_reason.contains("duplicate watch ID"), "{r:?}");

        let rev1 = put(&mut kv, "a", "1").await;
        let r = s.next().await;
        assert_eq!(
            r.watch_id, 7,
            "the NOPUT watcher must not see the put: {r:?}"
        );
        assert_eq!(r.events.len(), 1);
        assert!(
            r.events[0].prev_kv.is_none(),
            "a create has no previous value"
        );
        assert_eq!(r.header.expect("header").revision, rev1);

        let rev2 = put(&mut kv, "a", "2").await;
        let r = s.next().await;
        assert_eq!(r.watch_id, 7);
        let prev = r.events[0].prev_kv.as_ref().expect("prev_kv on update");
        assert_eq!(
            (prev.value.as_slice(), prev.mod_revision),
            (&b"1"[..], rev1)
        );
        assert_eq!(r.events[0].kv.as_ref().expect("kv").mod_revision, rev2);

        let rev3 = del(&mut kv, "a").await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let r = s.next().await;
            assert_eq!(r.events.len(), 1, "{r:?}");
            let ev = &r.events[0];
            assert_eq!(ev.r#type, EventType::Delete as i32);
            assert_eq!(ev.kv.as_ref().expect("kv").mod_revision, rev3);
            if r.watch_id == 7 {
                let prev = ev.prev_kv.as_ref().expect("prev_kv on delete");
                assert_eq!(prev.value, b"2");
            }
            seen.push(r.watch_id);
        }
        seen.sort();
        assert_eq!(seen, vec![0, 7], "both watchers see the delete");

        // Cancel: acknowledged, and nothing more arrives for that watcher.
        s.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id: 7,
        }))
        .await;
        let r = s.next().await;
        assert!(r.canceled && r.watch_id == 7, "{r:?}");
        put(&mut kv, "a", "3").await;
        s.quiet(Duration::from_millis(300)).await;
        m.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_replay_then_live_and_compacted_start() {
    tokio::time::timeout(LIMIT, async {
        let (m, ch) = setup(|_| {}).await;
        let mut kv = KvClient::new(ch.clone());
        let mut revs = Vec::new();
        for i in 0..5 {
            revs.push(put(&mut kv, &format!("h/{i}"), "v").await);
        }
        let mut s = Stream::open(ch.clone()).await;
        s.create(pb::WatchCreateRequest {
            start_revision: revs[1],
            ..create("h/", "h0")
        })
        .await;
        assert!(s.next().await.created);
        let mut got = Vec::new();
        while got.len() < 4 {
            for ev in s.next().await.events {
                got.push(ev.kv.expect("kv").mod_revision);
            }
        }
        let live = put(&mut kv, "h/9", "live").await;
        while got.len() < 5 {
            for ev in s.next().await.events {
                got.push(ev.kv.expect("kv").mod_revision);
            }
        }
        assert_eq!(got, vec![revs[1], revs[2], revs[3], revs[4], live]);

        // Compact, then watch from before the compact revision.
        kv.compact(pb::CompactionRequest {
            revision: revs[3],
            physical: true,
        })
        .await
        .expect("compact");
        let mut s2 = Stream::open(ch.clone()).await;
        s2.create(pb::WatchCreateRequest {
            start_revision: revs[1],
            ..create("h/", "h0")
        })
        .await;
        let r = s2.next().await;
        assert!(r.created, "{r:?}");
        let r = s2.next().await;
        assert!(r.canceled, "{r:?}");
        assert_eq!(r.compact_revision, revs[3]);
        // Exactly at the compact revision is allowed.
        let mut s3 = Stream::open(ch).await;
        s3.create(pb::WatchCreateRequest {
            start_revision: revs[3],
            ..create("h/", "h0")
        })
        .await;
        assert!(s3.next().await.created);
        let r = s3.next().await;
        assert!(!r.canceled, "{r:?}");
        assert_eq!(r.events[0].kv.as_ref().expect("kv").mod_revision, revs[3]);
        m.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_requests_and_notifications() {
    tokio::time::timeout(LIMIT, async {
        let (m, ch) = setup(|c| c.watch_progress_interval = Duration::from_millis(200)).await;
        let mut kv = KvClient::new(ch.clone());
        let rev = put(&mut kv, "p", "1").await;
        let mut s = Stream::open(ch).await;
        s.create(pb::WatchCreateRequest {
            progress_notify: true,
            ..create("p", "")
        })
        .await;
        let created = s.next().await;
        assert!(created.created);
        // RequestProgress: a stream-wide notice (watch id -1) at the current revision.
        s.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
            .await;
        loop {
            let r = s.next().await;
            assert!(r.events.is_empty() && !r.canceled, "{r:?}");
            if r.watch_id == -1 {
                assert_eq!(r.header.expect("header").revision, rev);
                break;
            }
        }
        // progress_notify: periodic notices for the watcher itself.
        let other = put(&mut kv, "q", "unrelated").await;
        loop {
            let r = s.next().await;
            assert!(r.events.is_empty(), "{r:?}");
            if r.watch_id == created.watch_id && r.header.map(|h| h.revision) == Some(other) {
                break;
            }
        }
        m.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_revisions_are_fragmented_when_asked() {
    tokio::time::timeout(LIMIT, async {
        let max = 4096;
        let (m, ch) = setup(|c| c.max_request_bytes = max).await;
        let mut kv = KvClient::new(ch.clone());
        let value = "x".repeat(100);
        let txn = pb::TxnRequest {
            success: (0..20)
                .map(|i| pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                        key: format!("f/{i:02}").into(),
                        value: value.clone().into(),
                        ..Default::default()
                    })),
                })
                .collect(),
            ..Default::default()
        };
        assert!(
            prost::Message::encoded_len(&txn) < max,
            "the txn itself fits"
        );
        // Overwrites with prev_kv: each event carries two values.
        for i in 0..20 {
            put(&mut kv, &format!("f/{i:02}"), &value).await;
        }
        let mut plain = Stream::open(ch.clone()).await;
        plain
            .create(pb::WatchCreateRequest {
                prev_kv: true,
                ..create("f/", "f0")
            })
            .await;
        assert!(plain.next().await.created);
        let mut frag = Stream::open(ch).await;
        frag.create(pb::WatchCreateRequest {
            fragment: true,
            prev_kv: true,
            ..create("f/", "f0")
        })
        .await;
        assert!(frag.next().await.created);
        let rev = kv
            .txn(txn)
            .await
            .expect("txn")
            .into_inner()
            .header
            .expect("h")
            .revision;

        let whole = plain.next().await;
        assert_eq!(whole.events.len(), 20);
        assert!(!whole.fragment);
        assert!(
            prost::Message::encoded_len(&whole) > max,
            "the revision needs fragments"
        );

        let mut parts = Vec::new();
        loop {
            let r = frag.next().await;
            let last = !r.fragment;
            parts.push(r);
            if last {
                break;
            }
        }
        assert!(parts.len() > 1, "expected fragments");
        let events: Vec<_> = parts
            .iter()
            .flat_map(|p| p.events.iter().cloned())
            .collect();
        assert_eq!(events, whole.events);
        assert!(events
            .iter()
            .all(|e| e.kv.as_ref().map(|kv| kv.mod_revision) == Some(rev)));
        m.stop().await;
    })
    .await
    .expect("test timed out");
}
