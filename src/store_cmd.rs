//! `keelson store`: one member of the replicated store, configured with etcd's flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use keelson_store::config::{
    self, parse_auto_compaction, parse_initial_cluster, parse_urls, ClusterState, StoreConfig,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_QUOTA_BACKEND_BYTES,
};
use keelson_store::server::run_member;
use keelson_store::tls::TlsFiles;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Path to the data directory [default: <name>.keelson].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic [default: http://127.0.0.1:2379; https:// for
    /// `keelson server`].
    #[arg(long)]
    listen_client_urls: Option<String>,
    /// Client URLs of this member to advertise to the cluster [default: --listen-client-urls].
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// URLs to listen on for peer traffic [default: http://127.0.0.1:2380; https:// for
    /// `keelson server`].
    #[arg(long)]
    listen_peer_urls: Option<String>,
    /// Peer URLs of this member to advertise to the rest of the cluster
    /// [default: --listen-peer-urls].
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration for bootstrapping, e.g. `a=http://10.0.0.1:2380,b=...`
    /// [default: <name>=<initial-advertise-peer-urls>].
    #[arg(long)]
    initial_cluster: Option<String>,
    /// Initial cluster state: `new` to bootstrap, `existing` to join a running cluster.
    #[arg(long, default_value = "new")]
    initial_cluster_state: String,
    /// Initial cluster token, distinguishing clusters bootstrapped from the same flags.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Applied entries between snapshots (after which the log is purged).
    #[arg(long, default_value_t = 100_000)]
    snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
    /// Raise an alarm when the backend size exceeds this many bytes (0 = default of 2 GiB).
    #[arg(long, default_value_t = 0)]
    quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// Interpret --auto-compaction-retention as `periodic` (duration) or `revision` (count).
    #[arg(long, default_value = "periodic")]
    auto_compaction_mode: String,
    /// Auto compaction retention (0 = off). A bare number in periodic mode is hours.
    #[arg(long, default_value = "0")]
    auto_compaction_retention: String,
    /// How long (seconds) a token from `Authenticate` stays valid.
    #[arg(long, default_value_t = 300)]
    auth_token_ttl: u64,
    /// Watchers one Watch stream may hold at once; a create past it is canceled with a
    /// reason (0: no limit).
    #[arg(long, default_value_t = keelson_store::config::DEFAULT_MAX_WATCHERS_PER_STREAM)]
    max_watchers_per_stream: usize,
    /// Path to the client port's TLS certificate (for https client URLs).
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// Path to the client port's TLS key.
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Verify client certificates against this CA (required ones with --client-cert-auth).
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by --trusted-ca-file.
    #[arg(long)]
    client_cert_auth: bool,
    /// Path to the peer port's TLS certificate, also presented to other members.
    #[arg(long, requires = "peer_key_file")]
    peer_cert_file: Option<PathBuf>,
    /// Path to the peer port's TLS key.
    #[arg(long, requires = "peer_cert_file")]
    peer_key_file: Option<PathBuf>,
    /// The CA of the members' peer certificates.
    #[arg(long)]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Refuse peers without a certificate signed by --peer-trusted-ca-file.
    #[arg(long)]
    peer_client_cert_auth: bool,
    /// Log level: debug, info, warn, error.
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
}

impl StoreArgs {
    /// The member's configuration from etcd's flags, with etcd's defaults.
    pub fn to_config(&self) -> Result<StoreConfig> {
        let c = self.to_config_unchecked("http")?;
        c.validate()?;
        Ok(c)
    }

    /// The configuration before its flags are checked against each other; the default listen
    /// URLs use `scheme`.
    pub fn to_config_unchecked(&self, scheme: &str) -> Result<StoreConfig> {
        let mut c = StoreConfig::default_for(&self.name);
        let default_client = format!("{scheme}://127.0.0.1:2379");
        let default_peer = format!("{scheme}://127.0.0.1:2380");
        c.data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.keelson", self.name)));
        c.listen_client_urls = parse_urls(
            "--listen-client-urls",
            self.listen_client_urls
                .as_deref()
                .unwrap_or(&default_client),
        )?;
        c.advertise_client_urls = match &self.advertise_client_urls {
            Some(s) => parse_urls("--advertise-client-urls", s)?,
            None => c.listen_client_urls.clone(),
        };
        c.listen_peer_urls = parse_urls(
            "--listen-peer-urls",
            self.listen_peer_urls.as_deref().unwrap_or(&default_peer),
        )?;
        c.initial_advertise_peer_urls = match &self.initial_advertise_peer_urls {
            Some(s) => parse_urls("--initial-advertise-peer-urls", s)?,
            None => c.listen_peer_urls.clone(),
        };
        c.initial_cluster = match &self.initial_cluster {
            Some(s) => parse_initial_cluster(s)?,
            None => vec![(self.name.clone(), c.initial_advertise_peer_urls.clone())],
        };
        c.initial_cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                anyhow::bail!("--initial-cluster-state must be 'new' or 'existing', got {other:?}")
            }
        };
        c.initial_cluster_token = self.initial_cluster_token.clone();
        c.snapshot_count = self.snapshot_count;
        c.heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        c.election_timeout = Duration::from_millis(self.election_timeout);
        c.quota_backend_bytes = if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BACKEND_BYTES
        } else {
            self.quota_backend_bytes
        };
        c.max_request_bytes = self.max_request_bytes;
        c.auto_compaction =
            parse_auto_compaction(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        c.auth_token_ttl = Duration::from_secs(self.auth_token_ttl.max(1));
        c.max_watchers_per_stream = self.max_watchers_per_stream;
        c.client_tls = tls_files(
            &self.cert_file,
            &self.key_file,
            &self.trusted_ca_file,
            self.client_cert_auth,
        );
        c.peer_tls = tls_files(
            &self.peer_cert_file,
            &self.peer_key_file,
            &self.peer_trusted_ca_file,
            self.peer_client_cert_auth,
        );
        Ok(c)
    }
}

fn tls_files(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    ca: &Option<PathBuf>,
    client_cert_auth: bool,
) -> Option<TlsFiles> {
    match (cert, key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert_file: c.clone(),
            key_file: k.clone(),
            trusted_ca_file: ca.clone(),
            client_cert_auth,
        }),
        _ => None,
    }
}

pub(crate) fn init_logging(level: &str) -> Result<()> {
    let level = match level {
        "debug" | "info" | "warn" | "error" | "trace" => level,
        other => {
            anyhow::bail!("--log-level must be one of debug, info, warn, error; got {other:?}")
        }
    };
    // openraft narrates every vote and heartbeat at info; keep it to warnings unless debugging.
    let raft_level = if level == "debug" || level == "trace" {
        level
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},openraft={raft_level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

pub async fn run(args: StoreArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    let cfg = args.to_config()?;
    let running = run_member(cfg.clone())
        .await
        .with_context(|| format!("starting member {:?}", cfg.name))?;
    let node = running.node.clone();
    tracing::info!(
        name = %cfg.name,
        member = %format!("{:x}", node.id),
        cluster = %format!("{:x}", node.cluster_id),
        client = ?running.client_addrs,
        peer = ?running.peer_addrs,
        data_dir = %cfg.data_dir.display(),
        "serving the etcd v3 API"
    );
    eprintln!(
        "keelson store: member {} ({:x}) serving clients on {}",
        cfg.name,
        node.id,
        cfg.advertise_client_urls
            .iter()
            .map(config::url_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let stop_node = node.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop_node.shutdown().await;
    });
    running.wait().await?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
