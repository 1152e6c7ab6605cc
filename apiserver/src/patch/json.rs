//! JSON patch (RFC 6902), `application/json-patch+json`.
//!
//! The patch is a list of operations (`add`, `remove`, `replace`, `move`, `copy`, `test`)
//! applied in order to a copy of the target; the first one that fails aborts the whole patch.
//! Errors are what the Kubernetes apiserver (which uses `gopkg.in/evanphx/json-patch.v4`)
//! answers:
//!
//! - a body that is not a list of operation objects: 400 `BadRequest`, with Go's decoding
//!   message (`json: cannot unmarshal object into Go value of type jsonpatch.Patch`);
//! - more than [`MAX_OPERATIONS`] operations: 413 `RequestEntityTooLarge`;
//! - an operation that cannot be applied (a missing path, an index out of range, a failed
//!   `test`, an unknown `op`): 422 `Invalid` with the generic message "the server rejected our
//!   request due to an error in our request" and json-patch's text as the only cause
//!   ([`ApiError::PatchNotApplicable`]). A failed `test` is a 422 too, not a 409.
//!
//! Like json-patch v4 (and so Kubernetes), `replace` of a missing object member adds it, and a
//! missing `value` member counts as `null`. Unlike it, array indices follow RFC 6901 strictly
//! (`0` or a number without leading zeros, `-` only to append), `copy` from a missing location
//! fails instead of copying `null`, and the empty pointer `""` names the whole document as
//! the RFC says.
//!
//! Growth is bounded: `add` and `replace` values come from the request body, which the caller
//! limits, `move` does not grow the document, and the values `copy` duplicates may add up to
//! [`MAX_COPY_BYTES`] of serialized JSON per patch (Kubernetes' `JSONPatchMaxCopyBytes`), so a
//! result is at most the target plus the patch plus 3 MiB.

use std::io;

use serde_json::Value;

use crate::error::{ApiError, Result};

/// The most operations one patch may hold (Kubernetes' `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// The most serialized bytes the `copy` operations of one patch may duplicate, in total.
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies the JSON patch `patch` to `target`, returning the patched document.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value> {
    let ops: &[Value] = match patch {
        Value::Array(ops) => ops,
        // Go decodes `null` into an empty patch.
        Value::Null => &[],
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_kind(other)
            )))
        }
    };
    if let Some(bad) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_kind(bad)
        )));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ApiError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    let mut copied = 0usize;
    for op in ops {
        apply_one(&mut doc, op, &mut copied).map_err(ApiError::PatchNotApplicable)?;
    }
    Ok(doc)
}

/// How Go's `encoding/json` names a JSON value's type in an `UnmarshalTypeError`.
pub(super) fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A string member of an operation, if present and a string.
fn member<'a>(op: &'a Value, name: &str) -> Option<&'a str> {
    op.get(name).and_then(Value::as_str)
}

/// Applies one operation; the error is json-patch's message.
fn apply_one(doc: &mut Value, op: &Value, copied: &mut usize) -> Result<(), String> {
    let kind = member(op, "op").unwrap_or("unknown");
    let value = || op.get("value").cloned().unwrap_or(Value::Null);
    match kind {
        "add" => {
            let path = path_of(op, "add")?;
            add(doc, path, value())
        }
        "remove" => {
            let path = path_of(op, "remove")?;
            let (parent, key) = locate(doc, path).ok_or_else(|| {
                format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
            })?;
            remove(parent, &key)
                .map(drop)
                .map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "replace" => {
            let path = path_of(op, "replace")?;
            replace(doc, path, value())
        }
        "move" => {
            let from = from_of(op, "move")?;
            let (parent, key) = locate(doc, from).ok_or_else(|| {
                format!("move operation does not apply: doc is missing from path: {from}: missing value")
            })?;
            let moved = remove(parent, &key)
                .map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let path = path_of(op, "move")?;
            insert(doc, path, moved, "move", "destination path")
        }
        "copy" => {
            let from = from_of(op, "copy")?;
            let source = match locate(doc, from) {
                None if from.is_empty() => Some(doc.clone()),
                None => None,
                Some((parent, key)) => Some(
                    get(parent, &key)
                        .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                        .clone(),
                ),
            };
            let source = source.ok_or_else(|| {
                format!("copy operation does not apply: doc is missing from path: {from}: missing value")
            })?;
            *copied = copied.saturating_add(serialized_len(&source));
            if *copied > MAX_COPY_BYTES {
                return Err(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is \
                     {copied}, exceeding the limit {MAX_COPY_BYTES}"
                ));
            }
            let path = path_of(op, "copy")?;
            insert(doc, path, source, "copy", "destination path")
        }
        "test" => {
            let path = path_of(op, "test")?;
            let expected = value();
            let actual = if path.is_empty() {
                &*doc
            } else {
                let (parent, key) = locate(doc, path).ok_or_else(|| {
                    format!("test operation does not apply: is missing path: {path}: missing value")
                })?;
                get(parent, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?
            };
            if *actual == expected {
                Ok(())
            } else {
                Err(format!("testing value {path} failed: test failed"))
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

fn path_of<'a>(op: &'a Value, kind: &str) -> Result<&'a str, String> {
    member(op, "path")
        .ok_or_else(|| format!("{kind} operation failed to decode path: missing value"))
}

fn from_of<'a>(op: &'a Value, kind: &str) -> Result<&'a str, String> {
    member(op, "from")
        .ok_or_else(|| format!("{kind} operation failed to decode from: missing value"))
}

/// `add`: sets an object member or inserts into an array (`-` appends).
fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    insert(doc, path, value, "add", "path")
}

/// Adds `value` at `path` (the destination half of `add`, `move` and `copy`).
fn insert(doc: &mut Value, path: &str, value: Value, kind: &str, what: &str) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let missing = || {
        if kind == "add" {
            format!(
                "{kind} operation does not apply: doc is missing {what}: \"{path}\": missing value"
            )
        } else {
            format!("{kind} operation does not apply: doc is missing {what}: {path}: missing value")
        }
    };
    let (parent, key) = locate(doc, path).ok_or_else(missing)?;
    let context = |e: String| match kind {
        "add" => format!("error in add for path: '{path}': {e}"),
        "move" => format!("error in move for path: '{path}': {e}"),
        _ => format!("error while adding value during copy: {e}"),
    };
    match parent {
        Value::Object(fields) => {
            fields.insert(key, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if key == "-" {
                items.len()
            } else {
                let index = parse_index(&key).map_err(|e| {
                    context(format!("value was not a proper array index: '{key}': {e}"))
                })?;
                if index > items.len() {
                    return Err(context(invalid_index(&key)));
                }
                index
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// `replace`: the target must exist, except that (as in json-patch v4) a missing object
/// member is simply set.
fn replace(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = locate(doc, path).ok_or_else(|| {
        format!("replace operation does not apply: doc is missing path: {path}: missing value")
    })?;
    let missing_key =
        || format!("replace operation does not apply: doc is missing key: {path}: missing value");
    match parent {
        Value::Object(fields) => {
            fields.insert(key, value);
            Ok(())
        }
        Value::Array(items) => {
            let slot = parse_index(&key)
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(missing_key)?;
            *slot = value;
            Ok(())
        }
        _ => Err(missing_key()),
    }
}

/// Removes and returns the member or element `key` of `parent`.
fn remove(parent: &mut Value, key: &str) -> Result<Value, String> {
    match parent {
        Value::Object(fields) => {
            let value = fields
                .get_mut(key)
                .map(std::mem::take)
                .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value"))?;
            // `retain` keeps the other members' order whether or not serde_json preserves it.
            fields.retain(|k, _| k != key);
            Ok(value)
        }
        Value::Array(items) => {
            let index = parse_index(key)?;
            if index >= items.len() {
                return Err(invalid_index(key));
            }
            Ok(items.remove(index))
        }
        _ => Err(format!(
            "Unable to remove nonexistent key: {key}: missing value"
        )),
    }
}

/// The member or element `key` of `parent`.
fn get<'a>(parent: &'a Value, key: &str) -> Result<&'a Value, String> {
    match parent {
        Value::Object(fields) => fields
            .get(key)
            .ok_or_else(|| format!("Unable to get nonexistent key: {key}: missing value")),
        Value::Array(items) => {
            let index = parse_index(key)?;
            items.get(index).ok_or_else(|| invalid_index(key))
        }
        _ => Err(format!(
            "Unable to get nonexistent key: {key}: missing value"
        )),
    }
}

fn invalid_index(key: &str) -> String {
    format!("Unable to access invalid index: {key}: invalid index referenced")
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn parse_index(key: &str) -> Result<usize, String> {
    let well_formed = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'));
    if !well_formed {
        return Err(format!("strconv.Atoi: parsing \"{key}\": invalid syntax"));
    }
    key.parse().map_err(|_| invalid_index(key))
}

/// The container that holds the last token of the pointer `path`, and that token
/// (unescaped). `None` when the pointer is malformed or a token before the last is missing.
fn locate<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let rest = path.strip_prefix('/')?;
    let mut tokens = rest.split('/').map(unescape);
    let mut last = tokens.next()??;
    let mut cur = doc;
    for token in tokens {
        let token = token?;
        cur = match cur {
            Value::Object(fields) => fields.get_mut(&last)?,
            Value::Array(items) => items.get_mut(parse_index(&last).ok()?)?,
            _ => return None,
        };
        last = token;
    }
    match cur {
        Value::Object(_) | Value::Array(_) => Some((cur, last)),
        _ => None,
    }
}

/// Decodes `~1` to `/` and `~0` to `~`; any other `~` makes the pointer invalid.
fn unescape(token: &str) -> Option<String> {
    if !token.contains('~') {
        return Some(token.to_string());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The length of `value` serialized as compact JSON.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(doc: Value, patch: Value) -> Value {
        match json_patch(&doc, &patch) {
            Ok(v) => v,
            Err(e) => panic!("patch {patch} failed: {e:?}"),
        }
    }

    /// The 422 message json-patch gives, or a panic if the error is anything else.
    fn failure(doc: Value, patch: Value) -> String {
        match json_patch(&doc, &patch) {
            Err(ApiError::PatchNotApplicable(m)) => m,
            other => panic!("expected a 422 for {patch}, got {other:?}"),
        }
    }

    #[test]
    fn rfc_6902_appendix_a_examples() {
        // A.1 – A.4: add and remove members and elements.
        assert_eq!(
            patched(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}])
            ),
            json!({"baz": "qux", "foo": "bar"})
        );
        assert_eq!(
            patched(
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}])
            ),
            json!({"foo": ["bar", "qux", "baz"]})
        );
        assert_eq!(
            patched(
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}])
            ),
            json!({"foo": "bar"})
        );
        assert_eq!(
            patched(
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}])
            ),
            json!({"foo": ["bar", "baz"]})
        );
        // A.5 replace, A.6 move a member, A.7 move an element.
        assert_eq!(
            patched(
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}])
            ),
            json!({"baz": "boo", "foo": "bar"})
        );
        assert_eq!(
            patched(
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}])
            ),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
        );
        assert_eq!(
            patched(
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}])
            ),
            json!({"foo": ["all", "cows", "eat", "grass"]})
        );
        // A.8 a passing test, A.9 a failing one.
        let doc = json!({"baz": "qux", "foo": ["a", 2, "c"]});
        assert_eq!(
            patched(
                doc.clone(),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}])
            ),
            doc
        );
        assert_eq!(
            failure(
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}])
            ),
            "testing value /baz failed: test failed"
        );
        // A.10 add a nested member, A.11 ignore unrecognized members.
        assert_eq!(
            patched(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}])
            ),
            json!({"foo": "bar", "child": {"grandchild": {}}})
        );
        assert_eq!(
            patched(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}])
            ),
            json!({"foo": "bar", "baz": "qux"})
        );
        // A.12 add to a nonexistent target.
        assert_eq!(
            failure(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}])
            ),
            "add operation does not apply: doc is missing path: \"/baz/bat\": missing value"
        );
        // A.14 escape ordering, A.15 comparing strings and numbers.
        assert_eq!(
            patched(
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "test", "path": "/~1", "value": 9}])
            ),
            json!({"/": 9, "~1": 10})
        );
        assert_eq!(
            failure(
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}])
            ),
            "testing value /~01 failed: test failed"
        );
        // A.16 add an array value.
        assert_eq!(
            patched(
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}])
            ),
            json!({"foo": ["bar", ["abc", "def"]]})
        );
    }

    #[test]
    fn copy_and_whole_document_pointers() {
        assert_eq!(
            patched(
                json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}}}, "metadata": {}}),
                json!([{"op": "copy", "from": "/spec/template/metadata/labels", "path": "/metadata/labels"}])
            ),
            json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}}}, "metadata": {"labels": {"app": "a"}}})
        );
        assert_eq!(
            patched(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": {"b": 2}}])
            ),
            json!({"b": 2})
        );
        assert_eq!(
            patched(
                json!({"a": 1}),
                json!([{"op": "test", "path": "", "value": {"a": 1}}])
            ),
            json!({"a": 1})
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "copy", "from": "/nope", "path": "/b"}])
            ),
            "error in copy for from: '/nope': Unable to get nonexistent key: nope: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "copy", "from": "/a/b", "path": "/b"}])
            ),
            "copy operation does not apply: doc is missing from path: /a/b: missing value"
        );
        assert_eq!(
            patched(
                json!({"a": 1}),
                json!([{"op": "copy", "from": "", "path": "/b"}])
            ),
            json!({"a": 1, "b": {"a": 1}})
        );
    }

    #[test]
    fn array_index_rules() {
        let doc = json!({"l": ["a", "b"]});
        // Adding at the length appends; one past it does not.
        assert_eq!(
            patched(
                doc.clone(),
                json!([{"op": "add", "path": "/l/2", "value": "c"}])
            ),
            json!({"l": ["a", "b", "c"]})
        );
        assert_eq!(
            failure(doc.clone(), json!([{"op": "add", "path": "/l/3", "value": "c"}])),
            "error in add for path: '/l/3': Unable to access invalid index: 3: invalid index referenced"
        );
        assert_eq!(
            failure(doc.clone(), json!([{"op": "add", "path": "/l/01", "value": "c"}])),
            "error in add for path: '/l/01': value was not a proper array index: '01': strconv.Atoi: parsing \"01\": invalid syntax"
        );
        assert_eq!(
            failure(doc.clone(), json!([{"op": "remove", "path": "/l/-"}])),
            "error in remove for path: '/l/-': strconv.Atoi: parsing \"-\": invalid syntax"
        );
        assert_eq!(
            failure(doc.clone(), json!([{"op": "remove", "path": "/l/2"}])),
            "error in remove for path: '/l/2': Unable to access invalid index: 2: invalid index referenced"
        );
        assert_eq!(
            failure(
                doc.clone(),
                json!([{"op": "replace", "path": "/l/5", "value": 1}])
            ),
            "replace operation does not apply: doc is missing key: /l/5: missing value"
        );
        assert_eq!(
            patched(
                doc.clone(),
                json!([{"op": "replace", "path": "/l/0", "value": "z"}])
            ),
            json!({"l": ["z", "b"]})
        );
        // Indices inside the path follow the same rules.
        assert_eq!(
            failure(
                json!({"l": [{"a": 1}]}),
                json!([{"op": "add", "path": "/l/00/b", "value": 2}])
            ),
            "add operation does not apply: doc is missing path: \"/l/00/b\": missing value"
        );
        assert_eq!(
            patched(
                json!({"l": [{"a": 1}]}),
                json!([{"op": "add", "path": "/l/0/b", "value": 2}])
            ),
            json!({"l": [{"a": 1, "b": 2}]})
        );
    }

    #[test]
    fn kubernetes_quirks_and_missing_paths() {
        // `replace` of a missing member adds it (json-patch v4, which Kubernetes uses).
        assert_eq!(
            patched(
                json!({"metadata": {}}),
                json!([{"op": "replace", "path": "/metadata/labels", "value": {"a": "b"}}])
            ),
            json!({"metadata": {"labels": {"a": "b"}}})
        );
        // A missing `value` is null.
        assert_eq!(
            patched(json!({}), json!([{"op": "add", "path": "/a"}])),
            json!({"a": null})
        );
        assert_eq!(
            failure(json!({"metadata": {}}), json!([{"op": "remove", "path": "/metadata/labels/x"}])),
            "remove operation does not apply: doc is missing path: \"/metadata/labels/x\": missing value"
        );
        assert_eq!(
            failure(json!({"metadata": {"labels": {}}}), json!([{"op": "remove", "path": "/metadata/labels/x"}])),
            "error in remove for path: '/metadata/labels/x': Unable to remove nonexistent key: x: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "/b/c", "value": 1}])
            ),
            "replace operation does not apply: doc is missing path: /b/c: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "move", "from": "/x", "path": "/y"}])
            ),
            "error in move for path: 'x': Unable to remove nonexistent key: x: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": {"b": 1}}),
                json!([{"op": "move", "from": "/a", "path": "/a/b/c"}])
            ),
            "move operation does not apply: doc is missing destination path: /a/b/c: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "test", "path": "/b/c", "value": 1}])
            ),
            "test operation does not apply: is missing path: /b/c: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "test", "path": "/b", "value": null}])
            ),
            "error in test for path: '/b': Unable to get nonexistent key: b: missing value"
        );
        assert_eq!(
            failure(json!({}), json!([{"op": "frobnicate", "path": "/a"}])),
            "Unexpected kind: frobnicate"
        );
        assert_eq!(
            failure(json!({}), json!([{"path": "/a"}])),
            "Unexpected kind: unknown"
        );
        assert_eq!(
            failure(json!({}), json!([null])),
            "Unexpected kind: unknown"
        );
        assert_eq!(
            failure(json!({}), json!([{"op": "add"}])),
            "add operation failed to decode path: missing value"
        );
        assert_eq!(
            failure(json!({}), json!([{"op": "copy", "path": "/a"}])),
            "copy operation failed to decode from: missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "add", "path": "a", "value": 1}])
            ),
            "add operation does not apply: doc is missing path: \"a\": missing value"
        );
        assert_eq!(
            failure(
                json!({"a": 1}),
                json!([{"op": "add", "path": "/a/b", "value": 1}])
            ),
            "add operation does not apply: doc is missing path: \"/a/b\": missing value"
        );
        assert_eq!(
            failure(json!({"a~b": 1}), json!([{"op": "remove", "path": "/a~b"}])),
            "remove operation does not apply: doc is missing path: \"/a~b\": missing value"
        );
    }

    #[test]
    fn a_failed_operation_is_a_422_and_leaves_the_target_alone() {
        let doc = json!({"spec": {"replicas": 1}});
        let err = json_patch(
            &doc,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 1}
            ]),
        );
        let Err(err) = err else {
            panic!("expected an error")
        };
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            "the server rejected our request due to an error in our request"
        );
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "UnexpectedServerResponse", "message": "testing value /spec/replicas failed: test failed"}])
        );
        assert_eq!(doc, json!({"spec": {"replicas": 1}}));
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        let bad = |patch: Value| match json_patch(&json!({}), &patch) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400 for {patch}, got {other:?}"),
        };
        assert_eq!(
            bad(json!({"op": "add"})),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(
            bad(json!("add")),
            "json: cannot unmarshal string into Go value of type jsonpatch.Patch"
        );
        assert_eq!(
            bad(json!([1])),
            "json: cannot unmarshal number into Go value of type jsonpatch.Operation"
        );
        assert_eq!(
            bad(json!([[]])),
            "json: cannot unmarshal array into Go value of type jsonpatch.Operation"
        );
        // `null` decodes to an empty patch in Go.
        assert_eq!(patched(json!({"a": 1}), json!(null)), json!({"a": 1}));
        assert_eq!(patched(json!({"a": 1}), json!([])), json!({"a": 1}));
    }

    #[test]
    fn too_many_operations_are_refused() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        match json_patch(&json!({"a": 1}), &Value::Array(ops)) {
            Err(ApiError::TooLarge(m)) => {
                assert_eq!(
                    m,
                    "The allowed maximum operations in a JSON patch is 10000, got 10001"
                )
            }
            other => panic!("expected a 413, got {other:?}"),
        }
    }

    #[test]
    fn copies_may_not_blow_the_document_up() {
        // Three copies of a 1 MiB string pass the 3 MiB budget (quotes included); two do not.
        let doc = json!({"a": "x".repeat(1024 * 1024)});
        let copy = |to: &str| json!({"op": "copy", "from": "/a", "path": to});
        assert!(json_patch(&doc, &json!([copy("/b"), copy("/c")])).is_ok());
        let message = failure(doc, json!([copy("/b"), copy("/c"), copy("/d")]));
        assert_eq!(
            message,
            "Unable to complete the copy, the accumulated size increase of copy is 3145734, exceeding the limit 3145728"
        );
    }
}
