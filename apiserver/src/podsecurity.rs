//! Pod Security admission: the Pod Security Standards (`baseline`, `restricted`) that a
//! namespace's `pod-security.kubernetes.io/<mode>` labels ask for. `enforce` refuses a pod
//! that violates its level (403, Kubernetes' message); `warn` lets it in with a warning, and
//! also warns for the pod templates of workload objects (as Kubernetes does; they are never
//! refused). `audit` is accepted and has no effect here (keelson's audit log has no
//! annotations). Every `-version` label is read as `latest`'s checks.

use serde_json::{Map, Value};

/// The standards' levels, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// What a namespace's labels ask for in one mode (`enforce`, `warn`): the level and how to
/// name it (`restricted:latest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub label: String,
}

/// The policy of `mode` in a namespace with `labels`. An unknown level is read as
/// `restricted`, failing closed, as Kubernetes does.
pub fn policy(labels: Option<&Map<String, Value>>, mode: &str) -> Option<Policy> {
    let labels = labels?;
    let level = labels
        .get(&format!("pod-security.kubernetes.io/{mode}"))?
        .as_str()?;
    let level = Level::parse(level).unwrap_or(Level::Restricted);
    if level == Level::Privileged {
        return None;
    }
    let version = labels
        .get(&format!("pod-security.kubernetes.io/{mode}-version"))
        .and_then(Value::as_str)
        .unwrap_or("latest");
    Some(Policy {
        level,
        label: format!("{}:{version}", level.name()),
    })
}

/// The pod spec's violations of `level`, each as Kubernetes words it (`privileged (container
/// "c" must not set securityContext.privileged=true)`).
pub fn check(level: Level, pod_meta: Option<&Value>, spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec[*f].as_array())
        .flatten()
        .collect();
    let name = |c: &Value| c["name"].as_str().unwrap_or("").to_string();
    let psc = &spec["securityContext"];
    let sc = |c: &'_ Value| c["securityContext"].clone();
    let which = |names: &[String]| -> String {
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        format!(
            "{} {}",
            if names.len() == 1 {
                "container"
            } else {
                "containers"
            },
            quoted.join(", ")
        )
    };
    let containers_where = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
        containers
            .iter()
            .filter(|c| f(c))
            .map(|c| name(c))
            .collect()
    };

    // --- baseline
    let host_ns: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| spec[**f].as_bool() == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    if !host_ns.is_empty() {
        out.push(format!("host namespaces ({})", host_ns.join(", ")));
    }
    let privileged = containers_where(&|c| sc(c)["privileged"].as_bool() == Some(true));
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            which(&privileged)
        ));
    }
    const BASELINE_CAPS: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let mut added: Vec<String> = Vec::new();
    let mut adders: Vec<String> = Vec::new();
    for c in &containers {
        let bad: Vec<String> = sc(c)["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPS.contains(cap))
            .map(str::to_string)
            .collect();
        if !bad.is_empty() {
            adders.push(name(c));
            for b in bad {
                if !added.contains(&b) {
                    added.push(b);
                }
            }
        }
    }
    if !adders.is_empty() {
        let caps: Vec<String> = added.iter().map(|c| format!("{c:?}")).collect();
        out.push(format!(
            "non-default capabilities ({} must not include {} in securityContext.capabilities.add)",
            which(&adders),
            caps.join(", ")
        ));
    }
    let volumes: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    let host_path: Vec<String> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| format!("{:?}", v["name"].as_str().unwrap_or("")))
        .collect();
    if !host_path.is_empty() {
        out.push(format!(
            "hostPath {} ({})",
            if host_path.len() == 1 {
                "volume"
            } else {
                "volumes"
            },
            host_path.join(", ")
        ));
    }
    let mut ports: Vec<String> = Vec::new();
    let mut port_users: Vec<String> = Vec::new();
    for c in &containers {
        let hp: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !hp.is_empty() {
            port_users.push(name(c));
            ports.extend(hp);
        }
    }
    if !port_users.is_empty() {
        out.push(format!(
            "hostPort ({} uses {} {})",
            which(&port_users),
            if ports.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            },
            ports.join(", ")
        ));
    }
    let proc_mount =
        containers_where(&|c| sc(c)["procMount"].as_str().is_some_and(|m| m != "Default"));
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount)",
            which(&proc_mount)
        ));
    }
    // Baseline forbids only Unconfined (restricted below asks for more, in its own words).
    let unconfined = |v: &Value| v["seccompProfile"]["type"].as_str() == Some("Unconfined");
    let mut parts = Vec::new();
    if unconfined(psc) {
        parts.push(
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_string(),
        );
    }
    let c_unconfined = containers_where(&|c| unconfined(&sc(c)));
    if !c_unconfined.is_empty() {
        parts.push(format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            which(&c_unconfined)
        ));
    }
    if !parts.is_empty() && level == Level::Baseline {
        out.push(format!("seccompProfile ({})", parts.join("; ")));
    }
    const SAFE_SYSCTLS: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];
    let sysctls: Vec<String> = psc["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(|n| format!("{n:?}"))
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    let apparmor = pod_meta
        .and_then(|m| m["annotations"].as_object())
        .map(|a| {
            a.iter()
                .filter(|(k, v)| {
                    k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                        && v.as_str()
                            .is_some_and(|v| v != "runtime/default" && !v.starts_with("localhost/"))
                })
                .count()
        })
        .unwrap_or(0);
    let apparmor_fields = containers
        .iter()
        .map(|c| sc(c))
        .chain(std::iter::once(psc.clone()))
        .filter(|s| s["appArmorProfile"]["type"].as_str() == Some("Unconfined"))
        .count();
    if apparmor + apparmor_fields > 0 {
        out.push("appArmorProfile (must not be \"Unconfined\")".to_string());
    }
    let selinux_bad = |s: &Value| {
        let o = &s["seLinuxOptions"];
        o["user"].is_string()
            || o["role"].is_string()
            || o["type"].as_str().is_some_and(|t| {
                ![
                    "",
                    "container_t",
                    "container_init_t",
                    "container_kvm_t",
                    "container_engine_t",
                ]
                .contains(&t)
            })
    };
    if selinux_bad(psc) || containers.iter().any(|c| selinux_bad(&sc(c))) {
        out.push(
            "seLinuxOptions (must not set user or role, or a type outside the container types)"
                .to_string(),
        );
    }
    let host_process = |s: &Value| s["windowsOptions"]["hostProcess"].as_bool() == Some(true);
    if host_process(psc) || containers.iter().any(|c| host_process(&sc(c))) {
        out.push(
            "hostProcess (must not set securityContext.windowsOptions.hostProcess=true)"
                .to_string(),
        );
    }
    if level == Level::Baseline {
        return out;
    }

    // --- restricted
    const ALLOWED_VOLUMES: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let mut restricted_vols = Vec::new();
    for v in &volumes {
        if let Some(kind) = v.as_object().and_then(|o| {
            o.keys()
                .find(|k| *k != "name" && !ALLOWED_VOLUMES.contains(&k.as_str()))
        }) {
            restricted_vols.push(format!(
                "{:?} uses restricted volume type {kind:?}",
                v["name"].as_str().unwrap_or("")
            ));
        }
    }
    if !restricted_vols.is_empty() {
        out.push(format!(
            "restricted volume types ({} {})",
            if restricted_vols.len() == 1 {
                "volume"
            } else {
                "volumes"
            },
            restricted_vols.join(", ")
        ));
    }
    let escalation =
        containers_where(&|c| sc(c)["allowPrivilegeEscalation"].as_bool() != Some(false));
    if !escalation.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            which(&escalation)
        ));
    }
    let mut no_drop = Vec::new();
    let mut bad_add = Vec::new();
    let mut bad_caps: Vec<String> = Vec::new();
    for c in &containers {
        let caps = &sc(c)["capabilities"];
        let drops_all = caps["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")));
        if !drops_all {
            no_drop.push(name(c));
        }
        let adds: Vec<String> = caps["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|a| *a != "NET_BIND_SERVICE")
            .map(str::to_string)
            .collect();
        if !adds.is_empty() {
            bad_add.push(name(c));
            for a in adds {
                if !bad_caps.contains(&a) {
                    bad_caps.push(a);
                }
            }
        }
    }
    if !no_drop.is_empty() || !bad_add.is_empty() {
        let mut parts = Vec::new();
        if !no_drop.is_empty() {
            parts.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                which(&no_drop)
            ));
        }
        if !bad_add.is_empty() {
            let caps: Vec<String> = bad_caps.iter().map(|c| format!("{c:?}")).collect();
            parts.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                which(&bad_add),
                caps.join(", ")
            ));
        }
        out.push(format!("unrestricted capabilities ({})", parts.join("; ")));
    }
    // runAsNonRoot: true on the pod or on every container, and false nowhere.
    let mut parts = Vec::new();
    let pod_non_root = psc["runAsNonRoot"].as_bool();
    if pod_non_root == Some(false) {
        parts.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    let explicit = containers_where(&|c| sc(c)["runAsNonRoot"].as_bool() == Some(false));
    if !explicit.is_empty() {
        parts.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            which(&explicit)
        ));
    }
    if pod_non_root != Some(true) {
        let unset = containers_where(&|c| sc(c)["runAsNonRoot"].is_null());
        if !unset.is_empty() {
            parts.push(format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                which(&unset)
            ));
        }
    }
    if !parts.is_empty() {
        out.push(format!("runAsNonRoot != true ({})", parts.join("; ")));
    }
    let mut parts = Vec::new();
    if psc["runAsUser"].as_i64() == Some(0) {
        parts.push("pod must not set runAsUser=0".to_string());
    }
    let root = containers_where(&|c| sc(c)["runAsUser"].as_i64() == Some(0));
    if !root.is_empty() {
        parts.push(format!("{} must not set runAsUser=0", which(&root)));
    }
    if !parts.is_empty() {
        out.push(format!("runAsUser=0 ({})", parts.join("; ")));
    }
    // seccompProfile: RuntimeDefault or Localhost on the pod or on every container.
    let mut parts = Vec::new();
    let kind = |s: &Value| s["seccompProfile"]["type"].as_str().map(str::to_string);
    let good = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let pod_kind = kind(psc);
    if let Some(t) = pod_kind.as_deref().filter(|t| !good(t)) {
        parts.push(format!(
            "pod must not set securityContext.seccompProfile.type to {t:?}"
        ));
    }
    let mut bad_types: Vec<String> = Vec::new();
    let bad = containers_where(&|c| kind(&sc(c)).is_some_and(|t| !good(&t)));
    for c in &containers {
        if let Some(t) = kind(&sc(c)).filter(|t| !good(t)) {
            if !bad_types.contains(&t) {
                bad_types.push(t);
            }
        }
    }
    if !bad.is_empty() {
        let types: Vec<String> = bad_types.iter().map(|t| format!("{t:?}")).collect();
        parts.push(format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            which(&bad),
            types.join(", ")
        ));
    }
    if !pod_kind.as_deref().is_some_and(good) {
        let unset = containers_where(&|c| kind(&sc(c)).is_none());
        if !unset.is_empty() {
            parts.push(format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                which(&unset)
            ));
        }
    }
    if !parts.is_empty() {
        out.push(format!("seccompProfile ({})", parts.join("; ")));
    }
    out
}

/// The pod template of a workload object (`spec.template`, a CronJob's
/// `spec.jobTemplate.spec.template`): its metadata and spec.
pub fn template_of<'a>(
    group: &str,
    plural: &str,
    obj: &'a Value,
) -> Option<(&'a Value, &'a Value)> {
    let t = match (group, plural) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs")
        | ("", "replicationcontrollers")
        | ("", "podtemplates") => {
            if plural == "podtemplates" {
                &obj["template"]
            } else {
                &obj["spec"]["template"]
            }
        }
        ("batch", "cronjobs") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    t.get("spec").map(|s| (&t["metadata"], s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn namespace_labels_pick_the_policy() {
        let l = labels(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
        assert_eq!(
            policy(Some(&l), "enforce"),
            Some(Policy {
                level: Level::Baseline,
                label: "baseline:latest".into()
            })
        );
        assert_eq!(policy(Some(&l), "warn"), None);
        let l = labels(json!({"pod-security.kubernetes.io/warn": "privileged"}));
        assert_eq!(policy(Some(&l), "warn"), None);
        let l = labels(json!({"pod-security.kubernetes.io/enforce": "bogus",
            "pod-security.kubernetes.io/enforce-version": "v1.32"}));
        assert_eq!(
            policy(Some(&l), "enforce").map(|p| p.label),
            Some("restricted:v1.32".to_string()),
            "an unknown level fails closed"
        );
    }

    #[test]
    fn a_plain_pod_passes_baseline_and_fails_restricted_with_kubernetes_words() {
        let spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        assert!(check(Level::Baseline, None, &spec).is_empty());
        assert_eq!(
            check(Level::Restricted, None, &spec),
            vec![
                "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)",
                "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])",
                "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true)",
                "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            ]
        );
        let good = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "v", "emptyDir": {}}]
        });
        assert!(
            check(Level::Restricted, None, &good).is_empty(),
            "{:?}",
            check(Level::Restricted, None, &good)
        );
    }

    #[test]
    fn baseline_violations() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "securityContext": {"privileged": true}}
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]
        });
        assert_eq!(
            check(Level::Baseline, None, &spec),
            vec![
                "host namespaces (hostNetwork=true, hostPID=true)",
                "privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)",
                "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volume (\"root\")",
                "hostPort (container \"a\" uses hostPort 8080)",
            ]
        );
    }

    #[test]
    fn workload_templates_are_found() {
        let d = json!({"spec": {"template": {"metadata": {}, "spec": {"containers": []}}}});
        assert!(template_of("apps", "deployments", &d).is_some());
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}});
        assert!(template_of("batch", "cronjobs", &cj).is_some());
        assert!(template_of("", "configmaps", &d).is_none());
    }
}
