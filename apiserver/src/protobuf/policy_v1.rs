//! Conversions of the policy/v1 messages.

use super::*;
use k8s_pb::api::policy::v1 as pb;

messages! {
    "io.k8s.api.policy.v1";
    Eviction {
        metadata, delete_options,
    }
    PodDisruptionBudget {
        metadata, spec, status,
    }
    PodDisruptionBudgetSpec {
        min_available, selector, max_unavailable, unhealthy_pod_eviction_policy,
    }
    PodDisruptionBudgetStatus {
        observed_generation: omitempty, disrupted_pods, disruptions_allowed, current_healthy,
        desired_healthy, expected_pods, conditions,
    }
}
