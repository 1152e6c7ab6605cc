//! Conversions of the discovery/v1 messages.

use super::*;
use k8s_pb::api::discovery::v1 as pb;

messages! {
    "io.k8s.api.discovery.v1";
    Endpoint {
        addresses, conditions, hostname, target_ref, deprecated_topology, node_name, zone, hints,
    }
    EndpointConditions {
        ready, serving, terminating,
    }
    EndpointHints {
        for_zones, for_nodes,
    }
    EndpointPort {
        name, protocol, port, app_protocol,
    }
    EndpointSlice {
        metadata, address_type, endpoints, ports,
    }
    ForNode {
        name,
    }
    ForZone {
        name,
    }
}
