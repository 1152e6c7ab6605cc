//! The schema registry: OpenAPI v3 component schemas of the built-in Kubernetes types, with
//! Kubernetes' structural extensions, and what the apiserver derives from them.
//!
//! The schemas come from k8s-openapi (API version 1.33) through schemars with OpenAPI 3
//! settings, so references read `#/components/schemas/<name>` and a reference with sibling
//! keywords is wrapped in `allOf`; k8s-openapi has no schema for its generic `List<T>`, so the
//! `<Kind>List` schemas are written here. k8s-openapi does not carry the `+patchStrategy`,
//! `+patchMergeKey`, `+listType`, `+listMapKey`, `+mapType` and `+structType` markers of the Go
//! types either, so the tables `FIELD_MARKERS` and `TYPE_MAP_TYPES` (transcribed from the doc
//! comments of the k8s-pb sources) put them back as `x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
//! `x-kubernetes-map-type`, where kubectl (client-side apply, explain) and server-side apply
//! look for them. Root types and their lists also get `x-kubernetes-group-version-kind`, and
//! the types that hold arbitrary JSON (`RawExtension`, `FieldsV1`, the CRD `JSON` type) are
//! marked `x-kubernetes-preserve-unknown-fields`.
//!
//! On top of the documents the registry answers two questions: which fields of an object the
//! schema does not declare ([`Schemas::unknown_fields`] for `fieldValidation=Strict|Warn`,
//! [`Schemas::prune_unknown_fields`] to drop them), and how a field merges
//! ([`SchemaTypeInfo`], the [`TypeInfo`] the patch code consults).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, flowcontrol::v1 as flowcontrol,
    networking::v1 as networking, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::patch::{ListType, NoTypeInfo, TypeInfo};

/// How references between component schemas start.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// The schema of `metav1.ObjectMeta`, which every embedded resource's `metadata` follows.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Types whose values are arbitrary JSON (no declared fields to check).
const FREE_FORM: &[&str] = &[
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
];

/// How many `$ref`/`allOf` hops (and how many levels of nesting) a walk follows before giving
/// up; it bounds the work on self-referencing custom schemas and hostile objects.
const MAX_DEPTH: usize = 64;

/// The component schemas the apiserver knows, by name (`io.k8s.api.apps.v1.Deployment`).
#[derive(Clone, Debug, Default)]
pub struct Schemas {
    defs: BTreeMap<String, Value>,
}

impl Schemas {
    /// Every type reachable from the built-in root types (each resource of the GA API groups,
    /// its `…List`, the subresource and review types and the `meta/v1` wire types), with
    /// Kubernetes' extensions added.
    pub fn builtin() -> Schemas {
        let mut defs = generate_builtin();
        for (ty, field, markers) in FIELD_MARKERS {
            if let Some(prop) = defs
                .get_mut(*ty)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut(*field))
            {
                markers.apply(prop);
            }
        }
        for (ty, map_type) in TYPE_MAP_TYPES {
            if let Some(Value::Object(def)) = defs.get_mut(*ty) {
                def.insert("x-kubernetes-map-type".into(), json!(map_type));
            }
        }
        for ty in FREE_FORM {
            if let Some(Value::Object(def)) = defs.get_mut(*ty) {
                def.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            }
        }
        Schemas { defs }
    }

    /// The schema named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.defs.get(name)
    }

    /// All schemas, by name (what an OpenAPI document's `components.schemas` holds).
    pub fn definitions(&self) -> &BTreeMap<String, Value> {
        &self.defs
    }

    /// Adds or replaces one schema (custom resources add theirs at run time).
    pub fn insert(&mut self, name: String, schema: Value) {
        self.defs.insert(name, schema);
    }

    /// The [`TypeInfo`] of objects whose root schema is `root` (e.g.
    /// `io.k8s.api.core.v1.Pod`). An unknown root answers like [`NoTypeInfo`].
    pub fn type_info(self: &Arc<Self>, root: &str) -> SchemaTypeInfo {
        SchemaTypeInfo {
            schemas: Arc::clone(self),
            root: root.to_string(),
        }
    }

    /// The fields of `obj` that the schema `root` does not declare, named as Kubernetes names
    /// them for `fieldValidation=Strict|Warn` (`spec.foo`,
    /// `spec.template.spec.containers[0].bogus`), in document order. Values of the wrong type
    /// are not reported (that is decoding's business), and nothing below a free-form value
    /// (`x-kubernetes-preserve-unknown-fields`, `RawExtension`) is. `apiVersion` and `kind`
    /// are always allowed at the root and in embedded resources
    /// (`x-kubernetes-embedded-resource`), whose `metadata` is checked against `ObjectMeta`
    /// when their schema leaves it open. An unknown root reports nothing.
    pub fn unknown_fields(&self, root: &str, obj: &Value) -> Vec<String> {
        let mut copy = obj.clone();
        self.prune_unknown_fields(root, &mut copy)
    }

    /// Removes from `obj` the fields [`Schemas::unknown_fields`] reports, and returns their
    /// paths: what decoding into the Go types (or structural pruning, for custom resources)
    /// does to an object written with `fieldValidation=Ignore` (or `Warn`).
    pub fn prune_unknown_fields(&self, root: &str, obj: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = self.defs.get(root) {
            let mut path = String::new();
            self.check_unknown(schema, obj, true, &mut path, 0, &mut out);
        }
        out
    }

    /// The schema `reference` (`#/components/schemas/<name>`) points at.
    fn deref(&self, reference: &Value) -> Option<&Value> {
        let name = reference.as_str()?.strip_prefix(REF_PREFIX)?;
        self.defs.get(name)
    }

    /// One step through a wrapper: the target of `$ref`, or the referenced schema of an
    /// `allOf` wrapper (`{"allOf": [{"$ref": …}], "description": …}`).
    fn step<'a>(&'a self, schema: &'a Value) -> Option<&'a Value> {
        let obj = schema.as_object()?;
        if let Some(r) = obj.get("$ref") {
            return self.deref(r);
        }
        match obj.get("allOf")?.as_array()?.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The schemas a (property) schema stands for, from the wrapper itself to the referenced
    /// definition: extensions written on the property come first, those of the type after.
    fn chain<'a>(&'a self, schema: &'a Value) -> Chain<'a> {
        Chain {
            schemas: self,
            next: Some(schema),
            hops: 0,
        }
    }

    /// The first value of extension `key` along `schema`'s chain.
    fn extension<'a>(&'a self, schema: &'a Value, key: &str) -> Option<&'a Value> {
        self.chain(schema).find_map(|s| s.get(key))
    }

    /// The schema at the end of `schema`'s chain (the definition with the keywords).
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        self.chain(schema).last().unwrap_or(schema)
    }

    /// Whether any schema of the chain has `key: true`.
    fn flag(&self, schema: &Value, key: &str) -> bool {
        self.chain(schema)
            .any(|s| s.get(key) == Some(&Value::Bool(true)))
    }

    fn check_unknown(
        &self,
        schema: &Value,
        value: &mut Value,
        embedded: bool,
        path: &mut String,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        if depth > MAX_DEPTH || self.flag(schema, "x-kubernetes-int-or-string") {
            return;
        }
        let preserve = self.flag(schema, "x-kubernetes-preserve-unknown-fields");
        let embedded = embedded || self.flag(schema, "x-kubernetes-embedded-resource");
        let target = self.pick_alternative(self.resolve(schema), value);
        match value {
            Value::Object(fields) => {
                let props = target.get("properties").and_then(Value::as_object);
                let additional = target.get("additionalProperties");
                let struct_like = props.is_some() || target.get("type") == Some(&json!("object"));
                let mut unknown: Vec<String> = Vec::new();
                for (key, child) in fields.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    let meta = || self.defs.get(OBJECT_META);
                    let field = match props.and_then(|p| p.get(key)) {
                        // An embedded resource's open `metadata` is an ObjectMeta.
                        Some(prop)
                            if embedded && key == "metadata" && !self.declares_fields(prop) =>
                        {
                            Field::Check(meta().unwrap_or(prop))
                        }
                        Some(prop) => Field::Check(prop),
                        None if embedded && (key == "apiVersion" || key == "kind") => {
                            Field::Allowed
                        }
                        None if embedded && key == "metadata" => {
                            meta().map_or(Field::Allowed, Field::Check)
                        }
                        None => match additional {
                            Some(item) if item.is_object() => Field::Check(item),
                            Some(Value::Bool(true)) => Field::Allowed,
                            _ if preserve || !struct_like => Field::Allowed,
                            _ => Field::Unknown,
                        },
                    };
                    match field {
                        Field::Check(schema) => {
                            self.check_unknown(schema, child, false, path, depth + 1, out)
                        }
                        Field::Allowed => {}
                        Field::Unknown => {
                            out.push(path.clone());
                            unknown.push(key.clone());
                        }
                    }
                    path.truncate(len);
                }
                if !unknown.is_empty() {
                    fields.retain(|k, _| !unknown.contains(k));
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = target.get("items") else {
                    return;
                };
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    self.check_unknown(item_schema, item, false, path, depth + 1, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Whether `schema` (through its chain) declares properties of its own.
    fn declares_fields(&self, schema: &Value) -> bool {
        self.resolve(schema).get("properties").is_some()
    }

    /// For a `oneOf`/`anyOf` schema, the alternative that fits `value`'s JSON type (resolved);
    /// other schemas are returned as they are.
    fn pick_alternative<'a>(&'a self, schema: &'a Value, value: &Value) -> &'a Value {
        let alternatives = ["oneOf", "anyOf"]
            .iter()
            .find_map(|k| schema.get(*k).and_then(Value::as_array));
        let Some(alternatives) = alternatives else {
            return schema;
        };
        let wanted = match value {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            _ => return schema,
        };
        alternatives
            .iter()
            .map(|alt| self.resolve(alt))
            .find(|alt| {
                alt.get("type") == Some(&json!(wanted))
                    || (wanted == "object" && alt.get("properties").is_some())
                    || (wanted == "array" && alt.get("items").is_some())
            })
            .unwrap_or(schema)
    }

    /// The (property) schema at `path` below `root`, list items and map values transparent
    /// (`"*"` names a map's values; a plain key also reaches them when the map declares no
    /// properties).
    fn schema_at<'a>(&'a self, root: &str, path: &[&str]) -> Option<&'a Value> {
        let mut cur = self.defs.get(root)?;
        for segment in path {
            let mut target = self.resolve(cur);
            let mut hops = 0;
            while let Some(items) = target.get("items") {
                hops += 1;
                if hops > MAX_DEPTH {
                    return None;
                }
                target = self.resolve(items);
            }
            let additional = target.get("additionalProperties").filter(|a| a.is_object());
            cur = if *segment == "*" {
                additional?
            } else {
                match target.get("properties").and_then(|p| p.get(*segment)) {
                    Some(prop) => prop,
                    None => additional?,
                }
            };
        }
        Some(cur)
    }
}

/// What [`Schemas::check_unknown`] makes of one field of an object.
enum Field<'a> {
    /// Declared (or a map value): check it against this schema.
    Check(&'a Value),
    /// Allowed without a schema (free-form, or `apiVersion`/`kind` of a resource).
    Allowed,
    /// Not declared.
    Unknown,
}

/// Walks a schema's chain of `$ref`/`allOf` wrappers (see [`Schemas::chain`]).
struct Chain<'a> {
    schemas: &'a Schemas,
    next: Option<&'a Value>,
    hops: usize,
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        let cur = self.next.take()?;
        self.hops += 1;
        if self.hops <= MAX_DEPTH {
            self.next = self.schemas.step(cur);
        }
        Some(cur)
    }
}

/// [`TypeInfo`] read from the schemas: the extensions on the property at the path, then those
/// of its type. Paths the schema does not describe get [`NoTypeInfo`]'s answers.
#[derive(Clone, Debug)]
pub struct SchemaTypeInfo {
    schemas: Arc<Schemas>,
    root: String,
}

impl SchemaTypeInfo {
    /// The root schema's name.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn at(&self, path: &[&str]) -> Option<&Value> {
        self.schemas.schema_at(&self.root, path)
    }

    fn string_extension(&self, path: &[&str], key: &str) -> Option<String> {
        let schema = self.at(path)?;
        self.schemas
            .extension(schema, key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

impl TypeInfo for SchemaTypeInfo {
    fn list_type(&self, path: &[&str]) -> ListType {
        let Some(schema) = self.at(path) else {
            return NoTypeInfo.list_type(path);
        };
        let declared = self
            .schemas
            .extension(schema, "x-kubernetes-list-type")
            .and_then(Value::as_str);
        let merge_key = self.patch_merge_key(path);
        match declared {
            Some("atomic") => ListType::Atomic,
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .schemas
                    .extension(schema, "x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                match (keys.is_empty(), merge_key) {
                    (false, _) => ListType::Map(keys),
                    (true, Some(key)) => ListType::Map(vec![key]),
                    (true, None) => ListType::Atomic,
                }
            }
            _ => {
                if let Some(key) = merge_key {
                    return ListType::Map(vec![key]);
                }
                let merges = self.patch_strategies(path).iter().any(|s| s == "merge");
                let items = self
                    .schemas
                    .resolve(schema)
                    .get("items")
                    .map(|i| self.schemas.resolve(i));
                let primitive = items.is_some_and(|i| {
                    i.get("properties").is_none()
                        && i.get("additionalProperties").is_none()
                        && i.get("items").is_none()
                        && i.get("type") != Some(&json!("object"))
                });
                if merges && primitive {
                    ListType::Set
                } else {
                    ListType::Atomic
                }
            }
        }
    }

    fn patch_merge_key(&self, path: &[&str]) -> Option<String> {
        self.string_extension(path, "x-kubernetes-patch-merge-key")
    }

    fn patch_strategies(&self, path: &[&str]) -> Vec<String> {
        self.string_extension(path, "x-kubernetes-patch-strategy")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_map(&self, path: &[&str]) -> bool {
        let Some(schema) = self.at(path) else {
            return NoTypeInfo.is_map(path);
        };
        let target = self.schemas.resolve(schema);
        if target.get("properties").is_some() {
            return false;
        }
        target
            .get("additionalProperties")
            .is_some_and(|a| a.is_object() || a == &Value::Bool(true))
            || self
                .schemas
                .flag(schema, "x-kubernetes-preserve-unknown-fields")
    }

    fn is_atomic(&self, path: &[&str]) -> bool {
        let Some(mut schema) = self.at(path) else {
            return NoTypeInfo.is_atomic(path);
        };
        for _ in 0..MAX_DEPTH {
            if let Some(map_type) = self.schemas.extension(schema, "x-kubernetes-map-type") {
                return map_type == "atomic";
            }
            match self.schemas.resolve(schema).get("items") {
                Some(items) => schema = items,
                None => return false,
            }
        }
        false
    }
}

/// The structural markers of one property, as the Go type's comment tags give them (empty
/// string / slice: no such marker).
#[derive(Clone, Copy, Debug)]
struct Markers {
    patch_strategy: &'static str,
    patch_merge_key: &'static str,
    list_type: &'static str,
    list_map_keys: &'static [&'static str],
    map_type: &'static str,
}

/// Shorthand for the [`FIELD_MARKERS`] table.
const fn m(
    patch_strategy: &'static str,
    patch_merge_key: &'static str,
    list_type: &'static str,
    list_map_keys: &'static [&'static str],
    map_type: &'static str,
) -> Markers {
    Markers {
        patch_strategy,
        patch_merge_key,
        list_type,
        list_map_keys,
        map_type,
    }
}

impl Markers {
    /// Writes the markers onto a property schema as `x-kubernetes-*` extensions; a bare
    /// `$ref` property is wrapped in `allOf` first, since OpenAPI 3.0 ignores `$ref` siblings.
    fn apply(&self, prop: &mut Value) {
        let Value::Object(obj) = prop else {
            return;
        };
        if let Some(reference) = obj.remove("$ref") {
            obj.insert("allOf".into(), json!([{ "$ref": reference }]));
        }
        let mut put = |key: &str, value: &str| {
            if !value.is_empty() {
                obj.insert(key.into(), json!(value));
            }
        };
        put("x-kubernetes-patch-strategy", self.patch_strategy);
        put("x-kubernetes-patch-merge-key", self.patch_merge_key);
        put("x-kubernetes-list-type", self.list_type);
        put("x-kubernetes-map-type", self.map_type);
        if !self.list_map_keys.is_empty() {
            obj.insert(
                "x-kubernetes-list-map-keys".into(),
                json!(self.list_map_keys),
            );
        }
    }
}

/// Generates the component schemas of the built-in root types and their lists.
fn generate_builtin() -> BTreeMap<String, Value> {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut roots = Roots::default();
    macro_rules! listed {
        ($($t:ty),* $(,)?) => { $( roots.listed::<$t>(&mut gen); )* };
    }
    macro_rules! single {
        ($($t:ty),* $(,)?) => { $( roots.single::<$t>(&mut gen); )* };
    }
    listed!(
        core::Namespace,
        core::Pod,
        core::Service,
        core::Endpoints,
        core::Node,
        core::ConfigMap,
        core::Secret,
        core::ServiceAccount,
        core::Event,
        core::PersistentVolumeClaim,
        core::PersistentVolume,
        core::ResourceQuota,
        core::LimitRange,
        core::PodTemplate,
        core::ReplicationController,
        core::ComponentStatus,
        apps::Deployment,
        apps::ReplicaSet,
        apps::StatefulSet,
        apps::DaemonSet,
        apps::ControllerRevision,
        batch::Job,
        batch::CronJob,
        coordination::Lease,
        discovery::EndpointSlice,
        events::Event,
        policy::PodDisruptionBudget,
        rbac::Role,
        rbac::RoleBinding,
        rbac::ClusterRole,
        rbac::ClusterRoleBinding,
        apiextensions::CustomResourceDefinition,
        autoscaling_v1::HorizontalPodAutoscaler,
        autoscaling_v2::HorizontalPodAutoscaler,
        networking::Ingress,
        networking::IngressClass,
        networking::NetworkPolicy,
        networking::IPAddress,
        networking::ServiceCIDR,
        storage::StorageClass,
        storage::CSIDriver,
        storage::CSINode,
        storage::CSIStorageCapacity,
        storage::VolumeAttachment,
        scheduling::PriorityClass,
        node::RuntimeClass,
        certificates::CertificateSigningRequest,
        admissionregistration::MutatingWebhookConfiguration,
        admissionregistration::ValidatingWebhookConfiguration,
        admissionregistration::ValidatingAdmissionPolicy,
        admissionregistration::ValidatingAdmissionPolicyBinding,
        flowcontrol::FlowSchema,
        flowcontrol::PriorityLevelConfiguration,
        apiregistration::APIService,
    );
    single!(
        core::Binding,
        autoscaling_v1::Scale,
        policy::Eviction,
        authentication::TokenRequest,
        authentication::TokenReview,
        authentication::SelfSubjectReview,
        authorization::SelfSubjectAccessReview,
        authorization::SubjectAccessReview,
        authorization::LocalSubjectAccessReview,
        authorization::SelfSubjectRulesReview,
        meta::APIResourceList,
        meta::APIGroupList,
        meta::APIGroup,
        meta::APIVersions,
    );
    // The meta/v1 wire types without a `Resource` impl of their own.
    let _ = gen.subschema_for::<meta::Status>();
    let _ = gen.subschema_for::<meta::DeleteOptions>();
    let _ = gen.subschema_for::<meta::WatchEvent<core::Pod>>();
    let _ = gen.subschema_for::<meta::ListMeta>();
    let _ = gen.subschema_for::<meta::Patch>();

    let mut defs: BTreeMap<String, Value> = gen.take_definitions(true).into_iter().collect();
    roots.finish(&mut defs);
    defs
}

/// The root types being generated: their group-version-kinds and their lists.
#[derive(Default)]
struct Roots {
    /// (schema name, group, version, kind).
    gvks: Vec<(String, &'static str, &'static str, String)>,
    /// (item schema name, list kind).
    lists: Vec<(String, &'static str)>,
}

impl Roots {
    fn single<T: JsonSchema + k8s_openapi::Resource>(&mut self, gen: &mut SchemaGenerator) {
        let _ = gen.subschema_for::<T>();
        self.gvks.push((
            T::schema_name().into_owned(),
            T::GROUP,
            T::VERSION,
            T::KIND.to_string(),
        ));
    }

    fn listed<T: JsonSchema + k8s_openapi::ListableResource>(&mut self, gen: &mut SchemaGenerator) {
        self.single::<T>(gen);
        self.lists
            .push((T::schema_name().into_owned(), T::LIST_KIND));
    }

    /// Adds the `…List` schemas and every `x-kubernetes-group-version-kind`.
    fn finish(mut self, defs: &mut BTreeMap<String, Value>) {
        for (item, list_kind) in std::mem::take(&mut self.lists) {
            let Some((package, kind)) = item.rsplit_once('.') else {
                continue;
            };
            let name = format!("{package}.{list_kind}");
            if let Some((_, group, version, _)) = self.gvks.iter().find(|g| g.0 == item) {
                let (group, version) = (*group, *version);
                self.gvks
                    .push((name.clone(), group, version, list_kind.to_string()));
            }
            defs.insert(name, list_schema(&item, kind, list_kind));
        }
        // Every group version accepts DeleteOptions and serves Status and WatchEvent.
        let versions: BTreeSet<(&str, &str)> =
            self.gvks.iter().map(|(_, g, v, _)| (*g, *v)).collect();
        let mut by_schema: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, group, version, kind) in &self.gvks {
            by_schema
                .entry(name.clone())
                .or_default()
                .push(json!({ "group": group, "kind": kind, "version": version }));
        }
        for kind in ["DeleteOptions", "Status", "WatchEvent"] {
            let entries = versions
                .iter()
                .filter(|(g, _)| kind == "DeleteOptions" || kind == "WatchEvent" || g.is_empty())
                .map(|(g, v)| json!({ "group": g, "kind": kind, "version": v }))
                .collect();
            by_schema.insert(
                format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"),
                entries,
            );
        }
        for (name, entries) in by_schema {
            if let Some(Value::Object(def)) = defs.get_mut(&name) {
                def.insert(
                    "x-kubernetes-group-version-kind".into(),
                    Value::Array(entries),
                );
            }
        }
    }
}

/// The schema of `<kind>List` (k8s-openapi has no schema for its generic `List<T>`).
fn list_schema(item: &str, kind: &str, list_kind: &str) -> Value {
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({
            "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
            "type": "string",
        }),
    );
    props.insert(
        "items".into(),
        json!({
            "description": format!("List of {kind} objects."),
            "type": "array",
            "items": { "$ref": format!("{REF_PREFIX}{item}") },
        }),
    );
    props.insert(
        "kind".into(),
        json!({
            "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            "type": "string",
        }),
    );
    props.insert(
        "metadata".into(),
        json!({
            "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "allOf": [{ "$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta") }],
        }),
    );
    json!({
        "description": format!("{list_kind} is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": props,
    })
}

/// Markers of properties, keyed by (schema, property), transcribed from the `+patchStrategy=`,
/// `+patchMergeKey=`, `+listType=`, `+listMapKey=`, `+mapType=` and field-level `+structType=`
/// comment tags of the Go types (as the k8s-pb sources carry them) for every type reachable
/// from the built-in roots.
#[rustfmt::skip]
const FIELD_MARKERS: &[(&str, &str, Markers)] = &[
    ("io.k8s.api.admissionregistration.v1.MatchResources", "resourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.MatchResources", "excludeResourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "admissionReviewVersions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.admissionregistration.v1.NamedRuleWithOperations", "resourceNames", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.RuleWithOperations", "operations", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.TypeChecking", "expressionWarnings", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpec", "validationActions", m("", "", "set", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "validations", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "auditAnnotations", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyStatus", "conditions", m("", "", "map", &["type"], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "admissionReviewVersions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", m("retainKeys", "", "", &[], "")),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates", m("", "", "atomic", &[], "")),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.authentication.v1.TokenRequestSpec", "audiences", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authentication.v1.TokenReviewSpec", "audiences", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authentication.v1.TokenReviewStatus", "audiences", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authentication.v1.UserInfo", "groups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.FieldSelectorAttributes", "requirements", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.LabelSelectorAttributes", "requirements", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.NonResourceRule", "verbs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.NonResourceRule", "nonResourceURLs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.ResourceRule", "verbs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.ResourceRule", "apiGroups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.ResourceRule", "resources", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.ResourceRule", "resourceNames", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.SubjectAccessReviewSpec", "groups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.SubjectRulesReviewStatus", "resourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.authorization.v1.SubjectRulesReviewStatus", "nonResourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "metrics", m("", "", "atomic", &[], "")),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "currentMetrics", m("", "", "atomic", &[], "")),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.batch.v1.CronJobStatus", "active", m("", "", "atomic", &[], "")),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", m("merge", "type", "atomic", &[], "")),
    ("io.k8s.api.batch.v1.PodFailurePolicy", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement", "values", m("", "", "set", &[], "")),
    ("io.k8s.api.batch.v1.PodFailurePolicyRule", "onPodConditions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.batch.v1.SuccessPolicy", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.batch.v1.UncountedTerminatedPods", "succeeded", m("", "", "set", &[], "")),
    ("io.k8s.api.batch.v1.UncountedTerminatedPods", "failed", m("", "", "set", &[], "")),
    ("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "usages", m("", "", "atomic", &[], "")),
    ("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "groups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions", m("", "", "map", &["type"], "")),
    ("io.k8s.api.core.v1.Capabilities", "add", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Capabilities", "drop", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ComponentStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.ConfigMapProjection", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ConfigMapVolumeSource", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Container", "command", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Container", "args", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Container", "ports", m("merge", "containerPort", "map", &["containerPort", "protocol"], "")),
    ("io.k8s.api.core.v1.Container", "envFrom", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Container", "env", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.Container", "resizePolicy", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", m("merge", "mountPath", "map", &["mountPath"], "")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", m("merge", "devicePath", "map", &["devicePath"], "")),
    ("io.k8s.api.core.v1.ContainerImage", "names", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", m("merge", "mountPath", "map", &["mountPath"], "")),
    ("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.DownwardAPIProjection", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.DownwardAPIVolumeSource", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.EndpointSubset", "addresses", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.EndpointSubset", "notReadyAddresses", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.EndpointSubset", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.Endpoints", "subsets", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ExecAction", "command", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.HostAlias", "hostnames", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.LimitRangeSpec", "limits", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.LinuxContainerUser", "supplementalGroups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.LoadBalancerIngress", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.LoadBalancerStatus", "ingress", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NamespaceSpec", "finalizers", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.NodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeSelector", "nodeSelectorTerms", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeSelectorRequirement", "values", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeSelectorTerm", "matchExpressions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeSelectorTerm", "matchFields", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", m("merge", "", "set", &[], "")),
    ("io.k8s.api.core.v1.NodeSpec", "taints", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.NodeStatus", "images", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeStatus", "volumesInUse", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeStatus", "volumesAttached", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.NodeStatus", "runtimeHandlers", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "accessModes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "accessModes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "allocatedResourceStatuses", m("", "", "", &[], "granular")),
    ("io.k8s.api.core.v1.PersistentVolumeSpec", "accessModes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef", m("", "", "", &[], "granular")),
    ("io.k8s.api.core.v1.PersistentVolumeSpec", "mountOptions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAffinity", "requiredDuringSchedulingIgnoredDuringExecution", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAffinity", "preferredDuringSchedulingIgnoredDuringExecution", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAffinityTerm", "namespaces", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAffinityTerm", "matchLabelKeys", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAffinityTerm", "mismatchLabelKeys", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodSecurityContext", "supplementalGroups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodSecurityContext", "sysctls", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", m("merge,retainKeys", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "containers", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "nodeSelector", m("", "", "", &[], "atomic")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "tolerations", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", m("merge", "ip", "map", &["ip"], "")),
    ("io.k8s.api.core.v1.PodSpec", "readinessGates", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", m("merge", "topologyKey", "map", &["topologyKey", "whenUnsatisfiable"], "")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", m("merge,retainKeys", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", m("merge", "ip", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", m("merge", "ip", "map", &["ip"], "")),
    ("io.k8s.api.core.v1.PodStatus", "initContainerStatuses", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodStatus", "containerStatuses", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodStatus", "ephemeralContainerStatuses", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", m("merge,retainKeys", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.ProjectedVolumeSource", "sources", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ReplicationControllerSpec", "selector", m("", "", "", &[], "atomic")),
    ("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.ResourceQuotaSpec", "scopes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ResourceRequirements", "claims", m("", "", "map", &["name"], "")),
    ("io.k8s.api.core.v1.ResourceStatus", "resources", m("", "", "map", &["resourceID"], "")),
    ("io.k8s.api.core.v1.ScopeSelector", "matchExpressions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ScopedResourceSelectorRequirement", "values", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.SecretProjection", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.SecretVolumeSource", "items", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", m("merge", "port", "map", &["port", "protocol"], "")),
    ("io.k8s.api.core.v1.ServiceSpec", "selector", m("", "", "", &[], "atomic")),
    ("io.k8s.api.core.v1.ServiceSpec", "clusterIPs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceSpec", "externalIPs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceSpec", "loadBalancerSourceRanges", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceSpec", "ipFamilies", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.core.v1.TopologySelectorLabelRequirement", "values", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.TopologySelectorTerm", "matchLabelExpressions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.core.v1.TopologySpreadConstraint", "matchLabelKeys", m("", "", "atomic", &[], "")),
    ("io.k8s.api.discovery.v1.Endpoint", "addresses", m("", "", "set", &[], "")),
    ("io.k8s.api.discovery.v1.EndpointHints", "forZones", m("", "", "atomic", &[], "")),
    ("io.k8s.api.discovery.v1.EndpointHints", "forNodes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.discovery.v1.EndpointSlice", "endpoints", m("", "", "atomic", &[], "")),
    ("io.k8s.api.discovery.v1.EndpointSlice", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaSpec", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "verbs", m("", "", "set", &[], "")),
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "nonResourceURLs", m("", "", "set", &[], "")),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "subjects", m("", "", "atomic", &[], "")),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "resourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "nonResourceRules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "verbs", m("", "", "set", &[], "")),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "apiGroups", m("", "", "set", &[], "")),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "resources", m("", "", "set", &[], "")),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "namespaces", m("", "", "set", &[], "")),
    ("io.k8s.api.networking.v1.IngressLoadBalancerIngress", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.IngressLoadBalancerStatus", "ingress", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.IngressSpec", "tls", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.IngressSpec", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicyEgressRule", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicyEgressRule", "to", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicyIngressRule", "ports", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicyIngressRule", "from", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicySpec", "ingress", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicySpec", "egress", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.NetworkPolicySpec", "policyTypes", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.ServiceCIDRSpec", "cidrs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.networking.v1.ServiceCIDRStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.node.v1.Scheduling", "nodeSelector", m("", "", "", &[], "atomic")),
    ("io.k8s.api.node.v1.Scheduling", "tolerations", m("", "", "atomic", &[], "")),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", m("replace", "", "", &[], "")),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", m("merge", "type", "map", &["type"], "")),
    ("io.k8s.api.rbac.v1.AggregationRule", "clusterRoleSelectors", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.ClusterRole", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.ClusterRoleBinding", "subjects", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.PolicyRule", "verbs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.PolicyRule", "apiGroups", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.PolicyRule", "resources", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.PolicyRule", "resourceNames", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.PolicyRule", "nonResourceURLs", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.Role", "rules", m("", "", "atomic", &[], "")),
    ("io.k8s.api.rbac.v1.RoleBinding", "subjects", m("", "", "atomic", &[], "")),
    ("io.k8s.api.storage.v1.CSIDriverSpec", "volumeLifecycleModes", m("", "", "set", &[], "")),
    ("io.k8s.api.storage.v1.CSIDriverSpec", "tokenRequests", m("", "", "atomic", &[], "")),
    ("io.k8s.api.storage.v1.CSINodeDriver", "topologyKeys", m("", "", "atomic", &[], "")),
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers", m("merge", "name", "map", &["name"], "")),
    ("io.k8s.api.storage.v1.StorageClass", "mountOptions", m("", "", "atomic", &[], "")),
    ("io.k8s.api.storage.v1.StorageClass", "allowedTopologies", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames", "shortNames", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames", "categories", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec", "versions", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus", "conditions", m("", "", "map", &["type"], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus", "storedVersions", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion", "additionalPrinterColumns", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion", "selectableFields", m("", "", "atomic", &[], "")),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookConversion", "conversionReviewVersions", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup", "versions", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup", "serverAddressByClientCIDRs", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList", "groups", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIResource", "shortNames", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIResource", "categories", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList", "resources", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions", "versions", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions", "serverAddressByClientCIDRs", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "dryRun", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement", "values", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "matchExpressions", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement", "values", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", m("merge", "uid", "map", &["uid"], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", m("merge", "", "set", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields", m("", "", "atomic", &[], "")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails", "causes", m("", "", "atomic", &[], "")),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceSpec", "caBundle", m("", "", "atomic", &[], "")),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus", "conditions", m("merge", "type", "map", &["type"], "")),
];

/// `x-kubernetes-map-type` of whole types (`+structType=atomic` on the Go struct).
#[rustfmt::skip]
const TYPE_MAP_TYPES: &[(&str, &str)] = &[
    ("io.k8s.api.admissionregistration.v1.MatchResources", "atomic"),
    ("io.k8s.api.admissionregistration.v1.NamedRuleWithOperations", "atomic"),
    ("io.k8s.api.admissionregistration.v1.ParamKind", "atomic"),
    ("io.k8s.api.admissionregistration.v1.ParamRef", "atomic"),
    ("io.k8s.api.admissionregistration.v1.Variable", "atomic"),
    ("io.k8s.api.autoscaling.v1.CrossVersionObjectReference", "atomic"),
    ("io.k8s.api.core.v1.ConfigMapKeySelector", "atomic"),
    ("io.k8s.api.core.v1.EndpointAddress", "atomic"),
    ("io.k8s.api.core.v1.EndpointPort", "atomic"),
    ("io.k8s.api.core.v1.LocalObjectReference", "atomic"),
    ("io.k8s.api.core.v1.NodeSelector", "atomic"),
    ("io.k8s.api.core.v1.NodeSelectorTerm", "atomic"),
    ("io.k8s.api.core.v1.ObjectFieldSelector", "atomic"),
    ("io.k8s.api.core.v1.ObjectReference", "atomic"),
    ("io.k8s.api.core.v1.ResourceFieldSelector", "atomic"),
    ("io.k8s.api.core.v1.ScopeSelector", "atomic"),
    ("io.k8s.api.core.v1.SecretKeySelector", "atomic"),
    ("io.k8s.api.core.v1.SecretReference", "atomic"),
    ("io.k8s.api.core.v1.TopologySelectorTerm", "atomic"),
    ("io.k8s.api.core.v1.TypedLocalObjectReference", "atomic"),
    ("io.k8s.api.discovery.v1.EndpointPort", "atomic"),
    ("io.k8s.api.networking.v1.ServiceBackendPort", "atomic"),
    ("io.k8s.api.rbac.v1.RoleRef", "atomic"),
    ("io.k8s.api.rbac.v1.Subject", "atomic"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "atomic"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "atomic"),
];

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::Instant;

    use super::*;

    fn builtin() -> Arc<Schemas> {
        static SCHEMAS: OnceLock<Arc<Schemas>> = OnceLock::new();
        Arc::clone(SCHEMAS.get_or_init(|| Arc::new(Schemas::builtin())))
    }

    /// Key order depends on serde_json's `preserve_order` feature; compare sorted.
    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn prop<'a>(s: &'a Schemas, ty: &str, field: &str) -> &'a Value {
        &s.get(ty).unwrap_or_else(|| panic!("{ty} missing"))["properties"][field]
    }

    fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|c| collect_refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
            _ => {}
        }
    }

    #[test]
    fn builtin_has_the_roots_their_lists_and_closed_references() {
        let s = builtin();
        for name in [
            "io.k8s.api.core.v1.Namespace",
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.core.v1.PodList",
            "io.k8s.api.core.v1.Binding",
            "io.k8s.api.core.v1.ComponentStatusList",
            "io.k8s.api.apps.v1.DeploymentList",
            "io.k8s.api.apps.v1.ControllerRevision",
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.api.batch.v1.CronJobList",
            "io.k8s.api.coordination.v1.Lease",
            "io.k8s.api.discovery.v1.EndpointSliceList",
            "io.k8s.api.events.v1.Event",
            "io.k8s.api.policy.v1.Eviction",
            "io.k8s.api.rbac.v1.ClusterRoleBindingList",
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionList",
            "io.k8s.api.authentication.v1.TokenRequest",
            "io.k8s.api.authentication.v1.SelfSubjectReview",
            "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
            "io.k8s.api.authorization.v1.SubjectAccessReview",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
            "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
            "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        ] {
            assert!(s.get(name).is_some(), "{name} missing");
        }
        assert_eq!(
            prop(&s, "io.k8s.api.core.v1.PodList", "items")["items"],
            json!({ "$ref": "#/components/schemas/io.k8s.api.core.v1.Pod" })
        );
        let mut refs = Vec::new();
        s.definitions()
            .values()
            .for_each(|d| collect_refs(d, &mut refs));
        assert!(refs.len() > 500);
        for r in refs {
            let name = r
                .strip_prefix(REF_PREFIX)
                .unwrap_or_else(|| panic!("bad ref {r}"));
            assert!(s.get(name).is_some(), "dangling ref {r}");
        }
    }

    #[test]
    fn builtin_is_cheap_enough_for_startup() {
        let start = Instant::now();
        let s = Schemas::builtin();
        let took = start.elapsed();
        assert!(s.definitions().len() > 450);
        // Unoptimized test builds are several times slower than the release binary.
        assert!(took.as_millis() < 900, "Schemas::builtin() took {took:?}");
    }

    #[test]
    fn every_marker_in_the_tables_lands_on_a_schema() {
        let s = builtin();
        for (ty, field, _) in FIELD_MARKERS {
            assert!(
                s.get(ty)
                    .is_some_and(|d| d["properties"].get(*field).is_some()),
                "{ty}.{field}"
            );
        }
        for (ty, _) in TYPE_MAP_TYPES {
            assert!(s.get(ty).is_some(), "{ty}");
        }
    }

    #[test]
    fn extensions_spot_check() {
        let s = builtin();
        let containers = prop(&s, "io.k8s.api.core.v1.PodSpec", "containers");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let init = prop(&s, "io.k8s.api.core.v1.PodSpec", "initContainers");
        assert_eq!(init["x-kubernetes-patch-merge-key"], "name");
        let volumes = prop(&s, "io.k8s.api.core.v1.PodSpec", "volumes");
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        assert_eq!(volumes["x-kubernetes-patch-merge-key"], "name");
        let ports = prop(&s, "io.k8s.api.core.v1.Container", "ports");
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let env = prop(&s, "io.k8s.api.core.v1.Container", "env");
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
        let mounts = prop(&s, "io.k8s.api.core.v1.Container", "volumeMounts");
        assert_eq!(mounts["x-kubernetes-patch-merge-key"], "mountPath");
        let svc_ports = prop(&s, "io.k8s.api.core.v1.ServiceSpec", "ports");
        assert_eq!(svc_ports["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(
            svc_ports["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
        let finalizers = prop(&s, OBJECT_META, "finalizers");
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
        let owners = prop(&s, OBJECT_META, "ownerReferences");
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        assert_eq!(owners["x-kubernetes-list-map-keys"], json!(["uid"]));
        let conditions = prop(&s, "io.k8s.api.core.v1.PodStatus", "conditions");
        assert_eq!(conditions["x-kubernetes-patch-merge-key"], "type");
        let addresses = prop(&s, "io.k8s.api.core.v1.NodeStatus", "addresses");
        assert_eq!(addresses["x-kubernetes-patch-merge-key"], "type");
        assert_eq!(addresses["x-kubernetes-patch-strategy"], "merge");
        let deploy_conditions = prop(&s, "io.k8s.api.apps.v1.DeploymentStatus", "conditions");
        assert_eq!(
            deploy_conditions["x-kubernetes-list-map-keys"],
            json!(["type"])
        );
        // A `$ref` property with markers keeps its reference inside `allOf`.
        let strategy = prop(&s, "io.k8s.api.apps.v1.DeploymentSpec", "strategy");
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert_eq!(
            strategy["allOf"],
            json!([{ "$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy" }])
        );
        assert_eq!(
            prop(&s, "io.k8s.api.core.v1.PodSpec", "tolerations")["x-kubernetes-list-type"],
            "atomic"
        );
        assert_eq!(
            prop(&s, "io.k8s.api.core.v1.PodSpec", "nodeSelector")["x-kubernetes-map-type"],
            "atomic"
        );
        assert_eq!(
            prop(&s, "io.k8s.api.core.v1.NodeSpec", "podCIDRs")["x-kubernetes-list-type"],
            "set"
        );
        assert_eq!(
            s.get("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
                .map(|d| &d["x-kubernetes-map-type"]),
            Some(&json!("atomic"))
        );
        assert_eq!(
            s.get("io.k8s.api.core.v1.ObjectReference")
                .map(|d| &d["x-kubernetes-map-type"]),
            Some(&json!("atomic"))
        );
        assert_eq!(
            s.get("io.k8s.apimachinery.pkg.runtime.RawExtension")
                .map(|d| &d["x-kubernetes-preserve-unknown-fields"]),
            Some(&json!(true))
        );
    }

    #[test]
    fn roots_and_lists_carry_their_group_version_kind() {
        let s = builtin();
        let gvk = |name: &str| {
            s.get(name)
                .map(|d| d["x-kubernetes-group-version-kind"].clone())
        };
        assert_eq!(
            gvk("io.k8s.api.apps.v1.Deployment"),
            Some(json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }]))
        );
        assert_eq!(
            gvk("io.k8s.api.core.v1.PodList"),
            Some(json!([{ "group": "", "kind": "PodList", "version": "v1" }]))
        );
        assert_eq!(
            gvk("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            Some(json!([{ "group": "", "kind": "Status", "version": "v1" }]))
        );
        let delete = gvk("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions").unwrap_or_default();
        let entries = delete.as_array().cloned().unwrap_or_default();
        assert!(
            entries.contains(&json!({ "group": "apps", "kind": "DeleteOptions", "version": "v1" }))
        );
        assert!(entries.contains(&json!({ "group": "", "kind": "DeleteOptions", "version": "v1" })));
    }

    #[test]
    fn type_info_reads_the_markers_along_the_path() {
        let s = builtin();
        let d = s.type_info("io.k8s.api.apps.v1.Deployment");
        let pod = ["spec", "template", "spec"];
        let at = |rest: &[&'static str]| -> Vec<&'static str> {
            pod.iter().chain(rest.iter()).copied().collect()
        };
        assert_eq!(
            d.list_type(&at(&["containers"])),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(d.patch_merge_key(&at(&["containers"])), Some("name".into()));
        assert_eq!(
            d.patch_strategies(&at(&["containers"])),
            vec!["merge".to_string()]
        );
        assert_eq!(
            d.list_type(&at(&["containers", "ports"])),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            d.patch_merge_key(&at(&["containers", "ports"])),
            Some("containerPort".into())
        );
        assert_eq!(
            d.patch_merge_key(&at(&["containers", "env"])),
            Some("name".into())
        );
        assert_eq!(d.list_type(&at(&["containers", "args"])), ListType::Atomic);
        assert_eq!(
            d.patch_strategies(&at(&["containers", "args"])),
            Vec::<String>::new()
        );
        assert_eq!(
            d.patch_strategies(&at(&["volumes"])),
            vec!["merge".to_string(), "retainKeys".to_string()]
        );
        assert_eq!(d.list_type(&at(&["tolerations"])), ListType::Atomic);
        assert_eq!(d.patch_merge_key(&at(&["tolerations"])), None);
        assert_eq!(
            d.patch_strategies(&["spec", "strategy"]),
            vec!["retainKeys".to_string()]
        );
        assert_eq!(d.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert_eq!(
            d.list_type(&["metadata", "ownerReferences"]),
            ListType::Map(vec!["uid".into()])
        );
        assert_eq!(
            d.list_type(&["status", "conditions"]),
            ListType::Map(vec!["type".into()])
        );
        // Maps and atomic structs.
        assert!(d.is_map(&["metadata", "labels"]));
        assert!(d.is_map(&at(&["containers", "resources", "limits"])));
        assert!(!d.is_map(&["spec"]));
        assert!(!d.is_map(&["metadata", "labels", "*"]));
        assert!(d.is_atomic(&["spec", "selector"]));
        assert!(d.is_atomic(&at(&["nodeSelector"])));
        assert!(d.is_atomic(&at(&["containers", "env", "valueFrom", "configMapKeyRef"])));
        assert!(!d.is_atomic(&["spec", "template"]));
        assert!(!d.is_atomic(&["metadata", "labels"]));
        assert!(!d.is_atomic(&[]));
        // A property's map type overrides its type's: PV claimRefs are granular ObjectReferences.
        let pv = s.type_info("io.k8s.api.core.v1.PersistentVolume");
        assert!(!pv.is_atomic(&["spec", "claimRef"]));
        assert!(s
            .type_info("io.k8s.api.core.v1.Binding")
            .is_atomic(&["target"]));
        // Paths the schema does not describe know nothing.
        assert_eq!(d.list_type(&["spec", "nonsense", "list"]), ListType::Atomic);
        assert_eq!(d.patch_merge_key(&["spec", "nonsense"]), None);
        assert!(!d.is_map(&["spec", "nonsense"]));
        let unknown_root = s.type_info("io.k8s.api.nothing.v1.Nothing");
        assert_eq!(unknown_root.patch_merge_key(&["spec"]), None);
        assert_eq!(unknown_root.root(), "io.k8s.api.nothing.v1.Nothing");
    }

    #[test]
    fn type_info_falls_back_to_the_patch_metadata() {
        let mut s = Schemas::default();
        s.insert(
            "example.v1.Widget".into(),
            json!({
                "type": "object",
                "properties": {
                    "tags": {
                        "type": "array", "items": { "type": "string" },
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "parts": {
                        "type": "array",
                        "items": { "type": "object", "properties": { "id": { "type": "string" } } },
                        "x-kubernetes-patch-strategy": "merge",
                        "x-kubernetes-patch-merge-key": "id"
                    },
                    "keyed": {
                        "type": "array",
                        "items": { "type": "object" },
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "id"
                    },
                    "plain": { "type": "array", "items": { "type": "object" } },
                    "byName": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": { "parts": { "type": "array", "x-kubernetes-list-type": "set" } }
                        }
                    },
                    "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
                }
            }),
        );
        let info = Arc::new(s).type_info("example.v1.Widget");
        assert_eq!(info.list_type(&["tags"]), ListType::Set);
        assert_eq!(info.list_type(&["parts"]), ListType::Map(vec!["id".into()]));
        assert_eq!(info.list_type(&["keyed"]), ListType::Map(vec!["id".into()]));
        assert_eq!(info.list_type(&["plain"]), ListType::Atomic);
        assert_eq!(info.list_type(&["byName", "*", "parts"]), ListType::Set);
        assert_eq!(
            info.list_type(&["byName", "anything", "parts"]),
            ListType::Set
        );
        assert!(info.is_map(&["byName"]));
        assert!(info.is_map(&["free"]));
        assert!(!info.is_map(&["byName", "*"]));
    }

    #[test]
    fn unknown_fields_are_named_like_kubernetes() {
        let s = builtin();
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": { "app": "web", "anything/goes": "x" },
                "annotations": { "a": "b" },
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "ownerReferences": [{ "apiVersion": "v1", "kind": "X", "name": "o", "uid": "1", "colour": "red" }],
                "managedFields": [{ "manager": "kubectl", "fieldsType": "FieldsV1",
                                    "fieldsV1": { "f:spec": { "f:replicas": {} } } }],
                "bogusMeta": 1
            },
            "spec": {
                "replicas": 3,
                "foo": "bar",
                "selector": { "matchLabels": { "app": "web" } },
                "strategy": { "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 1 } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": {
                        "containers": [
                            {
                                "name": "a", "image": "nginx",
                                "resources": { "limits": { "cpu": "1", "memory": 128 } },
                                "ports": [{ "containerPort": 80, "extra": true }],
                                "livenessProbe": { "httpGet": { "port": "http", "path": "/" } }
                            },
                            { "name": "b", "image": "busybox", "bogus": { "deep": 1 } }
                        ],
                        "tolerations": [{ "key": "k", "operator": "Exists" }]
                    }
                }
            },
            "status": { "replicas": 1, "conditions": [{ "type": "Available", "status": "True", "why": "?" }] },
            "extraTop": {}
        });
        assert_eq!(
            sorted(s.unknown_fields("io.k8s.api.apps.v1.Deployment", &deployment)),
            vec![
                "extraTop",
                "metadata.bogusMeta",
                "metadata.ownerReferences[0].colour",
                "spec.foo",
                "spec.template.spec.containers[0].ports[0].extra",
                "spec.template.spec.containers[1].bogus",
                "status.conditions[0].why",
            ]
        );
    }

    #[test]
    fn pruning_drops_exactly_the_unknown_fields() {
        let s = builtin();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "labels": { "a": "b" }, "junk": 1 },
            "spec": {
                "containers": [{ "name": "c", "image": "i", "bogus": true, "env": [{ "name": "E", "valueFrom": { "fieldRef": { "fieldPath": "x", "what": 1 } } }] }],
                "overhead": { "cpu": "1" }
            }
        });
        let pruned = s.prune_unknown_fields("io.k8s.api.core.v1.Pod", &mut pod);
        assert_eq!(
            sorted(pruned),
            vec![
                "metadata.junk",
                "spec.containers[0].bogus",
                "spec.containers[0].env[0].valueFrom.fieldRef.what",
            ]
        );
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "p", "labels": { "a": "b" } },
                "spec": {
                    "containers": [{ "name": "c", "image": "i", "env": [{ "name": "E", "valueFrom": { "fieldRef": { "fieldPath": "x" } } }] }],
                    "overhead": { "cpu": "1" }
                }
            })
        );
        assert!(s.unknown_fields("io.k8s.api.core.v1.Pod", &pod).is_empty());
    }

    #[test]
    fn unknown_fields_leave_free_form_and_mistyped_values_alone() {
        let s = builtin();
        let revision = json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": { "name": "r" },
            "revision": 1,
            "data": { "spec": { "anything": { "at": ["all"] } } }
        });
        assert!(s
            .unknown_fields("io.k8s.api.apps.v1.ControllerRevision", &revision)
            .is_empty());
        let mistyped = json!({ "spec": { "replicas": { "not": "a number" }, "paused": [1, 2] } });
        assert!(s
            .unknown_fields("io.k8s.api.apps.v1.Deployment", &mistyped)
            .is_empty());
        let list = json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "1", "nope": 1 },
            "items": [
                { "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "a" } },
                { "metadata": { "name": "b" }, "spec": { "containers": [{ "name": "c", "x": 1 }] } }
            ]
        });
        assert_eq!(
            sorted(s.unknown_fields("io.k8s.api.core.v1.PodList", &list)),
            vec!["items[1].spec.containers[0].x", "metadata.nope"]
        );
        assert!(s.unknown_fields("no.such.Type", &list).is_empty());
    }

    #[test]
    fn unknown_fields_in_custom_resource_definitions_follow_json_schema_props() {
        let s = builtin();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": "widgets.example.com" },
            "spec": {
                "group": "example.com",
                "names": { "kind": "Widget", "plural": "widgets" },
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": { "status": {}, "scale": { "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas" } },
                    "schema": { "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": true,
                                "properties": { "size": { "type": "integer", "default": 3, "colour": "blue" } },
                                "required": ["size"]
                            },
                            "list": { "type": "array", "items": { "type": "string", "enum": ["a", 1] } }
                        }
                    } }
                }]
            }
        });
        assert_eq!(
            s.unknown_fields(
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
                &crd
            ),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.size.colour"]
        );
    }

    #[test]
    fn unknown_fields_in_custom_resources() {
        let mut s = (*builtin()).clone();
        s.insert(
            "com.example.v1.Widget".into(),
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": { "type": "string" },
                    "kind": { "type": "string" },
                    "metadata": { "type": "object" },
                    "spec": {
                        "type": "object",
                        "properties": {
                            "size": { "type": "integer" },
                            "port": { "x-kubernetes-int-or-string": true },
                            "extra": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                            "template": {
                                "type": "object",
                                "x-kubernetes-embedded-resource": true,
                                "properties": { "spec": { "type": "object", "properties": { "x": { "type": "string" } } } }
                            },
                            "tags": { "type": "object", "additionalProperties": { "type": "string" } },
                            "empty": { "type": "object" }
                        }
                    }
                }
            }),
        );
        let widget = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": { "name": "w", "labels": { "a": "b" }, "surprise": true },
            "spec": {
                "size": 1, "port": "http", "colour": "red",
                "extra": { "whatever": { "nested": [1] } },
                "template": {
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "t", "oops": 1 },
                    "spec": { "x": "1", "y": "2" }
                },
                "tags": { "k": "v" },
                "empty": { "no": "fields" }
            }
        });
        assert_eq!(
            sorted(s.unknown_fields("com.example.v1.Widget", &widget)),
            vec![
                "metadata.surprise",
                "spec.colour",
                "spec.empty.no",
                "spec.template.metadata.oops",
                "spec.template.spec.y",
            ]
        );
    }
}
