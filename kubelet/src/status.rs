//! A pod's status from what the runtime reports (pure; unit-tested).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::runtime::{ContainerState, PodState};

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
    json!(t.to_string())
}

/// The `status` of `pod` on `host_ip` given the runtime's `state`.
pub fn pod_status(pod: &Pod, state: &PodState, host_ip: &str, now: Timestamp) -> Value {
    let always = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .is_none_or(|p| p == "Always");
    let running = state
        .containers
        .iter()
        .filter(|(_, s)| matches!(s, ContainerState::Running { .. }))
        .count();
    let all_running = running == state.containers.len();
    let all_succeeded = state
        .containers
        .iter()
        .all(|(_, s)| matches!(s, ContainerState::Terminated { exit_code: 0, .. }));
    let phase = if all_running || always || running > 0 {
        "Running"
    } else if all_succeeded {
        "Succeeded"
    } else {
        "Failed"
    };
    let ready = phase == "Running" && all_running;
    let image_of = |name: &str| {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let statuses: Vec<Value> = state
        .containers
        .iter()
        .map(|(name, s)| {
            let (st, is_running) = match s {
                ContainerState::Running { started_at } => {
                    (json!({"running": {"startedAt": time(*started_at)}}), true)
                }
                ContainerState::Terminated {
                    exit_code,
                    reason,
                    finished_at,
                } => (
                    json!({"terminated": {"exitCode": exit_code, "reason": reason,
                        "startedAt": time(state.started_at), "finishedAt": time(*finished_at)}}),
                    false,
                ),
            };
            json!({"name": name, "image": image_of(name), "imageID": "", "containerID": "",
                   "ready": is_running, "started": is_running, "restartCount": 0, "state": st})
        })
        .collect();
    let cond = |ty: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": ty, "status": if ok { "True" } else { "False" },
                           "lastTransitionTime": time(now)});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let not_ready = (!ready).then_some(if phase == "Running" {
        "ContainersNotReady"
    } else {
        "PodCompleted"
    });
    json!({
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": state.ip,
        "podIPs": [{"ip": state.ip}],
        "startTime": time(state.started_at),
        "qosClass": qos_class(pod),
        "conditions": [
            cond("PodScheduled", true, None),
            cond("Initialized", true, None),
            cond("ContainersReady", ready, not_ready),
            cond("Ready", ready, not_ready),
        ],
        "containerStatuses": statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn running(names: &[&str]) -> PodState {
        let t = Timestamp::UNIX_EPOCH;
        PodState {
            ip: "10.1.0.1".into(),
            started_at: t,
            containers: names
                .iter()
                .map(|n| (n.to_string(), ContainerState::Running { started_at: t }))
                .collect(),
        }
    }

    fn exited(code: i32) -> PodState {
        let mut s = running(&["c"]);
        s.containers[0].1 = ContainerState::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            finished_at: Timestamp::UNIX_EPOCH,
        };
        s
    }

    fn condition(st: &Value, ty: &str) -> String {
        st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == ty))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn running_containers_make_a_ready_running_pod() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}]}}));
        let st = pod_status(
            &p,
            &running(&["a", "b"]),
            "127.0.0.1",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "10.1.0.1");
        assert_eq!(st["hostIP"], "127.0.0.1");
        assert_eq!(condition(&st, "Ready"), "True");
        assert_eq!(condition(&st, "ContainersReady"), "True");
        assert_eq!(st["containerStatuses"][1]["image"], "img:2");
        assert_eq!(st["containerStatuses"][0]["ready"], true);
        assert_eq!(st["qosClass"], "BestEffort");
    }

    #[test]
    fn exited_containers_end_the_pod_by_restart_policy() {
        let never = pod(json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x"}]}}));
        let ok = pod_status(&never, &exited(0), "h", Timestamp::UNIX_EPOCH);
        assert_eq!(ok["phase"], "Succeeded");
        assert_eq!(
            ok["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(condition(&ok, "Ready"), "False");
        let failed = pod_status(&never, &exited(2), "h", Timestamp::UNIX_EPOCH);
        assert_eq!(failed["phase"], "Failed");
        assert_eq!(
            failed["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            2
        );
        // restartPolicy Always never ends the pod.
        let always = pod(json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}));
        let st = pod_status(&always, &exited(2), "h", Timestamp::UNIX_EPOCH);
        assert_eq!(st["phase"], "Running");
        assert_eq!(condition(&st, "Ready"), "False");
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
