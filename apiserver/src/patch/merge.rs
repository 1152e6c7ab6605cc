//! JSON merge patch (RFC 7386), `application/merge-patch+json`.
//!
//! An object patch merges into the target key by key (a `null` value removes the key);
//! anything else — an array, a string, a number, `null` — replaces the target whole. What the
//! Kubernetes apiserver does around it (a `null` or unparsable body is a 400 "Invalid JSON
//! Patch", a result that is not an object fails to decode into the resource) is the caller's
//! business.

use serde_json::{Map, Value};

/// Applies `patch` to `target` as RFC 7386 describes (`MergePatch(Target, Patch)`).
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(changes) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    for (key, change) in changes {
        if change.is_null() {
            // `retain` keeps the other keys' order whether or not serde_json preserves it.
            result.retain(|k, _| k != key);
        } else {
            let merged = match result.get(key) {
                Some(current) => merge_patch(current, change),
                None => merge_patch(&Value::Null, change),
            };
            result.insert(key.clone(), merged);
        }
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The examples of RFC 7386, Appendix A, as (original, patch, result).
    #[test]
    fn rfc_7386_appendix_a() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, expected) in cases {
            assert_eq!(
                merge_patch(&original, &patch),
                expected,
                "{original} + {patch}"
            );
        }
    }

    #[test]
    fn rfc_7386_section_3_example() {
        let original = json!({
            "title": "Goodbye!",
            "author": { "givenName": "John", "familyName": "Doe" },
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": { "familyName": null },
            "tags": ["example"]
        });
        assert_eq!(
            merge_patch(&original, &patch),
            json!({
                "title": "Hello!",
                "author": { "givenName": "John" },
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }

    #[test]
    fn kubernetes_style_label_and_replica_changes() {
        let deployment = json!({
            "metadata": { "name": "web", "labels": { "app": "web", "tier": "front" } },
            "spec": { "replicas": 1, "template": { "spec": { "containers": [{ "name": "a" }] } } }
        });
        let patch = json!({
            "metadata": { "labels": { "tier": null, "team": "x" } },
            "spec": { "replicas": 3, "template": { "spec": { "containers": [{ "name": "b" }] } } }
        });
        assert_eq!(
            merge_patch(&deployment, &patch),
            json!({
                "metadata": { "name": "web", "labels": { "app": "web", "team": "x" } },
                "spec": { "replicas": 3, "template": { "spec": { "containers": [{ "name": "b" }] } } }
            })
        );
        // An empty patch changes nothing; the inputs are left alone.
        assert_eq!(merge_patch(&deployment, &json!({})), deployment);
    }
}
