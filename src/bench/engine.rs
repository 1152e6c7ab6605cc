//! The closed-loop client engine shared by the request/response workloads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{BenchError, Result};
use super::report::{status_key, Report, Stats};
use super::util::RateLimiter;

/// One client's operation: issues one request and says what kind it was.
pub trait Op: Send + 'static {
    fn call(
        &mut self,
        seq: u64,
    ) -> impl Future<Output = std::result::Result<&'static str, tonic::Status>> + Send;
}

#[derive(Default)]
struct ClientStats {
    all: Stats,
    by_kind: BTreeMap<&'static str, Stats>,
}

/// Runs `total` operations spread over `ops` (one task per client), at most
/// `rate` per second overall, each bounded by `timeout`. Failed requests are
/// counted by error message.
pub async fn run_ops<O: Op>(
    name: &str,
    ops: Vec<O>,
    total: u64,
    rate: u64,
    timeout: Duration,
) -> Result<Report> {
    if ops.is_empty() {
        return Err(BenchError::InvalidArgs(
            "--clients must be at least 1".into(),
        ));
    }
    let next = Arc::new(AtomicU64::new(0));
    let limiter = RateLimiter::new(rate).map(Arc::new);
    let start = Instant::now();
    let tasks: Vec<_> = ops
        .into_iter()
        .map(|mut op| {
            let next = Arc::clone(&next);
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut stats = ClientStats::default();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        break;
                    }
                    if let Some(limiter) = &limiter {
                        limiter.acquire().await;
                    }
                    let begin = Instant::now();
                    match tokio::time::timeout(timeout, op.call(seq)).await {
                        Ok(Ok(kind)) => {
                            let latency = begin.elapsed();
                            stats.all.record(latency);
                            stats.by_kind.entry(kind).or_default().record(latency);
                        }
                        Ok(Err(status)) => stats.all.error(status_key(&status)),
                        Err(_) => stats.all.error(format!("client timeout after {timeout:?}")),
                    }
                }
                stats
            })
        })
        .collect();
    let mut all = Stats::new();
    let mut by_kind: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok(stats) => {
                all.merge(&stats.all);
                for (kind, s) in &stats.by_kind {
                    by_kind.entry(kind).or_default().merge(s);
                }
            }
            Err(e) => all.error(format!("client task failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let mut report = Report::new(name, elapsed, all);
    if by_kind.len() > 1 {
        for (kind, stats) in by_kind {
            report.kinds.insert(kind.to_string(), stats.hist.len());
            report
                .parts
                .push(Report::new(format!("{name} ({kind})"), elapsed, stats));
        }
    }
    Ok(report)
}
