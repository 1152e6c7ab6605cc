use std::collections::{BTreeMap, BTreeSet};

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

/// 2024-01-02T03:04:05Z.
const T0: i64 = 1_704_164_645;

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

fn time(seconds: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(seconds),
        nanos: Some(0),
    })
}

/// An IntOrString as Go writes it: every field on the wire.
fn int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: s(""),
    })
}

fn string(value: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(value),
    })
}

/// A protobuf request body as client-go sends it.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn decode(api_version: &str, kind: &str, object: &impl Message) -> Value {
    match decode_body(&envelope(api_version, kind, object)) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn error(body: &[u8]) -> (u16, String) {
    match decode_body(body) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => {
            let (code, _, message, _) = e.status_parts();
            (code, message)
        }
    }
}

/// Metadata as kubectl sends it: value fields present with their zero values.
fn metadata(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
    Some(object_meta(name, namespace))
}

fn object_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn deployment() -> apps::Deployment {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        command: strings(&["nginx"]),
        args: strings(&["-g", "daemon off;"]),
        working_dir: s(""),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("production"),
                value_from: None,
            },
            core::EnvVar {
                name: s("PASSWORD"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("db") }),
                        key: s("password"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            core::EnvVar {
                name: s("POD_IP"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        api_version: s("v1"),
                        field_path: s("status.podIP"),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
            requests: quantities(&[("cpu", "250m")]),
            claims: vec![],
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("data"),
            read_only: Some(true),
            mount_path: s("/data"),
            sub_path: s(""),
            sub_path_expr: s(""),
            ..Default::default()
        }],
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: int(8080),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: vec![core::HttpHeader {
                        name: s("X-Probe"),
                        value: s("1"),
                    }],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(0),
            period_seconds: Some(10),
            success_threshold: Some(0),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: string("http"),
                    host: s(""),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(core::SecurityContext {
            privileged: Some(false),
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            capabilities: Some(core::Capabilities {
                add: vec![],
                drop: strings(&["ALL"]),
            }),
            ..Default::default()
        }),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let pod_spec = core::PodSpec {
        volumes: vec![
            core::Volume {
                name: s("data"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(Quantity { string: s("1Gi") }),
                    }),
                    ..Default::default()
                }),
            },
            core::Volume {
                name: s("config"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("web-config"),
                        }),
                        items: vec![core::KeyToPath {
                            key: s("nginx.conf"),
                            path: s("nginx.conf"),
                            mode: None,
                        }],
                        default_mode: Some(0o644),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
        ],
        containers: vec![container],
        restart_policy: s("Always"),
        termination_grace_period_seconds: Some(30),
        dns_policy: s("ClusterFirst"),
        node_selector: map(&[("kubernetes.io/os", "linux")]),
        service_account_name: s(""),
        service_account: s(""),
        node_name: s(""),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        security_context: Some(core::PodSecurityContext::default()),
        hostname: s(""),
        subdomain: s(""),
        scheduler_name: s("default-scheduler"),
        priority_class_name: s(""),
        tolerations: vec![core::Toleration {
            key: s("node.kubernetes.io/not-ready"),
            operator: s("Exists"),
            value: s(""),
            effect: s("NoExecute"),
            toleration_seconds: Some(300),
        }],
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web")]),
            annotations: map(&[("note", "hello")]),
            creation_timestamp: time(T0),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: time(T0),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{"f:replicas":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..object_meta("web", "default")
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: map(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: strings(&["frontend"]),
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&[("app", "web")]),
                    ..object_meta("", "")
                }),
                spec: Some(pod_spec),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: string("25%"),
                    max_surge: int(1),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(10),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus::default()),
    }
}

fn deployment_json() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"note": "hello"},
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "managedFields": [{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
            }],
        },
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}],
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [
                        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {
                            "name": "config",
                            "configMap": {
                                "name": "web-config",
                                "items": [{"key": "nginx.conf", "path": "nginx.conf"}],
                                "defaultMode": 420,
                            },
                        },
                    ],
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "command": ["nginx"],
                        "args": ["-g", "daemon off;"],
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "production"},
                            {
                                "name": "PASSWORD",
                                "valueFrom": {
                                    "secretKeyRef": {"name": "db", "key": "password", "optional": false},
                                },
                            },
                            {
                                "name": "POD_IP",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"},
                                },
                            },
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"},
                        },
                        "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
                        "livenessProbe": {
                            "httpGet": {
                                "path": "/healthz",
                                "port": 8080,
                                "scheme": "HTTP",
                                "httpHeaders": [{"name": "X-Probe", "value": "1"}],
                            },
                            "initialDelaySeconds": 5,
                            "periodSeconds": 10,
                            "failureThreshold": 3,
                        },
                        "readinessProbe": {"tcpSocket": {"port": "http"}},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                        "securityContext": {
                            "capabilities": {"drop": ["ALL"]},
                            "privileged": false,
                            "runAsUser": 0,
                            "allowPrivilegeEscalation": false,
                        },
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                    "tolerations": [{
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }],
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    })
}

#[test]
fn deployment_decodes_to_kubernetes_json() {
    assert_eq!(
        decode("apps/v1", "Deployment", &deployment()),
        deployment_json()
    );
}

#[test]
fn deployment_round_trips_through_k8s_openapi() {
    let value = decode("apps/v1", "Deployment", &deployment());
    let typed: k8s_openapi::api::apps::v1::Deployment = match serde_json::from_value(value.clone())
    {
        Ok(d) => d,
        Err(e) => panic!("not a k8s-openapi Deployment: {e}"),
    };
    let spec = typed.spec.clone().unwrap_or_default();
    assert_eq!(spec.replicas, Some(3));
    let container = &spec.template.spec.unwrap_or_default().containers[0];
    assert_eq!(
        container.ports.as_deref().unwrap_or_default()[0].container_port,
        80
    );
    assert_eq!(serde_json::to_value(&typed).ok(), Some(value));
}

#[test]
fn zero_pointer_fields_are_kept_and_zero_value_fields_dropped() {
    let d = apps::Deployment {
        metadata: metadata("zero", "default"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int(0),
                    max_surge: None,
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode("apps/v1", "Deployment", &d),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "zero", "namespace": "default"},
            "spec": {"replicas": 0, "strategy": {"rollingUpdate": {"maxUnavailable": 0}}},
        })
    );
}

#[test]
fn secret_binary_data_is_base64() {
    let secret = core::Secret {
        metadata: metadata("db", "default"),
        immutable: Some(true),
        data: [
            ("bin".to_string(), vec![0u8, 1, 2, 0xff]),
            ("empty".to_string(), vec![]),
            ("password".to_string(), b"s3cr3t".to_vec()),
        ]
        .into_iter()
        .collect(),
        string_data: map(&[("extra", "plain")]),
        r#type: s("Opaque"),
    };
    let value = decode("v1", "Secret", &secret);
    assert_eq!(
        value,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "immutable": true,
            "data": {"bin": "AAEC/w==", "empty": "", "password": "czNjcjN0"},
            "stringData": {"extra": "plain"},
            "type": "Opaque",
        })
    );
    let typed: k8s_openapi::api::core::v1::Secret = match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => panic!("not a k8s-openapi Secret: {e}"),
    };
    let data = typed.data.unwrap_or_default();
    assert_eq!(
        data.get("bin").map(|b| b.0.clone()),
        Some(vec![0u8, 1, 2, 0xff])
    );
}

#[test]
fn job_decodes() {
    use k8s_pb::api::batch::v1 as batch;
    let job = batch::Job {
        metadata: metadata("pi", "batch"),
        spec: Some(batch::JobSpec {
            parallelism: Some(0),
            completions: Some(1),
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(100),
            completion_mode: s("NonIndexed"),
            suspend: Some(false),
            manual_selector: None,
            template: Some(core::PodTemplateSpec {
                metadata: metadata("", ""),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("pi"),
                        image: s("perl:5.34"),
                        command: strings(&["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]),
                        resources: Some(core::ResourceRequirements::default()),
                        ..Default::default()
                    }],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(batch::JobStatus {
            conditions: vec![batch::JobCondition {
                r#type: s("Complete"),
                status: s("True"),
                last_probe_time: time(T0),
                last_transition_time: time(T0 + 60),
                reason: s(""),
                message: s(""),
            }],
            start_time: time(T0 - 3600),
            completion_time: Some(meta::Time::default()),
            active: Some(0),
            succeeded: Some(1),
            failed: Some(0),
            terminating: Some(0),
            ready: Some(0),
            ..Default::default()
        }),
    };
    let value = decode("batch/v1", "Job", &job);
    assert_eq!(
        value,
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pi", "namespace": "batch"},
            "spec": {
                "parallelism": 0,
                "completions": 1,
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 100,
                "completionMode": "NonIndexed",
                "suspend": false,
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{
                            "name": "pi",
                            "image": "perl:5.34",
                            "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
                            "resources": {},
                        }],
                        "restartPolicy": "Never",
                    },
                },
            },
            "status": {
                "conditions": [{
                    "type": "Complete",
                    "status": "True",
                    "lastProbeTime": "2024-01-02T03:04:05Z",
                    "lastTransitionTime": "2024-01-02T03:05:05Z",
                }],
                "startTime": "2024-01-02T02:04:05Z",
                "succeeded": 1,
                "terminating": 0,
                "ready": 0,
            },
        })
    );
    let typed: std::result::Result<k8s_openapi::api::batch::v1::Job, _> =
        serde_json::from_value(value.clone());
    assert_eq!(
        typed.ok().and_then(|j| serde_json::to_value(j).ok()),
        Some(value)
    );
}

fn delete_options() -> meta::DeleteOptions {
    meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("3f9a9c1e-0000-4000-8000-000000000001"),
            resource_version: s("42"),
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: strings(&["All"]),
        ignore_store_read_error_with_cluster_breaking_potential: None,
    }
}

#[test]
fn delete_options_decode_under_any_group_version() {
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1", "batch/v1"] {
        assert_eq!(
            decode(api_version, "DeleteOptions", &delete_options()),
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "3f9a9c1e-0000-4000-8000-000000000001", "resourceVersion": "42"},
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
    }
    let value = decode("v1", "DeleteOptions", &delete_options());
    let typed: std::result::Result<
        k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions,
        _,
    > = serde_json::from_value(value);
    assert_eq!(
        typed.ok().and_then(|d| d.propagation_policy),
        Some("Foreground".to_string())
    );
}

#[test]
fn empty_delete_options_is_an_empty_object() {
    assert_eq!(
        decode("v1", "DeleteOptions", &meta::DeleteOptions::default()),
        json!({"apiVersion": "v1", "kind": "DeleteOptions"})
    );
}

#[test]
fn service_drops_go_zero_values_but_keeps_special_names() {
    let service = core::Service {
        metadata: metadata("web", "default"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s(""),
                    protocol: s("TCP"),
                    app_protocol: None,
                    port: Some(80),
                    target_port: int(0),
                    node_port: Some(0),
                },
                core::ServicePort {
                    name: s("https"),
                    protocol: s("TCP"),
                    app_protocol: s("https"),
                    port: Some(443),
                    target_port: string("https"),
                    node_port: Some(30443),
                },
            ],
            selector: map(&[("app", "web")]),
            cluster_ip: s("10.0.0.10"),
            cluster_ips: strings(&["10.0.0.10", "fd00::10"]),
            r#type: s("ClusterIP"),
            external_ips: strings(&["192.0.2.1"]),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(10800),
                }),
            }),
            ip_families: strings(&["IPv4", "IPv6"]),
            ip_family_policy: s("PreferDualStack"),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let value = decode("v1", "Service", &service);
    assert_eq!(
        value,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [
                    {"protocol": "TCP", "port": 80},
                    {
                        "name": "https",
                        "protocol": "TCP",
                        "appProtocol": "https",
                        "port": 443,
                        "targetPort": "https",
                        "nodePort": 30443,
                    },
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.0.0.10",
                "clusterIPs": ["10.0.0.10", "fd00::10"],
                "type": "ClusterIP",
                "externalIPs": ["192.0.2.1"],
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack",
            },
            "status": {"loadBalancer": {}},
        })
    );
    let typed: std::result::Result<k8s_openapi::api::core::v1::Service, _> =
        serde_json::from_value(value.clone());
    assert_eq!(
        typed.ok().and_then(|v| serde_json::to_value(v).ok()),
        Some(value)
    );
}

#[test]
fn pod_status_uses_go_json_names() {
    let pod = core::Pod {
        metadata: metadata("p", "default"),
        spec: None,
        status: Some(core::PodStatus {
            phase: s("Running"),
            host_ip: s("192.0.2.7"),
            host_ips: vec![core::HostIp { ip: s("192.0.2.7") }],
            pod_ip: s("10.1.0.5"),
            pod_ips: vec![core::PodIp { ip: s("10.1.0.5") }],
            start_time: time(T0),
            container_statuses: vec![core::ContainerStatus {
                name: s("c"),
                ready: Some(true),
                restart_count: Some(0),
                image: s("nginx"),
                image_id: s("docker.io/library/nginx@sha256:abc"),
                container_id: s("containerd://123"),
                started: Some(true),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: time(T0),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            qos_class: s("BestEffort"),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode("v1", "Pod", &pod)["status"],
        json!({
            "phase": "Running",
            "hostIP": "192.0.2.7",
            "hostIPs": [{"ip": "192.0.2.7"}],
            "podIP": "10.1.0.5",
            "podIPs": [{"ip": "10.1.0.5"}],
            "startTime": "2024-01-02T03:04:05Z",
            "containerStatuses": [{
                "name": "c",
                "ready": true,
                "restartCount": 0,
                "image": "nginx",
                "imageID": "docker.io/library/nginx@sha256:abc",
                "containerID": "containerd://123",
                "started": true,
                "state": {"running": {"startedAt": "2024-01-02T03:04:05Z"}},
            }],
            "qosClass": "BestEffort",
        })
    );
}

#[test]
fn micro_times_have_six_fraction_digits() {
    use k8s_pb::api::coordination::v1 as coordination;
    use k8s_pb::api::events::v1 as events;
    let lease = coordination::Lease {
        metadata: metadata("kube-scheduler", "kube-system"),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(T0),
                nanos: Some(0),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(T0),
                nanos: Some(123_456_789),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode("coordination.k8s.io/v1", "Lease", &lease)["spec"],
        json!({
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.000000Z",
            "renewTime": "2024-01-02T03:04:05.123456Z",
            "leaseTransitions": 0,
        })
    );
    let event = events::Event {
        metadata: metadata("web.1", "default"),
        event_time: Some(meta::MicroTime {
            seconds: Some(T0),
            nanos: Some(5_000),
        }),
        series: Some(events::EventSeries {
            count: Some(2),
            last_observed_time: Some(meta::MicroTime {
                seconds: Some(T0 + 1),
                nanos: Some(0),
            }),
        }),
        reporting_controller: s("example.com/ctl"),
        reporting_instance: s("ctl-1"),
        action: s("Scale"),
        reason: s("Scaled"),
        regarding: Some(core::ObjectReference {
            kind: s("Deployment"),
            namespace: s("default"),
            name: s("web"),
            api_version: s("apps/v1"),
            uid: s(""),
            resource_version: s(""),
            field_path: s(""),
        }),
        note: s("scaled to 3"),
        r#type: s("Normal"),
        deprecated_first_timestamp: Some(meta::Time::default()),
        deprecated_count: Some(0),
        ..Default::default()
    };
    assert_eq!(
        decode("events.k8s.io/v1", "Event", &event),
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2024-01-02T03:04:05.000005Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-02T03:04:06.000000Z"},
            "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1",
            "action": "Scale",
            "reason": "Scaled",
            "regarding": {"kind": "Deployment", "namespace": "default", "name": "web", "apiVersion": "apps/v1"},
            "note": "scaled to 3",
            "type": "Normal",
        })
    );
}

#[test]
fn token_request_and_rbac_decode() {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::rbac::v1 as rbac;
    let token = authn::TokenRequest {
        metadata: metadata("builder", "default"),
        spec: Some(authn::TokenRequestSpec {
            audiences: strings(&["https://kubernetes.default.svc"]),
            expiration_seconds: Some(3600),
            bound_object_ref: Some(authn::BoundObjectReference {
                kind: s("Pod"),
                api_version: s("v1"),
                name: s("p"),
                u_id: s("u-1"),
            }),
        }),
        status: Some(authn::TokenRequestStatus {
            token: s(""),
            expiration_timestamp: Some(meta::Time::default()),
        }),
    };
    assert_eq!(
        decode("authentication.k8s.io/v1", "TokenRequest", &token),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": "builder", "namespace": "default"},
            "spec": {
                "audiences": ["https://kubernetes.default.svc"],
                "expirationSeconds": 3600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u-1"},
            },
            "status": {"token": ""},
        })
    );
    let role = rbac::ClusterRole {
        metadata: metadata("reader", ""),
        rules: vec![
            rbac::PolicyRule {
                verbs: strings(&["get", "list"]),
                api_groups: strings(&[""]),
                resources: strings(&["pods"]),
                ..Default::default()
            },
            rbac::PolicyRule {
                verbs: strings(&["get"]),
                non_resource_ur_ls: strings(&["/healthz"]),
                ..Default::default()
            },
        ],
        aggregation_rule: None,
    };
    assert_eq!(
        decode("rbac.authorization.k8s.io/v1", "ClusterRole", &role),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            ],
        })
    );
}

#[test]
fn configmap_and_namespace_decode() {
    let cm = core::ConfigMap {
        metadata: metadata("cfg", "default"),
        immutable: None,
        data: map(&[("a", "1"), ("empty", "")]),
        binary_data: [("blob".to_string(), b"\x00\x10".to_vec())]
            .into_iter()
            .collect(),
    };
    assert_eq!(
        decode("v1", "ConfigMap", &cm),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"a": "1", "empty": ""},
            "binaryData": {"blob": "ABA="},
        })
    );
    let ns = core::Namespace {
        metadata: metadata("team-a", ""),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode("v1", "Namespace", &ns),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a"},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn bad_magic_is_a_bad_request() {
    assert_eq!(
        error(b"{\"kind\":\"Pod\"}"),
        (
            400,
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .to_string()
        )
    );
    assert_eq!(error(b""), (400, "empty data".to_string()));
    assert_eq!(error(b"k8s\0"), (400, "empty body".to_string()));
    assert_eq!(error(b"k8s"), error(b"k8x\0"));
}

#[test]
fn truncated_bytes_are_a_bad_request() {
    let body = envelope("apps/v1", "Deployment", &deployment());
    let (code, message) = error(&body[..body.len() - 7]);
    assert_eq!(code, 400);
    assert!(
        message.starts_with("unable to decode the protobuf envelope (runtime.Unknown): "),
        "{message}"
    );

    // A whole envelope around a truncated object message.
    let raw = deployment().encode_to_vec();
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("apps/v1"),
            kind: s("Deployment"),
        }),
        raw: Some(raw[..raw.len() / 2].to_vec()),
        content_encoding: None,
        content_type: None,
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    let (code, message) = error(&body);
    assert_eq!(code, 400);
    assert!(
        message.starts_with("unable to decode apps/v1, Kind=Deployment from protobuf: "),
        "{message}"
    );
}

#[test]
fn unknown_kinds_are_unsupported_media() {
    assert_eq!(
        error(&envelope("apps/v1", "Gadget", &apps::Deployment::default())),
        (
            415,
            "the server cannot decode apps/v1, Kind=Gadget from application/vnd.kubernetes.protobuf; \
             send it as application/json"
                .to_string()
        )
    );
    let (code, message) = error(&envelope("extensions/v1beta1", "Deployment", &deployment()));
    assert_eq!(code, 415);
    assert!(
        message.contains("extensions/v1beta1, Kind=Deployment"),
        "{message}"
    );
    let status = match decode_body(&envelope("apps/v1", "Gadget", &deployment())) {
        Err(e) => e.to_status(),
        Ok(v) => panic!("{v}"),
    };
    assert_eq!(status["reason"], "UnsupportedMediaType");
}

#[test]
fn missing_type_meta_is_a_bad_request() {
    assert_eq!(
        error(&envelope("v1", "", &core::Pod::default())),
        (
            400,
            "Object 'Kind' is missing in the protobuf envelope (apiVersion \"v1\")".to_string()
        )
    );
    assert_eq!(
        error(&envelope("", "Pod", &core::Pod::default())),
        (
            400,
            "Object 'apiVersion' is missing in the protobuf envelope (kind \"Pod\")".to_string()
        )
    );
}

#[test]
fn invalid_embedded_values_are_bad_requests() {
    let mut bad_fields = metadata("x", "default");
    if let Some(m) = bad_fields.as_mut() {
        m.managed_fields = vec![meta::ManagedFieldsEntry {
            fields_v1: Some(meta::FieldsV1 {
                raw: Some(b"{not json".to_vec()),
            }),
            ..Default::default()
        }];
    }
    let cm = core::ConfigMap {
        metadata: bad_fields,
        ..Default::default()
    };
    let (code, message) = error(&envelope("v1", "ConfigMap", &cm));
    assert_eq!(code, 400);
    assert!(
        message.starts_with("metav1.FieldsV1 does not hold JSON: "),
        "{message}"
    );

    let svc = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    int_val: None,
                    str_val: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        error(&envelope("v1", "Service", &svc)),
        (
            400,
            "impossible IntOrString.Type 7: must be 0 (int) or 1 (string)".to_string()
        )
    );

    let mut far = metadata("x", "default");
    if let Some(m) = far.as_mut() {
        m.creation_timestamp = time(300_000_000_000);
    }
    let (code, message) = error(&envelope(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: far,
            ..Default::default()
        },
    ));
    assert_eq!(code, 400);
    assert!(
        message.starts_with("metav1.Time: 300000000000 seconds is outside"),
        "{message}"
    );
}

#[test]
fn times() {
    let t = |seconds, nanos| meta::Time { seconds, nanos }.to_json().ok().flatten();
    assert_eq!(
        t(Some(T0), Some(999_999_999)),
        Some(json!("2024-01-02T03:04:05Z"))
    );
    assert_eq!(t(Some(0), None), Some(json!("1970-01-01T00:00:00Z")));
    assert_eq!(t(Some(-1), None), Some(json!("1969-12-31T23:59:59Z")));
    assert_eq!(t(None, None), None);
    assert_eq!(t(Some(-62_135_596_800), Some(0)), None, "Go's zero time");
    assert_eq!(
        t(Some(253_402_300_799), None),
        Some(json!("9999-12-31T23:59:59Z"))
    );
    assert_eq!(
        t(Some(-62_167_219_200), None),
        Some(json!("0000-01-01T00:00:00Z"))
    );
    assert_eq!(
        t(Some(951_782_400), None),
        Some(json!("2000-02-29T00:00:00Z"))
    );
    assert_eq!(
        t(Some(4_107_542_399), None),
        Some(json!("2100-02-28T23:59:59Z"))
    );
    assert_eq!(
        t(Some(4_107_542_400), None),
        Some(json!("2100-03-01T00:00:00Z"))
    );
    assert!(meta::Time {
        seconds: Some(-62_167_219_201),
        nanos: None
    }
    .to_json()
    .is_err());
    assert!(meta::Time {
        seconds: Some(253_402_300_800),
        nanos: None
    }
    .to_json()
    .is_err());

    let m = |seconds, nanos| meta::MicroTime { seconds, nanos }.to_json().ok().flatten();
    assert_eq!(
        m(Some(T0), Some(1_999)),
        Some(json!("2024-01-02T03:04:05.000001Z"))
    );
    assert_eq!(
        m(Some(T0), Some(-1)),
        Some(json!("2024-01-02T03:04:04.999999Z"))
    );
    assert_eq!(
        m(Some(T0), Some(1_500_000_000)),
        Some(json!("2024-01-02T03:04:06.500000Z"))
    );
    assert_eq!(m(None, None), None);
    assert!(meta::MicroTime {
        seconds: Some(i64::MAX),
        nanos: Some(i32::MAX)
    }
    .to_json()
    .is_err());
}

#[test]
fn durations_are_go_strings() {
    let d = |nanos: i64| {
        meta::Duration {
            duration: Some(nanos),
        }
        .to_json()
        .ok()
        .flatten()
    };
    const S: i64 = 1_000_000_000;
    assert_eq!(d(0), Some(json!("0s")));
    assert_eq!(d(1), Some(json!("1ns")));
    assert_eq!(d(1_500), Some(json!("1.5µs")));
    assert_eq!(d(300_000_000), Some(json!("300ms")));
    assert_eq!(d(1_000_001), Some(json!("1.000001ms")));
    assert_eq!(d(S), Some(json!("1s")));
    assert_eq!(d(S + S / 2), Some(json!("1.5s")));
    assert_eq!(d(90 * S), Some(json!("1m30s")));
    assert_eq!(d(3600 * S), Some(json!("1h0m0s")));
    assert_eq!(d(3723 * S), Some(json!("1h2m3s")));
    assert_eq!(d(-(3723 * S)), Some(json!("-1h2m3s")));
    assert_eq!(d(i64::MIN), Some(json!("-2562047h47m16.854775808s")));
    assert_eq!(
        meta::Duration { duration: None }.to_json().ok().flatten(),
        Some(json!("0s"))
    );
}

#[test]
fn int_or_string_quantity_and_raw_extension() {
    let i = |r#type, int_val, str_val: Option<&str>| {
        IntOrString {
            r#type,
            int_val,
            str_val: str_val.map(str::to_string),
        }
        .to_json()
        .ok()
        .flatten()
    };
    assert_eq!(i(Some(0), Some(8080), Some("")), Some(json!(8080)));
    assert_eq!(i(None, None, None), Some(json!(0)));
    assert_eq!(i(Some(1), Some(0), Some("http")), Some(json!("http")));
    assert_eq!(i(Some(1), None, None), Some(json!("")));

    assert_eq!(
        Quantity {
            string: s("1536Mi")
        }
        .to_json()
        .ok()
        .flatten(),
        Some(json!("1536Mi"))
    );
    assert_eq!(
        Quantity { string: None }.to_json().ok().flatten(),
        Some(json!("0"))
    );

    let raw = RawExtension {
        raw: Some(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#.to_vec()),
    };
    assert_eq!(
        raw.to_json().ok().flatten(),
        Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}))
    );
    assert_eq!(RawExtension { raw: None }.to_json().ok().flatten(), None);
    assert_eq!(
        RawExtension { raw: Some(vec![]) }.to_json().ok().flatten(),
        None
    );
    match (RawExtension {
        raw: Some(b"k8s\0\x0a".to_vec()),
    })
    .to_json()
    {
        Err(ApiError::BadRequest(m)) => assert!(
            m.starts_with("runtime.RawExtension does not hold JSON"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scalars_and_collections() {
    assert_eq!(1.5f64.to_json().ok().flatten(), Some(json!(1.5)));
    assert!(f64::NAN.to_json().is_err());
    assert_eq!(
        i64::MAX.to_json().ok().flatten(),
        Some(json!(9_223_372_036_854_775_807i64))
    );
    assert_eq!(Vec::<String>::new().to_json().ok().flatten(), None);
    assert_eq!(
        BTreeMap::<String, String>::new().to_json().ok().flatten(),
        None
    );
    assert_eq!(
        Some(vec![1u8, 2]).to_json().ok().flatten(),
        Some(json!("AQI="))
    );
    assert_eq!(
        vec![
            meta::Time::default(),
            meta::Time {
                seconds: Some(0),
                nanos: None
            }
        ]
        .to_json()
        .ok()
        .flatten(),
        Some(json!([null, "1970-01-01T00:00:00Z"]))
    );
    assert_eq!(camel("r#type"), "type");
    assert_eq!(
        camel("termination_grace_period_seconds"),
        "terminationGracePeriodSeconds"
    );
    assert!(
        is_zero(&json!(0)) && is_zero(&json!("")) && is_zero(&json!(false)) && is_zero(&json!(0.0))
    );
    assert!(!is_zero(&json!({})) && !is_zero(&json!(1)) && !is_zero(&json!("x")));
}

/// Every supported kind decodes from an empty object message.
#[test]
fn every_supported_kind_decodes() {
    let kinds = [
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "Pod"),
        ("v1", "PodTemplate"),
        ("v1", "Endpoints"),
        ("v1", "Node"),
        ("v1", "Event"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "PersistentVolume"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("v1", "Binding"),
        ("v1", "ReplicationController"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("autoscaling/v1", "Scale"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("authentication.k8s.io/v1", "TokenReview"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
        ("meta.k8s.io/v1", "DeleteOptions"),
    ];
    for (api_version, kind) in kinds {
        // An empty message: just a name in metadata (field 1 in every one of these kinds but
        // DeleteOptions, whose field 1 is gracePeriodSeconds, so it gets none).
        let raw = if kind == "DeleteOptions" {
            vec![]
        } else {
            let meta = meta::ObjectMeta {
                name: s("n"),
                ..Default::default()
            };
            let mut raw = vec![0x0a];
            prost::encoding::encode_varint(meta.encoded_len() as u64, &mut raw);
            raw.extend(meta.encode_to_vec());
            raw
        };
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            raw: Some(raw),
            content_encoding: None,
            content_type: None,
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        let value = match decode_body(&body) {
            Ok(v) => v,
            Err(e) => panic!("{api_version} {kind}: {e}"),
        };
        assert_eq!(value["apiVersion"], api_version);
        assert_eq!(value["kind"], kind);
        if kind != "DeleteOptions" {
            assert_eq!(value["metadata"], json!({"name": "n"}), "{kind}");
        }
    }
}

/// Types added to Kubernetes after 1.33 (k8s-pb 0.9 is 1.35), absent from the k8s-openapi
/// `v1_33` schemas.
const NEWER_TYPES: &[&str] = &[
    "io.k8s.api.core.v1.ContainerExtendedResourceRequest",
    "io.k8s.api.core.v1.ContainerRestartRule",
    "io.k8s.api.core.v1.ContainerRestartRuleOnExitCodes",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.PodCertificateProjection",
    "io.k8s.api.core.v1.PodExtendedResourceClaimStatus",
    "io.k8s.api.core.v1.WorkloadReference",
];

/// Fields added after 1.33, as `definition.field`.
const NEWER_FIELDS: &[&str] = &[
    "io.k8s.api.core.v1.Container.restartPolicyRules",
    "io.k8s.api.core.v1.EphemeralContainer.restartPolicyRules",
    "io.k8s.api.core.v1.EnvVarSource.fileKeyRef",
    "io.k8s.api.core.v1.NodeStatus.declaredFeatures",
    "io.k8s.api.core.v1.PodSpec.hostnameOverride",
    "io.k8s.api.core.v1.PodSpec.workloadRef",
    "io.k8s.api.core.v1.PodStatus.allocatedResources",
    "io.k8s.api.core.v1.PodStatus.extendedResourceClaimStatus",
    "io.k8s.api.core.v1.PodStatus.resources",
    "io.k8s.api.core.v1.VolumeProjection.podCertificate",
];

/// Each JSON name the conversion produces is a property of the k8s-openapi schema of that type,
/// and each schema property (but `apiVersion`/`kind`, which come from the envelope) is produced.
#[test]
fn json_names_match_k8s_openapi_schemas() {
    use k8s_openapi::api;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as oa_meta;
    let mut generator = schemars::SchemaGenerator::default();
    generator.subschema_for::<api::core::v1::Namespace>();
    generator.subschema_for::<api::core::v1::ConfigMap>();
    generator.subschema_for::<api::core::v1::Secret>();
    generator.subschema_for::<api::core::v1::Service>();
    generator.subschema_for::<api::core::v1::ServiceAccount>();
    generator.subschema_for::<api::core::v1::Pod>();
    generator.subschema_for::<api::core::v1::PodTemplate>();
    generator.subschema_for::<api::core::v1::Endpoints>();
    generator.subschema_for::<api::core::v1::Node>();
    generator.subschema_for::<api::core::v1::Event>();
    generator.subschema_for::<api::core::v1::PersistentVolumeClaim>();
    generator.subschema_for::<api::core::v1::PersistentVolume>();
    generator.subschema_for::<api::core::v1::ResourceQuota>();
    generator.subschema_for::<api::core::v1::LimitRange>();
    generator.subschema_for::<api::core::v1::Binding>();
    generator.subschema_for::<api::core::v1::ReplicationController>();
    generator.subschema_for::<api::apps::v1::Deployment>();
    generator.subschema_for::<api::apps::v1::ReplicaSet>();
    generator.subschema_for::<api::apps::v1::StatefulSet>();
    generator.subschema_for::<api::apps::v1::DaemonSet>();
    generator.subschema_for::<api::autoscaling::v1::Scale>();
    generator.subschema_for::<api::batch::v1::Job>();
    generator.subschema_for::<api::batch::v1::CronJob>();
    generator.subschema_for::<api::coordination::v1::Lease>();
    generator.subschema_for::<api::discovery::v1::EndpointSlice>();
    generator.subschema_for::<api::events::v1::Event>();
    generator.subschema_for::<api::policy::v1::PodDisruptionBudget>();
    generator.subschema_for::<api::policy::v1::Eviction>();
    generator.subschema_for::<api::rbac::v1::Role>();
    generator.subschema_for::<api::rbac::v1::RoleBinding>();
    generator.subschema_for::<api::rbac::v1::ClusterRole>();
    generator.subschema_for::<api::rbac::v1::ClusterRoleBinding>();
    generator.subschema_for::<api::scheduling::v1::PriorityClass>();
    generator.subschema_for::<api::networking::v1::Ingress>();
    generator.subschema_for::<api::networking::v1::NetworkPolicy>();
    generator.subschema_for::<api::authentication::v1::TokenRequest>();
    generator.subschema_for::<api::authentication::v1::SelfSubjectReview>();
    generator.subschema_for::<api::authentication::v1::TokenReview>();
    generator.subschema_for::<api::authorization::v1::SelfSubjectAccessReview>();
    generator.subschema_for::<api::authorization::v1::SubjectAccessReview>();
    generator.subschema_for::<api::authorization::v1::LocalSubjectAccessReview>();
    generator.subschema_for::<api::authorization::v1::SelfSubjectRulesReview>();
    generator.subschema_for::<oa_meta::DeleteOptions>();
    let definitions = generator.definitions();

    let described: Vec<Described> = [
        apps_v1::described(),
        authentication_v1::described(),
        authorization_v1::described(),
        autoscaling_v1::described(),
        batch_v1::described(),
        coordination_v1::described(),
        core_v1::described(),
        discovery_v1::described(),
        events_v1::described(),
        meta_v1::described(),
        networking_v1::described(),
        policy_v1::described(),
        rbac_v1::described(),
        scheduling_v1::described(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(described.len() > 250, "{}", described.len());

    let mut problems = Vec::new();
    let mut checked = 0;
    for d in &described {
        let Some(schema) = d.schema else { continue };
        let Some(definition) = definitions.get(schema) else {
            if !NEWER_TYPES.contains(&schema) {
                problems.push(format!("{} ({schema}): no such k8s-openapi schema", d.rust));
            }
            continue;
        };
        checked += 1;
        let properties: BTreeSet<&str> = definition["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let ours: BTreeSet<&str> = d.names.iter().map(String::as_str).collect();
        assert_eq!(
            ours.len(),
            d.names.len(),
            "{}: duplicate JSON names {:?}",
            d.rust,
            d.names
        );
        for name in &ours {
            let qualified = format!("{schema}.{name}");
            if !properties.contains(name) && !NEWER_FIELDS.contains(&qualified.as_str()) {
                problems.push(format!(
                    "{}: {name:?} is not a property of {schema}",
                    d.rust
                ));
            }
        }
        for property in &properties {
            if !ours.contains(property) && *property != "apiVersion" && *property != "kind" {
                problems.push(format!(
                    "{}: property {property:?} of {schema} is not produced",
                    d.rust
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 250, "{checked}");
}

/// The calendar arithmetic agrees with counting days one by one across four centuries of leap
/// rules (1600–2500).
#[test]
fn civil_dates_match_day_counting() {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = |y: i64, m: i64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // 1600-01-01 is 135140 days before 1970-01-01.
    let (mut y, mut m, mut d) = (1600, 1, 1);
    for days in -135_140..194_000 {
        assert_eq!(wellknown::civil_from_days(days), (y, m, d), "{days}");
        d += 1;
        if d > month_days(y, m) {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    assert_eq!((y, m, d), (2501, 2, 26));
}
