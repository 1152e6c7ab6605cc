//! The Podman container runtime: pods are Podman pods (the infra container holds the
//! network), containers are Podman containers in them, all driven through the libpod REST
//! API and labelled so that a restarted kubelet finds what it owns.

pub mod client;
mod logs;
pub mod oom;
pub mod service;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, StatusCode};
use jiff::Timestamp;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

pub use client::PodmanClient;
pub use service::PodmanService;

use crate::error::{KubeletError, Result};
use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerState, ExecResult, ImageError, PodInfo, Runtime,
    SandboxConfig, SandboxInfo, LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_INIT, LABEL_NODE,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use client::{encode, label_filter, ok, status_error, DEFAULT_TIMEOUT, PULL_TIMEOUT};

/// The most of an exec's output kept.
pub const EXEC_OUTPUT_LIMIT: usize = 64 * 1024;
/// Added to a stop's grace period for the HTTP request's bound.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// Seconds Podman waits after the stop signal when it stops a container on its own.
const STOP_TIMEOUT_SECS: u64 = 30;

/// The Podman name of a pod's sandbox.
pub fn pod_name(sandbox: &SandboxConfig) -> String {
    format!("k8s_{}_{}_{}", sandbox.name, sandbox.namespace, sandbox.uid)
}

/// The Podman name of one container instance.
pub fn container_name(sandbox: &SandboxConfig, config: &ContainerConfig) -> String {
    // Container names are DNS labels, so `k8s-init` cannot be confused with `k8s_…`.
    format!(
        "{}_{}_{}_{}_{}_{}",
        if config.init { "k8s-init" } else { "k8s" },
        config.name,
        sandbox.name,
        sandbox.namespace,
        sandbox.uid,
        config.attempt
    )
}

/// Kubernetes capability names (`NET_ADMIN`) in Podman's form (`CAP_NET_ADMIN`).
fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `sha256:<hex>` for Podman's bare image ids.
fn image_id(id: &str) -> String {
    if id.contains(':') || id.is_empty() {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

fn from_unix(secs: i64) -> Timestamp {
    Timestamp::from_second(secs.max(0)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A container as `GET /containers/json` lists it.
#[derive(Clone, Debug, Deserialize)]
struct ListedContainer {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: i32,
    #[serde(rename = "StartedAt", default)]
    started_at: i64,
    #[serde(rename = "IsInfra", default)]
    is_infra: bool,
    #[serde(rename = "Pod", default)]
    pod: String,
    #[serde(rename = "ImageID", default)]
    image_id: String,
}

impl ListedContainer {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// A pod as `GET /pods/json` lists it.
#[derive(Clone, Debug, Deserialize)]
struct ListedPod {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Created", default)]
    created: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "InfraId", default)]
    infra_id: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// `GET /pods/{name}/json`.
#[derive(Debug, Deserialize)]
struct PodInspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Created", default)]
    created: String,
    #[serde(rename = "InfraContainerID", default)]
    infra_container_id: String,
}

#[derive(Debug, Default, Deserialize)]
struct InspectState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Running", default)]
    running: bool,
    #[serde(rename = "Pid", default)]
    pid: i32,
    #[serde(rename = "OOMKilled", default)]
    oom_killed: bool,
    #[serde(rename = "ExitCode", default)]
    exit_code: i32,
    #[serde(rename = "StartedAt", default)]
    started_at: String,
    #[serde(rename = "FinishedAt", default)]
    finished_at: String,
}

#[derive(Debug, Default, Deserialize)]
struct InspectNetwork {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

#[derive(Debug, Default, Deserialize)]
struct InspectNetworkSettings {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
    #[serde(rename = "Networks", default)]
    networks: Option<BTreeMap<String, InspectNetwork>>,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Deserialize)]
struct ContainerInspect {
    #[serde(rename = "State", default)]
    state: InspectState,
    #[serde(rename = "NetworkSettings", default)]
    network: Option<InspectNetworkSettings>,
}

impl ContainerInspect {
    fn ip(&self) -> String {
        let Some(n) = &self.network else {
            return String::new();
        };
        if !n.ip_address.is_empty() {
            return n.ip_address.clone();
        }
        n.networks
            .iter()
            .flat_map(|m| m.values())
            .map(|net| net.ip_address.clone())
            .find(|ip| !ip.is_empty())
            .unwrap_or_default()
    }
}

/// The address of a sandbox, valid while its infra container runs the same instance.
#[derive(Clone, Debug)]
struct CachedIp {
    infra_id: String,
    infra_started: i64,
    ip: String,
}

/// An exited container's final state (exited containers do not change).
#[derive(Clone, Debug)]
struct CachedExit {
    started_secs: i64,
    state: ContainerState,
}

/// Splits a Docker-multiplexed stream (8-byte frame headers) into its payload; a stream
/// without headers (a terminal) is taken as it is.
#[derive(Default)]
struct Demux {
    frames: logs::Frames,
    out: Vec<u8>,
    truncated: bool,
}

impl Demux {
    fn keep(&mut self, data: &[u8]) {
        let room = EXEC_OUTPUT_LIMIT.saturating_sub(self.out.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.out.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn feed(&mut self, data: &[u8]) {
        for chunk in self.frames.feed(data) {
            self.keep(&chunk);
        }
    }

    fn output(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.out).into_owned();
        if self.truncated {
            s.push_str("\n[output truncated]");
        }
        s
    }
}

/// The Podman runtime of one node.
pub struct PodmanRuntime {
    client: PodmanClient,
    node: String,
    version: String,
    /// Sandbox addresses by Podman pod id.
    ips: Mutex<HashMap<String, CachedIp>>,
    /// Final states of exited containers by container id.
    exits: Mutex<HashMap<String, CachedExit>>,
}

impl PodmanRuntime {
    /// A runtime for node `node_name` on the Podman at `client`; fails if Podman does not
    /// answer.
    pub async fn connect(
        client: PodmanClient,
        node_name: impl Into<String>,
    ) -> Result<PodmanRuntime> {
        let version = client.version().await?;
        Ok(PodmanRuntime {
            client,
            node: node_name.into(),
            version,
            ips: Mutex::new(HashMap::new()),
            exits: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &PodmanClient {
        &self.client
    }

    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// Imports a root file system tarball as the image `reference`; returns its id.
    pub async fn import_image(&self, tar: Vec<u8>, reference: &str) -> Result<String> {
        self.client.import_image(tar, reference).await
    }

    fn node_label(&self) -> String {
        format!("{LABEL_NODE}={}", self.node)
    }

    fn pod_labels(&self, sandbox: &SandboxConfig) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (LABEL_NODE, self.node.clone()),
            (LABEL_POD_UID, sandbox.uid.clone()),
            (LABEL_POD_NAME, sandbox.name.clone()),
            (LABEL_POD_NAMESPACE, sandbox.namespace.clone()),
        ])
    }

    /// The image's id, `None` if it is not present.
    async fn image_present(&self, image: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Image {
            #[serde(rename = "Id")]
            id: String,
        }
        let path = format!("/images/{}/json", encode(image));
        let reply = self
            .client
            .call(Method::GET, &path, None, DEFAULT_TIMEOUT)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(&Method::GET, &path, &reply)?;
        let img: Image = reply.json(&format!("GET {path}"))?;
        Ok(Some(image_id(&img.id)))
    }

    /// Pulls `image`; the error is Podman's message.
    async fn pull(&self, image: &str) -> std::result::Result<(), String> {
        let path = format!("/images/pull?reference={}&quiet=true", encode(image));
        let reply = self
            .client
            .call(Method::POST, &path, None, PULL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status.is_success() {
            return Err(client::error_text(&reply.body));
        }
        // The body is a stream of JSON objects; any `error` is the failure.
        let stream = serde_json::Deserializer::from_slice(&reply.body).into_iter::<Value>();
        for item in stream {
            let item = item.map_err(|e| format!("unexpected pull answer: {e}"))?;
            if let Some(err) = item.get("error").and_then(Value::as_str) {
                if !err.is_empty() {
                    return Err(err.to_string());
                }
            }
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInspect>> {
        let path = format!("/containers/{}/json", encode(id));
        let reply = self
            .client
            .call(Method::GET, &path, None, DEFAULT_TIMEOUT)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(&Method::GET, &path, &reply)?;
        Ok(Some(reply.json(&format!("GET {path}"))?))
    }

    async fn inspect_pod(&self, name: &str) -> Result<Option<PodInspect>> {
        let path = format!("/pods/{}/json", encode(name));
        let reply = self
            .client
            .call(Method::GET, &path, None, DEFAULT_TIMEOUT)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(&Method::GET, &path, &reply)?;
        Ok(Some(reply.json(&format!("GET {path}"))?))
    }

    /// POSTs to `path`; 204/200 and the given extra statuses are success.
    async fn post_ok(&self, path: &str, also: &[StatusCode], timeout: Duration) -> Result<()> {
        let reply = self.client.call(Method::POST, path, None, timeout).await?;
        if reply.status.is_success() || also.contains(&reply.status) {
            Ok(())
        } else {
            Err(status_error(&Method::POST, path, reply.status, &reply.body))
        }
    }

    async fn delete_ok(&self, path: &str, timeout: Duration) -> Result<()> {
        let reply = self
            .client
            .call(Method::DELETE, path, None, timeout)
            .await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(status_error(
                &Method::DELETE,
                path,
                reply.status,
                &reply.body,
            ))
        }
    }

    async fn create_pod(&self, name: &str, config: &SandboxConfig) -> Result<()> {
        let hostname: String = config.hostname.chars().take(63).collect();
        let mut body = json!({
            "name": name,
            "labels": self.pod_labels(config),
        });
        if !hostname.is_empty() {
            body["hostname"] = json!(hostname);
        }
        // The pod's resolv.conf (Podman writes it for the infra container, which the
        // containers share); a host-network pod keeps the host's.
        if let Some(dns) = config.dns.as_ref().filter(|_| !config.host_network) {
            body["dns_server"] = json!(dns.servers);
            body["dns_search"] = json!(dns.searches);
            body["dns_option"] = json!(dns.options);
        }
        if config.host_network {
            body["netns"] = json!({ "nsmode": "host" });
        } else if !config.ports.is_empty() {
            let ports: Vec<Value> = config
                .ports
                .iter()
                .map(|p| {
                    let mut m = json!({
                        "container_port": p.container_port,
                        "host_port": p.host_port,
                        "protocol": if p.protocol.is_empty() { "tcp".to_string() } else { p.protocol.to_ascii_lowercase() },
                    });
                    if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                        m["host_ip"] = json!(ip);
                    }
                    m
                })
                .collect();
            body["portmappings"] = json!(ports);
        }
        let path = "/pods/create";
        let reply = self
            .client
            .call(Method::POST, path, Some(body), DEFAULT_TIMEOUT)
            .await?;
        // 409: another call created it first; it is used as found.
        if reply.status.is_success() || reply.status == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(status_error(&Method::POST, path, reply.status, &reply.body))
        }
    }

    /// The sandbox address of `pod` with its infra container `infra_id` started at
    /// `infra_started` (cached per pod while that instance runs).
    async fn sandbox_ip(&self, pod_id: &str, infra_id: &str, infra_started: i64) -> Result<String> {
        if let Some(c) = self.ips.lock().get(pod_id) {
            if c.infra_id == infra_id && c.infra_started == infra_started {
                return Ok(c.ip.clone());
            }
        }
        let ip = self
            .inspect_container(infra_id)
            .await?
            .map(|i| i.ip())
            .unwrap_or_default();
        self.ips.lock().insert(
            pod_id.to_string(),
            CachedIp {
                infra_id: infra_id.to_string(),
                infra_started,
                ip: ip.clone(),
            },
        );
        Ok(ip)
    }

    /// The state of a listed (non-infra) container.
    async fn container_state(&self, c: &ListedContainer) -> Result<ContainerState> {
        match c.state.as_str() {
            "running" | "paused" | "stopping" => Ok(ContainerState::Running {
                started_at: from_unix(c.started_at),
            }),
            "exited" | "stopped" | "dead" | "removing" => {
                if let Some(cached) = self.exits.lock().get(&c.id) {
                    if cached.started_secs == c.started_at {
                        return Ok(cached.state.clone());
                    }
                }
                let Some(inspect) = self.inspect_container(&c.id).await? else {
                    // Removed meanwhile: what the listing said is all there is.
                    return Ok(exited(
                        c.exit_code,
                        false,
                        from_unix(c.started_at),
                        from_unix(c.started_at),
                    ));
                };
                let s = &inspect.state;
                if s.running {
                    return Ok(ContainerState::Running {
                        started_at: parse_time(&s.started_at)
                            .unwrap_or_else(|| from_unix(c.started_at)),
                    });
                }
                let started = parse_time(&s.started_at).unwrap_or_else(|| from_unix(c.started_at));
                // Podman may report a finish a little before the start.
                let finished = parse_time(&s.finished_at).unwrap_or(started).max(started);
                let oom = s.oom_killed || oom::kernel_oom_log().killed(&c.id);
                let state = exited(s.exit_code, oom, started, finished);
                if matches!(s.status.as_str(), "exited" | "stopped") {
                    self.exits.lock().insert(
                        c.id.clone(),
                        CachedExit {
                            started_secs: c.started_at,
                            state: state.clone(),
                        },
                    );
                }
                Ok(state)
            }
            _ => Ok(ContainerState::Created),
        }
    }

    /// The pods (and their containers) of this node with all of `labels` too, and the
    /// Podman ids of those pods.
    async fn collect(&self, labels: &[String]) -> Result<(Vec<PodInfo>, HashSet<String>)> {
        let mut filter = vec![self.node_label()];
        filter.extend(labels.iter().cloned());
        let filter = label_filter(&filter);
        let pods_path = format!("/pods/json?filters={filter}");
        let containers_path = format!("/containers/json?all=true&filters={filter}");
        let (pods, containers) = tokio::try_join!(
            self.client
                .json::<Option<Vec<ListedPod>>>(Method::GET, &pods_path, None),
            self.client
                .json::<Option<Vec<ListedContainer>>>(Method::GET, &containers_path, None),
        )?;
        let pods = pods.unwrap_or_default();
        let containers = containers.unwrap_or_default();

        let infra: HashMap<&str, &ListedContainer> = containers
            .iter()
            .filter(|c| c.is_infra)
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mut out: BTreeMap<String, PodInfo> = BTreeMap::new();
        for pod in &pods {
            let Some(labels) = &pod.labels else { continue };
            let Some(uid) = labels.get(LABEL_POD_UID) else {
                continue;
            };
            let sandbox = self
                .sandbox_of(pod, infra.get(pod.infra_id.as_str()).copied())
                .await?;
            out.insert(
                uid.clone(),
                PodInfo {
                    uid: uid.clone(),
                    namespace: labels.get(LABEL_POD_NAMESPACE).cloned().unwrap_or_default(),
                    name: labels.get(LABEL_POD_NAME).cloned().unwrap_or_default(),
                    sandbox,
                    containers: Vec::new(),
                },
            );
        }
        for c in containers.iter().filter(|c| !c.is_infra) {
            let (Some(uid), Some(name)) = (c.label(LABEL_POD_UID), c.label(LABEL_CONTAINER_NAME))
            else {
                continue;
            };
            let state = self.container_state(c).await?;
            let pod = out.entry(uid.to_string()).or_insert_with(|| PodInfo {
                uid: uid.to_string(),
                namespace: c.label(LABEL_POD_NAMESPACE).unwrap_or_default().to_string(),
                name: c.label(LABEL_POD_NAME).unwrap_or_default().to_string(),
                sandbox: None,
                containers: Vec::new(),
            });
            pod.containers.push(ContainerInfo {
                id: c.id.clone(),
                name: name.to_string(),
                attempt: c
                    .label(LABEL_ATTEMPT)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                init: c.label(LABEL_INIT) == Some("true"),
                image_id: image_id(&c.image_id),
                state,
            });
        }
        let mut out: Vec<PodInfo> = out.into_values().collect();
        for pod in &mut out {
            pod.containers
                .sort_by(|a, b| (!a.init, &a.name, a.attempt).cmp(&(!b.init, &b.name, b.attempt)));
        }
        Ok((out, pods.into_iter().map(|p| p.id).collect()))
    }

    /// The sandbox of a listed pod, if its infra container runs.
    async fn sandbox_of(
        &self,
        pod: &ListedPod,
        infra: Option<&ListedContainer>,
    ) -> Result<Option<SandboxInfo>> {
        let running = match infra {
            Some(c) => c.state == "running",
            None => matches!(pod.status.as_str(), "Running" | "Degraded"),
        };
        if !running || pod.infra_id.is_empty() {
            return Ok(None);
        }
        let started = infra.map_or(0, |c| c.started_at);
        let ip = self.sandbox_ip(&pod.id, &pod.infra_id, started).await?;
        Ok(Some(SandboxInfo {
            ip,
            created_at: parse_time(&pod.created).unwrap_or(Timestamp::UNIX_EPOCH),
        }))
    }

    /// Forgets the caches of what is gone from a full listing.
    fn prune(&self, pods: &[PodInfo], pod_ids: &HashSet<String>) {
        let ids: HashSet<&str> = pods
            .iter()
            .flat_map(|p| p.containers.iter().map(|c| c.id.as_str()))
            .collect();
        self.exits.lock().retain(|id, _| ids.contains(id.as_str()));
        self.ips.lock().retain(|id, _| pod_ids.contains(id));
    }

    /// The image's id, with a pull error as the error.
    async fn image_id_of(&self, image: &str) -> std::result::Result<Option<String>, ImageError> {
        self.image_present(image)
            .await
            .map_err(|e| ImageError::Pull(e.to_string()))
    }

    async fn ensure_image_inner(
        &self,
        image: &str,
        policy: &str,
    ) -> std::result::Result<String, ImageError> {
        let pulled = match policy {
            "Never" => {
                return self.image_id_of(image).await?.ok_or_else(|| {
                    ImageError::NeverPull(format!(
                        "image \"{image}\" is not present with pull policy of Never"
                    ))
                });
            }
            "Always" => match self.pull(image).await {
                Ok(()) => true,
                // No registry is no reason to refuse an image built on this node.
                Err(e) => match self.image_id_of(image).await? {
                    Some(id) => {
                        tracing::warn!(image, error = %e, "pull failed; using the local image");
                        return Ok(id);
                    }
                    None => return Err(ImageError::Pull(e)),
                },
            },
            // IfNotPresent (and anything else).
            _ => false,
        };
        if !pulled {
            if let Some(id) = self.image_id_of(image).await? {
                return Ok(id);
            }
            self.pull(image).await.map_err(ImageError::Pull)?;
        }
        self.image_id_of(image).await?.ok_or_else(|| {
            ImageError::Pull(format!("image \"{image}\" is not present after its pull"))
        })
    }

    async fn run_sandbox_inner(&self, config: &SandboxConfig) -> Result<SandboxInfo> {
        let name = pod_name(config);
        let pod = match self.inspect_pod(&name).await? {
            Some(p) => p,
            None => {
                self.create_pod(&name, config).await?;
                self.inspect_pod(&name).await?.ok_or_else(|| {
                    KubeletError::Runtime(format!("pod {name} vanished after it was created"))
                })?
            }
        };
        if pod.infra_container_id.is_empty() {
            return Err(KubeletError::Runtime(format!(
                "pod {name} has no infra container"
            )));
        }
        let infra = &pod.infra_container_id;
        let mut inspect = self.inspect_container(infra).await?;
        if !inspect.as_ref().is_some_and(|i| i.state.running) {
            // Only the infra container: a pod start would restart exited app containers too.
            let path = format!("/containers/{}/start", encode(infra));
            self.post_ok(&path, &[StatusCode::NOT_MODIFIED], DEFAULT_TIMEOUT)
                .await?;
            inspect = self.inspect_container(infra).await?;
        }
        let inspect = inspect.ok_or_else(|| {
            KubeletError::Runtime(format!("infra container of pod {name} vanished"))
        })?;
        if !inspect.state.running {
            return Err(KubeletError::Runtime(format!(
                "infra container of pod {name} is {} after start",
                inspect.state.status
            )));
        }
        let ip = if config.host_network {
            String::new()
        } else {
            inspect.ip()
        };
        let started = parse_time(&inspect.state.started_at).map_or(0, |t| t.as_second());
        self.ips.lock().insert(
            pod.id.clone(),
            CachedIp {
                infra_id: infra.clone(),
                infra_started: started,
                ip: ip.clone(),
            },
        );
        Ok(SandboxInfo {
            ip,
            created_at: parse_time(&pod.created).unwrap_or(Timestamp::UNIX_EPOCH),
        })
    }

    fn container_spec(
        &self,
        sandbox: &SandboxConfig,
        config: &ContainerConfig,
        name: &str,
    ) -> Value {
        let mut labels = self.pod_labels(sandbox);
        labels.insert(LABEL_CONTAINER_NAME, config.name.clone());
        labels.insert(LABEL_ATTEMPT, config.attempt.to_string());
        labels.insert(LABEL_INIT, config.init.to_string());
        let mounts: Vec<Value> = config
            .mounts
            .iter()
            .map(|m| {
                let mode = if m.read_only { "ro" } else { "rw" };
                if m.tmpfs {
                    json!({
                        "destination": m.container_path,
                        "source": "tmpfs",
                        "type": "tmpfs",
                        "options": [mode, "nosuid", "nodev"],
                    })
                } else {
                    json!({
                        "destination": m.container_path,
                        "source": m.host_path,
                        "type": "bind",
                        "options": ["rbind", mode],
                    })
                }
            })
            .collect();
        let mut spec = json!({
            "name": name,
            "image": config.image,
            "pod": pod_name(sandbox),
            "labels": labels,
            "env": config.env,
            "mounts": mounts,
            "read_only_filesystem": config.read_only_root,
            "privileged": config.privileged,
            "terminal": config.tty,
            "stdin": config.stdin,
            "log_configuration": { "driver": "k8s-file" },
            "stop_timeout": STOP_TIMEOUT_SECS,
        });
        if !config.command.is_empty() {
            spec["entrypoint"] = json!(config.command);
        }
        if !config.args.is_empty() {
            spec["command"] = json!(config.args);
        }
        if let Some(dir) = config.working_dir.as_deref().filter(|d| !d.is_empty()) {
            spec["work_dir"] = json!(dir);
        }
        let user = match (config.run_as_user, config.run_as_group) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            // Podman takes a group only with a user; the image's user is usually root.
            (None, Some(g)) => Some(format!("0:{g}")),
            (None, None) => None,
        };
        if let Some(user) = user {
            spec["user"] = json!(user);
        }
        if !config.cap_add.is_empty() {
            spec["cap_add"] = json!(config
                .cap_add
                .iter()
                .map(|c| capability(c))
                .collect::<Vec<_>>());
        }
        if !config.cap_drop.is_empty() {
            spec["cap_drop"] = json!(config
                .cap_drop
                .iter()
                .map(|c| capability(c))
                .collect::<Vec<_>>());
        }
        let mut resources = serde_json::Map::new();
        if let Some(limit) = config.memory_limit.filter(|l| *l > 0) {
            // As in Kubernetes, no swap on top of the limit.
            resources.insert("memory".into(), json!({ "limit": limit, "swap": limit }));
        }
        let mut cpu = serde_json::Map::new();
        if let Some(millis) = config.cpu_limit_millis.filter(|m| *m > 0) {
            cpu.insert("quota".into(), json!((millis * 100).max(1000)));
            cpu.insert("period".into(), json!(100_000));
        }
        if let Some(millis) = config.cpu_request_millis.filter(|m| *m > 0) {
            cpu.insert("shares".into(), json!((millis * 1024 / 1000).max(2)));
        }
        if !cpu.is_empty() {
            resources.insert("cpu".into(), Value::Object(cpu));
        }
        if !resources.is_empty() {
            spec["resource_limits"] = Value::Object(resources);
        }
        spec
    }

    async fn start_container_inner(
        &self,
        sandbox: &SandboxConfig,
        config: &ContainerConfig,
    ) -> Result<()> {
        let name = container_name(sandbox, config);
        let spec = self.container_spec(sandbox, config, &name);
        let path = "/containers/create";
        let mut reply = self
            .client
            .call(Method::POST, path, Some(spec.clone()), DEFAULT_TIMEOUT)
            .await?;
        if !reply.status.is_success() && client::error_text(&reply.body).contains("already in use")
        {
            // This attempt exists already. If it ever ran, it stays (starting it again would
            // kill a running container); only one that never started is replaced.
            let inspect: Value = self
                .client
                .json(
                    Method::GET,
                    &format!("/containers/{}/json", encode(&name)),
                    None,
                )
                .await?;
            let status = inspect["State"]["Status"].as_str().unwrap_or("");
            if !matches!(status, "created" | "configured") {
                tracing::debug!(container = %name, status, "this attempt exists already");
                return Ok(());
            }
            tracing::debug!(container = %name, "replacing a container of the same name");
            self.delete_ok(
                &format!("/containers/{}?force=true&timeout=0", encode(&name)),
                DEFAULT_TIMEOUT,
            )
            .await?;
            reply = self
                .client
                .call(Method::POST, path, Some(spec), DEFAULT_TIMEOUT)
                .await?;
        }
        ok(&Method::POST, path, &reply)?;
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let created: Created = reply.json(&format!("POST {path}"))?;
        let start = format!("/containers/{}/start", encode(&created.id));
        if let Err(e) = self
            .post_ok(&start, &[StatusCode::NOT_MODIFIED], DEFAULT_TIMEOUT)
            .await
        {
            // Either a started container or an error: never a container left behind.
            let rm = format!("/containers/{}?force=true&timeout=0", encode(&created.id));
            if let Err(rm_err) = self.delete_ok(&rm, DEFAULT_TIMEOUT).await {
                tracing::warn!(container = %name, error = %rm_err, "removing a container that failed to start");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn exec_inner(&self, id: &str, command: &[String]) -> Result<ExecResult> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        #[derive(Deserialize)]
        struct Inspect {
            #[serde(rename = "ExitCode", default)]
            exit_code: i32,
            #[serde(rename = "Running", default)]
            running: bool,
        }
        let created: Created = self
            .client
            .json(
                Method::POST,
                &format!("/containers/{}/exec", encode(id)),
                Some(json!({ "Cmd": command, "AttachStdout": true, "AttachStderr": true })),
            )
            .await?;
        let eid = encode(&created.id);
        let mut demux = Demux::default();
        let body = serde_json::to_vec(&json!({ "Detach": false, "Tty": false }))
            .map_err(|e| KubeletError::Runtime(format!("exec body: {e}")))?;
        self.client
            .request_streaming(
                Method::POST,
                &format!("/exec/{eid}/start"),
                Some((body.into(), "application/json")),
                |data| demux.feed(data),
            )
            .await?;
        // The stream ends when the process does; its session may take a moment to say so.
        loop {
            let inspect: Inspect = self
                .client
                .json(Method::GET, &format!("/exec/{eid}/json"), None)
                .await?;
            if !inspect.running {
                return Ok(ExecResult {
                    exit_code: inspect.exit_code,
                    output: demux.output(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn remove_pod_inner(&self, uid: &str, grace: Duration) -> Result<()> {
        let filter = label_filter(&[self.node_label(), format!("{LABEL_POD_UID}={uid}")]);
        let pods_path = format!("/pods/json?filters={filter}");
        let containers_path = format!("/containers/json?all=true&filters={filter}");
        let (pods, containers) = tokio::try_join!(
            self.client
                .json::<Option<Vec<ListedPod>>>(Method::GET, &pods_path, None),
            self.client
                .json::<Option<Vec<ListedContainer>>>(Method::GET, &containers_path, None),
        )?;
        let pods = pods.unwrap_or_default();
        let containers = containers.unwrap_or_default();
        // The app containers first, all at once, each with the grace period. (Podman 4.3's
        // pod stop does nothing, 304, unless every container of the pod runs.)
        let stops = containers
            .iter()
            .filter(|c| !c.is_infra && !matches!(c.state.as_str(), "exited" | "stopped"))
            .map(|c| self.stop_container_inner(&c.id, grace));
        futures::future::try_join_all(stops).await?;
        for pod in &pods {
            if !pod.infra_id.is_empty() {
                self.stop_container_inner(&pod.infra_id, grace).await?;
            }
            self.delete_ok(
                &format!("/pods/{}?force=true", encode(&pod.name)),
                DEFAULT_TIMEOUT,
            )
            .await?;
            self.ips.lock().remove(&pod.id);
        }
        // Containers outside any pod (none are made so, but a kubelet may find some).
        let pod_ids: HashSet<&str> = pods.iter().map(|p| p.id.as_str()).collect();
        for c in &containers {
            self.exits.lock().remove(&c.id);
            if c.pod.is_empty() || !pod_ids.contains(c.pod.as_str()) {
                self.delete_ok(
                    &format!("/containers/{}?force=true&timeout=0", encode(&c.id)),
                    DEFAULT_TIMEOUT,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn stop_container_inner(&self, id: &str, grace: Duration) -> Result<()> {
        self.post_ok(
            &format!(
                "/containers/{}/stop?timeout={}",
                encode(id),
                ceil_secs(grace)
            ),
            &[StatusCode::NOT_MODIFIED, StatusCode::NOT_FOUND],
            grace + STOP_SLACK,
        )
        .await
    }
}

fn exited(code: i32, oom: bool, started_at: Timestamp, finished_at: Timestamp) -> ContainerState {
    let reason = if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerState::Exited {
        exit_code: code,
        reason: reason.into(),
        started_at,
        finished_at,
    }
}

impl Runtime for PodmanRuntime {
    fn version(&self) -> String {
        format!("podman://{}", self.version)
    }

    fn name(&self) -> &'static str {
        "podman"
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, ImageError>> {
        Box::pin(self.ensure_image_inner(image, policy))
    }

    fn run_sandbox<'a>(&'a self, config: &'a SandboxConfig) -> BoxFuture<'a, Result<SandboxInfo>> {
        Box::pin(self.run_sandbox_inner(config))
    }

    fn start_container<'a>(
        &'a self,
        sandbox: &'a SandboxConfig,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start_container_inner(sandbox, config))
    }

    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.stop_container_inner(id, grace))
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.delete_ok(
                &format!("/containers/{}?force=true&timeout=0", encode(id)),
                DEFAULT_TIMEOUT,
            )
            .await?;
            self.exits.lock().remove(id);
            Ok(())
        })
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecResult>> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, self.exec_inner(id, command)).await {
                Ok(result) => result,
                Err(_) => Err(KubeletError::Runtime(format!(
                    "exec {command:?} in container {id} timed out after {timeout:?}"
                ))),
            }
        })
    }

    fn attach<'a>(
        &'a self,
        id: &'a str,
        tty: bool,
        stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ) -> BoxFuture<'a, Result<crate::runtime::ExecStream>> {
        Box::pin(logs::attach(&self.client, id, tty, stdin))
    }

    fn disk_usage(&self) -> BoxFuture<'_, Result<Option<(u64, u64)>>> {
        Box::pin(async move {
            let info: Value = self.client.json(Method::GET, "/info", None).await?;
            let store = &info["store"];
            Ok(store["graphRootUsed"]
                .as_u64()
                .zip(store["graphRootAllocated"].as_u64()))
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<crate::runtime::ContainerStats>>> {
        Box::pin(async move {
            #[derive(Deserialize)]
            struct One {
                #[serde(rename = "ContainerID")]
                id: String,
                #[serde(rename = "CPUNano", default)]
                cpu_nanos: u64,
                #[serde(rename = "MemUsage", default)]
                memory: u64,
                #[serde(rename = "SystemNano", default)]
                at: i128,
            }
            #[derive(Deserialize)]
            struct All {
                #[serde(rename = "Stats", default)]
                stats: Option<Vec<One>>,
            }
            // This node's running containers only: a container Podman cannot read (another
            // agent's, or one whose conmon is gone) fails a listing of all of them.
            let filter = label_filter(&[self.node_label()]);
            let running: Vec<ListedContainer> = self
                .client
                .json::<Option<Vec<ListedContainer>>>(
                    Method::GET,
                    &format!("/containers/json?filters={filter}"),
                    None,
                )
                .await?
                .unwrap_or_default();
            if running.is_empty() {
                return Ok(Vec::new());
            }
            let query = |ids: &[&str]| {
                let mut q = String::from("/containers/stats?stream=false");
                for id in ids {
                    q.push_str("&containers=");
                    q.push_str(id);
                }
                q
            };
            let ids: Vec<&str> = running.iter().map(|c| c.id.as_str()).collect();
            let stats = match self
                .client
                .json::<All>(Method::GET, &query(&ids), None)
                .await
            {
                Ok(All { stats: Some(s) }) => s,
                // One of them cannot be read: ask one by one and leave that one out.
                _ => {
                    let mut out = Vec::new();
                    for id in &ids {
                        match self
                            .client
                            .json::<All>(Method::GET, &query(&[id]), None)
                            .await
                        {
                            Ok(All { stats: Some(s) }) => out.extend(s),
                            _ => tracing::debug!(container = %id, "no stats for this container"),
                        }
                    }
                    out
                }
            };
            Ok(stats
                .into_iter()
                .map(|s| crate::runtime::ContainerStats {
                    id: s.id,
                    cpu_nanos: s.cpu_nanos,
                    memory_bytes: s.memory,
                    at: Timestamp::from_nanosecond(s.at).unwrap_or_else(|_| Timestamp::now()),
                })
                .collect())
        })
    }

    fn exec_stream<'a>(
        &'a self,
        id: &'a str,
        req: crate::runtime::ExecRequest,
    ) -> BoxFuture<'a, Result<crate::runtime::ExecStream>> {
        Box::pin(logs::exec_stream(&self.client, id, req))
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a crate::runtime::LogOptions,
    ) -> BoxFuture<'a, Result<crate::runtime::LogStream>> {
        Box::pin(logs::open(&self.client, id, options))
    }

    fn list_pods(&self) -> BoxFuture<'_, Result<Vec<PodInfo>>> {
        Box::pin(async move {
            let (pods, ids) = self.collect(&[]).await?;
            self.prune(&pods, &ids);
            Ok(pods)
        })
    }

    fn pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<Option<PodInfo>>> {
        Box::pin(async move {
            let (mut pods, _) = self.collect(&[format!("{LABEL_POD_UID}={uid}")]).await?;
            Ok(pods.pop())
        })
    }

    fn remove_pod<'a>(&'a self, uid: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_pod_inner(uid, grace))
    }

    fn port_forward<'a>(
        &'a self,
        uid: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<tokio::net::TcpStream>> {
        Box::pin(async move {
            let pid = self.infra_pid(uid).await?;
            connect_in_netns(pid, port).await
        })
    }
}

impl PodmanRuntime {
    /// The process id of the running infra container of the pod `uid` (it holds the
    /// pod's network namespace).
    async fn infra_pid(&self, uid: &str) -> Result<i32> {
        let filter = label_filter(&[self.node_label(), format!("{LABEL_POD_UID}={uid}")]);
        let path = format!("/pods/json?filters={filter}");
        let pods = self
            .client
            .json::<Option<Vec<ListedPod>>>(Method::GET, &path, None)
            .await?
            .unwrap_or_default();
        let none = || KubeletError::Runtime(format!("pod {uid} has no running sandbox"));
        let infra = pods
            .iter()
            .map(|p| p.infra_id.as_str())
            .find(|id| !id.is_empty())
            .ok_or_else(none)?;
        let state = self.inspect_container(infra).await?.ok_or_else(none)?.state;
        if !state.running || state.pid <= 0 {
            return Err(none());
        }
        Ok(state.pid)
    }
}

/// Connects to `127.0.0.1:port` inside the network namespace of process `pid` (as the
/// kubelet's port-forward does, so ports bound to the pod's loopback are reachable). The
/// socket is made on a thread of its own that enters the namespace and then ends; the
/// connected socket stays in the namespace it was made in.
async fn connect_in_netns(pid: i32, port: u16) -> Result<tokio::net::TcpStream> {
    use std::os::fd::AsRawFd as _;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let timeout = Duration::from_secs(5);
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            let connect = || -> std::io::Result<std::net::TcpStream> {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
                // SAFETY: setns(2) changes the namespace of this thread only, which does
                // nothing else and ends right after the connect.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
                s.set_nonblocking(true)?;
                Ok(s)
            };
            let _ = tx.send(connect());
        })
        .map_err(|e| KubeletError::Runtime(format!("port-forward thread: {e}")))?;
    let stream = rx
        .await
        .map_err(|_| KubeletError::Runtime("port-forward thread ended".into()))?
        .map_err(|e| {
            KubeletError::Runtime(format!(
                "failed to connect to localhost:{port} inside the pod's network namespace: {e}"
            ))
        })?;
    tokio::net::TcpStream::from_std(stream)
        .map_err(|e| KubeletError::Runtime(format!("port-forward socket: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_splits_frames_across_chunks_and_caps() {
        let mut d = Demux::default();
        let mut stream = vec![1, 0, 0, 0, 0, 0, 0, 3];
        stream.extend_from_slice(b"hi\n");
        stream.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        stream.extend_from_slice(b"err\n");
        for chunk in stream.chunks(5) {
            d.feed(chunk);
        }
        assert_eq!(d.output(), "hi\nerr\n");

        let mut raw = Demux::default();
        raw.feed(b"plain terminal output");
        assert_eq!(raw.output(), "plain terminal output");

        let mut big = Demux::default();
        let n = EXEC_OUTPUT_LIMIT + 10;
        let mut frame = vec![1, 0, 0, 0];
        frame.extend_from_slice(&(n as u32).to_be_bytes());
        frame.extend(std::iter::repeat_n(b'a', n));
        big.feed(&frame);
        assert!(big.output().ends_with("[output truncated]"));
    }

    #[test]
    fn names_capabilities_and_seconds() {
        let sandbox = SandboxConfig {
            uid: "u-1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            ..SandboxConfig::default()
        };
        let c = ContainerConfig {
            name: "app".into(),
            attempt: 2,
            ..ContainerConfig::default()
        };
        assert_eq!(pod_name(&sandbox), "k8s_web_ns_u-1");
        assert_eq!(container_name(&sandbox, &c), "k8s_app_web_ns_u-1_2");
        let init = ContainerConfig { init: true, ..c };
        assert_eq!(container_name(&sandbox, &init), "k8s-init_app_web_ns_u-1_2");
        assert_eq!(capability("net_admin"), "CAP_NET_ADMIN");
        assert_eq!(capability("CAP_SYS_TIME"), "CAP_SYS_TIME");
        assert_eq!(capability("ALL"), "ALL");
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(image_id("abc"), "sha256:abc");
        assert_eq!(image_id("sha256:abc"), "sha256:abc");
    }
}
