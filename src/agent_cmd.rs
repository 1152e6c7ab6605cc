//! `keelson agent`: the node agent (kubelet) as its own process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use keelson_kubelet::podman::{PodmanRuntime, PodmanService};
use keelson_kubelet::{node, FakeRuntime, NodeOptions, NodeSpec, Runtime};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::{watch, Semaphore};

use crate::store_cmd::{init_logging, shutdown_signal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Podman through its libpod REST API.
    Podman,
    /// Pods "start" at once without containers (hollow nodes, for scale and tests).
    Fake,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Kubeconfig of the apiserver to use (e.g. a server's data-dir/admin.kubeconfig);
    /// instead of --server and --token.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// A server of the cluster to join (`https://<server>:6443`), with --token; several,
    /// comma-separated or repeated, are tried in order, and the agent's requests fail over
    /// between them. The client certificate the join gives is kept in
    /// `<root-dir>/kubelet.kubeconfig` for restarts.
    #[arg(long, value_delimiter = ',', requires = "token")]
    pub server: Vec<String>,
    /// The cluster's join token (`<data-dir>/token` on any server).
    #[arg(long, env = "KEELSON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// This node's name [default: the host name]; with --fake-nodes N > 1 the nodes are
    /// `<name>-0` … `<name>-(N-1)`.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Labels to register the node with: `key=value,…`.
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// Taints to register the node with: `key[=value]:Effect,…`.
    #[arg(long, default_value = "")]
    pub register_with_taints: String,
    /// Pods this node takes.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The node's InternalIP address.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// The container runtime.
    #[arg(long, value_enum, default_value = "podman")]
    pub runtime: RuntimeKind,
    /// Where the agent keeps its state: pods' volumes and, unless --podman-socket is given,
    /// the socket, containers.conf and log of the `podman system service` it runs.
    #[arg(long, default_value = "/var/lib/keelson/agent")]
    pub root_dir: std::path::PathBuf,
    /// The socket of a Podman API service to use instead of starting one.
    #[arg(long)]
    pub podman_socket: Option<std::path::PathBuf>,
    /// The port of the kubelet's HTTPS endpoint (container logs for the apiserver), on
    /// --address; 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Fake nodes this process runs (`--runtime fake`).
    #[arg(long, default_value_t = 1)]
    pub fake_nodes: usize,
    /// How long a fake pod takes to start, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub fake_start_delay_ms: u64,
    /// CPU capacity a fake node reports.
    #[arg(long, default_value = "32")]
    pub fake_cpu: String,
    /// Memory capacity a fake node reports.
    #[arg(long, default_value = "256Gi")]
    pub fake_memory: String,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Renew the client certificate the join gave (in `<root-dir>/kubelet.kubeconfig`) through
    /// --server with --token when it comes within this many days of expiry; checked at start
    /// and twice a day, and the agent's requests switch to the new one without a restart.
    #[arg(long, default_value_t = keelson_apiserver::pki::RENEW_BEFORE_DAYS)]
    pub renew_client_certificate_days: i64,
    /// The nameservers of pods with `dnsPolicy: ClusterFirst` (comma-separated): the
    /// address the cluster DNS answers pods on. Without it they use the host's resolver.
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<String>,
    /// The cluster's DNS domain (pods' search domains).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Do not run keelson-proxy (the nftables table `ip keelson` that makes Services'
    /// ClusterIPs and NodePorts work on this node). Only Podman nodes run it.
    #[arg(long)]
    pub disable_proxy: bool,
}

impl AgentArgs {
    fn dns(&self) -> keelson_kubelet::dns::ClusterDns {
        keelson_kubelet::dns::ClusterDns {
            servers: self.cluster_dns.clone(),
            domain: self.cluster_domain.clone(),
        }
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node's capacity from the host: CPUs, memory (/proc/meminfo), pods, and the size of
/// the file system the containers live on.
fn host_capacity(
    max_pods: u32,
    storage_bytes: Option<u64>,
) -> std::collections::BTreeMap<String, String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mut c: std::collections::BTreeMap<String, String> = [
        ("cpu".to_string(), cpus.to_string()),
        ("memory".to_string(), format!("{memory_kib}Ki")),
        ("pods".to_string(), max_pods.to_string()),
    ]
    .into();
    if let Some(b) = storage_bytes {
        c.insert("ephemeral-storage".into(), format!("{}Ki", b / 1024));
    }
    c
}

/// The agent's kubeconfig from joining with `--server`/`--token`: `<root-dir>/kubelet.kubeconfig`
/// when an earlier join wrote it, else a join through the first server that answers.
async fn join_cluster(args: &AgentArgs, node_name: &str) -> Result<std::path::PathBuf> {
    use keelson_apiserver::join::{self, JoinToken};
    let path = args.root_dir.join("kubelet.kubeconfig");
    if path.exists() {
        return Ok(path);
    }
    let token = JoinToken::parse(args.token.as_deref().unwrap_or_default()).context("--token")?;
    let mut errors = Vec::new();
    for server in &args.server {
        match join::join_as_agent(server, &token, node_name).await {
            Ok(j) => {
                std::fs::create_dir_all(&args.root_dir)
                    .with_context(|| format!("creating {}", args.root_dir.display()))?;
                let user = format!("system:node:{node_name}");
                let kc =
                    keelson_apiserver::pki::kubeconfig(server, &j.ca_cert, &user, &j.cert, &j.key);
                keelson_apiserver::pki::write_secret_file(&path, &kc)?;
                eprintln!("keelson agent: joined the cluster of {server} as node {node_name}");
                return Ok(path);
            }
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    bail!("could not join the cluster: {}", errors.join("; "))
}

async fn load_kubeconfig(path: &std::path::Path) -> Result<Config> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))
}

/// A client of each server with `config`'s credentials.
fn server_clients(config: &Config, servers: &[String]) -> Result<Vec<(String, Client)>> {
    servers
        .iter()
        .map(|s| {
            let mut c = config.clone();
            c.cluster_url = s
                .parse()
                .with_context(|| format!("--server {s:?} is not a URL"))?;
            Ok((
                s.clone(),
                Client::try_from(c).context("building the API client")?,
            ))
        })
        .collect()
}

/// What renewing the agent's client certificate needs.
struct RenewalArgs {
    servers: Vec<String>,
    token: String,
    days: i64,
}

/// Renews the client certificate in `kubeconfig` when it comes within `days` of expiry, at
/// start and then twice a day (hourly after a failure); see [`renew_if_due`].
async fn keep_client_certificate_fresh(
    args: RenewalArgs,
    node: String,
    kubeconfig: std::path::PathBuf,
    failover: keelson_kubelet::failover::Failover,
) {
    loop {
        let wait = match renew_if_due(&args, &node, &kubeconfig, &failover).await {
            Ok(renewed) => {
                if renewed {
                    tracing::info!(path = %kubeconfig.display(), "renewed the client certificate");
                    eprintln!(
                        "keelson agent: renewed the client certificate in {}",
                        kubeconfig.display()
                    );
                }
                Duration::from_secs(12 * 3600)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "renewing the client certificate");
                Duration::from_secs(3600)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// When the kubeconfig's client certificate ends within `args.days`: a new one through the
/// join endpoint of the first server that answers, written to the kubeconfig first, then
/// handed to `failover` so the next requests use it. Whether it renewed.
async fn renew_if_due(
    args: &RenewalArgs,
    node: &str,
    kubeconfig: &std::path::Path,
    failover: &keelson_kubelet::failover::Failover,
) -> Result<bool> {
    use base64::Engine as _;
    use keelson_apiserver::join::{self, JoinToken};
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cert = kc
        .auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.client_certificate_data.as_ref())
        .context("the kubeconfig has no client certificate")?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert.trim())
        .context("the kubeconfig's client certificate is not base64")?;
    if !keelson_apiserver::pki::expires_within(&String::from_utf8_lossy(&pem), args.days) {
        return Ok(false);
    }
    let token = JoinToken::parse(&args.token).context("--token")?;
    let mut errors = Vec::new();
    for server in &args.servers {
        match join::join_as_agent(server, &token, node).await {
            Ok(j) => {
                let user = format!("system:node:{node}");
                let text =
                    keelson_apiserver::pki::kubeconfig(server, &j.ca_cert, &user, &j.cert, &j.key);
                keelson_apiserver::pki::write_secret_file(kubeconfig, &text)?;
                let config = load_kubeconfig(kubeconfig).await?;
                failover.replace(server_clients(&config, &args.servers)?);
                return Ok(true);
            }
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    bail!("no server renewed it: {}", errors.join("; "))
}

pub async fn run(args: AgentArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    if args.fake_nodes == 0 {
        bail!("--fake-nodes must be at least 1");
    }
    if args.runtime == RuntimeKind::Podman && args.fake_nodes != 1 {
        bail!("--fake-nodes needs --runtime fake");
    }
    let labels = node::parse_labels(&args.node_labels)?;
    let taints = node::parse_taints(&args.register_with_taints)?;
    let base = args.node_name.clone().unwrap_or_else(host_name);
    let kubeconfig = match &args.kubeconfig {
        Some(k) => k.clone(),
        None => join_cluster(&args, &base).await?,
    };
    let config = load_kubeconfig(&kubeconfig).await?;
    let cluster_ca = config.root_cert.clone().unwrap_or_default();
    let client = if args.server.is_empty() {
        Client::try_from(config).context("building the API client")?
    } else {
        // One client per server, the same credentials: requests fail over between them.
        let failover =
            keelson_kubelet::failover::Failover::new(server_clients(&config, &args.server)?)
                .context("no --server")?;
        if args.kubeconfig.is_none() {
            tokio::spawn(keep_client_certificate_fresh(
                RenewalArgs {
                    servers: args.server.clone(),
                    token: args.token.clone().unwrap_or_default(),
                    days: args.renew_client_certificate_days,
                },
                base.clone(),
                kubeconfig.clone(),
                failover.clone(),
            ));
        }
        failover.client("default")
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(keelson_kubelet::STATUS_WRITES_IN_FLIGHT));
    if args.runtime == RuntimeKind::Podman {
        return run_podman(
            &args, client, labels, taints, base, stop_tx, stop_rx, slots, cluster_ca,
        )
        .await;
    }
    let mut nodes = Vec::new();
    for i in 0..args.fake_nodes {
        let name = if args.fake_nodes == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let runtime: Arc<dyn Runtime> =
            Arc::new(keelson_kubelet::metrics::Timed(Arc::new(FakeRuntime::new(
                Duration::from_millis(args.fake_start_delay_ms),
                u8::try_from(64 + i % 128).unwrap_or(64),
            ))));
        let spec = NodeSpec {
            name,
            labels: labels.clone(),
            taints: taints.clone(),
            capacity: [
                ("cpu".to_string(), args.fake_cpu.clone()),
                ("memory".to_string(), args.fake_memory.clone()),
                ("pods".to_string(), args.max_pods.to_string()),
                ("ephemeral-storage".to_string(), "100Gi".to_string()),
            ]
            .into(),
            address: args.address.clone(),
            runtime_version: runtime.version(),
            kubelet_port: None,
        };
        let options = NodeOptions {
            root_dir: None,
            relist: FAKE_RELIST,
            observe_host: false,
            dns: args.dns(),
        };
        nodes.push(tokio::spawn(keelson_kubelet::run_node(
            client.clone(),
            spec,
            options,
            runtime,
            Arc::clone(&slots),
            stop_rx.clone(),
        )));
    }
    eprintln!(
        "keelson agent: {} fake node(s) from {base}",
        args.fake_nodes
    );
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    for n in nodes {
        match n.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "node agent"),
            Err(e) => tracing::warn!(error = %e, "node agent task"),
        }
    }
    Ok(())
}

/// How often the fake runtime is relisted (its pods change only when told to).
const FAKE_RELIST: Duration = Duration::from_secs(5);
/// How often Podman is relisted (the kubelet's PLEG period).
const PODMAN_RELIST: Duration = Duration::from_secs(1);

/// One node on Podman.
pub struct PodmanNode {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub taints: Vec<serde_json::Value>,
    pub max_pods: u32,
    pub address: String,
    pub root_dir: std::path::PathBuf,
    /// A Podman API socket to use instead of starting `podman system service`.
    pub podman_socket: Option<std::path::PathBuf>,
    /// The kubelet endpoint's port (0: any free one).
    pub port: u16,
    /// DER certificates of the cluster CA: who may call the kubelet endpoint.
    pub cluster_ca: Vec<Vec<u8>>,
    /// The pods' cluster DNS.
    pub dns: keelson_kubelet::dns::ClusterDns,
    /// Whether keelson-proxy programs this host's Services.
    pub proxy: bool,
}

/// Runs a node on Podman until `stop`: starts (or connects to) the Podman service,
/// registers the node and runs its pods. Containers keep running after it returns; the
/// next agent on this node adopts them.
pub async fn run_podman_node(
    client: Client,
    n: PodmanNode,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    std::fs::create_dir_all(&n.root_dir)
        .with_context(|| format!("creating the agent's root dir {}", n.root_dir.display()))?;
    let service = match &n.podman_socket {
        Some(socket) => PodmanService::external(socket.clone()),
        None => PodmanService::start(n.root_dir.join("podman"))
            .await
            .context(
                "starting podman system service (is podman installed? scripts/run installs it)",
            )?,
    };
    let result = async {
        let runtime = PodmanRuntime::connect(service.client(), n.name.clone())
            .await
            .with_context(|| format!("connecting to Podman at {}", service.socket().display()))?;
        let storage = node::podman_storage_bytes(runtime.client()).await;
        let runtime: Arc<dyn Runtime> =
            Arc::new(keelson_kubelet::metrics::Timed(Arc::new(runtime)));
        let bind = format!("{}:{}", n.address, n.port);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("binding the kubelet endpoint on {bind}"))?;
        let port = listener.local_addr()?.port();
        let tls = keelson_kubelet::server::tls_config(
            &n.cluster_ca,
            &[n.name.clone(), n.address.clone()],
        )?;
        let sampler = Arc::new(keelson_kubelet::stats::Sampler::new(true));
        tokio::spawn(keelson_kubelet::stats::run(
            Arc::clone(&sampler),
            Arc::clone(&runtime),
            stop.clone(),
        ));
        let endpoint = Arc::new(keelson_kubelet::server::Endpoint {
            node: n.name.clone(),
            runtime: Arc::clone(&runtime),
            sampler,
        });
        tokio::spawn(keelson_kubelet::server::serve(
            listener,
            tls,
            endpoint,
            stop.clone(),
        ));
        let spec = NodeSpec {
            name: n.name.clone(),
            labels: n.labels,
            taints: n.taints,
            capacity: host_capacity(n.max_pods, storage),
            address: n.address,
            runtime_version: runtime.version(),
            kubelet_port: Some(port),
        };
        let options = NodeOptions {
            root_dir: Some(n.root_dir.clone()),
            relist: PODMAN_RELIST,
            observe_host: true,
            dns: n.dns.clone(),
        };
        eprintln!(
            "keelson agent: node {} on Podman at {}",
            n.name,
            service.socket().display()
        );
        if n.proxy {
            if keelson_kubelet::proxy::available().await {
                tokio::spawn(keelson_kubelet::proxy::run(
                    client.clone(),
                    n.name.clone(),
                    stop.clone(),
                ));
            } else {
                tracing::error!("nft is not usable here (install nftables, run as root): Services' ClusterIPs and NodePorts will not work on this node; --disable-proxy silences this");
                eprintln!("keelson agent: keelson-proxy is off: nft is not usable here (install nftables, run as root)");
            }
        }
        keelson_kubelet::run_node(client, spec, options, runtime, slots, stop)
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    service.shutdown().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_podman(
    args: &AgentArgs,
    client: Client,
    labels: std::collections::BTreeMap<String, String>,
    taints: Vec<serde_json::Value>,
    name: String,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    slots: Arc<Semaphore>,
    cluster_ca: Vec<Vec<u8>>,
) -> Result<()> {
    let n = PodmanNode {
        name,
        labels,
        taints,
        max_pods: args.max_pods,
        address: args.address.clone(),
        root_dir: args.root_dir.clone(),
        podman_socket: args.podman_socket.clone(),
        port: args.port,
        cluster_ca,
        dns: args.dns(),
        proxy: !args.disable_proxy,
    };
    let mut node = tokio::spawn(run_podman_node(client, n, slots, stop_rx));
    tokio::select! {
        r = &mut node => return r.context("the node agent task")?,
        _ = shutdown_signal() => {}
    }
    let _ = stop_tx.send(true);
    node.await.context("the node agent task")?
}
