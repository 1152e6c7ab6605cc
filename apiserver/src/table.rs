//! Server-side printing: `meta.k8s.io/v1` `Table` responses
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! kubectl prints what the server's Table says, so the columns, their types, formats,
//! descriptions and priorities, and every cell, are those of the Kubernetes apiserver's printers
//! (`k8s.io/kubernetes/pkg/printers/internalversion/printers.go`). The apiserver always prints
//! with `Wide: true`, so cells include the priority-1 (`-o wide`) columns, and kubectl hides
//! them unless asked. Resources without a printer (roles, clusterroles, limitranges,
//! customresourcedefinitions...) get the default table: Name and Created At. Custom resources get
//! [`CustomColumns`] from their CRD version's `additionalPrinterColumns`.
//!
//! Objects are read as the apiserver would see them after defaulting; for the few printed fields
//! Kubernetes always defaults (replicas 1, service type ClusterIP, port protocol TCP, secret type
//! Opaque, PV/PVC phase Pending...) the default is filled in when the field is missing.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};
use crate::selectors::LabelSelector;

/// A Table column definition (`metav1.TableColumnDefinition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column header, e.g. `Name`, `Ready`.
    pub name: &'static str,
    /// The OpenAPI type: `string`, `integer`, `number`, `boolean`, or `date`.
    pub type_: &'static str,
    /// The OpenAPI format, e.g. `name` for the Name column, else empty.
    pub format: &'static str,
    /// A human-readable description of the column.
    pub description: &'static str,
    /// 0 for the default view, 1 and up for `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column as a `columnDefinitions` entry.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The `columnDefinitions` of a Table for these columns.
pub fn column_definitions(columns: &[Column]) -> Vec<Value> {
    columns.iter().map(Column::to_json).collect()
}

const fn col(
    name: &'static str,
    type_: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
) -> Column {
    Column {
        name,
        type_,
        format,
        description,
        priority,
    }
}

// The printers' columns, as `printers.go` defines them (Kubernetes 1.32/1.33). Descriptions are
// the `SwaggerDoc()` texts the printers reference (the API field documentation), or literals.

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

const POD: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
    col("Status", "string", "", "The aggregate status of the containers in this pod.", 0),
    col("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("IP", "string", "", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
    col("Node", "string", "", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", 1),
    col("Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.", 1),
    col("Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", 1),
];

const POD_TEMPLATE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 0),
    col("Images", "string", "", IMAGES_DESC, 0),
    col(
        "Pod Labels",
        "string",
        "",
        "The labels for the pod template.",
        0,
    ),
];

const PDB: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Min Available",
        "string",
        "",
        "The minimum number of pods that must be available.",
        0,
    ),
    col(
        "Max Unavailable",
        "string",
        "",
        "The maximum number of pods that may be unavailable.",
        0,
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "",
        "Calculated number of pods that may be disrupted at this time.",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const RC: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Desired", "integer", "", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller", 0),
    col("Current", "integer", "", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller", 0),
    col("Ready", "integer", "", "The number of ready replicas for this replication controller.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
];

const RS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Desired", "integer", "", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset", 0),
    col("Current", "integer", "", "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset", 0),
    col("Ready", "integer", "", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
];

const DS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Desired", "integer", "", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
    col("Current", "integer", "", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
    col("Ready", "integer", "", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", 0),
    col("Up-to-date", "integer", "", "The total number of nodes that are running updated daemon pod", 0),
    col("Available", "integer", "", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0),
    col("Node Selector", "string", "", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
];

const JOB: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Status", "string", "", "Status of the job.", 0),
    col("Completions", "string", "", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.", 0),
    col("Duration", "string", "", "Time required to complete the job.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
];

const CRONJOB: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Schedule", "string", "", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.", 0),
    col("Timezone", "string", "", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones", 0),
    col("Suspend", "boolean", "", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.", 0),
    col("Active", "integer", "", "A list of pointers to currently running jobs.", 0),
    col("Last Schedule", "string", "", "Information when was the last time the job was successfully scheduled.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
];

const SERVICE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Type", "string", "", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types", 0),
    col("Cluster-IP", "string", "", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
    col("External-IP", "string", "", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.", 0),
    col("Port(s)", "string", "", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Selector", "string", "", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/", 1),
];

const INGRESS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Class",
        "string",
        "",
        "The name of the IngressClass resource that should be used for additional configuration",
        0,
    ),
    col(
        "Hosts",
        "string",
        "",
        "Hosts that incoming requests are matched against before the ingress rule",
        0,
    ),
    col(
        "Address",
        "string",
        "",
        "Address is a list containing ingress points for the load-balancer",
        0,
    ),
    col(
        "Ports",
        "string",
        "",
        "Ports of TLS configurations that open",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const INGRESS_CLASS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Controller",
        "string",
        "",
        "Controller that is responsible for handling this class",
        0,
    ),
    col(
        "Parameters",
        "string",
        "",
        "A reference to a resource with additional parameters",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const STS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Ready",
        "string",
        "",
        "Number of the pod with ready state",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
];

const ENDPOINTS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Endpoints", "string", "", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const NODE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Status", "string", "", "The status of the node", 0),
    col("Roles", "string", "", "The roles of the node", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Version", "string", "", "Kubelet Version reported by the node.", 0),
    col("Internal-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).", 1),
    col("External-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).", 1),
    col("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
    col("Kernel-Version", "string", "", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    col("Container-Runtime", "string", "", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
];

const EVENT: &[Column] = &[
    col("Last Seen", "string", "", "The time at which the most recent occurrence of this event was recorded.", 0),
    col("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future", 0),
    col("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
    col("Object", "string", "", "The object that this event is about.", 0),
    col("Subobject", "string", "", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.", 1),
    col("Source", "string", "", "The component reporting this event. Should be a short machine understandable string.", 1),
    col("Message", "string", "", "A human-readable description of the status of this operation.", 0),
    col("First Seen", "string", "", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
    col("Count", "string", "", "The number of times this event has occurred.", 1),
    col("Name", "string", "name", NAME_DESC, 1),
];

const NAMESPACE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Status", "string", "", "The status of the namespace", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const SECRET: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Type", "string", "", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types", 0),
    col("Data", "string", "", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const SERVICE_ACCOUNT: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Secrets", "string", "", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const PV: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Capacity", "string", "", "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity", 0),
    col("Access Modes", "string", "", "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes", 0),
    col("Reclaim Policy", "string", "", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming", 0),
    col("Status", "string", "", "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase", 0),
    col("Claim", "string", "", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding", 0),
    col("StorageClass", "string", "", "StorageClass of the pv", 0),
    col("VolumeAttributesClass", "string", "", "VolumeAttributesClass of the pv", 0),
    col("Reason", "string", "", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("VolumeMode", "string", "", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.", 1),
];

const PVC: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Status", "string", "", "phase represents the current phase of PersistentVolumeClaim.", 0),
    col("Volume", "string", "", "volumeName is the binding reference to the PersistentVolume backing this claim.", 0),
    col("Capacity", "string", "", "capacity represents the actual resources of the underlying volume.", 0),
    col("Access Modes", "string", "", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1", 0),
    col("StorageClass", "string", "", "StorageClass of the pvc", 0),
    col("VolumeAttributesClass", "string", "", "VolumeAttributesClass of the pvc", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("VolumeMode", "string", "", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.", 1),
];

const COMPONENT_STATUS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Status",
        "string",
        "",
        "Status of the component conditions",
        0,
    ),
    col(
        "Message",
        "string",
        "",
        "Message of the component conditions",
        0,
    ),
    col(
        "Error",
        "string",
        "",
        "Error of the component conditions",
        0,
    ),
];

const DEPLOYMENT: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Ready", "string", "", "Number of the pod with ready state", 0),
    col("Up-to-date", "string", "", "Total number of non-terminating pods targeted by this deployment that have the desired template spec.", 0),
    col("Available", "string", "", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Containers", "string", "", CONTAINERS_DESC, 1),
    col("Images", "string", "", IMAGES_DESC, 1),
    col("Selector", "string", "", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1),
];

const HPA: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Reference", "string", "", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.", 0),
    col("Targets", "string", "", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond.", 0),
    col("MinPods", "string", "", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.", 0),
    col("MaxPods", "string", "", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.", 0),
    col("Replicas", "string", "", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const CONFIG_MAP: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Data", "string", "", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const NETWORK_POLICY: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Pod-Selector", "string", "", "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods.  In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const ROLE_BINDING: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Role", "string", "", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Users", "string", "", "Users in the roleBinding", 1),
    col("Groups", "string", "", "Groups in the roleBinding", 1),
    col("ServiceAccounts", "string", "", "ServiceAccounts in the roleBinding", 1),
];

const CLUSTER_ROLE_BINDING: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Role", "string", "", "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("Users", "string", "", "Users in the clusterRoleBinding", 1),
    col("Groups", "string", "", "Groups in the clusterRoleBinding", 1),
    col("ServiceAccounts", "string", "", "ServiceAccounts in the clusterRoleBinding", 1),
];

const CSR: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("SignerName", "string", "", "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`.", 0),
    col("Requestor", "string", "", "Base64-encoded PKCS#10 CSR data", 0),
    col("RequestedDuration", "string", "", "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.", 0),
    col("Condition", "string", "", "Conditions applied to the request, such as approval or denial.", 0),
];

const LEASE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Holder", "string", "", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const STORAGE_CLASS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Provisioner", "string", "", "provisioner indicates the type of the provisioner.", 0),
    col("ReclaimPolicy", "string", "", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.", 0),
    col("VolumeBindingMode", "string", "", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.", 0),
    col("AllowVolumeExpansion", "string", "", "allowVolumeExpansion shows whether the storage class allow volume expand.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const CONTROLLER_REVISION: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Controller", "string", "", "Controller of the object", 0),
    col(
        "Revision",
        "string",
        "",
        "revision indicates the revision of the state represented by Data.",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const RESOURCE_QUOTA: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Request", "string", "", "Request represents a minimum amount of cpu/memory that a container may consume.", 0),
    col("Limit", "string", "", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const PRIORITY_CLASS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Value", "integer", "", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.", 0),
    col("Global-Default", "boolean", "", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("PreemptionPolicy", "string", "", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.", 0),
];

const RUNTIME_CLASS: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Handler", "string", "", "", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const VOLUME_ATTACHMENT: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Attacher", "string", "name", "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().", 0),
    col("PV", "string", "", "persistentVolumeName represents the name of the persistent volume to attach.", 0),
    col("Node", "string", "", "nodeName represents the node that the volume should be attached to.", 0),
    col("Attached", "boolean", "", "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const ENDPOINT_SLICE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("AddressType", "string", "", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.", 0),
    col("Ports", "string", "", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.", 0),
    col("Endpoints", "string", "", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const CSI_NODE: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Drivers",
        "integer",
        "",
        "Drivers indicates the number of CSI drivers registered on the node",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const CSI_DRIVER: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("AttachRequired", "boolean", "", "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the CSIDriverRegistry feature gate is enabled and the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable.", 0),
    col("PodInfoOnMount", "boolean", "", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is responsible for parsing and validating the information passed in as VolumeContext.\n\nThe following VolumeContext will be passed if podInfoOnMount is set to true. This list might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name \"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral inline volume\n                                defined by a CSIVolumeSource, otherwise \"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is only required for drivers which support both the \"Persistent\" and \"Ephemeral\" VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this field. As Kubernetes 1.15 doesn't support this field, drivers can only support one mode when deployed on such a cluster and the deployment determines which mode that is, for example via a command line parameter of the driver.\n\nThis field was immutable in Kubernetes < 1.29 and now is mutable.", 0),
    col("StorageCapacity", "boolean", "", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can be enabled immediately when deploying a driver. In that case, provisioning new volumes with late binding will pause until the driver deployment has published some suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field unset or false and it can be flipped later when storage capacity information has been published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable.", 0),
    col("TokenRequests", "string", "", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n  \"<audience>\": {\n    \"token\": <token>,\n    \"expirationTimestamp\": <expiration timestamp in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in each TokenRequest should be different and at most one token is empty string. To receive a new token after expiry, RequiresRepublish can be used to trigger NodePublishVolume periodically.", 0),
    col("RequiresRepublish", "boolean", "", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false.\n\nNote: After a successful initial NodePublishVolume call, subsequent calls to NodePublishVolume should only update the contents of the volume. New mount points will not be seen by a running container.", 0),
    col("Modes", "string", "", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A driver has to be aware of this because it is only going to get a NodePublishVolume call for such a volume.\n\nFor more information about implementing this mode, see https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can support one or more of these modes and more modes may be added in the future.\n\nThis field is beta. This field is immutable.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const WEBHOOK: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col(
        "Webhooks",
        "integer",
        "",
        "Webhooks indicates the number of webhooks registered in this configuration",
        0,
    ),
    col("Age", "string", "", CREATED_DESC, 0),
];

const FLOW_SCHEMA: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("PriorityLevel", "string", "", "`name` is the name of the priority level configuration being referenced Required.", 0),
    col("MatchingPrecedence", "string", "", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.", 0),
    col("DistinguisherMethod", "string", "", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
    col("MissingPL", "string", "", "references a broken or non-existent PriorityLevelConfiguration", 0),
];

const PRIORITY_LEVEL: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Type", "string", "", "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.", 0),
    col("NominalConcurrencyShares", "string", "", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution seats available at this priority level. This is used both for requests dispatched from this priority level as well as requests dispatched from other priority levels borrowing seats from this level. The server's concurrency limit (ServerCL) is divided among the Limited priority levels in proportion to their NCS values:\n\nNominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] NCS(k)\n\nBigger numbers mean a larger nominal concurrency limit, at the expense of every other priority level.\n\nIf not specified, this field defaults to a value of 30.\n\nSetting this field to zero supports the construction of a \"jail\" for this priority level that is used to hold some request(s)", 0),
    col("Queues", "string", "", "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.", 0),
    col("HandSize", "string", "", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  When enqueuing a request at this priority level the request's flow identifier (a string pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the size specified here.  The request is put into one of the shortest queues in that hand. `handSize` must be no larger than `queues`, and should be significantly smaller (so that a few heavy flows do not saturate most of the queues).  See the user-facing documentation for more extensive guidance on setting this field.  This field has a default value of 8.", 0),
    col("QueueLengthLimit", "string", "", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.", 0),
    col("Age", "string", "", CREATED_DESC, 0),
];

const DEFAULT: &[Column] = &[
    col("Name", "string", "name", NAME_DESC, 0),
    col("Created At", "date", "", CREATED_DESC, 0),
];

/// The printer of a built-in resource.
#[derive(Clone, Copy)]
enum Printer {
    Pod,
    PodTemplate,
    Pdb,
    Rc,
    Rs,
    Ds,
    Job,
    CronJob,
    Service,
    Ingress,
    IngressClass,
    Sts,
    Endpoints,
    Node,
    Event,
    EventV1,
    Namespace,
    Secret,
    ServiceAccount,
    Pv,
    Pvc,
    ComponentStatus,
    Deployment,
    Hpa,
    ConfigMap,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    Csr,
    Lease,
    StorageClass,
    ControllerRevision,
    ResourceQuota,
    PriorityClass,
    RuntimeClass,
    VolumeAttachment,
    EndpointSlice,
    CsiNode,
    CsiDriver,
    Webhook,
    FlowSchema,
    PriorityLevel,
}

fn printer(group: &str, resource: &str) -> Option<Printer> {
    Some(match (group, resource) {
        ("", "pods") => Printer::Pod,
        ("", "podtemplates") => Printer::PodTemplate,
        ("", "replicationcontrollers") => Printer::Rc,
        ("", "services") => Printer::Service,
        ("", "endpoints") => Printer::Endpoints,
        ("", "nodes") => Printer::Node,
        ("", "events") => Printer::Event,
        ("", "namespaces") => Printer::Namespace,
        ("", "secrets") => Printer::Secret,
        ("", "serviceaccounts") => Printer::ServiceAccount,
        ("", "persistentvolumes") => Printer::Pv,
        ("", "persistentvolumeclaims") => Printer::Pvc,
        ("", "componentstatuses") => Printer::ComponentStatus,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "resourcequotas") => Printer::ResourceQuota,
        ("apps", "deployments") => Printer::Deployment,
        ("apps", "replicasets") => Printer::Rs,
        ("apps", "statefulsets") => Printer::Sts,
        ("apps", "daemonsets") => Printer::Ds,
        ("apps", "controllerrevisions") => Printer::ControllerRevision,
        ("batch", "jobs") => Printer::Job,
        ("batch", "cronjobs") => Printer::CronJob,
        ("autoscaling", "horizontalpodautoscalers") => Printer::Hpa,
        ("policy", "poddisruptionbudgets") => Printer::Pdb,
        ("networking.k8s.io", "ingresses") => Printer::Ingress,
        ("networking.k8s.io", "ingressclasses") => Printer::IngressClass,
        ("networking.k8s.io", "networkpolicies") => Printer::NetworkPolicy,
        ("events.k8s.io", "events") => Printer::EventV1,
        ("rbac.authorization.k8s.io", "rolebindings") => Printer::RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => Printer::ClusterRoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests") => Printer::Csr,
        ("coordination.k8s.io", "leases") => Printer::Lease,
        ("storage.k8s.io", "storageclasses") => Printer::StorageClass,
        ("storage.k8s.io", "volumeattachments") => Printer::VolumeAttachment,
        ("storage.k8s.io", "csinodes") => Printer::CsiNode,
        ("storage.k8s.io", "csidrivers") => Printer::CsiDriver,
        ("scheduling.k8s.io", "priorityclasses") => Printer::PriorityClass,
        ("node.k8s.io", "runtimeclasses") => Printer::RuntimeClass,
        ("discovery.k8s.io", "endpointslices") => Printer::EndpointSlice,
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => Printer::Webhook,
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => Printer::FlowSchema,
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => Printer::PriorityLevel,
        _ => return None,
    })
}

impl Printer {
    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD,
            Printer::PodTemplate => POD_TEMPLATE,
            Printer::Pdb => PDB,
            Printer::Rc => RC,
            Printer::Rs => RS,
            Printer::Ds => DS,
            Printer::Job => JOB,
            Printer::CronJob => CRONJOB,
            Printer::Service => SERVICE,
            Printer::Ingress => INGRESS,
            Printer::IngressClass => INGRESS_CLASS,
            Printer::Sts => STS,
            Printer::Endpoints => ENDPOINTS,
            Printer::Node => NODE,
            Printer::Event | Printer::EventV1 => EVENT,
            Printer::Namespace => NAMESPACE,
            Printer::Secret => SECRET,
            Printer::ServiceAccount => SERVICE_ACCOUNT,
            Printer::Pv => PV,
            Printer::Pvc => PVC,
            Printer::ComponentStatus => COMPONENT_STATUS,
            Printer::Deployment => DEPLOYMENT,
            Printer::Hpa => HPA,
            Printer::ConfigMap => CONFIG_MAP,
            Printer::NetworkPolicy => NETWORK_POLICY,
            Printer::RoleBinding => ROLE_BINDING,
            Printer::ClusterRoleBinding => CLUSTER_ROLE_BINDING,
            Printer::Csr => CSR,
            Printer::Lease => LEASE,
            Printer::StorageClass => STORAGE_CLASS,
            Printer::ControllerRevision => CONTROLLER_REVISION,
            Printer::ResourceQuota => RESOURCE_QUOTA,
            Printer::PriorityClass => PRIORITY_CLASS,
            Printer::RuntimeClass => RUNTIME_CLASS,
            Printer::VolumeAttachment => VOLUME_ATTACHMENT,
            Printer::EndpointSlice => ENDPOINT_SLICE,
            Printer::CsiNode => CSI_NODE,
            Printer::CsiDriver => CSI_DRIVER,
            Printer::Webhook => WEBHOOK,
            Printer::FlowSchema => FLOW_SCHEMA,
            Printer::PriorityLevel => PRIORITY_LEVEL,
        }
    }

    fn cells(self, o: &Value, now: Timestamp) -> Vec<Value> {
        match self {
            Printer::Pod => pod_cells(o, now),
            Printer::PodTemplate => {
                let (names, images) = containers(o, &["template", "spec", "containers"]);
                vec![
                    name(o),
                    names.into(),
                    images.into(),
                    format_labels(at(o, &["template", "metadata", "labels"])).into(),
                ]
            }
            Printer::Pdb => {
                let int_or_string = |path: &[&str]| match at(o, path) {
                    Value::Null => "N/A".to_string(),
                    v => scalar_text(v),
                };
                vec![
                    name(o),
                    int_or_string(&["spec", "minAvailable"]).into(),
                    int_or_string(&["spec", "maxUnavailable"]).into(),
                    int_at(o, &["status", "disruptionsAllowed"]).into(),
                    age(o, now),
                ]
            }
            Printer::Rc => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name(o),
                    replicas(o).into(),
                    int_at(o, &["status", "replicas"]).into(),
                    int_at(o, &["status", "readyReplicas"]).into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                    format_labels(at(o, &["spec", "selector"])).into(),
                ]
            }
            Printer::Rs => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name(o),
                    replicas(o).into(),
                    int_at(o, &["status", "replicas"]).into(),
                    int_at(o, &["status", "readyReplicas"]).into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                    format_label_selector(at(o, &["spec", "selector"])).into(),
                ]
            }
            Printer::Ds => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                let status = |f: &str| Value::from(int_at(o, &["status", f]));
                vec![
                    name(o),
                    status("desiredNumberScheduled"),
                    status("currentNumberScheduled"),
                    status("numberReady"),
                    status("updatedNumberScheduled"),
                    status("numberAvailable"),
                    format_labels(at(o, &["spec", "template", "spec", "nodeSelector"])).into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                    format_label_selector(at(o, &["spec", "selector"])).into(),
                ]
            }
            Printer::Job => job_cells(o, now),
            Printer::CronJob => {
                let (names, images) = containers(
                    o,
                    &[
                        "spec",
                        "jobTemplate",
                        "spec",
                        "template",
                        "spec",
                        "containers",
                    ],
                );
                let last = match at(o, &["status", "lastScheduleTime"]) {
                    Value::Null => "<none>".to_string(),
                    t => since_opt(parse_time(t), now),
                };
                let suspend = match at(o, &["spec", "suspend"]) {
                    Value::Bool(true) => "True",
                    _ => "False",
                };
                vec![
                    name(o),
                    str_at(o, &["spec", "schedule"]).into(),
                    or_null(at(o, &["spec", "timeZone"]), "<none>").into(),
                    suspend.into(),
                    (list_at(o, &["status", "active"]).len() as i64).into(),
                    last.into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                    format_label_selector(at(o, &["spec", "jobTemplate", "spec", "selector"]))
                        .into(),
                ]
            }
            Printer::Service => service_cells(o, now),
            Printer::Ingress => {
                let rules = list_at(o, &["spec", "rules"]);
                let tls = list_at(o, &["spec", "tls"]);
                vec![
                    name(o),
                    or_null(at(o, &["spec", "ingressClassName"]), "<none>").into(),
                    format_hosts(rules).into(),
                    load_balancer_ingress(o).into(),
                    (if tls.is_empty() { "80" } else { "80, 443" }).into(),
                    age(o, now),
                ]
            }
            Printer::IngressClass => {
                let parameters = match at(o, &["spec", "parameters"]) {
                    Value::Object(p) => {
                        let p = Value::Object(p.clone());
                        let mut s = str_at(&p, &["kind"]).to_string();
                        if let Some(group) = at(&p, &["apiGroup"]).as_str() {
                            s = format!("{s}.{group}");
                        }
                        format!("{s}/{}", str_at(&p, &["name"]))
                    }
                    _ => "<none>".to_string(),
                };
                vec![
                    name(o),
                    str_at(o, &["spec", "controller"]).into(),
                    parameters.into(),
                    age(o, now),
                ]
            }
            Printer::Sts => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name(o),
                    format!(
                        "{}/{}",
                        int_at(o, &["status", "readyReplicas"]),
                        replicas(o)
                    )
                    .into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                ]
            }
            Printer::Endpoints => vec![name(o), format_endpoints(o).into(), age(o, now)],
            Printer::Node => node_cells(o, now),
            Printer::Event => event_cells(o, now, &EventShape::CORE),
            Printer::EventV1 => event_cells(o, now, &EventShape::EVENTS_V1),
            Printer::Namespace => {
                vec![name(o), str_at(o, &["status", "phase"]).into(), age(o, now)]
            }
            Printer::Secret => {
                // stringData is merged into data on write; count each key once.
                let mut keys: Vec<&String> = Vec::new();
                for field in ["data", "stringData"] {
                    if let Value::Object(m) = at(o, &[field]) {
                        keys.extend(m.keys());
                    }
                }
                keys.sort_unstable();
                keys.dedup();
                vec![
                    name(o),
                    or_default(str_at(o, &["type"]), "Opaque").into(),
                    (keys.len() as i64).into(),
                    age(o, now),
                ]
            }
            Printer::ServiceAccount => vec![
                name(o),
                (list_at(o, &["secrets"]).len() as i64).into(),
                age(o, now),
            ],
            Printer::Pv => pv_cells(o, now),
            Printer::Pvc => pvc_cells(o, now),
            Printer::ComponentStatus => {
                let healthy = list_at(o, &["conditions"])
                    .iter()
                    .find(|c| str_at(c, &["type"]) == "Healthy");
                let (status, message, error) = match healthy {
                    Some(c) => (
                        if str_at(c, &["status"]) == "True" {
                            "Healthy"
                        } else {
                            "Unhealthy"
                        },
                        str_at(c, &["message"]),
                        str_at(c, &["error"]),
                    ),
                    None => ("Unknown", "", ""),
                };
                vec![name(o), status.into(), message.into(), error.into()]
            }
            Printer::Deployment => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                let selector = match LabelSelector::from_object(at(o, &["spec", "selector"])) {
                    Ok(s) => s.to_string(),
                    Err(_) => "<invalid>".to_string(),
                };
                vec![
                    name(o),
                    format!(
                        "{}/{}",
                        int_at(o, &["status", "readyReplicas"]),
                        replicas(o)
                    )
                    .into(),
                    int_at(o, &["status", "updatedReplicas"]).into(),
                    int_at(o, &["status", "availableReplicas"]).into(),
                    age(o, now),
                    names.into(),
                    images.into(),
                    selector.into(),
                ]
            }
            Printer::Hpa => hpa_cells(o, now),
            Printer::ConfigMap => vec![
                name(o),
                ((len_at(o, &["data"]) + len_at(o, &["binaryData"])) as i64).into(),
                age(o, now),
            ],
            Printer::NetworkPolicy => {
                let selector = match at(o, &["spec", "podSelector"]) {
                    Value::Null => "<none>".to_string(),
                    v => format_label_selector(v),
                };
                vec![name(o), selector.into(), age(o, now)]
            }
            Printer::RoleBinding | Printer::ClusterRoleBinding => {
                let (users, groups, sas) = subjects(list_at(o, &["subjects"]));
                vec![
                    name(o),
                    format!(
                        "{}/{}",
                        str_at(o, &["roleRef", "kind"]),
                        str_at(o, &["roleRef", "name"])
                    )
                    .into(),
                    age(o, now),
                    users.join(", ").into(),
                    groups.join(", ").into(),
                    sas.join(", ").into(),
                ]
            }
            Printer::Csr => csr_cells(o, now),
            Printer::Lease => vec![
                name(o),
                str_at(o, &["spec", "holderIdentity"]).into(),
                age(o, now),
            ],
            Printer::StorageClass => {
                let mut n = str_at(o, &["metadata", "name"]).to_string();
                if is_default_class(o) {
                    n.push_str(" (default)");
                }
                vec![
                    n.into(),
                    str_at(o, &["provisioner"]).into(),
                    or_default(str_at(o, &["reclaimPolicy"]), "Delete").into(),
                    or_default(str_at(o, &["volumeBindingMode"]), "Immediate").into(),
                    bool_at(o, &["allowVolumeExpansion"], false).into(),
                    age(o, now),
                ]
            }
            Printer::ControllerRevision => {
                let owner = list_at(o, &["metadata", "ownerReferences"])
                    .iter()
                    .find(|r| at(r, &["controller"]) == &Value::Bool(true));
                let controller = match owner {
                    None => "<none>".to_string(),
                    Some(r) => {
                        let api_version = str_at(r, &["apiVersion"]);
                        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                        let kind = str_at(r, &["kind"]);
                        let ref_name = str_at(r, &["name"]);
                        match (kind, group) {
                            ("", "") => ref_name.to_string(),
                            (kind, "") => format!("{}/{ref_name}", kind.to_lowercase()),
                            (kind, group) => {
                                format!(
                                    "{}.{}/{ref_name}",
                                    kind.to_lowercase(),
                                    group.to_lowercase()
                                )
                            }
                        }
                    }
                };
                vec![
                    name(o),
                    controller.into(),
                    int_at(o, &["revision"]).into(),
                    age(o, now),
                ]
            }
            Printer::ResourceQuota => quota_cells(o, now),
            Printer::PriorityClass => vec![
                name(o),
                int_at(o, &["value"]).into(),
                bool_at(o, &["globalDefault"], false).into(),
                age(o, now),
                str_at(o, &["preemptionPolicy"]).into(),
            ],
            Printer::RuntimeClass => vec![name(o), str_at(o, &["handler"]).into(), age(o, now)],
            Printer::VolumeAttachment => vec![
                name(o),
                str_at(o, &["spec", "attacher"]).into(),
                str_at(o, &["spec", "source", "persistentVolumeName"]).into(),
                str_at(o, &["spec", "nodeName"]).into(),
                bool_at(o, &["status", "attached"], false).into(),
                age(o, now),
            ],
            Printer::EndpointSlice => vec![
                name(o),
                str_at(o, &["addressType"]).into(),
                format_slice_ports(list_at(o, &["ports"])).into(),
                format_slice_endpoints(list_at(o, &["endpoints"])).into(),
                age(o, now),
            ],
            Printer::CsiNode => vec![
                name(o),
                (list_at(o, &["spec", "drivers"]).len() as i64).into(),
                age(o, now),
            ],
            Printer::CsiDriver => {
                let token_requests = match at(o, &["spec", "tokenRequests"]) {
                    Value::Array(t) => t
                        .iter()
                        .map(|t| str_at(t, &["audience"]))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => "<unset>".to_string(),
                };
                let modes: Vec<&str> = list_at(o, &["spec", "volumeLifecycleModes"])
                    .iter()
                    .map(|m| m.as_str().unwrap_or(""))
                    .collect();
                vec![
                    name(o),
                    bool_at(o, &["spec", "attachRequired"], true).into(),
                    bool_at(o, &["spec", "podInfoOnMount"], false).into(),
                    bool_at(o, &["spec", "storageCapacity"], false).into(),
                    token_requests.into(),
                    bool_at(o, &["spec", "requiresRepublish"], false).into(),
                    or_none(&modes.join(",")).into(),
                    age(o, now),
                ]
            }
            Printer::Webhook => vec![
                name(o),
                (list_at(o, &["webhooks"]).len() as i64).into(),
                age(o, now),
            ],
            Printer::FlowSchema => {
                let distinguisher = match at(o, &["spec", "distinguisherMethod"]) {
                    Value::Null => "<none>".to_string(),
                    d => str_at(d, &["type"]).to_string(),
                };
                let missing = list_at(o, &["status", "conditions"])
                    .iter()
                    .find(|c| str_at(c, &["type"]) == "Dangling")
                    .map_or("?", |c| str_at(c, &["status"]));
                vec![
                    name(o),
                    str_at(o, &["spec", "priorityLevelConfiguration", "name"]).into(),
                    int_at(o, &["spec", "matchingPrecedence"]).into(),
                    distinguisher.into(),
                    age(o, now),
                    missing.into(),
                ]
            }
            Printer::PriorityLevel => {
                let none = || Value::from("<none>");
                let (mut shares, mut queues, mut hand, mut limit) =
                    (none(), none(), none(), none());
                if let limited @ Value::Object(_) = at(o, &["spec", "limited"]) {
                    shares = int_at(limited, &["nominalConcurrencyShares"]).into();
                    if let q @ Value::Object(_) = at(limited, &["limitResponse", "queuing"]) {
                        queues = int_at(q, &["queues"]).into();
                        hand = int_at(q, &["handSize"]).into();
                        limit = int_at(q, &["queueLengthLimit"]).into();
                    }
                }
                vec![
                    name(o),
                    str_at(o, &["spec", "type"]).into(),
                    shares,
                    queues,
                    hand,
                    limit,
                    age(o, now),
                ]
            }
        }
    }
}

/// The columns of a built-in resource's printer (group `""` is core); `None` for resources
/// Kubernetes prints with the default table ([`default_columns`]).
pub fn columns(group: &str, resource: &str) -> Option<&'static [Column]> {
    printer(group, resource).map(Printer::columns)
}

/// One row's cells for a built-in resource, in the order of [`columns`] (the default table's
/// cells for resources without a printer). `now` is the server's clock, for ages.
pub fn cells(group: &str, resource: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer(group, resource) {
        Some(p) => p.cells(obj, now),
        None => default_cells(obj),
    }
}

/// The default table of resources without a printer: Name and Created At (type `date`).
pub fn default_columns() -> &'static [Column] {
    DEFAULT
}

/// The default table's cells: the name and `metadata.creationTimestamp` in RFC 3339 (UTC,
/// whole seconds; `0001-01-01T00:00:00Z` when unset, as Go prints a zero time).
pub fn default_cells(obj: &Value) -> Vec<Value> {
    let created = match at(obj, &["metadata", "creationTimestamp"]) {
        Value::String(s) if !s.is_empty() => match s.parse::<Timestamp>() {
            Ok(t) => rfc3339_seconds(t),
            Err(_) => s.clone(),
        },
        _ => "0001-01-01T00:00:00Z".to_string(),
    };
    vec![name(obj), created.into()]
}

fn rfc3339_seconds(t: Timestamp) -> String {
    match Timestamp::from_second(t.as_second()) {
        Ok(whole) => whole.to_string(),
        Err(_) => t.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading objects.
// ---------------------------------------------------------------------------------------------

static NULL: Value = Value::Null;

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().try_fold(v, |v, k| v.get(k)).unwrap_or(&NULL)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    int_of(at(v, path))
}

fn bool_at(v: &Value, path: &[&str], default: bool) -> bool {
    at(v, path).as_bool().unwrap_or(default)
}

fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map_or(&[], Vec::as_slice)
}

fn len_at(v: &Value, path: &[&str]) -> usize {
    match at(v, path) {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// A JSON scalar as Go's `%v` would print the decoded value.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_default<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// An optional string field (a Go `*string`): `default` when absent.
fn or_null(v: &Value, default: &str) -> String {
    match v {
        Value::Null => default.to_string(),
        v => scalar_text(v),
    }
}

fn or_none(s: &str) -> String {
    or_default(s, "<none>").to_string()
}

fn name(obj: &Value) -> Value {
    str_at(obj, &["metadata", "name"]).into()
}

/// `.spec.replicas`, defaulted to 1 like the workload APIs do.
fn replicas(obj: &Value) -> i64 {
    match at(obj, &["spec", "replicas"]) {
        Value::Null => 1,
        v => int_of(v),
    }
}

/// The Unix second of Go's zero `time.Time`, `0001-01-01T00:00:00Z`.
const GO_ZERO_SECOND: i64 = -62_135_596_800;

fn parse_time(v: &Value) -> Option<Timestamp> {
    let t = v.as_str()?.parse::<Timestamp>().ok()?;
    (t.as_second() != GO_ZERO_SECOND || t.subsec_nanosecond() != 0).then_some(t)
}

/// A set (non-zero) timestamp at `path`.
fn ts_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    parse_time(at(v, path))
}

/// `translateTimestampSince` for a set timestamp.
fn since(t: Timestamp, now: Timestamp) -> String {
    human_nanos(now.as_nanosecond() - t.as_nanosecond())
}

/// `translateTimestampSince`: `<unknown>` for a zero (unset) timestamp.
fn since_opt(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| since(t, now))
}

fn age(obj: &Value, now: Timestamp) -> Value {
    since_opt(ts_at(obj, &["metadata", "creationTimestamp"]), now).into()
}

/// kubectl's age format (`duration.HumanDuration`): `5s`, `2m3s`, `10m`, `5h`, `3d5h`, `2y12d`...
pub fn human_duration(d: Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// `duration.HumanDuration` of a signed duration in nanoseconds (negative within a second of
/// skew is `0s`, more is `<invalid>`).
fn human_nanos(nanos: i128) -> String {
    // Go's time.Duration is an int64 of nanoseconds, so longer spans saturate.
    let d = nanos.clamp(i64::MIN as i128, i64::MAX as i128);
    let seconds = d / 1_000_000_000;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// `layoutContainerCells`: container names and images, comma separated.
fn containers(obj: &Value, path: &[&str]) -> (String, String) {
    let list = list_at(obj, path);
    let names: Vec<&str> = list.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `labels.FormatLabels`: sorted `k=v` pairs, or `<none>`.
fn format_labels(v: &Value) -> String {
    let mut pairs: Vec<String> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar_text(v)))
            .collect(),
        _ => Vec::new(),
    };
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`: the selector's string, `<none>` if empty, `<error>` if invalid.
fn format_label_selector(v: &Value) -> String {
    match LabelSelector::from_object(v) {
        Ok(s) => {
            let s = s.to_string();
            if s.is_empty() {
                "<none>".to_string()
            } else {
                s
            }
        }
        Err(_) => "<error>".to_string(),
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    list_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
}

/// Whether the first condition of this type is `True`.
fn condition_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| str_at(c, &["status"]) == "True")
}

// ---------------------------------------------------------------------------------------------
// Printers.
// ---------------------------------------------------------------------------------------------

fn is_restartable(init_containers: &[Value], name: &str) -> bool {
    init_containers
        .iter()
        .find(|c| str_at(c, &["name"]) == name)
        .is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

fn later(current: Option<Timestamp>, candidate: Option<Timestamp>) -> Option<Timestamp> {
    match (current, candidate) {
        (Some(a), Some(b)) if b > a => Some(b),
        (None, b) => b,
        (a, _) => a,
    }
}

fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = str_at(terminated, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int_at(terminated, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(terminated, &["exitCode"]))
    }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = list_at(pod, &["spec", "initContainers"]);
    let mut total = list_at(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut restartable_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = or_default(str_at(pod, &["status", "reason"]), phase).to_string();
    if list_at(pod, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".to_string();
    }

    let mut initializing = false;
    for (i, status) in list_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts += int_at(status, &["restartCount"]);
        let finished = ts_at(status, &["lastState", "terminated", "finishedAt"]);
        last_restart = later(last_restart, finished);
        let restartable = is_restartable(init_specs, str_at(status, &["name"]));
        if restartable {
            restartable_restarts += int_at(status, &["restartCount"]);
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting = at(status, &["state", "waiting"]);
        if terminated.is_object() && int_at(terminated, &["exitCode"]) == 0 {
            continue;
        }
        if restartable && at(status, &["started"]) == &Value::Bool(true) {
            if bool_at(status, &["ready"], false) {
                ready += 1;
            }
            continue;
        }
        if terminated.is_object() {
            reason = terminated_reason(terminated, "Init:");
        } else if waiting.is_object()
            && !str_at(waiting, &["reason"]).is_empty()
            && str_at(waiting, &["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", str_at(waiting, &["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for status in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(status, &["restartCount"]);
            last_restart = later(
                last_restart,
                ts_at(status, &["lastState", "terminated", "finishedAt"]),
            );
            let waiting = at(status, &["state", "waiting"]);
            let terminated = at(status, &["state", "terminated"]);
            if waiting.is_object() && !str_at(waiting, &["reason"]).is_empty() {
                reason = str_at(waiting, &["reason"]).to_string();
            } else if terminated.is_object() {
                reason = terminated_reason(terminated, "");
            } else if bool_at(status, &["ready"], false)
                && at(status, &["state", "running"]).is_object()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let ready_condition = list_at(pod, &["status", "conditions"])
                .iter()
                .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True");
            reason = if ready_condition {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    let deleting = !at(pod, &["metadata", "deletionTimestamp"]).is_null();
    if deleting && str_at(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(t, now)),
        _ => restarts.to_string(),
    };

    // v1's podIP is authoritative over podIPs[0] when both are set (the v1 conversion).
    let pod_ip = match str_at(pod, &["status", "podIP"]) {
        "" => list_at(pod, &["status", "podIPs"])
            .first()
            .map_or("", |ip| str_at(ip, &["ip"])),
        ip => ip,
    };
    let gates = list_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let satisfied = gates
            .iter()
            .filter(|g| condition_true(pod, str_at(g, &["conditionType"])))
            .count();
        format!("{satisfied}/{}", gates.len())
    };
    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_text.into(),
        age(pod, now),
        or_none(pod_ip).into(),
        or_none(str_at(pod, &["spec", "nodeName"])).into(),
        or_none(str_at(pod, &["status", "nominatedNodeName"])).into(),
        readiness_gates.into(),
    ]
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]) {
        Value::Null => {
            let parallelism = int_at(job, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
        c => format!("{succeeded}/{}", int_of(c)),
    };
    let duration = match (
        ts_at(job, &["status", "startTime"]),
        ts_at(job, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(start, now),
        (Some(start), Some(end)) => since(start, end),
    };
    let status = if condition_true(job, "Complete") {
        "Complete"
    } else if condition_true(job, "Failed") {
        "Failed"
    } else if !at(job, &["metadata", "deletionTimestamp"]).is_null() {
        "Terminating"
    } else if condition_true(job, "Suspended") {
        "Suspended"
    } else if condition_true(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(job, &["spec", "template", "spec", "containers"]);
    vec![
        name(job),
        status.into(),
        completions.into(),
        duration.into(),
        age(job, now),
        names.into(),
        images.into(),
        format_label_selector(at(job, &["spec", "selector"])).into(),
    ]
}

/// `loadBalancerStatusStringer` (wide): the sorted, de-duplicated ingress IPs or hostnames.
fn load_balancer_ingress(obj: &Value) -> String {
    let mut entries: Vec<&str> = list_at(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    entries.sort_unstable();
    entries.dedup();
    entries.join(",")
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let type_ = or_default(str_at(svc, &["spec", "type"]), "ClusterIP");
    let cluster_ip = match str_at(svc, &["spec", "clusterIP"]) {
        "" => list_at(svc, &["spec", "clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or(""),
        ip => ip,
    };
    let external_ips: Vec<&str> = list_at(svc, &["spec", "externalIPs"])
        .iter()
        .map(|ip| ip.as_str().unwrap_or(""))
        .collect();
    let external = match type_ {
        "ClusterIP" | "NodePort" => or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_ingress(svc);
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(','));
                }
                all.extend(&external_ips);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = or_default(str_at(p, &["protocol"]), "TCP");
            let node_port = int_at(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    vec![
        name(svc),
        type_.into(),
        or_none(cluster_ip).into(),
        external.into(),
        or_none(&ports.join(",")).into(),
        age(svc, now),
        format_labels(at(svc, &["spec", "selector"])).into(),
    ]
}

/// `formatHosts`: up to three rule hosts, `*` if none.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints` with all ports: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

fn format_slice_ports(ports: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    for port in ports {
        if list.len() < MAX {
            let text = match (at(port, &["port"]), at(port, &["name"])) {
                (Value::Null, Value::String(name)) => name.clone(),
                (Value::Null, _) => "*".to_string(),
                (p, _) => int_of(p).to_string(),
            };
            list.push(text);
        } else if list.len() == MAX {
            more = true;
        }
    }
    list_with_more(&list, more, ports.len(), MAX)
}

fn format_slice_endpoints(endpoints: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for endpoint in endpoints {
        for address in list_at(endpoint, &["addresses"]) {
            if list.len() < MAX {
                list.push(address.as_str().unwrap_or("").to_string());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // Like the map Kubernetes builds, the last Ready condition wins.
    let ready = list_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"], false) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = match at(node, &["metadata", "labels"]) {
        Value::Object(labels) => labels
            .iter()
            .filter_map(|(k, v)| {
                if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                    (!role.is_empty()).then_some(role)
                } else if k == "kubernetes.io/role" {
                    v.as_str().filter(|v| !v.is_empty())
                } else {
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    roles.sort_unstable();
    roles.dedup();
    let address = |type_: &str| {
        list_at(node, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == type_)
            .map_or("<none>", |a| str_at(a, &["address"]))
            .to_string()
    };
    let info =
        |f: &str| or_default(str_at(node, &["status", "nodeInfo", f]), "<unknown>").to_string();
    vec![
        name(node),
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        age(node, now),
        str_at(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

/// Where core/v1 and events.k8s.io/v1 keep the fields the event printer uses.
struct EventShape {
    controller: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    object: &'static str,
    source: &'static str,
    message: &'static str,
}

impl EventShape {
    const CORE: EventShape = EventShape {
        controller: "reportingComponent",
        first: "firstTimestamp",
        last: "lastTimestamp",
        count: "count",
        object: "involvedObject",
        source: "source",
        message: "message",
    };
    const EVENTS_V1: EventShape = EventShape {
        controller: "reportingController",
        first: "deprecatedFirstTimestamp",
        last: "deprecatedLastTimestamp",
        count: "deprecatedCount",
        object: "regarding",
        source: "deprecatedSource",
        message: "note",
    };
}

fn event_cells(event: &Value, now: Timestamp, shape: &EventShape) -> Vec<Value> {
    let first = match ts_at(event, &[shape.first]) {
        Some(t) => since(t, now),
        None => since_opt(ts_at(event, &["eventTime"]), now),
    };
    let mut last = match ts_at(event, &[shape.last]) {
        Some(t) => since(t, now),
        None => first.clone(),
    };
    let mut count = int_at(event, &[shape.count]);
    let series = at(event, &["series"]);
    if series.is_object() {
        last = since_opt(ts_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let object = at(event, &[shape.object]);
    let kind = str_at(object, &["kind"]).to_lowercase();
    let target = match str_at(object, &["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = or_default(
        str_at(event, &[shape.source, "component"]),
        str_at(event, &[shape.controller]),
    );
    let host = or_default(
        str_at(event, &[shape.source, "host"]),
        str_at(event, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        last.into(),
        str_at(event, &["type"]).into(),
        str_at(event, &["reason"]).into(),
        target.into(),
        str_at(object, &["fieldPath"]).into(),
        source.into(),
        str_at(event, &[shape.message]).trim().into(),
        first.into(),
        count.into(),
        name(event),
    ]
}

/// `helper.GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// A Quantity's string (`"0"` for a missing one, as Go prints a zero Quantity).
fn quantity(v: &Value) -> String {
    match v {
        Value::Null => "0".to_string(),
        v => scalar_text(v),
    }
}

fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match at(pv, &["spec", "claimRef"]) {
        Value::Object(_) => format!(
            "{}/{}",
            str_at(pv, &["spec", "claimRef", "namespace"]),
            str_at(pv, &["spec", "claimRef", "name"])
        ),
        _ => String::new(),
    };
    let phase = if at(pv, &["metadata", "deletionTimestamp"]).is_null() {
        or_default(str_at(pv, &["status", "phase"]), "Pending")
    } else {
        "Terminating"
    };
    let class = match at(pv, &["metadata", "annotations", BETA_STORAGE_CLASS]) {
        Value::String(c) => c.as_str(),
        _ => str_at(pv, &["spec", "storageClassName"]),
    };
    vec![
        name(pv),
        quantity(at(pv, &["spec", "capacity", "storage"])).into(),
        access_modes(list_at(pv, &["spec", "accessModes"])).into(),
        or_default(
            str_at(pv, &["spec", "persistentVolumeReclaimPolicy"]),
            "Retain",
        )
        .into(),
        phase.into(),
        claim.into(),
        class.into(),
        or_null(at(pv, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        str_at(pv, &["status", "reason"]).into(),
        age(pv, now),
        or_default(str_at(pv, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if at(pvc, &["metadata", "deletionTimestamp"]).is_null() {
        or_default(str_at(pvc, &["status", "phase"]), "Pending")
    } else {
        "Terminating"
    };
    let volume = str_at(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(list_at(pvc, &["status", "accessModes"])),
        )
    };
    let class = match at(pvc, &["metadata", "annotations", BETA_STORAGE_CLASS]) {
        Value::String(c) => c.as_str(),
        _ => str_at(pvc, &["spec", "storageClassName"]),
    };
    vec![
        name(pvc),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        or_null(at(pvc, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        age(pvc, now),
        or_default(str_at(pvc, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

/// `rbac.SubjectsStrings`: users, groups and `namespace/name` service accounts.
fn subjects(subjects: &[Value]) -> (Vec<&str>, Vec<&str>, Vec<String>) {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in subjects {
        let n = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{n}", str_at(s, &["namespace"]))),
            "User" => users.push(n),
            "Group" => groups.push(n),
            _ => {}
        }
    }
    (users, groups, sas)
}

fn csr_cells(csr: &Value, now: Timestamp) -> Vec<Value> {
    let types: Vec<&str> = list_at(csr, &["status", "conditions"])
        .iter()
        .map(|c| str_at(c, &["type"]))
        .collect();
    let mut status = if types.contains(&"Denied") {
        "Denied"
    } else if types.contains(&"Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if types.contains(&"Failed") {
        status.push_str(",Failed");
    }
    if !str_at(csr, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    let duration = match at(csr, &["spec", "expirationSeconds"]) {
        Value::Null => "<none>".to_string(),
        v => human_nanos(i128::from(int_of(v)) * 1_000_000_000),
    };
    vec![
        name(csr),
        age(csr, now),
        or_none(str_at(csr, &["spec", "signerName"])).into(),
        str_at(csr, &["spec", "username"]).into(),
        duration.into(),
        status.into(),
    ]
}

fn is_default_class(obj: &Value) -> bool {
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|a| str_at(obj, &["metadata", "annotations", a]) == "true")
}

fn quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let hard: Vec<(&String, &Value)> = match at(quota, &["status", "hard"]) {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            entries
        }
        _ => Vec::new(),
    };
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (resource, hard_value) in hard {
        let used = quantity(at(quota, &["status", "used", resource]));
        let entry = format!("{resource}: {used}/{}", quantity(hard_value));
        let mut pieces = resource.split('.');
        let is_limit = pieces.next() == Some("limits") && pieces.next().is_some();
        if is_limit {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(quota),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(quota, now),
    ]
}

/// The current value of metric `i` in `status.currentMetrics`, under `source.current`.
fn hpa_current<'a>(
    statuses: &'a [Value],
    i: usize,
    source: &str,
    field: &str,
) -> Option<&'a Value> {
    let v = statuses
        .get(i)
        .map(|s| at(s, &[source, "current", field]))?;
    (!v.is_null()).then_some(v)
}

/// A `*resource.Quantity`'s string, `<nil>` when absent.
fn quantity_ptr(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        v => scalar_text(v),
    }
}

/// `formatHPAMetrics` for autoscaling/v2 metrics (or autoscaling/v1's CPU target).
fn hpa_metrics(hpa: &Value) -> String {
    const MAX: usize = 2;
    let mut specs: Vec<Value> = list_at(hpa, &["spec", "metrics"]).to_vec();
    let mut statuses: Vec<Value> = list_at(hpa, &["status", "currentMetrics"]).to_vec();
    if specs.is_empty() {
        if let target @ Value::Number(_) = at(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
            specs.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}}}));
            if let current @ Value::Number(_) =
                at(hpa, &["status", "currentCPUUtilizationPercentage"])
            {
                statuses.push(json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": current}}}));
            }
        }
    }
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let unknown = || "<unknown>".to_string();
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let item = match str_at(spec, &["type"]) {
            source_type @ ("External" | "Object") => {
                let source = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(spec, &[source, "target"]);
                let average = at(target, &["averageValue"]);
                if !average.is_null() {
                    let current = hpa_current(&statuses, i, source, "averageValue")
                        .map_or_else(unknown, scalar_text);
                    format!("{current}/{} (avg)", quantity_ptr(average))
                } else {
                    let current = match statuses.get(i).map(|s| at(s, &[source])) {
                        Some(s) if !s.is_null() => quantity_ptr(at(s, &["current", "value"])),
                        _ => unknown(),
                    };
                    format!("{current}/{}", quantity_ptr(at(target, &["value"])))
                }
            }
            "Pods" => {
                let current = match statuses.get(i).map(|s| at(s, &["pods"])) {
                    Some(s) if !s.is_null() => quantity_ptr(at(s, &["current", "averageValue"])),
                    _ => unknown(),
                };
                format!(
                    "{current}/{}",
                    quantity_ptr(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let source = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let resource = str_at(spec, &[source, "name"]);
                let target = at(spec, &[source, "target"]);
                let average = at(target, &["averageValue"]);
                if !average.is_null() {
                    let current = match statuses.get(i).map(|s| at(s, &[source])) {
                        Some(s) if !s.is_null() => {
                            quantity_ptr(at(s, &["current", "averageValue"]))
                        }
                        _ => unknown(),
                    };
                    format!("{resource}: {current}/{}", quantity_ptr(average))
                } else {
                    let current = hpa_current(&statuses, i, source, "averageUtilization")
                        .map_or_else(unknown, |u| format!("{}%", int_of(u)));
                    let target = match at(target, &["averageUtilization"]) {
                        Value::Null => "<auto>".to_string(),
                        u => format!("{}%", int_of(u)),
                    };
                    format!("{resource}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(item);
    }
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        format!("{} + {} more...", list.join(", "), count - MAX)
    } else {
        list.join(", ")
    }
}

fn hpa_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    // minReplicas is defaulted to 1 by both autoscaling versions, so "<unset>" never shows.
    let min_pods = match at(hpa, &["spec", "minReplicas"]) {
        Value::Null => 1,
        v => int_of(v),
    };
    vec![
        name(hpa),
        format!(
            "{}/{}",
            str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
            str_at(hpa, &["spec", "scaleTargetRef", "name"])
        )
        .into(),
        hpa_metrics(hpa).into(),
        min_pods.to_string().into(),
        int_at(hpa, &["spec", "maxReplicas"]).into(),
        int_at(hpa, &["status", "currentReplicas"]).into(),
        age(hpa, now),
    ]
}

// ---------------------------------------------------------------------------------------------
// Custom resources.
// ---------------------------------------------------------------------------------------------

/// One step of a printer column's JSONPath.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]` (negative counts from the end).
    Index(i64),
    /// `[*]` or `.*`.
    All,
    /// `[?(@.a.b == "x")]`, `[?(@.a)]`.
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<Step>,
    test: Option<(String, Value)>,
}

/// A parsed `additionalPrinterColumns[].jsonPath`: the subset of client-go's JSONPath that CRDs
/// use (`.a.b`, `['x.y']`, `[0]`, `[-1]`, `[*]`, `[?(@.type=="Ready")]`).
#[derive(Clone, Debug, PartialEq)]
struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    fn parse(path: &str) -> std::result::Result<JsonPath, ()> {
        let chars: Vec<char> = path.trim().chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos, false)?;
        if pos != chars.len() {
            return Err(());
        }
        Ok(JsonPath { steps })
    }

    /// All matches, in order (missing keys match nothing).
    fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval_steps(&self.steps, vec![root])
    }
}

/// client-go's JSONPath field names run to a terminator; inside a filter they also stop at
/// the comparison operators and parentheses.
fn is_field_char(c: char, in_filter: bool) -> bool {
    !(c.is_whitespace()
        || matches!(c, '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
        || (in_filter && matches!(c, '!' | '<' | '>' | '=' | '(' | ')')))
}

fn parse_steps(
    chars: &[char],
    pos: &mut usize,
    in_filter: bool,
) -> std::result::Result<Vec<Step>, ()> {
    let mut steps = Vec::new();
    loop {
        match chars.get(*pos) {
            Some('.') => {
                *pos += 1;
                if chars.get(*pos) == Some(&'*') {
                    *pos += 1;
                    steps.push(Step::All);
                    continue;
                }
                let start = *pos;
                while chars
                    .get(*pos)
                    .is_some_and(|c| is_field_char(*c, in_filter))
                {
                    *pos += 1;
                }
                if *pos > start {
                    steps.push(Step::Field(span(chars, start, *pos)));
                } else if chars.get(*pos).is_some_and(|c| *c != '[') && !in_filter {
                    return Err(());
                }
            }
            Some('[') => {
                *pos += 1;
                steps.push(parse_bracket(chars, pos)?);
            }
            _ => return Ok(steps),
        }
    }
}

fn span(chars: &[char], start: usize, end: usize) -> String {
    chars.get(start..end).unwrap_or_default().iter().collect()
}

fn skip_spaces(chars: &[char], pos: &mut usize) {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

fn parse_quoted(chars: &[char], pos: &mut usize) -> std::result::Result<String, ()> {
    let quote = *chars.get(*pos).ok_or(())?;
    *pos += 1;
    let mut out = String::new();
    loop {
        let c = *chars.get(*pos).ok_or(())?;
        *pos += 1;
        if c == quote {
            return Ok(out);
        }
        if c == '\\' {
            out.push(*chars.get(*pos).ok_or(())?);
            *pos += 1;
        } else {
            out.push(c);
        }
    }
}

fn expect(chars: &[char], pos: &mut usize, c: char) -> std::result::Result<(), ()> {
    skip_spaces(chars, pos);
    if chars.get(*pos) == Some(&c) {
        *pos += 1;
        Ok(())
    } else {
        Err(())
    }
}

fn parse_bracket(chars: &[char], pos: &mut usize) -> std::result::Result<Step, ()> {
    skip_spaces(chars, pos);
    let step = match chars.get(*pos) {
        Some('\'' | '"') => Step::Field(parse_quoted(chars, pos)?),
        Some('*') => {
            *pos += 1;
            Step::All
        }
        Some('?') => {
            *pos += 1;
            expect(chars, pos, '(')?;
            expect(chars, pos, '@')?;
            let path = parse_steps(chars, pos, true)?;
            skip_spaces(chars, pos);
            let mut op = String::new();
            while let Some(&c) = chars
                .get(*pos)
                .filter(|c| matches!(c, '=' | '!' | '<' | '>'))
            {
                op.push(c);
                *pos += 1;
            }
            let test = if op.is_empty() {
                None
            } else {
                if !matches!(op.as_str(), "==" | "!=" | "<" | ">" | "<=" | ">=") {
                    return Err(());
                }
                skip_spaces(chars, pos);
                let literal = match chars.get(*pos) {
                    Some('\'' | '"') => Value::String(parse_quoted(chars, pos)?),
                    _ => {
                        let start = *pos;
                        while chars.get(*pos).is_some_and(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')
                        }) {
                            *pos += 1;
                        }
                        let text = span(chars, start, *pos);
                        serde_json::from_str::<Value>(&text).map_err(|_| ())?
                    }
                };
                Some((op, literal))
            };
            expect(chars, pos, ')')?;
            Step::Filter(Filter { path, test })
        }
        _ => {
            let start = *pos;
            while chars
                .get(*pos)
                .is_some_and(|c| *c == '-' || c.is_ascii_digit())
            {
                *pos += 1;
            }
            let text = span(chars, start, *pos);
            Step::Index(text.parse().map_err(|_| ())?)
        }
    };
    expect(chars, pos, ']')?;
    Ok(step)
}

fn eval_steps<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
                        let idx = if *i < 0 { len + i } else { *i };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(filter) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| filter_matches(filter, item)));
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn filter_matches(filter: &Filter, item: &Value) -> bool {
    let found = eval_steps(&filter.path, vec![item]);
    let Some((op, literal)) = &filter.test else {
        return !found.is_empty();
    };
    found.iter().any(|v| {
        let ordering = match (*v, literal) {
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (a, b) if a == b => Some(std::cmp::Ordering::Equal),
            _ => None,
        };
        match op.as_str() {
            "==" => ordering == Some(std::cmp::Ordering::Equal),
            "!=" => ordering != Some(std::cmp::Ordering::Equal),
            "<" => ordering == Some(std::cmp::Ordering::Less),
            ">" => ordering == Some(std::cmp::Ordering::Greater),
            "<=" => ordering.is_some_and(|o| o != std::cmp::Ordering::Greater),
            ">=" => ordering.is_some_and(|o| o != std::cmp::Ordering::Less),
            _ => false,
        }
    })
}

/// Go's `json.Marshal` of decoded JSON: compact, map keys sorted, `<`, `>` and `&` escaped.
fn go_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    if let Some(x) = m.get(k) {
                        out.insert(k.clone(), sorted(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A custom resource printer column.
#[derive(Clone, Debug, PartialEq)]
struct CustomColumn {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    path: JsonPath,
}

/// The Table columns of a custom resource version, from its CRD's `additionalPrinterColumns`
/// (like apiextensions-apiserver's table convertor): a Name column first, then each printer
/// column; when the CRD declares none, a single `Age` column (`.metadata.creationTimestamp`).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomColumns {
    columns: Vec<CustomColumn>,
}

impl CustomColumns {
    /// Parses a CRD version's `additionalPrinterColumns` (a JSON array; null or `[]` means
    /// the default Age column). An unparseable `jsonPath` is an error
    /// (`unrecognized column definition "<path>"`); Kubernetes then logs it and keeps the Name
    /// column and the columns before the bad one.
    pub fn from_printer_columns(v: &Value) -> Result<CustomColumns> {
        let entries: Vec<Value> = match v {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => {
                return Err(ApiError::internal(
                    "additionalPrinterColumns must be an array",
                ))
            }
        };
        let entries = if entries.is_empty() {
            vec![json!({
                "name": "Age",
                "type": "date",
                "description": CREATED_DESC,
                "jsonPath": ".metadata.creationTimestamp",
            })]
        } else {
            entries
        };
        let mut columns = Vec::with_capacity(entries.len());
        for e in &entries {
            let json_path = str_at(e, &["jsonPath"]);
            let path = JsonPath::parse(json_path).map_err(|()| {
                ApiError::internal(format!("unrecognized column definition {json_path:?}"))
            })?;
            let description = match str_at(e, &["description"]) {
                "" => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
                d => d.to_string(),
            };
            columns.push(CustomColumn {
                name: str_at(e, &["name"]).to_string(),
                type_: str_at(e, &["type"]).to_string(),
                format: str_at(e, &["format"]).to_string(),
                description,
                priority: int_at(e, &["priority"]),
                path,
            });
        }
        Ok(CustomColumns { columns })
    }

    /// The Table `columnDefinitions`: Name, then the printer columns.
    pub fn columns(&self) -> Vec<Value> {
        let mut out = vec![col("Name", "string", "name", NAME_DESC, 0).to_json()];
        out.extend(self.columns.iter().map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        }));
        out
    }

    /// One row's cells: the name, then each column's first JSONPath match converted to the
    /// column's type (`null` when missing or of the wrong type). `string` columns print the
    /// value (objects and arrays as JSON); `date` columns are humanized ages relative to `now`
    /// (`<invalid>` for an unparseable timestamp), as the apiserver sends them.
    pub fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        let mut cells = vec![name(obj)];
        for c in &self.columns {
            let cell = match c.path.find(obj).first() {
                None => Value::Null,
                Some(v) => custom_cell(&c.type_, v, now),
            };
            cells.push(cell);
        }
        cells
    }
}

/// `cellForJSONValue`, plus the `string` column case.
fn custom_cell(type_: &str, v: &Value, now: Timestamp) -> Value {
    match (type_, v) {
        ("string", Value::String(s)) => s.clone().into(),
        ("string", Value::Null) => "<no value>".into(),
        ("string", v @ (Value::Object(_) | Value::Array(_))) => go_json(v).into(),
        ("string", v) => v.to_string().into(),
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) => {
            if s.is_empty() || s == "null" {
                "<unknown>".into()
            } else {
                match parse_time(v) {
                    Some(t) => since(t, now).into(),
                    None if s.parse::<Timestamp>().is_ok() => "<unknown>".into(),
                    None => "<invalid>".into(),
                }
            }
        }
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// The Table.
// ---------------------------------------------------------------------------------------------

/// What each row's `object` holds (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `None`: `object` is null.
    None,
    /// `Metadata` (the default): a `PartialObjectMetadata` with the object's metadata.
    #[default]
    Metadata,
    /// `Object`: the whole object.
    Object,
}

impl IncludeObject {
    /// The `includeObject` query parameter (absent or empty = `Metadata`); anything else is
    /// Kubernetes' 400 `unrecognized includeObject value: "<v>"`.
    pub fn from_query(v: Option<&str>) -> Result<IncludeObject> {
        match v.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::bad_request(format!(
                "unrecognized includeObject value: {other:?}"
            ))),
        }
    }
}

/// `row.Conditions` of the pod printer: `Completed` for pods that have finished.
fn row_conditions(obj: &Value) -> Option<Value> {
    if str_at(obj, &["kind"]) != "Pod" || !matches!(str_at(obj, &["apiVersion"]), "" | "v1") {
        return None;
    }
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// A `meta.k8s.io/v1` Table: `columns` as `columnDefinitions` (see [`column_definitions`],
/// [`CustomColumns::columns`]), one row per `(cells, object)`, `metadata.resourceVersion` and
/// `metadata.continue` (omitted when empty). Each row's `object` follows `include`; finished pods
/// (`kind: Pod`) also get the `Completed` row condition Kubernetes adds.
pub fn table(
    columns: Vec<Value>,
    rows: Vec<(Vec<Value>, Value)>,
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(c) = continue_token.filter(|c| !c.is_empty()) {
        metadata.insert("continue".into(), c.into());
    }
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, obj)| {
            let conditions = row_conditions(&obj);
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": match at(&obj, &["metadata"]) {
                        Value::Null => json!({}),
                        m => m.clone(),
                    },
                }),
                IncludeObject::Object => obj,
            };
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(c) = conditions {
                row.insert("conditions".into(), c);
            }
            row.insert("object".into(), object);
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn names(cols: &[Column]) -> Vec<&'static str> {
        cols.iter().map(|c| c.name).collect()
    }

    fn wide(cols: &[Column]) -> Vec<&'static str> {
        cols.iter()
            .filter(|c| c.priority > 0)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 30 * 60, "5h30m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (2 * 365 * 86400 + 12 * 86400, "2y12d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400 + 100 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
        // Clock skew: up to a second in the future is "0s", more is "<invalid>".
        assert_eq!(human_nanos(-1_500_000_000), "0s");
        assert_eq!(human_nanos(-2_000_000_000), "<invalid>");
    }

    #[test]
    fn column_definitions_are_kubernetes_ones() {
        let pods = columns("", "pods").unwrap();
        assert_eq!(
            names(pods),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(
            wide(pods),
            ["IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        let defs = column_definitions(pods);
        assert_eq!(
            defs[0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC,
                   "priority": 0})
        );
        assert_eq!(
            defs[4],
            json!({"name": "Age", "type": "string", "format": "", "description": CREATED_DESC,
                   "priority": 0})
        );
        assert_eq!(
            defs[5]["description"],
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if \
             not yet allocated."
        );
        assert_eq!(defs[3]["type"], "string");
        assert_eq!(
            names(columns("", "events").unwrap()),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(
            wide(columns("events.k8s.io", "events").unwrap()),
            ["Subobject", "Source", "First Seen", "Count", "Name"]
        );
        assert_eq!(
            names(columns("batch", "jobs").unwrap()),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            names(columns("apps", "deployments").unwrap()),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            names(columns("", "services").unwrap()),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(
            names(columns("rbac.authorization.k8s.io", "clusterrolebindings").unwrap()),
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        let rs = columns("apps", "replicasets").unwrap();
        assert_eq!(rs[1].type_, "integer");
        assert!(rs[1]
            .description
            .starts_with("Replicas is the number of desired pods."));
        assert_eq!(columns("batch", "cronjobs").unwrap()[3].type_, "boolean");
        // Printed with the default table.
        for (g, r) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("", "limitranges"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("example.com", "widgets"),
        ] {
            assert!(columns(g, r).is_none(), "{g}/{r}");
        }
        assert_eq!(
            column_definitions(default_columns()),
            vec![
                json!({"name": "Name", "type": "string", "format": "name",
                       "description": NAME_DESC, "priority": 0}),
                json!({"name": "Created At", "type": "date", "format": "",
                       "description": CREATED_DESC, "priority": 0}),
            ]
        );
        // Every printer's cells line up with its columns.
        for (g, r) in [
            ("", "pods"),
            ("", "podtemplates"),
            ("", "replicationcontrollers"),
            ("", "services"),
            ("", "endpoints"),
            ("", "nodes"),
            ("", "events"),
            ("", "namespaces"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "componentstatuses"),
            ("", "configmaps"),
            ("", "resourcequotas"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("events.k8s.io", "events"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("coordination.k8s.io", "leases"),
            ("storage.k8s.io", "storageclasses"),
            ("storage.k8s.io", "volumeattachments"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "csidrivers"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("node.k8s.io", "runtimeclasses"),
            ("discovery.k8s.io", "endpointslices"),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            (
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
            ),
        ] {
            let n = columns(g, r).map(<[Column]>::len);
            assert_eq!(n, Some(cells(g, r, &json!({}), now()).len()), "{g}/{r}");
        }
    }

    #[test]
    fn pod_with_a_ready_and_a_crashlooping_container() {
        let pod = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web-0", "namespace": "default",
                         "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "app", "image": "nginx"}, {"name": "sidecar", "image": "busybox"}]},
            "status": {
                "phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0,
                     "state": {"running": {"startedAt": "2024-05-01T10:00:05Z"}}},
                    {"name": "sidecar", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": "back-off 40s restarting failed container"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "finishedAt": "2024-05-01T11:58:00Z"}}},
                ],
            },
        });
        assert_eq!(
            cells("", "pods", &pod, now()),
            vec![
                json!("web-0"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("3 (2m ago)"),
                json!("120m"),
                json!("10.244.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_status_variants() {
        let status = |pod: Value| cells("", "pods", &pod, now())[2].clone();
        let base = |extra: Value| {
            let mut pod = json!({
                "metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:59:30Z"},
                "spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                         "containers": [{"name": "app", "image": "nginx"}]},
                "status": {"phase": "Pending"},
            });
            if let (Some(status), Value::Object(extra)) = (pod["status"].as_object_mut(), extra) {
                status.extend(extra);
            }
            pod
        };
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}]}))),
            "Init:0/1"
        );
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"running": {}}}]}))),
            "Init:0/1"
        );
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}))),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"terminated": {"exitCode": 2}}}]}))),
            "Init:ExitCode:2"
        );
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}))),
            "Init:Signal:9"
        );
        assert_eq!(
            status(base(json!({"initContainerStatuses": [
                {"name": "init", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}))),
            "Init:Error"
        );
        // Init done, app container waiting to start.
        assert_eq!(
            status(base(json!({
                "initContainerStatuses": [
                    {"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [
                    {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}],
            }))),
            "ContainerCreating"
        );
        assert_eq!(
            status(base(json!({"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}))),
            "SchedulingGated"
        );
        // Evicted pods show the status reason.
        assert_eq!(
            status(json!({"status": {"phase": "Failed", "reason": "Evicted"}})),
            "Evicted"
        );
        let terminating = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}}]},
        });
        assert_eq!(status(terminating.clone()), "Terminating");
        let mut lost = terminating.clone();
        lost["status"]["reason"] = json!("NodeLost");
        assert_eq!(status(lost), "Unknown");
        let mut done = terminating;
        done["status"] = json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(status(done), "Completed");
        assert_eq!(
            status(json!({"status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}],
                "conditions": [{"type": "Ready", "status": "False"}]}})),
            "NotReady"
        );
    }

    #[test]
    fn pod_with_a_sidecar_and_readiness_gates() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {
                "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "nginx"}],
                "readinessGates": [{"conditionType": "example.com/lb"},
                                   {"conditionType": "example.com/dns"}],
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "fd00::7"}, {"ip": "10.0.0.7"}],
                "nominatedNodeName": "node-2",
                "conditions": [{"type": "Initialized", "status": "True"},
                               {"type": "example.com/lb", "status": "True"},
                               {"type": "example.com/dns", "status": "False"}],
                "initContainerStatuses": [
                    {"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                     "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1,
                                                  "finishedAt": "2024-05-01T11:30:00Z"}}}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}],
            },
        });
        assert_eq!(
            cells("", "pods", &pod, now()),
            vec![
                json!("p"),
                json!("2/2"),
                json!("Running"),
                json!("1 (30m ago)"),
                json!("60m"),
                json!("fd00::7"),
                json!("<none>"),
                json!("node-2"),
                json!("1/2"),
            ]
        );
    }

    #[test]
    fn deployment_two_of_three_ready() {
        let deploy = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-28T12:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [
                         {"name": "nginx", "image": "nginx:1.27"},
                         {"name": "log", "image": "fluent-bit"}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                       "availableReplicas": 2},
        });
        assert_eq!(
            cells("apps", "deployments", &deploy, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3d"),
                json!("nginx,log"),
                json!("nginx:1.27,fluent-bit"),
                json!("app=web"),
            ]
        );
        // A fresh deployment: replicas default to 1, no status yet.
        let fresh = json!({"metadata": {"name": "x"}, "spec": {}});
        let c = cells("apps", "deployments", &fresh, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[4], "<unknown>");
        assert_eq!(c[7], "");
    }

    #[test]
    fn replicaset_statefulset_daemonset_rc() {
        let rs = json!({
            "metadata": {"name": "web-7d9f", "creationTimestamp": "2024-05-01T11:55:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web",
                                                                 "pod-template-hash": "7d9f"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        assert_eq!(
            cells("apps", "replicasets", &rs, now()),
            vec![
                json!("web-7d9f"),
                json!(2),
                json!(2),
                json!(1),
                json!("5m"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web,pod-template-hash=7d9f"),
            ]
        );
        let sts = json!({
            "metadata": {"name": "db", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "pg", "image": "postgres:16"}]}}},
            "status": {"readyReplicas": 3},
        });
        assert_eq!(
            cells("apps", "statefulsets", &sts, now()),
            vec![
                json!("db"),
                json!("3/3"),
                json!("60m"),
                json!("pg"),
                json!("postgres:16")
            ]
        );
        let ds = json!({
            "metadata": {"name": "fluentd", "creationTimestamp": "2024-04-01T12:00:00Z"},
            "spec": {"selector": {"matchExpressions": [
                         {"key": "app", "operator": "In", "values": ["fluentd"]}]},
                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "f", "image": "fluentd"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2},
        });
        assert_eq!(
            cells("apps", "daemonsets", &ds, now()),
            vec![
                json!("fluentd"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("30d"),
                json!("f"),
                json!("fluentd"),
                json!("app in (fluentd)"),
            ]
        );
        let rc = json!({
            "metadata": {"name": "old", "creationTimestamp": "2024-05-01T11:59:50Z"},
            "spec": {"replicas": 1, "selector": {"app": "old"}},
            "status": {"replicas": 1, "readyReplicas": 0},
        });
        assert_eq!(
            cells("", "replicationcontrollers", &rc, now()),
            vec![
                json!("old"),
                json!(1),
                json!(1),
                json!(0),
                json!("10s"),
                json!(""),
                json!(""),
                json!("app=old"),
            ]
        );
    }

    #[test]
    fn node_ready_scheduling_disabled_with_roles() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": "2024-04-01T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/master": "",
                                    "kubernetes.io/role": "infra",
                                    "kubernetes.io/hostname": "cp-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.2", "osImage": "Debian GNU/Linux 12",
                             "kernelVersion": "6.1.0-18-amd64",
                             "containerRuntimeVersion": "containerd://1.7.13"},
            },
        });
        assert_eq!(
            cells("", "nodes", &node, now()),
            vec![
                json!("cp-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,infra,master"),
                json!("30d"),
                json!("v1.32.2"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13"),
            ]
        );
        let bare = json!({"metadata": {"name": "w"},
                          "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = cells("", "nodes", &bare, now());
        assert_eq!(c[1], "NotReady");
        assert_eq!(c[2], "<none>");
        assert_eq!(c[7], "<unknown>");
        assert_eq!(cells("", "nodes", &json!({}), now())[1], "Unknown");
    }

    #[test]
    fn services() {
        let cluster_ip = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                               {"name": "https", "port": 443, "protocol": "TCP"}],
                     "selector": {"app": "web", "tier": "front"}},
        });
        assert_eq!(
            cells("", "services", &cluster_ip, now()),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.12.34"),
                json!("<none>"),
                json!("80/TCP,443/TCP"),
                json!("60m"),
                json!("app=web,tier=front"),
            ]
        );
        let node_port = json!({
            "metadata": {"name": "np"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.99"],
                     "externalIPs": ["203.0.113.7"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                               {"port": 53, "nodePort": 30053, "protocol": "UDP"}]},
        });
        let c = cells("", "services", &node_port, now());
        assert_eq!(c[1], "NodePort");
        assert_eq!(c[3], "203.0.113.7");
        assert_eq!(c[4], "80:30080/TCP,53:30053/UDP");
        assert_eq!(c[6], "<none>");
        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.5",
                                 "ports": [{"port": 443, "nodePort": 31443}]}});
        let c = cells("", "services", &lb, now());
        assert_eq!(c[2], "10.96.0.5");
        assert_eq!(c[3], "<pending>");
        assert_eq!(c[4], "443:31443/TCP");
        let mut lb_ready = lb.clone();
        lb_ready["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "198.51.100.9"}, {"hostname": "lb.example.com"}, {"ip": "198.51.100.9"}]}});
        assert_eq!(
            cells("", "services", &lb_ready, now())[3],
            "198.51.100.9,lb.example.com"
        );
        lb_ready["spec"]["externalIPs"] = json!(["203.0.113.1"]);
        assert_eq!(
            cells("", "services", &lb_ready, now())[3],
            "198.51.100.9,lb.example.com,203.0.113.1"
        );
        let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        let c = cells("", "services", &headless, now());
        assert_eq!(c[1], "ClusterIP");
        assert_eq!(c[2], "None");
        assert_eq!(c[4], "<none>");
        let external = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let c = cells("", "services", &external, now());
        assert_eq!(c[2], "<none>");
        assert_eq!(c[3], "db.example.com");
    }

    #[test]
    fn core_event() {
        let event = json!({
            "metadata": {"name": "web-0.17c8e2a1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0",
                               "fieldPath": "spec.containers{sidecar}"},
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container sidecar\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:00:00Z",
            "lastTimestamp": "2024-05-01T11:55:00Z",
            "count": 12,
        });
        assert_eq!(
            cells("", "events", &event, now()),
            vec![
                json!("5m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-0"),
                json!("spec.containers{sidecar}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container sidecar"),
                json!("60m"),
                json!(12),
                json!("web-0.17c8e2a1"),
            ]
        );
        // A new-style event: eventTime, series, reporting controller/instance, no name.
        let series = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "reason": "Rebooted", "type": "Normal", "message": "m",
            "eventTime": "2024-05-01T10:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
            "reportingComponent": "kubelet", "reportingInstance": "node-2",
        });
        let c = cells("", "events", &series, now());
        assert_eq!(c[0], "60s");
        assert_eq!(c[3], "node");
        assert_eq!(c[5], "kubelet, node-2");
        assert_eq!(c[7], "120m");
        assert_eq!(c[8], 4);
        let singleton = json!({"eventTime": "2024-05-01T11:59:58.000000Z"});
        let c = cells("", "events", &singleton, now());
        assert_eq!(c[0], "2s");
        assert_eq!(c[7], "2s");
        assert_eq!(c[8], 1);
        assert_eq!(cells("", "events", &json!({}), now())[0], "<unknown>");
    }

    #[test]
    fn events_k8s_io_event() {
        let event = json!({
            "metadata": {"name": "web-0.1"},
            "regarding": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "note": "  Successfully pulled image  ",
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "eventTime": "2024-05-01T11:50:00.000000Z",
            "deprecatedCount": 2,
            "deprecatedFirstTimestamp": "2024-05-01T11:50:00Z",
            "deprecatedLastTimestamp": "2024-05-01T11:58:00Z",
        });
        assert_eq!(
            cells("events.k8s.io", "events", &event, now()),
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-0"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image"),
                json!("10m"),
                json!(2),
                json!("web-0.1"),
            ]
        );
    }

    #[test]
    fn jobs_and_cronjobs() {
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}},
            "status": {"succeeded": 1, "startTime": "2024-05-01T10:00:00Z",
                       "completionTime": "2024-05-01T10:00:42Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            cells("batch", "jobs", &job, now()),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("120m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=u1"),
            ]
        );
        let running = json!({
            "spec": {"parallelism": 3},
            "status": {"active": 3, "startTime": "2024-05-01T11:57:00Z"},
        });
        let c = cells("batch", "jobs", &running, now());
        assert_eq!(c[1], "Running");
        assert_eq!(c[2], "0/1 of 3");
        assert_eq!(c[3], "3m");
        let failed = json!({"spec": {"completions": 5},
                            "status": {"failed": 6, "succeeded": 2, "conditions": [
                                {"type": "Failed", "status": "True"}]}});
        let c = cells("batch", "jobs", &failed, now());
        assert_eq!(c[1], "Failed");
        assert_eq!(c[2], "2/5");
        assert_eq!(c[3], "");
        let suspended =
            json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(cells("batch", "jobs", &suspended, now())[1], "Suspended");

        let cron = json!({
            "metadata": {"name": "backup", "creationTimestamp": "2024-04-21T12:00:00Z"},
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {
                "template": {"spec": {"containers": [{"name": "b", "image": "restic"}]}}}}},
            "status": {"active": [{"name": "backup-1"}],
                       "lastScheduleTime": "2024-05-01T11:55:00Z"},
        });
        assert_eq!(
            cells("batch", "cronjobs", &cron, now()),
            vec![
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("10d"),
                json!("b"),
                json!("restic"),
                json!("<none>"),
            ]
        );
        let tz = json!({"spec": {"schedule": "0 0 * * *", "timeZone": "Etc/UTC",
                                 "suspend": true}});
        let c = cells("batch", "cronjobs", &tz, now());
        assert_eq!(c[2], "Etc/UTC");
        assert_eq!(c[3], "True");
        assert_eq!(c[4], 0);
        assert_eq!(c[5], "<none>");
    }

    #[test]
    fn small_core_printers() {
        let created = json!({"name": "x", "creationTimestamp": "2024-05-01T11:59:00Z"});
        let with = |extra: Value| {
            let mut o = json!({"metadata": created.clone()});
            if let (Some(m), Value::Object(extra)) = (o.as_object_mut(), extra) {
                m.extend(extra);
            }
            o
        };
        assert_eq!(
            cells(
                "",
                "namespaces",
                &with(json!({"status": {"phase": "Active"}})),
                now()
            ),
            vec![json!("x"), json!("Active"), json!("60s")]
        );
        assert_eq!(
            cells(
                "",
                "configmaps",
                &with(json!({"data": {"a": "1", "b": "2"},
                                                   "binaryData": {"c": "AA=="}})),
                now()
            ),
            vec![json!("x"), json!(3), json!("60s")]
        );
        assert_eq!(
            cells(
                "",
                "secrets",
                &with(json!({"type": "kubernetes.io/tls",
                                                "data": {"tls.crt": "", "tls.key": ""}})),
                now()
            ),
            vec![
                json!("x"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("60s")
            ]
        );
        assert_eq!(
            cells(
                "",
                "secrets",
                &with(json!({"data": {"a": ""}, "stringData": {"a": "", "b": ""}})),
                now()
            ),
            vec![json!("x"), json!("Opaque"), json!(2), json!("60s")]
        );
        assert_eq!(
            cells(
                "",
                "serviceaccounts",
                &with(json!({"secrets": [{"name": "t"}]})),
                now()
            ),
            vec![json!("x"), json!(1), json!("60s")]
        );
        assert_eq!(
            cells("", "serviceaccounts", &with(json!({})), now())[1],
            json!(0)
        );
        assert_eq!(
            cells(
                "coordination.k8s.io",
                "leases",
                &with(json!({"spec": {"holderIdentity": "node-1"}})),
                now()
            ),
            vec![json!("x"), json!("node-1"), json!("60s")]
        );
        assert_eq!(
            cells(
                "coordination.k8s.io",
                "leases",
                &with(json!({"spec": {}})),
                now()
            )[1],
            ""
        );
        let endpoints = with(json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "ports": [{"port": 8080}, {"port": 9090}]},
            {"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 80}]}]}));
        assert_eq!(
            cells("", "endpoints", &endpoints, now())[1],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 2 more..."
        );
        let small = with(json!({"subsets": [{"addresses": [{"ip": "fd00::3"}],
                                              "ports": [{"port": 80}]}]}));
        assert_eq!(cells("", "endpoints", &small, now())[1], "[fd00::3]:80");
        let headless = with(json!({"subsets": [{"addresses": [{"ip": "10.1.1.1"}]}]}));
        assert_eq!(cells("", "endpoints", &headless, now())[1], "10.1.1.1");
        assert_eq!(cells("", "endpoints", &with(json!({})), now())[1], "<none>");
    }

    #[test]
    fn storage_printers() {
        let pv = json!({
            "metadata": {"name": "pv-1", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"},
                     "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "fast",
                     "claimRef": {"namespace": "default", "name": "data"}},
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            cells("", "persistentvolumes", &pv, now()),
            vec![
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Delete"),
                json!("Bound"),
                json!("default/data"),
                json!("fast"),
                json!("<unset>"),
                json!(""),
                json!("3h"),
                json!("Filesystem"),
            ]
        );
        let pvc = json!({
            "metadata": {"name": "data", "creationTimestamp": "2024-05-01T09:00:00Z",
                         "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Block",
                     "resources": {"requests": {"storage": "5Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                       "accessModes": ["ReadWriteOnce"]},
        });
        assert_eq!(
            cells("", "persistentvolumeclaims", &pvc, now()),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO"),
                json!("legacy"),
                json!("<unset>"),
                json!("3h"),
                json!("Block"),
            ]
        );
        let pending = json!({"metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:00:00Z"},
                             "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let c = cells("", "persistentvolumeclaims", &pending, now());
        assert_eq!(c[1], "Terminating");
        assert_eq!(c[3], "");
        assert_eq!(c[4], "");
        assert_eq!(c[5], "");
        let sc = json!({"metadata": {"name": "standard", "annotations": {
                            "storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "rancher.io/local-path",
                        "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            cells("storage.k8s.io", "storageclasses", &sc, now()),
            vec![
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("<unknown>"),
            ]
        );
    }

    #[test]
    fn policy_quota_rbac_and_network_printers() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"},
                         "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("policy", "poddisruptionbudgets", &pdb, now()),
            vec![
                json!("web"),
                json!("50%"),
                json!("N/A"),
                json!(1),
                json!("<unknown>")
            ]
        );
        let pdb = json!({"spec": {"maxUnavailable": 1}});
        let c = cells("policy", "poddisruptionbudgets", &pdb, now());
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("N/A"), json!("1"), json!(0))
        );

        let quota = json!({
            "metadata": {"name": "compute"},
            "status": {"hard": {"requests.cpu": "4", "pods": "10", "limits.memory": "8Gi",
                                "limits.cpu": "8"},
                       "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}},
        });
        assert_eq!(
            cells("", "resourcequotas", &quota, now()),
            vec![
                json!("compute"),
                json!("pods: 3/10, requests.cpu: 500m/4"),
                json!("limits.cpu: 1/8, limits.memory: 0/8Gi"),
                json!("<unknown>"),
            ]
        );

        let binding = json!({
            "metadata": {"name": "admins", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"},
                         {"kind": "ServiceAccount", "namespace": "kube-system", "name": "ctl"},
                         {"kind": "User", "name": "bob"}],
        });
        for resource in ["rolebindings", "clusterrolebindings"] {
            assert_eq!(
                cells("rbac.authorization.k8s.io", resource, &binding, now()),
                vec![
                    json!("admins"),
                    json!("ClusterRole/cluster-admin"),
                    json!("60m"),
                    json!("alice, bob"),
                    json!("ops"),
                    json!("kube-system/ctl"),
                ]
            );
        }

        let slice = json!({
            "metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                          {"addresses": ["10.0.0.4"]}],
        });
        assert_eq!(
            cells("discovery.k8s.io", "endpointslices", &slice, now()),
            vec![
                json!("web-abc"),
                json!("IPv4"),
                json!("80,named,* + 1 more..."),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
                json!("<unknown>"),
            ]
        );
        let empty = cells("discovery.k8s.io", "endpointslices", &json!({}), now());
        assert_eq!(
            (empty[2].clone(), empty[3].clone()),
            (json!("<unset>"), json!("<unset>"))
        );

        let ingress = json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx",
                     "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {},
                               {"host": "c.example.com"}, {"host": "d.example.com"}],
                     "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        });
        assert_eq!(
            cells("networking.k8s.io", "ingresses", &ingress, now()),
            vec![
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("192.0.2.1"),
                json!("80, 443"),
                json!("<unknown>"),
            ]
        );
        let c = cells(
            "networking.k8s.io",
            "ingresses",
            &json!({"spec": {"rules": [{}]}}),
            now(),
        );
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[4].clone()),
            (json!("<none>"), json!("*"), json!("80"))
        );
        let policy = json!({"spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
        assert_eq!(
            cells("networking.k8s.io", "networkpolicies", &policy, now())[1],
            "role=db"
        );
        let all = json!({"spec": {"podSelector": {}}});
        assert_eq!(
            cells("networking.k8s.io", "networkpolicies", &all, now())[1],
            "<none>"
        );
    }

    #[test]
    fn certificates_hpa_and_misc_printers() {
        let csr = json!({
            "metadata": {"name": "csr-1", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:node:n1", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}],
                       "certificate": "LS0tLS1CRUdJTi..."},
        });
        assert_eq!(
            cells(
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                now()
            ),
            vec![
                json!("csr-1"),
                json!("60s"),
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:node:n1"),
                json!("24h"),
                json!("Approved,Issued"),
            ]
        );
        let denied = json!({"status": {"conditions": [{"type": "Denied"}, {"type": "Failed"}]}});
        let c = cells(
            "certificates.k8s.io",
            "certificatesigningrequests",
            &denied,
            now(),
        );
        assert_eq!(
            (c[2].clone(), c[4].clone(), c[5].clone()),
            (json!("<none>"), json!("<none>"), json!("Denied,Failed"))
        );

        let hpa = json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 10,
                     "metrics": [
                         {"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": 80}}},
                         {"type": "Resource", "resource": {"name": "memory", "target": {
                             "type": "AverageValue", "averageValue": "500Mi"}}},
                         {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
                             "type": "AverageValue", "averageValue": "10"}}}]},
            "status": {"currentReplicas": 3, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {
                    "averageUtilization": 45, "averageValue": "450m"}}}]},
        });
        assert_eq!(
            cells("autoscaling", "horizontalpodautoscalers", &hpa, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 45%/80%, memory: <unknown>/500Mi + 1 more..."),
                json!("2"),
                json!(10),
                json!(3),
                json!("<unknown>"),
            ]
        );
        let v1 = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"},
                                 "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
                        "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12}});
        let c = cells("autoscaling", "horizontalpodautoscalers", &v1, now());
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("cpu: 12%/60%"), json!("1"))
        );
        assert_eq!(
            cells("autoscaling", "horizontalpodautoscalers", &json!({}), now())[2],
            "<none>"
        );

        let revision = json!({
            "metadata": {"name": "web-6d4f", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2,
        });
        assert_eq!(
            cells("apps", "controllerrevisions", &revision, now()),
            vec![
                json!("web-6d4f"),
                json!("statefulset.apps/web"),
                json!(2),
                json!("<unknown>")
            ]
        );
        let template = json!({"metadata": {"name": "t"}, "template": {
            "metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}});
        assert_eq!(
            cells("", "podtemplates", &template, now()),
            vec![json!("t"), json!("c"), json!("i"), json!("a=1,b=2")]
        );
        let pc = json!({"metadata": {"name": "high"}, "value": 1000000, "globalDefault": false,
                        "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            cells("scheduling.k8s.io", "priorityclasses", &pc, now()),
            vec![
                json!("high"),
                json!(1000000),
                json!(false),
                json!("<unknown>"),
                json!("PreemptLowerPriority")
            ]
        );
        let webhooks = json!({"metadata": {"name": "w"}, "webhooks": [{}, {}]});
        assert_eq!(
            cells(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                &webhooks,
                now()
            ),
            vec![json!("w"), json!(2), json!("<unknown>")]
        );
        let driver = json!({"metadata": {"name": "csi.example.com"},
                            "spec": {"volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
        assert_eq!(
            cells("storage.k8s.io", "csidrivers", &driver, now()),
            vec![
                json!("csi.example.com"),
                json!(true),
                json!(false),
                json!(false),
                json!("<unset>"),
                json!(false),
                json!("Persistent,Ephemeral"),
                json!("<unknown>")
            ]
        );
        let cs = json!({"metadata": {"name": "etcd-0"}, "conditions": [
            {"type": "Healthy", "status": "True", "message": "ok"}]});
        assert_eq!(
            cells("", "componentstatuses", &cs, now()),
            vec![json!("etcd-0"), json!("Healthy"), json!("ok"), json!("")]
        );
        let plc = json!({"metadata": {"name": "workload-low"}, "spec": {"type": "Limited",
            "limited": {"nominalConcurrencyShares": 100, "limitResponse": {"type": "Queue",
                "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(
            cells(
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
                &plc,
                now()
            ),
            vec![
                json!("workload-low"),
                json!("Limited"),
                json!(100),
                json!(128),
                json!(6),
                json!(50),
                json!("<unknown>")
            ]
        );
        let exempt = json!({"spec": {"type": "Exempt"}});
        assert_eq!(
            cells(
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
                &exempt,
                now()
            )[2],
            "<none>"
        );
    }

    #[test]
    fn default_table_for_resources_without_printers() {
        let role = json!({"metadata": {"name": "reader",
                                       "creationTimestamp": "2024-05-01T10:00:00.123+02:00"}});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "roles", &role, now()),
            vec![json!("reader"), json!("2024-05-01T08:00:00Z")]
        );
        assert_eq!(
            default_cells(&json!({"metadata": {"name": "crd"}})),
            vec![json!("crd"), json!("0001-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn custom_columns_from_printer_columns() {
        let custom = CustomColumns::from_printer_columns(&json!([
            {"name": "Ready", "type": "string",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas",
             "description": "Desired replicas"},
            {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "priority": 1},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Team", "type": "string", "jsonPath": ".metadata.labels['example.com/team']"},
            {"name": "Last", "type": "string", "jsonPath": ".status.history[-1]"},
            {"name": "Ports", "type": "string", "jsonPath": ".spec.ports"},
            {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Bad", "type": "date", "jsonPath": ".status.when"},
        ]))
        .unwrap();
        let defs = custom.columns();
        assert_eq!(defs.len(), 11);
        assert_eq!(
            defs[0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC,
                   "priority": 0})
        );
        assert_eq!(
            defs[1],
            json!({"name": "Ready", "type": "string", "format": "",
                   "description": "Custom resource definition column (in JSONPath format): \
                                   .status.conditions[?(@.type==\"Ready\")].status",
                   "priority": 0})
        );
        assert_eq!(defs[2]["description"], "Desired replicas");
        assert_eq!(defs[3]["priority"], 1);
        let obj = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "creationTimestamp": "2024-05-01T11:00:00Z",
                         "labels": {"example.com/team": "blue"}},
            "spec": {"replicas": 3.0, "paused": true,
                     "ports": [{"port": 80, "name": "<http>"}]},
            "status": {"ratio": 0.5, "history": ["a", "b", "c"], "when": "yesterday",
                       "conditions": [{"type": "Synced", "status": "False"},
                                      {"type": "Ready", "status": "True"}]},
        });
        assert_eq!(
            custom.cells(&obj, now()),
            vec![
                json!("w1"),
                json!("True"),
                json!(3),
                json!(0.5),
                json!(true),
                json!("blue"),
                json!("c"),
                json!("[{\"name\":\"\\u003chttp\\u003e\",\"port\":80}]"),
                Value::Null,
                json!("60m"),
                json!("<invalid>"),
            ]
        );
        // Wrong types become null cells.
        let odd = json!({"metadata": {"name": "w2"}, "spec": {"replicas": "three", "paused": 1}});
        let c = custom.cells(&odd, now());
        assert_eq!((c[2].clone(), c[4].clone()), (Value::Null, Value::Null));
    }

    #[test]
    fn custom_columns_default_to_age_and_reject_bad_paths() {
        for v in [Value::Null, json!([])] {
            let custom = CustomColumns::from_printer_columns(&v).unwrap();
            let defs = custom.columns();
            assert_eq!(defs.len(), 2);
            assert_eq!(
                defs[1],
                json!({"name": "Age", "type": "date", "format": "", "description": CREATED_DESC,
                       "priority": 0})
            );
            let obj =
                json!({"metadata": {"name": "w", "creationTimestamp": "2024-04-30T12:00:00Z"}});
            assert_eq!(custom.cells(&obj, now()), vec![json!("w"), json!("24h")]);
            assert_eq!(
                custom.cells(&json!({"metadata": {"name": "w"}}), now()),
                vec![json!("w"), Value::Null]
            );
        }
        let err = CustomColumns::from_printer_columns(&json!([
            {"name": "X", "type": "string", "jsonPath": ".spec[unclosed"}]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Internal error occurred: unrecognized column definition \".spec[unclosed\""
        );
        assert!(CustomColumns::from_printer_columns(&json!({"a": 1})).is_err());
    }

    #[test]
    fn json_path_subset() {
        let doc = json!({"a": {"b": [{"c": 1, "n": "x"}, {"c": 2, "n": "y"}], "k.e.y": "dot"}});
        let find = |p: &str| -> Vec<Value> {
            JsonPath::parse(p)
                .unwrap()
                .find(&doc)
                .into_iter()
                .cloned()
                .collect()
        };
        assert_eq!(find(".a.b[0].c"), [json!(1)]);
        assert_eq!(find(".a.b[*].n"), [json!("x"), json!("y")]);
        assert_eq!(find(".a.b[?(@.c > 1)].n"), [json!("y")]);
        assert_eq!(find(".a.b[?(@.n != 'x')].c"), [json!(2)]);
        assert_eq!(find(".a.b[?(@.missing)].c"), Vec::<Value>::new());
        assert_eq!(find(".a['k.e.y']"), [json!("dot")]);
        assert_eq!(find(".a.b[5]"), Vec::<Value>::new());
        assert_eq!(find("."), std::slice::from_ref(&doc));
        assert!(JsonPath::parse(".a..b").is_err());
        assert!(JsonPath::parse(".a[?(@.b ~ 1)]").is_err());
    }

    #[test]
    fn table_with_include_object_variants() {
        let pod = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "done", "namespace": "default", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded"},
        });
        let cols = column_definitions(columns("", "pods").unwrap_or_default());
        let row = cells("", "pods", &pod, now());
        let t = table(
            cols.clone(),
            vec![(row.clone(), pod.clone())],
            "42",
            Some("tok"),
            IncludeObject::Metadata,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"], Value::Array(cols.clone()));
        assert_eq!(
            t["rows"],
            json!([{
                "cells": row,
                "conditions": [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                "message": "The pod has completed successfully."}],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"name": "done", "namespace": "default",
                                        "resourceVersion": "7"}},
            }])
        );
        let t = table(
            cols.clone(),
            vec![(row.clone(), pod.clone())],
            "",
            None,
            IncludeObject::None,
        );
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let t = table(
            cols,
            vec![(row, pod.clone())],
            "1",
            Some(""),
            IncludeObject::Object,
        );
        assert_eq!(t["metadata"], json!({"resourceVersion": "1"}));
        assert_eq!(t["rows"][0]["object"], pod);
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}});
        let t = table(
            Vec::new(),
            vec![(default_cells(&cm), cm)],
            "3",
            None,
            IncludeObject::Metadata,
        );
        assert!(t["rows"][0].get("conditions").is_none());
        let t = table(Vec::new(), Vec::new(), "3", None, IncludeObject::Metadata);
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn include_object_query_parameter() {
        assert_eq!(
            IncludeObject::from_query(None).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::from_query(Some("")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::from_query(Some("None")).unwrap(),
            IncludeObject::None
        );
        assert_eq!(
            IncludeObject::from_query(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        let err = IncludeObject::from_query(Some("All")).unwrap_err();
        assert_eq!(err.status_parts().0, 400);
        assert_eq!(err.to_string(), "unrecognized includeObject value: \"All\"");
    }
}
