//! Conversions of the coordination/v1 messages.

use super::*;
use k8s_pb::api::coordination::v1 as pb;

messages! {
    "io.k8s.api.coordination.v1";
    Lease {
        metadata, spec,
    }
    LeaseSpec {
        holder_identity, lease_duration_seconds, acquire_time, renew_time, lease_transitions,
        strategy, preferred_holder,
    }
}
