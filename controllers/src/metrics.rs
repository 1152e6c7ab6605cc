//! The controllers' metrics, under the names client-go and kube-scheduler use:
//! - work queues, labelled by controller: `workqueue_depth`, `workqueue_work_duration_seconds`
//!   (a histogram of one reconcile), `workqueue_retries_total`;
//! - the scheduler: `scheduler_schedule_attempts_total{result}`, `scheduler_pending_pods{queue}`
//!   and `scheduler_scheduling_attempt_duration_seconds{result}`.
//!
//! They are kept process-wide, so the server whose controller manager (or scheduler) holds
//! the leader lease reports them on its `/metrics` (the other servers report none).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::queue::Queue;

/// Upper bounds (seconds) of the reconcile-duration buckets: client-go's
/// `ExponentialBuckets(10e-9, 10, 10)`.
const WORK_BUCKETS: [f64; 10] = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0];

/// Upper bounds (seconds) of the scheduling-attempt buckets: kube-scheduler's
/// `ExponentialBuckets(0.001, 2, 15)`.
const ATTEMPT_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384,
];

/// A cumulative histogram of durations over fixed buckets.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not yet cumulative).
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines, with `labels` (`name="x"`) on each.
    fn render(&self, out: &mut String, metric: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{metric}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{metric}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{metric}_count{{{labels}}} {count}");
    }
}

/// One controller's queue and what its workers did.
pub(crate) struct QueueStats {
    queue: Mutex<Queue>,
    work: Histogram,
    retries: AtomicU64,
}

impl Default for QueueStats {
    fn default() -> Self {
        QueueStats {
            queue: Mutex::new(Queue::default()),
            work: Histogram::new(&WORK_BUCKETS),
            retries: AtomicU64::new(0),
        }
    }
}

impl QueueStats {
    pub(crate) fn reconciled(&self, took: Duration, failed: bool) {
        self.work.observe(took);
        if failed {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a scheduling attempt ended.
#[derive(Clone, Copy)]
pub(crate) enum Attempt {
    /// The pod was bound.
    Scheduled,
    /// It fits on no node.
    Unschedulable,
    /// The binding failed (it is tried again).
    Error,
}

const ATTEMPT_RESULTS: [(Attempt, &str); 3] = [
    (Attempt::Scheduled, "scheduled"),
    (Attempt::Unschedulable, "unschedulable"),
    (Attempt::Error, "error"),
];

/// Reads the running scheduler's `(active, unschedulable)` pod counts.
type QueueCounts = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

/// The scheduler's attempts, and how to read its queues.
pub(crate) struct SchedulerStats {
    attempts: [Histogram; 3],
    queues: Mutex<Option<QueueCounts>>,
}

fn scheduler_stats() -> &'static SchedulerStats {
    static STATS: OnceLock<SchedulerStats> = OnceLock::new();
    STATS.get_or_init(|| SchedulerStats {
        attempts: std::array::from_fn(|_| Histogram::new(&ATTEMPT_BUCKETS)),
        queues: Mutex::new(None),
    })
}

/// Counts one scheduling attempt that took `took` (deciding, and binding if it got that far).
pub(crate) fn scheduling_attempt(result: Attempt, took: Duration) {
    scheduler_stats().attempts[result as usize].observe(took);
}

/// Tells the metrics how to count the running scheduler's pending pods.
pub(crate) fn scheduler_queues(f: impl Fn() -> (usize, usize) + Send + Sync + 'static) {
    *scheduler_stats().queues.lock() = Some(Box::new(f));
}

/// The `# HELP` and `# TYPE` lines of one metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_scheduler(out: &mut String) {
    let stats = scheduler_stats();
    let queues = stats.queues.lock().as_ref().map(|f| f());
    let Some((active, unschedulable)) = queues else {
        return;
    };
    header(
        out,
        "scheduler_pending_pods",
        "gauge",
        "Pods waiting to be scheduled, by queue.",
    );
    let _ = writeln!(out, "scheduler_pending_pods{{queue=\"active\"}} {active}");
    let _ = writeln!(
        out,
        "scheduler_pending_pods{{queue=\"unschedulable\"}} {unschedulable}"
    );
    header(
        out,
        "scheduler_schedule_attempts_total",
        "counter",
        "Attempts to schedule pods, by result.",
    );
    for (a, name) in ATTEMPT_RESULTS {
        let n = stats.attempts[a as usize].count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "scheduler_schedule_attempts_total{{result=\"{name}\"}} {n}"
        );
    }
    header(
        out,
        "scheduler_scheduling_attempt_duration_seconds",
        "histogram",
        "How long an attempt took (deciding and binding).",
    );
    for (a, name) in ATTEMPT_RESULTS {
        stats.attempts[a as usize].render(
            out,
            "scheduler_scheduling_attempt_duration_seconds",
            &format!("result=\"{name}\""),
        );
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

/// Appends the controllers' and the scheduler's metrics in the Prometheus text format.
pub fn render(out: &mut String) {
    render_scheduler(out);
    let all: Vec<(&'static str, Arc<QueueStats>)> = registry()
        .lock()
        .iter()
        .map(|(n, s)| (*n, s.clone()))
        .collect();
    if all.is_empty() {
        return;
    }
    header(
        out,
        "workqueue_depth",
        "gauge",
        "Keys waiting in the controller's work queue.",
    );
    for (name, s) in &all {
        let depth = s.queue.lock().len();
        let _ = writeln!(out, "workqueue_depth{{name=\"{name}\"}} {depth}");
    }
    header(
        out,
        "workqueue_work_duration_seconds",
        "histogram",
        "How long reconciling one key took.",
    );
    for (name, s) in &all {
        s.work.render(
            out,
            "workqueue_work_duration_seconds",
            &format!("name=\"{name}\""),
        );
    }
    header(
        out,
        "workqueue_retries_total",
        "counter",
        "Reconciles that failed and were queued again with back-off.",
    );
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
        // Both took 250 ms: above the 0.1 s bucket, within the 1 s one.
        assert!(
            out.contains(
                "workqueue_work_duration_seconds_bucket{name=\"metrics-test\",le=\"0.1\"} 0\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "workqueue_work_duration_seconds_bucket{name=\"metrics-test\",le=\"1\"} 2\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "workqueue_work_duration_seconds_bucket{name=\"metrics-test\",le=\"+Inf\"} 2\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn scheduler_metrics_count_attempts_by_result_and_read_the_queues() {
        scheduler_queues(|| (3, 1));
        scheduling_attempt(Attempt::Scheduled, Duration::from_millis(3));
        scheduling_attempt(Attempt::Unschedulable, Duration::from_micros(500));
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("scheduler_pending_pods{queue=\"active\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_pending_pods{queue=\"unschedulable\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_schedule_attempts_total{result=\"scheduled\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_schedule_attempts_total{result=\"error\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"0.002\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"0.004\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("scheduler_scheduling_attempt_duration_seconds_bucket{result=\"unschedulable\",le=\"0.001\"} 1\n"),
            "{out}"
        );
    }
}
