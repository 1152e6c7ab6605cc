//! The watch hub: matches each applied revision's events against watchers.
//!
//! The apply path calls [`WatchHub::publish`] once per batch; it never blocks: every watch
//! stream has a bounded channel written with `try_send`. A watcher whose stream is full (or
//! that starts in the past) is "unsynced": a task of its own reads its missing revisions back
//! from history and sends them with back-pressure, then moves it to the synced set under the
//! hub lock once nothing new was published meanwhile. Events are never dropped: a watcher that
//! cannot be caught up because history was compacted gets a compaction notice and is cancelled,
//! exactly like etcd.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keelson_proto::mvccpb::{event::EventType, Event};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{EtcdError, StoreError};
use crate::mvcc::{Mvcc, RevEvents};

pub type StreamId = u64;
/// A watcher's hub-wide identity (distinct from the client-visible watch id).
pub type WatcherKey = u64;

/// Capacity of each stream's channel, in messages.
pub const STREAM_CHANNEL_CAPACITY: usize = 256;
/// Revisions read from history per catch-up step.
const CATCH_UP_REVS: usize = 128;

/// What a watch stream receives from the hub, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchMsg {
    /// Events of whole revisions, oldest first; `revision` is the store revision they bring the
    /// watcher up to.
    Events {
        watcher: WatcherKey,
        revision: i64,
        events: Vec<Event>,
    },
    /// History the watcher needs is compacted; the watcher is gone.
    Compacted {
        watcher: WatcherKey,
        compact_revision: i64,
    },
    /// Everything up to `revision` has been sent (for one watcher, or for the whole stream).
    Progress {
        watcher: Option<WatcherKey>,
        revision: i64,
    },
}

/// What a watcher selects.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    pub key: Vec<u8>,
    /// etcd conventions: empty = just `key`, `"\0"` = every key from `key` on.
    pub range_end: Vec<u8>,
    pub no_put: bool,
    pub no_delete: bool,
}

impl WatchFilter {
    fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    fn matches_key(&self, k: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => k == self.key.as_slice(),
            [0] => k >= self.key.as_slice(),
            end => k >= self.key.as_slice() && k < end,
        }
    }

    fn matches(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        if !self.matches_key(&kv.key) {
            return false;
        }
        let is_put = ev.r#type == EventType::Put as i32;
        !(is_put && self.no_put || !is_put && self.no_delete)
    }
}

struct Watcher {
    stream: StreamId,
    filter: WatchFilter,
    /// Lowest revision still to deliver.
    next_rev: i64,
    synced: bool,
    progress_notify: bool,
}

#[derive(Default)]
struct Inner {
    published: i64,
    compact: i64,
    next_stream: StreamId,
    next_watcher: WatcherKey,
    streams: HashMap<StreamId, mpsc::Sender<WatchMsg>>,
    watchers: HashMap<WatcherKey, Watcher>,
    synced_keys: HashMap<Vec<u8>, HashSet<WatcherKey>>,
    synced_ranges: HashSet<WatcherKey>,
}

impl Inner {
    fn index_synced(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get_mut(&key) else {
            return;
        };
        w.synced = true;
        if w.filter.is_single_key() {
            self.synced_keys
                .entry(w.filter.key.clone())
                .or_default()
                .insert(key);
        } else {
            self.synced_ranges.insert(key);
        }
    }

    fn unindex_synced(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get_mut(&key) else {
            return;
        };
        w.synced = false;
        if w.filter.is_single_key() {
            if let Some(set) = self.synced_keys.get_mut(&w.filter.key) {
                set.remove(&key);
                if set.is_empty() {
                    self.synced_keys.remove(&w.filter.key);
                }
            }
        } else {
            self.synced_ranges.remove(&key);
        }
    }

    fn remove(&mut self, key: WatcherKey) -> bool {
        self.unindex_synced(key);
        self.watchers.remove(&key).is_some()
    }
}

/// See the module documentation.
pub struct WatchHub {
    inner: Mutex<Inner>,
    mvcc: Arc<Mvcc>,
    events_sent: AtomicU64,
    slowed: AtomicU64,
}

impl WatchHub {
    pub fn new(mvcc: Arc<Mvcc>) -> Arc<Self> {
        let (published, compact) = {
            let st = mvcc.read();
            (st.current_rev, st.compact_rev)
        };
        Arc::new(WatchHub {
            inner: Mutex::new(Inner {
                published,
                compact,
                ..Default::default()
            }),
            mvcc,
            events_sent: AtomicU64::new(0),
            slowed: AtomicU64::new(0),
        })
    }

    /// The newest revision whose events have been published.
    pub fn published_rev(&self) -> i64 {
        self.inner.lock().published
    }

    /// Opens a stream: the receiver gets every message for the stream's watchers, in order.
    pub fn open_stream(&self) -> (StreamId, mpsc::Receiver<WatchMsg>) {
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL_CAPACITY);
        let mut inner = self.inner.lock();
        inner.next_stream += 1;
        let id = inner.next_stream;
        inner.streams.insert(id, tx);
        (id, rx)
    }

    /// Closes a stream and drops its watchers.
    pub fn close_stream(&self, stream: StreamId) {
        let mut inner = self.inner.lock();
        inner.streams.remove(&stream);
        let keys: Vec<WatcherKey> = inner
            .watchers
            .iter()
            .filter(|(_, w)| w.stream == stream)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            inner.remove(k);
        }
    }

    /// Adds a watcher to a stream. `start_revision` 0 means "from the next revision". Returns
    /// the watcher's key and the current revision (for the "created" response).
    pub fn watch(
        self: &Arc<Self>,
        stream: StreamId,
        filter: WatchFilter,
        start_revision: i64,
        progress_notify: bool,
    ) -> Result<(WatcherKey, i64), StoreError> {
        let mut inner = self.inner.lock();
        if !inner.streams.contains_key(&stream) {
            return Err(EtcdError::Internal("watch stream is closed".into()).into());
        }
        inner.next_watcher += 1;
        let key = inner.next_watcher;
        let cur = inner.published;
        let synced = start_revision == 0 || start_revision > cur;
        let next_rev = if synced {
            (cur + 1).max(start_revision)
        } else {
            start_revision
        };
        inner.watchers.insert(
            key,
            Watcher {
                stream,
                filter,
                next_rev,
                synced: false,
                progress_notify,
            },
        );
        if synced {
            inner.index_synced(key);
        } else {
            self.spawn_catch_up(key);
        }
        Ok((key, cur))
    }

    /// Removes a watcher; returns whether it existed.
    pub fn cancel(&self, key: WatcherKey) -> bool {
        self.inner.lock().remove(key)
    }

    /// Publishes applied revisions. Never blocks.
    pub fn publish(self: &Arc<Self>, revs: Vec<RevEvents>) {
        if revs.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        for rev in revs {
            inner.published = rev.revision;
            let mut per: Vec<(WatcherKey, Vec<Event>)> = Vec::new();
            let mut slot: HashMap<WatcherKey, usize> = HashMap::new();
            for ev in &rev.events {
                let Some(kv) = &ev.kv else { continue };
                let exact = inner.synced_keys.get(&kv.key).into_iter().flatten();
                for &wk in exact.chain(inner.synced_ranges.iter()) {
                    let Some(w) = inner.watchers.get(&wk) else {
                        continue;
                    };
                    if rev.revision < w.next_rev || !w.filter.matches(ev) {
                        continue;
                    }
                    let i = *slot.entry(wk).or_insert_with(|| {
                        per.push((wk, Vec::new()));
                        per.len() - 1
                    });
                    per[i].1.push(ev.clone());
                }
            }
            for (wk, events) in per {
                let Some(stream) = inner.watchers.get(&wk).map(|w| w.stream) else {
                    continue;
                };
                let Some(tx) = inner.streams.get(&stream) else {
                    inner.remove(wk);
                    continue;
                };
                let n = events.len() as u64;
                match tx.try_send(WatchMsg::Events {
                    watcher: wk,
                    revision: rev.revision,
                    events,
                }) {
                    Ok(()) => {
                        self.events_sent.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.slowed.fetch_add(1, Ordering::Relaxed);
                        // Slow consumer: catch up from history, starting at this revision.
                        inner.unindex_synced(wk);
                        if let Some(w) = inner.watchers.get_mut(&wk) {
                            w.next_rev = rev.revision;
                        }
                        self.spawn_catch_up(wk);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        inner.remove(wk);
                    }
                }
            }
        }
    }

    /// Records a compaction (unsynced watchers behind it are cancelled by their catch-up).
    pub fn compacted(&self, rev: i64) {
        self.inner.lock().compact = rev;
    }

    /// The state machine was replaced by a snapshot: every watcher catches up from the new
    /// history (or learns it was compacted).
    pub fn restored(self: &Arc<Self>, current_rev: i64, compact_rev: i64) {
        let mut inner = self.inner.lock();
        let old = inner.published;
        inner.published = current_rev;
        inner.compact = compact_rev;
        let synced: Vec<WatcherKey> = inner
            .watchers
            .iter()
            .filter(|(_, w)| w.synced)
            .map(|(k, _)| *k)
            .collect();
        for wk in synced {
            inner.unindex_synced(wk);
            if let Some(w) = inner.watchers.get_mut(&wk) {
                w.next_rev = w.next_rev.max(old + 1);
            }
            self.spawn_catch_up(wk);
        }
    }

    /// etcd's RequestProgress: if every watcher of the stream is synced, queue a stream-wide
    /// progress notification (after everything already queued) and return true.
    pub fn request_progress(&self, stream: StreamId) -> bool {
        let inner = self.inner.lock();
        let all_synced = inner
            .watchers
            .values()
            .filter(|w| w.stream == stream)
            .all(|w| w.synced);
        if !all_synced {
            return false;
        }
        let Some(tx) = inner.streams.get(&stream) else {
            return true;
        };
        if !inner.watchers.values().any(|w| w.stream == stream) {
            return true;
        }
        tx.try_send(WatchMsg::Progress {
            watcher: None,
            revision: inner.published,
        })
        .is_ok()
    }

    /// Periodic progress for the stream's synced watchers that asked for it.
    pub fn notify_progress(&self, stream: StreamId) {
        let inner = self.inner.lock();
        let Some(tx) = inner.streams.get(&stream) else {
            return;
        };
        for (wk, w) in &inner.watchers {
            if w.stream == stream && w.synced && w.progress_notify {
                let _ = tx.try_send(WatchMsg::Progress {
                    watcher: Some(*wk),
                    revision: inner.published,
                });
            }
        }
    }

    /// Number of watchers not yet caught up (for tests and metrics).
    pub fn unsynced_count(&self) -> usize {
        self.inner
            .lock()
            .watchers
            .values()
            .filter(|w| !w.synced)
            .count()
    }

    pub fn watcher_count(&self) -> usize {
        self.inner.lock().watchers.len()
    }

    /// Events handed to synced watchers' streams as they were published (etcd's
    /// `etcd_debugging_mvcc_events_total` counts these).
    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(Ordering::Relaxed)
    }

    /// Times a watcher's stream was full and it fell back to catching up from history.
    pub fn slowed(&self) -> u64 {
        self.slowed.load(Ordering::Relaxed)
    }

    fn spawn_catch_up(self: &Arc<Self>, key: WatcherKey) {
        let hub = self.clone();
        tokio::spawn(async move { hub.catch_up(key).await });
    }

    async fn catch_up(self: Arc<Self>, key: WatcherKey) {
        loop {
            let (tx, filter, next, target) = {
                let mut inner = self.inner.lock();
                let published = inner.published;
                let Some(w) = inner.watchers.get(&key) else {
                    return;
                };
                if w.synced {
                    return;
                }
                let Some(tx) = inner.streams.get(&w.stream).cloned() else {
                    inner.remove(key);
                    return;
                };
                if w.next_rev > published {
                    // Nothing was published since our last read: join the synced set.
                    inner.index_synced(key);
                    return;
                }
                (tx, w.filter.clone(), w.next_rev, published)
            };
            let mvcc = self.mvcc.clone();
            let read = tokio::task::spawn_blocking(move || {
                mvcc.events_between(next, target, CATCH_UP_REVS)
            })
            .await;
            let revs = match read {
                Ok(Ok(revs)) => revs,
                Ok(Err(StoreError::Etcd(EtcdError::Compacted))) => {
                    let compact_revision = self.mvcc.compact_rev();
                    let _ = tx
                        .send(WatchMsg::Compacted {
                            watcher: key,
                            compact_revision,
                        })
                        .await;
                    self.inner.lock().remove(key);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, watcher = key, "reading watch history failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "watch history task failed");
                    return;
                }
            };
            let complete = revs.len() < CATCH_UP_REVS;
            let mut new_next = if complete { target + 1 } else { next };
            let mut batch: Vec<Event> = Vec::new();
            for rev in &revs {
                new_next = new_next.max(rev.revision + 1);
                batch.extend(rev.events.iter().filter(|e| filter.matches(e)).cloned());
            }
            if !batch.is_empty()
                && tx
                    .send(WatchMsg::Events {
                        watcher: key,
                        revision: target.min(new_next - 1),
                        events: batch,
                    })
                    .await
                    .is_err()
            {
                self.inner.lock().remove(key);
                return;
            }
            let mut inner = self.inner.lock();
            match inner.watchers.get_mut(&key) {
                Some(w) => w.next_rev = new_next,
                None => return,
            }
        }
    }
}
