//! `keelson bench api`: create/get/list/update/watch of pods at N concurrent clients against
//! `keelson server` (a three-member cluster on loopback that the bench starts, or any
//! kubeconfig), judged against the Kubernetes API SLOs, with the store's raw put throughput
//! measured in the same run for the apiserver's overhead.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, ListParams, ObjectMeta, PatchParams, PostParams, WatchEvent, WatchParams};
use parking_lot::Mutex;
use serde_json::json;

use super::error::{BenchError, Result};
use super::kv::{run_workload, Common, OutputFormat, PutArgs, Workload};
use super::report::{Report, Stats};
use super::servers::{ensure_namespace, server_binary, wait_serving, ServerCluster};
use super::util::parse_duration;

#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Use this kubeconfig instead of starting a three-member `keelson server` cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The etcd v3 endpoint of the store, for the raw put baseline (with --kubeconfig).
    #[arg(long)]
    pub store_endpoint: Option<String>,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Pods created (and then kept stored for the other verbs).
    #[arg(long, default_value_t = 10_000)]
    pub pods: u64,
    /// Gets and updates issued (each).
    #[arg(long, default_value_t = 10_000)]
    pub ops: u64,
    /// Full lists of every pod.
    #[arg(long, default_value_t = 20)]
    pub lists: u64,
    /// Watchers for the update → event latency.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// The `keelson` binary to run as `keelson server` [default: this executable].
    #[arg(long)]
    pub keelson: Option<PathBuf>,
    /// Where the members' data dirs and logs go [default: a new dir under /var/tmp].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the data dirs and logs.
    #[arg(long)]
    pub keep: bool,
    /// How long the cluster may take to start serving.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Output format.
    #[arg(short = 'w', long = "output", value_enum, default_value = "simple")]
    pub output: OutputFormat,
}

const NAMESPACE: &str = "bench";
const MEMBERS: usize = 3;
/// Kubernetes' API call latency SLOs (p99): mutating and single-object reads ≤ 1 s,
/// namespace-scoped lists ≤ 5 s, cluster-scoped lists ≤ 30 s.
const SLO_SINGLE_MS: f64 = 1000.0;
const SLO_LIST_MS: f64 = 30_000.0;

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                [
                    ("app".to_string(), "bench".to_string()),
                    ("shard".to_string(), format!("s{}", name.len() % 7)),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("localhost/busybox:latest".into()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_name(i: u64) -> String {
    format!("bench-{i:06}")
}

/// Runs `total` operations over `clients` tasks; each op gets its sequence number.
async fn closed_loop<F, Fut>(name: &str, clients: usize, total: u64, f: F) -> Report
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), String>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|c| {
            let f = Arc::clone(&f);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut stats = Stats::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        break;
                    }
                    let begin = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(60), f(c, seq)).await {
                        Ok(Ok(())) => stats.record(begin.elapsed()),
                        Ok(Err(e)) => stats.error(e),
                        Err(_) => stats.error("client timeout after 60s"),
                    }
                }
                stats
            })
        })
        .collect();
    let mut all = Stats::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.merge(&s),
            Err(e) => all.error(format!("client task failed: {e}")),
        }
    }
    Report::new(name, start.elapsed(), all)
}

fn err_text(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string(),
    }
}

pub async fn run(args: ApiArgs) -> Result<()> {
    if args.clients == 0 || args.pods == 0 {
        return Err(BenchError::InvalidArgs(
            "--clients and --pods must be at least 1".into(),
        ));
    }
    let mut cluster = None;
    let mut root_to_remove = None;
    let (kubeconfigs, store_endpoints) = match &args.kubeconfig {
        Some(k) => (
            vec![k.clone()],
            args.store_endpoint.clone().into_iter().collect::<Vec<_>>(),
        ),
        None => {
            let binary = server_binary(&args.keelson)?;
            let root = match &args.data_root {
                Some(r) => r.clone(),
                None => PathBuf::from(format!("/var/tmp/keelson-bench-api-{}", std::process::id())),
            };
            if !args.keep {
                root_to_remove = Some(root.clone());
            }
            // The apiserver alone: with no nodes, a scheduler would add a status write and
            // an event per pod to what is measured.
            let c = ServerCluster::start(
                &binary,
                &root,
                "api",
                MEMBERS,
                &["--disable", "scheduler,controllers"],
            )?;
            let kcs = c.kubeconfigs();
            let eps = c.client_urls();
            cluster = Some(c);
            (kcs, eps)
        }
    };
    // Every member serves the API.
    let clients = wait_serving(&mut cluster, &kubeconfigs, args.start_timeout).await?;
    progress(&format!(
        "{} apiserver(s) serving; creating namespace {NAMESPACE}",
        clients.len()
    ));
    ensure_namespace(&clients[0], NAMESPACE).await?;
    let apis: Arc<Vec<Api<Pod>>> = Arc::new(
        clients
            .iter()
            .map(|c| Api::namespaced(c.clone(), NAMESPACE))
            .collect(),
    );
    let pick = |apis: &Arc<Vec<Api<Pod>>>, c: usize| apis[c % apis.len()].clone();

    // The store's raw put throughput with the same clients and a pod-sized value.
    let value_size = serde_json::to_vec(&pod(&pod_name(0)))
        .map(|v| v.len())
        .unwrap_or(1024)
        .max(1024);
    let raw = if store_endpoints.is_empty() {
        None
    } else {
        progress("raw store puts");
        let common = Common {
            endpoints: store_endpoints.clone(),
            conns: (args.clients / 10).max(1),
            clients: args.clients,
            target_leader: false,
            ..Common::default()
        };
        let put = PutArgs {
            total: args.pods,
            key_size: 32,
            val_size: value_size,
            key_space_size: args.pods,
            sequential_keys: true,
            rate: 0,
        };
        Some(run_workload(&common, &Workload::Put(put)).await?)
    };

    progress(&format!(
        "creating {} pods with {} clients",
        args.pods, args.clients
    ));
    let a = Arc::clone(&apis);
    let create = closed_loop("create", args.clients, args.pods, move |c, i| {
        let api = pick(&a, c);
        async move {
            api.create(&PostParams::default(), &pod(&pod_name(i)))
                .await
                .map(|_| ())
                .map_err(err_text)
        }
    })
    .await;

    progress("getting pods");
    let a = Arc::clone(&apis);
    let n = args.pods;
    let get = closed_loop("get", args.clients, args.ops, move |c, i| {
        let api = pick(&a, c);
        let name = pod_name((i * 7919) % n);
        async move { api.get(&name).await.map(|_| ()).map_err(err_text) }
    })
    .await;

    // Updates: each client owns its pods, so updates carry the resourceVersion they read.
    progress("updating pods");
    let versions: Arc<Mutex<HashMap<String, Pod>>> = Arc::new(Mutex::new(HashMap::new()));
    let a = Arc::clone(&apis);
    let clients_n = args.clients as u64;
    let v2 = Arc::clone(&versions);
    let update = closed_loop("update", args.clients, args.ops, move |c, i| {
        let api = pick(&a, c);
        let owned = ((i / clients_n) * clients_n + c as u64) % n;
        let name = pod_name(owned);
        let versions = Arc::clone(&v2);
        async move {
            let cached = versions.lock().get(&name).cloned();
            let mut p = match cached {
                Some(p) => p,
                None => api.get(&name).await.map_err(err_text)?,
            };
            let labels = p.metadata.labels.get_or_insert_with(Default::default);
            labels.insert("rev".into(), format!("u{i}"));
            match api.replace(&name, &PostParams::default(), &p).await {
                Ok(newp) => {
                    versions.lock().insert(name, newp);
                    Ok(())
                }
                Err(e) => {
                    versions.lock().remove(&name);
                    Err(err_text(e))
                }
            }
        }
    })
    .await;

    progress(&format!("listing {} pods {} times", args.pods, args.lists));
    let a = Arc::clone(&apis);
    let list = closed_loop(
        "list",
        10.min(args.lists as usize).max(1),
        args.lists,
        move |c, _| {
            let api = pick(&a, c);
            async move {
                let l = api.list(&ListParams::default()).await.map_err(err_text)?;
                if l.items.len() as u64 >= n {
                    Ok(())
                } else {
                    Err(format!("list returned {} of {n} pods", l.items.len()))
                }
            }
        },
    )
    .await;
    let a = Arc::clone(&apis);
    let paged = closed_loop("list (pages of 500)", 1, args.lists.min(5), move |c, _| {
        let api = pick(&a, c);
        async move {
            let mut count = 0usize;
            let mut lp = ListParams::default().limit(500);
            loop {
                let page = api.list(&lp).await.map_err(err_text)?;
                count += page.items.len();
                match page.metadata.continue_ {
                    Some(cont) if !cont.is_empty() => lp = lp.continue_token(&cont),
                    _ => break,
                }
            }
            if count as u64 >= n {
                Ok(())
            } else {
                Err(format!("paged list returned {count} of {n} pods"))
            }
        }
    })
    .await;

    progress(&format!(
        "update → event latency with {} watchers",
        args.watchers
    ));
    let watch = watch_latency(&apis, args.watchers, n).await?;

    let rss = cluster
        .as_ref()
        .map(ServerCluster::rss_bytes)
        .unwrap_or_default();
    drop(cluster);
    if let Some(root) = root_to_remove {
        let _ = fs::remove_dir_all(root);
    }
    let reports = [&create, &get, &update, &list, &paged, &watch];
    match args.output {
        OutputFormat::Json => {
            let mut v = json!({
                "clients": args.clients,
                "pods": args.pods,
                "apiservers": kubeconfigs.len(),
                "verbs": reports.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
                "rss_bytes": rss,
            });
            if let Some(r) = &raw {
                v["raw_store_put"] = r.to_json();
                v["api_create_vs_raw_put"] = json!(create.throughput() / r.throughput().max(1e-9));
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        _ => print_table(&reports, raw.as_ref(), &args, &rss),
    }
    let failed: u64 = reports.iter().map(|r| r.errors()).sum();
    if failed > 0 {
        eprintln!("warning: {failed} requests failed (see the error counts above)");
    }
    Ok(())
}

/// Watchers on the namespace; updates with a timestamp annotation; latency = receive − send.
async fn watch_latency(apis: &Arc<Vec<Api<Pod>>>, watchers: usize, n: u64) -> Result<Report> {
    let updates: u64 = 500;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let stats = Arc::new(Mutex::new(Stats::new()));
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    for w in 0..watchers {
        let api = apis[w % apis.len()].clone();
        let sent = Arc::clone(&sent);
        let stats = Arc::clone(&stats);
        let received = Arc::clone(&received);
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let rv = match api.list(&ListParams::default().limit(1)).await {
                Ok(l) => l.metadata.resource_version.unwrap_or_default(),
                Err(_) => return,
            };
            let Ok(stream) = api
                .watch(
                    &WatchParams::default().labels("watched=yes").timeout(290),
                    &rv,
                )
                .await
            else {
                return;
            };
            let _ = ready.send(()).await;
            let mut stream = Box::pin(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Modified(p) | WatchEvent::Added(p)) = ev {
                    let tag = p
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("bench/seq").cloned());
                    if let Some(tag) = tag {
                        let start = sent.lock().get(&tag).copied();
                        if let Some(start) = start {
                            stats.lock().record(start.elapsed());
                            if received.fetch_add(1, Ordering::Relaxed) + 1
                                >= updates * watchers as u64
                            {
                                break;
                            }
                        }
                    }
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let begin = Instant::now();
    for i in 0..updates {
        let api = &apis[(i as usize) % apis.len()];
        let name = pod_name(i % n);
        let tag = format!("{i}");
        sent.lock().insert(tag.clone(), Instant::now());
        let patch =
            json!({"metadata": {"labels": {"watched": "yes"}, "annotations": {"bench/seq": tag}}});
        let _ = api
            .patch(
                &name,
                &PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await;
        // ~200 updates per second: the latency at a steady rate, not at saturation.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < updates * watchers as u64 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.abort();
    }
    let mut s = stats.lock().clone();
    let got = received.load(Ordering::Relaxed);
    let want = updates * watchers as u64;
    if got < want {
        s.error_n(
            format!("events not received within 30 s ({got} of {want})"),
            want - got,
        );
    }
    let mut r = Report::new("watch (update → event)", begin.elapsed(), s);
    r.extra.insert("watchers".into(), json!(watchers));
    Ok(r)
}

fn progress(msg: &str) {
    eprintln!("keelson bench api: {msg}");
}

fn print_table(reports: &[&Report], raw: Option<&Report>, args: &ApiArgs, rss: &[u64]) {
    println!(
        "keelson bench api: {} clients, {} pods stored\n",
        args.clients, args.pods
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>8}  SLO (p99)",
        "verb", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for r in reports {
        let slo = if r.name.starts_with("list") {
            SLO_LIST_MS
        } else {
            SLO_SINGLE_MS
        };
        let held = if r.ok() > 0 && r.percentile_ms(99.0) <= slo {
            "held"
        } else {
            "MISSED"
        };
        println!(
            "{:<26} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>8}  ≤ {:.0} ms {held}",
            r.name,
            r.throughput(),
            r.percentile_ms(50.0),
            r.percentile_ms(99.0),
            r.max_ms(),
            r.errors(),
            slo
        );
    }
    if let Some(raw) = raw {
        println!(
            "\nraw store put ({} clients, pod-sized values): {:.0}/s, p99 {:.2} ms",
            args.clients,
            raw.throughput(),
            raw.percentile_ms(99.0)
        );
        let create = reports.first().map(|r| r.throughput()).unwrap_or(0.0);
        println!(
            "API create / raw put: {:.2} (goal ≥ 0.50)",
            create / raw.throughput().max(1e-9)
        );
    }
    if !rss.is_empty() {
        let mb: Vec<String> = rss
            .iter()
            .map(|b| format!("{:.0} MiB", *b as f64 / (1 << 20) as f64))
            .collect();
        println!("apiserver member RSS after the run: {}", mb.join(", "));
    }
}
