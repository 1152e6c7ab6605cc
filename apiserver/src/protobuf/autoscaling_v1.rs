//! Conversions of the autoscaling/v1 messages.

use super::*;
use k8s_pb::api::autoscaling::v1 as pb;

messages! {
    "io.k8s.api.autoscaling.v1";
    Scale {
        metadata, spec, status,
    }
    ScaleSpec {
        replicas: omitempty,
    }
    ScaleStatus {
        replicas, selector: omitempty,
    }
}
