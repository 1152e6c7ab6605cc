//! `keelson bench kv <workload>`: etcd `tools/benchmark`-style workloads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use futures::channel::mpsc;
use keelson_proto::etcdserverpb::{
    compare, kv_client::KvClient, lease_client::LeaseClient, request_op, response_op,
    watch_client::WatchClient, watch_request, Compare, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use serde_json::json;
use tonic::transport::Channel;
use tonic::Streaming;

use super::engine::{run_ops, Op};
use super::error::{BenchError, Result};
use super::report::{status_key, Report, Stats};
use super::util::{
    check_key_size, connect_all, find_leader, make_key, parse_duration, prefix_end, RateLimiter,
    Rng,
};

/// Output format of a benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// etcd's benchmark report.
    Simple,
    /// One JSON object.
    Json,
}

/// Flags shared by every workload (etcd benchmark's global flags).
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// gRPC endpoints (comma separated).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of concurrent clients.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Send requests only to the leader (found via Maintenance.Status).
    #[arg(long, global = true)]
    pub target_leader: bool,
    /// Dial timeout.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Per-request client-side timeout; a request that takes longer counts as an error.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Output format.
    #[arg(
        short = 'w',
        long = "output",
        visible_alias = "write-out",
        global = true,
        value_enum,
        default_value = "simple"
    )]
    pub output: OutputFormat,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            endpoints: vec!["127.0.0.1:2379".into()],
            conns: 1,
            clients: 1,
            target_leader: false,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            output: OutputFormat::Simple,
        }
    }
}

#[derive(Args, Debug)]
pub struct KvBenchArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Subcommand, Clone, Debug)]
pub enum Workload {
    /// Benchmark put.
    Put(PutArgs),
    /// Benchmark range: `range <key> [end]`.
    Range(RangeArgs),
    /// Benchmark txn with puts (or, with --cas, Kubernetes-style compare-and-put).
    TxnPut(TxnPutArgs),
    /// Benchmark a mix of range reads and puts.
    TxnMixed(TxnMixedArgs),
    /// Many watchers: throughput of delivered events while putting.
    Watch(WatchArgs),
    /// Put → event latency seen by --watchers watchers, at a fixed put rate.
    WatchLatency(WatchLatencyArgs),
    /// Benchmark lease keep-alive round trips (one lease per client).
    LeaseKeepalive(LeaseArgs),
}

#[derive(Args, Clone, Debug)]
pub struct PutArgs {
    /// Total number of put requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size of put request.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of put request.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Maximum puts per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Consistency of reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

#[derive(Args, Clone, Debug)]
pub struct RangeArgs {
    /// The key (or start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    pub end: Option<String>,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Maximum keys per range (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Only count the keys.
    #[arg(long)]
    pub count_only: bool,
    /// Maximum range requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

#[derive(Args, Clone, Debug)]
pub struct TxnPutArgs {
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size of txn put.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of txn put.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Number of puts per txn (without --cas).
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
    /// Kubernetes-style update: `if mod_revision(key) == last seen then put else get`.
    /// Each client owns the keys congruent to its index modulo --clients.
    #[arg(long)]
    pub cas: bool,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

#[derive(Args, Clone, Debug)]
pub struct TxnMixedArgs {
    /// Total number of requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of puts.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Read/write ratio.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
    /// Keys covered by each read, from a random key on (-1 = up to --key-space-size).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub end_range: i64,
    /// Read consistency: linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Maximum keys returned per read.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Maximum requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

#[derive(Args, Clone, Debug)]
pub struct WatchArgs {
    /// Total number of watchers (all watch the benchmark's key prefix).
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Number of gRPC watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Number of puts (each is delivered to every watcher).
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Maximum puts per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub put_rate: u64,
    /// Key size (after the benchmark's prefix).
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size (at least 8).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// Distinct keys put under the watched prefix.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// How long to wait for outstanding events after the last put.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub watch_timeout: Duration,
}

#[derive(Args, Clone, Debug)]
pub struct WatchLatencyArgs {
    /// Total number of watchers.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Number of gRPC watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Number of puts.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second.
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    /// Key size (after the benchmark's prefix).
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size (at least 8).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// How long to wait for outstanding events after the last put.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub watch_timeout: Duration,
}

impl From<&WatchLatencyArgs> for WatchArgs {
    fn from(a: &WatchLatencyArgs) -> Self {
        WatchArgs {
            watchers: a.watchers,
            streams: a.streams,
            put_total: a.put_total,
            put_rate: a.put_rate,
            key_size: a.key_size,
            val_size: a.val_size,
            key_space_size: 1,
            watch_timeout: a.watch_timeout,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct LeaseArgs {
    /// Total number of keep-alive requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
}

/// `keelson bench kv …`.
pub async fn run(args: KvBenchArgs) -> Result<Report> {
    run_workload(&args.common, &args.workload).await
}

/// Prints a report in the chosen format.
pub fn print(report: &Report, output: OutputFormat) {
    match output {
        OutputFormat::Simple => print!("{}", report.to_text()),
        OutputFormat::Json => println!("{}", report.to_json()),
    }
}

/// The endpoints requests go to: the leader with --target-leader, else all.
async fn targets(common: &Common) -> Result<Vec<String>> {
    if common.target_leader {
        Ok(vec![
            find_leader(&common.endpoints, common.dial_timeout).await?,
        ])
    } else {
        Ok(common.endpoints.clone())
    }
}

fn positive(name: &str, v: u64) -> Result<()> {
    if v == 0 {
        return Err(BenchError::InvalidArgs(format!(
            "{name} must be at least 1"
        )));
    }
    Ok(())
}

/// Runs one workload against `common.endpoints`.
pub async fn run_workload(common: &Common, workload: &Workload) -> Result<Report> {
    positive("--clients", common.clients as u64)?;
    positive("--conns", common.conns as u64)?;
    if let Workload::Watch(w) = workload {
        return run_watch("watch", common, w).await;
    }
    if let Workload::WatchLatency(w) = workload {
        return run_watch("watch-latency", common, &WatchArgs::from(w)).await;
    }
    let channels = connect_all(&targets(common).await?, common.conns, common.dial_timeout).await?;
    let channel = |i: usize| channels[i % channels.len()].clone();
    let timeout = common.request_timeout;
    match workload {
        Workload::Put(a) => {
            check_key_size(a.key_size, a.key_space_size)?;
            positive("--key-space-size", a.key_space_size)?;
            let ops = (0..common.clients)
                .map(|i| {
                    let mut rng = Rng::new(i as u64);
                    PutOp {
                        kv: KvClient::new(channel(i)),
                        value: rng.bytes(a.val_size),
                        rng,
                        args: a.clone(),
                    }
                })
                .collect();
            run_ops("put", ops, a.total, a.rate, timeout).await
        }
        Workload::Range(a) => {
            let ops = (0..common.clients)
                .map(|i| RangeOp {
                    kv: KvClient::new(channel(i)),
                    request: RangeRequest {
                        key: a.key.clone().into_bytes(),
                        range_end: a.end.clone().map(String::into_bytes).unwrap_or_default(),
                        limit: a.limit,
                        serializable: a.consistency == Consistency::S,
                        count_only: a.count_only,
                        ..Default::default()
                    },
                })
                .collect();
            run_ops("range", ops, a.total, a.rate, timeout).await
        }
        Workload::TxnPut(a) => {
            check_key_size(a.key_size, a.key_space_size)?;
            positive("--key-space-size", a.key_space_size)?;
            positive("--txn-ops", a.txn_ops as u64)?;
            if a.cas {
                let ops = (0..common.clients)
                    .map(|i| {
                        let mut rng = Rng::new(i as u64);
                        CasOp {
                            kv: KvClient::new(channel(i)),
                            value: rng.bytes(a.val_size),
                            rng,
                            client: i as u64,
                            clients: common.clients as u64,
                            last_seen: HashMap::new(),
                            args: a.clone(),
                        }
                    })
                    .collect();
                run_ops("txn-put (compare-and-put)", ops, a.total, a.rate, timeout).await
            } else {
                let ops = (0..common.clients)
                    .map(|i| {
                        let mut rng = Rng::new(i as u64);
                        TxnPutOp {
                            kv: KvClient::new(channel(i)),
                            value: rng.bytes(a.val_size),
                            rng,
                            args: a.clone(),
                        }
                    })
                    .collect();
                run_ops("txn-put", ops, a.total, a.rate, timeout).await
            }
        }
        Workload::TxnMixed(a) => {
            check_key_size(a.key_size, a.key_space_size)?;
            positive("--key-space-size", a.key_space_size)?;
            if !(a.rw_ratio.is_finite() && a.rw_ratio >= 0.0) {
                return Err(BenchError::InvalidArgs(
                    "--rw-ratio must be a non-negative number".into(),
                ));
            }
            let ops = (0..common.clients)
                .map(|i| {
                    let mut rng = Rng::new(i as u64);
                    MixedOp {
                        kv: KvClient::new(channel(i)),
                        value: rng.bytes(a.val_size),
                        rng,
                        read_fraction: a.rw_ratio / (a.rw_ratio + 1.0),
                        args: a.clone(),
                    }
                })
                .collect();
            run_ops("txn-mixed", ops, a.total, a.rate, timeout).await
        }
        Workload::LeaseKeepalive(a) => {
            let mut ops = Vec::with_capacity(common.clients);
            let mut leases = Vec::new();
            for i in 0..common.clients {
                let mut lease = LeaseClient::new(channel(i));
                let granted = lease
                    .lease_grant(LeaseGrantRequest { ttl: 100, id: 0 })
                    .await
                    .map_err(|s| BenchError::rpc("lease grant", s))?
                    .into_inner();
                let (tx, rx) = mpsc::unbounded();
                let responses = lease
                    .lease_keep_alive(rx)
                    .await
                    .map_err(|s| BenchError::rpc("lease keep-alive stream", s))?
                    .into_inner();
                leases.push((lease, granted.id));
                ops.push(LeaseOp {
                    id: granted.id,
                    tx,
                    responses,
                });
            }
            let report = run_ops("lease-keepalive", ops, a.total, 0, timeout).await;
            for (mut lease, id) in leases {
                // Best effort: the leases expire on their own anyway.
                let _ = tokio::time::timeout(
                    common.request_timeout,
                    lease.lease_revoke(LeaseRevokeRequest { id }),
                )
                .await;
            }
            report
        }
        Workload::Watch(_) | Workload::WatchLatency(_) => unreachable!("handled above"),
    }
}

struct PutOp {
    kv: KvClient<Channel>,
    rng: Rng,
    value: Vec<u8>,
    args: PutArgs,
}

impl Op for PutOp {
    async fn call(&mut self, seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        let index = if self.args.sequential_keys {
            seq % self.args.key_space_size
        } else {
            self.rng.below(self.args.key_space_size)
        };
        self.kv
            .put(PutRequest {
                key: make_key(index, self.args.key_size),
                value: self.value.clone(),
                ..Default::default()
            })
            .await?;
        Ok("put")
    }
}

struct RangeOp {
    kv: KvClient<Channel>,
    request: RangeRequest,
}

impl Op for RangeOp {
    async fn call(&mut self, _seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        self.kv.range(self.request.clone()).await?;
        Ok("range")
    }
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

struct TxnPutOp {
    kv: KvClient<Channel>,
    rng: Rng,
    value: Vec<u8>,
    args: TxnPutArgs,
}

impl Op for TxnPutOp {
    async fn call(&mut self, _seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        let success = (0..self.args.txn_ops)
            .map(|_| {
                let index = self.rng.below(self.args.key_space_size);
                put_op(make_key(index, self.args.key_size), self.value.clone())
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

/// Kubernetes' optimistic update: `if mod_revision(key) == last seen then put else get`.
struct CasOp {
    kv: KvClient<Channel>,
    rng: Rng,
    value: Vec<u8>,
    client: u64,
    clients: u64,
    last_seen: HashMap<u64, i64>,
    args: TxnPutArgs,
}

impl Op for CasOp {
    async fn call(&mut self, _seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        let owned = (self.args.key_space_size / self.clients).max(1);
        let index = self.client + self.clients * self.rng.below(owned);
        let key = make_key(index, self.args.key_size);
        let seen = self.last_seen.get(&index).copied().unwrap_or(0);
        let response = self
            .kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: key.clone(),
                    range_end: Vec::new(),
                    target_union: Some(compare::TargetUnion::ModRevision(seen)),
                }],
                success: vec![put_op(key.clone(), self.value.clone())],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(RangeRequest {
                        key,
                        ..Default::default()
                    })),
                }],
            })
            .await?
            .into_inner();
        if response.succeeded {
            let revision = response.header.map(|h| h.revision).unwrap_or(0);
            self.last_seen.insert(index, revision);
            Ok("succeeded")
        } else {
            let current = response
                .responses
                .into_iter()
                .find_map(|r| match r.response {
                    Some(response_op::Response::ResponseRange(range)) => {
                        Some(range.kvs.first().map(|kv| kv.mod_revision).unwrap_or(0))
                    }
                    _ => None,
                })
                .unwrap_or(0);
            self.last_seen.insert(index, current);
            Ok("conflict")
        }
    }
}

struct MixedOp {
    kv: KvClient<Channel>,
    rng: Rng,
    value: Vec<u8>,
    read_fraction: f64,
    args: TxnMixedArgs,
}

impl Op for MixedOp {
    async fn call(&mut self, _seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        let space = self.args.key_space_size;
        let index = self.rng.below(space);
        if self.rng.unit() < self.read_fraction {
            let span = if self.args.end_range < 0 {
                space
            } else {
                self.args.end_range as u64
            };
            let end = index.saturating_add(span.max(1)).min(space);
            let range_end = if end >= space {
                vec![0]
            } else {
                make_key(end, self.args.key_size)
            };
            self.kv
                .range(RangeRequest {
                    key: make_key(index, self.args.key_size),
                    range_end,
                    limit: self.args.limit,
                    serializable: self.args.consistency == Consistency::S,
                    ..Default::default()
                })
                .await?;
            Ok("read")
        } else {
            self.kv
                .put(PutRequest {
                    key: make_key(index, self.args.key_size),
                    value: self.value.clone(),
                    ..Default::default()
                })
                .await?;
            Ok("write")
        }
    }
}

struct LeaseOp {
    id: i64,
    tx: mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl Op for LeaseOp {
    async fn call(&mut self, _seq: u64) -> std::result::Result<&'static str, tonic::Status> {
        self.tx
            .unbounded_send(LeaseKeepAliveRequest { id: self.id })
            .map_err(|_| tonic::Status::unavailable("keep-alive stream closed"))?;
        match self.responses.message().await? {
            Some(r) if r.ttl > 0 => Ok("keepalive"),
            Some(_) => Err(tonic::Status::not_found("lease expired or revoked")),
            None => Err(tonic::Status::unavailable("keep-alive stream ended")),
        }
    }
}

/// What one watch stream saw.
struct StreamResult {
    stats: Stats,
    delivered: u64,
}

/// Nanoseconds since `base`, plus one so that 0 means "not started".
fn stamp(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// Watchers on a fresh key prefix (spread over `--streams` streams on all
/// endpoints) while `--clients` putters write under it (to the leader with
/// --target-leader). Every event's latency is measured from the start of its put.
async fn run_watch(name: &str, common: &Common, args: &WatchArgs) -> Result<Report> {
    positive("--watchers", args.watchers as u64)?;
    positive("--streams", args.streams as u64)?;
    positive("--key-space-size", args.key_space_size)?;
    check_key_size(args.key_size, args.key_space_size)?;
    if args.val_size < 8 {
        return Err(BenchError::InvalidArgs(
            "--val-size must be at least 8 for watch benchmarks".into(),
        ));
    }
    let streams = args.streams.min(args.watchers);
    let base = Instant::now();
    let prefix = format!(
        "/keelson-bench/watch/{}-{}/",
        std::process::id(),
        stamp(base) ^ Rng::new(0).next_u64()
    )
    .into_bytes();
    let watch_channels = connect_all(&common.endpoints, common.conns, common.dial_timeout).await?;
    let put_channels =
        connect_all(&targets(common).await?, common.conns, common.dial_timeout).await?;
    let starts: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.put_total).map(|_| AtomicU64::new(0)).collect());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();

    // Watch streams.
    let create_begin = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    let mut expected_total = 0u64;
    for s in 0..streams {
        let watchers = args.watchers / streams + usize::from(s < args.watchers % streams);
        let expected = watchers as u64 * args.put_total;
        expected_total += expected;
        let (tx, rx) = mpsc::unbounded();
        for _ in 0..watchers {
            let create = WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: prefix.clone(),
                        range_end: prefix_end(&prefix),
                        ..Default::default()
                    },
                )),
            };
            tx.unbounded_send(create)
                .map_err(|_| BenchError::Failed("watch request channel closed".into()))?;
        }
        let mut client = WatchClient::new(watch_channels[s % watch_channels.len()].clone());
        let mut responses = tokio::time::timeout(common.dial_timeout, client.watch(rx))
            .await
            .map_err(|_| BenchError::Timeout {
                what: "opening a watch stream".into(),
                secs: common.dial_timeout.as_secs_f64(),
                detail: String::new(),
            })?
            .map_err(|st| BenchError::rpc("watch", st))?
            .into_inner();
        let starts = Arc::clone(&starts);
        let mut stop_rx = stop_rx.clone();
        let ready_tx = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let _keep_request_stream_open = tx;
            let mut result = StreamResult {
                stats: Stats::new(),
                delivered: 0,
            };
            let mut created = 0usize;
            if watchers == 0 {
                let _ = ready_tx.send(());
            }
            while result.delivered < expected || created < watchers {
                let message = tokio::select! {
                    m = responses.message() => m,
                    _ = stop_rx.wait_for(|stop| *stop) => break,
                };
                let response = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        result.stats.error("watch stream ended");
                        break;
                    }
                    Err(status) => {
                        result.stats.error(status_key(&status));
                        break;
                    }
                };
                if response.created {
                    created += 1;
                    if created == watchers {
                        let _ = ready_tx.send(());
                    }
                }
                if response.canceled {
                    result
                        .stats
                        .error(format!("watch canceled: {}", response.cancel_reason));
                }
                for event in &response.events {
                    let Some(kv) = &event.kv else { continue };
                    let Some(index) = kv
                        .value
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_le_bytes)
                    else {
                        continue;
                    };
                    let Some(started) = starts.get(index as usize) else {
                        continue;
                    };
                    let started = started.load(Ordering::Acquire);
                    if started == 0 {
                        continue;
                    }
                    let now = stamp(base);
                    result
                        .stats
                        .record(Duration::from_nanos(now.saturating_sub(started)));
                    result.delivered += 1;
                }
            }
            result
        }));
    }
    drop(ready_tx);
    let create_deadline = Instant::now() + common.request_timeout;
    for _ in 0..streams {
        match tokio::time::timeout_at(create_deadline.into(), ready_rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => {
                let _ = stop_tx.send(true);
                let mut detail = String::new();
                for task in tasks {
                    if let Ok(r) = task.await {
                        for e in r.stats.errors.keys() {
                            detail.push_str(&format!("; {e}"));
                        }
                    }
                }
                return Err(BenchError::Failed(format!(
                    "a watch stream failed before all watchers were created{detail}"
                )));
            }
            Err(_) => {
                let _ = stop_tx.send(true);
                return Err(BenchError::Timeout {
                    what: format!("creating {} watchers", args.watchers),
                    secs: common.request_timeout.as_secs_f64(),
                    detail: String::new(),
                });
            }
        }
    }
    let create_secs = create_begin.elapsed().as_secs_f64();

    // Puts.
    let put_begin = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let limiter = RateLimiter::new(args.put_rate).map(Arc::new);
    let putters: Vec<_> = (0..common.clients)
        .map(|i| {
            let mut kv = KvClient::new(put_channels[i % put_channels.len()].clone());
            let mut rng = Rng::new(i as u64);
            let mut value = rng.bytes(args.val_size);
            let next = Arc::clone(&next);
            let limiter = limiter.clone();
            let starts = Arc::clone(&starts);
            let prefix = prefix.clone();
            let args = args.clone();
            let timeout = common.request_timeout;
            tokio::spawn(async move {
                let mut stats = Stats::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= args.put_total {
                        break;
                    }
                    if let Some(limiter) = &limiter {
                        limiter.acquire().await;
                    }
                    value[..8].copy_from_slice(&index.to_le_bytes());
                    let mut key = prefix.clone();
                    key.extend(make_key(rng.below(args.key_space_size), args.key_size));
                    let begin = Instant::now();
                    if let Some(slot) = starts.get(index as usize) {
                        slot.store(stamp(base), Ordering::Release);
                    }
                    let put = kv.put(PutRequest {
                        key,
                        value: value.clone(),
                        ..Default::default()
                    });
                    match tokio::time::timeout(timeout, put).await {
                        Ok(Ok(_)) => stats.record(begin.elapsed()),
                        Ok(Err(status)) => stats.error(status_key(&status)),
                        Err(_) => stats.error(format!("client timeout after {timeout:?}")),
                    }
                }
                stats
            })
        })
        .collect();
    let mut put_stats = Stats::new();
    for putter in putters {
        match putter.await {
            Ok(stats) => put_stats.merge(&stats),
            Err(e) => put_stats.error(format!("put task failed: {e}")),
        }
    }
    let put_elapsed = put_begin.elapsed();
    let failed_puts = put_stats.error_count();

    // Outstanding events, bounded by --watch-timeout.
    let deadline = Instant::now() + args.watch_timeout;
    let stopper = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            let _ = stop_tx.send(true);
        })
    };
    let mut events = Stats::new();
    let mut delivered = 0u64;
    for task in tasks {
        match task.await {
            Ok(r) => {
                events.merge(&r.stats);
                delivered += r.delivered;
            }
            Err(e) => events.error(format!("watch task failed: {e}")),
        }
    }
    stopper.abort();
    let elapsed = put_begin.elapsed();
    // Events of failed puts were never due; the rest are missing.
    let due = expected_total.saturating_sub(failed_puts * args.watchers as u64);
    events.error_n(
        "events not delivered before --watch-timeout",
        due.saturating_sub(delivered),
    );
    let mut report = Report::new(name, elapsed, events);
    report.extra.insert("watchers".into(), json!(args.watchers));
    report.extra.insert("streams".into(), json!(streams));
    report.extra.insert("events_expected".into(), json!(due));
    report
        .extra
        .insert("events_delivered".into(), json!(delivered));
    report
        .extra
        .insert("watch_create_secs".into(), json!(create_secs));
    for (message, n) in &put_stats.errors {
        report.stats.error_n(format!("put: {message}"), *n);
    }
    let mut puts = Report::new(format!("{name} (puts)"), put_elapsed, put_stats);
    puts.stats.errors.clear();
    report.parts.push(puts);
    Ok(report)
}
