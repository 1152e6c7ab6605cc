//! Resource usage for `metrics.k8s.io` (`kubectl top`): the node's and its containers' CPU
//! and memory, sampled every few seconds; CPU usage is the rate between the last two
//! samples. Served as a subset of the kubelet's Summary API (`/stats/summary`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::runtime::{ContainerStats, PodInfo, Runtime};

/// How often usage is sampled (metrics-server's resolution is 15 s).
pub const PERIOD: Duration = Duration::from_secs(10);

/// The host's CPU time in use, cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HostCpu {
    busy_nanos: u64,
    at: Timestamp,
}

/// CPU time the host has spent busy, from the first line of /proc/stat (USER_HZ ticks of
/// user, nice, system, irq, softirq and steal).
fn host_cpu(stat: &str, at: Timestamp) -> Option<HostCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| f.get(*i))
        .sum::<u64>();
    // USER_HZ is 100 on Linux.
    Some(HostCpu {
        busy_nanos: busy.saturating_mul(10_000_000),
        at,
    })
}

/// The host's working set: MemTotal − MemAvailable.
fn host_memory(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(kib("MemTotal:")?.saturating_sub(kib("MemAvailable:")?) * 1024)
}

/// Nanocores between two cumulative CPU samples.
fn rate(prev_nanos: u64, prev_at: Timestamp, nanos: u64, at: Timestamp) -> Option<u64> {
    let dt = at.duration_since(prev_at).as_secs_f64();
    if dt <= 0.0 {
        return None;
    }
    Some((nanos.saturating_sub(prev_nanos) as f64 / dt) as u64)
}

#[derive(Default)]
struct Samples {
    containers: HashMap<String, (ContainerStats, ContainerStats)>,
    host: Option<(HostCpu, HostCpu)>,
    host_memory: Option<(u64, Timestamp)>,
}

/// The latest samples of one node.
#[derive(Default)]
pub struct Sampler {
    samples: Mutex<Samples>,
    /// Whether to sample the host (`/proc`); the fake runtime's nodes do not.
    host: bool,
}

impl Sampler {
    pub fn new(host: bool) -> Sampler {
        Sampler {
            samples: Mutex::new(Samples::default()),
            host,
        }
    }

    /// Takes one sample.
    pub async fn sample(&self, runtime: &dyn Runtime) {
        let now = Timestamp::now();
        let stats = match runtime.stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "container stats");
                return;
            }
        };
        let host = if self.host {
            let stat = std::fs::read_to_string("/proc/stat").ok();
            let mem = std::fs::read_to_string("/proc/meminfo").ok();
            (
                stat.and_then(|s| host_cpu(&s, now)),
                mem.and_then(|m| host_memory(&m)),
            )
        } else {
            (None, None)
        };
        let mut s = self.samples.lock();
        let mut next = HashMap::with_capacity(stats.len());
        for cur in stats {
            let prev = s
                .containers
                .remove(&cur.id)
                .map(|(_, last)| last)
                .unwrap_or_else(|| cur.clone());
            next.insert(cur.id.clone(), (prev, cur));
        }
        s.containers = next;
        if let Some(cpu) = host.0 {
            let prev = s.host.map(|(_, last)| last).unwrap_or(cpu);
            s.host = Some((prev, cpu));
        }
        if let Some(m) = host.1 {
            s.host_memory = Some((m, now));
        }
    }

    /// The Summary API subset metrics.k8s.io is made from.
    pub fn summary(&self, node: &str, pods: &[PodInfo]) -> Value {
        let s = self.samples.lock();
        let mut node_entry = json!({"nodeName": node});
        if let Some((prev, cur)) = s.host {
            if let Some(r) = rate(prev.busy_nanos, prev.at, cur.busy_nanos, cur.at) {
                node_entry["cpu"] = json!({"time": cur.at.to_string(), "usageNanoCores": r});
            }
        }
        if let Some((m, at)) = s.host_memory {
            node_entry["memory"] = json!({"time": at.to_string(), "workingSetBytes": m});
        }
        let mut pod_entries = Vec::new();
        for p in pods {
            let mut containers = Vec::new();
            for c in p
                .containers
                .iter()
                .filter(|c| !c.init && c.state.is_running())
            {
                let Some((prev, cur)) = s.containers.get(&c.id) else {
                    continue;
                };
                let Some(r) = rate(prev.cpu_nanos, prev.at, cur.cpu_nanos, cur.at)
                    .or((prev == cur).then_some(0))
                else {
                    continue;
                };
                containers.push(json!({"name": c.name,
                    "cpu": {"time": cur.at.to_string(), "usageNanoCores": r},
                    "memory": {"time": cur.at.to_string(), "workingSetBytes": cur.memory_bytes}}));
            }
            if !containers.is_empty() {
                pod_entries.push(
                    json!({"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                                         "containers": containers}),
                );
            }
        }
        json!({"node": node_entry, "pods": pod_entries})
    }
}

/// Samples every `PERIOD` (the first two samples a second apart, so rates exist soon).
pub async fn run(
    sampler: Arc<Sampler>,
    runtime: Arc<dyn Runtime>,
    mut stop: watch::Receiver<bool>,
) {
    sampler.sample(&*runtime).await;
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        sampler.sample(&*runtime).await;
        wait = PERIOD;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerInfo, ContainerState, FakeRuntime, SandboxInfo};

    #[test]
    fn host_cpu_and_memory_from_proc() {
        let t = Timestamp::UNIX_EPOCH;
        let c = host_cpu("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3\n", t).expect("cpu");
        assert_eq!(c.busy_nanos, (100 + 5 + 50 + 1 + 2 + 3) * 10_000_000);
        assert_eq!(
            host_memory("MemTotal:  1000 kB\nMemFree: 1 kB\nMemAvailable:  400 kB\n"),
            Some(600 * 1024)
        );
        let later = Timestamp::from_second(2).expect("t");
        assert_eq!(
            rate(0, t, 1_000_000_000, later),
            Some(500_000_000),
            "half a core"
        );
    }

    #[tokio::test]
    async fn summary_has_rates_of_running_containers() {
        let sampler = Sampler::new(false);
        let rt = FakeRuntime::new(Duration::ZERO, 1);
        sampler.sample(&rt).await;
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(10).expect("t");
        sampler.samples.lock().containers.insert(
            "c1".into(),
            (
                ContainerStats {
                    id: "c1".into(),
                    cpu_nanos: 0,
                    memory_bytes: 1,
                    at: t0,
                },
                ContainerStats {
                    id: "c1".into(),
                    cpu_nanos: 2_000_000_000,
                    memory_bytes: 4096,
                    at: t1,
                },
            ),
        );
        let pod = PodInfo {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
            sandbox: Some(SandboxInfo {
                ip: "10.0.0.1".into(),
                created_at: t0,
            }),
            containers: vec![ContainerInfo {
                id: "c1".into(),
                name: "web".into(),
                attempt: 0,
                init: false,
                image_id: String::new(),
                state: ContainerState::Running { started_at: t0 },
            }],
        };
        let s = sampler.summary("n1", &[pod]);
        assert_eq!(s["node"]["nodeName"], "n1");
        let c = &s["pods"][0]["containers"][0];
        assert_eq!(c["name"], "web");
        assert_eq!(c["cpu"]["usageNanoCores"], 200_000_000);
        assert_eq!(c["memory"]["workingSetBytes"], 4096);
        assert_eq!(s["pods"][0]["podRef"]["namespace"], "ns");
    }
}
