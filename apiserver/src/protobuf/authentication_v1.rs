//! Conversions of the authentication/v1 messages.

use super::*;
use k8s_pb::api::authentication::v1 as pb;

messages! {
    "io.k8s.api.authentication.v1";
    BoundObjectReference {
        kind: omitempty, api_version: omitempty, name: omitempty, u_id = "uid": omitempty,
    }
    TokenRequest {
        metadata, spec, status,
    }
    TokenRequestSpec {
        audiences, expiration_seconds, bound_object_ref,
    }
    TokenRequestStatus {
        token, expiration_timestamp,
    }
}
