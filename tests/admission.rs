//! Admission plugins with kubectl 1.32.
//! - Pod Security: a namespace labelled `pod-security.kubernetes.io/enforce=restricted`
//!   refuses a plain pod with Kubernetes' message and admits one that follows the standard;
//!   `warn` admits with kubectl's `Warning:` line, for pods and for a Deployment's template.
//! - LimitRanger: a LimitRange's defaults fill a pod's containers, and its bounds refuse a
//!   pod over them.
//! - ResourceQuota: creates past `spec.hard` are refused with Kubernetes' messages, and
//!   `status.used` follows creates and deletes.

mod common;

use common::server::KeelsonServer;

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

const RESTRICTED_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: good
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#;

const HOST_NETWORK_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostnet
spec:
  replicas: 0
  selector: {matchLabels: {app: hostnet}}
  template:
    metadata: {labels: {app: hostnet}}
    spec:
      hostNetwork: true
      containers:
      - name: c
        image: busybox
"#;

#[test]
fn enforce_refuses_and_warn_warns_as_kubernetes_does() {
    let s = KeelsonServer::start(keelson(), &[]);
    s.kubectl_ok(&["create", "namespace", "strict"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "strict",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let plain = s.kubectl(&["run", "plain", "--image=busybox", "-n", "strict"]);
    assert!(
        !plain.ok,
        "a plain pod in a restricted namespace: {}",
        plain.stdout
    );
    assert!(
        plain.stderr.contains(
            "pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"plain\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"plain\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"plain\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"plain\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        plain.stderr
    );
    let f = s.file("good.yaml", RESTRICTED_POD);
    s.kubectl_ok(&["apply", "-n", "strict", "-f", &f]);
    assert_eq!(
        s.kubectl_ok(&["get", "pod", "good", "-n", "strict", "-o", "name"])
            .trim(),
        "pod/good"
    );

    s.kubectl_ok(&["create", "namespace", "watched"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/warn=baseline",
        "pod-security.kubernetes.io/warn-version=v1.32",
    ]);
    let f = s.file("hostnet.yaml", HOST_NETWORK_DEPLOYMENT);
    let out = s.kubectl(&["apply", "-n", "watched", "-f", &f]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "Warning: would violate PodSecurity \"baseline:v1.32\": host namespaces (hostNetwork=true)"
        ),
        "a workload's template is warned about: {}",
        out.stderr
    );
    // Enforcing baseline does not refuse a workload, only its pods.
    s.kubectl_ok(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let pod = s.kubectl(&[
        "run",
        "hostpod",
        "--image=busybox",
        "-n",
        "watched",
        "--overrides={\"spec\":{\"hostNetwork\":true}}",
    ]);
    assert!(
        !pod.ok
            && pod.stderr.contains(
                "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
            ),
        "{}",
        pod.stderr
    );
    // Namespaces without the labels are unaffected.
    s.kubectl_ok(&[
        "run",
        "free",
        "--image=busybox",
        "--overrides={\"spec\":{\"hostNetwork\":true}}",
    ]);
}

const LIMITS: &str = r#"apiVersion: v1
kind: LimitRange
metadata:
  name: bounds
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 128Mi}
    defaultRequest: {cpu: 100m}
    max: {cpu: "1"}
"#;

#[test]
fn limit_ranges_default_and_bound_container_resources() {
    let s = KeelsonServer::start(keelson(), &[]);
    s.kubectl_ok(&["create", "namespace", "bounded"]);
    let f = s.file("limits.yaml", LIMITS);
    s.kubectl_ok(&["apply", "-n", "bounded", "-f", &f]);
    s.kubectl_ok(&["run", "small", "--image=busybox", "-n", "bounded"]);
    let res = s.kubectl_ok(&[
        "get",
        "pod",
        "small",
        "-n",
        "bounded",
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ]);
    let res: serde_json::Value = serde_json::from_str(&res).expect("resources JSON");
    assert_eq!(
        res,
        serde_json::json!({"limits": {"cpu": "500m", "memory": "128Mi"},
                           "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    let note = s.kubectl_ok(&[
        "get",
        "pod",
        "small",
        "-n",
        "bounded",
        "-o",
        "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}",
    ]);
    assert_eq!(
        note,
        "LimitRanger plugin set: cpu, memory request for container small; cpu, memory limit for container small"
    );
    let big = s.kubectl(&[
        "run",
        "big",
        "--image=busybox",
        "-n",
        "bounded",
        "--overrides={\"spec\":{\"containers\":[{\"name\":\"big\",\"image\":\"busybox\",\"resources\":{\"limits\":{\"cpu\":\"2\"}}}]}}",
    ]);
    assert!(
        !big.ok
            && big.stderr.contains(
                "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
            ),
        "{}",
        big.stderr
    );
}

const QUOTA: &str = r#"apiVersion: v1
kind: ResourceQuota
metadata:
  name: q
spec:
  hard:
    pods: "2"
    requests.cpu: "1"
    secrets: "1"
"#;

fn pod_with_cpu(name: &str, cpu: Option<&str>) -> String {
    let resources = match cpu {
        Some(c) => format!(",\"resources\":{{\"requests\":{{\"cpu\":\"{c}\"}}}}"),
        None => String::new(),
    };
    format!(
        "--overrides={{\"spec\":{{\"containers\":[{{\"name\":\"{name}\",\"image\":\"busybox\"{resources}}}]}}}}"
    )
}

#[test]
fn resource_quotas_refuse_what_exceeds_them_and_track_usage() {
    let s = KeelsonServer::start(keelson(), &[]);
    s.kubectl_ok(&["create", "namespace", "quota"]);
    let f = s.file("quota.yaml", QUOTA);
    s.kubectl_ok(&["apply", "-n", "quota", "-f", &f]);
    let used = |field: &str| {
        s.kubectl_ok(&[
            "get",
            "resourcequota",
            "q",
            "-n",
            "quota",
            "-o",
            &format!("jsonpath={{.status.used.{field}}}"),
        ])
    };
    common::wait_until(
        std::time::Duration::from_secs(20),
        "the quota's status",
        || used("pods") == "0",
    );
    let a = pod_with_cpu("a", Some("500m"));
    s.kubectl_ok(&["run", "a", "--image=busybox", "-n", "quota", &a]);
    let b = pod_with_cpu("b", Some("600m"));
    let out = s.kubectl(&["run", "b", "--image=busybox", "-n", "quota", &b]);
    assert!(
        !out.ok
            && out.stderr.contains(
                "pods \"b\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
            ),
        "{}",
        out.stderr
    );
    let none = pod_with_cpu("c", None);
    let out = s.kubectl(&["run", "c", "--image=busybox", "-n", "quota", &none]);
    assert!(
        !out.ok
            && out.stderr.contains(
                "pods \"c\" is forbidden: failed quota: q: must specify requests.cpu for: c"
            ),
        "{}",
        out.stderr
    );
    common::wait_until(
        std::time::Duration::from_secs(20),
        "usage counts pod a",
        || used("pods") == "1" && used("requests\\.cpu") == "500m",
    );
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "quota",
        "--from-literal=a=b",
    ]);
    let out = s.kubectl(&[
        "create",
        "secret",
        "generic",
        "s2",
        "-n",
        "quota",
        "--from-literal=a=b",
    ]);
    assert!(
        !out.ok
            && out.stderr.contains(
                "secrets \"s2\" is forbidden: exceeded quota: q, requested: secrets=1, used: secrets=1, limited: secrets=1"
            ),
        "{}",
        out.stderr
    );
    s.kubectl_ok(&[
        "delete",
        "pod",
        "a",
        "-n",
        "quota",
        "--grace-period=0",
        "--force",
    ]);
    common::wait_until(
        std::time::Duration::from_secs(20),
        "usage drops with the pod",
        || used("pods") == "0",
    );
    // Freed: another pod fits again.
    let d = pod_with_cpu("d", Some("900m"));
    s.kubectl_ok(&["run", "d", "--image=busybox", "-n", "quota", &d]);
}
