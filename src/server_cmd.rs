//! `keelson server`: a store member plus the Kubernetes apiserver on it, in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use keelson_apiserver::alloc::{Cidr, PortRange};
use keelson_apiserver::join::{self, JoinToken, ServerJoinRequest};
use keelson_apiserver::pki::{self, EtcdPki, Pki};
use keelson_apiserver::{server, Api, ApiConfig};
use keelson_store::server::run_member;
use keelson_store::tls::TlsFiles;

use crate::store_cmd::{init_logging, shutdown_signal, StoreArgs};

#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The port on which to serve HTTPS with authentication.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Start a new cluster and print its join token. (A server without --server starts a new
    /// cluster either way; its token is in <data-dir>/token.)
    #[arg(long, conflicts_with = "server")]
    cluster_init: bool,
    /// Join the cluster this server belongs to (`https://<any-server>:6443`), with --token.
    /// Once joined, restarts use the data dir and no longer need it.
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// The cluster's join token (printed by `--cluster-init`; `<data-dir>/token` on any server).
    #[arg(long, env = "KEELSON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Forget every other store member and make this server the one member of a new cluster,
    /// from its own data or from --cluster-reset-restore-path, then exit. Restart it without
    /// the flag; other servers join it again with --server/--token and empty data dirs.
    #[arg(long, conflicts_with_all = ["server", "cluster_init"])]
    cluster_reset: bool,
    /// With --cluster-reset: the `keelson kv snapshot save` file to rebuild the cluster from.
    #[arg(long, requires = "cluster_reset")]
    cluster_reset_restore_path: Option<PathBuf>,
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// The IP address clients reach this apiserver at [default: the bind address, or 127.0.0.1 when it is 0.0.0.0].
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Extra subject alternative names (DNS names or IPs) for the serving certificate; repeatable.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Serve the store's client port without TLS, for `http://` --listen-client-urls on
    /// loopback addresses only (tests, local tools). Without it the client port takes TLS
    /// with a certificate of the store CA (`<data-dir>/pki/etcd/`).
    #[arg(long)]
    etcd_insecure_loopback: bool,
    /// Static bearer tokens, one `token,user,uid[,"group1,group2"]` per line (Kubernetes'
    /// token file format).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Let requests without credentials through as `system:anonymous` (group
    /// `system:unauthenticated`), to be authorized like any user; without it they get 401.
    #[arg(long, default_value_t = false)]
    anonymous_auth: bool,
    /// Audit requests as this Kubernetes audit Policy file says (with --audit-log-path).
    #[arg(long, requires = "audit_log_path")]
    audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON object per line.
    #[arg(long, requires = "audit_policy_file")]
    audit_log_path: Option<PathBuf>,
    /// Rotate the audit log when it reaches this many megabytes (0: never).
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 10)]
    audit_log_maxbackup: usize,
    /// Read-only requests served at once (watches and other long-running requests, and the
    /// admin group, not counted); more get 429. 0: no limit.
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests served at once; more get 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Watches one user may hold open at once (the admin group not counted); more get 429
    /// until one ends. 0: no limit.
    #[arg(long, default_value_t = 1000)]
    max_watches_per_user: usize,
    /// Encrypt resources at rest as this Kubernetes EncryptionConfiguration file says
    /// (providers aesgcm, secretbox, identity).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Serve cluster DNS (`<svc>.<ns>.svc.<cluster-domain>` and the rest of Kubernetes' DNS
    /// names, from the API) on this address, UDP and TCP, e.g. `0.0.0.0:53`; off without it.
    #[arg(long)]
    cluster_dns_bind: Option<SocketAddr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The nameserver the embedded agent gives pods with `dnsPolicy: ClusterFirst`: an
    /// address of this host the pods reach where --cluster-dns-bind listens on port 53 (the
    /// Podman bridge's gateway, 10.88.0.1, for `--cluster-dns-bind 0.0.0.0:53`). Without it
    /// pods use the host's resolver.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<String>,
    /// Do not run keelson-proxy in the embedded agent (the nftables table `ip keelson` that
    /// makes Services' ClusterIPs and NodePorts work on this host).
    #[arg(long)]
    disable_proxy: bool,
    /// Where cluster DNS forwards names outside the cluster domain [default: the first
    /// nameserver of /etc/resolv.conf, port 53].
    #[arg(long)]
    cluster_dns_upstream: Option<SocketAddr>,
    /// Addresses for Services of `type: LoadBalancer` (without a `loadBalancerClass`):
    /// `a.b.c.d`, `a.b.c.d-a.b.c.e` or a CIDR, comma-separated. Each such Service gets one in
    /// `status.loadBalancer.ingress`; without a pool they stay `<pending>`.
    #[arg(long)]
    service_lb_pool: Option<String>,
    /// Give every Node a block of this range (IPv4 CIDR) as its `spec.podCIDR`, as
    /// kube-controller-manager's `--allocate-node-cidrs --cluster-cidr` do. Off without it.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// The prefix length of each Node's block of --cluster-cidr.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// A CIDR notation IP range from which to assign service cluster IPs.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// A port range to reserve for services with NodePort visibility, e.g. `30000-32767`.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Events the watch cache keeps for watches resuming from a resourceVersion.
    #[arg(long, default_value_t = 10_000)]
    watch_cache_size: usize,
    /// Do not run the embedded node agent (kubelet on Podman) in this server.
    #[arg(long)]
    disable_agent: bool,
    /// The embedded agent's node name [default: the host name].
    #[arg(long)]
    node_name: Option<String>,
    /// The port of the embedded agent's kubelet endpoint (0: any free one).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Components not to run in this server, comma-separated: `scheduler`, `controllers`.
    #[arg(long, value_delimiter = ',')]
    disable: Vec<Component>,
    /// How long a scheduler or controller-manager leader lease lasts without renewal before
    /// another server takes over.
    #[arg(long, default_value = "15s", value_parser = crate::kv::client::parse_go_duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// How long a node may go without a heartbeat before it is marked `Ready=Unknown` and
    /// tainted unreachable.
    #[arg(long, default_value = "50s", value_parser = crate::kv::client::parse_go_duration)]
    node_monitor_grace_period: std::time::Duration,
}

/// A component `--disable` can turn off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    Scheduler,
    Controllers,
}

fn parse_port_range(s: &str) -> Result<PortRange> {
    let (lo, hi) = s
        .split_once('-')
        .with_context(|| format!("--service-node-port-range {s:?}: expected <low>-<high>"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .with_context(|| format!("--service-node-port-range {s:?}"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .with_context(|| format!("--service-node-port-range {s:?}"))?;
    anyhow::ensure!(
        lo > 0 && lo <= hi,
        "--service-node-port-range {s:?}: low must be ≤ high and > 0"
    );
    Ok(PortRange { lo, hi })
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_logging(&args.store.log_level)?;
    let mut cfg = args.store.to_config_unchecked("https")?;
    check_store_schemes(&cfg, args.etcd_insecure_loopback)?;
    let etcd_pki = EtcdPki::new(&cfg.data_dir);
    let (server_cert, server_key) = etcd_pki.server();
    let (peer_cert, peer_key) = etcd_pki.peer();
    // The store CA's certificates unless the operator gave etcd's TLS flags; clients and
    // peers alike must present a certificate of that CA.
    cfg.client_tls.get_or_insert(TlsFiles {
        cert_file: server_cert,
        key_file: server_key,
        trusted_ca_file: Some(etcd_pki.ca()),
        client_cert_auth: true,
    });
    cfg.peer_tls.get_or_insert(TlsFiles {
        cert_file: peer_cert,
        key_file: peer_key,
        trusted_ca_file: Some(etcd_pki.ca()),
        client_cert_auth: true,
    });
    cfg.validate()?;
    let service_cidr = Cidr::parse(&args.service_cluster_ip_range)
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?;
    let node_ports = parse_port_range(&args.service_node_port_range)?;
    let service_lb_pool = args
        .service_lb_pool
        .as_deref()
        .map(keelson_controllers::servicelb::Pool::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--service-lb-pool: {e}"))?;
    let cluster_cidr = args
        .cluster_cidr
        .as_deref()
        .map(|c| keelson_controllers::nodeipam::ClusterCidr::new(c, args.node_cidr_mask_size))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    if args.cluster_reset {
        return cluster_reset(&cfg, args.cluster_reset_restore_path.as_deref());
    }
    let advertise_ip = args.advertise_address.unwrap_or_else(|| {
        if args.bind_address.is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind_address
        }
    });
    let addr = SocketAddr::new(args.bind_address, args.secure_port);
    // Bind first, so a port in use fails before anything is written.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --secure-port on {addr}"))?;
    let port = listener.local_addr()?.port();
    let mut sans = args.tls_san.clone();
    sans.push(advertise_ip.to_string());
    if !args.bind_address.is_unspecified() {
        sans.push(args.bind_address.to_string());
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    if let Some(server) = &args.server {
        let token =
            JoinToken::parse(args.token.as_deref().unwrap_or_default()).context("--token")?;
        join_cluster(&mut cfg, server, &token).await?;
    }
    // A joined server's founding members, too, are reached over TLS.
    check_store_schemes(&cfg, args.etcd_insecure_loopback)?;
    let mut etcd_sans = sans.clone();
    for u in cfg
        .listen_client_urls
        .iter()
        .chain(&cfg.advertise_client_urls)
        .chain(&cfg.listen_peer_urls)
        .chain(&cfg.initial_advertise_peer_urls)
    {
        if let Some(h) = u.host_str() {
            let h = h.trim_start_matches('[').trim_end_matches(']').to_string();
            let unspecified = h
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            if !unspecified && !etcd_sans.contains(&h) {
                etcd_sans.push(h);
            }
        }
    }
    EtcdPki::ensure(&cfg.data_dir, &pki::default_sans(&etcd_sans))?;
    let pki = Pki::ensure(&cfg.data_dir, &pki::default_sans(&sans))?;
    tokio::spawn(renew_certificates(cfg.data_dir.clone()));
    let token = join::ensure_token(&cfg.data_dir, &pki)?;
    let tls = server::tls_config(&pki)?;
    let running = run_member(cfg.clone())
        .await
        .with_context(|| format!("starting store member {:?}", cfg.name))?;
    let node = running.node.clone();
    let advertise = format!("{}:{port}", fmt_ip(advertise_ip));
    let api = Api::start(
        node.clone(),
        ApiConfig {
            service_cidr,
            node_ports,
            watch_cache_size: args.watch_cache_size,
            advertise: advertise.clone(),
            kubelet_client: Some(keelson_apiserver::rest::kubelet::client_config(&pki)?),
            join: Some(join::JoinConfig {
                token: token.clone(),
                pki: pki.clone(),
            }),
            authn: authn_config(&args, &pki)?,
            audit: match (&args.audit_policy_file, &args.audit_log_path) {
                (Some(policy), Some(log)) => {
                    let text = std::fs::read_to_string(policy).with_context(|| {
                        format!("reading --audit-policy-file {}", policy.display())
                    })?;
                    let policy = keelson_apiserver::audit::Policy::parse(&text)?;
                    Some(std::sync::Arc::new(keelson_apiserver::audit::Auditor::new(
                        policy,
                        log,
                        args.audit_log_maxsize,
                        args.audit_log_maxbackup,
                    )?))
                }
                _ => None,
            },
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
            max_watches_per_user: args.max_watches_per_user,
            encryption: match &args.encryption_provider_config {
                Some(p) => Some(std::sync::Arc::new(
                    keelson_apiserver::encryption::Transformer::from_file(
                        p,
                        &keelson_apiserver::registry::Registry::builtin(),
                    )?,
                )),
                None => None,
            },
            extra_metrics: if args.disable_agent {
                vec![keelson_controllers::metrics::render]
            } else {
                vec![
                    keelson_controllers::metrics::render,
                    keelson_kubelet::metrics::render,
                ]
            },
        },
    )
    .await?;
    tokio::spawn(api.clone().bootstrap_until_done());
    if let Some(addr) = args.cluster_dns_bind {
        let upstream = args.cluster_dns_upstream.or_else(|| {
            std::fs::read_to_string("/etc/resolv.conf")
                .ok()
                .and_then(|t| keelson_apiserver::dns::upstream_of_resolv_conf(&t))
        });
        let domain = args.cluster_domain.trim_end_matches('.').to_string();
        anyhow::ensure!(
            keelson_apiserver::dns::valid_domain(&domain),
            "--cluster-domain {:?} is not a DNS name",
            args.cluster_domain
        );
        let cfg = keelson_apiserver::dns::DnsConfig { domain, upstream };
        // Bind now, so a port in use stops the server with a clear message.
        let sockets = keelson_apiserver::dns::bind(addr)
            .await
            .with_context(|| format!("--cluster-dns-bind {addr}"))?;
        let dns_api = api.clone();
        tokio::spawn(async move {
            if let Err(e) = keelson_apiserver::dns::serve(dns_api, cfg, sockets).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
        });
        tracing::info!(%addr, ?upstream, "serving cluster DNS");
    }
    let kubeconfig = absolute(&cfg.data_dir.join("admin.kubeconfig"));
    pki.write_kubeconfig(&kubeconfig, &format!("https://{advertise}"))?;
    tracing::info!(
        name = %cfg.name,
        member = %format!("{:x}", node.id),
        api = %advertise,
        client = ?running.client_addrs,
        "serving the Kubernetes API"
    );
    eprintln!(
        "keelson server: the Kubernetes API is served on https://{advertise}; point kubectl at it with:\n\n    export KUBECONFIG={}\n",
        kubeconfig.display()
    );
    let (client_cert, client_key) = etcd_pki.client();
    eprintln!(
        "keelson server: the store (etcd v3 API) is served on {}; as its root user:\n\n    keelson kv --endpoints {} --cacert {} --cert {} --key {} endpoint status\n",
        cfg.advertise_client_strings().join(","),
        cfg.advertise_client_strings().join(","),
        absolute(&etcd_pki.ca()).display(),
        absolute(&client_cert).display(),
        absolute(&client_key).display(),
    );
    if args.cluster_init {
        eprintln!(
            "keelson server: the cluster's join token is in {} ; join servers and agents with:\n\n    keelson server --server https://{advertise} --token {}\n    keelson agent --server https://{advertise} --token {}\n",
            absolute(&cfg.data_dir.join(join::TOKEN_FILE)).display(),
            token.render(),
            token.render()
        );
    }
    if args.server.is_some() {
        tokio::spawn(promote_when_caught_up(node.clone()));
    }
    let gate = api.clone();
    let leaving = api.clone();
    let serve = tokio::spawn(server::serve(api, listener, tls, node.shutdown_signal()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut components = Components::new(&pki, &advertise);
    let manager = {
        let stop_rx = stop_rx.clone();
        // The scheduler runs as `system:kube-scheduler` (RBAC's role of that name), the
        // controllers with identities of their own (below).
        let scheduler = keelson_controllers::manager::Options {
            scheduler: !args.disable.contains(&Component::Scheduler),
            controllers: false,
            lease_duration: args.leader_elect_lease_duration,
            ..Default::default()
        };
        let scheduler_client = components.client("system:kube-scheduler", &[]).await?;
        let scheduler_stop = stop_rx.clone();
        let scheduler_gate = gate.clone();
        let scheduler = tokio::spawn(async move {
            // A new cluster's default roles are written a moment after the API serves: start
            // once the scheduler may bind pods, so its watches do not begin with 403s (and
            // their back-off).
            let binding = keelson_apiserver::auth::RequestInfo::resource(
                "create", "", "default", "pods", "binding", "any",
            );
            wait_authorized(&scheduler_gate, "system:kube-scheduler", &binding).await;
            keelson_controllers::manager::run(scheduler_client, scheduler, scheduler_stop).await
        });
        let opts = keelson_controllers::manager::Options {
            scheduler: false,
            controllers: !args.disable.contains(&Component::Controllers),
            lease_duration: args.leader_elect_lease_duration,
            node_monitor_grace_period: args.node_monitor_grace_period,
            root_ca: Some(pki.ca_cert.clone()),
            service_lb_pool: service_lb_pool.clone(),
            cluster_cidr,
            ..Default::default()
        };
        // The controller manager as `system:kube-controller-manager`, and each controller as
        // its ServiceAccount `kube-system:<name>` (bound to `system:controller:<name>`).
        let mut clients = keelson_controllers::manager::Clients::shared(
            components
                .client("system:kube-controller-manager", &[])
                .await?,
        );
        for name in keelson_controllers::manager::CONTROLLERS {
            let user = format!("system:serviceaccount:kube-system:{name}");
            let client = components
                .client(
                    &user,
                    &[
                        "system:serviceaccounts",
                        "system:serviceaccounts:kube-system",
                    ],
                )
                .await?;
            clients = clients.with(name, client);
        }
        let controllers = tokio::spawn(async move {
            // As the scheduler: start once the default roles are in force.
            let lease = keelson_apiserver::auth::RequestInfo::resource(
                "create",
                "coordination.k8s.io",
                "kube-system",
                "leases",
                "",
                "",
            );
            wait_authorized(&gate, "system:kube-controller-manager", &lease).await;
            let events = keelson_apiserver::auth::RequestInfo::resource(
                "create", "", "default", "events", "", "",
            );
            for name in keelson_controllers::manager::CONTROLLERS {
                let user = format!("system:serviceaccount:kube-system:{name}");
                wait_authorized(&gate, &user, &events).await;
            }
            keelson_controllers::manager::run(clients, opts, stop_rx).await
        });
        tokio::spawn(async move {
            let _ = scheduler.await;
            let _ = controllers.await;
        })
    };
    let agent = if args.disable_agent {
        None
    } else {
        let node_name = args
            .node_name
            .clone()
            .unwrap_or_else(crate::agent_cmd::host_name);
        // The embedded agent is a kubelet like any other: `system:node:<name>`, limited by
        // the Node authorizer to its own node.
        let client = components
            .client(&format!("system:node:{node_name}"), &["system:nodes"])
            .await?;
        let n = crate::agent_cmd::PodmanNode {
            name: node_name,
            labels: Default::default(),
            taints: Vec::new(),
            max_pods: 110,
            address: advertise_ip.to_string(),
            root_dir: absolute(&cfg.data_dir.join("agent")),
            podman_socket: None,
            port: args.kubelet_port,
            cluster_ca: pki::pem_der(&pki.ca_cert).into_iter().collect(),
            dns: keelson_kubelet::dns::ClusterDns {
                servers: args.cluster_dns.clone(),
                domain: args.cluster_domain.trim_end_matches('.').to_string(),
            },
            proxy: !args.disable_proxy,
        };
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(
            keelson_kubelet::STATUS_WRITES_IN_FLIGHT,
        ));
        let stop = stop_rx.clone();
        Some(tokio::spawn(async move {
            // The control plane runs on without its agent (no Podman here, say).
            if let Err(e) = crate::agent_cmd::run_podman_node(client, n, slots, stop).await {
                tracing::error!(error = %format!("{e:#}"), "the embedded node agent stopped; run with --disable-agent to run without it");
                eprintln!("keelson server: the embedded node agent stopped: {e:#}");
            }
        }))
    };
    tokio::spawn(components.keep_fresh());
    let stop_node = node.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Controllers and the agent first, so they hand their leases over while the API
        // still answers.
        stop_tx.send_replace(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), manager).await;
        if let Some(agent) = agent {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(12), agent).await;
        }
        // Out of the `kubernetes` Service's endpoints while the store still takes writes.
        match tokio::time::timeout(
            std::time::Duration::from_secs(3),
            leaving.unpublish_endpoints(),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the kubernetes endpoints"),
            Err(_) => tracing::warn!("leaving the kubernetes endpoints took over 3 s"),
        }
        stop_node.shutdown().await;
    });
    running.wait().await?;
    serve.abort();
    Ok(())
}

/// The store's ports in a server: the peer port takes mutual TLS only, and the client port
/// too unless `--etcd-insecure-loopback` allows plain loopback URLs.
fn check_store_schemes(
    cfg: &keelson_store::config::StoreConfig,
    insecure_loopback: bool,
) -> Result<()> {
    for u in &cfg.listen_client_urls {
        if u.scheme() == "https" {
            continue;
        }
        let loopback = match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        anyhow::ensure!(
            insecure_loopback && loopback,
            "--listen-client-urls {u}: the store's client port takes TLS with client certificates \
             (use https://){}",
            if insecure_loopback {
                "; --etcd-insecure-loopback allows plain http on loopback addresses only"
            } else {
                ", or --etcd-insecure-loopback for plain http on a loopback address"
            }
        );
    }
    let peers = cfg
        .listen_peer_urls
        .iter()
        .map(|u| ("--listen-peer-urls", u))
        .chain(
            cfg.initial_advertise_peer_urls
                .iter()
                .map(|u| ("--initial-advertise-peer-urls", u)),
        )
        .chain(
            cfg.initial_cluster
                .iter()
                .flat_map(|(_, urls)| urls.iter().map(|u| ("--initial-cluster", u))),
        );
    for (flag, u) in peers {
        anyhow::ensure!(
            u.scheme() == "https",
            "{flag} {u}: members talk mutual TLS with the store CA's peer certificates; use https://"
        );
    }
    Ok(())
}

/// Renews the data dir's leaf certificates that come within 30 days of expiry, twice a day;
/// the servers' ports present renewed certificates from their next handshake on.
async fn renew_certificates(data_dir: PathBuf) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(12 * 3600));
    tick.tick().await;
    loop {
        tick.tick().await;
        match pki::reissue_leaves(&data_dir, false) {
            Ok(renewed) if renewed.is_empty() => {}
            Ok(renewed) => tracing::info!(?renewed, "renewed certificates near expiry"),
            Err(e) => tracing::warn!("renewing certificates: {e}"),
        }
    }
}

/// `--token-auth-file` and `--anonymous-auth`.
fn authn_config(
    args: &ServerArgs,
    pki: &Pki,
) -> Result<keelson_apiserver::auth::authn::AuthnConfig> {
    let mut c = keelson_apiserver::auth::authn::AuthnConfig::new(args.anonymous_auth);
    c.signer = Some(std::sync::Arc::new(
        keelson_apiserver::auth::token::Signer::from_pem(&pki.service_account_key)
            .context("the service-account key in pki/")?,
    ));
    if let Some(p) = &args.token_auth_file {
        c = c
            .with_token_file(p)
            .with_context(|| format!("--token-auth-file {}", p.display()))?;
    }
    Ok(c)
}

/// What a server that joined keeps in its data dir: the store members it was told of, so a
/// restart before its store member started joins the same way without asking again.
const JOINED_FILE: &str = "joined.json";

/// `--cluster-reset [--cluster-reset-restore-path F]`: see [`ServerArgs::cluster_reset`].
fn cluster_reset(cfg: &keelson_store::config::StoreConfig, from: Option<&Path>) -> Result<()> {
    let data = match from {
        Some(p) => std::fs::read(p)
            .with_context(|| format!("reading --cluster-reset-restore-path {}", p.display()))?,
        None => keelson_store::restore::snapshot_of_data_dir(&cfg.data_dir).with_context(|| {
            format!(
                "reading the store member in {} (a running server holds it: stop it first)",
                cfg.data_dir.display()
            )
        })?,
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    let reset = keelson_store::restore::reset_to_single_member(&data, cfg)
        .context("resetting the store to one member")?;
    // A joined server's record of the cluster it joined no longer applies.
    match std::fs::remove_file(cfg.data_dir.join(JOINED_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("removing the record of the old cluster"),
    }
    let r = &reset.restored;
    let previous = reset
        .previous
        .map(|p| format!("; the previous data is kept in {}", p.display()))
        .unwrap_or_default();
    eprintln!(
        "keelson server: the store was reset: {:?} is now member {:x}, the only one of cluster {:x}, at revision {}{previous}.\n\
         Restart this server without --cluster-reset now. Other servers join it again with \
         --server/--token and empty data dirs.",
        cfg.name, r.member_id, r.cluster_id, r.revision
    );
    Ok(())
}

/// Joins the cluster `server` belongs to (or, on a restart, takes what an earlier join
/// answered): installs the cluster CA and token, and points the store member at the others
/// as an `existing` member.
async fn join_cluster(
    cfg: &mut keelson_store::config::StoreConfig,
    server: &str,
    token: &JoinToken,
) -> Result<()> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Joined {
        cluster_token: String,
        members: Vec<join::JoinMember>,
    }
    let path = cfg.data_dir.join(JOINED_FILE);
    let joined = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Joined>(&bytes)
            .with_context(|| format!("reading {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let request = ServerJoinRequest {
                name: cfg.name.clone(),
                peer_urls: cfg.advertise_peer_strings(),
            };
            let reply = join::join_as_server(server, token, &request)
                .await
                .with_context(|| format!("joining the cluster of {server}"))?;
            Pki::install_ca(&cfg.data_dir, &reply.ca_cert, &reply.ca_key)?;
            match (&reply.etcd_ca_cert, &reply.etcd_ca_key) {
                (Some(c), Some(k)) => EtcdPki::install_ca(&cfg.data_dir, c, k)?,
                _ => anyhow::bail!(
                    "{server} did not send the store CA; it runs an older keelson than this server"
                ),
            }
            if let Some(k) = &reply.service_account_key {
                Pki::install_service_account_key(&cfg.data_dir, k)?;
            }
            join::write_token(&cfg.data_dir, token)?;
            let joined = Joined {
                cluster_token: reply.cluster_token,
                members: reply.members,
            };
            pki::write_secret_file(&path, &serde_json::to_string_pretty(&joined)?)?;
            eprintln!(
                "keelson server: joined the cluster of {server} as member {} (a learner until it has caught up)",
                reply.member_id
            );
            joined
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    cfg.initial_cluster_state = keelson_store::config::ClusterState::Existing;
    cfg.initial_cluster_token = joined.cluster_token;
    cfg.initial_cluster = joined
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = if m.name.is_empty() {
                format!("member-{i}")
            } else {
                m.name.clone()
            };
            let urls = m
                .peer_urls
                .iter()
                .map(|u| keelson_store::config::parse_urls("peer URL", u))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|v| v.into_iter().flatten().collect::<Vec<_>>());
            urls.map(|u| (name, u))
        })
        .collect::<std::result::Result<_, _>>()
        .context("the members the cluster named")?;
    Ok(())
}

/// A server that joined as a learner asks to become a voter once it has caught up: once a
/// linearizable read (the leader's commit index, applied here) answers in time.
async fn promote_when_caught_up(node: std::sync::Arc<keelson_store::node::StoreNode>) {
    let mut stopped = node.shutdown_signal();
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match node.member_list().iter().find(|m| m.id == node.id) {
            Some(m) if !m.is_learner => {
                tracing::info!(member = %format!("{:x}", node.id), "this server is a voting member");
                return;
            }
            _ => {}
        }
        let attempt = async {
            node.linearize().await?;
            node.member_promote(node.id).await
        };
        match attempt.await {
            Ok(()) => {
                tracing::info!(member = %format!("{:x}", node.id), "promoted from learner to voter");
                eprintln!("keelson server: caught up; promoted to a voting member");
                return;
            }
            Err(e) => tracing::info!(error = %e, "not promoted yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// A client of this server's own API, as the admin (the scheduler and controllers use it
/// like any other client).
/// Waits until the authorizer lets `user` do `info` (at most 30 s; the component then starts
/// anyway and retries as any client would).
async fn wait_authorized(
    api: &keelson_apiserver::Api,
    user: &str,
    info: &keelson_apiserver::auth::RequestInfo,
) {
    let user = keelson_apiserver::rest::User {
        name: user.to_string(),
        uid: String::new(),
        groups: vec![keelson_apiserver::auth::AUTHENTICATED.to_string()],
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !api.authz.decide(&user, info).allowed && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The API clients of the in-process components (scheduler, controller manager,
/// controllers, the embedded agent), each with a client certificate issued from the cluster
/// CA at start and kept in memory. [`Components::keep_fresh`] issues a certificate anew when
/// it comes within [`pki::RENEW_BEFORE_DAYS`] of expiry (checked twice a day), and the
/// component's requests switch to it without a restart.
struct Components {
    pki: Pki,
    url: String,
    issued: Vec<Issued>,
}

/// One component's identity, its current certificate, and the client to swap.
struct Issued {
    user: String,
    groups: Vec<String>,
    cert: String,
    failover: keelson_kubelet::failover::Failover,
}

impl Components {
    fn new(pki: &Pki, advertise: &str) -> Components {
        Components {
            pki: pki.clone(),
            url: format!("https://{advertise}"),
            issued: Vec::new(),
        }
    }

    /// A client as `user` in `groups`.
    async fn client(&mut self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let (cert, client) = self.issue(user, &groups).await?;
        let failover = keelson_kubelet::failover::Failover::new(vec![(self.url.clone(), client)])
            .context("no server")?;
        self.issued.push(Issued {
            user: user.to_string(),
            groups,
            cert,
            failover: failover.clone(),
        });
        Ok(failover.client("default"))
    }

    /// A new certificate for `user` and a client of this server with it.
    async fn issue(&self, user: &str, groups: &[String]) -> Result<(String, kube::Client)> {
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        let (cert, key) = self
            .pki
            .issue_client(user, &groups)
            .with_context(|| format!("issuing the client certificate of {user}"))?;
        let text = pki::kubeconfig(&self.url, &self.pki.ca_cert, user, &cert, &key);
        let kc = kube::config::Kubeconfig::from_yaml(&text)
            .with_context(|| format!("the kubeconfig of {user}"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .with_context(|| format!("loading the kubeconfig of {user}"))?;
        let client = kube::Client::try_from(config).context("building the API client")?;
        Ok((cert, client))
    }

    /// Renews, twice a day, each certificate within [`pki::RENEW_BEFORE_DAYS`] of expiry.
    async fn keep_fresh(mut self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(12 * 3600));
        loop {
            tick.tick().await;
            if let Err(e) = self.renew_due(pki::RENEW_BEFORE_DAYS).await {
                tracing::warn!(error = %format!("{e:#}"), "renewing a component's client certificate");
            }
        }
    }

    /// Issues anew the certificates that end within `days`; how many it renewed.
    async fn renew_due(&mut self, days: i64) -> Result<usize> {
        let mut renewed = 0;
        for i in 0..self.issued.len() {
            if !pki::expires_within(&self.issued[i].cert, days) {
                continue;
            }
            let (user, groups) = (self.issued[i].user.clone(), self.issued[i].groups.clone());
            let (cert, client) = self.issue(&user, &groups).await?;
            let it = &mut self.issued[i];
            it.failover.replace(vec![(self.url.clone(), client)]);
            it.cert = cert;
            renewed += 1;
            tracing::info!(user = %it.user, "renewed a component's client certificate");
        }
        Ok(renewed)
    }
}

fn fmt_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[tokio::test]
    async fn component_certificates_are_issued_anew_when_due() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::ensure(dir.path(), &pki::default_sans(&[])).expect("pki");
        let mut c = Components::new(&pki, "127.0.0.1:6443");
        c.client("system:kube-scheduler", &[])
            .await
            .expect("client");
        c.client("system:node:n1", &["system:nodes"])
            .await
            .expect("client");
        let before: Vec<String> = c.issued.iter().map(|i| i.cert.clone()).collect();
        assert_eq!(c.renew_due(pki::RENEW_BEFORE_DAYS).await.expect("renew"), 0);
        // A window longer than a leaf's life: every certificate is due.
        assert_eq!(c.renew_due(400).await.expect("renew"), 2);
        for (old, now) in before.iter().zip(&c.issued) {
            assert_ne!(old, &now.cert, "{} was not issued anew", now.user);
            assert!(!pki::expires_within(&now.cert, pki::RENEW_BEFORE_DAYS));
        }
        assert_eq!(
            c.issued
                .iter()
                .map(|i| i.groups.clone())
                .collect::<Vec<_>>(),
            vec![Vec::<String>::new(), vec!["system:nodes".to_string()]]
        );
    }

    #[test]
    fn every_controller_has_a_default_role_and_every_controller_role_a_controller() {
        let controllers: BTreeSet<&str> = keelson_controllers::manager::CONTROLLERS
            .iter()
            .copied()
            .collect();
        let roles: BTreeSet<&str> = keelson_apiserver::auth::policy::controller_roles()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(controllers, roles);
        let bindings: BTreeSet<String> = keelson_apiserver::auth::policy::cluster_role_bindings()
            .iter()
            .filter_map(|b| b["metadata"]["name"].as_str())
            .filter_map(|n| n.strip_prefix(keelson_apiserver::auth::policy::CONTROLLER_ROLE_PREFIX))
            .map(str::to_string)
            .collect();
        assert_eq!(
            bindings,
            controllers
                .iter()
                .map(|c| c.to_string())
                .collect::<BTreeSet<_>>()
        );
    }
}
