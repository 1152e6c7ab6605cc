//! Pod Security admission with kubectl 1.32: a namespace labelled
//! `pod-security.kubernetes.io/enforce=restricted` refuses a plain pod with Kubernetes'
//! message and admits one that follows the standard; `warn` admits with kubectl's
//! `Warning:` line, for pods and for a Deployment's pod template.

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
