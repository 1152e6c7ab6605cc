//! Conversions of the authorization/v1 messages (the access reviews `kubectl auth can-i`
//! sends).

use super::*;
use k8s_pb::api::authorization::v1 as pb;

messages! {
    "io.k8s.api.authorization.v1";
    FieldSelectorAttributes {
        raw_selector: omitempty, requirements: omitempty,
    }
    LabelSelectorAttributes {
        raw_selector: omitempty, requirements: omitempty,
    }
    LocalSubjectAccessReview {
        metadata, spec, status,
    }
    NonResourceAttributes {
        path: omitempty, verb: omitempty,
    }
    NonResourceRule {
        verbs, non_resource_ur_ls = "nonResourceURLs": omitempty,
    }
    ResourceAttributes {
        namespace: omitempty, verb: omitempty, group: omitempty, version: omitempty,
        resource: omitempty, subresource: omitempty, name: omitempty,
        field_selector: omitempty, label_selector: omitempty,
    }
    ResourceRule {
        verbs, api_groups: omitempty, resources: omitempty, resource_names: omitempty,
    }
    SelfSubjectAccessReview {
        metadata, spec, status,
    }
    SelfSubjectAccessReviewSpec {
        resource_attributes: omitempty, non_resource_attributes: omitempty,
    }
    SelfSubjectRulesReview {
        metadata, spec, status,
    }
    SelfSubjectRulesReviewSpec {
        namespace: omitempty,
    }
    SubjectAccessReview {
        metadata, spec, status,
    }
    SubjectAccessReviewSpec {
        resource_attributes: omitempty, non_resource_attributes: omitempty, user: omitempty,
        groups: omitempty, extra: omitempty, uid: omitempty,
    }
    SubjectAccessReviewStatus {
        allowed, denied: omitempty, reason: omitempty, evaluation_error: omitempty,
    }
    SubjectRulesReviewStatus {
        resource_rules, non_resource_rules, incomplete, evaluation_error: omitempty,
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
