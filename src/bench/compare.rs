//! `keelson bench compare-etcd`: a three-member etcd and a three-member keelson
//! on loopback, measured with the same workloads in one run, alternating the
//! two systems per workload.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use keelson_proto::etcdserverpb::{kv_client::KvClient, request_op, PutRequest, RangeRequest};
use keelson_proto::etcdserverpb::{RequestOp, TxnRequest};
use serde_json::json;
use tonic::transport::Channel;

use super::engine::{run_ops, Op};
use super::error::{BenchError, Result};
use super::kv::{
    run_workload, Common, Consistency, OutputFormat, PutArgs, RangeArgs, TxnPutArgs,
    WatchLatencyArgs, Workload,
};
use super::report::Report;
use super::util::{connect, find_leader, parse_duration, Rng};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The etcd 3.4 server binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// The keelson binary run as `keelson store` [default: this executable].
    #[arg(long)]
    pub keelson: Option<PathBuf>,
    /// Where the members' data dirs and logs go [default: a new dir under /var/tmp].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Multiply every request total by this factor (e.g. 0.05 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Run every workload this many times per system and report the median.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Keys loaded before the restart-to-serving measurement (scaled too).
    #[arg(long, default_value_t = 1_000_000)]
    pub restart_keys: u64,
    /// Keep the data dirs and logs.
    #[arg(long)]
    pub keep: bool,
    /// How long a cluster may take to start (or restart) serving.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub start_timeout: Duration,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum System {
    Etcd,
    Keelson,
}

impl System {
    pub(super) fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Keelson => "keelson",
        }
    }
}

const MEMBERS: usize = 3;
const POLL: Duration = Duration::from_millis(20);
const RANGE_KEY: &str = "/keelson-bench/range-key";

struct Member {
    name: String,
    client_url: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

/// Three members of one system. Every member is SIGKILLed (by PID) and reaped on drop.
pub(super) struct Cluster {
    pub(super) system: System,
    binary: PathBuf,
    leading_args: Vec<String>,
    members: Vec<Member>,
}

/// Loopback ports that were free a moment ago (all held open until all are chosen).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| BenchError::io("binding a loopback port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| BenchError::io("reading a loopback port", e))
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

impl Cluster {
    pub(super) fn new(system: System, binary: &Path, dir: &Path, tag: &str) -> Result<Cluster> {
        fs::create_dir_all(dir)
            .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        let ports = free_ports(2 * MEMBERS)?;
        let names: Vec<String> = (0..MEMBERS)
            .map(|i| format!("{}-{tag}-{i}", system.name()))
            .collect();
        let initial_cluster = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}=http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
                let peer_url = format!("http://127.0.0.1:{}", ports[2 * i + 1]);
                let data_dir = dir.join(format!("{name}.data"));
                let args = vec![
                    "--name".into(),
                    name.clone(),
                    "--data-dir".into(),
                    data_dir.display().to_string(),
                    "--listen-client-urls".into(),
                    client_url.clone(),
                    "--advertise-client-urls".into(),
                    client_url.clone(),
                    "--listen-peer-urls".into(),
                    peer_url.clone(),
                    "--initial-advertise-peer-urls".into(),
                    peer_url,
                    "--initial-cluster".into(),
                    initial_cluster.clone(),
                    "--initial-cluster-state".into(),
                    "new".into(),
                    "--initial-cluster-token".into(),
                    format!("bench-{}-{tag}-{}", system.name(), std::process::id()),
                ];
                Member {
                    name: name.clone(),
                    client_url,
                    log_path: dir.join(format!("{name}.log")),
                    data_dir,
                    args,
                    child: None,
                }
            })
            .collect();
        Ok(Cluster {
            system,
            binary: binary.to_path_buf(),
            leading_args: match system {
                System::Etcd => vec![],
                System::Keelson => vec!["store".into()],
            },
            members,
        })
    }

    /// Adds `args` to every member's command line (before it is started).
    pub(super) fn with_args(mut self, args: &[String]) -> Cluster {
        for member in &mut self.members {
            member.args.extend_from_slice(args);
        }
        self
    }

    pub(super) fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub(super) fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            self.start_member(i)?;
        }
        Ok(())
    }

    /// Starts member `i` (again), appending to its log.
    pub(super) fn start_member(&mut self, i: usize) -> Result<()> {
        {
            let member = &mut self.members[i];
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&member.log_path)
                .map_err(|e| BenchError::io(format!("opening {}", member.log_path.display()), e))?;
            let log2 = log
                .try_clone()
                .map_err(|e| BenchError::io("duplicating a log file handle", e))?;
            let child = Command::new(&self.binary)
                .args(&self.leading_args)
                .args(&member.args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|source| BenchError::Spawn {
                    binary: self.binary.clone(),
                    source,
                })?;
            member.child = Some(child);
        }
        Ok(())
    }

    /// SIGKILLs member `i` by PID and reaps it; returns whether it was running.
    pub(super) fn kill_member(&mut self, i: usize) -> bool {
        match self.members[i].child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            None => false,
        }
    }

    /// SIGKILLs every member by PID and reaps it.
    fn kill_all(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    pub(super) fn check_alive(&mut self) -> Result<()> {
        for member in &mut self.members {
            if let Some(child) = &mut member.child {
                if let Ok(Some(status)) = child.try_wait() {
                    member.child = None;
                    return Err(BenchError::MemberExited {
                        member: member.name.clone(),
                        status: status.to_string(),
                        log: log_tail(&member.log_path, 30),
                    });
                }
            }
        }
        Ok(())
    }

    /// Polls until a linearizable get succeeds on every member (`all`) or on
    /// any member, returning the key's value count; bounded by `timeout`.
    pub(super) async fn wait_serving(
        &mut self,
        all: bool,
        key: &[u8],
        timeout: Duration,
    ) -> Result<i64> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt finished");
        loop {
            self.check_alive()?;
            let attempts = self.members.iter().map(|m| probe(&m.client_url, key));
            let results = futures::future::join_all(attempts).await;
            let ok: Vec<i64> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            if let Some(err) = results.iter().find_map(|r| r.as_ref().err()) {
                last = err.clone();
            }
            if (all && ok.len() == results.len()) || (!all && !ok.is_empty()) {
                return Ok(ok.into_iter().max().unwrap_or(0));
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("{} serving linearizable reads", self.system.name()),
                    secs: timeout.as_secs_f64(),
                    detail: format!("; last error: {last}"),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.data_dir.clone()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// One linearizable get, bounded to a second.
async fn probe(url: &str, key: &[u8]) -> std::result::Result<i64, String> {
    let channel = connect(url, Duration::from_secs(1))
        .await
        .map_err(|e| e.to_string())?;
    let mut kv = KvClient::new(channel);
    let mut request = tonic::Request::new(RangeRequest {
        key: key.to_vec(),
        count_only: true,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(1));
    match tokio::time::timeout(Duration::from_secs(2), kv.range(request)).await {
        Ok(Ok(r)) => Ok(r.into_inner().count),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// VmRSS of a process in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Allocated bytes on disk under `path` (like `du`).
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .map(|e| disk_usage(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0);
    own + children
}

/// Removes the data root on drop unless `--keep`.
pub(super) struct DataRoot {
    pub(super) path: PathBuf,
    pub(super) keep: bool,
}

impl Drop for DataRoot {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "keelson bench: data dirs and logs kept under {}",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    PutSeq,
    Put100,
    Put1000,
    RangeL,
    RangeS,
    TxnCas,
    Watch1,
    Watch1000,
}

const CASES: [Case; 8] = [
    Case::PutSeq,
    Case::Put100,
    Case::Put1000,
    Case::RangeL,
    Case::RangeS,
    Case::TxnCas,
    Case::Watch1,
    Case::Watch1000,
];

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::PutSeq => "put seq (1 client, leader)",
            Case::Put100 => "put 100 clients/10 conns",
            Case::Put1000 => "put 1000 clients/100 conns",
            Case::RangeL => "range 1 key, linearizable",
            Case::RangeS => "range 1 key, serializable",
            Case::TxnCas => "txn-put compare-and-put",
            Case::Watch1 => "watch-latency 1 watcher",
            Case::Watch1000 => "watch-latency 1000 watchers",
        }
    }

    /// The workload at `scale`, aimed at `all` members or the `leader`.
    fn workload(self, scale: f64, all: &[String], leader: &str) -> (Common, Workload) {
        let n = |total: u64, min: u64| ((total as f64 * scale).round() as u64).max(min);
        let common = |endpoints: Vec<String>, conns: usize, clients: usize| Common {
            endpoints,
            conns,
            clients,
            ..Common::default()
        };
        let put = |total: u64| PutArgs {
            total,
            key_size: 8,
            val_size: 256,
            key_space_size: 100_000,
            sequential_keys: false,
            rate: 0,
        };
        let range = |total: u64, consistency| RangeArgs {
            key: RANGE_KEY.into(),
            end: None,
            total,
            consistency,
            limit: 0,
            count_only: false,
            rate: 0,
        };
        let watch =
            |watchers: usize, streams: usize, put_total: u64, put_rate: u64| WatchLatencyArgs {
                watchers,
                streams,
                put_total,
                put_rate,
                key_size: 8,
                val_size: 256,
                watch_timeout: Duration::from_secs(30),
            };
        let leader = vec![leader.to_string()];
        match self {
            Case::PutSeq => (common(leader, 1, 1), Workload::Put(put(n(10_000, 10)))),
            Case::Put100 => (common(leader, 10, 100), Workload::Put(put(n(100_000, 200)))),
            Case::Put1000 => (
                common(leader, 100, 1000),
                Workload::Put(put(n(100_000, 2000))),
            ),
            Case::RangeL => (
                common(all.to_vec(), 10, 100),
                Workload::Range(range(n(100_000, 200), Consistency::L)),
            ),
            Case::RangeS => (
                common(all.to_vec(), 10, 100),
                Workload::Range(range(n(100_000, 200), Consistency::S)),
            ),
            Case::TxnCas => (
                common(all.to_vec(), 10, 100),
                Workload::TxnPut(TxnPutArgs {
                    total: n(100_000, 200),
                    key_size: 8,
                    val_size: 256,
                    key_space_size: 100_000,
                    txn_ops: 1,
                    cas: true,
                    rate: 0,
                }),
            ),
            // Watchers on every member, puts to the leader.
            Case::Watch1 => (
                Common {
                    target_leader: true,
                    ..common(all.to_vec(), 1, 1)
                },
                Workload::WatchLatency(watch(1, 1, n(1000, 10), 100)),
            ),
            Case::Watch1000 => (
                Common {
                    target_leader: true,
                    ..common(all.to_vec(), 10, 1)
                },
                Workload::WatchLatency(watch(1000, 10, n(200, 5), 20)),
            ),
        }
    }

    /// (figure, unit, higher is better, value).
    fn figures(self, r: &Report) -> Vec<(String, &'static str, bool, f64)> {
        let label = self.label();
        let thr = (
            format!("{label}: throughput"),
            "req/s",
            true,
            r.throughput(),
        );
        let p50 = (format!("{label}: p50"), "ms", false, r.percentile_ms(50.0));
        let p99 = (format!("{label}: p99"), "ms", false, r.percentile_ms(99.0));
        match self {
            Case::Watch1 | Case::Watch1000 => vec![p50, p99],
            _ => vec![thr, p50, p99],
        }
    }
}

/// A figure of both systems, each the median over rounds.
struct Row {
    figure: String,
    unit: &'static str,
    higher_is_better: bool,
    etcd: Vec<f64>,
    keelson: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

impl Row {
    fn new(figure: impl Into<String>, unit: &'static str, higher_is_better: bool) -> Self {
        Row {
            figure: figure.into(),
            unit,
            higher_is_better,
            etcd: Vec::new(),
            keelson: Vec::new(),
        }
    }

    fn push(&mut self, system: System, value: f64) {
        match system {
            System::Etcd => self.etcd.push(value),
            System::Keelson => self.keelson.push(value),
        }
    }

    fn values(&self) -> (f64, f64, f64) {
        let (e, k) = (median(&self.etcd), median(&self.keelson));
        let ratio = if e != 0.0 { k / e } else { f64::NAN };
        (e, k, ratio)
    }

    fn direction(&self) -> &'static str {
        if self.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        }
    }
}

fn find_row<'a>(
    rows: &'a mut Vec<Row>,
    figure: &str,
    unit: &'static str,
    hib: bool,
) -> &'a mut Row {
    if let Some(i) = rows.iter().position(|r| r.figure == figure) {
        &mut rows[i]
    } else {
        rows.push(Row::new(figure, unit, hib));
        let last = rows.len() - 1;
        &mut rows[last]
    }
}

fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn print_table(rows: &[Row], args: &CompareArgs) {
    println!(
        "\nkeelson bench compare-etcd (scale {}, rounds {}; 3 members each on 127.0.0.1; ratio = keelson/etcd)\n",
        args.scale, args.rounds
    );
    let width = rows
        .iter()
        .map(|r| r.figure.len() + r.unit.len() + 3)
        .max()
        .unwrap_or(20);
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>8}  direction",
        "figure", "etcd", "keelson", "ratio"
    );
    println!("{}", "-".repeat(width + 58));
    for row in rows {
        let (e, k, ratio) = row.values();
        let figure = format!("{} ({})", row.figure, row.unit);
        println!(
            "{figure:<width$}  {:>12}  {:>12}  {:>8}  {}",
            fmt_value(e),
            fmt_value(k),
            if ratio.is_finite() {
                format!("{ratio:.2}x")
            } else {
                "-".into()
            },
            row.direction()
        );
    }
}

fn table_json(rows: &[Row], args: &CompareArgs) -> serde_json::Value {
    let rows: Vec<_> = rows
        .iter()
        .map(|row| {
            let (e, k, ratio) = row.values();
            let num = |v: f64| if v.is_finite() { json!(v) } else { json!(null) };
            json!({
                "figure": row.figure,
                "unit": row.unit,
                "direction": row.direction(),
                "etcd": num(e),
                "keelson": num(k),
                "ratio": num(ratio),
                "etcd_rounds": row.etcd,
                "keelson_rounds": row.keelson,
            })
        })
        .collect();
    json!({ "scale": args.scale, "rounds": args.rounds, "members": MEMBERS, "rows": rows })
}

fn progress(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "compare-etcd: {message}");
}

/// Loads keys with txns of 128 puts each.
struct LoadOp {
    kv: KvClient<Channel>,
    keys: u64,
    value: Vec<u8>,
}

const LOAD_BATCH: u64 = 128;

fn load_key(i: u64) -> Vec<u8> {
    format!("/keelson-bench/load/{i:08}").into_bytes()
}

impl Op for LoadOp {
    async fn call(&mut self, seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        let first = seq * LOAD_BATCH;
        let success = (first..(first + LOAD_BATCH).min(self.keys))
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: load_key(i),
                    value: self.value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        self.kv
            .txn(TxnRequest {
                success,
                ..Default::default()
            })
            .await?;
        Ok("txn")
    }
}

/// The etcd and keelson binaries of a side-by-side run, and its data root (a new dir under
/// /var/tmp named after `tag` unless `data_root` is given), removed on drop unless `keep`.
pub(super) fn prepare(
    etcd: &Path,
    keelson: Option<&Path>,
    data_root: Option<PathBuf>,
    keep: bool,
    tag: &str,
) -> Result<(PathBuf, PathBuf, DataRoot)> {
    let etcd = resolve_binary(etcd)?;
    let keelson = match keelson {
        Some(p) => resolve_binary(p)?,
        None => {
            std::env::current_exe().map_err(|e| BenchError::io("finding this executable", e))?
        }
    };
    let root = data_root.unwrap_or_else(|| {
        PathBuf::from(format!(
            "/var/tmp/keelson-{tag}-{}-{}",
            std::process::id(),
            Rng::new(1).next_u64() % 100_000
        ))
    });
    fs::create_dir_all(&root)
        .map_err(|e| BenchError::io(format!("creating {}", root.display()), e))?;
    Ok((etcd, keelson, DataRoot { path: root, keep }))
}

fn resolve_binary(path: &Path) -> Result<PathBuf> {
    if path.components().count() > 1 {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(BenchError::Failed(format!(
                "{} not found (install etcd 3.4, e.g. `apt-get install etcd-server`, or pass --etcd)",
                path.display()
            )))
        };
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|d| d.join(path))
        .find(|p| p.is_file())
        .ok_or_else(|| BenchError::Failed(format!("{} is not on PATH", path.display())))
}

pub async fn run(args: CompareArgs) -> Result<()> {
    if !(args.scale.is_finite() && args.scale > 0.0) {
        return Err(BenchError::InvalidArgs("--scale must be positive".into()));
    }
    if args.rounds == 0 {
        return Err(BenchError::InvalidArgs(
            "--rounds must be at least 1".into(),
        ));
    }
    let (etcd, keelson, root) = prepare(
        &args.etcd,
        args.keelson.as_deref(),
        args.data_root.clone(),
        args.keep,
        "bench",
    )?;
    progress(&format!("data root {}", root.path.display()));
    let systems = [(System::Etcd, etcd), (System::Keelson, keelson)];

    let mut rows: Vec<Row> = Vec::new();
    {
        // Both clusters stay up during the workloads (the idle one only heartbeats).
        let mut clusters = Vec::new();
        for (system, binary) in &systems {
            let mut cluster =
                Cluster::new(*system, binary, &root.path.join(system.name()), "main")?;
            cluster.start_all()?;
            clusters.push(cluster);
        }
        for cluster in &mut clusters {
            cluster.wait_serving(true, b"/", args.start_timeout).await?;
            let leader = find_leader(&cluster.endpoints(), Duration::from_secs(5)).await?;
            let mut kv = KvClient::new(connect(&leader, Duration::from_secs(5)).await?);
            kv.put(PutRequest {
                key: RANGE_KEY.into(),
                value: vec![b'v'; 256],
                ..Default::default()
            })
            .await
            .map_err(|s| BenchError::rpc("putting the range key", s))?;
            progress(&format!(
                "{} cluster up, leader {leader}",
                cluster.system.name()
            ));
        }
        let mut errors = [0u64; 2];
        for case in CASES {
            for round in 0..args.rounds {
                for (i, cluster) in clusters.iter_mut().enumerate() {
                    cluster.check_alive()?;
                    let all = cluster.endpoints();
                    let leader = find_leader(&all, Duration::from_secs(5)).await?;
                    let (common, workload) = case.workload(args.scale, &all, &leader);
                    let report = run_workload(&common, &workload).await?;
                    errors[i] += report.errors();
                    progress(&format!(
                        "[{}] {} round {}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors{}",
                        cluster.system.name(),
                        case.label(),
                        round + 1,
                        report.throughput(),
                        report.percentile_ms(50.0),
                        report.percentile_ms(99.0),
                        report.errors(),
                        report
                            .stats
                            .errors
                            .iter()
                            .next()
                            .map(|(e, n)| format!(" (e.g. {n}× {e})"))
                            .unwrap_or_default()
                    ));
                    for (figure, unit, hib, value) in case.figures(&report) {
                        find_row(&mut rows, &figure, unit, hib).push(cluster.system, value);
                    }
                }
            }
        }
        let row = find_row(&mut rows, "errors, all workloads", "count", false);
        row.push(System::Etcd, errors[0] as f64);
        row.push(System::Keelson, errors[1] as f64);
        for cluster in &clusters {
            let rss: Vec<u64> = cluster.pids().into_iter().filter_map(rss_bytes).collect();
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            find_row(&mut rows, "RSS after the run, max member", "MiB", false)
                .push(cluster.system, mib(rss.iter().copied().max().unwrap_or(0)));
            find_row(&mut rows, "RSS after the run, sum of 3", "MiB", false)
                .push(cluster.system, mib(rss.iter().sum()));
        }
        // The clusters are killed here, before the footprint phase.
    }

    let fp_puts = ((100_000f64 * args.scale).round() as u64).max(200);
    let restart_keys = ((args.restart_keys as f64 * args.scale).round() as u64).max(LOAD_BATCH);
    for (system, binary) in &systems {
        let mut cluster = Cluster::new(
            *system,
            binary,
            &root.path.join(format!("{}-footprint", system.name())),
            "fp",
        )?;
        cluster.start_all()?;
        cluster.wait_serving(true, b"/", args.start_timeout).await?;
        let all = cluster.endpoints();
        let leader = find_leader(&all, Duration::from_secs(5)).await?;
        let (common, _) = Case::Put100.workload(args.scale, &all, &leader);
        let mut put = match Case::Put100.workload(args.scale, &all, &leader).1 {
            Workload::Put(p) => p,
            _ => unreachable!("Put100 is a put workload"),
        };
        put.total = fp_puts;
        let report = run_workload(&common, &Workload::Put(put)).await?;
        let usage: Vec<u64> = cluster.data_dirs().iter().map(|d| disk_usage(d)).collect();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        find_row(
            &mut rows,
            format!("data dir after {fp_puts} puts, max member").as_str(),
            "MiB",
            false,
        )
        .push(*system, mib(usage.iter().copied().max().unwrap_or(0)));
        progress(&format!(
            "[{}] footprint: {} puts ({} errors), data dirs {:?} MiB",
            system.name(),
            report.ok(),
            report.errors(),
            usage
                .iter()
                .map(|b| (mib(*b) * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        ));

        // Load keys fast, kill -9 every member, restart, time until a linearizable get succeeds.
        let channels =
            super::util::connect_all(std::slice::from_ref(&leader), 4, Duration::from_secs(5))
                .await?;
        let mut rng = Rng::new(9);
        let value = rng.bytes(256);
        let ops = (0..16)
            .map(|i| LoadOp {
                kv: KvClient::new(channels[i % channels.len()].clone()),
                keys: restart_keys,
                value: value.clone(),
            })
            .collect();
        let batches = restart_keys.div_ceil(LOAD_BATCH);
        let load = run_ops("load", ops, batches, 0, Duration::from_secs(60)).await?;
        progress(&format!(
            "[{}] loaded {} keys in {:.1} s ({} failed txns)",
            system.name(),
            restart_keys,
            load.elapsed.as_secs_f64(),
            load.errors()
        ));
        let last_key = load_key(restart_keys - 1);
        cluster.kill_all();
        let begin = Instant::now();
        cluster.start_all()?;
        let found = cluster
            .wait_serving(false, &last_key, args.start_timeout)
            .await?;
        let restart = begin.elapsed().as_secs_f64();
        if found != 1 {
            progress(&format!(
                "[{}] warning: the last loaded key was not found after restart",
                system.name()
            ));
        }
        find_row(
            &mut rows,
            format!("restart to serving, {restart_keys} keys").as_str(),
            "s",
            false,
        )
        .push(*system, restart);
        progress(&format!(
            "[{}] restart to serving: {restart:.2} s",
            system.name()
        ));
        find_row(&mut rows, "errors, footprint phase", "count", false)
            .push(*system, (report.errors() + load.errors()) as f64);
        drop(cluster);
        if !args.keep {
            let _ = fs::remove_dir_all(root.path.join(format!("{}-footprint", system.name())));
        }
    }

    match args.output {
        OutputFormat::Simple => print_table(&rows, &args),
        OutputFormat::Json => println!("{}", table_json(&rows, &args)),
    }
    drop(root);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_ratio() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        let mut row = Row::new("x", "req/s", true);
        row.push(System::Etcd, 100.0);
        row.push(System::Keelson, 50.0);
        assert_eq!(row.values().2, 0.5);
    }

    #[test]
    fn scaled_workloads_stay_positive() {
        for case in CASES {
            let (common, workload) = case.workload(0.0001, &["a".into()], "a");
            assert!(common.clients >= 1);
            let total = match workload {
                Workload::Put(p) => p.total,
                Workload::Range(r) => r.total,
                Workload::TxnPut(t) => t.total,
                Workload::WatchLatency(w) => w.put_total,
                _ => 0,
            };
            assert!(total >= 1, "{case:?}");
        }
    }
}
