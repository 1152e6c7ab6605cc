//! `keelson agent`: the node agent (kubelet) as its own process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use keelson_kubelet::{node, FakeRuntime, NodeSpec, Runtime};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::{watch, Semaphore};

use crate::store_cmd::{init_logging, shutdown_signal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Podman through its libpod REST API (not implemented yet).
    Podman,
    /// Pods "start" at once without containers (hollow nodes, for scale and tests).
    Fake,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Kubeconfig of the apiserver to join (e.g. a server's data-dir/admin.kubeconfig).
    #[arg(long)]
    pub kubeconfig: std::path::PathBuf,
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
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub async fn run(args: AgentArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    if args.runtime == RuntimeKind::Podman {
        bail!("the Podman runtime is not implemented yet; run with --runtime fake");
    }
    if args.fake_nodes == 0 {
        bail!("--fake-nodes must be at least 1");
    }
    let labels = node::parse_labels(&args.node_labels)?;
    let taints = node::parse_taints(&args.register_with_taints)?;
    let kc = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", args.kubeconfig.display()))?;
    let client = Client::try_from(config).context("building the API client")?;
    let base = args.node_name.clone().unwrap_or_else(host_name);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(keelson_kubelet::STATUS_WRITES_IN_FLIGHT));
    let mut nodes = Vec::new();
    for i in 0..args.fake_nodes {
        let name = if args.fake_nodes == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime::new(
            Duration::from_millis(args.fake_start_delay_ms),
            u8::try_from(64 + i % 128).unwrap_or(64),
        ));
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
        };
        nodes.push(tokio::spawn(keelson_kubelet::run_node(
            client.clone(),
            spec,
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
