//! The controllers' work-queue metrics, under client-go's names (`workqueue_depth`,
//! `workqueue_work_duration_seconds`, `workqueue_retries_total`, labelled by controller).
//! They are kept process-wide, so the server whose controller manager holds the leader
//! lease reports them on its `/metrics` (the other servers report none).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::queue::Queue;

/// One controller's queue and what its workers did.
#[derive(Default)]
pub(crate) struct QueueStats {
    queue: Mutex<Queue>,
    reconciles: AtomicU64,
    work_nanos: AtomicU64,
    retries: AtomicU64,
}

impl QueueStats {
    pub(crate) fn reconciled(&self, took: Duration, failed: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.work_nanos.fetch_add(nanos, Ordering::Relaxed);
        if failed {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn registry() -> &'static Mutex<BTreeMap<&'static str, Arc<QueueStats>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<&'static str, Arc<QueueStats>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The stats of controller `name`, now working from `queue` (a controller that lost and won
/// back its lease keeps its counts).
pub(crate) fn register(name: &'static str, queue: &Queue) -> Arc<QueueStats> {
    let stats = registry().lock().entry(name).or_default().clone();
    *stats.queue.lock() = queue.clone();
    stats
}

/// Appends the controllers' metrics in the Prometheus text format.
pub fn render(out: &mut String) {
    let all: Vec<(&'static str, Arc<QueueStats>)> = registry()
        .lock()
        .iter()
        .map(|(n, s)| (*n, s.clone()))
        .collect();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP workqueue_depth Keys waiting in the controller's work queue."
    );
    let _ = writeln!(out, "# TYPE workqueue_depth gauge");
    for (name, s) in &all {
        let depth = s.queue.lock().len();
        let _ = writeln!(out, "workqueue_depth{{name=\"{name}\"}} {depth}");
    }
    let _ = writeln!(
        out,
        "# HELP workqueue_work_duration_seconds How long reconciling one key took."
    );
    let _ = writeln!(out, "# TYPE workqueue_work_duration_seconds summary");
    for (name, s) in &all {
        let secs = s.work_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let n = s.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "workqueue_work_duration_seconds_sum{{name=\"{name}\"}} {secs}"
        );
        let _ = writeln!(
            out,
            "workqueue_work_duration_seconds_count{{name=\"{name}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP workqueue_retries_total Reconciles that failed and were queued again with back-off."
    );
    let _ = writeln!(out, "# TYPE workqueue_retries_total counter");
    for (name, s) in &all {
        let n = s.retries.load(Ordering::Relaxed);
        let _ = writeln!(out, "workqueue_retries_total{{name=\"{name}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_queue_is_rendered_with_its_counts() {
        let q = Queue::new();
        q.add("ns/a");
        q.add("ns/b");
        let s = register("metrics-test", &q);
        s.reconciled(Duration::from_millis(250), false);
        s.reconciled(Duration::from_millis(250), true);
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("workqueue_depth{name=\"metrics-test\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("workqueue_work_duration_seconds_sum{name=\"metrics-test\"} 0.5\n"),
            "{out}"
        );
        assert!(
            out.contains("workqueue_work_duration_seconds_count{name=\"metrics-test\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("workqueue_retries_total{name=\"metrics-test\"} 1\n"),
            "{out}"
        );
    }
}
