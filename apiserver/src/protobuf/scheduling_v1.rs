//! Conversions of the scheduling/v1 messages.

use super::*;
use k8s_pb::api::scheduling::v1 as pb;

messages! {
    "io.k8s.api.scheduling.v1";
    PriorityClass {
        metadata, value, global_default: omitempty, description: omitempty, preemption_policy,
    }
}
