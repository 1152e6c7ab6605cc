//! Conversions of the rbac/v1 messages.

use super::*;
use k8s_pb::api::rbac::v1 as pb;

messages! {
    "io.k8s.api.rbac.v1";
    AggregationRule {
        cluster_role_selectors,
    }
    ClusterRole {
        metadata, rules, aggregation_rule,
    }
    ClusterRoleBinding {
        metadata, subjects, role_ref,
    }
    PolicyRule {
        verbs, api_groups, resources, resource_names, non_resource_ur_ls = "nonResourceURLs",
    }
    Role {
        metadata, rules,
    }
    RoleBinding {
        metadata, subjects, role_ref,
    }
    RoleRef {
        api_group, kind, name,
    }
    Subject {
        kind, api_group: omitempty, name, namespace: omitempty,
    }
}
