//! A pod's status from what the runtime reports and what the pod worker knows (pure;
//! unit-tested). The phase follows the kubelet's `getPhase`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::runtime::{ContainerInfo, ContainerState};

/// Kubernetes' QoS class of a pod.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let r = c.resources.clone().unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for res in ["cpu", "memory"] {
            match (requests.get(res), limits.get(res)) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn time(t: Timestamp) -> Value {
    // Kubernetes times are RFC 3339 with whole seconds.
    json!(Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string())
}

/// One container as the status reports it.
#[derive(Clone, Debug, Default)]
pub struct ContainerView<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// The runtime's name for container IDs (`podman`).
    pub runtime: &'a str,
    pub latest: Option<&'a ContainerInfo>,
    pub previous: Option<&'a ContainerInfo>,
    /// Why it is not running (`ContainerCreating`, `ErrImagePull`, `CrashLoopBackOff`, …)
    /// with a message; `None` when it runs or has ended for good.
    pub waiting: Option<(&'a str, &'a str)>,
    pub ready: bool,
    pub started: bool,
}

fn terminated(c: &ContainerInfo, runtime: &str) -> Option<Value> {
    match &c.state {
        ContainerState::Exited {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => Some(json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": time(*started_at),
            "finishedAt": time(*finished_at), "containerID": format!("{runtime}://{}", c.id)}})),
        _ => None,
    }
}

/// The `containerStatuses` entry of one container, and whether it counts as waiting,
/// running, or stopped (with its exit code) for the phase.
fn container_status(v: &ContainerView<'_>) -> (Value, Count) {
    let mut last = json!({});
    let (state, count) = match (v.latest, v.waiting) {
        (Some(c), Some((reason, message))) if !c.state.is_running() => {
            // Waiting to run again: the instance that ended is the last state.
            last = terminated(c, v.runtime).unwrap_or_else(|| json!({}));
            let count = match &c.state {
                ContainerState::Exited { exit_code, .. } => Count::Stopped(*exit_code),
                _ => Count::Waiting,
            };
            (
                json!({"waiting": {"reason": reason, "message": message}}),
                count,
            )
        }
        (Some(c), _) => {
            if let Some(prev) = v.previous.and_then(|p| terminated(p, v.runtime)) {
                last = prev;
            }
            match &c.state {
                ContainerState::Running { started_at } => (
                    json!({"running": {"startedAt": time(*started_at)}}),
                    Count::Running,
                ),
                ContainerState::Created => (
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    Count::Waiting,
                ),
                ContainerState::Exited { exit_code, .. } => (
                    terminated(c, v.runtime).unwrap_or_else(|| json!({})),
                    Count::Stopped(*exit_code),
                ),
            }
        }
        (None, waiting) => {
            let (reason, message) = waiting.unwrap_or(("ContainerCreating", ""));
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            (json!({"waiting": w}), Count::Waiting)
        }
    };
    let mut st = json!({
        "name": v.name,
        "image": v.image,
        "imageID": v.latest.map(|c| c.image_id.as_str()).unwrap_or(""),
        "ready": v.ready,
        "started": v.started,
        "restartCount": v.latest.map(|c| c.attempt).unwrap_or(0),
        "state": state,
        "lastState": last,
    });
    if let Some(c) = v.latest {
        st["containerID"] = json!(format!("{}://{}", v.runtime, c.id));
    }
    (st, count)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Count {
    Waiting,
    Running,
    Stopped(i32),
}

/// Everything the status of one pod is made from.
#[derive(Clone, Debug, Default)]
pub struct PodView<'a> {
    pub host_ip: &'a str,
    pub pod_ip: Option<&'a str>,
    pub start_time: Option<Timestamp>,
    pub init: Vec<ContainerView<'a>>,
    pub app: Vec<ContainerView<'a>>,
    /// Every init container has completed.
    pub initialized: bool,
    /// An init container failed and the policy is `Never`: the pod has failed.
    pub init_failed: bool,
}

/// The kubelet's phase: from the app containers' states and the restart policy.
fn phase(policy: &str, view: &PodView<'_>, counts: &[Count]) -> &'static str {
    if view.init_failed {
        return "Failed";
    }
    if !view.initialized {
        return "Pending";
    }
    let waiting = counts.iter().filter(|c| **c == Count::Waiting).count();
    let running = counts.iter().filter(|c| **c == Count::Running).count();
    let stopped = counts
        .iter()
        .filter(|c| matches!(c, Count::Stopped(_)))
        .count();
    let succeeded = counts.iter().filter(|c| **c == Count::Stopped(0)).count();
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// The `status` of `pod` from `view`. Conditions keep their `lastTransitionTime` from
/// `previous` (the status last reported) while their status does not change.
pub fn pod_status(
    pod: &Pod,
    view: &PodView<'_>,
    previous: Option<&Value>,
    now: Timestamp,
) -> Value {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let init: Vec<Value> = view.init.iter().map(|c| container_status(c).0).collect();
    let (app, counts): (Vec<Value>, Vec<Count>) = view.app.iter().map(container_status).unzip();
    let phase = phase(policy, view, &counts);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let ready = !terminal && view.initialized && view.app.iter().all(|c| c.ready);
    let old = previous.and_then(|s| s["conditions"].as_array());
    let cond = |ty: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == status))
            .map(|c| c["lastTransitionTime"].clone())
            .filter(|t| t.is_string())
            .unwrap_or_else(|| time(now));
        let mut c = json!({"type": ty, "status": status, "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let not_ready = (!ready).then_some(if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    });
    let mut status = json!({
        "phase": phase,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "qosClass": qos_class(pod),
        "conditions": [
            cond("PodScheduled", true, None),
            cond("Initialized", view.initialized, (!view.initialized).then_some("ContainersNotInitialized")),
            cond("ContainersReady", ready, not_ready),
            cond("Ready", ready, not_ready),
        ],
        "containerStatuses": app,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    if let Some(ip) = view.pod_ip.filter(|ip| !ip.is_empty()) {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(t) = view.start_time {
        status["startTime"] = time(t);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn info(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{attempt}"),
            name: name.into(),
            attempt,
            init: false,
            image_id: "sha256:abc".into(),
            state,
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            started_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn exited(code: i32, reason: &str) -> ContainerState {
        ContainerState::Exited {
            exit_code: code,
            reason: reason.into(),
            started_at: Timestamp::UNIX_EPOCH,
            finished_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn view<'a>(c: &'a ContainerInfo, ready: bool) -> ContainerView<'a> {
        ContainerView {
            name: &c.name,
            image: "img",
            runtime: "podman",
            latest: Some(c),
            ready,
            started: c.state.is_running(),
            ..ContainerView::default()
        }
    }

    fn pod_view<'a>(app: Vec<ContainerView<'a>>) -> PodView<'a> {
        PodView {
            host_ip: "127.0.0.1",
            pod_ip: Some("10.88.0.9"),
            start_time: Some(Timestamp::UNIX_EPOCH),
            app,
            initialized: true,
            ..PodView::default()
        }
    }

    fn condition(st: &Value, ty: &str) -> String {
        st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == ty))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn running_ready_containers_make_a_ready_running_pod() {
        let p = pod(json!({"spec": {"containers": [{"name": "a", "image": "img"}]}}));
        let a = info("a", 0, running());
        let st = pod_status(
            &p,
            &pod_view(vec![view(&a, true)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "10.88.0.9");
        assert_eq!(condition(&st, "Ready"), "True");
        assert_eq!(st["containerStatuses"][0]["containerID"], "podman://a-0");
        assert_eq!(st["containerStatuses"][0]["imageID"], "sha256:abc");
        assert_eq!(st["qosClass"], "BestEffort");
        // Not ready (readiness probe failing): Running but not Ready.
        let st = pod_status(
            &p,
            &pod_view(vec![view(&a, false)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Running");
        assert_eq!(condition(&st, "Ready"), "False");
        assert_eq!(condition(&st, "ContainersReady"), "False");
    }

    #[test]
    fn restarted_containers_report_their_last_state_and_back_off() {
        let p = pod(json!({"spec": {"containers": [{"name": "a", "image": "img"}]}}));
        let first = info("a", 0, exited(137, "Error"));
        let second = info("a", 1, running());
        let mut v = view(&second, true);
        v.previous = Some(&first);
        let st = pod_status(&p, &pod_view(vec![v]), None, Timestamp::UNIX_EPOCH);
        let cs = &st["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
        assert!(cs["state"]["running"].is_object());
        // Crashed and waiting out its back-off: waiting, last state the crash; the pod
        // stays Running (restartPolicy Always).
        let crashed = info("a", 1, exited(1, "Error"));
        let mut v = view(&crashed, false);
        v.previous = Some(&first);
        v.waiting = Some((
            "CrashLoopBackOff",
            "back-off 10s restarting failed container",
        ));
        let st = pod_status(&p, &pod_view(vec![v]), None, Timestamp::UNIX_EPOCH);
        let cs = &st["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(st["phase"], "Running");
    }

    #[test]
    fn never_started_containers_keep_the_pod_pending() {
        let p = pod(json!({"spec": {"containers": [{"name": "a", "image": "nope"}]}}));
        let v = ContainerView {
            name: "a",
            image: "nope",
            runtime: "podman",
            waiting: Some(("ImagePullBackOff", "Back-off pulling image \"nope\"")),
            ..ContainerView::default()
        };
        let st = pod_status(&p, &pod_view(vec![v]), None, Timestamp::UNIX_EPOCH);
        assert_eq!(st["phase"], "Pending");
        assert_eq!(
            st["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
        assert_eq!(st["containerStatuses"][0]["restartCount"], 0);
    }

    #[test]
    fn exited_containers_end_the_pod_by_restart_policy() {
        let never = pod(json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x"}]}}));
        let ok = info("c", 0, exited(0, "Completed"));
        let st = pod_status(
            &never,
            &pod_view(vec![view(&ok, false)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Succeeded");
        assert_eq!(
            st["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let oom = info("c", 0, exited(137, "OOMKilled"));
        let st = pod_status(
            &never,
            &pod_view(vec![view(&oom, false)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Failed");
        assert_eq!(
            st["containerStatuses"][0]["state"]["terminated"]["reason"],
            "OOMKilled"
        );
        assert_eq!(condition(&st, "Ready"), "False");
        let on_failure = pod(json!({"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "x"}]}}));
        let st = pod_status(
            &on_failure,
            &pod_view(vec![view(&oom, false)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Running");
        let st = pod_status(
            &on_failure,
            &pod_view(vec![view(&ok, false)]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Succeeded");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod(json!({"spec": {"restartPolicy": "Never",
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "c", "image": "x"}]}}));
        let mut v = pod_view(vec![ContainerView {
            name: "c",
            image: "x",
            runtime: "podman",
            waiting: Some(("PodInitializing", "")),
            ..ContainerView::default()
        }]);
        v.initialized = false;
        let i = info("i", 0, running());
        v.init = vec![view(&i, false)];
        let st = pod_status(&p, &v, None, Timestamp::UNIX_EPOCH);
        assert_eq!(st["phase"], "Pending");
        assert_eq!(condition(&st, "Initialized"), "False");
        assert!(st["initContainerStatuses"][0]["state"]["running"].is_object());
        v.init_failed = true;
        assert_eq!(
            pod_status(&p, &v, None, Timestamp::UNIX_EPOCH)["phase"],
            "Failed"
        );
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let p = pod(json!({"spec": {"containers": [{"name": "a", "image": "img"}]}}));
        let previous = json!({"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                {"type": "Initialized", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
        let a = info("a", 0, running());
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let st = pod_status(&p, &pod_view(vec![view(&a, true)]), Some(&previous), now);
        let at = |ty: &str| {
            st["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == ty))
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_default()
        };
        assert_eq!(at("Ready"), "2020-01-01T00:00:00Z");
        assert_eq!(at("Initialized"), "2026-01-01T00:00:00Z");
        let fresh = pod_status(&p, &pod_view(vec![view(&a, true)]), None, now);
        assert_eq!(
            fresh["conditions"][3]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn qos_classes() {
        let with = |res: Value| {
            pod(json!({"spec": {"containers": [
            {"name": "c", "image": "x", "resources": res}]}}))
        };
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&with(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(json!({"requests": {"cpu": "500m", "memory": "1Gi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Burstable"
        );
    }
}
