//! The scheduling decision (a pure function of the pod and a snapshot of the cluster).
//!
//! [`schedule`] mirrors the default kube-scheduler profile for the plugins that matter to
//! keelson: it filters every node of a [`Snapshot`], scores the feasible ones, and either
//! returns the best node or a [`Decision::Unschedulable`] carrying a `FailedScheduling`
//! message in kube-scheduler's format.
//!
//! # Filters
//!
//! A node is feasible only when every filter passes. Unlike kube-scheduler (whose framework
//! stops at the first failing plugin) every filter is evaluated, and each failing node is
//! counted under every reason it fails, so the message explains all obstacles at once.
//!
//! 1. `spec.unschedulable` (tolerated by `node.kubernetes.io/unschedulable:NoSchedule`).
//! 2. The `Ready` condition (tolerated by a toleration of `node.kubernetes.io/not-ready`
//!    with effect `NoSchedule`; the default NoExecute toleration only delays eviction).
//! 3. `nodeSelector` and required node affinity.
//! 4. `NoSchedule` / `NoExecute` taints.
//! 5. Resources (cpu, memory, ephemeral-storage, hugepages-*, extended resources) and the
//!    pod count.
//! 6. Host ports.
//! 7. Required inter-pod affinity / anti-affinity, including existing pods' anti-affinity.
//! 8. `topologySpreadConstraints` with `whenUnsatisfiable: DoNotSchedule`.
//!
//! # Scores
//!
//! Every plugin yields 0..=100 per feasible node; the total is the weighted sum (see the
//! `WEIGHT_*` constants). The highest total wins; ties are broken by the caller's `tie`
//! value over the tied nodes in name order.
//!
//! # Quantities
//!
//! Quantities are parsed by [`parse_quantity`] into milli-units. An unparsable quantity on a
//! pod counts as zero for that resource, and an unparsable allocatable/capacity on a node
//! counts as zero too (the apiserver validates both, so this only guards against panics).
//! A node that reports no `pods` allocatable/capacity at all has no pod-count limit.
//!
//! # Differences from kube-scheduler
//!
//! * Every filter runs and every reason is counted (see above).
//! * Readiness is a filter of its own (`node(s) were not ready`) instead of relying on the
//!   `node.kubernetes.io/not-ready` taint alone.
//! * A node missing a spread constraint's topology key fails with the plain spread reason
//!   (kube-scheduler appends ` (missing required label)`).
//! * Spreading by owner counts pods with the same controller owner reference instead of
//!   pods selected by the owner's Service/ReplicaSet selectors, and `ScheduleAnyway`
//!   spread constraints do not score.
//! * Not modelled: volumes (VolumeBinding, VolumeZone, volume limits), ImageLocality,
//!   pod-level `spec.resources`, scheduling gates, preemption, and `nominatedNodeName`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, PodSpec,
    Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

mod quantity;

pub use quantity::{parse_quantity, QuantityError};

/// Weight of NodeResourcesFit (LeastAllocated over cpu and memory).
pub const WEIGHT_FIT: i64 = 1;
/// Weight of NodeResourcesBalancedAllocation.
pub const WEIGHT_BALANCED: i64 = 1;
/// Weight of NodeAffinity (preferred terms).
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
/// Weight of TaintToleration (untolerated `PreferNoSchedule` taints).
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
/// Weight of InterPodAffinity (preferred terms, both directions).
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
/// Weight of the owner-based spreading score (SelectorSpread-like).
pub const WEIGHT_SPREAD: i64 = 2;

/// The highest score a single plugin gives a node.
const MAX_SCORE: i64 = 100;
/// kube-scheduler's scoring default for a container without a cpu request: 100m.
const DEFAULT_MILLI_CPU: i128 = 100;
/// kube-scheduler's scoring default for a container without a memory request: 200Mi
/// (in milli-bytes).
const DEFAULT_MILLI_MEMORY: i128 = 200 * 1024 * 1024 * 1000;

const CPU: &str = "cpu";
const MEMORY: &str = "memory";
const PODS: &str = "pods";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";
const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const REASON_NOT_READY: &str = "node(s) were not ready";
const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const REASON_TOO_MANY_PODS: &str = "Too many pods";
const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
const REASON_POD_AFFINITY: &str = "node(s) didn't match pod affinity rules";
const REASON_POD_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Resource amounts in milli-units, keyed by resource name.
type Resources = BTreeMap<String, i128>;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// The cluster as the scheduler sees it: nodes (in name order), the pods bound to each
/// (including pods the scheduler assumed but whose binding is not yet observed), and the
/// labels of every namespace (for pod-affinity `namespaceSelector`s).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    nodes: BTreeMap<String, NodeEntry>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The node each pod of the snapshot is on, by (namespace, name).
    placed: HashMap<(String, String), String>,
}

/// One node with its pods and the cached sum of their requests.
#[derive(Debug, Clone)]
struct NodeEntry {
    node: Arc<Node>,
    /// The node's allocatable resources (capacity where allocatable does not list one),
    /// parsed once.
    allocatable: Resources,
    pods: Vec<Arc<Pod>>,
    /// Sum of the effective requests of `pods`.
    requested: Resources,
    /// Sum of the scoring (non-zero defaulted) cpu requests of `pods`.
    nonzero_cpu: i128,
    /// Sum of the scoring (non-zero defaulted) memory requests of `pods`.
    nonzero_memory: i128,
}

impl NodeEntry {
    fn new(node: Arc<Node>) -> NodeEntry {
        let mut allocatable = Resources::new();
        if let Some(status) = &node.status {
            // Allocatable wins over capacity for a resource both list.
            for list in [&status.capacity, &status.allocatable]
                .into_iter()
                .flatten()
            {
                for (name, q) in list {
                    allocatable.insert(name.clone(), quantity_milli(q));
                }
            }
        }
        NodeEntry {
            node,
            allocatable,
            pods: Vec::new(),
            requested: Resources::new(),
            nonzero_cpu: 0,
            nonzero_memory: 0,
        }
    }

    fn add_pod(&mut self, pod: Arc<Pod>) {
        add_resources(&mut self.requested, &pod_requests(&pod));
        let (cpu, memory) = pod_nonzero_requests(&pod);
        self.nonzero_cpu += cpu;
        self.nonzero_memory += memory;
        self.pods.push(pod);
    }

    fn remove_pod(&mut self, namespace: &str, name: &str) {
        let before = self.pods.len();
        self.pods
            .retain(|p| !(pod_namespace(p) == namespace && pod_name(p) == name));
        if self.pods.len() != before {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        let pods = std::mem::take(&mut self.pods);
        self.requested.clear();
        self.nonzero_cpu = 0;
        self.nonzero_memory = 0;
        for pod in pods {
            self.add_pod(pod);
        }
    }

    fn name(&self) -> &str {
        node_name(&self.node)
    }

    /// The node's allocatable amount of `resource`, falling back to its capacity when
    /// allocatable does not list it. `None` if neither lists it.
    fn allocatable(&self, resource: &str) -> Option<i128> {
        self.allocatable.get(resource).copied()
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
    }
}

impl Snapshot {
    /// Builds a snapshot. Groups pods by `spec.nodeName`; pods without `nodeName`, pods bound
    /// to a node that is not in `nodes`, and terminal pods (phase `Succeeded`/`Failed`) are
    /// ignored. Nodes without a name are ignored; of nodes sharing a name the last one wins.
    pub fn new(
        nodes: impl IntoIterator<Item = impl Into<Arc<Node>>>,
        pods: impl IntoIterator<Item = impl Into<Arc<Pod>>>,
        namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Snapshot {
        let mut map = BTreeMap::new();
        let mut placed = HashMap::new();
        for node in nodes {
            let node: Arc<Node> = node.into();
            let name = node_name(&node).to_string();
            if name.is_empty() {
                continue;
            }
            map.insert(name, NodeEntry::new(node));
        }
        for pod in pods {
            let pod: Arc<Pod> = pod.into();
            if is_terminal(&pod) {
                continue;
            }
            let Some(bound) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if !map.contains_key(&bound) {
                continue;
            }
            let id = (pod_namespace(&pod).to_string(), pod_name(&pod).to_string());
            // Of two pods with one name the later wins, as for nodes.
            if let Some(old) = placed.insert(id.clone(), bound.clone()) {
                if let Some(e) = map.get_mut(&old) {
                    e.remove_pod(&id.0, &id.1);
                }
            }
            if let Some(entry) = map.get_mut(&bound) {
                entry.add_pod(pod);
            }
        }
        Snapshot {
            nodes: map,
            namespace_labels,
            placed,
        }
    }

    /// Adds an assumed binding (the caller's assumed-pod cache) so the next decision sees
    /// it. The pod's `spec.nodeName` is set to `node`; a pod with the same namespace and name
    /// already in the snapshot (on any node) is replaced. Assuming onto a node that is not in
    /// the snapshot does nothing.
    pub fn assume(&mut self, pod: impl Into<Arc<Pod>>, node: &str) {
        if !self.nodes.contains_key(node) {
            return;
        }
        let mut pod: Arc<Pod> = pod.into();
        let id = (pod_namespace(&pod).to_string(), pod_name(&pod).to_string());
        if let Some(old) = self.placed.remove(&id) {
            if let Some(entry) = self.nodes.get_mut(&old) {
                entry.remove_pod(&id.0, &id.1);
            }
        }
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if bound != Some(node) {
            Arc::make_mut(&mut pod)
                .spec
                .get_or_insert_with(PodSpec::default)
                .node_name = Some(node.to_string());
        }
        if let Some(entry) = self.nodes.get_mut(node) {
            entry.add_pod(pod);
            self.placed.insert(id, node.to_string());
        }
    }

    /// The number of nodes in the snapshot.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn namespace_labels(&self, namespace: &str) -> &BTreeMap<String, String> {
        self.namespace_labels
            .get(namespace)
            .unwrap_or(&EMPTY_LABELS)
    }

    /// Every (node, pod) pair in the snapshot.
    fn all_pods(&self) -> impl Iterator<Item = (&NodeEntry, &Pod)> {
        self.nodes
            .values()
            .flat_map(|entry| entry.pods.iter().map(move |pod| (entry, &**pod)))
    }
}

/// The outcome of [`schedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to this node.
    Bind {
        /// The chosen node's name.
        node: String,
    },
    /// No node fits. `message` is formatted like kube-scheduler's `FailedScheduling` event,
    /// e.g. `"0/5 nodes are available: 2 node(s) had untolerated taint
    /// {node-role.kubernetes.io/control-plane: }, 3 Insufficient cpu."`.
    Unschedulable {
        /// The human-readable message.
        message: String,
        /// How many nodes failed for each reason (a node may count under several).
        reasons: BTreeMap<String, usize>,
    },
}

/// Decides where `pod` should run given `snapshot`.
///
/// `tie` breaks ties between equally scored best nodes: the winner is the
/// `tie % number_of_tied_nodes`-th tied node in name order, so a caller passing a counter
/// rotates fairly and tests can be deterministic.
#[must_use]
pub fn schedule(pod: &Pod, snapshot: &Snapshot, tie: u64) -> Decision {
    if snapshot.nodes.is_empty() {
        return Decision::Unschedulable {
            message: "0/0 nodes are available: no nodes available to schedule pods.".to_string(),
            reasons: BTreeMap::new(),
        };
    }
    let state = PodState::new(pod, snapshot);
    let mut feasible = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let all = snapshot.nodes.len();
    let enough = feasible_nodes_to_find(all);
    // Like kube-scheduler, when not every node is looked at, each pod starts further on
    // than the one before it (here: one node per pod), so every node gets its turn.
    let start = if enough < all {
        usize::try_from(tie % (all as u64)).unwrap_or(0)
    } else {
        0
    };
    let order = snapshot
        .nodes
        .values()
        .skip(start)
        .chain(snapshot.nodes.values().take(start));
    for entry in order {
        if feasible.len() >= enough {
            break;
        }
        let failed = state.filter(entry);
        if failed.is_empty() {
            feasible.push(entry);
        } else {
            for reason in failed {
                *reasons.entry(reason).or_insert(0) += 1;
            }
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable {
            message: unschedulable_message(snapshot.node_count(), &reasons),
            reasons,
        };
    }
    let totals = state.score(&feasible);
    let best = totals.iter().copied().max().unwrap_or(0);
    let mut top: Vec<&NodeEntry> = feasible
        .iter()
        .zip(&totals)
        .filter(|(_, total)| **total == best)
        .map(|(entry, _)| *entry)
        .collect();
    // By name, so that `tie` alone picks among equals, wherever the search started.
    top.sort_unstable_by(|a, b| a.name().cmp(b.name()));
    // `top` is never empty (the max comes from `totals`), but stay panic-free regardless.
    let index = usize::try_from(tie % (top.len().max(1) as u64)).unwrap_or(0);
    match top.get(index).or(feasible.first()) {
        Some(entry) => Decision::Bind {
            node: entry.name().to_string(),
        },
        None => Decision::Unschedulable {
            message: unschedulable_message(snapshot.node_count(), &reasons),
            reasons,
        },
    }
}

/// How many feasible nodes are enough to choose from among `all`: kube-scheduler's
/// adaptive `percentageOfNodesToScore` (every node up to 100, then 50 % less one point per
/// 125 nodes, at least 5 % and at least 100 nodes). A pod that fits nowhere is still
/// checked against every node, for its `FailedScheduling` message.
#[must_use]
pub fn feasible_nodes_to_find(all: usize) -> usize {
    const MIN_NODES: usize = 100;
    if all < MIN_NODES {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(5);
    (all * percent / 100).max(MIN_NODES)
}

/// Formats the `FailedScheduling` message the way kube-scheduler does: each reason is
/// rendered as `"{count} {reason}"` and these strings are sorted lexicographically (as
/// kube-scheduler's `sort.Strings` does), joined by `", "` and terminated by a period.
fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

pub use crate::labels::selector_matches;

// ---------------------------------------------------------------------------------------
// Small accessors
// ---------------------------------------------------------------------------------------

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The uid of the pod's controller owner reference, if any.
fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------

/// A quantity in milli-units; unparsable or negative values count as zero.
fn quantity_milli(q: &Quantity) -> i128 {
    parse_quantity(&q.0).unwrap_or(0).max(0)
}

fn add_resources(into: &mut Resources, from: &Resources) {
    for (name, value) in from {
        let slot = into.entry(name.clone()).or_insert(0);
        *slot = slot.saturating_add(*value);
    }
}

fn max_resources(into: &mut Resources, from: &Resources) {
    for (name, value) in from {
        let slot = into.entry(name.clone()).or_insert(0);
        *slot = (*slot).max(*value);
    }
}

/// A container's requests; a resource with only a limit uses the limit (the apiserver's
/// defaulting of requests from limits).
fn container_requests(container: &Container) -> Resources {
    let mut out = Resources::new();
    let Some(resources) = &container.resources else {
        return out;
    };
    if let Some(limits) = &resources.limits {
        for (name, q) in limits {
            out.insert(name.clone(), quantity_milli(q));
        }
    }
    if let Some(requests) = &resources.requests {
        for (name, q) in requests {
            out.insert(name.clone(), quantity_milli(q));
        }
    }
    out
}

/// Like [`container_requests`], with kube-scheduler's scoring defaults for a missing cpu
/// (100m) or memory (200Mi) request.
fn container_nonzero_requests(container: &Container) -> Resources {
    let mut out = container_requests(container);
    out.entry(CPU.to_string()).or_insert(DEFAULT_MILLI_CPU);
    out.entry(MEMORY.to_string())
        .or_insert(DEFAULT_MILLI_MEMORY);
    out
}

/// The pod's effective request: max(sum over containers, max over init containers) plus
/// `spec.overhead`. Restartable (sidecar, `restartPolicy: Always`) init containers are
/// handled as kube-scheduler does: they keep running, so they add to everything after them.
fn effective_requests(pod: &Pod, per_container: fn(&Container) -> Resources) -> Resources {
    let mut total = Resources::new();
    let Some(spec) = &pod.spec else {
        return total;
    };
    for container in &spec.containers {
        add_resources(&mut total, &per_container(container));
    }
    let mut sidecars = Resources::new();
    let mut init_max = Resources::new();
    for container in spec.init_containers.as_deref().unwrap_or(&[]) {
        let reqs = per_container(container);
        if container.restart_policy.as_deref() == Some("Always") {
            add_resources(&mut total, &reqs);
            add_resources(&mut sidecars, &reqs);
            max_resources(&mut init_max, &sidecars);
        } else {
            let mut running = sidecars.clone();
            add_resources(&mut running, &reqs);
            max_resources(&mut init_max, &running);
        }
    }
    max_resources(&mut total, &init_max);
    if let Some(overhead) = &spec.overhead {
        let overhead: Resources = overhead
            .iter()
            .map(|(name, q)| (name.clone(), quantity_milli(q)))
            .collect();
        add_resources(&mut total, &overhead);
    }
    total
}

fn pod_requests(pod: &Pod) -> Resources {
    effective_requests(pod, container_requests)
}

/// The (cpu, memory) requests used for scoring, with the non-zero defaults applied.
fn pod_nonzero_requests(pod: &Pod) -> (i128, i128) {
    let reqs = effective_requests(pod, container_nonzero_requests);
    (
        reqs.get(CPU).copied().unwrap_or(0),
        reqs.get(MEMORY).copied().unwrap_or(0),
    )
}

/// Resources the fit filter checks: the standard compute resources, hugepages and
/// extended resources (names with a '/').
fn is_checked_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || name.contains('/')
}

// ---------------------------------------------------------------------------------------
// Taints and tolerations
// ---------------------------------------------------------------------------------------

/// Kubernetes' `Toleration.ToleratesTaint`.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref() {
        if !effect.is_empty() && effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn synthetic_taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        ..Taint::default()
    }
}

/// The first `NoSchedule`/`NoExecute` taint the tolerations do not tolerate.
fn first_untolerated_hard_taint<'a>(
    node: &'a Node,
    tolerations: &[Toleration],
) -> Option<&'a Taint> {
    taints(node).iter().find(|taint| {
        (taint.effect == NO_SCHEDULE || taint.effect == NO_EXECUTE)
            && !tolerated(tolerations, taint)
    })
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

// ---------------------------------------------------------------------------------------
// Node affinity
// ---------------------------------------------------------------------------------------

/// One node-selector requirement against a key/value map (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`; `Gt`/`Lt` need exactly one integer value and an integer
/// label, otherwise they do not match).
fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let found = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => found.is_some_and(|v| values.contains(v)),
        "NotIn" => found.is_none_or(|v| !values.contains(v)),
        "Exists" => found.is_some(),
        "DoesNotExist" => found.is_none(),
        "Gt" | "Lt" => {
            let (Some(found), [bound]) = (found, values) else {
                return false;
            };
            let (Ok(found), Ok(bound)) = (found.trim().parse::<i64>(), bound.trim().parse::<i64>())
            else {
                return false;
            };
            if req.operator == "Gt" {
                found > bound
            } else {
                found < bound
            }
        }
        _ => false,
    }
}

/// A node-selector term: all expressions and fields must match; an empty term matches
/// nothing. The only supported field is `metadata.name`.
fn term_matches_node(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS);
    if !expressions.iter().all(|r| requirement_matches(r, labels)) {
        return false;
    }
    let field_map: BTreeMap<String, String> =
        BTreeMap::from([("metadata.name".to_string(), node_name(node).to_string())]);
    fields
        .iter()
        .all(|r| r.key == "metadata.name" && requirement_matches(r, &field_map))
}

/// `nodeSelector` plus required node affinity (terms ORed; an empty term list matches
/// nothing).
fn node_affinity_matches(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = &pod.spec else {
        return true;
    };
    if let Some(selector) = &spec.node_selector {
        let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS);
        if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches_node(term, node)),
        None => true,
    }
}

// ---------------------------------------------------------------------------------------
// Inter-pod affinity helpers
// ---------------------------------------------------------------------------------------

/// Whether `term` (declared by `owner`) selects `target`: namespaces (the union of
/// `namespaces` and `namespaceSelector`, or the owner's namespace when both are unset), the
/// label selector (`None` selects nothing), and `matchLabelKeys`/`mismatchLabelKeys`
/// evaluated against the owner's labels.
fn affinity_term_matches(
    term: &PodAffinityTerm,
    owner: &Pod,
    target: &Pod,
    snapshot: &Snapshot,
) -> bool {
    let target_ns = pod_namespace(target);
    let listed = term.namespaces.as_deref().unwrap_or(&[]);
    let ns_ok = if listed.is_empty() && term.namespace_selector.is_none() {
        target_ns == pod_namespace(owner)
    } else {
        listed.iter().any(|ns| ns == target_ns)
            || term
                .namespace_selector
                .as_ref()
                .is_some_and(|sel| selector_matches(sel, snapshot.namespace_labels(target_ns)))
    };
    if !ns_ok {
        return false;
    }
    let Some(selector) = &term.label_selector else {
        return false;
    };
    let target_labels = pod_labels(target);
    if !selector_matches(selector, target_labels) {
        return false;
    }
    let owner_labels = pod_labels(owner);
    for key in term.match_label_keys.as_deref().unwrap_or(&[]) {
        if let Some(value) = owner_labels.get(key) {
            if target_labels.get(key) != Some(value) {
                return false;
            }
        }
    }
    for key in term.mismatch_label_keys.as_deref().unwrap_or(&[]) {
        if let Some(value) = owner_labels.get(key) {
            if target_labels.get(key) == Some(value) {
                return false;
            }
        }
    }
    true
}

/// A topology domain: (topology key, value).
type Domain = (String, String);

fn domain_of(entry: &NodeEntry, key: &str) -> Option<Domain> {
    entry
        .labels()
        .get(key)
        .map(|value| (key.to_string(), value.clone()))
}

/// Whether the node lies in any of `domains`.
fn in_any_domain(entry: &NodeEntry, domains: &BTreeSet<Domain>) -> bool {
    let labels = entry.labels();
    domains
        .iter()
        .any(|(key, value)| labels.get(key) == Some(value))
}

// ---------------------------------------------------------------------------------------
// Per-decision state
// ---------------------------------------------------------------------------------------

/// One `DoNotSchedule` topology spread constraint, pre-counted.
struct SpreadState<'a> {
    constraint: &'a TopologySpreadConstraint,
    /// Matching pods per domain value, over eligible nodes (domains with no pods are
    /// present with 0).
    counts: BTreeMap<String, i64>,
    /// The minimum over `counts` (0 when fewer domains than `minDomains`).
    global_min: i64,
    /// 1 if the incoming pod matches the constraint's own selector.
    self_match: i64,
}

/// Everything about the incoming pod that does not depend on the candidate node.
struct PodState<'a> {
    pod: &'a Pod,
    snapshot: &'a Snapshot,
    requests: Resources,
    nonzero_cpu: i128,
    nonzero_memory: i128,
    host_ports: Vec<HostPort>,
    /// Required affinity terms; the node passes if it has every topology key and each
    /// term's domain in `affinity_domains`.
    affinity_terms: Vec<&'a PodAffinityTerm>,
    /// Domains holding a pod that matches all required affinity terms.
    affinity_domains: BTreeSet<Domain>,
    /// The "first pod of a group" exception applies.
    affinity_self_satisfied: bool,
    /// Domains holding a pod that matches one of the pod's required anti-affinity terms.
    anti_affinity_domains: BTreeSet<Domain>,
    /// Domains where an existing pod's required anti-affinity selects the incoming pod.
    existing_anti_affinity_domains: BTreeSet<Domain>,
    spread: Vec<SpreadState<'a>>,
}

/// A host port in use or requested: (protocol, host IP, port).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    protocol: String,
    ip: String,
    port: i32,
}

impl HostPort {
    fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// Host ports of the pod's containers and restartable (sidecar) init containers.
fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|hp| *hp > 0)?;
            let ip = match p.host_ip.as_deref() {
                None | Some("") => "0.0.0.0".to_string(),
                Some(ip) => ip.to_string(),
            };
            let protocol = match p.protocol.as_deref() {
                None | Some("") => "TCP".to_string(),
                Some(proto) => proto.to_string(),
            };
            Some(HostPort { protocol, ip, port })
        })
        .collect()
}

fn required_pod_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|pa| {
            pa.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

fn required_pod_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|pa| {
            pa.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

/// Preferred terms as (term, signed weight): affinity positive, anti-affinity negative.
fn preferred_pod_terms(pod: &Pod) -> Vec<(&PodAffinityTerm, i64)> {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(terms) = affinity.pod_affinity.as_ref().and_then(|pa| {
        pa.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    }) {
        out.extend(
            terms
                .iter()
                .map(|t| (&t.pod_affinity_term, i64::from(t.weight))),
        );
    }
    if let Some(terms) = affinity.pod_anti_affinity.as_ref().and_then(|pa| {
        pa.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    }) {
        out.extend(
            terms
                .iter()
                .map(|t| (&t.pod_affinity_term, -i64::from(t.weight))),
        );
    }
    out
}

impl<'a> PodState<'a> {
    fn new(pod: &'a Pod, snapshot: &'a Snapshot) -> PodState<'a> {
        let (nonzero_cpu, nonzero_memory) = pod_nonzero_requests(pod);
        let affinity_terms: Vec<&PodAffinityTerm> = required_pod_affinity(pod).iter().collect();
        let anti_terms = required_pod_anti_affinity(pod);

        let mut affinity_domains = BTreeSet::new();
        let mut anti_affinity_domains = BTreeSet::new();
        let mut existing_anti_affinity_domains = BTreeSet::new();
        for (entry, existing) in snapshot.all_pods() {
            if !affinity_terms.is_empty()
                && affinity_terms
                    .iter()
                    .all(|t| affinity_term_matches(t, pod, existing, snapshot))
            {
                for term in &affinity_terms {
                    affinity_domains.extend(domain_of(entry, &term.topology_key));
                }
            }
            for term in anti_terms {
                if affinity_term_matches(term, pod, existing, snapshot) {
                    anti_affinity_domains.extend(domain_of(entry, &term.topology_key));
                }
            }
            for term in required_pod_anti_affinity(existing) {
                if affinity_term_matches(term, existing, pod, snapshot) {
                    existing_anti_affinity_domains.extend(domain_of(entry, &term.topology_key));
                }
            }
        }
        let affinity_self_satisfied = affinity_domains.is_empty()
            && affinity_terms
                .iter()
                .all(|t| affinity_term_matches(t, pod, pod, snapshot));

        let mut state = PodState {
            pod,
            snapshot,
            requests: pod_requests(pod),
            nonzero_cpu,
            nonzero_memory,
            host_ports: host_ports(pod),
            affinity_terms,
            affinity_domains,
            affinity_self_satisfied,
            anti_affinity_domains,
            existing_anti_affinity_domains,
            spread: Vec::new(),
        };
        state.spread = state.spread_states();
        state
    }

    /// Pre-counts the pod's `DoNotSchedule` topology spread constraints.
    fn spread_states(&self) -> Vec<SpreadState<'a>> {
        let constraints: Vec<&'a TopologySpreadConstraint> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[])
            .iter()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .collect();
        if constraints.is_empty() {
            return Vec::new();
        }
        let namespace = pod_namespace(self.pod);
        let tolerations = tolerations(self.pod);
        constraints
            .into_iter()
            .map(|constraint| {
                let mut counts: BTreeMap<String, i64> = BTreeMap::new();
                for entry in self.snapshot.nodes.values() {
                    let labels = entry.labels();
                    // A node counts only if it has every constraint's topology key.
                    let has_all_keys = self.spread_keys().all(|k| labels.contains_key(k));
                    if !has_all_keys {
                        continue;
                    }
                    let honor_affinity = constraint
                        .node_affinity_policy
                        .as_deref()
                        .unwrap_or("Honor")
                        == "Honor";
                    if honor_affinity && !node_affinity_matches(self.pod, &entry.node) {
                        continue;
                    }
                    let honor_taints =
                        constraint.node_taints_policy.as_deref().unwrap_or("Ignore") == "Honor";
                    if honor_taints
                        && first_untolerated_hard_taint(&entry.node, tolerations).is_some()
                    {
                        continue;
                    }
                    let Some(value) = labels.get(&constraint.topology_key) else {
                        continue;
                    };
                    let matching = entry
                        .pods
                        .iter()
                        .filter(|p| {
                            !is_terminating(p)
                                && pod_namespace(p) == namespace
                                && self.spread_selector_matches(constraint, p)
                        })
                        .count();
                    *counts.entry(value.clone()).or_insert(0) +=
                        i64::try_from(matching).unwrap_or(i64::MAX);
                }
                let mut global_min = counts.values().copied().min().unwrap_or(0);
                if let Some(min_domains) = constraint.min_domains {
                    if i64::try_from(counts.len()).unwrap_or(i64::MAX) < i64::from(min_domains) {
                        global_min = 0;
                    }
                }
                let self_match = i64::from(self.spread_selector_matches(constraint, self.pod));
                SpreadState {
                    constraint,
                    counts,
                    global_min,
                    self_match,
                }
            })
            .collect()
    }

    fn spread_keys(&self) -> impl Iterator<Item = &str> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[])
            .iter()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .map(|c| c.topology_key.as_str())
    }

    /// The constraint's selector (`None` selects nothing) plus `matchLabelKeys` taken from
    /// the incoming pod's labels.
    fn spread_selector_matches(&self, constraint: &TopologySpreadConstraint, target: &Pod) -> bool {
        let Some(selector) = &constraint.label_selector else {
            return false;
        };
        let labels = pod_labels(target);
        if !selector_matches(selector, labels) {
            return false;
        }
        let own = pod_labels(self.pod);
        constraint
            .match_label_keys
            .iter()
            .flatten()
            .all(|key| own.get(key).is_none_or(|v| labels.get(key) == Some(v)))
    }

    /// Every reason the node fails (empty when it is feasible).
    fn filter(&self, entry: &NodeEntry) -> Vec<String> {
        let mut reasons = Vec::new();
        let node = &entry.node;
        let tolerations = tolerations(self.pod);

        let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        if unschedulable
            && !tolerated(
                tolerations,
                &synthetic_taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE),
            )
        {
            reasons.push(REASON_UNSCHEDULABLE.to_string());
        }

        // Only a NoSchedule toleration lets a pod onto a node that is not ready: every pod
        // gets a NoExecute one by default (DefaultTolerationSeconds), which only delays its
        // eviction from a node that stops being ready.
        if !node_ready(node)
            && !tolerated(tolerations, &synthetic_taint(TAINT_NOT_READY, NO_SCHEDULE))
        {
            reasons.push(REASON_NOT_READY.to_string());
        }

        if !node_affinity_matches(self.pod, node) {
            reasons.push(REASON_NODE_AFFINITY.to_string());
        }

        if let Some(taint) = first_untolerated_hard_taint(node, tolerations) {
            reasons.push(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            ));
        }

        self.fit_reasons(entry, &mut reasons);

        if !self.host_ports.is_empty() {
            let conflict = entry
                .pods
                .iter()
                .flat_map(|pod| host_ports(pod))
                .any(|used| self.host_ports.iter().any(|want| want.conflicts(&used)));
            if conflict {
                reasons.push(REASON_PORTS.to_string());
            }
        }

        if !self.affinity_terms.is_empty() && !self.affinity_ok(entry) {
            reasons.push(REASON_POD_AFFINITY.to_string());
        }
        if in_any_domain(entry, &self.anti_affinity_domains) {
            reasons.push(REASON_POD_ANTI_AFFINITY.to_string());
        }
        if in_any_domain(entry, &self.existing_anti_affinity_domains) {
            reasons.push(REASON_EXISTING_ANTI_AFFINITY.to_string());
        }

        if !self.spread_ok(entry) {
            reasons.push(REASON_SPREAD.to_string());
        }
        reasons
    }

    fn fit_reasons(&self, entry: &NodeEntry, reasons: &mut Vec<String>) {
        if let Some(max_pods) = entry.allocatable(PODS) {
            let after = i128::try_from(entry.pods.len())
                .unwrap_or(i128::MAX)
                .saturating_add(1)
                .saturating_mul(1000);
            if after > max_pods {
                reasons.push(REASON_TOO_MANY_PODS.to_string());
            }
        }
        for (name, want) in &self.requests {
            if *want <= 0 || !is_checked_resource(name) {
                continue;
            }
            let capacity = entry.allocatable(name).unwrap_or(0);
            let used = entry.requested.get(name).copied().unwrap_or(0);
            if want.saturating_add(used) > capacity {
                reasons.push(format!("Insufficient {name}"));
            }
        }
    }

    fn affinity_ok(&self, entry: &NodeEntry) -> bool {
        let labels = entry.labels();
        let mut all_present = true;
        for term in &self.affinity_terms {
            let Some(value) = labels.get(&term.topology_key) else {
                // Every topology key must exist on the node.
                return false;
            };
            if !self
                .affinity_domains
                .contains(&(term.topology_key.clone(), value.clone()))
            {
                all_present = false;
            }
        }
        all_present || self.affinity_self_satisfied
    }

    fn spread_ok(&self, entry: &NodeEntry) -> bool {
        let labels = entry.labels();
        self.spread.iter().all(|s| {
            let Some(value) = labels.get(&s.constraint.topology_key) else {
                return false;
            };
            let count = s.counts.get(value).copied().unwrap_or(0);
            let skew = count
                .saturating_add(s.self_match)
                .saturating_sub(s.global_min);
            skew <= i64::from(s.constraint.max_skew)
        })
    }

    // -----------------------------------------------------------------------------------
    // Scoring
    // -----------------------------------------------------------------------------------

    /// Weighted totals for the feasible nodes, in the same order.
    fn score(&self, feasible: &[&NodeEntry]) -> Vec<i64> {
        let fit: Vec<i64> = feasible.iter().map(|e| self.least_allocated(e)).collect();
        let balanced: Vec<i64> = feasible.iter().map(|e| self.balanced(e)).collect();
        let node_affinity = normalize(
            &feasible
                .iter()
                .map(|e| self.preferred_node_affinity(e))
                .collect::<Vec<_>>(),
        );
        let taint = normalize_reverse(
            &feasible
                .iter()
                .map(|e| self.prefer_no_schedule_count(e))
                .collect::<Vec<_>>(),
        );
        let inter_pod = self.inter_pod_scores(feasible);
        let spread = self.spread_scores(feasible);
        (0..feasible.len())
            .map(|i| {
                let at = |v: &Vec<i64>| v.get(i).copied().unwrap_or(0);
                WEIGHT_FIT * at(&fit)
                    + WEIGHT_BALANCED * at(&balanced)
                    + WEIGHT_NODE_AFFINITY * at(&node_affinity)
                    + WEIGHT_TAINT_TOLERATION * at(&taint)
                    + WEIGHT_INTER_POD_AFFINITY * at(&inter_pod)
                    + WEIGHT_SPREAD * at(&spread)
            })
            .collect()
    }

    /// (requested after placing, allocatable) for cpu and memory, using non-zero requests.
    fn usage(&self, entry: &NodeEntry) -> [(i128, i128); 2] {
        [
            (
                entry.nonzero_cpu.saturating_add(self.nonzero_cpu),
                entry.allocatable(CPU).unwrap_or(0),
            ),
            (
                entry.nonzero_memory.saturating_add(self.nonzero_memory),
                entry.allocatable(MEMORY).unwrap_or(0),
            ),
        ]
    }

    /// LeastAllocated: mean over cpu and memory of `(allocatable - requested) * 100 /
    /// allocatable` (0 when over-committed or allocatable is zero).
    fn least_allocated(&self, entry: &NodeEntry) -> i64 {
        let usage = self.usage(entry);
        let sum: i128 = usage
            .iter()
            .map(|&(requested, capacity)| {
                if capacity <= 0 || requested > capacity {
                    0
                } else {
                    (capacity - requested) * i128::from(MAX_SCORE) / capacity
                }
            })
            .sum();
        i64::try_from(sum / 2).unwrap_or(0)
    }

    /// BalancedAllocation: `(1 - std) * 100` where std is the standard deviation of the cpu
    /// and memory utilisation fractions after placing the pod (each capped at 1; a zero
    /// allocatable counts as fully used); for two resources that is `|cpu - memory| / 2`.
    /// Uses the same non-zero-defaulted requests as LeastAllocated (kube-scheduler uses the
    /// raw requests here), so request-less pods still register as load.
    fn balanced(&self, entry: &NodeEntry) -> i64 {
        let usage = self.usage(entry);
        let fractions: Vec<f64> = usage
            .iter()
            .map(|&(requested, capacity)| {
                if capacity <= 0 {
                    1.0
                } else {
                    (requested as f64 / capacity as f64).clamp(0.0, 1.0)
                }
            })
            .collect();
        let (cpu, memory) = match fractions.as_slice() {
            [a, b] => (*a, *b),
            _ => (0.0, 0.0),
        };
        let std = (cpu - memory).abs() / 2.0;
        ((1.0 - std) * MAX_SCORE as f64)
            .floor()
            .clamp(0.0, MAX_SCORE as f64) as i64
    }

    /// Sum of the weights of matching preferred node-affinity terms.
    fn preferred_node_affinity(&self, entry: &NodeEntry) -> i64 {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|terms| {
                terms
                    .iter()
                    .filter(|t| term_matches_node(&t.preference, &entry.node))
                    .map(|t| i64::from(t.weight).max(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Number of `PreferNoSchedule` taints not tolerated by a toleration with an empty or
    /// `PreferNoSchedule` effect.
    fn prefer_no_schedule_count(&self, entry: &NodeEntry) -> i64 {
        let tolerations: Vec<&Toleration> = tolerations(self.pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some(PREFER_NO_SCHEDULE)
                )
            })
            .collect();
        let count = taints(&entry.node)
            .iter()
            .filter(|taint| taint.effect == PREFER_NO_SCHEDULE)
            .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
            .count();
        i64::try_from(count).unwrap_or(i64::MAX)
    }

    /// InterPodAffinity: for every existing pod, the incoming pod's preferred terms that
    /// select it (+weight for affinity, -weight for anti-affinity) and its own preferred
    /// terms that select the incoming pod (same signs; its required affinity counts with
    /// weight 1) add to every node of that pod's topology domain. Min-max normalised.
    fn inter_pod_scores(&self, feasible: &[&NodeEntry]) -> Vec<i64> {
        let own_terms = preferred_pod_terms(self.pod);
        let mut domain_scores: BTreeMap<Domain, i64> = BTreeMap::new();
        let mut add = |domain: Option<Domain>, weight: i64| {
            if let Some(domain) = domain {
                let slot = domain_scores.entry(domain).or_insert(0);
                *slot = slot.saturating_add(weight);
            }
        };
        for (entry, existing) in self.snapshot.all_pods() {
            for (term, weight) in &own_terms {
                if affinity_term_matches(term, self.pod, existing, self.snapshot) {
                    add(domain_of(entry, &term.topology_key), *weight);
                }
            }
            for (term, weight) in preferred_pod_terms(existing) {
                if affinity_term_matches(term, existing, self.pod, self.snapshot) {
                    add(domain_of(entry, &term.topology_key), weight);
                }
            }
            for term in required_pod_affinity(existing) {
                if affinity_term_matches(term, existing, self.pod, self.snapshot) {
                    add(domain_of(entry, &term.topology_key), 1);
                }
            }
        }
        if domain_scores.is_empty() {
            return vec![0; feasible.len()];
        }
        let raw: Vec<i64> = feasible
            .iter()
            .map(|entry| {
                let labels = entry.labels();
                domain_scores
                    .iter()
                    .filter(|((key, value), _)| labels.get(key) == Some(value))
                    .map(|(_, score)| *score)
                    .fold(0i64, i64::saturating_add)
            })
            .collect();
        let min = raw.iter().copied().min().unwrap_or(0);
        let max = raw.iter().copied().max().unwrap_or(0);
        let range = i128::from(max) - i128::from(min);
        raw.iter()
            .map(|&score| {
                if range <= 0 {
                    0
                } else {
                    let scaled =
                        (i128::from(score) - i128::from(min)) * i128::from(MAX_SCORE) / range;
                    i64::try_from(scaled).unwrap_or(0)
                }
            })
            .collect()
    }

    /// Owner spreading: pods of the same controller (same namespace, controller owner uid)
    /// per node, fewer is better; blended 1/3 node + 2/3 zone when nodes carry
    /// `topology.kubernetes.io/zone`. All zero when the pod has no controller owner.
    fn spread_scores(&self, feasible: &[&NodeEntry]) -> Vec<i64> {
        let Some(owner) = controller_uid(self.pod) else {
            return vec![0; feasible.len()];
        };
        let namespace = pod_namespace(self.pod);
        let counts: Vec<i64> = feasible
            .iter()
            .map(|entry| {
                let n = entry
                    .pods
                    .iter()
                    .filter(|p| {
                        !is_terminating(p)
                            && pod_namespace(p) == namespace
                            && controller_uid(p) == Some(owner)
                    })
                    .count();
                i64::try_from(n).unwrap_or(i64::MAX)
            })
            .collect();
        let node_scores = normalize_reverse(&counts);
        let zones: Vec<Option<&String>> = feasible
            .iter()
            .map(|entry| entry.labels().get(ZONE_LABEL))
            .collect();
        let mut zone_counts: BTreeMap<&String, i64> = BTreeMap::new();
        for (zone, count) in zones.iter().zip(&counts) {
            if let Some(zone) = zone {
                let slot = zone_counts.entry(zone).or_insert(0);
                *slot = slot.saturating_add(*count);
            }
        }
        if zone_counts.is_empty() {
            return node_scores;
        }
        let max_zone = zone_counts.values().copied().max().unwrap_or(0);
        node_scores
            .iter()
            .zip(&zones)
            .map(|(&node_score, zone)| match zone {
                Some(zone) => {
                    let zone_count = zone_counts.get(zone).copied().unwrap_or(0);
                    let zone_score = if max_zone > 0 {
                        MAX_SCORE * (max_zone - zone_count) / max_zone
                    } else {
                        MAX_SCORE
                    };
                    (node_score + 2 * zone_score) / 3
                }
                None => node_score,
            })
            .collect()
    }
}

/// Scales raw scores so the maximum becomes 100 (negative raw scores count as 0; all zero
/// when the maximum is not positive).
fn normalize(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&v| {
            if max <= 0 {
                0
            } else {
                let scaled = i128::from(v.max(0)) * i128::from(MAX_SCORE) / i128::from(max);
                i64::try_from(scaled).unwrap_or(0)
            }
        })
        .collect()
}

/// Scores where fewer is better: `100 - raw * 100 / max` (all 100 when the maximum is 0).
fn normalize_reverse(raw: &[i64]) -> Vec<i64> {
    normalize(raw).into_iter().map(|v| MAX_SCORE - v).collect()
}

#[cfg(test)]
mod tests;
