//! The watch cache: every object under `/registry/` in memory, fed by one store watch, plus a
//! window of recent events.
//!
//! It serves lists at "any recent" or "current" resourceVersion and every API watch. Events
//! are published to a broadcast channel under the cache's write lock after they are appended to
//! the window, so a watcher that subscribes and reads the window under the read lock sees every
//! event exactly once. A watcher that falls behind the broadcast buffer catches up from the
//! window; one that falls behind the window gets `410 Expired`, like Kubernetes' cacher.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keelson_proto::mvccpb::event::EventType;
use keelson_proto::mvccpb::Event;
use keelson_store::watch::{WatchFilter, WatchMsg};
use keelson_store::StoreNode;
use parking_lot::{Mutex, RwLock};
use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::error::{ApiError, Result};
use crate::storage::{self, prefix_end};

/// The root of every API object key.
pub const REGISTRY_PREFIX: &str = "/registry/";
/// How long a request waits for the cache to reach a resourceVersion before giving up.
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// An object as the store holds it: its JSON is checked when it arrives but decoded into a
/// `Value` only when somebody looks at it (a read, a watcher, a selector), once, then shared.
/// Most events on most members are never looked at, and decoding was a tenth of a member's
/// CPU during creates.
///
/// The decoded and served forms are kept only for the newest states the cache received (see
/// [`MEMO_WINDOW`]), which are what watchers fan out; older states keep just their raw JSON
/// and are decoded afresh by whoever reads them (a list, a lagging watcher). A decoded `Value`
/// is several times the size of its JSON: keeping one per object and per windowed event was
/// most of a server's memory with 1,000 pods.
#[derive(Debug)]
pub struct StoredObject {
    raw: Bytes,
    rv: i64,
    memo: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    decoded: Option<Arc<Value>>,
    /// The served JSON encoding (apiVersion of the one serving version, and the bytes),
    /// made once and shared by every watcher the object is sent to.
    served: Option<(String, Bytes)>,
    /// Memos are not (or no longer) kept: readers decode for themselves and keep nothing.
    dropped: bool,
}

/// How many of the newest object states keep their decoded and served forms. Watchers that are
/// at most this many changes behind share one decoding of an event's object and of its
/// previous state.
pub const MEMO_WINDOW: usize = 256;

impl StoredObject {
    /// Checks that `raw` is one JSON object (without building it); None if it is not. `memos`:
    /// whether decoded and served forms are kept (until [`StoredObject::drop_memos`]).
    fn new(raw: Bytes, rv: i64, memos: bool) -> Option<StoredObject> {
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') || serde_json::from_slice::<IgnoredAny>(&raw).is_err() {
            return None;
        }
        Some(StoredObject {
            raw,
            rv,
            memo: Mutex::new(Memo {
                dropped: !memos,
                ..Memo::default()
            }),
        })
    }

    /// The same bytes stamped with another resourceVersion (a deleted object's last state).
    fn restamped(&self, rv: i64) -> StoredObject {
        StoredObject {
            raw: self.raw.clone(),
            rv,
            memo: Mutex::new(Memo::default()),
        }
    }

    /// Drops the decoded and served forms for good (the state left the newest
    /// [`MEMO_WINDOW`]).
    fn drop_memos(&self) {
        let mut m = self.memo.lock();
        m.decoded = None;
        m.served = None;
        m.dropped = true;
    }

    fn decode(&self) -> Arc<Value> {
        // `new` checked the syntax, so decoding cannot fail; an empty object stands in if it
        // ever did rather than a panic on the read path.
        Arc::new(
            storage::decode(&self.raw, self.rv)
                .unwrap_or_else(|_| Value::Object(Default::default())),
        )
    }

    fn decoded_in(&self, m: &mut Memo) -> Arc<Value> {
        if let Some(v) = &m.decoded {
            return Arc::clone(v);
        }
        let v = self.decode();
        if !m.dropped {
            m.decoded = Some(Arc::clone(&v));
        }
        v
    }

    /// The object as JSON with `apiVersion` and `kind` set to `api_version`/`kind`, for
    /// resources whose stored and served forms are the same. Encoded on the first call and
    /// kept while the state is memoized; None if an earlier call asked for another
    /// `api_version` (then the caller encodes it itself).
    pub fn served_json(&self, api_version: &str, kind: &str) -> Option<Bytes> {
        let mut m = self.memo.lock();
        if let Some((encoded_for, bytes)) = &m.served {
            return (encoded_for == api_version && !bytes.is_empty()).then(|| bytes.clone());
        }
        let obj = self.decoded_in(&mut m);
        let encoded = {
            let has =
                |field: &str, want: &str| obj.get(field).and_then(Value::as_str) == Some(want);
            let bytes = if has("apiVersion", api_version) && has("kind", kind) {
                serde_json::to_vec(&*obj)
            } else {
                let mut o = (*obj).clone();
                if let Some(m) = o.as_object_mut() {
                    m.insert("apiVersion".into(), Value::String(api_version.into()));
                    m.insert("kind".into(), Value::String(kind.into()));
                }
                serde_json::to_vec(&o)
            };
            Bytes::from(bytes.unwrap_or_default())
        };
        let out = (!encoded.is_empty()).then(|| encoded.clone());
        if !m.dropped {
            m.served = Some((api_version.to_string(), encoded));
        }
        out
    }

    /// The decoded object, with its resourceVersion set.
    pub fn obj(&self) -> Arc<Value> {
        let mut m = self.memo.lock();
        self.decoded_in(&mut m)
    }
}

/// One change of one object.
#[derive(Debug)]
pub struct CacheEvent {
    /// Position in the cache's event sequence (strictly increasing, no gaps).
    pub seq: u64,
    /// Store revision of the change (several events may share one, from one transaction).
    pub rev: i64,
    pub key: String,
    pub kind: EventKind,
    /// The object after the change (for a delete: the last state, stamped with the deletion
    /// revision).
    obj: Arc<StoredObject>,
    /// The object before the change.
    prev: Option<Arc<StoredObject>>,
}

impl CacheEvent {
    /// The object after the change.
    pub fn obj(&self) -> Arc<Value> {
        self.obj.obj()
    }

    /// The object after the change as served JSON (see [`StoredObject::served_json`]).
    pub fn served_json(&self, api_version: &str, kind: &str) -> Option<Bytes> {
        self.obj.served_json(api_version, kind)
    }

    /// Whether the object existed before the change.
    pub fn has_prev(&self) -> bool {
        self.prev.is_some()
    }

    /// The object before the change, if there was one.
    pub fn prev(&self) -> Option<Arc<Value>> {
        self.prev.as_deref().map(StoredObject::obj)
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub rv: i64,
    data: Arc<StoredObject>,
}

impl Entry {
    /// The object (decoded on first use, and kept only while among the newest states).
    pub fn obj(&self) -> Arc<Value> {
        self.data.obj()
    }
}

struct State {
    /// Everything up to this revision is reflected.
    rev: i64,
    objects: BTreeMap<String, Entry>,
    window: VecDeque<Arc<CacheEvent>>,
    /// The newest object states, newest last: the ones that keep their memos.
    recent: VecDeque<Arc<StoredObject>>,
    /// Sequence number the next event gets.
    next_seq: u64,
    /// Events after this revision are all in the window (for answering "too old").
    window_from_rev: i64,
    capacity: usize,
    /// Bumped whenever the cache is rebuilt from a fresh list (every watcher must restart).
    epoch: u64,
}

impl State {
    /// An empty cache holding up to `capacity` events.
    fn new(capacity: usize) -> State {
        State {
            rev: 0,
            objects: BTreeMap::new(),
            window: VecDeque::new(),
            recent: VecDeque::new(),
            next_seq: 1,
            window_from_rev: 0,
            capacity: capacity.max(1),
            epoch: 0,
        }
    }

    /// Notes a new object state; the oldest beyond [`MEMO_WINDOW`] drops its memos.
    fn remember(&mut self, obj: Arc<StoredObject>) {
        self.recent.push_back(obj);
        while self.recent.len() > MEMO_WINDOW {
            if let Some(old) = self.recent.pop_front() {
                old.drop_memos();
            }
        }
    }
}

/// A consistent view of the objects under a prefix.
pub struct Snapshot {
    pub rev: i64,
    pub items: Vec<(String, Entry)>,
}

pub struct WatchCache {
    node: Arc<StoreNode>,
    /// Decrypts what encryption at rest wrote.
    encryption: Option<Arc<crate::encryption::Transformer>>,
    state: RwLock<State>,
    events: broadcast::Sender<Arc<CacheEvent>>,
    rev: watch::Sender<i64>,
    /// The hub stream feeding the cache (for progress requests); 0 until started.
    stream: parking_lot::Mutex<u64>,
}

/// Events a lagging watcher missed, and a new receiver for what follows them.
pub type CatchUp = (Vec<Arc<CacheEvent>>, broadcast::Receiver<Arc<CacheEvent>>);

/// Where a watcher starts.
pub enum Start {
    /// Synthetic ADDED events for the current objects, then changes.
    Snapshot(Snapshot),
    /// Changes after this sequence number (already replayed from the window: `backlog`).
    After { backlog: Vec<Arc<CacheEvent>> },
}

/// A live subscription: the events after the start.
/// What [`drain`] stopped at.
pub enum Drained {
    /// No more events queued.
    Empty,
    /// The receiver fell behind and lost events: start again from a snapshot.
    Lagged,
    /// The cache is gone.
    Closed,
}

/// Hands every event already queued on a subscription to `f`, without waiting (to coalesce
/// a burst of changes into one piece of work).
pub fn drain(
    rx: &mut broadcast::Receiver<Arc<CacheEvent>>,
    mut f: impl FnMut(&CacheEvent),
) -> Drained {
    use broadcast::error::TryRecvError;
    loop {
        match rx.try_recv() {
            Ok(ev) => f(&ev),
            Err(TryRecvError::Lagged(_)) => return Drained::Lagged,
            Err(TryRecvError::Empty) => return Drained::Empty,
            Err(TryRecvError::Closed) => return Drained::Closed,
        }
    }
}

pub struct Subscription {
    pub start: Start,
    pub rx: broadcast::Receiver<Arc<CacheEvent>>,
    /// Last sequence number covered by `start` (events from `rx` at or below it are skipped).
    pub seq: u64,
    pub epoch: u64,
}

impl WatchCache {
    /// Builds the cache from a list of the store and keeps it current.
    pub async fn start(
        node: Arc<StoreNode>,
        capacity: usize,
        encryption: Option<Arc<crate::encryption::Transformer>>,
    ) -> Result<Arc<WatchCache>> {
        let (events, _) = broadcast::channel(capacity.clamp(1024, 1 << 16));
        let (rev, _) = watch::channel(0);
        let cache = Arc::new(WatchCache {
            node,
            encryption,
            state: RwLock::new(State::new(capacity)),
            events,
            rev,
            stream: parking_lot::Mutex::new(0),
        });
        let first = cache.subscribe_store().await?;
        let c = Arc::clone(&cache);
        tokio::spawn(async move { c.run(first).await });
        Ok(cache)
    }

    /// Opens the store watch and (re)loads every object at the watch's start revision.
    async fn subscribe_store(self: &Arc<Self>) -> Result<tokio::sync::mpsc::Receiver<WatchMsg>> {
        let hub = self.node.hub();
        let (stream, rx) = hub.open_stream();
        let filter = WatchFilter {
            key: REGISTRY_PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(REGISTRY_PREFIX.as_bytes()),
            no_put: false,
            no_delete: false,
        };
        let (_, cur) = hub.watch(stream, filter, 0, false)?;
        // Everything at `cur` from the store; everything after it arrives on the stream.
        let mut objects = BTreeMap::new();
        let mut from: Vec<u8> = REGISTRY_PREFIX.as_bytes().to_vec();
        let end = prefix_end(REGISTRY_PREFIX.as_bytes());
        loop {
            let resp = self
                .node
                .mvcc()
                .range(&keelson_proto::etcdserverpb::RangeRequest {
                    key: from.clone(),
                    range_end: end.clone(),
                    revision: cur,
                    limit: 10_000,
                    ..Default::default()
                })?;
            let more = resp.more;
            let last = resp.kvs.last().map(|kv| kv.key.clone());
            for kv in resp.kvs {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                let Some(value) = self.plain(&key, kv.value) else {
                    continue;
                };
                match StoredObject::new(value, kv.mod_revision, false) {
                    Some(obj) => {
                        objects.insert(
                            key,
                            Entry {
                                rv: kv.mod_revision,
                                data: Arc::new(obj),
                            },
                        );
                    }
                    None => tracing::warn!(key, "skipping an object that is not JSON"),
                }
            }
            match (more, last) {
                (true, Some(mut k)) => {
                    k.push(0);
                    from = k;
                }
                _ => break,
            }
        }
        {
            let mut st = self.state.write();
            st.objects = objects;
            st.window.clear();
            st.recent.clear();
            st.rev = cur;
            st.window_from_rev = cur;
            st.epoch += 1;
        }
        *self.stream.lock() = stream;
        self.rev.send_replace(cur);
        Ok(rx)
    }

    async fn run(self: Arc<Self>, mut rx: tokio::sync::mpsc::Receiver<WatchMsg>) {
        let mut shutdown = self.node.shutdown_signal();
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            match msg {
                Some(WatchMsg::Events {
                    revision, events, ..
                }) => self.apply(revision, events),
                Some(WatchMsg::Progress { revision, .. }) => {
                    let mut st = self.state.write();
                    if revision > st.rev {
                        st.rev = revision;
                        drop(st);
                        self.rev.send_replace(revision);
                    }
                }
                Some(WatchMsg::Compacted { .. }) | None => {
                    // The store watch is gone (compacted past us after a snapshot install, or
                    // closed): rebuild from a fresh list. Watchers notice the new epoch.
                    tracing::warn!("watch cache lost its store watch; relisting");
                    loop {
                        match self.subscribe_store().await {
                            Ok(r) => {
                                rx = r;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "watch cache relist failed");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                        if *shutdown.borrow() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// A stored value as JSON bytes: decrypted if encryption at rest wrote it. A value that
    /// cannot be decrypted is left out of the cache (and logged): reads of it through the
    /// store fail with the reason instead of serving something else.
    fn plain(&self, key: &str, value: Vec<u8>) -> Option<Bytes> {
        let Some(t) = &self.encryption else {
            return Some(Bytes::from(value));
        };
        match t.decrypt(key, &value) {
            Ok((std::borrow::Cow::Borrowed(_), _)) => Some(Bytes::from(value)),
            Ok((std::borrow::Cow::Owned(plain), _)) => Some(Bytes::from(plain)),
            Err(e) => {
                tracing::error!(key, error = %e, "cannot decrypt a stored object");
                None
            }
        }
    }

    fn apply(&self, revision: i64, events: Vec<Event>) {
        // Check the JSON before taking the lock: readers wait on it, not on parsing.
        let changes: Vec<(String, i64, Option<StoredObject>)> = events
            .into_iter()
            .filter_map(|ev| {
                let kv = ev.kv?;
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                if ev.r#type == EventType::Delete as i32 {
                    return Some((key, kv.mod_revision, None));
                }
                let value = self.plain(&key, kv.value)?;
                match StoredObject::new(value, kv.mod_revision, true) {
                    Some(obj) => Some((key, kv.mod_revision, Some(obj))),
                    None => {
                        tracing::warn!(key, "skipping an object that is not JSON");
                        None
                    }
                }
            })
            .collect();
        let mut st = self.state.write();
        for (key, rev, stored) in changes {
            let prev = st.objects.get(&key).map(|e| Arc::clone(&e.data));
            let (kind, obj) = match stored {
                None => {
                    st.objects.remove(&key);
                    let Some(p) = &prev else { continue };
                    (EventKind::Deleted, Arc::new(p.restamped(rev)))
                }
                Some(obj) => {
                    let obj = Arc::new(obj);
                    st.objects.insert(
                        key.clone(),
                        Entry {
                            rv: rev,
                            data: Arc::clone(&obj),
                        },
                    );
                    let kind = if prev.is_some() {
                        EventKind::Modified
                    } else {
                        EventKind::Added
                    };
                    (kind, obj)
                }
            };
            st.remember(Arc::clone(&obj));
            let seq = st.next_seq;
            st.next_seq += 1;
            let ev = Arc::new(CacheEvent {
                seq,
                rev,
                key,
                kind,
                obj,
                prev,
            });
            st.window.push_back(Arc::clone(&ev));
            while st.window.len() > st.capacity {
                if let Some(old) = st.window.pop_front() {
                    st.window_from_rev = old.rev;
                }
            }
            // Receivers that lag behind the buffer catch up from the window.
            let _ = self.events.send(ev);
        }
        if revision > st.rev {
            st.rev = revision;
        }
        let rev = st.rev;
        drop(st);
        self.rev.send_replace(rev);
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        self.state.read().rev
    }

    /// Waits until the cache reflects `rev` (bounded by [`FRESHNESS_TIMEOUT`]).
    pub async fn wait_for(&self, rev: i64) -> Result<()> {
        let mut rx = self.rev.subscribe();
        if *rx.borrow() >= rev {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + FRESHNESS_TIMEOUT;
        loop {
            // Ask the store for a progress notice: the cache's revision moves even when no
            // object under /registry/ changed.
            let stream = *self.stream.lock();
            self.node.hub().request_progress(stream);
            let step_end = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            let reached = match tokio::time::timeout_at(step_end, rx.wait_for(|r| *r >= rev)).await
            {
                Ok(Ok(_)) => true,
                Ok(Err(_)) => return Err(ApiError::Unavailable("watch cache stopped".into())),
                Err(_) => false,
            };
            if reached {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let current = *rx.borrow();
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {rev}, current: {current}"
                )));
            }
        }
    }

    /// Waits until the cache is as fresh as a linearizable read would be.
    pub async fn wait_fresh(&self) -> Result<i64> {
        self.node.linearize().await?;
        let rev = self.node.mvcc().current_rev();
        self.wait_for(rev).await?;
        Ok(rev)
    }

    /// Objects under `prefix`, now.
    pub fn snapshot(&self, prefix: &str) -> Snapshot {
        let st = self.state.read();
        Snapshot {
            rev: st.rev,
            items: range_prefix(&st.objects, prefix),
        }
    }

    /// One object, from the cache.
    pub fn get(&self, key: &str) -> (i64, Option<Entry>) {
        let st = self.state.read();
        (st.rev, st.objects.get(key).cloned())
    }

    /// A subscription starting with the current objects under `prefix` (watch without a
    /// resourceVersion, or from "0").
    pub fn subscribe_snapshot(&self, prefix: &str) -> Subscription {
        let st = self.state.read();
        let rx = self.events.subscribe();
        let items = range_prefix(&st.objects, prefix);
        Subscription {
            start: Start::Snapshot(Snapshot { rev: st.rev, items }),
            rx,
            seq: st.next_seq - 1,
            epoch: st.epoch,
        }
    }

    /// A subscription to every change after revision `rv`; `410 Expired` if the window no
    /// longer reaches back to it.
    pub fn subscribe_after(&self, rv: i64) -> Result<Subscription> {
        let st = self.state.read();
        if rv < st.window_from_rev {
            return Err(ApiError::too_old(rv, st.window_from_rev + 1));
        }
        let rx = self.events.subscribe();
        let backlog: Vec<Arc<CacheEvent>> =
            st.window.iter().filter(|e| e.rev > rv).cloned().collect();
        Ok(Subscription {
            start: Start::After { backlog },
            rx,
            seq: st.next_seq - 1,
            epoch: st.epoch,
        })
    }

    /// Events after sequence number `seq` from the window (a lagging receiver's catch-up);
    /// None if the window no longer holds them or the cache was rebuilt.
    pub fn since_seq(&self, seq: u64, epoch: u64) -> Option<CatchUp> {
        let st = self.state.read();
        if st.epoch != epoch {
            return None;
        }
        let first = st.window.front().map_or(st.next_seq, |e| e.seq);
        if seq + 1 < first {
            return None;
        }
        let rx = self.events.subscribe();
        let evs = st.window.iter().filter(|e| e.seq > seq).cloned().collect();
        Some((evs, rx))
    }

    /// The current epoch (changes when the cache is rebuilt).
    pub fn epoch(&self) -> u64 {
        self.state.read().epoch
    }

    /// Oldest revision a watch may start from.
    pub fn oldest(&self) -> i64 {
        self.state.read().window_from_rev
    }
}

fn range_prefix(objects: &BTreeMap<String, Entry>, prefix: &str) -> Vec<(String, Entry)> {
    objects
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_json_is_the_stamped_object_encoded_once_per_serving_version() {
        let raw = Bytes::from_static(
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"d"}}"#,
        );
        let obj = StoredObject::new(raw, 42, true).expect("a JSON object");
        let first = obj.served_json("v1", "Pod").expect("encoded");
        let v: Value = serde_json::from_slice(&first).expect("valid JSON");
        assert_eq!(v, *obj.obj());
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        // The same bytes, not a second encoding.
        let again = obj.served_json("v1", "Pod").expect("encoded");
        assert_eq!(again.as_ptr(), first.as_ptr());
        // Another serving version encodes for itself.
        assert_eq!(obj.served_json("v2", "Pod"), None);
    }

    fn pod(name: &str, rv: i64) -> Arc<StoredObject> {
        let raw = format!(r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}}}}"#);
        Arc::new(StoredObject::new(Bytes::from(raw), rv, true).expect("a JSON object"))
    }

    #[test]
    fn only_the_newest_states_keep_their_decoded_form() {
        let mut st = State::new(10);
        let first = pod("first", 1);
        let decoded = first.obj();
        let served = first.served_json("v1", "Pod").expect("encoded");
        st.remember(Arc::clone(&first));
        // Still among the newest: the same decoding and encoding are shared.
        assert!(Arc::ptr_eq(&decoded, &first.obj()));
        let mut last = Arc::clone(&first);
        for i in 0..MEMO_WINDOW {
            last = pod(&format!("p{i}"), 2 + i as i64);
            let _ = last.obj();
            st.remember(Arc::clone(&last));
        }
        assert_eq!(st.recent.len(), MEMO_WINDOW);
        // The oldest lost its memos: each read decodes afresh, and nothing is kept.
        let again = first.obj();
        assert!(!Arc::ptr_eq(&decoded, &again));
        assert_eq!(*again, *decoded);
        assert!(!Arc::ptr_eq(&again, &first.obj()));
        let reencoded = first.served_json("v1", "Pod").expect("encoded");
        assert_eq!(reencoded, served);
        assert_ne!(reencoded.as_ptr(), served.as_ptr());
        // The newest keeps its decoding.
        assert!(Arc::ptr_eq(&last.obj(), &last.obj()));
        // A state loaded by a relist never keeps one.
        let listed = StoredObject::new(Bytes::from_static(br#"{"kind":"Pod"}"#), 3, false)
            .expect("a JSON object");
        assert!(!Arc::ptr_eq(&listed.obj(), &listed.obj()));
    }

    #[test]
    fn served_json_sets_the_serving_group_version_and_kind() {
        let raw = Bytes::from_static(br#"{"metadata":{"name":"x"}}"#);
        let obj = StoredObject::new(raw, 7, true).expect("a JSON object");
        let v: Value =
            serde_json::from_slice(&obj.served_json("apps/v1", "Deployment").expect("encoded"))
                .expect("valid JSON");
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(v["metadata"]["resourceVersion"], "7");
    }
}
