//! The container runtime behind the pod workers, and the fake ("hollow node") runtime.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;

use crate::error::Result;

/// The annotation that makes the fake runtime's containers exit at once with this code.
pub const FAKE_EXIT_CODE: &str = "fake-kubelet.keelson.io/exit-code";

/// What one container is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        finished_at: Timestamp,
    },
}

/// A started pod as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub ip: String,
    pub started_at: Timestamp,
    /// App containers, in the spec's order.
    pub containers: Vec<(String, ContainerState)>,
}

/// What the pod workers need of a container runtime.
pub trait Runtime: Send + Sync + 'static {
    /// `<name>://<version>` for the node's `containerRuntimeVersion`.
    fn version(&self) -> String;
    /// Creates and starts everything of `pod`; returns its state once started.
    fn start_pod<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<PodState>>;
    /// Stops and removes the pod of this uid (nothing if it does not exist).
    fn stop_pod<'a>(&'a self, uid: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;
}

/// A runtime that "starts" containers without running anything: after `start_delay` every
/// container is running, or has exited with the code of the pod's
/// `fake-kubelet.keelson.io/exit-code` annotation.
pub struct FakeRuntime {
    start_delay: Duration,
    /// Second octet of this runtime's pod addresses (10.<net>.x.y).
    net: u8,
    pods: Mutex<HashMap<String, u32>>,
    next: Mutex<u32>,
}

impl FakeRuntime {
    pub fn new(start_delay: Duration, net: u8) -> FakeRuntime {
        FakeRuntime {
            start_delay,
            net,
            pods: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        }
    }

    /// Pods this runtime holds.
    pub fn len(&self) -> usize {
        self.pods.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn address(&self, uid: &str) -> String {
        let n = *self.pods.lock().entry(uid.to_string()).or_insert_with(|| {
            let mut next = self.next.lock();
            // 65,024 addresses per node: x.1 … x.254 for x in 0..=255.
            let n = *next;
            *next = (*next + 1) % (256 * 254);
            n
        });
        format!("10.{}.{}.{}", self.net, n / 254, n % 254 + 1)
    }
}

impl Runtime for FakeRuntime {
    fn version(&self) -> String {
        format!("fake://{}", env!("CARGO_PKG_VERSION"))
    }

    fn start_pod<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<PodState>> {
        Box::pin(async move {
            if !self.start_delay.is_zero() {
                tokio::time::sleep(self.start_delay).await;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let ip = self.address(&uid);
            let now = Timestamp::now();
            let exit: Option<i32> = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(FAKE_EXIT_CODE))
                .and_then(|v| v.trim().parse().ok());
            let containers = pod
                .spec
                .as_ref()
                .map(|s| s.containers.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    let state = match exit {
                        None => ContainerState::Running { started_at: now },
                        Some(code) => ContainerState::Terminated {
                            exit_code: code,
                            reason: if code == 0 { "Completed" } else { "Error" }.into(),
                            finished_at: now,
                        },
                    };
                    (c.name.clone(), state)
                })
                .collect();
            Ok(PodState {
                ip,
                started_at: now,
                containers,
            })
        })
    }

    fn stop_pod<'a>(&'a self, uid: &'a str, _grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.pods.lock().remove(uid);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "uid": uid, "annotations": annotations},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
        }))
        .expect("pod")
    }

    #[tokio::test]
    async fn fake_pods_run_or_exit_as_annotated_with_distinct_addresses() {
        let rt = FakeRuntime::new(Duration::ZERO, 7);
        let a = rt.start_pod(&pod("u1", json!({}))).await.expect("start");
        assert_eq!(a.containers.len(), 2);
        assert!(a
            .containers
            .iter()
            .all(|(_, s)| matches!(s, ContainerState::Running { .. })));
        let b = rt
            .start_pod(&pod("u2", json!({FAKE_EXIT_CODE: "3"})))
            .await
            .expect("start");
        assert!(matches!(
            &b.containers[0].1,
            ContainerState::Terminated { exit_code: 3, reason, .. } if reason == "Error"
        ));
        assert_ne!(a.ip, b.ip);
        assert!(a.ip.starts_with("10.7."));
        // The same pod keeps its address.
        let again = rt.start_pod(&pod("u1", json!({}))).await.expect("start");
        assert_eq!(again.ip, a.ip);
        assert_eq!(rt.len(), 2);
        rt.stop_pod("u1", Duration::ZERO).await.expect("stop");
        assert_eq!(rt.len(), 1);
    }
}
