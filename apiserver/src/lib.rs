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
            .is_none()
        {
            let mut ctx = WriteCtx::internal("keelson-apiserver");
            match rest::create_object(self, &svc_def, Some("default"), svc, &mut ctx).await {
                // Another apiserver may have created it meanwhile.
                Ok(_) | Err(ApiError::AlreadyExists(_)) | Err(ApiError::Invalid { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.publish_endpoints(port).await
    }

    /// This server's address in the `kubernetes` Service's Endpoints and EndpointSlice, what
    /// Kubernetes' endpoint reconciler keeps: added when missing, other servers' kept.
    /// Nothing when the advertised host is not an IPv4 address, or is a loopback one
    /// (Kubernetes refuses those as endpoints, and pods could not reach them).
    async fn publish_endpoints(&self, port: u16) -> Result<()> {
        let Some(ip) = self.endpoint_ip() else {
            return Ok(());
        };
        let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
        let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": ports}]});
        let add_address = |cur: &serde_json::Value| -> Result<serde_json::Value> {
            let mut next = cur.clone();
            let have = next
                .pointer("/subsets/0/addresses")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x["ip"] == json!(ip)));
            if !have {
                match next
                    .pointer_mut("/subsets/0/addresses")
                    .and_then(serde_json::Value::as_array_mut)
                {
                    Some(a) => a.push(json!({"ip": ip})),
                    None => next["subsets"] = json!([{"addresses": [{"ip": ip}], "ports": ports}]),
                }
            }
            Ok(next)
        };
        self.upsert("", "endpoints", Some(endpoints), &add_address)
            .await?;
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": ports});
        let add_endpoint = |cur: &serde_json::Value| -> Result<serde_json::Value> {
            let mut next = cur.clone();
            let have = next
                .get("endpoints")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|a| a.iter().any(|e| e["addresses"][0] == json!(ip)));
            if !have {
                match next
                    .get_mut("endpoints")
                    .and_then(serde_json::Value::as_array_mut)
                {
                    Some(a) => a.push(json!({"addresses": [ip], "conditions": {"ready": true}})),
                    None => {
                        next["endpoints"] =
                            json!([{"addresses": [ip], "conditions": {"ready": true}}])
                    }
                }
            }
            Ok(next)
        };
        self.upsert(
            "discovery.k8s.io",
            "endpointslices",
            Some(slice),
            &add_endpoint,
        )
        .await
    }

    /// Takes this server's address out of the `kubernetes` Service's Endpoints and
    /// EndpointSlice (a server shutting down), leaving the other servers'.
    pub async fn unpublish_endpoints(&self) -> Result<()> {
        let Some(ip) = self.endpoint_ip() else {
            return Ok(());
        };
        let drop_address = |cur: &serde_json::Value| -> Result<serde_json::Value> {
            let mut next = cur.clone();
            if let Some(a) = next
                .pointer_mut("/subsets/0/addresses")
                .and_then(serde_json::Value::as_array_mut)
            {
                a.retain(|x| x["ip"] != json!(ip));
                if a.is_empty() {
                    next["subsets"] = json!([]);
                }
            }
            Ok(next)
        };
        let drop_endpoint = |cur: &serde_json::Value| -> Result<serde_json::Value> {
            let mut next = cur.clone();
            if let Some(a) = next
                .get_mut("endpoints")
                .and_then(serde_json::Value::as_array_mut)
            {
                a.retain(|e| e["addresses"][0] != json!(ip));
            }
            Ok(next)
        };
        for (group, plural, change) in [
            (
                "",
                "endpoints",
                &drop_address
                    as &(dyn Fn(&serde_json::Value) -> Result<serde_json::Value> + Send + Sync),
            ),
            ("discovery.k8s.io", "endpointslices", &drop_endpoint),
        ] {
            self.upsert(group, plural, None, change).await?;
        }
        Ok(())
    }

    /// The advertised address as the `kubernetes` Service's endpoint: an IPv4 address that
    /// is neither loopback nor unspecified.
    fn endpoint_ip(&self) -> Option<String> {
        let host = self
            .config
            .advertise
            .rsplit_once(':')
            .map_or(self.config.advertise.as_str(), |(h, _)| h);
        host.parse::<std::net::Ipv4Addr>()
            .ok()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
            .map(|ip| ip.to_string())
    }

    /// Changes the stored `default/kubernetes` object with `change`, or creates `want` when
    /// there is none (nothing when `want` is None).
    async fn upsert(
        &self,
        group: &str,
        plural: &str,
        want: Option<serde_json::Value>,
        change: &(dyn Fn(&serde_json::Value) -> Result<serde_json::Value> + Send + Sync),
    ) -> Result<()> {
        let def = self
            .registry
            .get(group, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
        let name = "kubernetes";
        let mut ctx = WriteCtx::internal("keelson-apiserver");
        if let Some(stored) = self
            .storage
            .get(&def.key(Some("default"), name), None, false)
            .await?
        {
            if change(&stored.obj)? == stored.obj {
                return Ok(());
            }
        } else {
            let Some(want) = want else {
                return Ok(());
            };
            match rest::create_object(self, &def, Some("default"), want, &mut ctx).await {
                Ok(_) => return Ok(()),
                Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        rest::update_object(
            self,
            &def,
            Some("default"),
            name,
            rest::Change::With(change),
            rest::Via::main(),
            &mut ctx,
        )
        .await
        .map(|_| ())
    }
}
