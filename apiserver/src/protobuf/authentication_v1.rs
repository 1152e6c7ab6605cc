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
    SelfSubjectReview {
        metadata, status,
    }
    TokenReview {
        metadata, spec, status,
    }
    TokenReviewSpec {
        token: omitempty, audiences: omitempty,
    }
    TokenReviewStatus {
        authenticated: omitempty, user: omitempty, audiences: omitempty, error: omitempty,
    }
    SelfSubjectReviewStatus {
        user_info: omitempty,
    }
    UserInfo {
        username: omitempty, uid: omitempty, groups: omitempty, extra: omitempty,
    }
}

/// `extra` values are plain string lists in JSON.
impl ToJson for pb::ExtraValue {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::Array(
            self.items.iter().cloned().map(Value::String).collect(),
        )))
    }
}
