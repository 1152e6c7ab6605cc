//! The audit log of `keelson server --audit-policy-file … --audit-log-path …`, as kubectl's
//! requests leave it: Kubernetes' audit Events, one JSON object per line, at the levels the
//! policy sets.

mod common;

use std::time::Duration;

use common::server::KeelsonServer;
use common::wait_for;
use serde_json::Value;

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

const POLICY: &str = "
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: [system:kube-scheduler]
- level: None
  userGroups: [system:nodes]
- level: RequestResponse
  resources: [{group: '', resources: [configmaps]}]
  verbs: [create]
- level: Metadata
  resources: [{group: '', resources: [secrets]}]
- level: Metadata
  omitStages: [RequestReceived]
";

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON event"))
        .collect()
}

#[test]
fn kubectl_requests_are_audited_at_the_levels_the_policy_sets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let log = dir.path().join("audit/audit.log");
    let s = KeelsonServer::start(
        keelson(),
        &[
            "--audit-policy-file",
            &policy.display().to_string(),
            "--audit-log-path",
            &log.display().to_string(),
        ],
    );
    s.kubectl_ok(&["create", "configmap", "audited", "--from-literal=k=v"]);
    s.kubectl_ok(&["get", "pods"]);
    let denied = s.kubectl(&["get", "secrets", "--as", "alice"]);
    assert!(!denied.ok);

    let created = wait_for(
        Duration::from_secs(10),
        "the create's ResponseComplete",
        || {
            events(&log).into_iter().find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["resource"] == "configmaps"
                    && e["requestObject"]["metadata"]["name"] == "audited"
                    && e["stage"] == "ResponseComplete"
            })
        },
    );
    assert_eq!(created["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(created["kind"], "Event");
    assert_eq!(created["level"], "RequestResponse");
    assert_eq!(created["user"]["username"], "kubernetes-admin");
    assert_eq!(created["objectRef"]["namespace"], "default");
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(created["requestObject"]["data"]["k"], "v", "{created}");
    assert_eq!(created["responseObject"]["metadata"]["name"], "audited");
    assert_eq!(created["sourceIPs"][0], "127.0.0.1");
    assert!(created["userAgent"]
        .as_str()
        .is_some_and(|a| a.starts_with("kubectl")));
    let id = created["auditID"].as_str().expect("auditID");
    let all = events(&log);
    assert!(
        all.iter()
            .any(|e| e["auditID"] == id && e["stage"] == "RequestReceived"),
        "RequestReceived of the create"
    );
    // Metadata: no bodies, and RequestReceived omitted by the rule.
    let list = all
        .iter()
        .find(|e| {
            e["verb"] == "list"
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["namespace"] == "default"
        })
        .expect("the list of pods");
    assert_eq!(list["level"], "Metadata");
    assert!(list.get("requestObject").is_none() && list.get("responseObject").is_none());
    assert!(!all
        .iter()
        .any(|e| e["auditID"] == list["auditID"] && e["stage"] == "RequestReceived"));
    // The forbidden request, by the admin acting as alice.
    let forbidden = all
        .iter()
        .find(|e| {
            e["objectRef"]["resource"] == "secrets"
                && e["stage"] == "ResponseComplete"
                && e["impersonatedUser"]["username"] == "alice"
        })
        .expect("the secrets request");
    assert_eq!(forbidden["responseStatus"]["code"], 403);
    assert_eq!(forbidden["user"]["username"], "kubernetes-admin");
    assert_eq!(forbidden["impersonatedUser"]["username"], "alice");
    // The scheduler's and the nodes' requests are not logged.
    assert!(!all
        .iter()
        .any(|e| e["user"]["username"] == "system:kube-scheduler"));
}
