//! Conversions of the networking/v1 messages.

use super::*;
use k8s_pb::api::networking::v1 as pb;

messages! {
    "io.k8s.api.networking.v1";
    HttpIngressPath as "HTTPIngressPath" {
        path: omitempty, path_type, backend,
    }
    HttpIngressRuleValue as "HTTPIngressRuleValue" {
        paths,
    }
    Ingress {
        metadata, spec, status,
    }
    IngressBackend {
        service, resource,
    }
    IngressLoadBalancerIngress {
        ip: omitempty, hostname: omitempty, ports,
    }
    IngressLoadBalancerStatus {
        ingress,
    }
    IngressPortStatus {
        port, protocol, error,
    }
    IngressRule {
        host: omitempty, ingress_rule_value: inline,
    }
    IngressRuleValue as inline {
        http,
    }
    IngressServiceBackend {
        name, port,
    }
    IngressSpec {
        ingress_class_name, default_backend, tls, rules,
    }
    IngressStatus {
        load_balancer,
    }
    IngressTls as "IngressTLS" {
        hosts, secret_name: omitempty,
    }
    IpBlock as "IPBlock" {
        cidr, except,
    }
    NetworkPolicy {
        metadata, spec,
    }
    NetworkPolicyEgressRule {
        ports, to,
    }
    NetworkPolicyIngressRule {
        ports, from,
    }
    NetworkPolicyPeer {
        pod_selector, namespace_selector, ip_block,
    }
    NetworkPolicyPort {
        protocol, port, end_port,
    }
    NetworkPolicySpec {
        pod_selector, ingress, egress, policy_types,
    }
    ServiceBackendPort {
        name: omitempty, number: omitempty,
    }
}
