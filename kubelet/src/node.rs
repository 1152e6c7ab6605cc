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

/// The node's status: capacity, conditions, addresses, nodeInfo.
pub fn node_status(spec: &NodeSpec, now: Timestamp) -> Value {
    let t = now.to_string();
    let cond = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({
        "capacity": spec.capacity,
        "allocatable": spec.capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": spec.address},
                      {"type": "Hostname", "address": spec.name}],
        "nodeInfo": {
            "kubeletVersion": concat!("v1.32.0-keelson-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "containerRuntimeVersion": spec.runtime_version,
            "operatingSystem": std::env::consts::OS,
            "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
            "kernelVersion": kernel_version(),
            "osImage": "", "machineID": "", "systemUUID": "", "bootID": "",
        },
    })
}

/// Creates the Node (or takes over the existing one) and writes its status.
pub async fn register(client: &Client, spec: &NodeSpec) -> Result<()> {
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
    report_status(client, spec).await
}

/// Writes the node's status now.
pub async fn report_status(client: &Client, spec: &NodeSpec) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let status = json!({"status": node_status(spec, Timestamp::now())});
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
        };
        let st = node_status(&spec, Timestamp::UNIX_EPOCH);
        assert_eq!(st["allocatable"]["pods"], "110");
        assert_eq!(st["nodeInfo"]["containerRuntimeVersion"], "fake://0.1.0");
        let ready = st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        assert_eq!(st["addresses"][0]["address"], "127.0.0.1");
    }
}
