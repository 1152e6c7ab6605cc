//! Conversions between a resource's served version and its storage form. Today one pair:
//! events.k8s.io/v1 Events are stored as core/v1 Events (like Kubernetes, both APIs serve the
//! same objects).

use serde_json::{Map, Value};

use crate::registry::ResourceDef;

/// (events.k8s.io/v1 field, core/v1 field) pairs that only change name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Whether the resource's served form differs from its storage form.
pub fn converts(def: &ResourceDef) -> bool {
    is_events_v1(def)
}

fn is_events_v1(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.plural == "events"
}

fn rename(
    obj: &Value,
    from_to: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
    kind: &str,
) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let pairs: Vec<(&str, &str)> = from_to.collect();
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = pairs.iter().find(|(f, _)| f == k).map(|(_, t)| *t);
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.to_string()));
    out.insert("kind".into(), Value::String(kind.to_string()));
    Value::Object(out)
}

/// The stored object as `def` serves it.
pub fn to_served(def: &ResourceDef, obj: &Value) -> Value {
    if is_events_v1(def) {
        return rename(
            obj,
            EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)),
            "events.k8s.io/v1",
            "Event",
        );
    }
    obj.clone()
}

/// An object of `def`'s served version in its storage form.
pub fn to_storage(def: &ResourceDef, obj: Value) -> Value {
    if is_events_v1(def) {
        return rename(&obj, EVENT_FIELDS.iter().copied(), "v1", "Event");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let r = Registry::builtin();
        let v1 = r
            .get("events.k8s.io", "v1", "events")
            .expect("events.k8s.io");
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled", "reportingController": "kubelet"});
        let stored = to_storage(&v1, ev.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "pulled");
        assert_eq!(stored["reportingComponent"], "kubelet");
        assert_eq!(to_served(&v1, &stored), ev);
        let core = r.get("", "v1", "events").expect("core events");
        assert_eq!(to_served(&core, &stored), stored);
    }
}
