//! Unit tests for the scheduling decision.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// Builders
// ------------------------------------------------------------------------------------------

/// Recursive JSON merge: objects merge key by key, anything else is replaced.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, patch) => *base = patch,
    }
}

fn node_with(name: &str, cpu: &str, memory: &str, patch: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, cpu: &str, memory: &str) -> Node {
    node_with(name, cpu, memory, json!({}))
}

fn requests(cpu: &str, memory: &str) -> Value {
    let mut r = serde_json::Map::new();
    if !cpu.is_empty() {
        r.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        r.insert("memory".into(), json!(memory));
    }
    json!({ "requests": r })
}

fn pod_with(name: &str, cpu: &str, memory: &str, patch: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": requests(cpu, memory)}]}
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    pod_with(name, cpu, memory, json!({}))
}

fn bound(mut p: Pod, node: &str) -> Pod {
    p.spec.as_mut().unwrap().node_name = Some(node.to_string());
    p
}

fn snap(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    Snapshot::new(nodes, pods, BTreeMap::new())
}

fn unshared(pods: &[Arc<Pod>]) -> Vec<Pod> {
    pods.iter().map(|pod| (**pod).clone()).collect()
}

fn bind_node(d: &Decision) -> String {
    match d {
        Decision::Bind { node } => node.clone(),
        other => panic!("expected Bind, got {other:?}"),
    }
}

fn unschedulable(d: &Decision) -> (String, BTreeMap<String, usize>) {
    match d {
        Decision::Unschedulable { message, reasons } => (message.clone(), reasons.clone()),
        other => panic!("expected Unschedulable, got {other:?}"),
    }
}

fn owned(mut p: Pod, uid: &str) -> Pod {
    p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true
    }))
    .unwrap()]);
    p
}

fn labeled(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
    p.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    p
}

fn zoned(name: &str, zone: &str) -> Node {
    node_with(
        name,
        "4",
        "8Gi",
        json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
    )
}

const GI: i128 = 1024 * 1024 * 1024 * 1000;

#[test]
fn unparsable_pod_quantity_counts_as_zero() {
    let mut p = pod("p", "", "");
    p.spec.as_mut().unwrap().containers[0].resources = Some(
        serde_json::from_value(json!({"requests": {"cpu": "lots", "memory": "64Mi"}})).unwrap(),
    );
    let s = snap(vec![node("n1", "0", "1Gi")], vec![]);
    assert_eq!(bind_node(&schedule(&p, &s, 0)), "n1");
}

// ------------------------------------------------------------------------------------------
// Label selectors
// ------------------------------------------------------------------------------------------

fn sel(v: Value) -> LabelSelector {
    serde_json::from_value(v).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn selector_matching() {
    let l = labels(&[("app", "web"), ("tier", "front")]);
    assert!(selector_matches(&sel(json!({})), &l));
    assert!(selector_matches(&sel(json!({})), &BTreeMap::new()));
    assert!(selector_matches(
        &sel(json!({"matchLabels": {"app": "web"}})),
        &l
    ));
    assert!(!selector_matches(
        &sel(json!({"matchLabels": {"app": "db"}})),
        &l
    ));
    assert!(!selector_matches(
        &sel(json!({"matchLabels": {"x": "y"}})),
        &l
    ));
    let expr = |op: &str, values: Value| {
        sel(json!({"matchExpressions": [{"key": "app", "operator": op, "values": values}]}))
    };
    assert!(selector_matches(&expr("In", json!(["web", "api"])), &l));
    assert!(!selector_matches(&expr("In", json!(["api"])), &l));
    assert!(!selector_matches(&expr("NotIn", json!(["web"])), &l));
    assert!(selector_matches(&expr("NotIn", json!(["api"])), &l));
    assert!(selector_matches(
        &expr("NotIn", json!(["web"])),
        &BTreeMap::new()
    ));
    assert!(selector_matches(&expr("Exists", json!(null)), &l));
    assert!(!selector_matches(
        &expr("Exists", json!(null)),
        &BTreeMap::new()
    ));
    assert!(!selector_matches(&expr("DoesNotExist", json!(null)), &l));
    assert!(selector_matches(
        &expr("DoesNotExist", json!(null)),
        &BTreeMap::new()
    ));
    assert!(!selector_matches(&expr("Bogus", json!(["web"])), &l));
    // matchLabels and matchExpressions are ANDed.
    let both = sel(json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]
    }));
    assert!(!selector_matches(&both, &l));
}

// ------------------------------------------------------------------------------------------
// Snapshot
// ------------------------------------------------------------------------------------------

#[test]
fn snapshot_ignores_unbound_terminal_and_unknown_node_pods() {
    let done = pod_with("done", "2", "", json!({"status": {"phase": "Succeeded"}}));
    let failed = pod_with("failed", "2", "", json!({"status": {"phase": "Failed"}}));
    let running = pod_with("run", "1", "", json!({"status": {"phase": "Running"}}));
    let s = snap(
        vec![node("n1", "2", "4Gi")],
        vec![
            bound(done, "n1"),
            bound(failed, "n1"),
            pod("pending", "2", ""),
            bound(pod("elsewhere", "2", ""), "gone"),
            bound(running, "n1"),
        ],
    );
    assert_eq!(s.node_count(), 1);
    assert_eq!(s.nodes["n1"].pods.len(), 1);
    assert_eq!(s.nodes["n1"].requested.get("cpu"), Some(&1000));
    assert_eq!(bind_node(&schedule(&pod("p", "1", ""), &s, 0)), "n1");
    let (msg, _) = unschedulable(&schedule(&pod("p", "1500m", ""), &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu.");
}

#[test]
fn assume_replaces_a_pod_with_the_same_name() {
    let mut s = snap(vec![node("a", "2", "4Gi"), node("b", "2", "4Gi")], vec![]);
    s.assume(pod("p", "1", ""), "a");
    s.assume(pod("p", "1", ""), "b");
    assert!(s.nodes["a"].pods.is_empty());
    assert_eq!(s.nodes["a"].requested.get("cpu").copied().unwrap_or(0), 0);
    assert_eq!(s.nodes["b"].pods.len(), 1);
    assert_eq!(
        s.nodes["b"].pods[0]
            .spec
            .as_ref()
            .unwrap()
            .node_name
            .as_deref(),
        Some("b")
    );
    // Assuming onto an unknown node is a no-op.
    s.assume(pod("q", "1", ""), "nope");
    assert_eq!(s.node_count(), 2);
}

#[test]
fn zero_nodes() {
    let s = snap(vec![], vec![]);
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "1", ""), &s, 0));
    assert_eq!(
        msg,
        "0/0 nodes are available: no nodes available to schedule pods."
    );
    assert!(reasons.is_empty());
}

// ------------------------------------------------------------------------------------------
// Resources
// ------------------------------------------------------------------------------------------

#[test]
fn insufficient_cpu_and_memory() {
    let s = snap(
        vec![
            node("a", "1", "1Gi"),
            node("b", "4", "512Mi"),
            node("c", "1", "256Mi"),
        ],
        vec![],
    );
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "2", "768Mi"), &s, 0));
    // A node short of both resources counts under both reasons.
    assert_eq!(
        msg,
        "0/3 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
    );
    assert_eq!(reasons["Insufficient cpu"], 2);
    assert_eq!(reasons["Insufficient memory"], 2);
    assert_eq!(bind_node(&schedule(&pod("p", "1", "600Mi"), &s, 0)), "a");
    assert_eq!(bind_node(&schedule(&pod("p", "2", "512Mi"), &s, 0)), "b");
}

#[test]
fn allocatable_minus_existing_pods() {
    let s = snap(
        vec![node("a", "2", "4Gi")],
        vec![
            bound(pod("x", "1", "1Gi"), "a"),
            bound(pod("y", "500m", "1Gi"), "a"),
        ],
    );
    assert_eq!(bind_node(&schedule(&pod("p", "500m", "2Gi"), &s, 0)), "a");
    let (msg, _) = unschedulable(&schedule(&pod("p", "501m", ""), &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu.");
    let (msg, _) = unschedulable(&schedule(&pod("p", "", "2049Mi"), &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient memory.");
}

#[test]
fn capacity_is_the_fallback_for_allocatable() {
    let mut n = node("a", "1", "1Gi");
    let status = n.status.as_mut().unwrap();
    status.capacity = status.allocatable.take();
    let s = snap(vec![n], vec![]);
    assert_eq!(bind_node(&schedule(&pod("p", "1", "1Gi"), &s, 0)), "a");
    let (msg, _) = unschedulable(&schedule(&pod("p", "2", ""), &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu.");
}

#[test]
fn pod_count_is_always_checked() {
    let n = node_with(
        "a",
        "8",
        "8Gi",
        json!({"status": {"allocatable": {"pods": "2"}}}),
    );
    let s = snap(
        vec![n],
        vec![bound(pod("x", "", ""), "a"), bound(pod("y", "", ""), "a")],
    );
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "", ""), &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Too many pods.");
    assert_eq!(reasons["Too many pods"], 1);
}

#[test]
fn extended_and_hugepages_resources() {
    let gpu = |name: &str, count: &str| {
        pod_with(
            name,
            "",
            "",
            json!({"spec": {"containers": [{"name": "c", "resources": {
                "requests": {"example.com/gpu": count},
                "limits": {"example.com/gpu": count}
            }}]}}),
        )
    };
    let with_gpu = node_with(
        "gpu",
        "4",
        "8Gi",
        json!({"status": {"allocatable": {"example.com/gpu": "2"}}}),
    );
    let s = snap(vec![node("plain", "4", "8Gi"), with_gpu], vec![]);
    assert_eq!(bind_node(&schedule(&gpu("p", "2"), &s, 0)), "gpu");
    let (msg, _) = unschedulable(&schedule(&gpu("p", "3"), &s, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient example.com/gpu."
    );
    // A zero request is not checked.
    let zero = gpu("p", "0");
    let n = schedule(&zero, &snap(vec![node("plain", "4", "8Gi")], vec![]), 0);
    assert_eq!(bind_node(&n), "plain");

    let huge = pod_with(
        "h",
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "resources": {
            "requests": {"hugepages-2Mi": "4Mi"}, "limits": {"hugepages-2Mi": "4Mi"}
        }}]}}),
    );
    let hp = node_with(
        "hp",
        "4",
        "8Gi",
        json!({"status": {"allocatable": {"hugepages-2Mi": "2Mi"}}}),
    );
    let (msg, _) = unschedulable(&schedule(&huge, &snap(vec![hp], vec![]), 0));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient hugepages-2Mi."
    );
}

#[test]
fn limits_default_requests() {
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "3"}}}]}}),
    );
    let (msg, _) = unschedulable(&schedule(&p, &snap(vec![node("a", "2", "4Gi")], vec![]), 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu.");
}

#[test]
fn init_containers_use_the_max_rule() {
    // Containers sum to 1 cpu; the init container needs 2: effective request is 2.
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {
            "initContainers": [{"name": "init", "resources": requests("2", "")}],
            "containers": [
                {"name": "a", "resources": requests("500m", "1Gi")},
                {"name": "b", "resources": requests("500m", "1Gi")}
            ]
        }}),
    );
    assert_eq!(pod_requests(&p).get("cpu"), Some(&2000));
    assert_eq!(pod_requests(&p).get("memory"), Some(&(2 * GI)));
    let s = snap(
        vec![node("small", "1500m", "4Gi"), node("big", "2", "4Gi")],
        vec![],
    );
    assert_eq!(bind_node(&schedule(&p, &s, 0)), "big");
    let s = snap(vec![node("small", "1500m", "4Gi")], vec![]);
    let (msg, _) = unschedulable(&schedule(&p, &s, 0));
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu.");

    // When containers need more than any init container, the sum wins.
    let q = pod_with(
        "q",
        "",
        "",
        json!({"spec": {
            "initContainers": [{"name": "init", "resources": requests("1", "")}],
            "containers": [
                {"name": "a", "resources": requests("1", "")},
                {"name": "b", "resources": requests("1", "")}
            ]
        }}),
    );
    assert_eq!(pod_requests(&q).get("cpu"), Some(&2000));
}

#[test]
fn sidecars_and_overhead_add_up() {
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": requests("1", "")},
                {"name": "init", "resources": requests("1500m", "")}
            ],
            "containers": [{"name": "a", "resources": requests("1", "")}],
            "overhead": {"cpu": "250m"}
        }}),
    );
    // init phase: sidecar 1 + init 1.5 = 2.5; running: 1 + sidecar 1 = 2; + overhead.
    assert_eq!(pod_requests(&p).get("cpu"), Some(&2750));
}

// ------------------------------------------------------------------------------------------
// Node selector and required node affinity
// ------------------------------------------------------------------------------------------

fn labeled_node(name: &str, labels: Value) -> Node {
    node_with(name, "4", "8Gi", json!({"metadata": {"labels": labels}}))
}

#[test]
fn node_selector() {
    let s = snap(
        vec![
            labeled_node("a", json!({"disk": "hdd"})),
            labeled_node("b", json!({"disk": "ssd", "gpu": "yes"})),
        ],
        vec![],
    );
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    );
    assert_eq!(bind_node(&schedule(&p, &s, 0)), "b");
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {"nodeSelector": {"disk": "nvme"}}}),
    );
    let (msg, reasons) = unschedulable(&schedule(&p, &s, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    );
    assert_eq!(reasons.len(), 1);
}

fn affinity_pod(terms: Value) -> Pod {
    pod_with(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}}),
    )
}

/// The names of the nodes that pass the filters for `p`.
fn feasible_names(p: &Pod, s: &Snapshot) -> Vec<String> {
    let state = PodState::new(p, s);
    s.nodes
        .values()
        .filter(|e| state.filter(e).is_empty())
        .map(|e| e.name().to_string())
        .collect()
}

#[test]
fn required_node_affinity_operators() {
    let s = snap(
        vec![
            labeled_node("a", json!({"zone": "z1", "cores": "4"})),
            labeled_node("b", json!({"zone": "z2", "cores": "16"})),
            labeled_node("c", json!({"cores": "notanumber"})),
        ],
        vec![],
    );
    let expr = |key: &str, op: &str, values: Value| {
        affinity_pod(
            json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]),
        )
    };
    assert_eq!(
        feasible_names(&expr("zone", "In", json!(["z1"])), &s),
        ["a"]
    );
    assert_eq!(
        feasible_names(&expr("zone", "NotIn", json!(["z1"])), &s),
        ["b", "c"]
    );
    assert_eq!(
        feasible_names(&expr("zone", "Exists", json!(null)), &s),
        ["a", "b"]
    );
    assert_eq!(
        feasible_names(&expr("zone", "DoesNotExist", json!(null)), &s),
        ["c"]
    );
    assert_eq!(
        feasible_names(&expr("cores", "Gt", json!(["8"])), &s),
        ["b"]
    );
    assert_eq!(
        feasible_names(&expr("cores", "Lt", json!(["8"])), &s),
        ["a"]
    );
    // Gt/Lt need exactly one integer value.
    assert!(feasible_names(&expr("cores", "Gt", json!(["1", "2"])), &s).is_empty());
    assert!(feasible_names(&expr("cores", "Gt", json!(["x"])), &s).is_empty());
    assert!(feasible_names(&expr("zone", "Bogus", json!(["z1"])), &s).is_empty());

    // matchFields on metadata.name.
    let fields = affinity_pod(json!([{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["c"]}
    ]}]));
    assert_eq!(feasible_names(&fields, &s), ["c"]);
    let fields = affinity_pod(json!([{"matchFields": [
        {"key": "metadata.name", "operator": "NotIn", "values": ["c"]}
    ]}]));
    assert_eq!(feasible_names(&fields, &s), ["a", "b"]);

    // Expressions within a term are ANDed, terms are ORed, an empty term matches nothing.
    let anded = affinity_pod(json!([{"matchExpressions": [
        {"key": "zone", "operator": "Exists"},
        {"key": "cores", "operator": "Gt", "values": ["8"]}
    ]}]));
    assert_eq!(feasible_names(&anded, &s), ["b"]);
    let ored = affinity_pod(json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}
    ]));
    assert_eq!(feasible_names(&ored, &s), ["a", "c"]);
    assert!(feasible_names(&affinity_pod(json!([{}])), &s).is_empty());
    assert!(feasible_names(&affinity_pod(json!([])), &s).is_empty());

    let (msg, _) = unschedulable(&schedule(&expr("zone", "In", json!(["z9"])), &s, 0));
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    );
}

// ------------------------------------------------------------------------------------------
// Taints, unschedulable and not-ready nodes
// ------------------------------------------------------------------------------------------

fn tainted(name: &str, taints: Value) -> Node {
    node_with(name, "4", "8Gi", json!({"spec": {"taints": taints}}))
}

fn tolerating(tolerations: Value) -> Pod {
    pod_with("p", "", "", json!({"spec": {"tolerations": tolerations}}))
}

#[test]
fn no_schedule_and_no_execute_taints_filter() {
    let s = snap(
        vec![
            tainted(
                "a",
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            ),
            tainted("b", json!([{"key": "evict", "effect": "NoExecute"}])),
        ],
        vec![],
    );
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "", ""), &s, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
         1 node(s) had untolerated taint {evict: }."
    );
    assert_eq!(reasons.len(), 2);

    // Equal with matching value.
    let p = tolerating(
        json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]),
    );
    assert_eq!(feasible_names(&p, &s), ["a"]);
    // Default operator is Equal; the value must match.
    let p = tolerating(json!([{"key": "dedicated", "value": "web"}]));
    assert!(feasible_names(&p, &s).is_empty());
    // Exists with a key, empty effect matches every effect.
    let p = tolerating(json!([{"key": "evict", "operator": "Exists"}]));
    assert_eq!(feasible_names(&p, &s), ["b"]);
    // A toleration for another effect does not tolerate.
    let p = tolerating(json!([{"key": "evict", "operator": "Exists", "effect": "NoSchedule"}]));
    assert!(feasible_names(&p, &s).is_empty());
    // Empty key + Exists tolerates everything.
    let p = tolerating(json!([{"operator": "Exists"}]));
    assert_eq!(feasible_names(&p, &s), ["a", "b"]);
}

#[test]
fn only_the_first_untolerated_taint_is_reported() {
    let s = snap(
        vec![tainted(
            "a",
            json!([
                {"key": "soft", "effect": "PreferNoSchedule"},
                {"key": "one", "value": "1", "effect": "NoSchedule"},
                {"key": "two", "value": "2", "effect": "NoSchedule"}
            ]),
        )],
        vec![],
    );
    let (msg, _) = unschedulable(&schedule(&pod("p", "", ""), &s, 0));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) had untolerated taint {one: 1}."
    );
    let p = tolerating(json!([{"key": "one", "operator": "Exists"}]));
    let (msg, _) = unschedulable(&schedule(&p, &s, 0));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) had untolerated taint {two: 2}."
    );
}

#[test]
fn prefer_no_schedule_only_affects_the_score() {
    let s = snap(
        vec![
            tainted("a", json!([{"key": "soft", "effect": "PreferNoSchedule"}])),
            node("b", "4", "8Gi"),
        ],
        vec![],
    );
    let p = pod("p", "", "");
    assert_eq!(feasible_names(&p, &s), ["a", "b"]);
    for tie in 0..4 {
        assert_eq!(bind_node(&schedule(&p, &s, tie)), "b");
    }
    // Only node a left: still schedulable.
    let only = snap(
        vec![tainted(
            "a",
            json!([{"key": "soft", "effect": "PreferNoSchedule"}]),
        )],
        vec![],
    );
    assert_eq!(bind_node(&schedule(&p, &only, 0)), "a");
    // Tolerating it makes both nodes equal again.
    let t =
        tolerating(json!([{"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}]));
    assert_eq!(bind_node(&schedule(&t, &s, 0)), "a");
    assert_eq!(bind_node(&schedule(&t, &s, 1)), "b");
}

#[test]
fn unschedulable_nodes() {
    let s = snap(
        vec![
            node_with("a", "4", "8Gi", json!({"spec": {"unschedulable": true}})),
            node("b", "1", "1Gi"),
        ],
        vec![],
    );
    assert_eq!(bind_node(&schedule(&pod("p", "", ""), &s, 0)), "b");
    let (msg, _) = unschedulable(&schedule(&pod("p", "2", ""), &s, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable."
    );
    let mut p = tolerating(json!([
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    ]));
    p.spec.as_mut().unwrap().containers[0].resources =
        serde_json::from_value(requests("2", "")).ok();
    assert_eq!(bind_node(&schedule(&p, &s, 0)), "a");
}

#[test]
fn not_ready_nodes() {
    let not_ready = node_with(
        "a",
        "4",
        "8Gi",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let unknown = node_with(
        "b",
        "4",
        "8Gi",
        json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}]}}),
    );
    let s = snap(vec![not_ready, unknown], vec![]);
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "", ""), &s, 0));
    assert_eq!(msg, "0/2 nodes are available: 2 node(s) were not ready.");
    assert_eq!(reasons["node(s) were not ready"], 2);
    for tolerations in [
        json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]),
        json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
        json!([{"operator": "Exists"}]),
    ] {
        assert_eq!(feasible_names(&tolerating(tolerations), &s), ["a", "b"]);
    }
    // The NoExecute toleration every pod gets by default (DefaultTolerationSeconds) only
    // delays eviction; it does not let new pods onto a node that is not ready.
    for wrong in [
        json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "PreferNoSchedule"}]),
        json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
    ] {
        assert!(feasible_names(&tolerating(wrong), &s).is_empty());
    }
}

// ------------------------------------------------------------------------------------------
// Host ports
// ------------------------------------------------------------------------------------------

fn port_pod(name: &str, ports: Value) -> Pod {
    pod_with(
        name,
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "ports": ports}]}}),
    )
}

#[test]
fn host_port_conflicts() {
    let existing = port_pod(
        "x",
        json!([
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}
        ]),
    );
    let s = snap(
        vec![node("a", "4", "8Gi"), node("b", "4", "8Gi")],
        vec![bound(existing, "a")],
    );
    let want = |ports: Value| feasible_names(&port_pod("p", ports), &s);
    assert_eq!(
        want(json!([{"containerPort": 80, "hostPort": 8080}])),
        ["b"]
    );
    assert_eq!(
        want(
            json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP", "hostIP": "10.0.0.2"}])
        ),
        ["b"],
        "the existing port listens on all addresses"
    );
    assert_eq!(
        want(json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])),
        ["a", "b"],
        "a different protocol does not conflict"
    );
    assert_eq!(
        want(
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}])
        ),
        ["a", "b"],
        "different specific addresses do not conflict"
    );
    assert_eq!(
        want(
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "0.0.0.0"}])
        ),
        ["b"],
        "all addresses conflict with a specific one"
    );
    assert_eq!(
        want(json!([{"containerPort": 8080}])),
        ["a", "b"],
        "no hostPort"
    );

    let only_a = snap(vec![node("a", "4", "8Gi")], unshared(&s.nodes["a"].pods));
    let (msg, _) = unschedulable(&schedule(
        &port_pod("p", json!([{"containerPort": 1, "hostPort": 8080}])),
        &only_a,
        0,
    ));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
}

// ------------------------------------------------------------------------------------------
// Inter-pod affinity
// ------------------------------------------------------------------------------------------

fn three_zones() -> Vec<Node> {
    vec![
        zoned("a1", "za"),
        zoned("a2", "za"),
        zoned("b1", "zb"),
        node("nozone", "4", "8Gi"),
    ]
}

fn with_affinity(p: Pod, affinity: Value) -> Pod {
    let mut v = serde_json::to_value(&p).unwrap();
    merge(&mut v, json!({"spec": {"affinity": affinity}}));
    serde_json::from_value(v).unwrap()
}

fn required_term(kind: &str, selector: Value, key: &str) -> Value {
    json!({ kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": selector, "topologyKey": key}
    ]}})
}

#[test]
fn pod_affinity_follows_matching_pods() {
    let db = bound(labeled(pod("db", "", ""), &[("app", "db")]), "a2");
    let s = snap(three_zones(), vec![db]);
    let p = with_affinity(
        labeled(pod("web", "", ""), &[("app", "web")]),
        required_term(
            "podAffinity",
            json!({"matchLabels": {"app": "db"}}),
            ZONE_LABEL,
        ),
    );
    assert_eq!(feasible_names(&p, &s), ["a1", "a2"]);
    let host = with_affinity(
        pod("web", "", ""),
        required_term(
            "podAffinity",
            json!({"matchLabels": {"app": "db"}}),
            "kubernetes.io/hostname",
        ),
    );
    assert_eq!(feasible_names(&host, &s), ["a2"]);

    // Nothing matches and the pod does not match itself: unschedulable everywhere.
    let none = with_affinity(
        labeled(pod("web", "", ""), &[("app", "web")]),
        required_term(
            "podAffinity",
            json!({"matchLabels": {"app": "cache"}}),
            ZONE_LABEL,
        ),
    );
    let (msg, reasons) = unschedulable(&schedule(&none, &s, 0));
    assert_eq!(
        msg,
        "0/4 nodes are available: 4 node(s) didn't match pod affinity rules."
    );
    assert_eq!(reasons["node(s) didn't match pod affinity rules"], 4);
}

#[test]
fn pod_affinity_first_pod_of_a_group_can_land() {
    let s = snap(three_zones(), vec![]);
    let p = with_affinity(
        labeled(pod("cache-0", "", ""), &[("app", "cache")]),
        required_term(
            "podAffinity",
            json!({"matchLabels": {"app": "cache"}}),
            ZONE_LABEL,
        ),
    );
    // Every node with the topology key is fine; the node without it still fails.
    assert_eq!(feasible_names(&p, &s), ["a1", "a2", "b1"]);

    // Once a member exists, the rest follow it.
    let mut s = s;
    s.assume(p.clone(), "b1");
    let mut second = p.clone();
    second.metadata.name = Some("cache-1".into());
    assert_eq!(feasible_names(&second, &s), ["b1"]);
}

#[test]
fn pod_affinity_namespaces() {
    let other_ns = pod_with(
        "db",
        "",
        "",
        json!({"metadata": {"namespace": "data", "labels": {"app": "db"}}}),
    );
    let ns_labels = BTreeMap::from([
        ("data".to_string(), labels(&[("team", "storage")])),
        ("default".to_string(), labels(&[])),
    ]);
    let s = Snapshot::new(three_zones(), vec![bound(other_ns, "b1")], ns_labels);
    let term = |extra: Value| {
        let mut t =
            json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE_LABEL});
        merge(&mut t, extra);
        with_affinity(
            pod("web", "", ""),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
        )
    };
    // Own namespace by default: the db pod in "data" does not count.
    assert!(feasible_names(&term(json!({})), &s).is_empty());
    assert_eq!(
        feasible_names(&term(json!({"namespaces": ["data"]})), &s),
        ["b1"]
    );
    assert_eq!(
        feasible_names(
            &term(json!({"namespaceSelector": {"matchLabels": {"team": "storage"}}})),
            &s
        ),
        ["b1"]
    );
    assert_eq!(
        feasible_names(&term(json!({"namespaceSelector": {}})), &s),
        ["b1"]
    );
    assert!(feasible_names(
        &term(json!({"namespaceSelector": {"matchLabels": {"team": "web"}}})),
        &s
    )
    .is_empty());
}

#[test]
fn pod_anti_affinity_of_the_incoming_pod() {
    let web0 = bound(labeled(pod("web-0", "", ""), &[("app", "web")]), "a1");
    let s = snap(three_zones(), vec![web0]);
    let p = with_affinity(
        labeled(pod("web-1", "", ""), &[("app", "web")]),
        required_term(
            "podAntiAffinity",
            json!({"matchLabels": {"app": "web"}}),
            ZONE_LABEL,
        ),
    );
    // Zone za is taken; the node without a zone label cannot conflict.
    assert_eq!(feasible_names(&p, &s), ["b1", "nozone"]);
    let only_za = snap(
        vec![zoned("a1", "za"), zoned("a2", "za")],
        unshared(&s.nodes["a1"].pods),
    );
    let (msg, _) = unschedulable(&schedule(&p, &only_za, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
    );
}

#[test]
fn existing_pods_anti_affinity() {
    // The existing pod refuses company of app=web in its zone.
    let loner = with_affinity(
        labeled(pod("loner", "", ""), &[("app", "loner")]),
        required_term(
            "podAntiAffinity",
            json!({"matchLabels": {"app": "web"}}),
            ZONE_LABEL,
        ),
    );
    let s = snap(three_zones(), vec![bound(loner, "a1")]);
    let web = labeled(pod("web", "", ""), &[("app", "web")]);
    assert_eq!(feasible_names(&web, &s), ["b1", "nozone"]);
    let other = labeled(pod("api", "", ""), &[("app", "api")]);
    assert_eq!(feasible_names(&other, &s), ["a1", "a2", "b1", "nozone"]);

    let only_za = snap(
        vec![zoned("a1", "za"), zoned("a2", "za")],
        unshared(&s.nodes["a1"].pods),
    );
    let (msg, _) = unschedulable(&schedule(&web, &only_za, 0));
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules."
    );
}

#[test]
fn preferred_pod_affinity_scores() {
    let db = bound(labeled(pod("db", "", ""), &[("app", "db")]), "b1");
    let s = snap(
        vec![zoned("a1", "za"), zoned("b1", "zb"), zoned("b2", "zb")],
        vec![db],
    );
    let near = with_affinity(
        pod("web", "", ""),
        json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}
        ]}}),
    );
    for tie in 0..3 {
        assert_eq!(bind_node(&schedule(&near, &s, tie)), "b1");
    }
    let far = with_affinity(
        pod("web", "", ""),
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE_LABEL}}
        ]}}),
    );
    for tie in 0..3 {
        assert_eq!(bind_node(&schedule(&far, &s, tie)), "a1");
    }
}

// ------------------------------------------------------------------------------------------
// Topology spread
// ------------------------------------------------------------------------------------------

fn spread_pod(name: &str, extra: Value) -> Pod {
    let mut c = json!({
        "maxSkew": 1,
        "topologyKey": ZONE_LABEL,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}
    });
    merge(&mut c, extra);
    pod_with(
        name,
        "",
        "",
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [c]}}),
    )
}

#[test]
fn topology_spread_max_skew_over_two_zones() {
    let nodes = vec![
        zoned("a1", "za"),
        zoned("a2", "za"),
        zoned("b1", "zb"),
        node("nozone", "4", "8Gi"),
    ];
    let mut s = snap(nodes, vec![]);
    // Empty cluster: both zones fine, the unlabeled node is not.
    assert_eq!(
        feasible_names(&spread_pod("w0", json!({})), &s),
        ["a1", "a2", "b1"]
    );
    s.assume(spread_pod("w0", json!({})), "a1");
    // za has 1, zb has 0: only zb keeps the skew within 1.
    assert_eq!(feasible_names(&spread_pod("w1", json!({})), &s), ["b1"]);
    s.assume(spread_pod("w1", json!({})), "b1");
    assert_eq!(
        feasible_names(&spread_pod("w2", json!({})), &s),
        ["a1", "a2", "b1"]
    );
    // Pods that do not match the selector (or live in another namespace) do not count.
    s.assume(labeled(pod("other", "", ""), &[("app", "db")]), "b1");
    s.assume(
        pod_with(
            "x",
            "",
            "",
            json!({"metadata": {"namespace": "ns2", "labels": {"app": "web"}}}),
        ),
        "b1",
    );
    assert_eq!(
        feasible_names(&spread_pod("w2", json!({})), &s),
        ["a1", "a2", "b1"]
    );
    s.assume(spread_pod("w2", json!({})), "a2");
    // za has 2, zb has 1.
    assert_eq!(feasible_names(&spread_pod("w3", json!({})), &s), ["b1"]);
    let mut pinned = spread_pod("w3", json!({"nodeAffinityPolicy": "Ignore"}));
    pinned.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([(ZONE_LABEL.to_string(), "za".to_string())]));
    let (msg, reasons) = unschedulable(&schedule(&pinned, &s, 0));
    assert_eq!(
        msg,
        "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, \
         3 node(s) didn't match pod topology spread constraints."
    );
    assert_eq!(
        reasons["node(s) didn't match pod topology spread constraints"],
        3
    );
    // ScheduleAnyway constraints never filter.
    let soft = spread_pod("w3", json!({"whenUnsatisfiable": "ScheduleAnyway"}));
    assert_eq!(feasible_names(&soft, &s).len(), 4);
}

#[test]
fn topology_spread_min_domains_and_affinity_policy() {
    let mut s = snap(vec![zoned("a1", "za"), zoned("a2", "za")], vec![]);
    s.assume(spread_pod("w0", json!({})), "a1");
    // One domain only: the global minimum is that domain's count, so it stays schedulable.
    assert_eq!(
        feasible_names(&spread_pod("w1", json!({})), &s),
        ["a1", "a2"]
    );
    // minDomains 2 with one eligible domain: the global minimum is 0, skew would be 2.
    let p = spread_pod("w1", json!({"minDomains": 2}));
    assert!(feasible_names(&p, &s).is_empty());

    // nodeAffinityPolicy Honor (default) ignores domains the pod cannot go to.
    let mut s = snap(vec![zoned("a1", "za"), zoned("b1", "zb")], vec![]);
    s.assume(spread_pod("w0", json!({})), "a1");
    let mut pinned = spread_pod("w1", json!({}));
    pinned.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([(ZONE_LABEL.to_string(), "za".to_string())]));
    assert_eq!(feasible_names(&pinned, &s), ["a1"]);
    let mut ignoring = spread_pod("w1", json!({"nodeAffinityPolicy": "Ignore"}));
    ignoring.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([(ZONE_LABEL.to_string(), "za".to_string())]));
    assert!(feasible_names(&ignoring, &s).is_empty());
}

// ------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------

#[test]
fn failed_scheduling_message_for_a_mixed_cluster() {
    let control_plane = |name: &str| {
        tainted(
            name,
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        )
    };
    let s = snap(
        vec![
            node("w1", "1", "8Gi"),
            node("w2", "1", "8Gi"),
            node("w3", "1", "8Gi"),
            control_plane("cp1"),
            control_plane("cp2"),
        ],
        vec![],
    );
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "2", ""), &s, 0));
    // kube-scheduler sorts the rendered "{count} {reason}" strings.
    assert_eq!(
        msg,
        "0/5 nodes are available: 2 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }, 3 Insufficient cpu."
    );
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("Insufficient cpu".to_string(), 3),
            (
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
                    .to_string(),
                2
            ),
        ])
    );
}

#[test]
fn every_failing_filter_is_counted() {
    let s = snap(
        vec![node_with(
            "a",
            "1",
            "1Gi",
            json!({"spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
        )],
        vec![],
    );
    let (msg, reasons) = unschedulable(&schedule(&pod("p", "2", "2Gi"), &s, 0));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
         1 node(s) had untolerated taint {k: v}, 1 node(s) were unschedulable."
    );
    assert_eq!(reasons.len(), 4);
}

// ------------------------------------------------------------------------------------------
// Scores
// ------------------------------------------------------------------------------------------

#[test]
fn least_allocated_picks_the_emptier_node() {
    let s = snap(
        vec![node("busy", "4", "8Gi"), node("idle", "4", "8Gi")],
        vec![bound(pod("x", "3", "6Gi"), "busy")],
    );
    for tie in 0..4 {
        assert_eq!(
            bind_node(&schedule(&pod("p", "500m", "1Gi"), &s, tie)),
            "idle"
        );
    }
    // Pods without requests still count (non-zero defaults) for scoring.
    let s = snap(
        vec![node("busy", "1", "1Gi"), node("idle", "1", "1Gi")],
        (0..4)
            .map(|i| bound(pod(&format!("x{i}"), "", ""), "busy"))
            .collect(),
    );
    for tie in 0..4 {
        assert_eq!(bind_node(&schedule(&pod("p", "", ""), &s, tie)), "idle");
    }
}

#[test]
fn least_allocated_and_balanced_values() {
    let s = snap(
        vec![node("a", "4", "8Gi")],
        vec![bound(pod("x", "1", "6Gi"), "a")],
    );
    let p = pod("p", "1", "");
    let state = PodState::new(&p, &s);
    let entry = &s.nodes["a"];
    // cpu: 2 of 4 requested -> 50; memory: 6Gi + 200Mi of 8Gi -> 22.
    assert_eq!(state.least_allocated(entry), (50 + 22) / 2);
    // fractions 0.5 and ~0.774: 100 - 13.7 -> 86.
    assert_eq!(state.balanced(entry), 86);
}

#[test]
fn balanced_allocation_rewards_balance() {
    // Both nodes end with the same LeastAllocated score; only balance differs.
    let s = snap(
        vec![node("skewed", "4", "4Gi"), node("even", "4", "4Gi")],
        vec![
            bound(pod("x", "2", "1Gi"), "skewed"),
            bound(pod("y", "1500m", "1536Mi"), "even"),
        ],
    );
    let p = pod("p", "1", "1Gi");
    let state = PodState::new(&p, &s);
    assert_eq!(
        state.least_allocated(&s.nodes["skewed"]),
        state.least_allocated(&s.nodes["even"])
    );
    assert!(state.balanced(&s.nodes["even"]) > state.balanced(&s.nodes["skewed"]));
    for tie in 0..4 {
        assert_eq!(bind_node(&schedule(&p, &s, tie)), "even");
    }
}

#[test]
fn preferred_node_affinity_scores() {
    let s = snap(
        vec![
            labeled_node("a", json!({"disk": "hdd"})),
            labeled_node("b", json!({"disk": "ssd"})),
            labeled_node("c", json!({"disk": "ssd", "fast": "yes"})),
        ],
        vec![],
    );
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}
        ]}}}}),
    );
    let state = PodState::new(&p, &s);
    let entries: Vec<&NodeEntry> = s.nodes.values().collect();
    let raw: Vec<i64> = entries
        .iter()
        .map(|e| state.preferred_node_affinity(e))
        .collect();
    assert_eq!(raw, [0, 10, 40]);
    assert_eq!(normalize(&raw), [0, 25, 100]);
    for tie in 0..3 {
        assert_eq!(bind_node(&schedule(&p, &s, tie)), "c");
    }
}

#[test]
fn replicas_of_one_owner_spread_across_nodes() {
    let mut s = snap(
        vec![
            node("a", "8", "16Gi"),
            node("b", "8", "16Gi"),
            node("c", "8", "16Gi"),
        ],
        vec![],
    );
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let p = owned(pod(&format!("web-{i}"), "10m", "10Mi"), "rs-1");
        // A constant tie value: only the scores can make the replicas spread.
        let node = bind_node(&schedule(&p, &s, 0)).to_string();
        *placed.entry(node.clone()).or_insert(0) += 1;
        s.assume(p, &node);
    }
    assert_eq!(
        placed,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
}

#[test]
fn replicas_spread_across_zones() {
    // Zone za has two nodes, zb one; the zone term pushes the second replica to zb even
    // though a2 is as empty as b1.
    let mut s = snap(
        vec![zoned("a1", "za"), zoned("a2", "za"), zoned("b1", "zb")],
        vec![],
    );
    let first = owned(pod("web-0", "10m", "10Mi"), "rs-1");
    s.assume(first, "a1");
    let second = owned(pod("web-1", "10m", "10Mi"), "rs-1");
    let state = PodState::new(&second, &s);
    let entries: Vec<&NodeEntry> = s.nodes.values().collect();
    assert_eq!(state.spread_scores(&entries), [0, 33, 100]);
    for tie in 0..3 {
        assert_eq!(bind_node(&schedule(&second, &s, tie)), "b1");
    }
    // Pods of another owner do not matter.
    let stranger = owned(pod("db-0", "10m", "10Mi"), "rs-2");
    let state = PodState::new(&stranger, &s);
    assert_eq!(state.spread_scores(&entries), [100, 100, 100]);
}

#[test]
fn assume_keeps_a_burst_off_a_full_node() {
    let mut s = snap(vec![node("a", "2", "4Gi"), node("b", "2", "4Gi")], vec![]);
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..4 {
        let p = pod(&format!("p{i}"), "1", "1Gi");
        let node = bind_node(&schedule(&p, &s, 0)).to_string();
        *placed.entry(node.clone()).or_insert(0) += 1;
        s.assume(p, &node);
    }
    assert_eq!(placed, BTreeMap::from([("a".into(), 2), ("b".into(), 2)]));
    let (msg, _) = unschedulable(&schedule(&pod("p4", "1", "1Gi"), &s, 0));
    assert_eq!(msg, "0/2 nodes are available: 2 Insufficient cpu.");
}

#[test]
fn tie_breaking_rotates_over_equal_nodes() {
    let s = snap(
        vec![
            node("c", "4", "8Gi"),
            node("a", "4", "8Gi"),
            node("b", "4", "8Gi"),
        ],
        vec![],
    );
    let p = pod("p", "1", "1Gi");
    let picks: Vec<String> = (0..6)
        .map(|tie| bind_node(&schedule(&p, &s, tie)).to_string())
        .collect();
    assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(bind_node(&schedule(&p, &s, u64::MAX)), "a");
    // Only the tied best nodes rotate.
    let s = snap(
        vec![
            node("a", "4", "8Gi"),
            node("b", "4", "8Gi"),
            node("c", "4", "8Gi"),
        ],
        vec![bound(pod("x", "3", "6Gi"), "b")],
    );
    let picks: Vec<String> = (0..4)
        .map(|tie| bind_node(&schedule(&p, &s, tie)).to_string())
        .collect();
    assert_eq!(picks, ["a", "c", "a", "c"]);
}

#[test]
fn normalization_helpers() {
    assert_eq!(normalize(&[0, 5, 10]), [0, 50, 100]);
    assert_eq!(normalize(&[0, 0]), [0, 0]);
    assert_eq!(normalize(&[-3, 6]), [0, 100]);
    assert_eq!(normalize_reverse(&[0, 1, 2]), [100, 50, 0]);
    assert_eq!(normalize_reverse(&[0, 0]), [100, 100]);
}

#[test]
fn malformed_objects_do_not_panic() {
    let bare_node = Node {
        metadata: serde_json::from_value(json!({"name": "bare"})).unwrap(),
        ..Node::default()
    };
    let s = snap(vec![bare_node, Node::default()], vec![Pod::default()]);
    assert_eq!(s.node_count(), 1);
    let (msg, _) = unschedulable(&schedule(&Pod::default(), &s, 7));
    assert_eq!(msg, "0/1 nodes are available: 1 node(s) were not ready.");
    let weird = node_with(
        "w",
        "garbage",
        "-5Gi",
        json!({"status": {"allocatable": {"pods": "1e999"}}}),
    );
    let s = snap(vec![weird], vec![]);
    let (msg, _) = unschedulable(&schedule(&pod("p", "1", "1Gi"), &s, 0));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods."
    );
    assert_eq!(
        bind_node(&schedule(
            &pod("p", "", ""),
            &snap(vec![node("n", "0", "0")], vec![]),
            0
        )),
        "n"
    );
}

#[test]
fn topology_spread_match_label_keys() {
    let revision = |name: &str, hash: &str| {
        let mut p = spread_pod(name, json!({"matchLabelKeys": ["pod-template-hash"]}));
        p.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("pod-template-hash".into(), hash.into());
        p
    };
    let mut s = snap(vec![zoned("a1", "za"), zoned("b1", "zb")], vec![]);
    // Two pods of the old revision in za.
    s.assume(revision("old-0", "v1"), "a1");
    s.assume(revision("old-1", "v1"), "a1");
    // The new revision only counts its own pods: both zones are fine.
    assert_eq!(feasible_names(&revision("new-0", "v2"), &s), ["a1", "b1"]);
    // The old revision sees the skew.
    assert_eq!(feasible_names(&revision("old-2", "v1"), &s), ["b1"]);
}

#[test]
fn existing_pods_preferred_affinity_attracts_the_incoming_pod() {
    let friend = with_affinity(
        labeled(pod("friend", "", ""), &[("app", "friend")]),
        json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}
        ]}}),
    );
    let s = snap(
        vec![zoned("a1", "za"), zoned("b1", "zb")],
        vec![bound(friend, "b1")],
    );
    let web = labeled(pod("web", "", ""), &[("app", "web")]);
    for tie in 0..2 {
        assert_eq!(bind_node(&schedule(&web, &s, tie)), "b1");
    }
    // A pod the term does not select goes to the emptier node.
    let other = labeled(pod("api", "", ""), &[("app", "api")]);
    for tie in 0..2 {
        assert_eq!(bind_node(&schedule(&other, &s, tie)), "a1");
    }
}

// ------------------------------------------------------------------------------------------
// Large clusters: enough feasible nodes, not all of them
// ------------------------------------------------------------------------------------------

#[test]
fn feasible_nodes_to_find_follows_kube_schedulers_adaptive_percentage() {
    assert_eq!(feasible_nodes_to_find(0), 0);
    assert_eq!(feasible_nodes_to_find(99), 99);
    assert_eq!(feasible_nodes_to_find(100), 100);
    // 50 % - 1000/125 = 42 %.
    assert_eq!(feasible_nodes_to_find(1000), 420);
    // 50 % - 40 = 10 %.
    assert_eq!(feasible_nodes_to_find(5000), 500);
    // Never under 5 %.
    assert_eq!(feasible_nodes_to_find(100_000), 5000);
    // Never under 100 nodes.
    assert_eq!(feasible_nodes_to_find(150), 100);
}

fn many_nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| labeled_node(&format!("n{i:04}"), json!({"rack": format!("r{i}")})))
        .collect()
}

#[test]
fn a_large_cluster_still_finds_its_only_fitting_node_and_names_every_node_otherwise() {
    let s = snap(many_nodes(1000), vec![]);
    for tie in [0, 1, 417, 999, 123_456] {
        let p = pod_with(
            "p",
            "",
            "",
            json!({"spec": {"nodeSelector": {"rack": "r3"}}}),
        );
        assert_eq!(bind_node(&schedule(&p, &s, tie)), "n0003", "tie {tie}");
    }
    let p = pod_with(
        "p",
        "",
        "",
        json!({"spec": {"nodeSelector": {"rack": "none"}}}),
    );
    let (msg, _) = unschedulable(&schedule(&p, &s, 7));
    assert_eq!(
        msg,
        "0/1000 nodes are available: 1000 node(s) didn't match Pod's node affinity/selector."
    );
}

#[test]
fn a_burst_on_a_large_cluster_reaches_every_node() {
    // Each pod looks at 420 of 1,000 nodes, starting one node further than the last; a
    // burst of pods still lands on nodes all over the cluster, not only on the first 420.
    let mut s = snap(many_nodes(1000), vec![]);
    let mut used = BTreeSet::new();
    for i in 0..1000u64 {
        let p = pod(&format!("p{i}"), "100m", "100Mi");
        let node = bind_node(&schedule(&p, &s, i));
        s.assume(p, &node);
        used.insert(node);
    }
    assert!(used.len() > 900, "only {} nodes used", used.len());
}
