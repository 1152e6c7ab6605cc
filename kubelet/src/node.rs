//! Node registration, Lease heartbeats and node status.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::error::{KubeletError, Result};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's lease renewal interval and duration.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Node status is written at least this often even when nothing changed.
pub const STATUS_REPORT: Duration = Duration::from_secs(300);
const FIELD_MANAGER: &str = "keelson-kubelet";

/// What a node reports about itself.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`.
    pub taints: Vec<Value>,
    pub capacity: BTreeMap<String, String>,
    pub address: String,
    pub runtime_version: String,
    /// The port of the kubelet's HTTPS endpoint (logs), if it serves one.
    pub kubelet_port: Option<u16>,
}

/// Parses `--node-labels` (`k=v,k2=v2`).
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| KubeletError::InvalidFlag {
                flag: "--node-labels",
                message: format!("{item:?} is not key=value"),
            })?;
        if k.is_empty() {
            return Err(KubeletError::InvalidFlag {
                flag: "--node-labels",
                message: format!("{item:?} has an empty key"),
            });
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Parses `--register-with-taints` (`key[=value]:Effect,...`).
pub fn parse_taints(s: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |m: &str| KubeletError::InvalidFlag {
            flag: "--register-with-taints",
            message: format!("{item:?}: {m}"),
        };
        let (kv, effect) = item
            .rsplit_once(':')
            .ok_or_else(|| bad("expected key[=value]:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(bad(
                "effect must be NoSchedule, PreferNoSchedule or NoExecute",
            ));
        }
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        let mut t = json!({"key": key, "effect": effect});
        if !value.is_empty() {
            t["value"] = json!(value);
        }
        out.push(t);
    }
    Ok(out)
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The size of the file system Podman keeps images and containers on (the node's
/// ephemeral-storage capacity), from `GET /info`.
pub async fn podman_storage_bytes(client: &crate::podman::PodmanClient) -> Option<u64> {
    let info: Value = client.json(http::Method::GET, "/info", None).await.ok()?;
    info["store"]["graphRootAllocated"].as_u64()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

/// The node's resource pressure, by the kubelet's default eviction thresholds:
/// memory.available < 100Mi, nodefs.available < 10%, and PIDs (in use > 90% of pid_max).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Memory available below this is memory pressure.
const MEMORY_AVAILABLE_MIN: u64 = 100 << 20;

/// The host's pressure now; `disk` is (used, total) bytes of the containers' file system.
pub fn observe(disk: Option<(u64, u64)>) -> Pressure {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let pids = std::fs::read_dir("/proc").map(|d| {
        d.flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count() as u64
    });
    Pressure {
        memory: available.is_some_and(|a| a < MEMORY_AVAILABLE_MIN),
        disk: disk
            .is_some_and(|(used, total)| total > 0 && (total.saturating_sub(used)) * 10 < total),
        pid: matches!((pids, pid_max), (Ok(n), Some(max)) if max > 0 && n * 10 > max * 9),
    }
}

/// When each condition last changed status (lastTransitionTime).
pub type Transitions = std::collections::HashMap<&'static str, (bool, Timestamp)>;

/// The node's status: capacity, conditions, addresses, nodeInfo.
pub fn node_status(
    spec: &NodeSpec,
    pressure: Pressure,
    transitions: &mut Transitions,
    now: Timestamp,
) -> Value {
    let t = now.to_string();
    let mut cond = |ty: &'static str, status: bool, reason: (&str, &str), message: (&str, &str)| {
        let since = match transitions.get(ty) {
            Some((s, at)) if *s == status => *at,
            _ => {
                transitions.insert(ty, (status, now));
                now
            }
        };
        let (reason, message) = if status {
            (reason.0, message.0)
        } else {
            (reason.1, message.1)
        };
        json!({"type": ty, "status": if status { "True" } else { "False" }, "reason": reason,
               "message": message, "lastHeartbeatTime": t, "lastTransitionTime": since.to_string()})
    };
    let conditions = vec![
        cond(
            "MemoryPressure",
            pressure.memory,
            ("KubeletHasInsufficientMemory", "KubeletHasSufficientMemory"),
            (
                "kubelet has insufficient memory available",
                "kubelet has sufficient memory available",
            ),
        ),
        cond(
            "DiskPressure",
            pressure.disk,
            ("KubeletHasDiskPressure", "KubeletHasNoDiskPressure"),
            ("kubelet has disk pressure", "kubelet has no disk pressure"),
        ),
        cond(
            "PIDPressure",
            pressure.pid,
            ("KubeletHasInsufficientPID", "KubeletHasSufficientPID"),
            (
                "kubelet has insufficient PID available",
                "kubelet has sufficient PID available",
            ),
        ),
        cond(
            "Ready",
            true,
            ("KubeletReady", "KubeletNotReady"),
            ("kubelet is posting ready status", ""),
        ),
    ];
    json!({
        "capacity": spec.capacity,
        "allocatable": spec.capacity,
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.kubelet_port.unwrap_or(0)}},
        "addresses": [{"type": "InternalIP", "address": spec.address},
                      {"type": "Hostname", "address": spec.name}],
        "nodeInfo": {
            "kubeletVersion": concat!("v1.32.0-keelson-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "containerRuntimeVersion": spec.runtime_version,
            "operatingSystem": std::env::consts::OS,
            "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
            "kernelVersion": kernel_version(),
            "osImage": os_image(), "machineID": "", "systemUUID": "", "bootID": "",
        },
    })
}

/// Creates the Node (or takes over the existing one) and writes its status.
pub async fn register(
    client: &Client,
    spec: &NodeSpec,
    pressure: Pressure,
    transitions: &mut Transitions,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = spec.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), spec.name.clone());
    labels.insert("kubernetes.io/os".into(), std::env::consts::OS.into());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": spec.taints},
    }))
    .map_err(|e| KubeletError::Runtime(format!("building the node object: {e}")))?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        // Registered before (a restart): keep what is there, refresh labels.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            api.patch(&spec.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| KubeletError::api(format!("updating node {}", spec.name), e))?;
        }
        Err(e) => {
            return Err(KubeletError::api(
                format!("registering node {}", spec.name),
                e,
            ))
        }
    }
    report_status(client, spec, pressure, transitions).await
}

/// Writes the node's status now.
pub async fn report_status(
    client: &Client,
    spec: &NodeSpec,
    pressure: Pressure,
    transitions: &mut Transitions,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let status = json!({"status": node_status(spec, pressure, transitions, Timestamp::now())});
    api.patch_status(
        &spec.name,
        &PatchParams::default(),
        &Patch::Strategic(&status),
    )
    .await
    .map_err(|e| KubeletError::api(format!("node {} status", spec.name), e))?;
    Ok(())
}

/// Renews the node's Lease (creating it the first time).
pub async fn renew_lease(client: &Client, node: &str, node_uid: Option<&str>) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": MicroTime(Timestamp::now())},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
    }
    api.patch(
        node,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&lease),
    )
    .await
    .map_err(|e| KubeletError::api(format!("renewing the lease of {node}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_and_taints_flags() {
        let l = parse_labels("a=1, b=two,c=").expect("labels");
        assert_eq!(l["a"], "1");
        assert_eq!(l["b"], "two");
        assert_eq!(l["c"], "");
        assert!(parse_labels("novalue").is_err());
        assert!(parse_labels("=x").is_err());
        assert!(parse_labels("").expect("empty").is_empty());

        let t = parse_taints("dedicated=db:NoSchedule,gpu:NoExecute").expect("taints");
        assert_eq!(
            t[0],
            json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})
        );
        assert_eq!(t[1], json!({"key": "gpu", "effect": "NoExecute"}));
        let e = parse_taints("a=b:Sometimes")
            .expect_err("bad effect")
            .to_string();
        assert!(e.contains("--register-with-taints"), "{e}");
        assert!(parse_taints("a=b").is_err());
    }

    #[test]
    fn node_status_reports_capacity_conditions_and_runtime() {
        let spec = NodeSpec {
            name: "n1".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            capacity: [
                ("cpu".to_string(), "4".to_string()),
                ("pods".to_string(), "110".to_string()),
            ]
            .into(),
            address: "127.0.0.1".into(),
            runtime_version: "fake://0.1.0".into(),
            kubelet_port: Some(10250),
        };
        let mut transitions = Transitions::new();
        let st = node_status(
            &spec,
            Pressure::default(),
            &mut transitions,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["allocatable"]["pods"], "110");
        assert_eq!(st["nodeInfo"]["containerRuntimeVersion"], "fake://0.1.0");
        let ready = st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        assert_eq!(st["addresses"][0]["address"], "127.0.0.1");
        assert_eq!(st["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        // Pressure turns a condition True; unchanged conditions keep their transition time.
        let later = Timestamp::from_second(60).expect("time");
        let pressed = Pressure {
            disk: true,
            ..Pressure::default()
        };
        let st = node_status(&spec, pressed, &mut transitions, later);
        let by = |ty: &str| {
            st["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == ty))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(by("DiskPressure")["status"], "True");
        assert_eq!(by("DiskPressure")["reason"], "KubeletHasDiskPressure");
        assert_eq!(by("DiskPressure")["lastTransitionTime"], later.to_string());
        assert_eq!(
            by("MemoryPressure")["lastTransitionTime"],
            Timestamp::UNIX_EPOCH.to_string()
        );
        assert_eq!(by("MemoryPressure")["lastHeartbeatTime"], later.to_string());
        assert!(observe(Some((95, 100))).disk);
        assert!(!observe(Some((50, 100))).disk);
    }
}
