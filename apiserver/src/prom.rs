//! `GET /metrics` in the Prometheus text format (0.0.4): the apiserver's request metrics and
//! its store member's, under the names Kubernetes and etcd give them (so dashboards and
//! alerts written for those read these), plus `keelson_raft_*` for raft state etcd does not
//! export under a stable name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

use crate::Api;

/// The request latency buckets, in seconds (Kubernetes' `apiserver_request_duration_seconds`
/// uses these and a few more).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// What a request was, in the labels Kubernetes uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`, `DELETECOLLECTION`,
    /// `CONNECT`; for paths that name no resource, the HTTP method.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
}

impl Kind {
    /// Long-running requests (watches, exec/attach/port-forward, log streams) are counted
    /// but kept out of the latency histogram, as Kubernetes does.
    pub fn long_running(&self) -> bool {
        self.verb == "WATCH" || self.verb == "CONNECT"
    }
}

/// Classifies a request by method, path and query.
pub fn classify(method: &str, path: &str, query: Option<&str>, content_type: Option<&str>) -> Kind {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => {
            return Kind {
                verb: method.to_string(),
                group: String::new(),
                version: String::new(),
                resource: String::new(),
                subresource: String::new(),
            }
        }
    };
    let mut rest = rest;
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest = &rest[1..];
    }
    // namespaces/{ns}/{resource}/… unless the resource is namespaces itself.
    if rest.len() >= 3 && rest[0] == "namespaces" {
        rest = &rest[2..];
    }
    let resource = rest.first().copied().unwrap_or_default();
    let named = rest.len() >= 2;
    let subresource = rest.get(2).copied().unwrap_or_default();
    let watch_query = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
    });
    let connect = matches!(subresource, "exec" | "attach" | "portforward" | "proxy")
        || (subresource == "log"
            && query.is_some_and(|q| q.split('&').any(|kv| kv == "follow=true")));
    let verb = match method {
        _ if connect => "CONNECT",
        "GET" if watch_path || watch_query => "WATCH",
        "GET" if named => "GET",
        "GET" => "LIST",
        "PATCH" if content_type.is_some_and(|c| c.starts_with("application/apply-patch")) => {
            "APPLY"
        }
        "DELETE" if !named => "DELETECOLLECTION",
        other => other,
    };
    Kind {
        verb: verb.to_string(),
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        subresource: subresource.to_string(),
    }
}

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The apiserver's request metrics.
#[derive(Default)]
pub struct RequestMetrics {
    /// Per kind, per status code.
    total: Mutex<BTreeMap<Kind, BTreeMap<u16, u64>>>,
    durations: Mutex<BTreeMap<Kind, Histogram>>,
    inflight: AtomicI64,
    long_running: AtomicI64,
}

/// Counts a request in flight until dropped (with a streamed answer, when its body ends).
pub struct InFlight {
    metrics: Arc<RequestMetrics>,
    long_running: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.inflight.fetch_sub(1, Ordering::Relaxed);
        if self.long_running {
            self.metrics.long_running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl RequestMetrics {
    /// Marks a request of `kind` in flight.
    pub fn start(self: &Arc<Self>, kind: &Kind) -> InFlight {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        let long_running = kind.long_running();
        if long_running {
            self.long_running.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            metrics: Arc::clone(self),
            long_running,
        }
    }

    /// Records a request's answer: its status code and how long the answer took to start.
    pub fn record(&self, kind: &Kind, code: u16, elapsed: Duration) {
        // The key is cloned only the first time a kind is seen.
        {
            let mut total = self.total.lock();
            let codes = match total.get_mut(kind) {
                Some(c) => c,
                None => total.entry(kind.clone()).or_default(),
            };
            *codes.entry(code).or_default() += 1;
        }
        if kind.long_running() {
            return;
        }
        let secs = elapsed.as_secs_f64();
        let mut d = self.durations.lock();
        let h = match d.get_mut(kind) {
            Some(h) => h,
            None => d.entry(kind.clone()).or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            }),
        };
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    fn render(&self, out: &mut String) {
        let labels = |k: &Kind| {
            format!(
                "verb=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\"",
                k.verb, k.group, k.version, k.resource, k.subresource
            )
        };
        header(
            out,
            "apiserver_request_total",
            "counter",
            "Requests, by verb, group, version, resource, subresource and HTTP response code.",
        );
        for (k, codes) in self.total.lock().iter() {
            let l = labels(k);
            for (code, n) in codes {
                let _ = writeln!(out, "apiserver_request_total{{{l},code=\"{code}\"}} {n}");
            }
        }
        header(
            out,
            "apiserver_request_duration_seconds",
            "histogram",
            "Response latency of requests other than watches and connections, by verb, group, version, resource and subresource.",
        );
        for (k, h) in self.durations.lock().iter() {
            let l = labels(k);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{l}}} {}",
                h.count
            );
        }
        header(
            out,
            "apiserver_current_inflight_requests",
            "gauge",
            "Requests being served.",
        );
        let _ = writeln!(
            out,
            "apiserver_current_inflight_requests {}",
            self.inflight.load(Ordering::Relaxed)
        );
        header(
            out,
            "apiserver_longrunning_requests",
            "gauge",
            "Long-running requests (watches, exec, attach, port-forward, followed logs) open now.",
        );
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests {}",
            self.long_running.load(Ordering::Relaxed)
        );
    }
}

/// A response body that keeps its request counted in flight until it ends (watches, followed
/// logs).
pub struct Guarded<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Guarded<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Guarded<B> {
        Guarded {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &keelson_store::metrics::HistogramSnapshot,
) {
    header(out, name, "histogram", help);
    for (bound, n) in &h.buckets {
        if bound.is_finite() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        } else {
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        }
    }
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// The whole `/metrics` page.
pub fn render(api: &Api) -> String {
    let mut out = String::new();
    api.requests.render(&mut out);
    let node = api.storage.node();
    let s = node.status();
    let m = node.metrics();
    gauge(
        &mut out,
        "etcd_server_has_leader",
        "Whether the store member knows a leader (1) or not (0).",
        u8::from(s.leader != 0),
    );
    gauge(
        &mut out,
        "etcd_server_is_leader",
        "Whether the store member is the leader.",
        u8::from(s.leader != 0 && s.leader == node.id),
    );
    gauge(
        &mut out,
        "etcd_server_is_learner",
        "Whether the store member is a learner.",
        u8::from(s.is_learner),
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_bytes",
        "The store's size on disk.",
        s.db_size,
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "The store's live data (what a defragmentation would keep).",
        s.db_size_in_use,
    );
    gauge(&mut out, "keelson_raft_term", "The raft term.", s.raft_term);
    gauge(
        &mut out,
        "keelson_raft_last_log_index",
        "The index of the member's last raft log entry.",
        s.raft_index,
    );
    gauge(
        &mut out,
        "keelson_raft_applied_index",
        "The index of the last raft log entry applied to the store.",
        s.raft_applied_index,
    );
    gauge(
        &mut out,
        "keelson_raft_snapshot_index",
        "The index the member's latest raft snapshot covers.",
        m.snapshot.map(|l| l.index).unwrap_or(0),
    );
    gauge(
        &mut out,
        "keelson_raft_snapshot_size_bytes",
        "Bytes of the member's latest raft snapshot.",
        node.snapshot_bytes(),
    );
    gauge(
        &mut out,
        "keelson_raft_purged_index",
        "The index up to which the raft log was purged (after a snapshot).",
        m.purged.map(|l| l.index).unwrap_or(0),
    );
    gauge(
        &mut out,
        "keelson_raft_log_entries",
        "Entries in the member's raft log (after the last purge).",
        m.last_log_index
            .unwrap_or(0)
            .saturating_sub(m.purged.map(|l| l.index).unwrap_or(0)),
    );
    counter(
        &mut out,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes the member has seen.",
        node.leader_changes(),
    );
    gauge(
        &mut out,
        "etcd_server_proposals_committed_total",
        "The index of the last raft entry known committed.",
        node.log_stats()
            .committed
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "etcd_server_proposals_applied_total",
        "The index of the last raft entry applied to the store.",
        s.raft_applied_index,
    );
    gauge(
        &mut out,
        "etcd_server_proposals_pending",
        "Writes waiting for raft through this member.",
        node.proposals_pending(),
    );
    counter(
        &mut out,
        "etcd_server_proposals_failed_total",
        "Writes through this member that failed in raft (timeouts, no leader, stopping).",
        node.proposals_failed(),
    );
    histogram(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "How long syncing the raft log took.",
        &node.log_stats().fsync.snapshot(),
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_keys_total",
        "Keys in the store's index (live ones, and deleted ones not yet compacted away).",
        node.mvcc().read().index.len(),
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_watcher_total",
        "Watchers on the store (etcd API watches and the apiserver's own).",
        node.hub().watcher_count(),
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_slow_watcher_total",
        "Watchers catching up from history rather than receiving events as they happen.",
        node.hub().unsynced_count(),
    );
    counter(
        &mut out,
        "etcd_debugging_mvcc_events_total",
        "Watch events handed to watchers as they were published.",
        node.hub().events_sent(),
    );
    counter(
        &mut out,
        "keelson_store_watch_fallbacks_total",
        "Times a watcher's stream was full and it fell back to catching up from history.",
        node.hub().slowed(),
    );
    for extra in &api.config.extra_metrics {
        extra(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_with_kubernetes_verbs() {
        let k = |m: &str, p: &str, q: Option<&str>| classify(m, p, q, None);
        let v = |kind: Kind| (kind.verb, kind.group, kind.resource, kind.subresource);
        let s = String::from;
        assert_eq!(
            v(k("GET", "/api/v1/namespaces/default/pods", None)),
            (s("LIST"), s(""), s("pods"), s(""))
        );
        assert_eq!(
            v(k("GET", "/api/v1/namespaces/default/pods/p", None)),
            (s("GET"), s(""), s("pods"), s(""))
        );
        assert_eq!(
            v(k(
                "GET",
                "/api/v1/pods",
                Some("watch=true&resourceVersion=5")
            )),
            (s("WATCH"), s(""), s("pods"), s(""))
        );
        assert_eq!(
            v(k("GET", "/api/v1/watch/namespaces/x/pods", None)).0,
            "WATCH"
        );
        assert_eq!(
            v(k("GET", "/api/v1/namespaces/kube-system", None)),
            (s("GET"), s(""), s("namespaces"), s(""))
        );
        assert_eq!(
            v(k(
                "PUT",
                "/apis/apps/v1/namespaces/d/deployments/web/status",
                None
            )),
            (s("PUT"), s("apps"), s("deployments"), s("status"))
        );
        assert_eq!(
            v(k("DELETE", "/api/v1/namespaces/d/pods", None)).0,
            "DELETECOLLECTION"
        );
        assert_eq!(
            v(k("POST", "/api/v1/namespaces/d/pods/p/exec", None)).0,
            "CONNECT"
        );
        assert_eq!(
            v(k(
                "GET",
                "/api/v1/namespaces/d/pods/p/log",
                Some("follow=true")
            ))
            .0,
            "CONNECT"
        );
        assert_eq!(
            v(k("GET", "/api/v1/namespaces/d/pods/p/log", None)).0,
            "GET"
        );
        assert_eq!(
            classify(
                "PATCH",
                "/api/v1/namespaces/d/configmaps/c",
                None,
                Some("application/apply-patch+yaml")
            )
            .verb,
            "APPLY"
        );
        assert_eq!(
            v(k("GET", "/version", None)),
            (s("GET"), s(""), s(""), s(""))
        );
    }

    #[test]
    fn the_text_format_has_counters_histograms_and_gauges() {
        let m = Arc::new(RequestMetrics::default());
        let list = classify("GET", "/api/v1/pods", None, None);
        let watch = classify("GET", "/api/v1/pods", Some("watch=1"), None);
        {
            let _a = m.start(&list);
            let _b = m.start(&watch);
            let mut out = String::new();
            m.render(&mut out);
            assert!(
                out.contains("apiserver_current_inflight_requests 2\n"),
                "{out}"
            );
            assert!(out.contains("apiserver_longrunning_requests 1\n"), "{out}");
        }
        m.record(&list, 200, Duration::from_millis(30));
        m.record(&list, 200, Duration::from_millis(300));
        m.record(&list, 500, Duration::from_millis(3));
        m.record(&watch, 200, Duration::from_secs(100));
        let mut out = String::new();
        m.render(&mut out);
        let l = r#"verb="LIST",group="",version="v1",resource="pods",subresource="""#;
        assert!(
            out.contains(&format!("apiserver_request_total{{{l},code=\"200\"}} 2\n")),
            "{out}"
        );
        assert!(out.contains(&format!("apiserver_request_total{{{l},code=\"500\"}} 1\n")));
        assert!(out.contains("verb=\"WATCH\""), "watches are counted");
        assert!(out.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1\n"
        )));
        assert!(out.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"0.05\"}} 2\n"
        )));
        assert!(out.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n"
        )));
        assert!(out.contains(&format!(
            "apiserver_request_duration_seconds_count{{{l}}} 3\n"
        )));
        assert!(
            !out.contains("apiserver_request_duration_seconds_count{verb=\"WATCH\""),
            "watches stay out of the latency histogram"
        );
        assert!(out.contains("apiserver_current_inflight_requests 0\n"));
        assert!(out.contains("# TYPE apiserver_request_duration_seconds histogram\n"));
    }
}
