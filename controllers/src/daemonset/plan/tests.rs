use super::*;
use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{
    Container, NodeSpec, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

const UID: &str = "ds-uid";
const NEW: &str = "newhash";
const OLD: &str = "oldhash";

fn ts(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap_or_default()
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ds() -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "agent")])),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "agent")])),
                    annotations: Some(labels(&[("note", "x")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "agent".into(),
                        image: Some("img:2".into()),
                        ..Default::default()
                    }],
                    node_selector: Some(labels(&[("role", "worker")])),
                    ..Default::default()
                }),
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_strategy(mut d: DaemonSet, unavailable: IntOrString, surge: IntOrString) -> DaemonSet {
    if let Some(s) = d.spec.as_mut() {
        s.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(unavailable),
                max_surge: Some(surge),
            }),
        });
    }
    d
}

fn node(name: &str) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("role", "worker")])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    })
}

fn relabeled(name: &str, role: &str) -> Arc<Node> {
    let mut n = (*node(name)).clone();
    n.metadata.labels = Some(labels(&[("role", role)]));
    Arc::new(n)
}

fn tainted(name: &str, effect: &str) -> Arc<Node> {
    let mut n = (*node(name)).clone();
    n.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: effect.into(),
            time_added: None,
        }]),
        ..Default::default()
    });
    Arc::new(n)
}

fn owner(uid: &str) -> Vec<OwnerReference> {
    vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: "agent".into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]
}

/// A running, ready (since t=0), bound pod of revision `hash` created at `created`.
fn pod(name: &str, node: &str, hash: &str, created: i64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            namespace: Some("default".into()),
            labels: Some(labels(&[("app", "agent"), (HASH_LABEL, hash)])),
            owner_references: Some(owner(UID)),
            creation_timestamp: Some(Time(ts(created))),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(0))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn unready(mut p: Pod) -> Pod {
    if let Some(s) = p.status.as_mut() {
        s.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            ..Default::default()
        }]);
    }
    p
}

fn with_phase(mut p: Pod, phase: &str) -> Pod {
    if let Some(s) = p.status.as_mut() {
        s.phase = Some(phase.into());
    }
    p
}

fn dying(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(ts(50)));
    p.metadata.deletion_grace_period_seconds = Some(30);
    p
}

/// Not yet scheduled: it names its node through node affinity only.
fn pending(mut p: Pod, node: &str) -> Pod {
    if let Some(s) = p.spec.as_mut() {
        s.node_name = None;
        s.affinity = Some(affinity_for_node(None, node));
    }
    if let Some(s) = p.status.as_mut() {
        s.phase = Some("Pending".into());
        s.conditions = None;
    }
    p
}

fn orphan(mut p: Pod) -> Pod {
    p.metadata.owner_references = None;
    p
}

struct Case {
    ds: DaemonSet,
    nodes: Vec<Arc<Node>>,
    pods: Vec<Arc<Pod>>,
    backoff: HashMap<String, Duration>,
    now: jiff::Timestamp,
}

impl Case {
    fn new(ds: DaemonSet, nodes: Vec<Arc<Node>>, pods: Vec<Pod>) -> Case {
        Case {
            ds,
            nodes,
            pods: pods.into_iter().map(Arc::new).collect(),
            backoff: HashMap::new(),
            now: ts(1000),
        }
    }

    fn plan(&self) -> Plan {
        plan(&Input {
            ds: &self.ds,
            nodes: &self.nodes,
            pods: &self.pods,
            hash: NEW,
            backoff: &self.backoff,
            now: self.now,
        })
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn deleted(p: &Plan) -> Vec<String> {
    p.delete.iter().map(|d| d.pod.clone()).collect()
}

fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
    names.iter().map(|n| node(n)).collect()
}

#[test]
fn one_pod_per_eligible_node() {
    let c = Case::new(
        ds(),
        vec![
            node("a"),
            node("b"),
            node("c"),
            relabeled("d", "db"),
            tainted("e", "NoSchedule"),
            tainted("f", "NoExecute"),
            tainted("g", "PreferNoSchedule"),
        ],
        vec![],
    );
    let p = c.plan();
    assert_eq!(p.create, names(&["a", "b", "c", "g"]));
    assert!(p.delete.is_empty());
    assert_eq!(p.status.desired_number_scheduled, 4);
    assert_eq!(p.status.current_number_scheduled, 0);
    assert_eq!(p.status.number_unavailable, Some(4));
    assert_eq!(p.status.observed_generation, Some(2));
}

#[test]
fn settled_daemon_set_does_nothing_and_reports_status() {
    let c = Case::new(
        ds(),
        nodes(&["a", "b", "c"]),
        vec![
            pod("p-a", "a", NEW, 1),
            pod("p-b", "b", NEW, 1),
            unready(pod("p-c", "c", NEW, 1)),
        ],
    );
    let p = c.plan();
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    let s = &p.status;
    assert_eq!(s.desired_number_scheduled, 3);
    assert_eq!(s.current_number_scheduled, 3);
    assert_eq!(s.number_misscheduled, 0);
    assert_eq!(s.number_ready, 2);
    assert_eq!(s.number_available, Some(2));
    assert_eq!(s.number_unavailable, Some(1));
    assert_eq!(s.updated_number_scheduled, Some(3));
    assert_eq!(p.live_hashes, BTreeSet::from([NEW.to_string()]));
}

#[test]
fn the_pod_to_create() {
    let mut d = ds();
    if let Some(s) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        s.host_network = Some(true);
    }
    let p = pod_for_node(&d, "n1", NEW);
    assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        p.metadata.labels,
        Some(labels(&[
            ("app", "agent"),
            (HASH_LABEL, NEW),
            (TEMPLATE_GENERATION_LABEL, "2")
        ]))
    );
    assert_eq!(p.metadata.annotations, Some(labels(&[("note", "x")])));
    assert_eq!(p.metadata.owner_references, Some(owner(UID)));
    let spec = p.spec.clone().unwrap_or_default();
    assert_eq!(spec.node_name, None, "the scheduler binds it");
    assert_eq!(target_node(Some(&spec)), Some("n1"));
    let keys: Vec<String> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t.key.clone().unwrap_or_default(),
                t.effect.clone().unwrap_or_default()
            )
        })
        .collect();
    for want in [
        "node.kubernetes.io/not-ready:NoExecute",
        "node.kubernetes.io/unreachable:NoExecute",
        "node.kubernetes.io/disk-pressure:NoSchedule",
        "node.kubernetes.io/memory-pressure:NoSchedule",
        "node.kubernetes.io/pid-pressure:NoSchedule",
        "node.kubernetes.io/unschedulable:NoSchedule",
        "node.kubernetes.io/network-unavailable:NoSchedule",
    ] {
        assert!(keys.contains(&want.to_string()), "{want} in {keys:?}");
    }
    // The template generation annotation wins over metadata.generation.
    d.metadata.annotations = Some(labels(&[(TEMPLATE_GENERATION_ANNOTATION, "7")]));
    let p = pod_for_node(&d, "n1", NEW);
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TEMPLATE_GENERATION_LABEL))
            .map(String::as_str),
        Some("7")
    );
}

#[test]
fn a_pod_waiting_for_the_scheduler_counts_for_its_node() {
    let c = Case::new(
        ds(),
        nodes(&["a", "b"]),
        vec![pending(pod("p-a", "a", NEW, 1), "a")],
    );
    let p = c.plan();
    assert_eq!(p.create, names(&["b"]));
    assert_eq!(p.status.current_number_scheduled, 1);
    assert_eq!(p.status.number_ready, 0);
}

#[test]
fn a_terminating_pod_blocks_its_replacement() {
    let c = Case::new(ds(), nodes(&["a"]), vec![dying(pod("p-a", "a", NEW, 1))]);
    let p = c.plan();
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
}

#[test]
fn nodes_that_stop_matching_lose_their_pods() {
    let c = Case::new(
        ds(),
        vec![
            relabeled("a", "db"),
            tainted("b", "NoExecute"),
            tainted("c", "NoSchedule"),
        ],
        vec![
            pod("p-a", "a", NEW, 1),
            pod("p-b", "b", NEW, 1),
            pod("p-c", "c", NEW, 1),
            dying(pod("p-a2", "a", NEW, 1)),
        ],
    );
    let p = c.plan();
    // A NoSchedule taint keeps new pods away but lets the running one stay (misscheduled).
    assert_eq!(deleted(&p), names(&["p-a", "p-b"]));
    assert!(p.delete.iter().all(|d| !d.force && d.expected));
    assert!(p.create.is_empty());
    assert_eq!(p.status.desired_number_scheduled, 0);
    assert_eq!(p.status.number_misscheduled, 3);
}

#[test]
fn pods_of_deleted_nodes_are_force_deleted() {
    let mut stuck = dying(pod("p-gone2", "gone", NEW, 1));
    stuck.metadata.deletion_grace_period_seconds = Some(30);
    let mut forced = dying(pod("p-gone3", "gone", NEW, 1));
    forced.metadata.deletion_grace_period_seconds = Some(0);
    let c = Case::new(
        ds(),
        nodes(&["a"]),
        vec![
            pod("p-a", "a", NEW, 1),
            pod("p-gone", "gone", NEW, 1),
            stuck,
            forced,
        ],
    );
    let p = c.plan();
    assert_eq!(
        p.delete,
        vec![
            Deletion {
                pod: "p-gone".into(),
                uid: Some("uid-p-gone".into()),
                node: "gone".into(),
                force: true,
                expected: true
            },
            Deletion {
                pod: "p-gone2".into(),
                uid: Some("uid-p-gone2".into()),
                node: "gone".into(),
                force: true,
                expected: false
            },
        ]
    );
    // Not counted in the status either.
    assert_eq!(p.status.desired_number_scheduled, 1);
    assert_eq!(p.status.number_misscheduled, 0);
}

#[test]
fn duplicates_keep_the_oldest_scheduled_pod() {
    let c = Case::new(
        ds(),
        nodes(&["a"]),
        vec![
            pod("young", "a", NEW, 20),
            pod("old", "a", NEW, 10),
            pending(pod("older-but-unscheduled", "a", NEW, 1), "a"),
            dying(pod("dying", "a", NEW, 0)),
        ],
    );
    let p = c.plan();
    let mut d = deleted(&p);
    d.sort();
    assert_eq!(d, names(&["older-but-unscheduled", "young"]));
}

#[test]
fn failed_pods_are_deleted_with_back_off_and_succeeded_ones_at_once() {
    let mut c = Case::new(
        ds(),
        nodes(&["a", "b"]),
        vec![
            with_phase(pod("failed", "a", NEW, 1), "Failed"),
            with_phase(pod("done", "b", NEW, 1), "Succeeded"),
        ],
    );
    let p = c.plan();
    assert_eq!(deleted(&p), names(&["failed", "done"]));
    assert_eq!(
        p.failed,
        vec![FailedPod {
            pod: "failed".into(),
            node: "a".into()
        }]
    );
    // No replacement until the failed pod is gone.
    assert!(p.create.is_empty());
    // In back-off: left alone, looked at again when it runs out.
    c.backoff.insert("a".into(), Duration::from_secs(4));
    let p = c.plan();
    assert_eq!(deleted(&p), names(&["done"]));
    assert!(p.failed.is_empty());
    assert!(p.create.is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(4)));
    // Once gone, a new pod is created.
    let c = Case::new(ds(), nodes(&["a"]), vec![]);
    assert_eq!(c.plan().create, names(&["a"]));
}

#[test]
fn orphans_are_adopted_and_strays_released() {
    let mut stray = pod("stray", "b", NEW, 1);
    stray.metadata.labels = Some(labels(&[("app", "other")]));
    let mut foreign = pod("foreign", "c", NEW, 1);
    foreign.metadata.owner_references = Some(owner("other-uid"));
    let mut elsewhere = orphan(pod("elsewhere", "c", NEW, 1));
    elsewhere.metadata.namespace = Some("kube-system".into());
    let c = Case::new(
        ds(),
        nodes(&["a", "b", "c"]),
        vec![
            orphan(pod("o-a", "a", NEW, 1)),
            orphan(dying(pod("o-dying", "b", NEW, 1))),
            stray,
            foreign,
            elsewhere,
        ],
    );
    let p = c.plan();
    assert_eq!(p.adopt, names(&["o-a"]));
    assert_eq!(p.release, names(&["stray"]));
    assert_eq!(p.create, names(&["b", "c"]));
    assert_eq!(p.status.current_number_scheduled, 1);
}

#[test]
fn a_daemon_set_being_deleted_or_selecting_nothing_does_nothing() {
    let mut d = ds();
    d.metadata.deletion_timestamp = Some(Time(ts(1)));
    let c = Case::new(d, nodes(&["a"]), vec![orphan(pod("o", "a", NEW, 1))]);
    let p = c.plan();
    assert!(p.create.is_empty() && p.adopt.is_empty() && p.delete.is_empty());
    let mut d = ds();
    if let Some(s) = d.spec.as_mut() {
        s.selector = LabelSelector::default();
    }
    let c = Case::new(d, nodes(&["a"]), vec![]);
    assert!(c.plan().create.is_empty());
}

fn old_pods(nodes: &[&str]) -> Vec<Pod> {
    nodes
        .iter()
        .map(|n| pod(&format!("old-{n}"), n, OLD, 1))
        .collect()
}

#[test]
fn rolling_update_deletes_within_max_unavailable() {
    let all = ["a", "b", "c", "d"];
    let c = Case::new(ds(), nodes(&all), old_pods(&all));
    let p = c.plan();
    assert_eq!(deleted(&p), names(&["old-a"]));
    assert!(p.create.is_empty());
    assert_eq!(p.status.updated_number_scheduled, Some(0));

    // The replacement exists but is not ready: nothing more.
    let mut pods = old_pods(&["b", "c", "d"]);
    pods.push(unready(pod("new-a", "a", NEW, 5)));
    let c = Case::new(ds(), nodes(&all), pods.clone());
    assert!(c.plan().delete.is_empty());
    // Old pod of a still terminating: nothing either.
    pods.pop();
    pods.push(dying(pod("old-a", "a", OLD, 1)));
    let c = Case::new(ds(), nodes(&all), pods);
    let p = c.plan();
    assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");

    // Ready: the next one goes.
    let mut pods = old_pods(&["b", "c", "d"]);
    pods.push(pod("new-a", "a", NEW, 5));
    let c = Case::new(ds(), nodes(&all), pods);
    let p = c.plan();
    assert_eq!(deleted(&p), names(&["old-b"]));
    assert_eq!(p.status.updated_number_scheduled, Some(1));
}

#[test]
fn rolling_update_replaces_unavailable_old_pods_at_once() {
    let all = ["a", "b", "c", "d"];
    let mut pods = old_pods(&["a", "b"]);
    pods.push(unready(pod("old-c", "c", OLD, 1)));
    pods.push(unready(pod("old-d", "d", OLD, 1)));
    let c = Case::new(ds(), nodes(&all), pods);
    let mut d = deleted(&c.plan());
    d.sort();
    // Both unavailable ones (beyond maxUnavailable: they are down anyway); no available
    // one since the budget is used up.
    assert_eq!(d, names(&["old-c", "old-d"]));
}

#[test]
fn rolling_update_percentages_and_missing_pods() {
    let all = ["a", "b", "c", "d", "e"];
    // 30% of 5 rounded up = 2.
    let d = with_strategy(ds(), IntOrString::String("30%".into()), IntOrString::Int(0));
    let c = Case::new(d.clone(), nodes(&all), old_pods(&all));
    assert_eq!(deleted(&c.plan()), names(&["old-a", "old-b"]));
    // A node without any pod gets one first (manage), and the rolling update waits.
    let c = Case::new(d.clone(), nodes(&all), old_pods(&["a", "b", "c", "d"]));
    let p = c.plan();
    assert_eq!(p.create, names(&["e"]));
    assert!(p.delete.is_empty());
    // Both zero: maxUnavailable 1.
    let d = with_strategy(ds(), IntOrString::Int(0), IntOrString::String("0%".into()));
    let c = Case::new(d, nodes(&all), old_pods(&all));
    assert_eq!(deleted(&c.plan()), names(&["old-a"]));
}

#[test]
fn on_delete_only_replaces_deleted_pods() {
    let mut d = ds();
    if let Some(s) = d.spec.as_mut() {
        s.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
    }
    let c = Case::new(d.clone(), nodes(&["a", "b"]), old_pods(&["a", "b"]));
    let p = c.plan();
    assert!(p.delete.is_empty() && p.create.is_empty());
    assert_eq!(p.status.updated_number_scheduled, Some(0));
    let c = Case::new(d, nodes(&["a", "b"]), old_pods(&["b"]));
    assert_eq!(c.plan().create, names(&["a"]));
}

#[test]
fn surge_creates_next_to_old_pods_then_deletes_them() {
    let all = ["a", "b", "c"];
    let d = with_strategy(ds(), IntOrString::Int(0), IntOrString::Int(1));
    let c = Case::new(d.clone(), nodes(&all), old_pods(&all));
    let p = c.plan();
    assert_eq!(p.create, names(&["a"]));
    assert!(p.delete.is_empty());

    // The surge pod is not available yet: nothing more, and manage keeps both.
    let mut pods = old_pods(&all);
    pods.push(unready(pod("new-a", "a", NEW, 5)));
    let c = Case::new(d.clone(), nodes(&all), pods);
    let p = c.plan();
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");

    // Available: the old pod of a goes (manage does it), then b surges.
    let mut pods = old_pods(&all);
    pods.push(pod("new-a", "a", NEW, 5));
    let c = Case::new(d.clone(), nodes(&all), pods);
    let p = c.plan();
    assert_eq!(deleted(&p), names(&["old-a"]));
    let mut pods = old_pods(&["b", "c"]);
    pods.push(pod("new-a", "a", NEW, 5));
    let c = Case::new(d.clone(), nodes(&all), pods);
    assert_eq!(c.plan().create, names(&["b"]));

    // An old pod that is not available is replaced regardless of the surge budget.
    let mut pods = old_pods(&["a", "b"]);
    pods.push(unready(pod("old-c", "c", OLD, 1)));
    pods.push(unready(pod("new-a", "a", NEW, 5)));
    let c = Case::new(d, nodes(&all), pods);
    let p = c.plan();
    // manage: on a, old is ready and new not yet available: keep both. On c the old pod is
    // unready but the only one: keep it. Rolling update: c may be replaced (create).
    assert_eq!(p.create, names(&["c"]));
}

#[test]
fn surge_manage_drops_an_unready_old_pod_beside_a_new_one() {
    let d = with_strategy(ds(), IntOrString::Int(0), IntOrString::Int(1));
    let c = Case::new(
        d,
        nodes(&["a"]),
        vec![
            unready(pod("old-a", "a", OLD, 1)),
            unready(pod("new-a", "a", NEW, 5)),
            unready(pod("new-a2", "a", NEW, 6)),
        ],
    );
    let mut d = deleted(&c.plan());
    d.sort();
    assert_eq!(d, names(&["new-a2", "old-a"]));
}

#[test]
fn min_ready_seconds_availability_and_requeue() {
    let mut d = ds();
    if let Some(s) = d.spec.as_mut() {
        s.min_ready_seconds = Some(30);
    }
    let mut fresh = pod("p-b", "b", NEW, 1);
    if let Some(s) = fresh.status.as_mut() {
        s.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(990))),
            ..Default::default()
        }]);
    }
    let c = Case::new(d, nodes(&["a", "b"]), vec![pod("p-a", "a", NEW, 1), fresh]);
    let p = c.plan();
    assert_eq!(p.status.number_ready, 2);
    assert_eq!(p.status.number_available, Some(1));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
}

#[test]
fn burst_cap() {
    let many: Vec<Arc<Node>> = (0..300).map(|i| node(&format!("n{i:03}"))).collect();
    let c = Case::new(ds(), many, vec![]);
    assert_eq!(c.plan().create.len(), BURST_REPLICAS);
}

#[test]
fn updated_means_hash_or_annotated_generation() {
    let mut d = ds();
    let p = pod("p", "a", NEW, 1);
    assert!(is_updated(&d, &p, NEW));
    assert!(!is_updated(&d, &p, OLD));
    let mut g = pod("g", "a", OLD, 1);
    g.metadata.labels = Some(labels(&[
        ("app", "agent"),
        (TEMPLATE_GENERATION_LABEL, "2"),
    ]));
    assert!(
        !is_updated(&d, &g, NEW),
        "metadata.generation alone does not count"
    );
    d.metadata.annotations = Some(labels(&[(TEMPLATE_GENERATION_ANNOTATION, "2")]));
    assert!(is_updated(&d, &g, NEW));
    assert_eq!(scaled(&IntOrString::String("10%".into()), 1), 1);
    assert_eq!(scaled(&IntOrString::String("bogus".into()), 10), 0);
    assert_eq!(scaled(&IntOrString::Int(-3), 10), 0);
}

#[test]
fn malformed_input_does_not_panic() {
    let _ = plan(&Input {
        ds: &DaemonSet::default(),
        nodes: &[Arc::new(Node::default())],
        pods: &[Arc::new(Pod::default())],
        hash: "",
        backoff: &HashMap::new(),
        now: ts(0),
    });
    let _ = pod_for_node(&DaemonSet::default(), "", "");
}
