//! Conversions of the meta/v1 (apimachinery) messages.

use super::*;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb;

messages! {
    "io.k8s.apimachinery.pkg.apis.meta.v1";
    Condition {
        r#type, status, observed_generation: omitempty, last_transition_time, reason, message,
    }
    DeleteOptions {
        grace_period_seconds, preconditions, orphan_dependents, propagation_policy, dry_run,
        ignore_store_read_error_with_cluster_breaking_potential,
    }
    LabelSelector {
        match_labels, match_expressions,
    }
    FieldSelectorRequirement {
        key, operator, values: omitempty,
    }
    LabelSelectorRequirement {
        key, operator, values,
    }
    ManagedFieldsEntry {
        manager: omitempty, operation: omitempty, api_version: omitempty, time,
        fields_type: omitempty, fields_v1, subresource: omitempty,
    }
    ObjectMeta {
        name: omitempty, generate_name: omitempty, namespace: omitempty, self_link: omitempty,
        uid: omitempty, resource_version: omitempty, generation: omitempty, creation_timestamp,
        deletion_timestamp, deletion_grace_period_seconds, labels, annotations, owner_references,
        finalizers, managed_fields,
    }
    OwnerReference {
        api_version, kind, name, uid, controller, block_owner_deletion,
    }
    Preconditions {
        uid, resource_version,
    }
}
