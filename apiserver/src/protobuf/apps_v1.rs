//! Conversions of the apps/v1 messages.

use super::*;
use k8s_pb::api::apps::v1 as pb;

messages! {
    "io.k8s.api.apps.v1";
    DaemonSet {
        metadata, spec, status,
    }
    DaemonSetCondition {
        r#type, status, last_transition_time, reason: omitempty, message: omitempty,
    }
    DaemonSetSpec {
        selector, template, update_strategy, min_ready_seconds: omitempty, revision_history_limit,
    }
    DaemonSetStatus {
        current_number_scheduled, number_misscheduled, desired_number_scheduled, number_ready,
        observed_generation: omitempty, updated_number_scheduled: omitempty,
        number_available: omitempty, number_unavailable: omitempty, collision_count, conditions,
    }
    DaemonSetUpdateStrategy {
        r#type: omitempty, rolling_update,
    }
    Deployment {
        metadata, spec, status,
    }
    DeploymentCondition {
        r#type, status, last_update_time, last_transition_time, reason: omitempty,
        message: omitempty,
    }
    DeploymentSpec {
        replicas, selector, template, strategy, min_ready_seconds: omitempty,
        revision_history_limit, paused: omitempty, progress_deadline_seconds,
    }
    DeploymentStatus {
        observed_generation: omitempty, replicas: omitempty, updated_replicas: omitempty,
        ready_replicas: omitempty, available_replicas: omitempty, unavailable_replicas: omitempty,
        terminating_replicas, conditions, collision_count,
    }
    DeploymentStrategy {
        r#type: omitempty, rolling_update,
    }
    ReplicaSet {
        metadata, spec, status,
    }
    ReplicaSetCondition {
        r#type, status, last_transition_time, reason: omitempty, message: omitempty,
    }
    ReplicaSetSpec {
        replicas, min_ready_seconds: omitempty, selector, template,
    }
    ReplicaSetStatus {
        replicas, fully_labeled_replicas: omitempty, ready_replicas: omitempty,
        available_replicas: omitempty, terminating_replicas, observed_generation: omitempty,
        conditions,
    }
    RollingUpdateDaemonSet {
        max_unavailable, max_surge,
    }
    RollingUpdateDeployment {
        max_unavailable, max_surge,
    }
    RollingUpdateStatefulSetStrategy {
        partition, max_unavailable,
    }
    StatefulSet {
        metadata, spec, status,
    }
    StatefulSetCondition {
        r#type, status, last_transition_time, reason: omitempty, message: omitempty,
    }
    StatefulSetOrdinals {
        start,
    }
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: omitempty, when_scaled: omitempty,
    }
    StatefulSetSpec {
        replicas, selector, template, volume_claim_templates, service_name,
        pod_management_policy: omitempty, update_strategy, revision_history_limit,
        min_ready_seconds: omitempty, persistent_volume_claim_retention_policy, ordinals,
    }
    StatefulSetStatus {
        observed_generation: omitempty, replicas, ready_replicas: omitempty,
        current_replicas: omitempty, updated_replicas: omitempty, current_revision: omitempty,
        update_revision: omitempty, collision_count, conditions, available_replicas,
    }
    StatefulSetUpdateStrategy {
        r#type: omitempty, rolling_update,
    }
}
