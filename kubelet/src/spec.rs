//! From a pod's spec to what the runtime is given: the sandbox, each container's resolved
//! environment, resources, security settings, and its volumes prepared on the host.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, EnvVar, KeyToPath, ObjectFieldSelector, Pod,
    ResourceFieldSelector, Secret, Volume,
};
use kube::{Api, Client};

use crate::quantity;
use crate::runtime::{ContainerConfig, Mount, PortMapping, SandboxConfig};

/// Why a container cannot be configured (the `CreateContainerConfigError` message).
pub type ConfigError = String;

/// The sandbox settings of `pod`, with `dns` its resolver (None: the runtime's default).
pub fn sandbox_config(pod: &Pod, dns: Option<crate::dns::Resolv>) -> SandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
    hostname.truncate(63);
    let mut ports = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.and_then(|h| u16::try_from(h).ok()) else {
                continue;
            };
            if host_port == 0 {
                continue;
            }
            ports.push(PortMapping {
                container_port: u16::try_from(p.container_port).unwrap_or(0),
                host_port,
                host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
            });
        }
    }
    SandboxConfig {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name,
        hostname,
        ports,
        host_network: spec.host_network.unwrap_or(false),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        dns,
    }
}

/// The value of a `fieldRef` (env or downwardAPI).
fn field_value(
    pod: &Pod,
    f: &ObjectFieldSelector,
    pod_ip: &str,
    host_ip: &str,
) -> Result<String, ConfigError> {
    let path = f.field_path.as_str();
    let meta = &pod.metadata;
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" | "metadata.annotations" => {
            let m = if path == "metadata.labels" {
                meta.labels.clone()
            } else {
                meta.annotations.clone()
            };
            m.unwrap_or_default()
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        _ => {
            if let Some(k) = map_key("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = map_key("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath {path:?}"));
            }
        }
    })
}

/// The value of a `resourceFieldRef`: the container's limit or request, in units of the
/// divisor (rounded up), as the kubelet gives it. An unset limit is the node's allocatable.
fn resource_value(
    pod: &Pod,
    default_container: &str,
    r: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let name = r
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(default_container);
    let c = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == name))
        .ok_or_else(|| format!("resourceFieldRef: no container {name:?}"))?;
    let (kind, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {:?}", r.resource))?;
    let res = c.resources.clone().unwrap_or_default();
    let set = match kind {
        "limits" => res.limits,
        "requests" => res.requests,
        _ => return Err(format!("unsupported resource {:?}", r.resource)),
    }
    .unwrap_or_default();
    let raw = set
        .get(resource)
        .map(|q| q.0.clone())
        .or_else(|| node_allocatable.get(resource).cloned())
        .unwrap_or_else(|| "0".into());
    let divisor = r.divisor.as_ref().map(|q| q.0.as_str()).unwrap_or("1");
    let v = quantity::milli_value(&raw).ok_or_else(|| format!("invalid quantity {raw:?}"))?;
    let d = quantity::milli_value(divisor)
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("invalid divisor {divisor:?}"))?;
    Ok(((v + d - 1).div_euclid(d)).to_string())
}

/// Expands `$(NAME)` references to earlier variables; `$$(NAME)` escapes; unknown
/// references stay as written (Kubernetes' `expansion.Expand`).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(end) => {
                    let name = &r[..end];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = r;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// ServiceAccount tokens a node's kubelet holds, by (pod UID, account, audience,
/// expirationSeconds): each is used until 80 % of its lifetime has passed, as the kubelet's
/// token manager does, then requested anew.
pub type TokenCache = std::sync::Arc<parking_lot::Mutex<HashMap<TokenKey, CachedToken>>>;

/// What a projected token is requested for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub pod_uid: String,
    pub account: String,
    pub audience: Option<String>,
    pub expiration: i64,
}

/// A token and when to replace it.
#[derive(Clone, Debug)]
pub struct CachedToken {
    pub token: String,
    pub refresh_at: std::time::Instant,
    pub expires_at: std::time::Instant,
}

/// ConfigMaps and Secrets of one namespace, read once per use, and the tokens of projected
/// ServiceAccount volumes.
pub struct Sources<'a> {
    client: &'a Client,
    namespace: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
    tokens: Option<TokenCache>,
}

impl<'a> Sources<'a> {
    pub fn new(client: &'a Client, namespace: &'a str) -> Sources<'a> {
        Sources {
            client,
            namespace,
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
            tokens: None,
        }
    }

    /// Keeps projected tokens in `cache` between uses.
    pub fn with_tokens(mut self, cache: TokenCache) -> Sources<'a> {
        self.tokens = Some(cache);
        self
    }

    /// A token for the pod's ServiceAccount, bound to the pod (TokenRequest), from the cache
    /// while it is fresh.
    async fn service_account_token(
        &mut self,
        pod: &Pod,
        audience: Option<&str>,
        expiration: i64,
    ) -> Result<Vec<u8>, ConfigError> {
        use k8s_openapi::api::authentication::v1::{
            BoundObjectReference, TokenRequest, TokenRequestSpec,
        };
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = TokenKey {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            account: account.clone(),
            audience: audience.map(str::to_string),
            expiration,
        };
        let now = std::time::Instant::now();
        if let Some(cache) = &self.tokens {
            if let Some(t) = cache.lock().get(&key).filter(|t| now < t.refresh_at) {
                return Ok(t.token.clone().into_bytes());
            }
        }
        let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                expiration_seconds: Some(expiration),
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(&account, &Default::default(), &request)
            .await
            .map_err(|e| format!("requesting a token for serviceaccount {account:?}: {e}"))?;
        let token = answer
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!("the token request for serviceaccount {account:?} returned no token")
            })?;
        if let Some(cache) = &self.tokens {
            let life = std::time::Duration::from_secs(u64::try_from(expiration).unwrap_or(600));
            let mut c = cache.lock();
            c.retain(|_, t| t.expires_at > now);
            c.insert(
                key,
                CachedToken {
                    token: token.clone(),
                    refresh_at: now + life.mul_f64(0.8),
                    expires_at: now + life,
                },
            );
        }
        Ok(token.into_bytes())
    }

    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading configmap {name:?}: {e}"))?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
            let s = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading secret {name:?}: {e}"))?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }

    /// Every key of a ConfigMap as bytes (`data` and `binaryData`).
    async fn config_map_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
        Ok(self.config_map(name).await?.map(|cm| {
            let mut all: BTreeMap<String, Vec<u8>> = cm
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.clone().unwrap_or_default() {
                all.insert(k, v.0);
            }
            all
        }))
    }

    async fn secret_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
        Ok(self.secret(name).await?.map(|s| {
            let mut all: BTreeMap<String, Vec<u8>> = s
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.clone().unwrap_or_default() {
                all.insert(k, v.into_bytes());
            }
            all
        }))
    }
}

/// A C-identifier-like environment variable name (what `envFrom` keys must be to be used).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The container's environment: `envFrom` first, then `env` (which wins), with `$(VAR)`
/// references expanded.
pub async fn environment(
    sources: &mut Sources<'_>,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    host_ip: &str,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(cm) = &from.config_map_ref {
            (
                sources.config_map_data(&cm.name).await?,
                cm.optional.unwrap_or(false),
                format!("configmap {:?}", cm.name),
            )
        } else if let Some(s) = &from.secret_ref {
            (
                sources.secret_data(&s.name).await?,
                s.optional.unwrap_or(false),
                format!("secret {:?}", s.name),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    let key = format!("{prefix}{k}");
                    if valid_env_name(&key) {
                        env.insert(key, String::from_utf8_lossy(&v).into_owned());
                    }
                }
            }
            None if optional => {}
            None => return Err(format!("{what} not found")),
        }
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in c.env.iter().flatten()
    {
        let v = if let Some(from) = value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, f, pod_ip, host_ip)?)
            } else if let Some(r) = &from.resource_field_ref {
                Some(resource_value(pod, &c.name, r, node_allocatable)?)
            } else if let Some(k) = &from.config_map_key_ref {
                let data = sources.config_map_data(&k.name).await?;
                let v = data.as_ref().and_then(|d| d.get(&k.key));
                match v {
                    Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                    None if k.optional.unwrap_or(false) => None,
                    None if data.is_none() => {
                        return Err(format!("configmap {:?} not found", k.name))
                    }
                    None => {
                        return Err(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            k.key,
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            k.name
                        ))
                    }
                }
            } else if let Some(k) = &from.secret_key_ref {
                let data = sources.secret_data(&k.name).await?;
                let v = data.as_ref().and_then(|d| d.get(&k.key));
                match v {
                    Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                    None if k.optional.unwrap_or(false) => None,
                    None if data.is_none() => return Err(format!("secret {:?} not found", k.name)),
                    None => {
                        return Err(format!(
                            "couldn't find key {} in Secret {}/{}",
                            k.key,
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            k.name
                        ))
                    }
                }
            } else {
                None
            }
        } else {
            Some(expand(value.as_deref().unwrap_or_default(), &env))
        };
        if let Some(v) = v {
            env.insert(name.clone(), v);
        }
    }
    Ok(env)
}

/// A volume as prepared on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// A host directory or file to bind-mount.
    Host { path: PathBuf, read_only: bool },
    /// `emptyDir` with `medium: Memory`: a tmpfs in each container that mounts it.
    Tmpfs,
}

/// Mount points at or under `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Mounts a tmpfs on `dir` (once), `size` bytes at most if given.
fn mount_tmpfs(dir: &Path, size: Option<&str>) -> Result<(), String> {
    if mounts_under(dir).iter().any(|m| m == dir) {
        return Ok(());
    }
    let mut opts = "mode=0777".to_string();
    if let Some(bytes) = size.and_then(quantity::value) {
        opts.push_str(&format!(",size={bytes}"));
    }
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -t tmpfs {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Unmounts what the kubelet mounted under a pod's directory.
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        match std::process::Command::new("umount").arg(&m).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                tracing::warn!(mount = %m.display(), error = %String::from_utf8_lossy(&o.stderr).trim(), "umount")
            }
            Err(e) => tracing::warn!(mount = %m.display(), error = %e, "umount"),
        }
    }
}

/// Where the kubelet keeps a pod's volumes.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ConfigError {
    format!("{what} {}: {e}", path.display())
}

/// Writes `files` (relative path → content, mode) into `dir` so the directory holds
/// exactly them; each file is replaced atomically (write then rename), so a container that
/// mounts the directory sees either the old or the new content.
fn write_files(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    for (rel, (content, mode)) in files {
        if rel.split('/').any(|p| p == ".." || p.is_empty()) || rel.starts_with('/') {
            return Err(format!("invalid volume file path {rel:?}"));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
        }
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        let tmp = path.with_file_name(format!(
            ".tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        std::fs::write(&tmp, content).map_err(|e| io("writing", &tmp, e))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| io("chmod", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
    }
    // Keys that were removed from the source go away too (top level only).
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = files
                .keys()
                .any(|k| k == &name || k.starts_with(&format!("{name}/")));
            if !wanted {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    Ok(())
}

/// The files of a ConfigMap/Secret volume: every key, or just `items`.
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    what: &str,
    files: &mut BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<(), ConfigError> {
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                let v = data
                    .get(&it.key)
                    .ok_or_else(|| format!("{what}: no key {:?}", it.key))?;
                let m = it.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(mode);
                files.insert(it.path.clone(), (v.clone(), m));
            }
        }
        _ => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone(), mode));
            }
        }
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    pod_ip: &str,
    host_ip: &str,
    node_allocatable: &BTreeMap<String, String>,
    files: &mut BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<(), ConfigError> {
    let first = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    for it in items {
        let v = if let Some(f) = &it.field_ref {
            field_value(pod, f, pod_ip, host_ip)?
        } else if let Some(r) = &it.resource_field_ref {
            resource_value(pod, &first, r, node_allocatable)?
        } else {
            continue;
        };
        let m = it.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(mode);
        files.insert(it.path.clone(), (v.into_bytes(), m));
    }
    Ok(())
}

fn mode(m: Option<i32>) -> u32 {
    m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644)
}

/// Prepares (or refreshes) one volume under the pod's directory.
pub async fn prepare_volume(
    sources: &mut Sources<'_>,
    pod: &Pod,
    root: &Path,
    v: &Volume,
    pod_ip: &str,
    host_ip: &str,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<Prepared, ConfigError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let dir = pod_dir(root, uid).join("volumes").join(&v.name);
    let what = |kind: &str, name: &str| format!("{kind} {name:?} of volume {:?}", v.name);
    if let Some(e) = &v.empty_dir {
        if e.medium.as_deref() == Some("Memory") {
            // A tmpfs on the host, so every container of the pod shares it; where the
            // kubelet may not mount (not root), a tmpfs per container.
            std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
            let size = e.size_limit.as_ref().map(|q| q.0.as_str());
            return match mount_tmpfs(&dir, size) {
                Ok(()) => Ok(Prepared::Host {
                    path: dir,
                    read_only: false,
                }),
                Err(why) => {
                    tracing::warn!(volume = %v.name, error = %why, "a tmpfs per container instead");
                    Ok(Prepared::Tmpfs)
                }
            };
        }
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        return Ok(Prepared::Host {
            path: dir,
            read_only: false,
        });
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => {
                std::fs::create_dir_all(&path).map_err(|e| io("creating", &path, e))?
            }
            "FileOrCreate" if !path.exists() => {
                if let Some(p) = path.parent() {
                    std::fs::create_dir_all(p).map_err(|e| io("creating", p, e))?;
                }
                std::fs::write(&path, b"").map_err(|e| io("creating", &path, e))?;
            }
            "Directory" if !path.is_dir() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    h.path
                ))
            }
            "File" if !path.is_file() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a file",
                    h.path
                ))
            }
            "" | "Directory" | "File" | "FileOrCreate" => {}
            t if !path.exists() => {
                return Err(format!(
                    "hostPath type check failed: {} does not exist ({t})",
                    h.path
                ))
            }
            _ => {}
        }
        return Ok(Prepared::Host {
            path,
            read_only: false,
        });
    }
    let mut files = BTreeMap::new();
    if let Some(cm) = &v.config_map {
        match sources.config_map_data(&cm.name).await? {
            Some(d) => key_files(
                &d,
                cm.items.as_ref(),
                mode(cm.default_mode),
                &what("configmap", &cm.name),
                &mut files,
            )?,
            None if cm.optional.unwrap_or(false) => {}
            None => return Err(format!("configmap {:?} not found", cm.name)),
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        match sources.secret_data(&name).await? {
            Some(d) => key_files(
                &d,
                s.items.as_ref(),
                mode(s.default_mode),
                &what("secret", &name),
                &mut files,
            )?,
            None if s.optional.unwrap_or(false) => {}
            None => return Err(format!("secret {name:?} not found")),
        }
    } else if let Some(d) = &v.downward_api {
        downward_files(
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode(d.default_mode),
            pod_ip,
            host_ip,
            node_allocatable,
            &mut files,
        )?;
    } else if let Some(p) = &v.projected {
        let m = mode(p.default_mode);
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                match sources.config_map_data(&cm.name).await? {
                    Some(d) => key_files(
                        &d,
                        cm.items.as_ref(),
                        m,
                        &what("configmap", &cm.name),
                        &mut files,
                    )?,
                    None if cm.optional.unwrap_or(false) => {}
                    None => return Err(format!("configmap {:?} not found", cm.name)),
                }
            } else if let Some(s) = &src.secret {
                match sources.secret_data(&s.name).await? {
                    Some(d) => key_files(
                        &d,
                        s.items.as_ref(),
                        m,
                        &what("secret", &s.name),
                        &mut files,
                    )?,
                    None if s.optional.unwrap_or(false) => {}
                    None => return Err(format!("secret {:?} not found", s.name)),
                }
            } else if let Some(d) = &src.downward_api {
                downward_files(
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    m,
                    pod_ip,
                    host_ip,
                    node_allocatable,
                    &mut files,
                )?;
            } else if let Some(t) = &src.service_account_token {
                let token = sources
                    .service_account_token(
                        pod,
                        t.audience.as_deref().filter(|a| !a.is_empty()),
                        t.expiration_seconds.unwrap_or(3600),
                    )
                    .await?;
                files.insert(t.path.clone(), (token, m));
            } else {
                return Err(format!("volume {:?}: unsupported projection", v.name));
            }
        }
    } else {
        return Err(format!("volume {:?}: this volume type is not supported by keelson (emptyDir, hostPath, configMap, secret, downwardAPI and projected are)", v.name));
    }
    write_files(&dir, &files)?;
    Ok(Prepared::Host {
        path: dir,
        read_only: true,
    })
}

/// Everything about one container except its environment and volumes' host paths.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    init: bool,
    attempt: u32,
    env: BTreeMap<String, String>,
    volumes: &HashMap<String, Prepared>,
) -> Result<ContainerConfig, ConfigError> {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let res = c.resources.clone().unwrap_or_default();
    let limit = |r: &str| {
        res.limits
            .as_ref()
            .and_then(|l| l.get(r))
            .map(|q| q.0.clone())
    };
    let request = |r: &str| {
        res.requests
            .as_ref()
            .and_then(|l| l.get(r))
            .map(|q| q.0.clone())
    };
    let memory_limit = match limit("memory") {
        Some(q) => Some(quantity::value(&q).ok_or_else(|| format!("invalid memory limit {q:?}"))?),
        None => None,
    };
    let cpu = |q: Option<String>| -> Result<Option<i64>, ConfigError> {
        match q {
            Some(q) => quantity::milli_value(&q)
                .and_then(|m| i64::try_from(m).ok())
                .map(Some)
                .ok_or_else(|| format!("invalid cpu quantity {q:?}")),
            None => Ok(None),
        }
    };
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .get(&m.name)
            .ok_or_else(|| format!("volume mount {:?}: no volume of that name", m.name))?;
        let read_only = m.read_only.unwrap_or(false);
        match v {
            Prepared::Tmpfs => mounts.push(Mount {
                host_path: PathBuf::new(),
                container_path: m.mount_path.clone(),
                read_only,
                tmpfs: true,
            }),
            Prepared::Host {
                path,
                read_only: ro,
            } => {
                let mut host = path.clone();
                if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                        return Err(format!("invalid subPath {sub:?}"));
                    }
                    host = host.join(sub);
                    if !host.exists() && !ro {
                        std::fs::create_dir_all(&host).map_err(|e| io("creating", &host, e))?;
                    }
                }
                mounts.push(Mount {
                    host_path: host,
                    container_path: m.mount_path.clone(),
                    read_only: read_only || *ro,
                    tmpfs: false,
                });
            }
        }
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| expand(s, &env)).collect()
    };
    Ok(ContainerConfig {
        name: c.name.clone(),
        attempt,
        init,
        image: c.image.clone().unwrap_or_default(),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        mounts,
        memory_limit,
        cpu_limit_millis: cpu(limit("cpu"))?,
        cpu_request_millis: cpu(request("cpu"))?,
        run_as_user: sc.run_as_user.or(pod_sc.run_as_user),
        run_as_group: sc.run_as_group.or(pod_sc.run_as_group),
        read_only_root: sc.read_only_root_filesystem.unwrap_or(false),
        privileged: sc.privileged.unwrap_or(false),
        cap_add: caps.add.unwrap_or_default(),
        cap_drop: caps.drop.unwrap_or_default(),
        tty: c.tty.unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        env,
    })
}

/// The image pull policy of a container, defaulted as the apiserver does.
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let tag = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || (tag.contains(':') && !tag.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn expansion_as_kubernetes_does_it() {
        let env: BTreeMap<String, String> = [("A".to_string(), "x".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
        assert_eq!(expand("no refs", &env), "no refs");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn field_and_resource_references() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}}));
        let f = |path: &str| {
            field_value(
                &p,
                &ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                },
                "10.0.0.1",
                "127.0.0.1",
            )
        };
        assert_eq!(f("metadata.name").as_deref(), Ok("p"));
        assert_eq!(f("metadata.labels['app']").as_deref(), Ok("web"));
        assert_eq!(f("metadata.labels").as_deref(), Ok("app=\"web\""));
        assert_eq!(f("spec.nodeName").as_deref(), Ok("n1"));
        assert_eq!(f("status.podIP").as_deref(), Ok("10.0.0.1"));
        assert!(f("spec.nope").is_err());
        let r = |res: &str, div: Option<&str>| {
            resource_value(
                &p,
                "c",
                &ResourceFieldSelector {
                    resource: res.into(),
                    container_name: None,
                    divisor: div
                        .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
                },
                &[("memory".to_string(), "1Gi".to_string())].into(),
            )
        };
        assert_eq!(r("limits.memory", None).as_deref(), Ok("67108864"));
        assert_eq!(r("limits.memory", Some("1Mi")).as_deref(), Ok("64"));
        assert_eq!(
            r("limits.cpu", None).as_deref(),
            Ok("1"),
            "rounded up to a core"
        );
        assert_eq!(r("limits.cpu", Some("1m")).as_deref(), Ok("250"));
        assert_eq!(
            r("requests.memory", None).as_deref(),
            Ok("1073741824"),
            "the node's allocatable"
        );
    }

    #[test]
    fn container_config_from_the_spec() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"securityContext": {"runAsUser": 1000},
                "containers": [{"name": "c", "image": "img:1",
                "command": ["sh", "-c"], "args": ["echo $(GREETING)"],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}},
                "securityContext": {"runAsGroup": 2000, "readOnlyRootFilesystem": true,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "sub"},
                                 {"name": "mem", "mountPath": "/mem"}]}]}}));
        let c = p.spec.as_ref().expect("spec").containers[0].clone();
        let dir = std::env::temp_dir().join(format!("keelson-spec-test-{}", std::process::id()));
        let volumes: HashMap<String, Prepared> = [
            (
                "data".to_string(),
                Prepared::Host {
                    path: dir.clone(),
                    read_only: false,
                },
            ),
            ("mem".to_string(), Prepared::Tmpfs),
        ]
        .into();
        let env: BTreeMap<String, String> = [("GREETING".to_string(), "hi".to_string())].into();
        let cfg = container_config(&p, &c, false, 2, env, &volumes).expect("config");
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.args, ["echo hi"]);
        assert_eq!(cfg.memory_limit, Some(64 << 20));
        assert_eq!(cfg.cpu_limit_millis, Some(500));
        assert_eq!(cfg.cpu_request_millis, Some(100));
        assert_eq!(
            (cfg.run_as_user, cfg.run_as_group),
            (Some(1000), Some(2000))
        );
        assert!(cfg.read_only_root);
        assert_eq!(cfg.cap_add, ["NET_ADMIN"]);
        assert_eq!(cfg.mounts[0].host_path, dir.join("sub"));
        assert!(dir.join("sub").is_dir());
        assert!(cfg.mounts[1].tmpfs);
        assert_eq!(cfg.attempt, 2);
        let _ = std::fs::remove_dir_all(&dir);
        let mut bad = c.clone();
        bad.volume_mounts = Some(vec![serde_json::from_value(
            json!({"name": "nope", "mountPath": "/x"}),
        )
        .expect("mount")]);
        assert!(container_config(&p, &bad, false, 0, BTreeMap::new(), &volumes).is_err());
    }

    #[test]
    fn files_are_written_replaced_and_pruned() {
        let dir = std::env::temp_dir().join(format!("keelson-files-test-{}", std::process::id()));
        let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
        files.insert("a".into(), (b"1".to_vec(), 0o644));
        files.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        write_files(&dir, &files).expect("write");
        assert_eq!(std::fs::read(dir.join("sub/b")).expect("read"), b"2");
        files.remove("sub/b");
        files.insert("a".into(), (b"changed".to_vec(), 0o644));
        write_files(&dir, &files).expect("rewrite");
        assert_eq!(std::fs::read(dir.join("a")).expect("read"), b"changed");
        assert!(!dir.join("sub").exists());
        files.insert("../escape".into(), (Vec::new(), 0o644));
        assert!(write_files(&dir, &files).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pull_policy_defaults() {
        let c = |img: &str| -> Container {
            serde_json::from_value(json!({"name": "c", "image": img})).expect("c")
        };
        assert_eq!(pull_policy(&c("busybox")), "Always");
        assert_eq!(pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(pull_policy(&c("localhost:5000/busybox")), "Always");
        assert_eq!(pull_policy(&c("localhost/busybox:test")), "IfNotPresent");
        assert_eq!(pull_policy(&c("img@sha256:abc")), "IfNotPresent");
    }
}
