//! The Endpoints and EndpointSlice controllers (one loop): for every Service with a selector,
//! the pods it selects become addresses — ready ones in `addresses`, others in
//! `notReadyAddresses` (all ready when `publishNotReadyAddresses`) — with the Service's
//! ports resolved per pod (a named `targetPort` is looked up in the pod's container ports, so
//! pods resolving to different numbers land in different subsets or slices).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::error::is_code;
use crate::informer::{key_of, split_key, Change, Informer, Shared};
use crate::queue::{run_workers, Next, Queue, Reconcile};

/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

pub struct EndpointsController {
    client: Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    queue: Queue,
}

/// One pod as an endpoint: its address, readiness and the service ports it resolves.
#[derive(Clone, Debug, PartialEq)]
pub struct PodEndpoint {
    pub ip: String,
    pub ready: bool,
    pub terminating: bool,
    pub node: Option<String>,
    pub target: ObjectReference,
    /// (name, port, protocol) of every service port this pod serves.
    pub ports: Vec<(String, i32, String)>,
}

fn matches(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The endpoints a service's selected pods make (pure; pods without an IP and finished pods
/// are left out, as Kubernetes does).
pub fn pod_endpoints(svc: &Service, pods: &[Arc<Pod>]) -> Vec<PodEndpoint> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let mut out = Vec::new();
    for pod in pods {
        if !matches(selector, pod.metadata.labels.as_ref()) {
            continue;
        }
        let status = pod.status.as_ref();
        let Some(ip) = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        ) {
            continue;
        }
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let pod_ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let ready = publish_not_ready || (pod_ready && !terminating);
        let mut ports = Vec::new();
        for sp in spec.ports.iter().flatten() {
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            let number = match &sp.target_port {
                None => Some(sp.port),
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(name)) => named_port(pod, name, &protocol),
            };
            if let Some(n) = number {
                ports.push((sp.name.clone().unwrap_or_default(), n, protocol));
            }
        }
        out.push(PodEndpoint {
            ip,
            ready,
            terminating,
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target: ObjectReference {
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            ports,
        });
    }
    out.sort_by(|a, b| {
        a.ip.cmp(&b.ip)
            .then_with(|| a.target.name.cmp(&b.target.name))
    });
    out
}

fn named_port(pod: &Pod, name: &str, protocol: &str) -> Option<i32> {
    pod.spec.as_ref()?.containers.iter().find_map(|c| {
        c.ports.iter().flatten().find_map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            (p.name.as_deref() == Some(name) && proto == protocol).then_some(p.container_port)
        })
    })
}

/// Endpoints subsets: pods grouped by the ports they resolve, ready and not-ready apart.
pub fn subsets(eps: &[PodEndpoint]) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<(String, i32, String)>, EndpointSubset> = BTreeMap::new();
    for e in eps {
        let subset = groups
            .entry(e.ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: Some(
                    e.ports
                        .iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then(|| name.clone()),
                            port: *port,
                            protocol: Some(protocol.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        let addr = EndpointAddress {
            ip: e.ip.clone(),
            node_name: e.node.clone(),
            target_ref: Some(e.target.clone()),
            ..Default::default()
        };
        let list = if e.ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(addr);
    }
    groups.into_values().collect()
}

impl EndpointsController {
    pub fn new(client: Client, shared: &Shared) -> Arc<EndpointsController> {
        let me = Arc::new(EndpointsController {
            client,
            services: Informer::new(),
            pods: Arc::clone(&shared.pods),
            queue: Queue::new(),
        });
        let q = me.queue.clone();
        me.services.on_change(move |c| match c {
            Change::Applied { new, .. } => q.add(key_of(new)),
            Change::Deleted(old) => q.add(key_of(old)),
        });
        let weak = Arc::downgrade(&me);
        me.pods.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            let (old, new) = match c {
                Change::Applied { old, new } => (old, Some(new)),
                Change::Deleted(old) => (Some(old), None),
            };
            for pod in old.into_iter().chain(new) {
                me.enqueue_selecting(pod);
            }
        });
        me
    }

    fn enqueue_selecting(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        for svc in self.services.list_namespace(ns) {
            let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
            if let Some(sel) = selector.filter(|s| !s.is_empty()) {
                if matches(sel, pod.metadata.labels.as_ref()) {
                    self.queue.add(key_of(&*svc));
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let c = &self.client;
        self.services.start_all(c, &stop);
        self.pods.start_all(c, &stop);
        self.services.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        let keys = self.services.keys();
        run_workers(
            "endpoints",
            Arc::clone(&self),
            self.queue.clone(),
            2,
            keys,
            stop,
        )
        .await;
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let (ns, name) = split_key(key);
        let endpoints: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get(ns, name) else {
            match endpoints.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_code(&e, 404) => {}
                Err(e) => return Err(e),
            }
            return Ok(Next::Done); // slices go with their owner (garbage collector)
        };
        let has_selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        if !has_selector {
            return Ok(Next::Done); // endpoints managed by the user
        }
        let eps = pod_endpoints(&svc, &self.pods.list_namespace(ns));
        self.write_endpoints(&endpoints, &svc, &eps).await?;
        self.write_slices(&slices, &svc, &eps).await?;
        Ok(Next::Done)
    }

    async fn write_endpoints(
        &self,
        api: &Api<Endpoints>,
        svc: &Service,
        eps: &[PodEndpoint],
    ) -> Result<(), kube::Error> {
        let name = svc.name_any();
        let subsets = subsets(eps);
        let subsets = (!subsets.is_empty()).then_some(subsets);
        match api.get_opt(&name).await? {
            Some(cur) if cur.subsets == subsets => Ok(()),
            Some(mut cur) => {
                cur.subsets = subsets;
                match api.replace(&name, &PostParams::default(), &cur).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            None => {
                let obj = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: svc.metadata.namespace.clone(),
                        labels: svc.metadata.labels.clone(),
                        ..Default::default()
                    },
                    subsets,
                };
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_code(&e, 409) => Err(e), // retried: update it then
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn write_slices(
        &self,
        api: &Api<EndpointSlice>,
        svc: &Service,
        eps: &[PodEndpoint],
    ) -> Result<(), kube::Error> {
        let name = svc.name_any();
        // One slice per distinct set of resolved ports, named after the service.
        let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<&PodEndpoint>> = BTreeMap::new();
        for e in eps {
            groups.entry(e.ports.clone()).or_default().push(e);
        }
        if groups.is_empty() {
            groups.insert(Vec::new(), Vec::new());
        }
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: name.clone(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut wanted = Vec::new();
        for (i, (ports, members)) in groups.into_iter().enumerate() {
            let slice_name = if i == 0 {
                name.clone()
            } else {
                format!("{name}-{i}")
            };
            wanted.push(slice_name.clone());
            let mut labels = BTreeMap::new();
            labels.insert(SERVICE_NAME_LABEL.to_string(), name.clone());
            labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(slice_name.clone()),
                    namespace: svc.metadata.namespace.clone(),
                    labels: Some(labels),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: members
                    .iter()
                    .map(|e| Endpoint {
                        addresses: vec![e.ip.clone()],
                        conditions: Some(EndpointConditions {
                            ready: Some(e.ready),
                            serving: Some(e.ready || e.terminating),
                            terminating: Some(e.terminating),
                        }),
                        node_name: e.node.clone(),
                        target_ref: Some(e.target.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| SlicePort {
                            name: Some(n.clone()),
                            port: Some(*p),
                            protocol: Some(proto.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            };
            match api.get_opt(&slice_name).await? {
                Some(cur) if cur.endpoints == slice.endpoints && cur.ports == slice.ports => {}
                Some(cur) => {
                    let mut next = slice;
                    next.metadata.resource_version = cur.metadata.resource_version.clone();
                    api.replace(&slice_name, &PostParams::default(), &next)
                        .await?;
                }
                None => {
                    api.create(&PostParams::default(), &slice).await?;
                }
            }
        }
        // Slices for port sets no pod resolves any more.
        let lp = ListParams::default().labels(&format!(
            "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        ));
        for old in api.list(&lp).await?.items {
            let n = old.name_any();
            if !wanted.contains(&n) {
                match api.delete(&n, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_code(&e, 404) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl Reconcile for EndpointsController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .expect("pod"),
        )
    }

    fn service(target: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": target}]},
        }))
        .expect("service")
    }

    #[test]
    fn ready_and_not_ready_pods_split_and_named_ports_resolve_per_pod() {
        let pods = vec![
            pod("a", "10.0.0.1", true, "web", 8080),
            pod("b", "10.0.0.2", false, "web", 8080),
            pod("c", "10.0.0.3", true, "web", 9090),
        ];
        let eps = pod_endpoints(&service(json!("web")), &pods);
        let s = subsets(&eps);
        assert_eq!(s.len(), 2, "two port numbers, two subsets: {s:?}");
        let by_port = |p: i32| {
            s.iter()
                .find(|x| x.ports.as_ref().is_some_and(|ps| ps[0].port == p))
                .cloned()
                .expect("subset")
        };
        let s8080 = by_port(8080);
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|x| x.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&s8080.addresses), ["10.0.0.1"]);
        assert_eq!(ips(&s8080.not_ready_addresses), ["10.0.0.2"]);
        assert_eq!(ips(&by_port(9090).addresses), ["10.0.0.3"]);
        assert_eq!(
            s8080.ports.as_ref().map(|p| p[0].name.clone()),
            Some(Some("http".into()))
        );
    }

    #[test]
    fn pods_without_an_ip_or_not_selected_are_left_out() {
        let mut other = (*pod("x", "10.0.0.9", true, "web", 80)).clone();
        other.metadata.labels = Some(BTreeMap::from([("app".to_string(), "db".to_string())]));
        let mut no_ip = (*pod("y", "", true, "web", 80)).clone();
        no_ip.status.as_mut().expect("status").pod_ip = None;
        let eps = pod_endpoints(&service(json!(80)), &[Arc::new(other), Arc::new(no_ip)]);
        assert!(eps.is_empty());
    }

    #[test]
    fn terminating_pods_are_not_ready_unless_published() {
        let mut p = (*pod("a", "10.0.0.1", true, "web", 80)).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        let p = Arc::new(p);
        let eps = pod_endpoints(&service(json!(80)), std::slice::from_ref(&p));
        assert!(!eps[0].ready && eps[0].terminating);
        let mut svc = service(json!(80));
        svc.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
        assert!(pod_endpoints(&svc, &[p])[0].ready);
    }
}
