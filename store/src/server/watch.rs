//! `etcdserverpb.Watch`: one task per stream multiplexes the stream's watchers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keelson_proto::etcdserverpb::{
    self as pb, watch_create_request::FilterType, watch_request::RequestUnion, watch_server::Watch,
};
use keelson_proto::mvccpb::{event::EventType, Event};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::node::StoreNode;
use crate::watch::{StreamId, WatchFilter, WatchMsg, WatcherKey};

pub struct WatchService {
    node: Arc<StoreNode>,
}

impl WatchService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        WatchService { node }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        r: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Who the stream's watches are for, should authentication be on when they are made.
        let user = self
            .node
            .with_state(|st| super::auth::identity(&st.auth, &r).ok());
        let inbound = r.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        tokio::spawn(async move {
            let mut s = Session::new(node, tx, user);
            s.run(inbound).await;
            s.close();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct WatcherOpts {
    watch_id: i64,
    prev_kv: bool,
    fragment: bool,
}

struct Session {
    node: Arc<StoreNode>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    stream: StreamId,
    hub_rx: Option<mpsc::Receiver<WatchMsg>>,
    watchers: HashMap<WatcherKey, WatcherOpts>,
    by_id: HashMap<i64, WatcherKey>,
    next_id: i64,
    progress_pending: bool,
    /// The stream's user (token or client certificate), if it named one.
    user: Option<String>,
}

impl Session {
    fn new(
        node: Arc<StoreNode>,
        out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
        user: Option<String>,
    ) -> Self {
        let (stream, hub_rx) = node.hub().open_stream();
        Session {
            node,
            out,
            stream,
            hub_rx: Some(hub_rx),
            watchers: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            progress_pending: false,
            user,
        }
    }

    fn close(&self) {
        self.node.hub().close_stream(self.stream);
    }

    async fn run(&mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let Some(mut hub_rx) = self.hub_rx.take() else {
            return;
        };
        let mut progress = tokio::time::interval(self.node.config.watch_progress_interval);
        progress.tick().await;
        let mut retry = tokio::time::interval(Duration::from_millis(50));
        let mut shutdown = self.node.shutdown_signal();
        loop {
            tokio::select! {
                req = inbound.message() => match req {
                    Ok(Some(req)) => {
                        if self.handle_request(req).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "watch stream ended");
                        return;
                    }
                },
                msg = hub_rx.recv() => match msg {
                    Some(m) => {
                        if self.deliver(m).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = progress.tick() => self.node.hub().notify_progress(self.stream),
                _ = retry.tick(), if self.progress_pending => {
                    if self.node.hub().request_progress(self.stream) {
                        self.progress_pending = false;
                    }
                }
                _ = shutdown.changed() => {
                    let _ = self.out.send(Err(Status::unavailable("etcdserver: server stopped"))).await;
                    return;
                }
            }
        }
    }

    async fn send(&self, r: pb::WatchResponse) -> Result<(), ()> {
        self.out.send(Ok(r)).await.map_err(|_| ())
    }

    async fn handle_request(&mut self, req: pb::WatchRequest) -> Result<(), ()> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if let Some(key) = self.by_id.remove(&c.watch_id) {
                    self.watchers.remove(&key);
                    self.node.hub().cancel(key);
                    let header = self.node.header(self.node.hub().published_rev());
                    self.send(pb::WatchResponse {
                        header: Some(header),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                if !self.node.hub().request_progress(self.stream) {
                    // Sent once every watcher of the stream has caught up.
                    self.progress_pending = true;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, mut c: pb::WatchCreateRequest) -> Result<(), ()> {
        if c.key.is_empty() {
            // "\0" is the smallest key.
            c.key = vec![0];
        }
        let rev = self.node.hub().published_rev();
        let header = Some(self.node.header(rev));
        let cancel = |id: i64, reason: &str| pb::WatchResponse {
            header,
            watch_id: id,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        if !c.range_end.is_empty() && c.range_end != [0] && c.key >= c.range_end {
            return self.send(cancel(-1, "mvcc: watcher range is empty")).await;
        }
        let limit = self.node.config.max_watchers_per_stream;
        if limit > 0 && self.watchers.len() >= limit {
            let id = if c.watch_id != 0 { c.watch_id } else { -1 };
            return self
                .send(cancel(
                    id,
                    &format!(
                        "etcdserver: too many watchers on this watch stream (limit {limit}, --max-watchers-per-stream)"
                    ),
                ))
                .await;
        }
        let permitted = self.node.with_state(|st| {
            !st.auth.enabled
                || self.user.as_deref().is_some_and(|u| {
                    st.auth
                        .permitted(u, crate::auth::Access::Read, &c.key, &c.range_end)
                })
        });
        if !permitted {
            return self
                .send(cancel(
                    c.watch_id,
                    &crate::error::EtcdError::PermissionDenied.to_string(),
                ))
                .await;
        }
        let id = if c.watch_id != 0 {
            if self.by_id.contains_key(&c.watch_id) {
                return self
                    .send(cancel(
                        c.watch_id,
                        "mvcc: duplicate watch ID provided on the WatchStream",
                    ))
                    .await;
            }
            c.watch_id
        } else {
            while self.by_id.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        };
        let filter = WatchFilter {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        };
        match self
            .node
            .hub()
            .watch(self.stream, filter, c.start_revision, c.progress_notify)
        {
            Ok((key, cur)) => {
                self.watchers.insert(
                    key,
                    WatcherOpts {
                        watch_id: id,
                        prev_kv: c.prev_kv,
                        fragment: c.fragment,
                    },
                );
                self.by_id.insert(id, key);
                self.send(pb::WatchResponse {
                    header: Some(self.node.header(cur)),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                })
                .await
            }
            Err(e) => self.send(cancel(id, &e.to_string())).await,
        }
    }

    async fn deliver(&mut self, m: WatchMsg) -> Result<(), ()> {
        match m {
            WatchMsg::Events {
                watcher,
                revision,
                mut events,
            } => {
                let Some(opts) = self.watchers.get(&watcher) else {
                    return Ok(());
                };
                if opts.prev_kv {
                    self.attach_prev(&mut events);
                }
                let resp = pb::WatchResponse {
                    header: Some(self.node.header(revision)),
                    watch_id: opts.watch_id,
                    events,
                    ..Default::default()
                };
                if opts.fragment {
                    let max = self.node.config.max_request_bytes;
                    for part in fragments(resp, max) {
                        self.send(part).await?;
                    }
                    Ok(())
                } else {
                    self.send(resp).await
                }
            }
            WatchMsg::Compacted {
                watcher,
                compact_revision,
            } => {
                let Some(opts) = self.watchers.remove(&watcher) else {
                    return Ok(());
                };
                self.by_id.remove(&opts.watch_id);
                let header = self.node.header(self.node.hub().published_rev());
                self.send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: opts.watch_id,
                    compact_revision,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            WatchMsg::Progress { watcher, revision } => {
                let watch_id = match watcher {
                    None => -1,
                    Some(k) => match self.watchers.get(&k) {
                        Some(o) => o.watch_id,
                        None => return Ok(()),
                    },
                };
                self.send(pb::WatchResponse {
                    header: Some(self.node.header(revision)),
                    watch_id,
                    ..Default::default()
                })
                .await
            }
        }
    }

    fn attach_prev(&self, events: &mut [Event]) {
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let is_create =
                ev.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
            if is_create {
                continue;
            }
            if let Ok(Some(prev)) = self.node.mvcc().get_at(&kv.key, kv.mod_revision - 1) {
                ev.prev_kv = Some(prev);
            }
        }
    }
}

/// etcd's `sendFragments`: splits a response over `max` bytes into parts, each flagged
/// `fragment` except the last. A single event is never split.
fn fragments(resp: pb::WatchResponse, max: usize) -> Vec<pb::WatchResponse> {
    if resp.encoded_len() < max || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut out = Vec::new();
    let mut template = resp.clone();
    template.events.clear();
    template.fragment = true;
    let mut cur = template.clone();
    for ev in resp.events {
        cur.events.push(ev);
        if cur.events.len() > 1 && cur.encoded_len() >= max {
            let last = cur.events.pop();
            out.push(std::mem::replace(&mut cur, template.clone()));
            if let Some(ev) = last {
                cur.events.push(ev);
            }
        }
    }
    cur.fragment = false;
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_proto::mvccpb::KeyValue;

    #[test]
    fn fragments_split_large_responses_and_flag_all_but_last() {
        let ev = |i: u8| Event {
            r#type: 0,
            kv: Some(KeyValue {
                key: vec![i],
                value: vec![0; 100],
                ..Default::default()
            }),
            prev_kv: None,
        };
        let resp = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(ev).collect(),
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 350);
        assert!(parts.len() > 1);
        let n: usize = parts.iter().map(|p| p.events.len()).sum();
        assert_eq!(n, 10);
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts[parts.len() - 1].fragment);
        assert!(parts.iter().all(|p| p.watch_id == 3));
        assert_eq!(fragments(resp, 1 << 20).len(), 1);
    }
}
