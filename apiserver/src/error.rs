//! Errors of the apiserver layer.
//!
//! Every failure a client can see is an [`ApiError`], and every `ApiError` becomes a
//! Kubernetes `Status` object (`kind: Status`, `status: Failure`) with the reason and HTTP code
//! the Kubernetes apiserver uses for the same condition, so client libraries (client-go's
//! `errors.IsNotFound`, kube-rs' `ErrorResponse`, the Python client's `ApiException`) classify
//! it correctly.

use serde::Serialize;
use serde_json::{json, Value};

/// One entry of `Status.details.causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong`, `FieldManagerConflict`,
    /// `FieldValueTypeInvalid`.
    pub reason: String,
    pub message: String,
    /// The JSON path of the field, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same cause with another message.
    pub fn with_message(mut self, message: impl Into<String>) -> Cause {
        self.message = message.into();
        self
    }

    /// `field: Required value`.
    pub fn required(field: impl Into<String>) -> Cause {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    /// `field: Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Cause {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {shown}: {}", detail.as_ref()),
        )
    }

    /// `field: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!("Unsupported value: {value}: supported values: {list}"),
        )
    }

    /// `field: Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
        Cause::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {value}"),
        )
    }

    /// `field: Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Cause {
        Cause::new(
            "FieldValueForbidden",
            field,
            format!("Forbidden: {}", detail.as_ref()),
        )
    }
}

/// What the error is about, for `Status.details`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    /// The resource (plural, lower case), which Kubernetes puts in `details.kind`.
    pub resource: String,
    pub name: String,
}

impl Subject {
    pub fn new(group: &str, resource: &str, name: &str) -> Subject {
        Subject {
            group: group.to_string(),
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// `deployments.apps "web"` / `pods "web"`: how Kubernetes names an object in messages.
    pub fn describe(&self) -> String {
        let qualified = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        format!("{qualified} {:?}", self.name)
    }
}

/// The apiserver's error type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `Unauthorized`.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 `Forbidden`.
    #[error("{message}")]
    Forbidden { subject: Subject, message: String },
    /// 404 `NotFound` for an object.
    #[error("{} not found", .0.describe())]
    NotFound(Subject),
    /// 404 `NotFound` for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 405 `MethodNotAllowed`.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 `NotAcceptable`.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409 `AlreadyExists`.
    #[error("{} already exists", .0.describe())]
    AlreadyExists(Subject),
    /// 409 `Conflict`: a stale resourceVersion, a failed precondition or an apply conflict.
    #[error("{message}")]
    Conflict {
        subject: Subject,
        message: String,
        causes: Vec<Cause>,
    },
    /// 410 `Expired` (or `Gone`): a resourceVersion or continue token older than what is kept.
    #[error("{0}")]
    Expired(String),
    /// 413 `RequestEntityTooLarge`.
    #[error("{0}")]
    TooLarge(String),
    /// 415 `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 `Invalid`: the object failed validation.
    #[error("{kind}{} {name:?} is invalid: {}", if group.is_empty() { String::new() } else { format!(".{group}") }, summarize(.causes))]
    Invalid {
        /// The object's kind (`Deployment`); Kubernetes puts it in `details.kind` here.
        kind: String,
        group: String,
        name: String,
        causes: Vec<Cause>,
    },
    /// 422 `Invalid` for a patch that cannot be applied to the object (a JSON patch operation
    /// on a missing path, a failed `test`, lists of lists in a strategic merge patch): what the
    /// Kubernetes apiserver's `NewGenericServerResponse(422, …)` gives, a generic message with
    /// the patch library's error as the only cause.
    #[error("the server rejected our request due to an error in our request")]
    PatchNotApplicable(String),
    /// 429 `TooManyRequests`.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500 `InternalError`.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 503 `ServiceUnavailable`.
    #[error("{0}")]
    Unavailable(String),
    /// 504 `Timeout`.
    #[error("{0}")]
    Timeout(String),
    /// The store failed (leader loss, timeout, I/O); mapped by [`ApiError::status_parts`].
    #[error(transparent)]
    Store(#[from] keelson_store::StoreError),
}

fn summarize(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal(message.into())
    }

    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::Invalid {
            kind: kind.to_string(),
            group: group.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    /// 409 for a write whose resourceVersion is not the current one.
    pub fn stale(subject: Subject) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {}: the object has been modified; please apply \
             your changes to the latest version and try again",
            subject.describe()
        );
        ApiError::Conflict {
            subject,
            message,
            causes: Vec::new(),
        }
    }

    /// 410 for a watch or list from a resourceVersion that is gone.
    pub fn too_old(rv: i64, oldest: i64) -> ApiError {
        ApiError::Expired(format!("too old resource version: {rv} ({oldest})"))
    }

    /// HTTP code, reason, message and details of the `Status` this error becomes.
    pub fn status_parts(&self) -> (u16, &'static str, String, Option<Value>) {
        let msg = self.to_string();
        let details = |s: &Subject, causes: &[Cause]| {
            let mut d = serde_json::Map::new();
            if !s.name.is_empty() {
                d.insert("name".into(), json!(s.name));
            }
            if !s.group.is_empty() {
                d.insert("group".into(), json!(s.group));
            }
            if !s.resource.is_empty() {
                d.insert("kind".into(), json!(s.resource));
            }
            if !causes.is_empty() {
                d.insert("causes".into(), json!(causes));
            }
            Some(Value::Object(d))
        };
        match self {
            ApiError::BadRequest(_) => (400, "BadRequest", msg, None),
            ApiError::Unauthorized => (401, "Unauthorized", msg, None),
            ApiError::Forbidden { subject, .. } => (403, "Forbidden", msg, details(subject, &[])),
            ApiError::NotFound(s) => (404, "NotFound", msg, details(s, &[])),
            ApiError::NoSuchResource => (404, "NotFound", msg, None),
            ApiError::MethodNotAllowed => (405, "MethodNotAllowed", msg, None),
            ApiError::NotAcceptable(_) => (406, "NotAcceptable", msg, None),
            ApiError::AlreadyExists(s) => (409, "AlreadyExists", msg, details(s, &[])),
            ApiError::Conflict {
                subject, causes, ..
            } => (409, "Conflict", msg, details(subject, causes)),
            ApiError::Expired(_) => (410, "Expired", msg, None),
            ApiError::TooLarge(_) => (413, "RequestEntityTooLarge", msg, None),
            ApiError::UnsupportedMediaType(_) => (415, "UnsupportedMediaType", msg, None),
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let mut d = serde_json::Map::new();
                d.insert("name".into(), json!(name));
                if !group.is_empty() {
                    d.insert("group".into(), json!(group));
                }
                d.insert("kind".into(), json!(kind));
                d.insert("causes".into(), json!(causes));
                (422, "Invalid", msg, Some(Value::Object(d)))
            }
            ApiError::PatchNotApplicable(detail) => (
                422,
                "Invalid",
                msg,
                Some(
                    json!({"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]}),
                ),
            ),
            ApiError::TooManyRequests(_) => (429, "TooManyRequests", msg, None),
            ApiError::Internal(_) => (500, "InternalError", msg, None),
            ApiError::Unavailable(_) => (503, "ServiceUnavailable", msg, None),
            ApiError::Timeout(_) => (504, "Timeout", msg, None),
            ApiError::Store(e) => store_status(e),
        }
    }

    /// The `Status` object (as JSON) this error becomes.
    pub fn to_status(&self) -> Value {
        let (code, reason, message, details) = self.status_parts();
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let (Some(d), Some(obj)) = (details, s.as_object_mut()) {
            obj.insert("details".into(), d);
        }
        s
    }
}

fn store_status(e: &keelson_store::StoreError) -> (u16, &'static str, String, Option<Value>) {
    use keelson_store::EtcdError as E;
    let msg = e.to_string();
    let etcd = match e {
        keelson_store::StoreError::Etcd(x) => Some(x),
        _ => None,
    };
    match etcd {
        Some(E::Timeout | E::LeaderTransferTimeout) => (504, "Timeout", msg, None),
        Some(E::NoLeader | E::NotLeader | E::LeaderChanged | E::Stopped | E::Unhealthy) => {
            (503, "ServiceUnavailable", msg, None)
        }
        Some(E::Compacted) => (410, "Expired", msg, None),
        Some(E::RequestTooLarge) => (413, "RequestEntityTooLarge", msg, None),
        Some(E::NoSpace) => (507, "InternalError", msg, None),
        _ => (
            500,
            "InternalError",
            format!("Internal error occurred: {msg}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_object_like_kubernetes() {
        let e = ApiError::NotFound(Subject::new("apps", "deployments", "web"));
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes_with_fields() {
        let e = ApiError::invalid(
            "Pod",
            "",
            "Bad_Name",
            vec![
                Cause::invalid(
                    "metadata.name",
                    &json!("Bad_Name"),
                    "a lowercase RFC 1123 subdomain",
                ),
                Cause::required("spec.containers"),
            ],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][1]["field"], "spec.containers");
        assert_eq!(s["details"]["causes"][1]["reason"], "FieldValueRequired");
        let m = s["message"].as_str().unwrap_or_default();
        assert!(
            m.starts_with(
                "Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\""
            ),
            "{m}"
        );
    }
}
