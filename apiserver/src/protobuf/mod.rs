//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's typed commands (`kubectl create deployment`, `create secret`, `create token`, …)
//! and client-go's typed clients send objects, and the `DeleteOptions` of typed deletes, in the
//! Kubernetes protobuf encoding: the magic `k8s\0` followed by a `runtime.Unknown` envelope
//! (`typeMeta` = apiVersion + kind, `raw` = the object's own message, `contentEncoding`,
//! `contentType`). [`decode_body`] turns such a body into the JSON object the Kubernetes
//! apiserver would serve for it, so the rest of the server only ever handles JSON.
//!
//! The object message is decoded with the k8s-pb (prost) type of its kind, then converted by
//! `ToJson`. The conversion mirrors what Go does when it unmarshals the message into its Go
//! struct and marshals that struct as JSON:
//! - field names are the Go `json` tags (camelCase of the field by default, with explicit names
//!   for the exceptions such as `hostIP`, `podIPs`, `clusterIPs`, `nonResourceURLs`);
//! - a field with a Go value type and `omitempty` is omitted when zero (`""`, `0`, `false`, an
//!   IntOrString `0`): Go clients always put such fields on the wire, so a zero there is "unset"
//!   (Go itself writes an unset `targetPort` as `0`, which its defaulting then replaces; here it
//!   is simply absent);
//! - every other field (Go pointers, fields without `omitempty`, structs) is emitted whenever it
//!   is on the wire, zero or not: `replicas: 0`, `gracePeriodSeconds: 0`, `status: {}`;
//! - embedded Go structs (`json:",inline"`, e.g. `Volume.volumeSource`) are merged into their
//!   parent;
//! - `metav1.Time` is RFC 3339 in UTC with seconds, `MicroTime` has 6 fractional digits, a zero
//!   time is omitted, `Duration` is a Go duration string, `IntOrString` a number or string,
//!   `Quantity` its string, `bytes` base64, and `RawExtension`/`FieldsV1` their embedded JSON.
//!
//! Where Go would write `null` (a zero time, a nil slice or map) the field is omitted, as it is
//! for empty lists and maps; a field absent from the wire is omitted rather than zero-filled.
//!
//! k8s-pb 0.9 holds the Kubernetes 1.35 protos, so fields newer than the k8s-openapi feature in
//! use come through as well.
//!
//! Each message's `ToJson` impl is written by the `messages!` macro, which destructures the
//! struct without `..`, so a k8s-pb field this module does not map is a compile error.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value};

use crate::error::{ApiError, Result};

/// The content type of Kubernetes protobuf bodies.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// A decoded protobuf value that has a Kubernetes JSON form.
trait ToJson {
    /// The JSON of the value, or `None` where Go would write `null` or nothing at all.
    fn to_json(&self) -> Result<Option<Value>>;
}

impl ToJson for String {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::String(self.clone())))
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::Bool(*self)))
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::from(*self)))
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::from(*self)))
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Result<Option<Value>> {
        match serde_json::Number::from_f64(*self) {
            Some(n) => Ok(Some(Value::Number(n))),
            None => Err(ApiError::bad_request(format!(
                "json: unsupported value: {self}"
            ))),
        }
    }
}

/// `bytes` fields: base64 with padding, as Go's encoding/json writes `[]byte`.
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Result<Option<Value>> {
        Ok(Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        )))
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Result<Option<Value>> {
        match self {
            Some(value) => value.to_json(),
            None => Ok(None),
        }
    }
}

/// Repeated fields; an empty list is omitted.
impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Result<Option<Value>> {
        if self.is_empty() {
            return Ok(None);
        }
        let items = self
            .iter()
            .map(|item| Ok(item.to_json()?.unwrap_or(Value::Null)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Value::Array(items)))
    }
}

/// Map fields (prost decodes k8s-pb maps into `BTreeMap`); an empty map is omitted.
impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Result<Option<Value>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut out = Map::new();
        for (key, value) in self {
            out.insert(key.clone(), value.to_json()?.unwrap_or(Value::Null));
        }
        Ok(Some(Value::Object(out)))
    }
}

/// The default JSON name of a field: the camelCase of its Rust ident (`r#type` → `type`).
fn camel(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    let mut upper = false;
    for c in ident.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether Go's `omitempty` drops this value: `""`, `0`, `false`.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => {
            n.as_i64() == Some(0) || n.as_u64() == Some(0) || n.as_f64() == Some(0.0)
        }
        _ => false,
    }
}

/// The JSON name of a field: the explicit one, or the camelCase of the ident.
macro_rules! json_name {
    ($field:ident) => {
        camel(stringify!($field))
    };
    ($field:ident, $json:literal) => {
        $json
    };
}

/// Puts one field's JSON into the object being built (see the module doc for the modes).
macro_rules! put {
    ($out:ident, $field:ident, $name:expr, inline) => {
        if let Some(Value::Object(fields)) = $field.to_json()? {
            $out.extend(fields);
        }
    };
    ($out:ident, $field:ident, $name:expr, omitempty) => {
        if let Some(value) = $field.to_json()? {
            if !is_zero(&value) {
                $out.insert(String::from($name), value);
            }
        }
    };
    ($out:ident, $field:ident, $name:expr) => {
        if let Some(value) = $field.to_json()? {
            $out.insert(String::from($name), value);
        }
    };
}

/// The k8s-openapi (OpenAPI definition) name of a message, `None` for one that only exists
/// inlined into others.
#[cfg(test)]
macro_rules! schema_name {
    ($prefix:literal, $name:ident) => {
        Some(concat!($prefix, ".", stringify!($name)))
    };
    ($prefix:literal, $name:ident, inline) => {
        None
    };
    ($prefix:literal, $name:ident, $schema:literal) => {
        Some(concat!($prefix, ".", $schema))
    };
}

/// Collects the JSON names one field produces (an inlined message: all of its names).
#[cfg(test)]
macro_rules! list_name {
    ($names:ident, $field:ident, $name:expr, inline) => {
        $names.extend(names_of(&$field))
    };
    ($names:ident, $field:ident, $name:expr $(, $mode:ident)?) => {{
        let _ = &$field;
        $names.push(String::from($name));
    }};
}

/// Writes the [`ToJson`] impls of the messages of one group version, whose k8s-pb module must
/// be in scope as `pb`. Syntax: the OpenAPI definition prefix, then per message
/// `Name [as "GoName" | as inline] { field [= "jsonName"] [: omitempty | : inline], … }`.
macro_rules! messages {
    ($prefix:literal; $(
        $name:ident $(as $schema:tt)? {
            $($field:ident $(= $json:literal)? $(: $mode:ident)?),+ $(,)?
        }
    )+) => {
        $(
            impl ToJson for pb::$name {
                fn to_json(&self) -> Result<Option<Value>> {
                    let pb::$name { $($field),+ } = self;
                    let mut out = Map::new();
                    $( put!(out, $field, json_name!($field $(, $json)?) $(, $mode)?); )+
                    Ok(Some(Value::Object(out)))
                }
            }

            #[cfg(test)]
            impl JsonNames for pb::$name {
                fn json_names() -> Vec<String> {
                    let pb::$name { $($field),+ } = Default::default();
                    let mut names = Vec::new();
                    $( list_name!(names, $field, json_name!($field $(, $json)?) $(, $mode)?); )+
                    names
                }
            }
        )+

        /// Every message of this module with its OpenAPI name and JSON field names.
        #[cfg(test)]
        pub(super) fn described() -> Vec<Described> {
            vec![$(
                Described {
                    rust: stringify!($name),
                    schema: schema_name!($prefix, $name $(, $schema)?),
                    names: <pb::$name as JsonNames>::json_names(),
                },
            )+]
        }
    };
}

/// The JSON names a message produces (test support for the schema check).
#[cfg(test)]
trait JsonNames {
    fn json_names() -> Vec<String>;
}

#[cfg(test)]
fn names_of<T: JsonNames>(_: &Option<T>) -> Vec<String> {
    T::json_names()
}

/// One converted message, for the schema check.
#[cfg(test)]
struct Described {
    rust: &'static str,
    schema: Option<&'static str>,
    names: Vec<String>,
}

mod wellknown;

mod apps_v1;
mod authentication_v1;
mod authorization_v1;
mod autoscaling_v1;
mod batch_v1;
mod coordination_v1;
mod core_v1;
mod discovery_v1;
mod events_v1;
mod meta_v1;
mod networking_v1;
mod policy_v1;
mod rbac_v1;
mod scheduling_v1;

/// Decodes the object message `raw` of type `M` into its JSON fields.
fn decode_object<M: Message + Default + ToJson>(
    raw: &[u8],
    gvk: &str,
) -> Result<Map<String, Value>> {
    let message = M::decode(raw)
        .map_err(|e| ApiError::bad_request(format!("unable to decode {gvk} from protobuf: {e}")))?;
    match message.to_json()? {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Ok(Map::new()),
    }
}

/// A decoder of one kind's object message.
type Decoder = fn(&[u8], &str) -> Result<Map<String, Value>>;

/// The decoder of `apiVersion`/`kind`, if this module supports it.
fn decoder(api_version: &str, kind: &str) -> Option<Decoder> {
    use k8s_pb::api;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    let decoder: Decoder = match (api_version, kind) {
        // client-go sends DeleteOptions with the group version of the resource it deletes.
        (_, "DeleteOptions") => decode_object::<meta::DeleteOptions>,
        ("v1", "Namespace") => decode_object::<api::core::v1::Namespace>,
        ("v1", "ConfigMap") => decode_object::<api::core::v1::ConfigMap>,
        ("v1", "Secret") => decode_object::<api::core::v1::Secret>,
        ("v1", "Service") => decode_object::<api::core::v1::Service>,
        ("v1", "ServiceAccount") => decode_object::<api::core::v1::ServiceAccount>,
        ("v1", "Pod") => decode_object::<api::core::v1::Pod>,
        ("v1", "PodTemplate") => decode_object::<api::core::v1::PodTemplate>,
        ("v1", "Endpoints") => decode_object::<api::core::v1::Endpoints>,
        ("v1", "Node") => decode_object::<api::core::v1::Node>,
        ("v1", "Event") => decode_object::<api::core::v1::Event>,
        ("v1", "PersistentVolumeClaim") => decode_object::<api::core::v1::PersistentVolumeClaim>,
        ("v1", "PersistentVolume") => decode_object::<api::core::v1::PersistentVolume>,
        ("v1", "ResourceQuota") => decode_object::<api::core::v1::ResourceQuota>,
        ("v1", "LimitRange") => decode_object::<api::core::v1::LimitRange>,
        ("v1", "Binding") => decode_object::<api::core::v1::Binding>,
        ("v1", "ReplicationController") => decode_object::<api::core::v1::ReplicationController>,
        ("apps/v1", "Deployment") => decode_object::<api::apps::v1::Deployment>,
        ("apps/v1", "ReplicaSet") => decode_object::<api::apps::v1::ReplicaSet>,
        ("apps/v1", "StatefulSet") => decode_object::<api::apps::v1::StatefulSet>,
        ("apps/v1", "DaemonSet") => decode_object::<api::apps::v1::DaemonSet>,
        ("autoscaling/v1", "Scale") => decode_object::<api::autoscaling::v1::Scale>,
        ("batch/v1", "Job") => decode_object::<api::batch::v1::Job>,
        ("batch/v1", "CronJob") => decode_object::<api::batch::v1::CronJob>,
        ("coordination.k8s.io/v1", "Lease") => decode_object::<api::coordination::v1::Lease>,
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            decode_object::<api::discovery::v1::EndpointSlice>
        }
        ("events.k8s.io/v1", "Event") => decode_object::<api::events::v1::Event>,
        ("policy/v1", "PodDisruptionBudget") => {
            decode_object::<api::policy::v1::PodDisruptionBudget>
        }
        ("policy/v1", "Eviction") => decode_object::<api::policy::v1::Eviction>,
        ("rbac.authorization.k8s.io/v1", "Role") => decode_object::<api::rbac::v1::Role>,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            decode_object::<api::rbac::v1::RoleBinding>
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            decode_object::<api::rbac::v1::ClusterRole>
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            decode_object::<api::rbac::v1::ClusterRoleBinding>
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => {
            decode_object::<api::scheduling::v1::PriorityClass>
        }
        ("networking.k8s.io/v1", "Ingress") => decode_object::<api::networking::v1::Ingress>,
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            decode_object::<api::networking::v1::NetworkPolicy>
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            decode_object::<api::authentication::v1::TokenRequest>
        }
        ("authentication.k8s.io/v1", "TokenReview") => {
            decode_object::<api::authentication::v1::TokenReview>
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            decode_object::<api::authentication::v1::SelfSubjectReview>
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            decode_object::<api::authorization::v1::SelfSubjectAccessReview>
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            decode_object::<api::authorization::v1::SubjectAccessReview>
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            decode_object::<api::authorization::v1::LocalSubjectAccessReview>
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            decode_object::<api::authorization::v1::SelfSubjectRulesReview>
        }
        _ => return None,
    };
    Some(decoder)
}

/// Decodes a protobuf request body into JSON. Unsupported apiVersion/kind → 415 UnsupportedMediaType
/// naming it; a body without the magic or that fails to decode → 400 BadRequest with a clear message.
///
/// The result is the object as the Kubernetes apiserver would serve it, with `apiVersion` and
/// `kind` taken from the envelope.
pub fn decode_body(body: &[u8]) -> Result<Value> {
    let data = match body.strip_prefix(MAGIC) {
        _ if body.is_empty() => return Err(ApiError::bad_request("empty data")),
        None => {
            return Err(ApiError::bad_request(
                "provided data does not appear to be a protobuf message, expected prefix \
                 [107 56 115 0]",
            ))
        }
        Some([]) => return Err(ApiError::bad_request("empty body")),
        Some(data) => data,
    };
    let envelope = Unknown::decode(data).map_err(|e| {
        ApiError::bad_request(format!(
            "unable to decode the protobuf envelope (runtime.Unknown): {e}"
        ))
    })?;
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in the protobuf envelope (apiVersion {api_version:?})"
        )));
    }
    if api_version.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in the protobuf envelope (kind {kind:?})"
        )));
    }
    let gvk = format!("{api_version}, Kind={kind}");
    let Some(decode) = decoder(&api_version, &kind) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the server cannot decode {gvk} from {PROTOBUF}; send it as application/json"
        )));
    };
    let fields = decode(envelope.raw.as_deref().unwrap_or_default(), &gvk)?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    object.extend(fields);
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests;
