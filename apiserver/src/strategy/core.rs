//! core/v1 strategies other than pods.

use base64::Engine as _;
use serde_json::{json, Value};

use super::{default_at, Strategy};
use crate::error::Cause;
use crate::validation::{self, NameRule};

pub struct Namespaces;

impl Strategy for Namespaces {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn default(&self, obj: &mut Value) {
        // Kubernetes labels every namespace with its own name (immutable).
        if let Some(name) = crate::meta::name(obj).map(str::to_string) {
            let md = crate::meta::metadata_mut(obj);
            let labels = md.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        if let Some(m) = obj.as_object_mut() {
            let spec = m.entry("spec").or_insert_with(|| json!({}));
            default_at(spec, &["finalizers"], json!(["kubernetes"]));
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Active"}));
        }
    }
}

pub struct Services;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const AFFINITIES: &[&str] = &["None", "ClientIP"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];

impl Strategy for Services {
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        default_at(spec, &["type"], json!("ClusterIP"));
        default_at(spec, &["sessionAffinity"], json!("None"));
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if ty != "ExternalName" {
            default_at(spec, &["internalTrafficPolicy"], json!("Cluster"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            default_at(spec, &["externalTrafficPolicy"], json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            default_at(spec, &["allocateLoadBalancerNodePorts"], json!(true));
        }
        if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
            default_at(
                spec,
                &["sessionAffinityConfig"],
                json!({"clientIP": {"timeoutSeconds": 10800}}),
            );
        }
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports {
                default_at(p, &["protocol"], json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default_at(p, &["targetPort"], port);
                }
            }
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        drop_type_dependent_fields(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if !SERVICE_TYPES.contains(&ty) {
            causes.push(Cause::not_supported("spec.type", &json!(ty), SERVICE_TYPES));
        }
        if let Some(a) = spec.get("sessionAffinity") {
            if !a.as_str().is_some_and(|s| AFFINITIES.contains(&s)) {
                causes.push(Cause::not_supported("spec.sessionAffinity", a, AFFINITIES));
            }
        }
        for f in ["externalTrafficPolicy", "internalTrafficPolicy"] {
            if let Some(v) = spec.get(f) {
                if !v.as_str().is_some_and(|s| TRAFFIC_POLICIES.contains(&s)) {
                    causes.push(Cause::not_supported(
                        format!("spec.{f}"),
                        v,
                        TRAFFIC_POLICIES,
                    ));
                }
            }
        }
        let ports = spec
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ports.is_empty()
            && ty != "ExternalName"
            && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
        {
            causes.push(Cause::required("spec.ports"));
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            let f = format!("spec.ports[{i}]");
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                causes.push(Cause::required(format!("{f}.name")));
            }
            if !name.is_empty() {
                for e in validation::dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{f}.name"), &json!(name), e));
                }
                if !names.insert(name.to_string()) {
                    causes.push(Cause::duplicate(format!("{f}.name"), &json!(name)));
                }
            }
            match p.get("port").and_then(Value::as_i64) {
                Some(n) if (1..=65535).contains(&n) => {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    if !keys.insert((n, proto.to_string())) {
                        causes.push(Cause::duplicate(
                            f.clone(),
                            &json!({"port": n, "protocol": proto}),
                        ));
                    }
                }
                Some(n) => causes.push(Cause::invalid(
                    format!("{f}.port"),
                    &json!(n),
                    "must be between 1 and 65535, inclusive",
                )),
                None => causes.push(Cause::required(format!("{f}.port"))),
            }
            if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                if np != 0 && ty == "ClusterIP" {
                    causes.push(Cause::forbidden(
                        format!("{f}.nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
            }
            if let Some(tp) = p.get("targetPort") {
                match tp {
                    Value::Number(n) if n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {}
                    Value::String(s)
                        if !s.is_empty()
                            && validation::dns1123_label(s).is_empty()
                            && s.len() <= 15 => {}
                    other => causes.push(Cause::invalid(
                        format!("{f}.targetPort"),
                        other,
                        "must be between 1 and 65535, inclusive, or an IANA_SVC_NAME",
                    )),
                }
            }
        }
        if ty == "ExternalName" {
            match spec.get("externalName").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => {
                    for e in validation::dns1123_subdomain(n.trim_end_matches('.')) {
                        causes.push(Cause::invalid("spec.externalName", &json!(n), e));
                    }
                }
                _ => causes.push(Cause::required("spec.externalName")),
            }
        }
        if let Some(sel) = spec.get("selector").and_then(Value::as_object) {
            for (k, v) in sel {
                for e in validation::qualified_name(k) {
                    causes.push(Cause::invalid("spec.selector", &json!(k), e));
                }
                if let Some(s) = v.as_str() {
                    for e in validation::label_value(s) {
                        causes.push(Cause::invalid("spec.selector", v, e));
                    }
                }
            }
        }
        if let Some(old) = old {
            let old_ip = old.get("spec").and_then(|s| s.get("clusterIP")).cloned();
            let new_ip = spec.get("clusterIP").cloned();
            let old_ty = old
                .get("spec")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str);
            if old_ty != Some("ExternalName")
                && ty != "ExternalName"
                && old_ip.is_some()
                && new_ip.is_some()
                && old_ip != new_ip
            {
                causes.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    new_ip.as_ref().unwrap_or(&Value::Null),
                    "may not change once set",
                ));
            }
        }
        causes
    }
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// Kubernetes' `dropTypeDependentFields`: on an update that changes a Service's type, the
/// fields the old type needed and the new one does not are dropped if the update left them as
/// they were (node ports, `healthCheckNodePort`, `allocateLoadBalancerNodePorts`,
/// `loadBalancerClass`, `externalTrafficPolicy`), and a Service that is no longer a
/// LoadBalancer loses its load-balancer status. A value the update changed is kept, and
/// validation judges it.
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let (old_ty, new_ty) = (service_type(old).to_string(), service_type(new).to_string());
    let node_ports = |svc: &Value| -> Vec<Value> {
        svc.pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| p.get("nodePort").cloned().unwrap_or(json!(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let needs_node_ports = |ty: &str| ty == "NodePort" || ty == "LoadBalancer";
    let external = |svc: &Value, ty: &str| {
        needs_node_ports(ty)
            || svc
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
    };
    let needs_hc = |svc: &Value, ty: &str| {
        ty == "LoadBalancer"
            && svc
                .pointer("/spec/externalTrafficPolicy")
                .and_then(Value::as_str)
                == Some("Local")
    };
    let same = |f: &str| old.pointer(&format!("/spec/{f}")) == new.pointer(&format!("/spec/{f}"));
    let drop_ports = needs_node_ports(&old_ty)
        && !needs_node_ports(&new_ty)
        && node_ports(old) == node_ports(new);
    let drop_hc = needs_hc(old, &old_ty) && !needs_hc(new, &new_ty) && same("healthCheckNodePort");
    let was_lb = old_ty == "LoadBalancer" && new_ty != "LoadBalancer";
    let drop_allocate = was_lb
        && old.pointer("/spec/allocateLoadBalancerNodePorts").is_some()
        && same("allocateLoadBalancerNodePorts");
    let drop_class = was_lb && same("loadBalancerClass");
    let drop_etp =
        external(old, &old_ty) && !external(new, &new_ty) && same("externalTrafficPolicy");
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        if drop_ports {
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("nodePort");
                }
            }
        }
        for (drop, field) in [
            (drop_hc, "healthCheckNodePort"),
            (drop_allocate, "allocateLoadBalancerNodePorts"),
            (drop_class, "loadBalancerClass"),
            (drop_etp, "externalTrafficPolicy"),
        ] {
            if drop {
                spec.remove(field);
            }
        }
    }
    if new_ty != "LoadBalancer" {
        if let Some(m) = new.as_object_mut() {
            let status = m.entry("status").or_insert_with(|| json!({}));
            if let Some(st) = status.as_object_mut() {
                st.insert("loadBalancer".into(), json!({}));
            }
        }
    }
}

pub struct ConfigMaps;

/// Keys of ConfigMap and Secret data: `[-._a-zA-Z0-9]+`, ≤ 253, not `.` or `..`.
fn validate_data_key(k: &str, field: &str, causes: &mut Vec<Cause>) {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.');
    if !ok {
        causes.push(Cause::invalid(
            field,
            &json!(k),
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. \
             'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')",
        ));
    }
}

const CONFIG_MAX_BYTES: usize = 1024 * 1024;

impl Strategy for ConfigMaps {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut total = 0usize;
        let mut seen = std::collections::HashSet::new();
        for field in ["data", "binaryData"] {
            if let Some(m) = obj.get(field).and_then(Value::as_object) {
                for (k, v) in m {
                    validate_data_key(k, field, &mut causes);
                    if !seen.insert(k.clone()) {
                        causes.push(Cause::duplicate(field, &json!(k)));
                    }
                    total += k.len() + v.as_str().map_or(0, str::len);
                }
            }
        }
        if total > CONFIG_MAX_BYTES {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "",
                format!("Too long: may not be more than {CONFIG_MAX_BYTES} bytes"),
            ));
        }
        immutable_check(obj, old, &["data", "binaryData"], &mut causes);
        causes
    }
}

/// `immutable: true` objects may not change their data, and may not become mutable again.
fn immutable_check(obj: &Value, old: Option<&Value>, fields: &[&str], causes: &mut Vec<Cause>) {
    let Some(old) = old else { return };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(Cause::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if obj.get(*f) != old.get(*f) {
            causes.push(Cause::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

pub struct Secrets;

impl Strategy for Secrets {
    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.entry("type").or_insert_with(|| json!("Opaque"));
            // stringData is write-only: merged into data (base64) and dropped.
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = m.entry("data").or_insert_with(|| json!({}));
                if let Some(d) = data.as_object_mut() {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        d.insert(
                            k,
                            json!(base64::engine::general_purpose::STANDARD.encode(s)),
                        );
                    }
                }
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut total = 0usize;
        if let Some(m) = obj.get("data").and_then(Value::as_object) {
            for (k, v) in m {
                validate_data_key(k, "data", &mut causes);
                match v
                    .as_str()
                    .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
                {
                    Some(Ok(bytes)) => total += bytes.len(),
                    _ => causes.push(Cause::invalid(
                        format!("data[{k}]"),
                        v,
                        "illegal base64 data",
                    )),
                }
            }
        }
        if total > CONFIG_MAX_BYTES {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "data",
                format!("Too long: may not be more than {CONFIG_MAX_BYTES} bytes"),
            ));
        }
        if let Some(old) = old {
            if old.get("type") != obj.get("type") {
                causes.push(Cause::invalid(
                    "type",
                    obj.get("type").unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        immutable_check(obj, old, &["data"], &mut causes);
        causes
    }
}

pub struct Nodes;

impl Strategy for Nodes {}

pub struct Pvcs;

impl Strategy for Pvcs {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_at(spec, &["volumeMode"], json!("Filesystem"));
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Pending"}));
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = obj.get("spec");
        if spec
            .and_then(|s| s.get("accessModes"))
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            causes.push(Cause::required("spec.accessModes"));
        }
        if spec
            .and_then(|s| s.get("resources"))
            .and_then(|r| r.get("requests"))
            .and_then(|r| r.get("storage"))
            .is_none()
        {
            causes.push(Cause::required("spec.resources[storage]"));
        }
        causes
    }
}

pub struct Pvs;

impl Strategy for Pvs {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_at(spec, &["persistentVolumeReclaimPolicy"], json!("Retain"));
            default_at(spec, &["volumeMode"], json!("Filesystem"));
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Pending"}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_change_drops_what_only_the_old_type_needed_unless_the_update_changed_it() {
        let old = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}],
            "allocateLoadBalancerNodePorts": true, "loadBalancerClass": "x/y",
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        Services.prepare_update(&mut new, &old);
        let spec = &new["spec"];
        assert!(spec["ports"][0].get("nodePort").is_none(), "{new}");
        for f in [
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "externalTrafficPolicy",
            "healthCheckNodePort",
        ] {
            assert!(spec.get(f).is_none(), "{f} kept: {new}");
        }
        assert_eq!(new["status"]["loadBalancer"], json!({}));
        assert!(Services.validate(&new, Some(&old)).is_empty());
        // A node port the update set on purpose stays, and validation refuses it.
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        Services.prepare_update(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30081);
        assert!(!Services.validate(&changed, Some(&old)).is_empty());
        // No type change: nothing dropped.
        let mut same = old.clone();
        Services.prepare_update(&mut same, &old);
        assert_eq!(same, old);
        // NodePort → LoadBalancer keeps the node ports.
        let np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut lb = np.clone();
        lb["spec"]["type"] = json!("LoadBalancer");
        Services.prepare_update(&mut lb, &np);
        assert_eq!(lb["spec"]["ports"][0]["nodePort"], 30080);
    }

    #[test]
    fn services_default_and_validate() {
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
        Services.default(&mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert!(Services.validate(&s, None).is_empty());
        let bad = json!({"spec": {"type": "Weird", "ports": [{"port": 0}, {"port": 80}]}});
        let fields: Vec<String> = Services
            .validate(&bad, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert!(fields.contains(&"spec.type".to_string()), "{fields:?}");
        assert!(
            fields.contains(&"spec.ports[0].port".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.ports[0].name".to_string()),
            "{fields:?}"
        );
    }

    #[test]
    fn secrets_fold_string_data_and_check_base64() {
        let mut s = json!({"stringData": {"password": "hunter2"}});
        Secrets.default(&mut s);
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["data"]["password"], "aHVudGVyMg==");
        assert!(s.get("stringData").is_none());
        assert!(Secrets.validate(&s, None).is_empty());
        let bad = json!({"data": {"k": "%%%"}});
        assert_eq!(Secrets.validate(&bad, None)[0].field, "data[k]");
    }

    #[test]
    fn namespaces_label_themselves() {
        let mut n = json!({"metadata": {"name": "team-a"}});
        Namespaces.default(&mut n);
        assert_eq!(
            n["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn configmap_keys() {
        let bad = json!({"data": {"bad key": "x", "ok.key": "y"}});
        assert_eq!(ConfigMaps.validate(&bad, None).len(), 1);
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let new = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(ConfigMaps.validate(&new, Some(&old))[0].field, "data");
    }
}
