//! Which nodes a daemon set's pods belong on (a pure function of the pod template and the
//! node), and what a daemon pod's spec gets on top of the template: the standard DaemonSet
//! tolerations and a required node affinity naming its node.
//!
//! Kubernetes' `NodeShouldRunDaemonPod` answers two questions: should a pod be *created* on
//! the node (nodeName, nodeSelector and required node affinity match, and every `NoSchedule`
//! / `NoExecute` taint is tolerated), and may an existing pod *keep running* there (the same,
//! except that only untolerated `NoExecute` taints evict). Node readiness plays no part: a
//! node that is not ready carries the `node.kubernetes.io/not-ready:NoSchedule` taint, which
//! daemon pods do not tolerate, so no new pod goes there while the existing one stays.
//!
//! This is deliberately a small function of its own rather than the scheduler's filters:
//! the scheduler also checks resources, ports and inter-pod constraints, which decide where
//! a pod *fits*, not where a daemon *belongs* (a daemon pod that does not fit stays Pending,
//! visibly, as in Kubernetes).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    PodTemplateSpec, Taint, Toleration,
};

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// The tolerations every daemon pod gets (Kubernetes' `AddOrUpdateDaemonPodTolerations`):
/// key and effect, operator `Exists`, no `tolerationSeconds` (a daemon pod is never evicted
/// from a node that is not ready or unreachable).
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
];

/// The extra toleration of host-network daemon pods.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE);

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        value: None,
        toleration_seconds: None,
    }
}

/// Whether two tolerations are "the same toleration" (Kubernetes' `MatchToleration`: key,
/// operator, value and effect equal; an unset operator is `Equal`).
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let op = |t: &Toleration| match t.operator.as_deref() {
        None | Some("") => "Equal".to_string(),
        Some(o) => o.to_string(),
    };
    a.key.as_deref().unwrap_or("") == b.key.as_deref().unwrap_or("")
        && op(a) == op(b)
        && a.value.as_deref().unwrap_or("") == b.value.as_deref().unwrap_or("")
        && a.effect.as_deref().unwrap_or("") == b.effect.as_deref().unwrap_or("")
}

/// Adds (or replaces) one toleration like Kubernetes' `AddOrUpdateTolerationInPodSpec`: a
/// toleration that is "the same" (see [`same_toleration`]) but differs, e.g. by
/// `tolerationSeconds`, is replaced.
fn add_or_update_toleration(spec: &mut PodSpec, want: Toleration) {
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    let mut found = false;
    for t in list.iter_mut() {
        if same_toleration(t, &want) {
            *t = want.clone();
            found = true;
        }
    }
    if !found {
        list.push(want);
    }
}

/// Adds the standard DaemonSet tolerations to a pod spec.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    for (key, effect) in DAEMON_TOLERATIONS {
        add_or_update_toleration(spec, exists(key, effect));
    }
    if spec.host_network == Some(true) {
        add_or_update_toleration(spec, exists(NETWORK_UNAVAILABLE.0, NETWORK_UNAVAILABLE.1));
    }
}

/// The node affinity of a daemon pod placed on `node`: the template's affinity with its
/// required node selector replaced by one term `matchFields metadata.name In [node]`
/// (Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`; the controller already checked
/// that the node satisfies the template's own terms). Preferred terms and pod (anti-)affinity
/// are kept.
pub fn affinity_for_node(affinity: Option<&Affinity>, node: &str) -> Affinity {
    let mut a = affinity.cloned().unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_string(),
                operator: "In".to_string(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    });
    a
}

/// The node a daemon pod is meant for: its `spec.nodeName`, or (not yet scheduled) the single
/// value of a `matchFields metadata.name In [..]` requirement of its required node affinity
/// (Kubernetes' `GetTargetNodeName`). None if neither says.
pub fn target_node(spec: Option<&PodSpec>) -> Option<&str> {
    let spec = spec?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for req in term.match_fields.iter().flatten() {
            if req.key == "metadata.name" && req.operator == "In" {
                return match req.values.as_deref() {
                    Some([one]) => Some(one.as_str()),
                    _ => None,
                };
            }
        }
    }
    None
}

/// Where a daemon set's pod stands with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A pod should be created on the node if it has none.
    pub should_run: bool,
    /// A pod already there may stay.
    pub should_continue: bool,
}

const NO: Fit = Fit {
    should_run: false,
    should_continue: false,
};

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

fn requirement_matches(
    req: &NodeSelectorRequirement,
    values_of: &BTreeMap<String, String>,
) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let found = values_of.get(&req.key);
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

/// A node selector term: every expression (on labels) and field (`metadata.name` only)
/// matches; an empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let field_values = BTreeMap::from([("metadata.name".to_string(), name)]);
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, &field_values))
}

/// `nodeSelector` and required node affinity (terms ORed).
fn affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
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
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node, labels)),
        None => true,
    }
}

/// Whether a pod from `template` belongs on `node` (see the module documentation).
pub fn node_should_run(template: &PodTemplateSpec, node: &Node) -> Fit {
    let mut spec = template.spec.clone().unwrap_or_default();
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if n != node_name {
            return NO;
        }
    }
    if !affinity_matches(&spec, node) {
        return NO;
    }
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let untolerated = |effect: &str| {
        taints
            .iter()
            .filter(|t| t.effect == effect)
            .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    };
    let evicted = untolerated(NO_EXECUTE);
    let blocked = evicted || untolerated(NO_SCHEDULE);
    Fit {
        should_run: !blocked,
        should_continue: !evicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, v, e)| Taint {
                            key: k.to_string(),
                            value: Some(v.to_string()).filter(|v| !v.is_empty()),
                            effect: e.to_string(),
                            time_added: None,
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn template(spec: PodSpec) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(spec),
        }
    }

    const RUN: Fit = Fit {
        should_run: true,
        should_continue: true,
    };
    const STAY: Fit = Fit {
        should_run: false,
        should_continue: true,
    };

    #[test]
    fn plain_template_runs_everywhere_untainted() {
        let t = template(PodSpec::default());
        assert_eq!(node_should_run(&t, &node("a", &[], &[])), RUN);
    }

    #[test]
    fn node_selector_and_node_name() {
        let t = template(PodSpec {
            node_selector: Some(BTreeMap::from([("role".into(), "edge".into())])),
            ..Default::default()
        });
        assert_eq!(
            node_should_run(&t, &node("a", &[("role", "edge")], &[])),
            RUN
        );
        assert_eq!(
            node_should_run(&t, &node("a", &[("role", "core")], &[])),
            NO
        );
        assert_eq!(node_should_run(&t, &node("a", &[], &[])), NO);
        let t = template(PodSpec {
            node_name: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(node_should_run(&t, &node("a", &[], &[])), NO);
        assert_eq!(node_should_run(&t, &node("b", &[], &[])), RUN);
    }

    #[test]
    fn required_node_affinity() {
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        };
        let t = template(PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![
                            NodeSelectorTerm {
                                match_expressions: Some(vec![req("zone", "In", &["z1", "z2"])]),
                                match_fields: None,
                            },
                            NodeSelectorTerm {
                                match_expressions: Some(vec![req("cores", "Gt", &["8"])]),
                                match_fields: Some(vec![req("metadata.name", "NotIn", &["big-0"])]),
                            },
                        ],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(node_should_run(&t, &node("a", &[("zone", "z2")], &[])), RUN);
        assert_eq!(node_should_run(&t, &node("a", &[("zone", "z3")], &[])), NO);
        assert_eq!(
            node_should_run(&t, &node("big-1", &[("cores", "16")], &[])),
            RUN
        );
        assert_eq!(
            node_should_run(&t, &node("big-0", &[("cores", "16")], &[])),
            NO
        );
        assert_eq!(
            node_should_run(&t, &node("big-1", &[("cores", "4")], &[])),
            NO
        );
    }

    #[test]
    fn taints_block_or_evict() {
        let t = template(PodSpec::default());
        let no_sched = node("a", &[], &[("dedicated", "gpu", NO_SCHEDULE)]);
        assert_eq!(node_should_run(&t, &no_sched), STAY);
        let no_exec = node("a", &[], &[("dedicated", "gpu", NO_EXECUTE)]);
        assert_eq!(node_should_run(&t, &no_exec), NO);
        let prefer = node("a", &[], &[("dedicated", "gpu", "PreferNoSchedule")]);
        assert_eq!(node_should_run(&t, &prefer), RUN);
        // The daemon tolerations cover cordoned, pressured, not-ready (NoExecute) nodes...
        let cordoned = node(
            "a",
            &[],
            &[
                ("node.kubernetes.io/unschedulable", "", NO_SCHEDULE),
                ("node.kubernetes.io/disk-pressure", "", NO_SCHEDULE),
                ("node.kubernetes.io/unreachable", "", NO_EXECUTE),
            ],
        );
        assert_eq!(node_should_run(&t, &cordoned), RUN);
        // ...but not a not-ready node's NoSchedule taint: the pod stays, none is created.
        let not_ready = node(
            "a",
            &[],
            &[("node.kubernetes.io/not-ready", "", NO_SCHEDULE)],
        );
        assert_eq!(node_should_run(&t, &not_ready), STAY);
        // A template toleration lets it on.
        let t = template(PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("gpu".into()),
                effect: None,
                toleration_seconds: None,
            }]),
            ..Default::default()
        });
        assert_eq!(node_should_run(&t, &no_exec), RUN);
        assert_eq!(
            node_should_run(&t, &node("a", &[], &[("dedicated", "tpu", NO_EXECUTE)])),
            NO
        );
    }

    #[test]
    fn daemon_tolerations_are_added_once_and_replace_timed_ones() {
        let mut spec = PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some("node.kubernetes.io/unreachable".into()),
                operator: Some("Exists".into()),
                effect: Some(NO_EXECUTE.into()),
                toleration_seconds: Some(300),
                value: None,
            }]),
            ..Default::default()
        };
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let tol = spec.tolerations.clone().unwrap_or_default();
        assert_eq!(tol.len(), 6, "{tol:?}");
        assert!(tol.iter().all(|t| t.toleration_seconds.is_none()));
        assert!(tol
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/pid-pressure")));
        spec.host_network = Some(true);
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.map(|t| t.len()), Some(7));
    }

    #[test]
    fn affinity_names_the_node_and_target_reads_it_back() {
        let a = affinity_for_node(None, "n1");
        let spec = PodSpec {
            affinity: Some(a),
            ..Default::default()
        };
        assert_eq!(target_node(Some(&spec)), Some("n1"));
        let bound = PodSpec {
            node_name: Some("n2".into()),
            ..spec.clone()
        };
        assert_eq!(target_node(Some(&bound)), Some("n2"));
        assert_eq!(target_node(Some(&PodSpec::default())), None);
        assert_eq!(target_node(None), None);
        // The template's own required terms are replaced, preferred ones kept.
        let t = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm::default()],
                }),
                preferred_during_scheduling_ignored_during_execution: Some(vec![]),
            }),
            ..Default::default()
        };
        let a = affinity_for_node(Some(&t), "n3");
        let na = a.node_affinity.unwrap_or_default();
        assert!(na
            .preferred_during_scheduling_ignored_during_execution
            .is_some());
        let terms = na
            .required_during_scheduling_ignored_during_execution
            .map(|r| r.node_selector_terms)
            .unwrap_or_default();
        assert_eq!(terms.len(), 1);
        assert_eq!(
            terms[0].match_fields.as_ref().map(|f| f[0].values.clone()),
            Some(Some(vec!["n3".to_string()]))
        );
    }
}
