//! Structural schemas of CustomResourceDefinitions: validation, pruning, defaulting, and the
//! list/map metadata server-side apply needs.

use serde_json::{json, Map, Value};

use crate::error::Cause;
use crate::patch::{ListType, TypeInfo};

fn ty(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn flag(schema: &Value, k: &str) -> bool {
    schema.get(k).and_then(Value::as_bool) == Some(true)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn validate_at(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        if !flag(schema, "nullable") && ty(schema).is_some() {
            out.push(Cause::invalid(
                path,
                v,
                format!(
                    "{path} in body must be of type {}: \"null\"",
                    ty(schema).unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.push(Cause::invalid(
                path,
                v,
                format!(
                    "{path} in body must be of type integer-or-string: {:?}",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(t) = ty(schema) {
        let ok = match t {
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {:?}: {path} in body must be of type {t}: {:?}",
                    type_name(v),
                    type_name(v)
                ),
            ));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            let list: Vec<String> = e.iter().map(shown).collect();
            out.push(Cause::new(
                "FieldValueNotSupported",
                path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(v),
                    list.join(", ")
                ),
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            let excl = flag(schema, "exclusiveMinimum");
            if n < min || (excl && n == min) {
                out.push(Cause::invalid(
                    path,
                    v,
                    format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            let excl = flag(schema, "exclusiveMaximum");
            if n > max || (excl && n == max) {
                out.push(Cause::invalid(
                    path,
                    v,
                    format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                out.push(Cause::invalid(
                    path,
                    v,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                out.push(Cause::new(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (a.len() as u64) < min {
                out.push(Cause::invalid(
                    path,
                    v,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if (a.len() as u64) > max {
                out.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", a.len()),
                ));
            }
        }
        if let Some(items) = schema.get("items") {
            for (i, x) in a.iter().enumerate() {
                validate_at(items, x, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Some(m) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = r.as_str() {
                if !m.contains_key(k) {
                    out.push(Cause::required(join(path, k)));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, x) in m {
            let sub = props
                .and_then(|p| p.get(k))
                .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
            if let Some(sub) = sub {
                validate_at(sub, x, &join(path, k), out);
            }
        }
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Causes for every violation of the schema in a custom resource.
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(k) = r.as_str() {
            if !m.contains_key(k) && !matches!(k, "apiVersion" | "kind" | "metadata") {
                out.push(Cause::required(k));
            }
        }
    }
    for (k, v) in m {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)) {
            validate_at(sub, v, k, &mut out);
        }
    }
    out
}

fn preserves(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
}

/// Walks `v` along `schema`, removing (and reporting) undeclared fields.
fn prune_at(
    schema: &Value,
    v: &mut Value,
    path: &str,
    root: bool,
    out: &mut Vec<String>,
    remove: bool,
) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            let keep_all = preserves(schema) && props.is_none() && additional.is_none();
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                match sub {
                    Some(s) => {
                        if let Some(x) = m.get_mut(&k) {
                            prune_at(s, x, &join(path, &k), false, out, remove);
                        }
                    }
                    None if keep_all
                        || preserves(schema)
                        || additional.and_then(Value::as_bool) == Some(true) => {}
                    None => {
                        out.push(join(path, &k));
                        if remove {
                            m.remove(&k);
                        }
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, x) in a.iter_mut().enumerate() {
                    prune_at(items, x, &format!("{path}[{i}]"), false, out, remove);
                }
            }
        }
        _ => {}
    }
}

fn default_at(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if let Some(d) = s.get("default") {
                        match m.get(k) {
                            None | Some(Value::Null) => {
                                m.insert(k.clone(), d.clone());
                            }
                            _ => {}
                        }
                    }
                    if let Some(x) = m.get_mut(k) {
                        default_at(s, x);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for x in m.values_mut() {
                    default_at(add, x);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for x in a {
                    default_at(items, x);
                }
            }
        }
        _ => {}
    }
}

/// Prunes undeclared fields, then applies defaults (and prunes what defaults brought in).
pub fn prune_and_default(schema: &Value, obj: &mut Value) {
    let mut ignored = Vec::new();
    prune_at(schema, obj, "", true, &mut ignored, true);
    default_at(schema, obj);
    prune_at(schema, obj, "", true, &mut ignored, true);
}

/// The paths pruning would remove.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut copy = obj.clone();
    let mut out = Vec::new();
    prune_at(schema, &mut copy, "", true, &mut out, false);
    out
}

/// Whether the schema uses CEL validation rules (not enforced by keelson).
pub fn uses_cel(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(uses_cel),
        Value::Array(a) => a.iter().any(uses_cel),
        _ => false,
    }
}

/// Structural-schema problems (each node typed, unless preserve-unknown-fields/int-or-string).
pub fn check_structural(schema: &Value, path_prefix: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    fn walk(s: &Value, path: &str, out: &mut Vec<Cause>, root: bool) {
        if !root && ty(s).is_none() && !preserves(s) && !flag(s, "x-kubernetes-int-or-string") {
            out.push(Cause::required(format!("{path}.type")));
        }
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            if s.get("additionalProperties")
                .is_some_and(|a| !a.is_boolean() || a.as_bool() == Some(true))
            {
                out.push(Cause::forbidden(
                    format!("{path}.additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                ));
            }
            for (k, x) in p {
                walk(x, &format!("{path}.properties[{k}]"), out, false);
            }
        }
        if let Some(i) = s.get("items") {
            walk(i, &format!("{path}.items"), out, false);
        }
        if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
            walk(a, &format!("{path}.additionalProperties"), out, false);
        }
    }
    walk(schema, path_prefix, &mut out, true);
    if ty(schema).is_some_and(|t| t != "object") {
        out.push(Cause::invalid(
            format!("{path_prefix}.type"),
            &json!(ty(schema)),
            "must be object at the root",
        ));
    }
    out
}

/// TypeInfo over a CRD schema.
#[derive(Clone, Debug)]
pub struct CustomTypeInfo {
    schema: Value,
}

impl CustomTypeInfo {
    pub fn new(schema: Value) -> Self {
        CustomTypeInfo { schema }
    }

    fn at(&self, path: &[&str]) -> Option<&Value> {
        let mut cur = &self.schema;
        for p in path {
            // Lists are transparent.
            while let Some(items) = cur.get("items") {
                cur = items;
            }
            cur = if *p == "*" {
                cur.get("additionalProperties")?
            } else {
                cur.get("properties").and_then(|m| m.get(*p))?
            };
        }
        Some(cur)
    }
}

impl TypeInfo for CustomTypeInfo {
    fn list_type(&self, path: &[&str]) -> ListType {
        let Some(s) = self.at(path) else {
            return ListType::Atomic;
        };
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                s.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }
    fn patch_merge_key(&self, _path: &[&str]) -> Option<String> {
        None
    }
    fn patch_strategies(&self, _path: &[&str]) -> Vec<String> {
        Vec::new()
    }
    fn is_map(&self, path: &[&str]) -> bool {
        self.at(path)
            .is_some_and(|s| s.get("additionalProperties").is_some_and(Value::is_object))
    }
    fn is_atomic(&self, path: &[&str]) -> bool {
        self.at(path)
            .and_then(|s| s.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            == Some("atomic")
    }
}

/// The OpenAPI v3 component schema Kubernetes publishes for a custom resource version.
pub fn published_schema(schema: &Value, group: &str, version: &str, kind: &str) -> Value {
    let mut s = schema.clone();
    if let Some(m) = s.as_object_mut() {
        m.insert("type".into(), json!("object"));
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            p.insert("metadata".into(), json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata."}));
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "version": version, "kind": kind}]),
        );
        m.remove("x-kubernetes-validations");
    }
    let _ = Map::<String, Value>::new();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["blue", "red"], "default": "blue"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    #[test]
    fn validates_types_ranges_enums_and_required() {
        let bad = json!({"spec": {"size": "big", "color": "green", "tags": [1]}});
        let causes = validate(&schema(), &bad);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.size"), "{causes:?}");
        assert!(fields.contains(&"spec.color"), "{causes:?}");
        assert!(fields.contains(&"spec.tags[0]"), "{causes:?}");
        assert!(validate(&schema(), &json!({"spec": {}}))
            .iter()
            .any(|c| c.field == "spec.size" && c.reason == "FieldValueRequired"));
        assert!(validate(&schema(), &json!({"spec": {"size": 11}}))
            .iter()
            .any(|c| c.message.contains("less than or equal to 10")));
        assert!(validate(&schema(), &json!({"spec": {"size": 3}})).is_empty());
    }

    #[test]
    fn prunes_unknown_fields_and_defaults() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"size": 2, "bogus": 1, "free": {"any": {"thing": true}}}, "junk": 1});
        assert_eq!(
            unknown_fields(&schema(), &o),
            vec!["junk".to_string(), "spec.bogus".to_string()]
        );
        prune_and_default(&schema(), &mut o);
        assert_eq!(
            o,
            json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"size": 2, "color": "blue", "free": {"any": {"thing": true}}}})
        );
    }

    #[test]
    fn list_types_for_apply() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"], "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}});
        let t = CustomTypeInfo::new(s);
        assert_eq!(
            t.list_type(&["spec", "ports"]),
            ListType::Map(vec!["port".into()])
        );
        assert_eq!(t.list_type(&["spec", "tags"]), ListType::Set);
        assert_eq!(t.list_type(&["spec", "nope"]), ListType::Atomic);
        assert!(uses_cel(
            &json!({"properties": {"a": {"x-kubernetes-validations": []}}})
        ));
        assert!(!check_structural(
            &json!({"type": "object", "properties": {"a": {}}}),
            "schema"
        )
        .is_empty());
    }
}
