//! `keelson bench failover`: how long writes stop when the leader dies.
//!
//! A three-member etcd 3.4 and a three-member `keelson store` run side by side on loopback
//! with the same heartbeat and election settings. Each trial SIGKILLs the current leader of
//! one system and times from the signal to the first put that a surviving member
//! acknowledges; the killed member is then restarted and every member must serve a
//! linearizable read before the next trial. Trials alternate between the systems so machine
//! noise falls on both alike.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use keelson_proto::etcdserverpb::{kv_client::KvClient, PutRequest};
use serde_json::json;
use tonic::transport::Channel;

use super::compare::{prepare, Cluster, System};
use super::error::{BenchError, Result};
use super::kv::OutputFormat;
use super::util::{connect, find_leader, parse_duration};

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// The etcd 3.4 server binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// The keelson binary run as `keelson store` [default: this executable].
    #[arg(long)]
    pub keelson: Option<PathBuf>,
    /// Leader kills per system.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// `--heartbeat-interval` of every member (ms), as etcd spells it.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// `--election-timeout` of every member (ms), as etcd spells it.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// How long one put attempt may take before the client gives up and retries.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub attempt_timeout: Duration,
    /// How long writes may stay down in one trial before the run fails.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub trial_timeout: Duration,
    /// How long a cluster may take to start, or a restarted member to catch up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Where the members' data dirs and logs go [default: a new dir under /var/tmp].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the data dirs and logs.
    #[arg(long)]
    pub keep: bool,
    /// Output format.
    #[arg(
        short = 'w',
        long = "output",
        visible_alias = "write-out",
        value_enum,
        default_value = "simple"
    )]
    pub output: OutputFormat,
}

const KEY: &[u8] = b"/keelson-bench/failover";

fn progress(message: &str) {
    eprintln!("failover: {message}");
}

/// Puts to `endpoint` until one is acknowledged, each attempt bounded by `attempt`; returns
/// when it was acknowledged. Never returns `Ok` for a put that failed.
async fn put_until_ok(
    mut kv: KvClient<Channel>,
    attempt: Duration,
    deadline: Instant,
) -> std::result::Result<Instant, String> {
    let mut last = String::from("no attempt finished");
    while Instant::now() < deadline {
        let mut request = tonic::Request::new(PutRequest {
            key: KEY.to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        request.set_timeout(attempt);
        match tokio::time::timeout(attempt + Duration::from_millis(50), kv.put(request)).await {
            Ok(Ok(_)) => return Ok(Instant::now()),
            Ok(Err(status)) => last = format!("{}: {}", status.code(), status.message()),
            Err(_) => last = "attempt timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(last)
}

/// One trial on `cluster`: kill its leader, time the first acknowledged put, restart it.
async fn trial(cluster: &mut Cluster, args: &FailoverArgs) -> Result<Duration> {
    cluster.check_alive()?;
    cluster.wait_serving(true, KEY, args.start_timeout).await?;
    let endpoints = cluster.endpoints();
    let leader = find_leader(&endpoints, Duration::from_secs(5)).await?;
    let leader_index = endpoints
        .iter()
        .position(|e| *e == leader)
        .ok_or_else(|| BenchError::Failed(format!("leader {leader} is not a member")))?;
    // Connections to the survivors exist, and work, before the kill.
    let mut clients = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        if i == leader_index {
            continue;
        }
        let mut kv = KvClient::new(connect(endpoint, Duration::from_secs(5)).await?);
        kv.put(PutRequest {
            key: KEY.to_vec(),
            value: b"warm".to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|s| BenchError::rpc(format!("a warm-up put via {endpoint}"), s))?;
        clients.push(kv);
    }

    let killed_at = Instant::now();
    cluster.kill_member(leader_index);
    let deadline = killed_at + args.trial_timeout;
    let writers = clients
        .into_iter()
        .map(|kv| Box::pin(put_until_ok(kv, args.attempt_timeout, deadline)));
    let resumed = match futures::future::select_ok(writers).await {
        Ok((at, _)) => at.duration_since(killed_at),
        Err(last) => {
            return Err(BenchError::Timeout {
                what: format!("{} writes after killing its leader", cluster.system.name()),
                secs: args.trial_timeout.as_secs_f64(),
                detail: format!("; last error: {last}"),
            })
        }
    };
    cluster.start_member(leader_index)?;
    Ok(resumed)
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    p50: f64,
    p99: f64,
    min: f64,
    max: f64,
    mean: f64,
}

fn summarize(ms: &[f64]) -> Summary {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    Summary {
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        min: sorted.first().copied().unwrap_or(0.0),
        max: sorted.last().copied().unwrap_or(0.0),
        mean: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
    }
}

pub async fn run(args: FailoverArgs) -> Result<()> {
    if args.trials == 0 {
        return Err(BenchError::InvalidArgs(
            "--trials must be at least 1".into(),
        ));
    }
    if args.heartbeat_interval == 0 || args.election_timeout < 5 * args.heartbeat_interval {
        return Err(BenchError::InvalidArgs(format!(
            "--election-timeout ({} ms) must be at least 5 × --heartbeat-interval ({} ms)",
            args.election_timeout, args.heartbeat_interval
        )));
    }
    let (etcd, keelson, root) = prepare(
        &args.etcd,
        args.keelson.as_deref(),
        args.data_root.clone(),
        args.keep,
        "failover",
    )?;
    progress(&format!("data root {}", root.path.display()));
    let timing = vec![
        "--heartbeat-interval".to_string(),
        args.heartbeat_interval.to_string(),
        "--election-timeout".to_string(),
        args.election_timeout.to_string(),
    ];
    let mut clusters = Vec::new();
    for (system, binary) in [(System::Etcd, etcd), (System::Keelson, keelson)] {
        let mut cluster =
            Cluster::new(system, &binary, &root.path.join(system.name()), "fo")?.with_args(&timing);
        cluster.start_all()?;
        clusters.push(cluster);
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    for t in 0..args.trials {
        for (i, cluster) in clusters.iter_mut().enumerate() {
            let resumed = trial(cluster, &args).await?;
            let ms = resumed.as_secs_f64() * 1000.0;
            progress(&format!(
                "[{}] trial {}/{}: writes resumed {ms:.0} ms after kill -9 of the leader",
                cluster.system.name(),
                t + 1,
                args.trials
            ));
            results[i].push(ms);
        }
    }
    // The last restarted members catch up before the clusters are killed, so every trial
    // began from a healthy cluster and the run ends with one too.
    for cluster in &mut clusters {
        cluster.wait_serving(true, KEY, args.start_timeout).await?;
    }
    let etcd = summarize(&results[0]);
    let keel = summarize(&results[1]);
    let ratio = |k: f64, e: f64| if e > 0.0 { k / e } else { f64::NAN };
    match args.output {
        OutputFormat::Json => {
            let one = |s: &Summary, raw: &[f64]| {
                json!({"p50_ms": s.p50, "p99_ms": s.p99, "min_ms": s.min, "max_ms": s.max,
                       "mean_ms": s.mean, "trials_ms": raw})
            };
            let out = json!({
                "trials": args.trials,
                "heartbeat_interval_ms": args.heartbeat_interval,
                "election_timeout_ms": args.election_timeout,
                "etcd": one(&etcd, &results[0]),
                "keelson": one(&keel, &results[1]),
                "ratio_keelson_over_etcd": {"p50": ratio(keel.p50, etcd.p50), "p99": ratio(keel.p99, etcd.p99)},
            });
            println!("{out}");
        }
        OutputFormat::Simple => {
            println!(
                "Failover: kill -9 of the leader → first acknowledged put, {} trials per system, \
                 heartbeat {} ms, election timeout {} ms",
                args.trials, args.heartbeat_interval, args.election_timeout
            );
            println!(
                "{:<10} {:>10} {:>10} {:>14}",
                "ms", "etcd", "keelson", "keelson/etcd"
            );
            for (label, e, k) in [
                ("p50", etcd.p50, keel.p50),
                ("p99", etcd.p99, keel.p99),
                ("min", etcd.min, keel.min),
                ("max", etcd.max, keel.max),
                ("mean", etcd.mean, keel.mean),
            ] {
                println!("{label:<10} {e:>10.0} {k:>10.0} {:>14.2}", ratio(k, e));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{percentile, summarize};

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 99.0), 20.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        let s = summarize(&[3.0, 1.0, 2.0]);
        assert_eq!((s.p50, s.min, s.max, s.mean), (2.0, 1.0, 3.0, 2.0));
    }
}
