//! CustomResourceDefinitions and EndpointSlices.

use serde_json::{json, Value};

use super::{default_at, get, Strategy};
use crate::error::Cause;
use crate::validation;

pub struct Crds;

impl Strategy for Crds {
    fn has_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        let kind = get(spec, &["names", "kind"])
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(names) = spec.get_mut("names") {
            if let Some(k) = &kind {
                default_at(names, &["singular"], json!(k.to_ascii_lowercase()));
                default_at(names, &["listKind"], json!(format!("{k}List")));
            }
        }
        default_at(spec, &["conversion"], json!({"strategy": "None"}));
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
        let plural = get(&spec, &["names", "plural"])
            .and_then(Value::as_str)
            .unwrap_or("");
        if group.is_empty() {
            causes.push(Cause::required("spec.group"));
        } else {
            for e in validation::dns1123_subdomain(group) {
                causes.push(Cause::invalid("spec.group", &json!(group), e));
            }
            if !group.contains('.') {
                causes.push(Cause::invalid(
                    "spec.group",
                    &json!(group),
                    "should be a domain with at least one dot",
                ));
            }
        }
        if plural.is_empty() {
            causes.push(Cause::required("spec.names.plural"));
        } else {
            for e in validation::dns1035_label(plural) {
                causes.push(Cause::invalid("spec.names.plural", &json!(plural), e));
            }
        }
        let name = crate::meta::name(obj).unwrap_or("");
        if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        match get(&spec, &["names", "kind"]).and_then(Value::as_str) {
            None | Some("") => causes.push(Cause::required("spec.names.kind")),
            Some(k) => {
                if !k.chars().next().is_some_and(char::is_alphabetic)
                    || !k.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    causes.push(Cause::invalid(
                        "spec.names.kind",
                        &json!(k),
                        "must be a valid kind: start with a letter, then letters and digits",
                    ));
                }
            }
        }
        match spec.get("scope").and_then(Value::as_str) {
            Some("Namespaced" | "Cluster") => {}
            Some(s) => causes.push(Cause::not_supported(
                "spec.scope",
                &json!(s),
                &["Cluster", "Namespaced"],
            )),
            None => causes.push(Cause::required("spec.scope")),
        }
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if versions.is_empty() {
            causes.push(Cause::required("spec.versions"));
        }
        let mut storage = 0;
        let mut seen = std::collections::HashSet::new();
        for (i, v) in versions.iter().enumerate() {
            let f = format!("spec.versions[{i}]");
            match v.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => {
                    for e in validation::dns1035_label(n) {
                        causes.push(Cause::invalid(format!("{f}.name"), &json!(n), e));
                    }
                    if !seen.insert(n.to_string()) {
                        causes.push(Cause::duplicate(format!("{f}.name"), &json!(n)));
                    }
                }
                _ => causes.push(Cause::required(format!("{f}.name"))),
            }
            if v.get("served").and_then(Value::as_bool).is_none() {
                causes.push(Cause::required(format!("{f}.served")));
            }
            if v.get("storage").and_then(Value::as_bool) == Some(true) {
                storage += 1;
            }
            if get(v, &["schema", "openAPIV3Schema"]).is_none() {
                causes.push(Cause::required(format!("{f}.schema.openAPIV3Schema")));
            }
        }
        if !versions.is_empty() && storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(storage),
                "must have exactly one version marked as storage version",
            ));
        }
        if let Some(old) = old {
            for f in ["group", "scope"] {
                if spec.get(f) != old.get("spec").and_then(|s| s.get(f)) {
                    causes.push(Cause::invalid(
                        format!("spec.{f}"),
                        spec.get(f).unwrap_or(&Value::Null),
                        "field is immutable",
                    ));
                }
            }
        }
        causes
    }
}

pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        match obj.get("addressType").and_then(Value::as_str) {
            Some("IPv4" | "IPv6" | "FQDN") => {}
            Some(t) => causes.push(Cause::not_supported(
                "addressType",
                &json!(t),
                &["IPv4", "IPv6", "FQDN"],
            )),
            None => causes.push(Cause::required("addressType")),
        }
        causes
    }
}
