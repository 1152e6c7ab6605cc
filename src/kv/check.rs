//! `keelson kv check perf`: etcdctl 3.4's performance check. Writes 1 KiB values under
//! `--prefix` at the load's rate from the load's number of clients for 60 s, then judges
//! throughput (≥ 90% of the rate), the slowest request (≤ 0.5 s) and the standard deviation
//! (≤ 0.1 s), and deletes what it wrote. `--duration` (keelson only) shortens the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;

use super::client::{parse_go_duration, GlobalFlags};
use super::error::KvError;
use super::get::prefix_end;
use super::output::out;

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: CheckCommand,
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster
    Perf {
        /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the performance check's keys.
        #[arg(long, default_value = "/etcdctl-check-perf/")]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long = "auto-compact")]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long = "auto-defrag")]
        auto_defrag: bool,
        /// How long to write (keelson only; etcdctl always runs 60s).
        #[arg(long, default_value = "60s", value_parser = parse_go_duration)]
        duration: Duration,
    },
}

/// (writes per second, clients) of etcdctl's load models.
fn load(name: &str) -> Option<(u64, usize)> {
    match name {
        "s" => Some((150, 50)),
        "m" => Some((1000, 200)),
        "l" => Some((8000, 500)),
        "xl" => Some((15000, 1000)),
        _ => None,
    }
}

pub async fn run(global: &GlobalFlags, args: CheckArgs) -> Result<(), KvError> {
    let CheckCommand::Perf {
        load: load_name,
        prefix,
        auto_compact,
        auto_defrag,
        duration,
    } = args.command;
    let (rate, clients) = load(&load_name).ok_or_else(|| {
        KvError::BadArgs(format!(
            "unknown load option {load_name}. Accepted options: s, m, l, xl"
        ))
    })?;
    let c = global.connect().await?;
    let range = pb::RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        limit: 1,
        ..Default::default()
    };
    let existing = c
        .timed(async { c.kv().range(range).await })
        .await?
        .into_inner();
    if !existing.kvs.is_empty() {
        return Err(KvError::InvalidInput(format!(
            "prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"
        )));
    }

    let total = (rate as f64 * duration.as_secs_f64()).ceil() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let c = c.clone();
        let next = next.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let value = vec![0u8; 1024];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                // Requests are spread evenly over the run: request i goes at i/rate s.
                let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(at.into()).await;
                let mut key = prefix.clone().into_bytes();
                key.extend_from_slice(format!("{:016x}", rand_key(i)).as_bytes());
                key.resize(prefix.len() + 256, b'0');
                let t = Instant::now();
                let r = c
                    .timed(async {
                        c.kv()
                            .put(pb::PutRequest {
                                key,
                                value: value.clone(),
                                ..Default::default()
                            })
                            .await
                    })
                    .await;
                match r {
                    Ok(_) => lat.push(t.elapsed().as_secs_f64()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();

    let del = pb::DeleteRangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        prev_kv: false,
    };
    let deleted = c
        .timed(async { c.kv().delete_range(del).await })
        .await?
        .into_inner();
    if auto_compact {
        let rev = deleted.header.as_ref().map(|h| h.revision).unwrap_or(0);
        c.timed(async {
            c.kv()
                .compact(pb::CompactionRequest {
                    revision: rev,
                    physical: true,
                })
                .await
        })
        .await?;
    }
    if auto_defrag {
        for ep in global.endpoint_list() {
            let one = global.connect_one(&ep).await?;
            one.maintenance()
                .defragment(pb::DefragmentRequest {})
                .await
                .map_err(KvError::Grpc)?;
        }
    }

    let n = lat.len() as f64;
    let rps = if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let slowest = lat.iter().copied().fold(0.0, f64::max);
    let mean = if n > 0.0 {
        lat.iter().sum::<f64>() / n
    } else {
        0.0
    };
    let stddev = if n > 0.0 {
        (lat.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt()
    } else {
        0.0
    };
    let mut ok = true;
    let mut s = String::new();
    if errors > 0 {
        s.push_str(&format!(
            "FAIL: too many errors\nFAIL: ERROR(put failed) -> {errors}\n"
        ));
        ok = false;
    }
    if rps / rate as f64 <= 0.9 {
        s.push_str(&format!(
            "FAIL: Throughput too low: {} writes/s\n",
            rps as u64 + 1
        ));
        ok = false;
    } else {
        s.push_str(&format!(
            "PASS: Throughput is {} writes/s\n",
            rps as u64 + 1
        ));
    }
    if slowest > 0.5 {
        s.push_str(&format!("Slowest request took too long: {slowest:.6}s\n"));
        ok = false;
    } else {
        s.push_str(&format!("PASS: Slowest request took {slowest:.6}s\n"));
    }
    if stddev > 0.1 {
        s.push_str(&format!("Stddev too high: {stddev:.6}s\n"));
        ok = false;
    } else {
        s.push_str(&format!("PASS: Stddev is {stddev:.6}s\n"));
    }
    s.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    out(&s);
    if ok {
        Ok(())
    } else {
        Err(KvError::Failed("check perf failed".into()))
    }
}

/// A well-spread 64-bit key from a counter (splitmix64), so keys don't collide or cluster.
fn rand_key(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
