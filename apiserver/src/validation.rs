//! Kubernetes' generic validation rules: object names, label keys and values, annotations.
//! (k8s.io/apimachinery/pkg/util/validation and pkg/api/validation/objectmeta.go.)

use serde_json::Value;

use crate::error::Cause;

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Total size of all annotations of one object.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Errors for a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
        && b.first().is_some_and(|&c| is_alnum_lower(c))
        && b.last().is_some_and(|&c| is_alnum_lower(c));
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

/// Errors for a DNS-1123 subdomain (labels joined by dots, ≤ 253).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
                && b.first().is_some_and(|&c| is_alnum_lower(c))
                && b.last().is_some_and(|&c| is_alnum_lower(c))
        });
    if !ok {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_string(),
        );
    }
    errs
}

/// Errors for a DNS-1035 label (must start with a letter), used by services.
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
        && b.first().is_some_and(|c| c.is_ascii_lowercase())
        && b.last().is_some_and(|&c| is_alnum_lower(c));
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. \
             'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

/// Errors for names that only need to be a valid path segment (RBAC objects, events).
pub fn path_segment_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s == "." || s == ".." {
        errs.push(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// How a resource's names are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

impl NameRule {
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => dns1123_subdomain(name),
            NameRule::Label => dns1123_label(name),
            NameRule::Dns1035 => dns1035_label(name),
            NameRule::PathSegment => path_segment_name(name),
        }
    }
}

/// A qualified name (`prefix/name` where prefix is a DNS subdomain and name ≤ 63 of
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`): label and annotation keys.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            for e in dns1123_subdomain(p) {
                errs.push(format!("prefix part {e}"));
            }
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        let b = name.as_bytes();
        let ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
            && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.last().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            errs.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
                 or '123-abc', regex used for validation is \
                 '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                    .to_string(),
            );
        }
    }
    errs
}

/// A label value: empty, or ≤ 63 of the qualified-name alphabet.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        return errs;
    }
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = s.as_bytes();
    let ok = b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        errs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
             or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

/// Validates `metadata.labels` at `path` (e.g. `metadata.labels`).
pub fn labels(v: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(v) = v else { return };
    let Some(map) = v.as_object() else {
        return;
    };
    for (k, val) in map {
        for e in qualified_name(k) {
            causes.push(Cause::invalid(path, &Value::String(k.clone()), e));
        }
        match val.as_str() {
            Some(s) => {
                for e in label_value(s) {
                    causes.push(Cause::invalid(path, val, e));
                }
            }
            None => causes.push(Cause::invalid(
                format!("{path}.{k}"),
                val,
                "must be a string",
            )),
        }
    }
}

/// Validates `metadata.annotations` at `path`.
pub fn annotations(v: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = v.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, val) in map {
        for e in qualified_name(&k.to_ascii_lowercase()) {
            causes.push(Cause::invalid(path, &Value::String(k.clone()), e));
        }
        total += k.len() + val.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        causes.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("web.example-1").is_empty());
        assert!(!dns1123_subdomain("Web").is_empty());
        assert!(!dns1123_subdomain("-web").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain(&"a".repeat(254)).is_empty());
        assert!(dns1123_label("kube-system").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(dns1035_label("svc1").is_empty());
        assert!(!dns1035_label("1svc").is_empty());
        assert!(path_segment_name("system:node:a").is_empty());
        assert!(!path_segment_name("a/b").is_empty());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("app").is_empty());
        assert!(!qualified_name("/app").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(!qualified_name("-app").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3-x").is_empty());
        assert!(!label_value("bad value").is_empty());
        let mut causes = Vec::new();
        labels(
            Some(&json!({"ok": "yes", "bad key": "x", "k": 3})),
            "metadata.labels",
            &mut causes,
        );
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert!(causes
            .iter()
            .all(|c| c.field.starts_with("metadata.labels")));
    }
}
