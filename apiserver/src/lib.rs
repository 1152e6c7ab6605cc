//! keelson's Kubernetes REST apiserver, running in-process on a store member.
//!
//! [`Api`] holds the resource registry, the store, the watch cache and the schemas; the
//! generic REST engine ([`rest`]) serves every resource of the registry; [`server`] serves
//! it over HTTPS with client-certificate authentication.

pub mod alloc;
pub mod audit;
pub mod auth;
pub mod codec;
pub mod convert;
pub mod crd;
pub mod crdschema;
pub mod discovery;
pub mod dns;
pub mod encryption;
pub mod error;
pub mod fuzz;
pub mod join;
pub mod limitranger;
pub mod limits;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod pdb;
pub mod pki;
pub mod podsecurity;
pub mod prom;
pub mod protobuf;
pub mod quota;
pub mod registry;
pub mod rest;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod storage;
pub mod strategy;
pub mod table;
pub mod typecheck;
pub mod validation;
pub mod watchcache;

use std::sync::Arc;

use keelson_store::StoreNode;
use serde_json::json;

pub use error::{ApiError, Result};

use crate::alloc::{Cidr, PortRange};
use crate::registry::Registry;
use crate::rest::WriteCtx;
use crate::schema::Schemas;
use crate::storage::Storage;
use crate::watchcache::WatchCache;

/// The apiserver's settings.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `--service-cluster-ip-range`.
    pub service_cidr: Cidr,
    /// `--service-node-port-range`.
    pub node_ports: PortRange,
    /// Events the watch cache keeps for watches that resume from a resourceVersion.
    pub watch_cache_size: usize,
    /// `host:port` clients reach this apiserver at (discovery's serverAddressByClientCIDRs,
    /// the `kubernetes` service's endpoints).
    pub advertise: String,
    /// How this apiserver calls kubelets (`pods/log`): its client certificate.
    pub kubelet_client: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The join token and CA this server admits new servers and agents with (`/cacerts`,
    /// `/v1-keelson/join/…`); None answers those paths with 404.
    pub join: Option<join::JoinConfig>,
    /// Append metrics of components running in this process (controllers, the embedded
    /// kubelet) to `/metrics`.
    pub extra_metrics: Vec<fn(&mut String)>,
    /// Bearer tokens and anonymous requests (client certificates always authenticate).
    pub authn: auth::authn::AuthnConfig,
    /// `--encryption-provider-config`: how objects are encrypted at rest (None: not at all).
    pub encryption: Option<Arc<encryption::Transformer>>,
    /// `--audit-policy-file` and `--audit-log-path`: the audit log (None: none).
    pub audit: Option<Arc<audit::Auditor>>,
    /// `--max-requests-inflight` / `--max-mutating-requests-inflight` (0: no limit).
    pub max_requests_inflight: usize,
    pub max_mutating_requests_inflight: usize,
    /// `--max-watches-per-user`: how many watches one user may hold open (0: no limit;
    /// `system:masters` is exempt).
    pub max_watches_per_user: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            service_cidr: Cidr {
                base: u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)),
                bits: 12,
            },
            node_ports: PortRange::default(),
            watch_cache_size: 10_000,
            advertise: "127.0.0.1:6443".into(),
            kubelet_client: None,
            join: None,
            extra_metrics: Vec::new(),
            authn: Default::default(),
            encryption: None,
            audit: None,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            max_watches_per_user: 1000,
        }
    }
}

/// The apiserver's shared state.
pub struct Api {
    pub registry: Registry,
    pub storage: Storage,
    pub cache: Arc<WatchCache>,
    pub schemas: Arc<Schemas>,
    pub config: ApiConfig,
    pub openapi: openapi::OpenApiCache,
    /// Request counts and latencies for `/metrics`.
    pub requests: Arc<prom::RequestMetrics>,
    /// Who may do what (RBAC on the stored roles and bindings).
    pub authz: auth::Authorizer,
    /// Requests being served (the max-in-flight limits).
    pub inflight: limits::Inflight,
    /// Watches open now, by user (the per-user watch limit).
    pub watches: Arc<limits::Watches>,
}

/// Namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Api {
    /// Builds the apiserver on a started store member: fills the watch cache, registers the
    /// established CRDs, and creates the system namespaces and the `kubernetes` service.
    pub async fn start(node: Arc<StoreNode>, config: ApiConfig) -> Result<Arc<Api>> {
        let cache = WatchCache::start(
            Arc::clone(&node),
            config.watch_cache_size,
            config.encryption.clone(),
        )
        .await?;
        let api = Arc::new(Api {
            registry: Registry::builtin(),
            storage: Storage::new(node, config.encryption.clone()),
            cache,
            schemas: Arc::new(Schemas::builtin()),
            config,
            openapi: openapi::OpenApiCache::default(),
            requests: Arc::default(),
            authz: auth::Authorizer::default(),
            inflight: limits::Inflight::default(),
            watches: Arc::default(),
        });
        api.authz.rebuild(&api);
        tokio::spawn(crd::sync(Arc::clone(&api)));
        tokio::spawn(auth::sync(Arc::clone(&api)));
        tokio::spawn(quota::sync(Arc::clone(&api)));
        Ok(api)
    }

    /// Creates the system namespaces and the `kubernetes` service, retrying until the store
    /// has a quorum (a member of a new cluster may start before its peers).
    pub async fn bootstrap_until_done(self: Arc<Self>) {
        let mut shutdown = self.storage.node().shutdown_signal();
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match self.bootstrap().await {
                Ok(()) => return,
                Err(e) => tracing::info!(error = %e, "bootstrap objects not written yet; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// Creates the system namespaces, the default RBAC roles and bindings and the
    /// `kubernetes` service if missing.
    pub async fn bootstrap(&self) -> Result<()> {
        let ns_def = self
            .registry
            .get("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let mut ctx = WriteCtx::internal("keelson-apiserver");
            match rest::create_object(self, &ns_def, None, obj, &mut ctx).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        auth::policy::reconcile(self).await?;
        // The `kubernetes` service: the first address of the service range.
        let svc_def = self
            .registry
            .get("", "v1", "services")
            .ok_or_else(|| ApiError::internal("services are not registered"))?;
        let port: u16 = self
            .config
            .advertise
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(6443);
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": self.config.service_cidr.first().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            }
        });
        if self
            .storage
            .get(&svc_def.key(Some("default"), "kubernetes"), None, false)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut ctx = WriteCtx::internal("keelson-apiserver");
        match rest::create_object(self, &svc_def, Some("default"), svc, &mut ctx).await {
            // Another apiserver may have created it meanwhile.
            Ok(_) | Err(ApiError::AlreadyExists(_)) | Err(ApiError::Invalid { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
