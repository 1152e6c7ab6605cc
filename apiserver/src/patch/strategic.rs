//! Strategic merge patch, `application/strategic-merge-patch+json`, with the semantics of
//! Kubernetes' `k8s.io/apimachinery/pkg/util/strategicpatch` (`StrategicMergeMapPatch`).
//!
//! - Objects merge key by key; a `null` value deletes the key. `{"$patch": "replace"}` in an
//!   object replaces it by the rest of the patch object, `{"$patch": "delete"}` empties it.
//!   `$retainKeys: [...]` drops the keys of the original object that are not listed (and every
//!   key the patch sets must be listed).
//! - Lists whose field has patch strategy `merge` merge: lists of objects element-wise by the
//!   field's merge key (a patch element with a new key is added, one with a known key merges
//!   into that element, `{"$patch": "delete", "<key>": v}` deletes it and `{"$patch":
//!   "replace"}` makes the rest of the patch list the whole list); lists of scalars become the
//!   union, and `$deleteFromPrimitiveList/<field>: [...]` removes values. The merged list is
//!   ordered as Kubernetes orders it: patch elements in patch order, the others in their
//!   original order, interleaved by their original positions. `$setElementOrder/<field>`
//!   imposes an order instead.
//! - Every other list, and every scalar, is replaced; so is an object whose field has patch
//!   strategy `replace`.
//!
//! What a field's strategy and merge key are comes from a [`TypeInfo`], queried with the field
//! path from the root (list elements transparent, map values as `"*"`).
//!
//! Errors: malformed directives are 400 `BadRequest` with Kubernetes' messages (`invalid patch
//! format of retainKeys`, `map: map[image:nginx] does not contain declared merge key: name`,
//! `unknown patch type: foo in map: …`); lists of lists are the 422 Kubernetes gives
//! ([`ApiError::PatchNotApplicable`]). Kubernetes itself answers the errors it does not
//! classify (a missing merge key, an unknown `$patch`) with a bare 500; they are 400s here.
//!
//! Deliberate differences from Kubernetes, all in corners its typed decoding papers over: a
//! patch value added where the original has nothing is itself cleaned of directives (merged
//! into an empty value) instead of being stored with its `$patch` keys; `$deleteFromPrimitiveList`
//! for a list the original does not have changes nothing (Kubernetes adds the listed values)
//! and deletes values even when the field's strategy is not `merge`.

use serde_json::{Map, Value};

use super::json::go_kind;
use super::TypeInfo;
use crate::error::{ApiError, Result};

/// A JSON object.
type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies the strategic merge patch `patch` to `original`.
///
/// `patch` must be a JSON object (`null` changes nothing); `info` says how each field merges.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    info: &dyn TypeInfo,
) -> Result<Value> {
    let patch = match patch {
        Value::Object(patch) => patch,
        Value::Null => return Ok(original.clone()),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_kind(other)
            )))
        }
    };
    let original = match original {
        Value::Object(original) => original.clone(),
        _ => Map::new(),
    };
    let mut merger = Merger {
        info,
        path: Vec::new(),
    };
    merger.merge_map(original, patch).map(Value::Object)
}

/// Formats a value as Go's `%v` does for decoded JSON (`map[a:1 b:[x y]]`), which is how
/// Kubernetes' messages show patch fragments.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(fields) => go_fmt_map(fields),
    }
}

fn go_fmt_map(fields: &Object) -> String {
    let mut parts: Vec<(&String, String)> = fields.iter().map(|(k, v)| (k, go_fmt(v))).collect();
    parts.sort();
    let parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", parts.join(" "))
}

/// How Go's `reflect` names the type of a decoded JSON value (for `ErrBadArgType` messages).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn no_merge_key(element: &Object, key: &str) -> ApiError {
    ApiError::bad_request(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt_map(element)
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn bad_retain_keys() -> ApiError {
    ApiError::bad_request("invalid patch format of retainKeys")
}

fn bad_set_element_order() -> ApiError {
    ApiError::bad_request("invalid patch format of setElementOrder list")
}

fn bad_primitive_list() -> ApiError {
    ApiError::bad_request("invalid patch format of primitive list")
}

/// The kind of a list's elements, as far as merging cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElementKind {
    Map,
    Scalar,
}

/// What identifies a list element when lists are merged and ordered: the merge key's value
/// for objects, the value itself for scalars. `None` when an object lacks the key.
fn identity<'v>(element: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => element.get(key),
        None => Some(element),
    }
}

struct Merger<'a, 'p> {
    info: &'a dyn TypeInfo,
    /// The field path of the value being merged, from the root.
    path: Vec<&'p str>,
}

impl<'p> Merger<'_, 'p> {
    /// Runs `f` with `segment` pushed onto the path.
    fn within<T>(&mut self, segment: &'p str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment);
        let out = f(self);
        self.path.pop();
        out
    }

    /// The patch strategy of the field at the current path (`merge`, `replace` or none),
    /// leaving aside `retainKeys`, which only matters to the client that builds
    /// `$retainKeys` directives.
    fn strategy(&self) -> Result<String> {
        let strategies = self.info.patch_strategies(&self.path);
        let retain = |s: &String| s == "retainKeys";
        match strategies.as_slice() {
            [] => Ok(String::new()),
            [one] if retain(one) => Ok(String::new()),
            [one] => Ok(one.clone()),
            [a, b] if retain(a) => Ok(b.clone()),
            [a, b] if retain(b) => Ok(a.clone()),
            _ => Err(ApiError::bad_request(format!(
                "unexpected patch strategy: [{}]",
                strategies.join(" ")
            ))),
        }
    }

    /// Whether the list at the current path has patch strategy `merge`.
    fn merges(&self) -> Result<bool> {
        Ok(self.strategy()? == "merge")
    }

    /// Merges the patch object into the original object at the current path.
    fn merge_map(&mut self, original: Object, patch: &'p Object) -> Result<Object> {
        match patch.get(DIRECTIVE) {
            None => self.merge_fields(original, patch),
            Some(directive) => match directive.as_str() {
                // The rest of the patch object, its own directives resolved, is the result.
                Some("replace") => self.merge_fields(Map::new(), patch),
                Some("delete") => Ok(Map::new()),
                _ => Err(ApiError::bad_request(format!(
                    "unknown patch type: {} in map: {}",
                    go_fmt(directive),
                    go_fmt_map(patch)
                ))),
            },
        }
    }

    /// The part of [`Merger::merge_map`] after the object's `$patch` directive.
    fn merge_fields(&mut self, mut original: Object, patch: &'p Object) -> Result<Object> {
        // Fields of a map are all addressed as its values.
        let in_map = self.info.is_map(&self.path);
        let segment = |key: &'p str| if in_map { "*" } else { key };

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            apply_retain_keys(&mut original, patch, retain)?;
        }

        // `$setElementOrder/<field>` merges its field's list and orders it before anything
        // else; the field is then done.
        let mut done: Vec<&'p str> = Vec::new();
        for (key, order) in patch {
            if !key.starts_with(SET_ELEMENT_ORDER) {
                continue;
            }
            let field = match key.split_once('/') {
                Some((SET_ELEMENT_ORDER, field)) => field,
                _ => return Err(bad_set_element_order()),
            };
            let Value::Array(order) = order else {
                return Err(bad_arg_type("[]interface {}", order));
            };
            let current = match original.get_mut(field) {
                Some(Value::Array(list)) => Some(std::mem::take(list)),
                Some(other) => return Err(bad_arg_type("[]interface {}", other)),
                None => None,
            };
            let merged = self.within(segment(field), |m| {
                m.order_elements(current, patch.get(field), order)
            })?;
            if let Some(list) = merged {
                original.insert(field.to_string(), Value::Array(list));
            }
            done.push(field);
        }

        for (key, value) in patch {
            let key = key.as_str();
            if key == DIRECTIVE
                || key == RETAIN_KEYS
                || key.starts_with(SET_ELEMENT_ORDER)
                || done.contains(&key)
            {
                continue;
            }
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let field = match key.split_once('/') {
                    Some((DELETE_FROM_PRIMITIVE_LIST, field)) => field,
                    _ => return Err(bad_primitive_list()),
                };
                delete_from_list(&mut original, field, value)?;
                continue;
            }
            self.within(segment(key), |m| m.merge_field(&mut original, key, value))?;
        }
        Ok(original)
    }

    /// Merges one field of the patch (the current path is the field's) into `original`.
    fn merge_field(&mut self, original: &mut Object, field: &str, patch: &'p Value) -> Result<()> {
        if patch.is_null() {
            original.retain(|k, _| k != field);
            return Ok(());
        }
        let Some(slot) = original.get_mut(field) else {
            let cleaned = self.clean(patch)?;
            original.insert(field.to_string(), cleaned);
            return Ok(());
        };
        let current = std::mem::take(slot);
        *slot = match (current, patch) {
            (Value::Object(current), Value::Object(patch)) => {
                if self.strategy()? == "replace" {
                    Value::Object(self.merge_map(Map::new(), patch)?)
                } else {
                    Value::Object(self.merge_map(current, patch)?)
                }
            }
            (Value::Array(current), Value::Array(patch)) => {
                if self.merges()? {
                    Value::Array(self.merge_list(current, patch)?)
                } else {
                    Value::Array(patch.clone())
                }
            }
            (_, patch) => self.clean(patch)?,
        };
        Ok(())
    }

    /// A patch value that lands where the original has nothing (or something of another
    /// type), with its directives resolved against nothing.
    fn clean(&mut self, patch: &'p Value) -> Result<Value> {
        match patch {
            Value::Object(fields) => Ok(Value::Object(self.merge_map(Map::new(), fields)?)),
            Value::Array(items) if self.merges()? => {
                Ok(Value::Array(self.merge_list(Vec::new(), items)?))
            }
            other => Ok(other.clone()),
        }
    }

    /// Merges a patch list into the original list of a field with strategy `merge`.
    fn merge_list(&mut self, original: Vec<Value>, patch: &'p [Value]) -> Result<Vec<Value>> {
        let Some(kind) = element_kind(&original, patch)? else {
            return Ok(original);
        };
        if kind == ElementKind::Scalar {
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            let server_order = original;
            let (from_patch, server_only) = merged.into_iter().partition(|v| patch.contains(v));
            let patch_order: Vec<&Value> = patch.iter().collect();
            let server_order: Vec<&Value> = server_order.iter().collect();
            return Ok(interleave(
                from_patch,
                server_only,
                &patch_order,
                &server_order,
                None,
            ));
        }

        let key = self.info.patch_merge_key(&self.path).ok_or_else(|| {
            ApiError::bad_request("cannot merge lists without merge key for type struct")
        })?;
        let (original, patch) = self.apply_list_directives(original, patch, &key)?;
        let server_keys: Vec<Value> = original
            .iter()
            .filter_map(|o| o.get(&key))
            .cloned()
            .collect();
        let mut merged = original;
        let mut patch_keys: Vec<&Value> = Vec::with_capacity(patch.len());
        for fields in patch {
            let value = fields.get(&key).ok_or_else(|| no_merge_key(fields, &key))?;
            patch_keys.push(value);
            match merged.iter_mut().find(|m| m.get(&key) == Some(value)) {
                Some(Value::Object(existing)) => {
                    let current = std::mem::take(existing);
                    *existing = self.merge_map(current, fields)?;
                }
                _ => merged.push(Value::Object(self.merge_map(Map::new(), fields)?)),
            }
        }
        if let Some(Value::Object(keyless)) = merged.iter().find(|m| m.get(&key).is_none()) {
            return Err(no_merge_key(keyless, &key));
        }
        let (from_patch, server_only) = merged
            .into_iter()
            .partition(|m| m.get(&key).is_some_and(|v| patch_keys.contains(&v)));
        let server_keys: Vec<&Value> = server_keys.iter().collect();
        Ok(interleave(
            from_patch,
            server_only,
            &patch_keys,
            &server_keys,
            Some(&key),
        ))
    }

    /// Handles the `$patch` elements of a patch list of objects: deletions take elements out
    /// of the original, `replace` makes the remaining patch elements the whole list. Returns
    /// the original and the patch elements left to merge.
    fn apply_list_directives(
        &mut self,
        mut original: Vec<Value>,
        patch: &'p [Value],
        key: &str,
    ) -> Result<(Vec<Value>, Vec<&'p Object>)> {
        let mut rest = Vec::with_capacity(patch.len());
        let mut replace = false;
        for element in patch {
            let Value::Object(fields) = element else {
                return Err(bad_arg_type("map[string]interface {}", element));
            };
            let Some(directive) = fields.get(DIRECTIVE) else {
                rest.push(fields);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let value = fields.get(key).ok_or_else(|| no_merge_key(fields, key))?;
                    original.retain(|o| o.get(key) != Some(value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(ApiError::bad_request(
                        "merging lists cannot yet be specified in the patch",
                    ))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unknown patch type: {} in map: {}",
                        go_fmt(directive),
                        go_fmt_map(fields)
                    )))
                }
            }
        }
        if !replace {
            return Ok((original, rest));
        }
        let mut list = Vec::with_capacity(rest.len());
        for fields in rest {
            list.push(Value::Object(self.merge_map(Map::new(), fields)?));
        }
        Ok((list, Vec::new()))
    }

    /// `$setElementOrder/<field>` (the current path is the field's): merges the field's patch
    /// list, if any, into the original list and orders the result by `order`. `None` when
    /// neither the original nor the patch has the field.
    fn order_elements(
        &mut self,
        original: Option<Vec<Value>>,
        patch: Option<&'p Value>,
        order: &'p [Value],
    ) -> Result<Option<Vec<Value>>> {
        let patch = match patch {
            Some(Value::Array(list)) => Some(list.as_slice()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            None => None,
        };
        let key = self.info.patch_merge_key(&self.path);
        let key = key.as_deref();
        validate_element_order(patch.unwrap_or_default(), order, key)?;
        let (original, merged) = match (original, patch) {
            (None, None) => return Ok(None),
            (Some(original), None) => (original.clone(), original),
            (original, Some(patch)) => {
                let original = original.unwrap_or_default();
                let merged = if self.merges()? {
                    self.merge_list(original.clone(), patch)?
                } else {
                    patch.to_vec()
                };
                (original, merged)
            }
        };
        if element_kind(&original, patch.unwrap_or_default())?.is_none() {
            return Ok(Some(merged));
        }
        if let Some(key) = key {
            for element in merged.iter().chain(order) {
                match element {
                    Value::Object(fields) if !fields.contains_key(key) => {
                        return Err(no_merge_key(fields, key))
                    }
                    Value::Object(_) => {}
                    other => return Err(bad_arg_type("map[string]interface {}", other)),
                }
            }
        }
        let order_ids: Vec<&Value> = order.iter().filter_map(|o| identity(o, key)).collect();
        let server_ids: Vec<&Value> = original.iter().filter_map(|o| identity(o, key)).collect();
        let (in_order, server_only) = merged
            .into_iter()
            .partition(|m| identity(m, key).is_some_and(|id| order_ids.contains(&id)));
        Ok(Some(interleave(
            in_order,
            server_only,
            &order_ids,
            &server_ids,
            key,
        )))
    }
}

/// `$retainKeys`: drops the original's keys that are not listed, after checking that the
/// patch sets only listed keys.
fn apply_retain_keys(original: &mut Object, patch: &Object, retain: &Value) -> Result<()> {
    let Value::Array(retain) = retain else {
        return Err(bad_retain_keys());
    };
    let listed = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null()
            && k != RETAIN_KEYS
            && k != DIRECTIVE
            && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !k.starts_with(SET_ELEMENT_ORDER)
            && !listed(k)
    });
    if unlisted {
        return Err(bad_retain_keys());
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>: [...]`: removes the listed values from the original's
/// list of scalars (`null` removes the field, as in Kubernetes).
fn delete_from_list(original: &mut Object, field: &str, remove: &Value) -> Result<()> {
    if remove.is_null() {
        original.retain(|k, _| k != field);
        return Ok(());
    }
    let Value::Array(remove) = remove else {
        return Err(bad_primitive_list());
    };
    match original.get_mut(field) {
        None => Ok(()),
        Some(Value::Array(list)) => {
            if list
                .iter()
                .chain(remove)
                .any(|v| v.is_object() || v.is_array())
            {
                return Err(bad_primitive_list());
            }
            list.retain(|v| !remove.contains(v));
            Ok(())
        }
        Some(_) => Err(bad_primitive_list()),
    }
}

/// The kind of the elements of `original` and `patch` together: `None` for two empty lists;
/// an error for mixed kinds or lists of lists.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<Option<ElementKind>> {
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch) {
        if v.is_array() {
            return Err(ApiError::PatchNotApplicable(
                "lists of lists are not supported".into(),
            ));
        }
        match first {
            None => first = Some(v),
            Some(prev) if go_kind(prev) != go_kind(v) => {
                return Err(ApiError::bad_request(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(original.to_vec())),
                    go_fmt(&Value::Array(patch.to_vec()))
                )))
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|v| {
        if v.is_object() {
            ElementKind::Map
        } else {
            ElementKind::Scalar
        }
    }))
}

/// Checks that the elements of the patch list (but deletions and other directives) appear in
/// `order` in the same relative order (Kubernetes' `validatePatchWithSetOrderList`).
fn validate_element_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut elements: Vec<&Value> = Vec::with_capacity(patch.len());
    for element in patch {
        if key.is_some() && !element.is_object() {
            return Err(bad_arg_type("map[string]interface {}", element));
        }
        if element.get(DIRECTIVE).is_none() {
            elements.push(element);
        }
    }
    let (mut p, mut o) = (0, 0);
    while let (Some(element), Some(wanted)) = (elements.get(p), order.get(o)) {
        let equal = match key {
            None => *element == wanted,
            Some(key) => {
                let (Value::Object(e), Value::Object(w)) = (element, wanted) else {
                    return Err(bad_arg_type("map[string]interface {}", wanted));
                };
                let ev = e.get(key).ok_or_else(|| no_merge_key(e, key))?;
                let wv = w.get(key).ok_or_else(|| no_merge_key(w, key))?;
                ev == wv
            }
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < elements.len() {
        return Err(ApiError::bad_request(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Kubernetes' `normalizeElementOrder`: the patch items sorted by `patch_order`, the
/// server-only items by `server_order` (both lists of identities), then interleaved: the next
/// server-only item goes first when both it and the next patch item are in `server_order`
/// and it comes earlier there.
fn interleave(
    mut from_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[&Value],
    server_order: &[&Value],
    key: Option<&str>,
) -> Vec<Value> {
    let position = |order: &[&Value], item: &Value| {
        let id = identity(item, key)?;
        order.iter().position(|o| *o == id)
    };
    from_patch.sort_by_key(|v| position(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l), position(server_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::patch::ListType;
    use crate::schema::Schemas;

    /// A hand-written [`TypeInfo`]: (dotted path, patch strategies, merge key), plus the
    /// dotted paths of maps.
    struct Fake {
        fields: &'static [(&'static str, &'static str, &'static str)],
        maps: &'static [&'static str],
    }

    impl Fake {
        fn field(&self, path: &[&str]) -> Option<(&'static str, &'static str)> {
            let dotted = path.join(".");
            self.fields
                .iter()
                .find(|f| f.0 == dotted)
                .map(|f| (f.1, f.2))
        }
    }

    impl TypeInfo for Fake {
        fn list_type(&self, _path: &[&str]) -> ListType {
            ListType::Atomic
        }
        fn patch_merge_key(&self, path: &[&str]) -> Option<String> {
            self.field(path)
                .map(|f| f.1)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        }
        fn patch_strategies(&self, path: &[&str]) -> Vec<String> {
            self.field(path)
                .map(|f| {
                    f.0.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        }
        fn is_map(&self, path: &[&str]) -> bool {
            self.maps.contains(&path.join(".").as_str())
        }
        fn is_atomic(&self, _path: &[&str]) -> bool {
            false
        }
    }

    /// Pod-like structure.
    const POD: Fake = Fake {
        fields: &[
            ("spec.containers", "merge", "name"),
            ("spec.containers.ports", "merge", "containerPort"),
            ("spec.containers.env", "merge", "name"),
            ("spec.containers.args", "", ""),
            ("spec.volumes", "merge,retainKeys", "name"),
            ("spec.tolerations", "", ""),
            ("spec.strategy", "retainKeys", ""),
            ("spec.selector", "replace", ""),
            ("metadata.finalizers", "merge", ""),
            ("spec.byName.*.items", "merge", ""),
            ("spec.grid", "merge", ""),
        ],
        maps: &["metadata.labels", "spec.byName"],
    };

    /// The structure of the `MergeItem` type of Kubernetes' strategicpatch tests.
    const MERGE_ITEM: Fake = Fake {
        fields: &[
            ("mergingList", "merge", "name"),
            ("mergingList.mergingList", "merge", "name"),
            ("mergingIntList", "merge", ""),
            ("nonMergingIntList", "", ""),
            ("retainKeysMap", "retainKeys", ""),
            ("retainKeysMergingList", "merge,retainKeys", "name"),
        ],
        maps: &["simpleMap"],
    };

    fn smp(info: &dyn TypeInfo, original: Value, patch: Value) -> Value {
        match strategic_merge_patch(&original, &patch, info) {
            Ok(v) => v,
            Err(e) => panic!("patch {patch} failed: {e:?}"),
        }
    }

    fn bad(info: &dyn TypeInfo, original: Value, patch: Value) -> String {
        match strategic_merge_patch(&original, &patch, info) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400 for {patch}, got {other:?}"),
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": { "name": "p", "labels": { "app": "web", "tier": "front" }, "finalizers": ["a", "b"] },
            "spec": {
                "containers": [
                    {
                        "name": "web", "image": "nginx:1.25",
                        "ports": [{ "containerPort": 80, "name": "http" }],
                        "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }]
                    },
                    { "name": "sidecar", "image": "envoy:1" }
                ],
                "tolerations": [{ "key": "a", "operator": "Exists" }, { "key": "b", "operator": "Exists" }],
                "volumes": [{ "name": "data", "emptyDir": {} }, { "name": "cfg", "configMap": { "name": "c" } }]
            }
        })
    }

    #[test]
    fn containers_merge_by_name() {
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } }),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([
                {
                    "name": "web", "image": "nginx:1.27",
                    "ports": [{ "containerPort": 80, "name": "http" }],
                    "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }]
                },
                { "name": "sidecar", "image": "envoy:1" }
            ])
        );
        // Everything else is untouched.
        let mut expected = pod();
        expected["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert_eq!(out, expected);
        // A new element comes before the server's remaining ones, as in Kubernetes.
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "containers": [{ "name": "init", "image": "busybox" }] } }),
        );
        let names: Vec<&Value> = out["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().map(|c| &c["name"]).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["init", "web", "sidecar"]);
    }

    #[test]
    fn env_var_deleted_with_a_delete_directive() {
        let patch = json!({ "spec": { "containers": [
            { "name": "web", "env": [{ "name": "A", "$patch": "delete" }, { "name": "C", "value": "3" }] }
        ] } });
        let out = smp(&POD, pod(), patch);
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{ "name": "C", "value": "3" }, { "name": "B", "value": "2" }])
        );
    }

    #[test]
    fn set_element_order_reorders_the_merged_list() {
        let patch = json!({ "spec": {
            "$setElementOrder/containers": [{ "name": "sidecar" }, { "name": "web" }, { "name": "new" }],
            "containers": [{ "name": "new", "image": "x" }]
        } });
        let out = smp(&POD, pod(), patch);
        let names: Vec<&Value> = out["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().map(|c| &c["name"]).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["sidecar", "web", "new"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "nginx:1.25");
        assert_eq!(
            out["spec"]["containers"][2],
            json!({ "name": "new", "image": "x" })
        );
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn ports_merge_by_container_port() {
        let patch = json!({ "spec": { "containers": [{ "name": "web", "ports": [
            { "containerPort": 80, "protocol": "TCP" }, { "containerPort": 443, "name": "https" }
        ] }] } });
        let out = smp(&POD, pod(), patch);
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([
                { "containerPort": 80, "name": "http", "protocol": "TCP" },
                { "containerPort": 443, "name": "https" }
            ])
        );
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "tolerations": [{ "key": "c", "operator": "Equal", "value": "v" }] } }),
        );
        assert_eq!(
            out["spec"]["tolerations"],
            json!([{ "key": "c", "operator": "Equal", "value": "v" }])
        );
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "containers": [{ "name": "web", "args": ["-v"] }] } }),
        );
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["-v"]));
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "finalizers": ["b", "c"] } }),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": ["a"] } }),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": ["a", "b"], "finalizers": ["z"] } }),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["z"]));
        // Deleting from a list the object does not have changes nothing.
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "$deleteFromPrimitiveList/finalizers": ["a"] } }),
        );
        assert_eq!(out, pod());
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "metadata": { "$deleteFromPrimitiveList": ["a"] } })
            ),
            "invalid patch format of primitive list"
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": "a" } })
            ),
            "invalid patch format of primitive list"
        );
    }

    #[test]
    fn volumes_with_retain_keys() {
        // kubectl switching a volume from emptyDir to a configMap sends $retainKeys.
        let patch = json!({ "spec": { "volumes": [
            { "name": "data", "configMap": { "name": "d" }, "$retainKeys": ["configMap", "name"] }
        ] } });
        let out = smp(&POD, pod(), patch);
        assert_eq!(
            out["spec"]["volumes"],
            json!([{ "name": "data", "configMap": { "name": "d" } }, { "name": "cfg", "configMap": { "name": "c" } }])
        );
        // Without the directive both sources stay (the retainKeys strategy alone does nothing
        // on the server, as in Kubernetes).
        let patch =
            json!({ "spec": { "volumes": [{ "name": "data", "configMap": { "name": "d" } }] } });
        let out = smp(&POD, pod(), patch);
        assert_eq!(
            out["spec"]["volumes"][0],
            json!({ "name": "data", "emptyDir": {}, "configMap": { "name": "d" } })
        );
        // Every key the patch sets must be retained.
        let patch = json!({ "spec": { "volumes": [
            { "name": "data", "configMap": { "name": "d" }, "$retainKeys": ["name"] }
        ] } });
        assert_eq!(
            bad(&POD, pod(), patch),
            "invalid patch format of retainKeys"
        );
        let patch = json!({ "spec": { "strategy": { "$retainKeys": "type" } } });
        let original = json!({ "spec": { "strategy": { "type": "Recreate" } } });
        assert_eq!(
            bad(&POD, original, patch),
            "invalid patch format of retainKeys"
        );
        // A Deployment strategy switch.
        let original = json!({ "spec": { "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1 } } } });
        let patch = json!({ "spec": { "strategy": { "type": "Recreate", "$retainKeys": ["type"], "rollingUpdate": null } } });
        assert_eq!(
            smp(&POD, original, patch),
            json!({ "spec": { "strategy": { "type": "Recreate" } } })
        );
    }

    #[test]
    fn null_deletes_keys_and_maps() {
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "labels": { "tier": null, "team": "x" }, "missing": null } }),
        );
        assert_eq!(
            out["metadata"]["labels"],
            json!({ "app": "web", "team": "x" })
        );
        assert!(out["metadata"].get("missing").is_none());
        let out = smp(&POD, pod(), json!({ "metadata": { "labels": null } }));
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["name"], "p");
    }

    #[test]
    fn patch_directives_on_maps() {
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "labels": { "$patch": "replace", "only": "this" } } }),
        );
        assert_eq!(out["metadata"]["labels"], json!({ "only": "this" }));
        let out = smp(
            &POD,
            pod(),
            json!({ "metadata": { "labels": { "$patch": "delete" } } }),
        );
        assert_eq!(out["metadata"]["labels"], json!({}));
        // A field with the `replace` strategy is replaced without a directive.
        let original = json!({ "spec": { "selector": { "a": "1", "b": "2" } } });
        assert_eq!(
            smp(
                &POD,
                original,
                json!({ "spec": { "selector": { "c": "3" } } })
            ),
            json!({ "spec": { "selector": { "c": "3" } } })
        );
        // Kubernetes knows no `$patch: merge` on maps.
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "metadata": { "labels": { "$patch": "merge", "a": "b" } } })
            ),
            "unknown patch type: merge in map: map[$patch:merge a:b]"
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "metadata": { "$patch": "frobnicate" } })
            ),
            "unknown patch type: frobnicate in map: map[$patch:frobnicate]"
        );
    }

    #[test]
    fn patch_directives_in_lists() {
        let out = smp(
            &POD,
            pod(),
            json!({ "spec": { "containers": [{ "$patch": "replace" }, { "name": "solo", "image": "x" }] } }),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{ "name": "solo", "image": "x" }])
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "containers": [{ "name": "web", "$patch": "merge" }] } })
            ),
            "merging lists cannot yet be specified in the patch"
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "containers": [{ "name": "web", "$patch": "nope" }] } })
            ),
            "unknown patch type: nope in map: map[$patch:nope name:web]"
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "containers": [{ "$patch": "delete" }] } })
            ),
            "map: map[$patch:delete] does not contain declared merge key: name"
        );
    }

    #[test]
    fn merge_key_missing_is_a_bad_request() {
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "containers": [{ "image": "nginx" }] } })
            ),
            "map: map[image:nginx] does not contain declared merge key: name"
        );
        let status = match strategic_merge_patch(
            &pod(),
            &json!({ "spec": { "containers": [{ "image": "x" }] } }),
            &POD,
        ) {
            Err(e) => e.to_status(),
            Ok(v) => panic!("unexpected success: {v}"),
        };
        assert_eq!(status["code"], 400);
        assert_eq!(status["reason"], "BadRequest");
    }

    #[test]
    fn malformed_patches() {
        assert_eq!(
            bad(&POD, pod(), json!([1])),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(smp(&POD, pod(), json!(null)), pod());
        assert_eq!(
            bad(&POD, pod(), json!({ "spec": { "containers": [{ "name": "web" }, "x"] } })),
            "list element types are not identical: [[map[env:[map[name:A value:1] map[name:B value:2]] image:nginx:1.25 name:web ports:[map[containerPort:80 name:http]]] map[image:envoy:1 name:sidecar]] [map[name:web] x]]"
        );
        match strategic_merge_patch(
            &json!({ "spec": { "grid": [[1]] } }),
            &json!({ "spec": { "grid": [[2]] } }),
            &POD,
        ) {
            Err(e) => {
                let status = e.to_status();
                assert_eq!(status["code"], 422);
                assert_eq!(
                    status["details"]["causes"][0]["message"],
                    "lists of lists are not supported"
                );
            }
            Ok(v) => panic!("unexpected success: {v}"),
        }
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "$setElementOrder/containers": "web" } })
            ),
            "expected a []interface {}, but received a string"
        );
        assert_eq!(
            bad(
                &POD,
                pod(),
                json!({ "spec": { "$setElementOrderX/containers": [] } })
            ),
            "invalid patch format of setElementOrder list"
        );
    }

    #[test]
    fn added_values_are_cleaned_of_directives() {
        let original = json!({ "metadata": { "name": "p" } });
        let patch = json!({ "spec": { "containers": [
            { "name": "a", "env": [{ "name": "X", "$patch": "delete" }, { "name": "Y", "value": "1" }] }
        ] } });
        assert_eq!(
            smp(&POD, original, patch),
            json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "a", "env": [{ "name": "Y", "value": "1" }] }] } })
        );
    }

    #[test]
    fn map_values_are_addressed_as_star() {
        let original = json!({ "spec": { "byName": { "x": { "items": ["a"] } } } });
        let patch =
            json!({ "spec": { "byName": { "x": { "items": ["b"] }, "y": { "items": ["c"] } } } });
        assert_eq!(
            smp(&POD, original, patch),
            // A value new to the list goes before the server's, as Kubernetes orders them.
            json!({ "spec": { "byName": { "x": { "items": ["b", "a"] }, "y": { "items": ["c"] } } } })
        );
    }

    /// Cases of Kubernetes' own strategicpatch tests (restated), on its `MergeItem` type.
    #[test]
    fn kubernetes_test_vectors() {
        let cases = [
            // unique scalars when merging lists
            (
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": [2, 3]}),
                json!({"mergingIntList": [1, 2, 3]}),
            ),
            // delete map from nested map
            (
                json!({"simpleMap": {"key1": 1, "key2": 1}}),
                json!({"simpleMap": {"$patch": "delete"}}),
                json!({"simpleMap": {}}),
            ),
            // delete all items from merging list
            (
                json!({"mergingList": [{"name": 1}, {"name": 2}]}),
                json!({"mergingList": [{"$patch": "replace"}]}),
                json!({"mergingList": []}),
            ),
            // merge empty merging lists
            (
                json!({"mergingList": []}),
                json!({"mergingList": []}),
                json!({"mergingList": []}),
            ),
            // delete all keys from map; add key and delete all keys from map
            (
                json!({"name": 1, "value": 1}),
                json!({"$patch": "replace"}),
                json!({}),
            ),
            (
                json!({"name": 1, "value": 1}),
                json!({"other": "a", "$patch": "replace"}),
                json!({"other": "a"}),
            ),
            // delete all duplicate entries in a merging list
            (
                json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
                json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "value": "a"}]}),
            ),
            // retainKeys map can add / delete a field when no retainKeys directive present
            (
                json!({"retainKeysMap": {"name": "foo"}}),
                json!({"retainKeysMap": {"value": "bar"}}),
                json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
            ),
            (
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {"value": null}}),
                json!({"retainKeysMap": {"name": "foo"}}),
            ),
            (
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
                json!({"retainKeysMap": {}}),
                json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
            ),
            // retainKeys list can change a field when no retainKeys directive present
            (
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
                json!({"retainKeysMergingList": [{"name": "foo", "value": "b"}]}),
                json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "b"}]}),
            ),
            // preserve the order from the patch in a merging list (1 and 2)
            (
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
            ),
            (
                json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
                json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
            ),
            // preserve the order from the patch in a merging int list
            (
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"mergingIntList": [3, 1, 2]}),
                json!({"mergingIntList": [3, 1, 2]}),
            ),
            (
                json!({"mergingIntList": [1, 2, 3]}),
                json!({"mergingIntList": [3, 1]}),
                json!({"mergingIntList": [2, 3, 1]}),
            ),
            // $setElementOrder contains items not present in the list to be merged
            (
                json!({"mergingList": [{"name": 1}, {"name": 3}]}),
                json!({"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}], "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
                json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
            ),
            (
                json!({"mergingIntList": [1, 3]}),
                json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
                json!({"mergingIntList": [3, 1]}),
            ),
            // delete items in lists of scalars (applied to the "current" object)
            (
                json!({"mergingIntList": [1, 2, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                json!({"mergingIntList": [1, 2, 3, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            (
                json!({"mergingIntList": [1, 2, 3, 4]}),
                json!({"$setElementOrder/mergingIntList": [1, 2, 4], "$deleteFromPrimitiveList/mergingIntList": [3], "mergingIntList": [4]}),
                json!({"mergingIntList": [1, 2, 4]}),
            ),
            // merge lists of maps (three-way result)
            (
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
                json!({"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            ),
            // add field to map in merging list (three-way result)
            (
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "value": 1}]}),
                json!({"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            ),
            // replace list of scalars; nested merging lists merge too
            (
                json!({"nonMergingIntList": [1, 2]}),
                json!({"nonMergingIntList": [2, 3]}),
                json!({"nonMergingIntList": [2, 3]}),
            ),
            (
                json!({"mergingList": [{"name": 1, "mergingList": [{"name": "a", "value": 1}]}]}),
                json!({"mergingList": [{"name": 1, "mergingList": [{"name": "a", "other": 2}, {"name": "b"}]}]}),
                json!({"mergingList": [{"name": 1, "mergingList": [{"name": "a", "value": 1, "other": 2}, {"name": "b"}]}]}),
            ),
            // defined null values remove fields
            (
                json!({"name": "n", "value": "v"}),
                json!({"name": "m", "value": null}),
                json!({"name": "m"}),
            ),
        ];
        for (original, patch, expected) in cases {
            let got = smp(&MERGE_ITEM, original.clone(), patch.clone());
            assert_eq!(got, expected, "{original} + {patch}");
        }
        // $setElementOrder whose order the patch list contradicts, and a missing merge key.
        let message = bad(
            &MERGE_ITEM,
            json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
            json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                   "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
        );
        assert!(
            message.contains("doesn't match $setElementOrder list"),
            "{message}"
        );
        let message = bad(
            &MERGE_ITEM,
            json!({"mergingIntList": [1, 3, 2]}),
            json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
        );
        assert_eq!(
            message,
            "The order in patch list:\n[3 1]\n doesn't match $setElementOrder list:\n[1 2 3]\n"
        );
        assert_eq!(
            bad(
                &MERGE_ITEM,
                json!({"mergingList": [{"name": 1, "value": "a"}]}),
                json!({"mergingList": [{"value": "b"}]})
            ),
            "map: map[value:b] does not contain declared merge key: name"
        );
    }

    #[test]
    fn a_kubectl_apply_patch_through_the_builtin_schemas() {
        let schemas = Arc::new(Schemas::builtin());
        let info = schemas.type_info("io.k8s.api.apps.v1.Deployment");
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web" }, "finalizers": ["x"] },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": {
                        "containers": [{
                            "name": "web", "image": "nginx:1.25",
                            "ports": [{ "containerPort": 80, "protocol": "TCP" }],
                            "env": [{ "name": "MODE", "value": "a" }, { "name": "OLD", "value": "1" }]
                        }],
                        "volumes": [{ "name": "cache", "emptyDir": {} }],
                        "tolerations": [{ "key": "t1", "operator": "Exists" }]
                    }
                }
            },
            "status": { "replicas": 1 }
        });
        // What `kubectl apply` computes for a changed manifest.
        let patch = json!({
            "metadata": { "$deleteFromPrimitiveList/finalizers": ["x"], "labels": { "team": "core" } },
            "spec": {
                "replicas": 3,
                "strategy": { "$retainKeys": ["type"], "type": "Recreate" },
                "template": { "spec": {
                    "$setElementOrder/containers": [{ "name": "web" }, { "name": "log" }],
                    "containers": [
                        {
                            "name": "web", "image": "nginx:1.27",
                            "$setElementOrder/env": [{ "name": "MODE" }],
                            "env": [{ "name": "OLD", "$patch": "delete" }, { "name": "MODE", "value": "b" }],
                            "ports": [{ "containerPort": 443, "protocol": "TCP" }]
                        },
                        { "name": "log", "image": "fluent-bit:3" }
                    ],
                    "volumes": [{ "$retainKeys": ["configMap", "name"], "name": "cache", "configMap": { "name": "cache" }, "emptyDir": null }],
                    "tolerations": [{ "key": "t2", "operator": "Exists" }]
                } }
            }
        });
        let out = smp(&info, live, patch);
        assert_eq!(
            out,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web", "team": "core" }, "finalizers": [] },
                "spec": {
                    "replicas": 3,
                    "selector": { "matchLabels": { "app": "web" } },
                    "strategy": { "type": "Recreate" },
                    "template": {
                        "metadata": { "labels": { "app": "web" } },
                        "spec": {
                            "containers": [
                                {
                                    "name": "web", "image": "nginx:1.27",
                                    "ports": [{ "containerPort": 443, "protocol": "TCP" }, { "containerPort": 80, "protocol": "TCP" }],
                                    "env": [{ "name": "MODE", "value": "b" }]
                                },
                                { "name": "log", "image": "fluent-bit:3" }
                            ],
                            "volumes": [{ "name": "cache", "configMap": { "name": "cache" } }],
                            "tolerations": [{ "key": "t2", "operator": "Exists" }]
                        }
                    }
                },
                "status": { "replicas": 1 }
            })
        );
    }
}
