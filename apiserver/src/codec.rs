//! Request bodies in (JSON, YAML, Kubernetes protobuf) and content negotiation out (JSON, YAML,
//! Table, PartialObjectMetadata).

use serde_json::Value;

use crate::error::{ApiError, Result};

/// Kubernetes' limit on request bodies (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";
pub const APPLY_PATCH_JSON: &str = "application/apply-patch+json";

/// The media type of a Content-Type header, lower-cased, without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or(JSON)
        .split(';')
        .next()
        .unwrap_or(JSON)
        .trim()
        .to_ascii_lowercase()
}

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the YAML
/// parser takes time quadratic in the depth (100,000 levels, a 200 KB body, took 19 s).
pub const MAX_YAML_FLOW_DEPTH: usize = 256;

/// The deepest nesting of flow collections in `text`, brackets in quoted scalars and
/// comments aside (a bracket in a plain scalar counts, which only ever overestimates).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '#' if prev.is_whitespace() => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                prev = '\n';
                continue;
            }
            '"' => {
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if !prev.is_alphanumeric() => {
                while let Some(n) = chars.next() {
                    if n == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    max
}

/// Parses a YAML document into JSON, refusing what JSON cannot represent.
pub fn yaml_to_json(body: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    if flow_depth(text) > MAX_YAML_FLOW_DEPTH {
        return Err(ApiError::bad_request(format!(
            "error converting YAML to JSON: flow collections nested deeper than {MAX_YAML_FLOW_DEPTH} levels"
        )));
    }
    let y: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    yaml_value(y)
}

fn yaml_value(y: serde_yaml::Value) -> Result<Value> {
    use serde_yaml::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(f) = n.as_f64() {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "error converting YAML to JSON: invalid number {f}"
                        ))
                    })?
            } else {
                Value::Null
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_value).collect::<Result<_>>()?),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "error converting YAML to JSON: unsupported map key {other:?}"
                        )))
                    }
                };
                out.insert(key, yaml_value(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_value(t.value)?,
    })
}

/// Decodes an object body by its Content-Type.
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let mt = media_type(content_type);
    let v = match mt.as_str() {
        JSON | "" => parse_json(body)?,
        YAML | "application/x-yaml" | "text/yaml" => yaml_to_json(body)?,
        PROTOBUF => crate::protobuf::decode_body(body)?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: application/json, application/yaml, \
                 application/vnd.kubernetes.protobuf (got {other})"
            )))
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object".to_string(),
        ));
    }
    Ok(v)
}

pub fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding request body: invalid character or structure in JSON: {e}"
        ))
    })
}

pub fn too_large() -> ApiError {
    ApiError::TooLarge("Request entity too large: limit is 3145728".into())
}

/// What the client asked the response to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// meta.k8s.io/v1 Table.
    Table,
    /// meta.k8s.io/v1 PartialObjectMetadata(List).
    Metadata,
}

/// Picks the response format from an Accept header (first acceptable entry wins).
pub fn negotiate(accept: Option<&str>) -> Result<Output> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut g = None;
        let mut v = None;
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(val.trim().to_string()),
                    "g" => g = Some(val.trim().to_string()),
                    "v" => v = Some(val.trim().to_string()),
                    _ => {}
                }
            }
        }
        let json_like = matches!(mt.as_str(), "application/json" | "*/*" | "application/*");
        let yaml = mt == YAML;
        if !(json_like || yaml) {
            continue;
        }
        match as_.as_deref() {
            None => return Ok(if yaml { Output::Yaml } else { Output::Json }),
            Some(kind) => {
                if g.as_deref() != Some("meta.k8s.io") || v.as_deref() != Some("v1") {
                    continue;
                }
                match kind {
                    "Table" => return Ok(Output::Table),
                    "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                        return Ok(Output::Metadata)
                    }
                    _ => continue,
                }
            }
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/yaml \
         (and meta.k8s.io/v1 Table and PartialObjectMetadata forms); got {accept}"
    )))
}

/// Serializes a response value in the negotiated format.
pub fn encode(out: Output, v: &Value) -> (Vec<u8>, &'static str) {
    match out {
        Output::Yaml => match serde_yaml::to_string(v) {
            Ok(s) => (s.into_bytes(), YAML),
            Err(_) => (serde_json::to_vec(v).unwrap_or_default(), JSON),
        },
        _ => (serde_json::to_vec(v).unwrap_or_default(), JSON),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_depth_skips_quotes_and_comments() {
        assert_eq!(flow_depth("a: [1, [2, {b: [3]}]]"), 4);
        assert_eq!(flow_depth("a: \"[[[[\" # [[[[\nb: '[[it''s]]'\nc: [x]"), 1);
        assert_eq!(flow_depth("run: |\n  [ -f x ] && echo ok\n"), 1);
        let deep = format!("a: {}{}", "[".repeat(257), "]".repeat(257));
        assert!(yaml_to_json(deep.as_bytes()).is_err());
        let ok = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(yaml_to_json(ok.as_bytes()).is_ok());
        assert!(yaml_to_json(b"a: [[1]]").is_ok());
    }

    #[test]
    fn negotiation_follows_kubectl_accept_headers() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl_get)).ok(), Some(Output::Table));
        assert_eq!(negotiate(None).ok(), Some(Output::Json));
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .ok(),
            Some(Output::Json)
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .ok(),
            Some(Output::Metadata)
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ))
            .ok(),
            Some(Output::Json)
        );
        assert!(matches!(
            negotiate(Some("application/vnd.kubernetes.protobuf")),
            Err(ApiError::NotAcceptable(_))
        ));
        assert_eq!(negotiate(Some("application/yaml")).ok(), Some(Output::Yaml));
    }

    #[test]
    fn bodies_decode_by_content_type() {
        let y = decode_object(
            Some("application/yaml"),
            b"kind: Pod\nmetadata:\n  name: a\n  labels: {x: '1'}\n",
        )
        .expect("yaml");
        assert_eq!(
            y,
            json!({"kind": "Pod", "metadata": {"name": "a", "labels": {"x": "1"}}})
        );
        assert!(matches!(
            decode_object(None, b"{nope"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            decode_object(Some("application/yaml"), b"a: [1"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            decode_object(None, b"[1]"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            decode_object(Some("text/plain"), b"{}"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            decode_object(None, &big),
            Err(ApiError::TooLarge(_))
        ));
    }
}
