//! Server-side apply (`application/apply-patch+yaml`) and managed-fields tracking for every
//! write, with the semantics of Kubernetes' structured-merge-diff and
//! `k8s.io/apimachinery/pkg/util/managedfields` (the apiserver's field manager).
//!
//! * A [`FieldSet`] is a set of field paths ([`PathElement`]s: `f:<field>`, `k:<key json>`,
//!   `v:<value json>`, `i:<index>`), (de)serialized as `FieldsV1`.
//! * [`server_side_apply`] merges an applied configuration into the live object (map-lists per
//!   key, sets by value, atomic lists and maps replaced), removes what this manager applied
//!   before but no longer applies (unless someone else owns it), detects conflicts with other
//!   managers (409, or ownership moves with `force`) and records the manager's `Apply` entry.
//! * [`update_managed_fields`] records, for ordinary create/update/patch requests, the fields a
//!   request changed as owned by its manager (`Update` entry) and takes them away from everyone
//!   else; it caps the number of `Update` entries like Kubernetes (`ancient-changes`).
//! * [`FieldManager`] is the same with full control (reset fields, the cap).
//!
//! The structure of an object (which lists are map-lists, sets or atomic, which objects are
//! maps with arbitrary keys or atomic) comes from a [`TypeInfo`]; values are otherwise typed by
//! what they are (an object, a list or a scalar).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde_json::{Map, Value};

use super::{ListType, TypeInfo};
use crate::error::{ApiError, Cause, Result, Subject};

/// The annotation `kubectl apply` (client-side) keeps the last applied configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The longest `fieldManager` Kubernetes accepts (bytes).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// How many `Update` entries are kept before the oldest are merged into `ancient-changes`.
pub const DEFAULT_MAX_UPDATE_MANAGERS: usize = 10;

const MAX_SUBRESOURCE_LENGTH: usize = 256;
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
const ANCIENT_CHANGES: &str = "ancient-changes";
const UNKNOWN_MANAGER: &str = "unknown";
const LAST_APPLIED_POINTER: &str =
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";

static NULL: Value = Value::Null;

// ---------------------------------------------------------------------------------------------
// Path elements and paths
// ---------------------------------------------------------------------------------------------

/// One step of a field path, as structured-merge-diff names it.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// `f:<name>`: a field of a struct, or a key of a map.
    Field(String),
    /// `k:<json>`: the element of a map-list with these key field values (sorted by name).
    Key(Vec<(String, Value)>),
    /// `v:<json>`: the element of a set with this value.
    Value(Value),
    /// `i:<n>`: a list element by position (read from `FieldsV1`, never produced).
    Index(i64),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The key this element has in `FieldsV1` (`f:replicas`, `k:{"name":"nginx"}`, ...).
    pub fn to_fields_key(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go_json_string(name, &mut out);
                    out.push(':');
                    go_json(value, &mut out);
                }
                out.push('}');
            }
            PathElement::Value(value) => {
                out.push_str("v:");
                go_json(value, &mut out);
            }
            PathElement::Index(i) => {
                out.push_str("i:");
                out.push_str(&i.to_string());
            }
        }
        out
    }

    /// Parses a `FieldsV1` key; `Ok(None)` for element types this version does not know
    /// (which Kubernetes drops silently).
    fn from_fields_key(key: &str) -> std::result::Result<Option<PathElement>, String> {
        let bytes = key.as_bytes();
        if bytes.len() < 2 {
            return Err(format!("key must be 2 characters long: {key}"));
        }
        if bytes.get(1) != Some(&b':') {
            return Err(format!("missing colon: {key}"));
        }
        let rest = key.get(2..).unwrap_or_default();
        let parse = |s: &str| {
            serde_json::from_str::<Value>(s)
                .map_err(|e| format!("parsing key as path element: {e}"))
        };
        Ok(Some(match bytes.first() {
            Some(b'f') => PathElement::Field(rest.to_string()),
            Some(b'v') => PathElement::Value(parse(rest)?),
            Some(b'k') => match parse(rest)? {
                Value::Object(map) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    PathElement::Key(fields)
                }
                _ => {
                    return Err(format!(
                        "parsing key as path element: not an object: {rest}"
                    ))
                }
            },
            Some(b'i') => PathElement::Index(
                rest.parse::<i64>()
                    .map_err(|e| format!("parsing key as path element: {e}"))?,
            ),
            _ => return Ok(None),
        }))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_field_lists(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    /// `.spec`, `[name="nginx"]`, `[containerPort=80,protocol="TCP"]`, `[="a"]`, `[0]`: how
    /// Kubernetes prints paths in conflict messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_to_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path, printed like Kubernetes does (`.spec.template.spec.containers[name="nginx"].image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath(pub Vec<PathElement>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Field sets
// ---------------------------------------------------------------------------------------------

/// A set of field paths (structured-merge-diff's `fieldpath.Set`): the fields a manager owns.
///
/// A path is a member when the field itself is in the set; its parent nodes are not members
/// unless inserted themselves (`.` in `FieldsV1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    /// Never holds an empty set.
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Adds `path` (its parents are not added). The empty path (the whole object) is ignored:
    /// nobody owns the root.
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        // Path elements are cloned only for nodes that do not exist yet: most inserts land
        // under parents an earlier insert created.
        let mut node = self;
        for pe in parents {
            if !node.children.contains_key(pe) {
                node.children.insert(pe.clone(), FieldSet::default());
            }
            node = match node.children.get_mut(pe) {
                Some(child) => child,
                None => return,
            };
        }
        if !node.members.contains(last) {
            node.members.insert(last.clone());
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in parents {
            match node.children.get(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.members.contains(last)
    }

    /// Whether the set has no member at all.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Every member, parents before children (members of a node before its children's).
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<FieldPath>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(FieldPath(p));
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.absorb(other.clone());
        out
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, ours) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = ours.intersection(theirs);
                if !both.is_empty() {
                    children.insert(pe.clone(), both);
                }
            }
        }
        FieldSet { members, children }
    }

    /// Members of `self` that are not members of `other` (a member of `other` does not remove
    /// the children of that path from `self`; see [`FieldSet::recursive_difference`]).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// [`FieldSet::difference`] in place.
    fn subtract(&mut self, other: &FieldSet) {
        if other.members.len() < self.members.len() {
            for m in &other.members {
                self.members.remove(m);
            }
        } else {
            self.members.retain(|m| !other.members.contains(m));
        }
        self.children.retain(|pe, ours| {
            if let Some(theirs) = other.children.get(pe) {
                ours.subtract(theirs);
            }
            !ours.is_empty()
        });
    }

    /// [`FieldSet::recursive_difference`] in place.
    fn subtract_recursive(&mut self, other: &FieldSet) {
        self.members.retain(|m| !other.members.contains(m));
        self.children.retain(|pe, ours| {
            if other.members.contains(pe) {
                return false;
            }
            if let Some(theirs) = other.children.get(pe) {
                ours.subtract_recursive(theirs);
            }
            !ours.is_empty()
        });
    }

    /// [`FieldSet::union`] in place, taking `other`'s nodes instead of copying them.
    fn absorb(&mut self, other: FieldSet) {
        self.members.extend(other.members);
        for (pe, theirs) in other.children {
            match self.children.get_mut(&pe) {
                Some(ours) => ours.absorb(theirs),
                None => {
                    self.children.insert(pe, theirs);
                }
            }
        }
    }

    /// Like [`FieldSet::difference`], but a member of `other` also removes everything below
    /// it from `self`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract_recursive(other);
        out
    }

    /// The fields of `object` (every leaf, every list element, every map key, empty and null
    /// values, atomic lists and maps as a whole), as server-side apply owns them. Fails (400)
    /// on list elements that cannot be identified or duplicate keys.
    pub fn from_value(object: &Value, info: &dyn TypeInfo) -> Result<FieldSet> {
        let (set, errors) = Typed { info }.field_set(object, true);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(ApiError::bad_request(join_errors(&errors)))
        }
    }

    /// Parses `FieldsV1` (the `fieldsV1` of a managedFields entry). Fails (400) on keys that
    /// are not path elements or values that are not objects.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet> {
        FieldSet::parse_v1(fields)
            .map_err(|e| ApiError::bad_request(format!("error decoding set: {e}")))
    }

    fn parse_v1(fields: &Value) -> std::result::Result<FieldSet, String> {
        Ok(read_v1(fields)?.0.unwrap_or_default())
    }

    /// Serializes the set as `FieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit_v1(false))
    }

    fn emit_v1(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let value = match self.children.get(pe) {
                Some(child) => child.emit_v1(self.members.contains(pe)),
                None => Map::new(),
            };
            out.insert(pe.to_fields_key(), Value::Object(value));
        }
        out
    }

    fn from_paths(paths: &[&[&str]]) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            let p: Vec<PathElement> = path
                .iter()
                .map(|s| PathElement::Field(s.to_string()))
                .collect();
            set.insert(&p);
        }
        set
    }
}

/// Reads one level of `FieldsV1`: the set below this node (None when there is nothing) and
/// whether the node itself is a member.
fn read_v1(value: &Value) -> std::result::Result<(Option<FieldSet>, bool), String> {
    let object = match value {
        Value::Object(o) => o,
        Value::Null => return Ok((None, true)),
        other => return Err(format!("expected an object, found {other}")),
    };
    let mut children: Option<FieldSet> = None;
    let mut is_member = false;
    for (key, child) in object {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::from_fields_key(key)? else {
            continue;
        };
        let (grandchildren, child_is_member) = read_v1(child)?;
        if child_is_member {
            children
                .get_or_insert_with(FieldSet::new)
                .members
                .insert(pe.clone());
        }
        if let Some(g) = grandchildren {
            let node = children.get_or_insert_with(FieldSet::new);
            let merged = match node.children.get(&pe) {
                Some(existing) => existing.union(&g),
                None => g,
            };
            if !merged.is_empty() {
                node.children.insert(pe, merged);
            }
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

/// The fields that are never tracked (`stripMetaManager`), built once.
fn strip_set() -> &'static FieldSet {
    static STRIP: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    STRIP.get_or_init(build_strip_set)
}

fn build_strip_set() -> FieldSet {
    FieldSet::from_paths(&[
        &["apiVersion"],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ])
}

// ---------------------------------------------------------------------------------------------
// Typed walks: field sets, comparison, merge, removal
// ---------------------------------------------------------------------------------------------

/// What a node is, from its values: both sides must agree (null and absent take the other
/// side's shape); anything else is a leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Map,
    List,
    Leaf,
}

fn shape(l: Option<&Value>, r: Option<&Value>) -> Shape {
    let of = |v: Option<&Value>| match v {
        Some(Value::Object(_)) => Some(Shape::Map),
        Some(Value::Array(_)) => Some(Shape::List),
        Some(Value::Null) | None => None,
        Some(_) => Some(Shape::Leaf),
    };
    match (of(l), of(r)) {
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) | (None, None) => Shape::Leaf,
        (Some(a), None) | (None, Some(a)) => a,
    }
}

#[derive(Default)]
struct Comparison {
    removed: FieldSet,
    modified: FieldSet,
    added: FieldSet,
    /// Items that could not be identified.
    errors: Vec<String>,
}

impl Comparison {
    fn exclude(mut self, reset: &FieldSet) -> Comparison {
        if !reset.is_empty() {
            self.removed.subtract_recursive(reset);
            self.modified.subtract_recursive(reset);
            self.added.subtract_recursive(reset);
        }
        self
    }
}

/// Walks values along their type paths (`TypeInfo` paths: field names, list elements
/// transparent, map values as `*`).
struct Typed<'a> {
    info: &'a dyn TypeInfo,
}

fn refs(tp: &[String]) -> Vec<&str> {
    tp.iter().map(String::as_str).collect()
}

fn is_atomic_list(lt: &ListType) -> bool {
    matches!(lt, ListType::Atomic)
}

/// Defaults of map-list key fields (structured-merge-diff takes them from the schema):
/// `protocol` of ports-like lists defaults to `TCP` in every built-in type that has it.
fn key_default(keys: &[String], key: &str) -> Option<Value> {
    (key == "protocol" && keys.len() > 1).then(|| Value::String("TCP".to_string()))
}

impl Typed<'_> {
    fn is_map(&self, tp: &[String]) -> bool {
        self.info.is_map(&refs(tp))
    }

    fn is_atomic(&self, tp: &[String]) -> bool {
        self.info.is_atomic(&refs(tp))
    }

    fn list_type(&self, tp: &[String]) -> ListType {
        self.info.list_type(&refs(tp))
    }

    fn item_pe(item: &Value, lt: &ListType) -> std::result::Result<PathElement, String> {
        match lt {
            ListType::Map(keys) if !keys.is_empty() => {
                let object = match item {
                    Value::Object(o) => o,
                    Value::Null => {
                        return Err("associative list with keys may not have a null element".into())
                    }
                    _ => {
                        return Err(
                            "associative list with keys may not have non-map elements".into()
                        )
                    }
                };
                let mut fields = Vec::new();
                for key in keys {
                    if let Some(v) = object.get(key) {
                        fields.push((key.clone(), v.clone()));
                    } else if let Some(d) = key_default(keys, key) {
                        fields.push((key.clone(), d));
                    }
                }
                if fields.is_empty() {
                    let quoted: Vec<String> = keys.iter().map(|k| go_quote(k)).collect();
                    return Err(format!(
                        "associative list with keys has an element that omits all key fields \
                         [{}] (and doesn't have default values for any key fields)",
                        quoted.join(" ")
                    ));
                }
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(fields))
            }
            ListType::Atomic => Err("invalid indexing of non-associative list".into()),
            _ => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".into())
                }
                Value::Array(_) => {
                    Err("not supported: associative list with lists as elements".into())
                }
                Value::Null => Err(
                    "associative list without keys has an element that's an explicit null".into(),
                ),
                v => Ok(PathElement::Value(v.clone())),
            },
        }
    }

    /// The field set of `value`; `strict` reports duplicate list keys (the applied
    /// configuration may not have any; a live object may).
    fn field_set(&self, value: &Value, strict: bool) -> (FieldSet, Vec<String>) {
        let mut set = FieldSet::new();
        let mut errors = Vec::new();
        self.walk_set(
            value,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut set,
            strict,
            &mut errors,
        );
        (set, errors)
    }

    fn walk_set(
        &self,
        value: &Value,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        out: &mut FieldSet,
        strict: bool,
        errors: &mut Vec<String>,
    ) {
        match value {
            Value::Object(map) => {
                if self.is_atomic(tp) {
                    out.insert(path);
                    return;
                }
                let is_map = self.is_map(tp);
                for (key, child) in map {
                    path.push(PathElement::Field(key.clone()));
                    tp.push(if is_map { "*".to_string() } else { key.clone() });
                    self.walk_set(child, tp, path, out, strict, errors);
                    let empty = match child {
                        Value::Null => true,
                        Value::Object(o) => o.is_empty(),
                        _ => false,
                    };
                    if empty || is_map {
                        out.insert(path);
                    }
                    tp.pop();
                    path.pop();
                }
            }
            Value::Array(items) => {
                let lt = self.list_type(tp);
                if is_atomic_list(&lt) {
                    out.insert(path);
                    return;
                }
                let mut pes = Vec::with_capacity(items.len());
                let mut counts: BTreeMap<PathElement, usize> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    match Typed::item_pe(item, &lt) {
                        Ok(pe) => {
                            let n = counts.entry(pe.clone()).or_insert(0);
                            *n += 1;
                            if *n > 1 && strict {
                                errors.push(prefixed(
                                    path,
                                    &format!("duplicate entries for key {pe}"),
                                ));
                            }
                            pes.push(Some(pe));
                        }
                        Err(e) => {
                            errors.push(prefixed(path, &format!("element {i}: {e}")));
                            pes.push(None);
                        }
                    }
                }
                for (pe, n) in &counts {
                    if *n > 1 {
                        path.push(pe.clone());
                        out.insert(path);
                        path.pop();
                    }
                }
                for (item, pe) in items.iter().zip(pes) {
                    let Some(pe) = pe else { continue };
                    if counts.get(&pe).copied().unwrap_or(0) > 1 {
                        continue;
                    }
                    path.push(pe);
                    self.walk_set(item, tp, path, out, strict, errors);
                    out.insert(path);
                    path.pop();
                }
            }
            _ => out.insert(path),
        }
    }

    /// Compares `old` with `new` (structured-merge-diff's `Compare`).
    fn compare_root(&self, old: &Value, new: &Value) -> std::result::Result<Comparison, String> {
        let mut cmp = Comparison::default();
        self.compare(
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut cmp,
        );
        if cmp.errors.is_empty() {
            Ok(cmp)
        } else {
            Err(join_errors(&cmp.errors))
        }
    }

    /// `compare_root({}, new)` for an object that did not exist: everything in it is added.
    /// The set is built bottom-up, each node assembled once, instead of every path being
    /// inserted from the root; lists take the general comparison, whose paths are merged in.
    /// `None` when the general comparison has to decide (an atomic root, an empty object).
    fn compare_created(&self, new: &Value) -> Option<std::result::Result<Comparison, String>> {
        let map = new.as_object().filter(|m| !m.is_empty())?;
        if self.is_atomic(&[]) {
            return None;
        }
        let mut cmp = Comparison::default();
        let added = self.added_map(map, &mut Vec::new(), &mut Vec::new(), &mut cmp);
        cmp.added.absorb(added);
        Some(if cmp.errors.is_empty() {
            Ok(cmp)
        } else {
            Err(join_errors(&cmp.errors))
        })
    }

    /// The set below a map node that is new, non-empty and not atomic (see `compare_created`).
    fn added_map(
        &self,
        map: &Map<String, Value>,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        cmp: &mut Comparison,
    ) -> FieldSet {
        let is_map = self.is_map(tp);
        let mut set = FieldSet::new();
        for (key, child) in map {
            let pe = PathElement::Field(key.clone());
            tp.push(if is_map { "*".to_string() } else { key.clone() });
            match child {
                Value::Object(m) if !m.is_empty() && !self.is_atomic(tp) => {
                    path.push(pe.clone());
                    let below = self.added_map(m, tp, path, cmp);
                    path.pop();
                    if !below.is_empty() {
                        set.children.insert(pe.clone(), below);
                    }
                    set.members.insert(pe);
                }
                Value::Array(_) => {
                    path.push(pe);
                    self.compare(None, Some(child), tp, path, cmp);
                    path.pop();
                }
                _ => {
                    set.members.insert(pe);
                }
            }
            tp.pop();
        }
        set
    }

    fn compare(
        &self,
        l: Option<&Value>,
        r: Option<&Value>,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        out: &mut Comparison,
    ) {
        if l.is_none() && r.is_none() {
            return;
        }
        match shape(l, r) {
            Shape::Map => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
                if self.is_atomic(tp) || (empty(lm) && empty(rm)) {
                    compare_leaf(l, r, path, out);
                    return;
                }
                let is_map = self.is_map(tp);
                for key in union_keys(lm, rm) {
                    path.push(PathElement::Field(key.to_string()));
                    tp.push(if is_map {
                        "*".to_string()
                    } else {
                        key.to_string()
                    });
                    self.compare(
                        lm.and_then(|m| m.get(key)),
                        rm.and_then(|m| m.get(key)),
                        tp,
                        path,
                        out,
                    );
                    tp.pop();
                    path.pop();
                }
                mark_presence(l, r, path, out);
            }
            Shape::List => {
                let ll = l
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let rl = r
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let lt = self.list_type(tp);
                if is_atomic_list(&lt) || (ll.is_empty() && rl.is_empty()) {
                    compare_leaf(l, r, path, out);
                    return;
                }
                self.compare_items(ll, rl, &lt, tp, path, out);
                mark_presence(l, r, path, out);
            }
            Shape::Leaf => compare_leaf(l, r, path, out),
        }
    }

    fn compare_items(
        &self,
        ll: &[Value],
        rl: &[Value],
        lt: &ListType,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        out: &mut Comparison,
    ) {
        let mut order: Vec<PathElement> = Vec::new();
        let lvals = index_items(ll, lt, path, &mut order, None, &mut out.errors);
        let rvals = index_items(rl, lt, path, &mut order, Some(&lvals), &mut out.errors);
        for pe in order {
            let a = lvals.get(&pe).map(Vec::as_slice).unwrap_or_default();
            let b = rvals.get(&pe).map(Vec::as_slice).unwrap_or_default();
            path.push(pe);
            match (a.len(), b.len()) {
                (0..=1, 0..=1) => {
                    self.compare(a.first().copied(), b.first().copied(), tp, path, out)
                }
                (2.., 2..) => {
                    let same =
                        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_equal(x, y));
                    if !same {
                        out.modified.insert(path);
                    }
                }
                (2.., _) => {
                    if let Some(x) = b.first() {
                        self.compare(None, Some(x), tp, path, out);
                    }
                    out.removed.insert(path);
                }
                _ => {
                    if let Some(x) = a.first() {
                        self.compare(Some(x), None, tp, path, out);
                    }
                    out.added.insert(path);
                }
            }
            path.pop();
        }
    }

    /// Merges the applied configuration `config` into `live` (structured-merge-diff's `Merge`).
    fn merge_root(&self, live: &Value, config: &Value) -> std::result::Result<Value, String> {
        let mut errors = Vec::new();
        let merged = self.merge(
            Some(live),
            Some(config),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut errors,
        );
        if errors.is_empty() {
            Ok(merged.unwrap_or_else(|| Value::Object(Map::new())))
        } else {
            Err(join_errors(&errors))
        }
    }

    fn merge(
        &self,
        l: Option<&Value>,
        r: Option<&Value>,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        errors: &mut Vec<String>,
    ) -> Option<Value> {
        let (l, r) = match (l, r) {
            (l, None) => return l.cloned(),
            (None, Some(r)) => return Some(r.clone()),
            (Some(l), Some(r)) => (l, r),
        };
        match shape(Some(l), Some(r)) {
            Shape::Map => {
                let lm = l.as_object();
                let rm = r.as_object();
                let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
                if self.is_atomic(tp) || (empty(lm) && empty(rm)) {
                    return Some(r.clone());
                }
                let is_map = self.is_map(tp);
                let mut out = Map::new();
                for key in union_keys(lm, rm) {
                    path.push(PathElement::Field(key.to_string()));
                    tp.push(if is_map {
                        "*".to_string()
                    } else {
                        key.to_string()
                    });
                    let merged = self.merge(
                        lm.and_then(|m| m.get(key)),
                        rm.and_then(|m| m.get(key)),
                        tp,
                        path,
                        errors,
                    );
                    tp.pop();
                    path.pop();
                    if let Some(v) = merged {
                        out.insert(key.to_string(), v);
                    }
                }
                Some(Value::Object(out))
            }
            Shape::List => {
                let ll = l.as_array().map(Vec::as_slice).unwrap_or_default();
                let rl = r.as_array().map(Vec::as_slice).unwrap_or_default();
                let lt = self.list_type(tp);
                if is_atomic_list(&lt) || (ll.is_empty() && rl.is_empty()) {
                    return Some(r.clone());
                }
                Some(Value::Array(
                    self.merge_items(ll, rl, &lt, tp, path, errors),
                ))
            }
            Shape::Leaf => Some(r.clone()),
        }
    }

    /// Merges two associative lists: items of `live` keep their place, items of `config` are
    /// merged into their live counterpart or inserted in config order.
    fn merge_items(
        &self,
        ll: &[Value],
        rl: &[Value],
        lt: &ListType,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        errors: &mut Vec<String>,
    ) -> Vec<Value> {
        let mut rhs: Vec<PathElement> = Vec::with_capacity(rl.len());
        let mut observed_rhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in rl.iter().enumerate() {
            match Typed::item_pe(item, lt) {
                Ok(pe) => {
                    if observed_rhs.contains_key(&pe) {
                        errors.push(prefixed(path, &format!("duplicate entries for key {pe}")));
                        continue;
                    }
                    observed_rhs.insert(pe.clone(), item);
                    rhs.push(pe);
                }
                Err(e) => errors.push(prefixed(path, &format!("element {i}: {e}"))),
            }
        }
        let mut lhs: Vec<(PathElement, &Value)> = Vec::with_capacity(ll.len());
        // A duplicated live key merges as null: the applied item replaces all of them.
        let mut observed_lhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in ll.iter().enumerate() {
            match Typed::item_pe(item, lt) {
                Ok(pe) => {
                    if observed_lhs.contains_key(&pe) {
                        observed_lhs.insert(pe.clone(), &NULL);
                    } else {
                        observed_lhs.insert(pe.clone(), item);
                    }
                    lhs.push((pe, item));
                }
                Err(e) => errors.push(prefixed(path, &format!("element {i}: {e}"))),
            }
        }
        if !errors.is_empty() {
            return Vec::new();
        }
        let mut shared: VecDeque<&PathElement> = rhs
            .iter()
            .filter(|pe| observed_lhs.contains_key(pe))
            .collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(ll.len().max(rl.len()));
        let (mut li, mut ri) = (0, 0);
        while li < lhs.len() || ri < rhs.len() {
            if let (Some((lpe, _)), Some(rpe)) = (lhs.get(li), rhs.get(ri)) {
                if lpe == rpe {
                    merged_rhs.insert(rpe);
                    let lchild = observed_lhs.get(lpe).copied();
                    let rchild = observed_rhs.get(rpe).copied();
                    out.extend(self.merge_item(lpe, lchild, rchild, tp, path, errors));
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if observed_rhs.contains_key(lpe) && next_shared.is_some_and(|n| n != lpe) {
                    li += 1;
                    continue;
                }
            }
            if let Some((lpe, litem)) = lhs.get(li) {
                if !observed_rhs.contains_key(lpe) {
                    out.extend(self.merge_item(lpe, Some(litem), None, tp, path, errors));
                    li += 1;
                    continue;
                } else if merged_rhs.contains(lpe) {
                    li += 1;
                }
            }
            if let Some(rpe) = rhs.get(ri) {
                merged_rhs.insert(rpe);
                let lchild = observed_lhs.get(rpe).copied();
                let rchild = observed_rhs.get(rpe).copied();
                out.extend(self.merge_item(rpe, lchild, rchild, tp, path, errors));
                ri += 1;
                if next_shared.is_some_and(|n| n == rpe) {
                    next_shared = shared.pop_front();
                }
            }
        }
        out
    }

    fn merge_item(
        &self,
        pe: &PathElement,
        l: Option<&Value>,
        r: Option<&Value>,
        tp: &mut Vec<String>,
        path: &mut Vec<PathElement>,
        errors: &mut Vec<String>,
    ) -> Option<Value> {
        path.push(pe.clone());
        let merged = self.merge(l, r, tp, path, errors);
        path.pop();
        merged
    }

    /// `value` without the members of `set` (structured-merge-diff's `RemoveItems`); maps and
    /// lists left empty by the removal disappear.
    fn remove_items_root(&self, value: &Value, set: &FieldSet) -> Value {
        self.remove_items(value, set, &mut Vec::new())
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn remove_items(&self, value: &Value, set: &FieldSet, tp: &mut Vec<String>) -> Option<Value> {
        match value {
            Value::Object(map) => {
                if map.is_empty() || self.is_atomic(tp) {
                    return None;
                }
                let is_map = self.is_map(tp);
                let mut out = Map::new();
                for (key, child) in map {
                    let pe = PathElement::Field(key.clone());
                    if set.members.contains(&pe) {
                        continue;
                    }
                    match set.children.get(&pe) {
                        Some(sub) => {
                            tp.push(if is_map { "*".to_string() } else { key.clone() });
                            let kept = self.remove_items(child, sub, tp);
                            tp.pop();
                            if let Some(v) = kept {
                                out.insert(key.clone(), v);
                            }
                        }
                        None => {
                            out.insert(key.clone(), child.clone());
                        }
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) => {
                let lt = self.list_type(tp);
                if items.is_empty() || is_atomic_list(&lt) {
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Ok(pe) = Typed::item_pe(item, &lt) else {
                        out.push(item.clone());
                        continue;
                    };
                    if set.members.contains(&pe) {
                        continue;
                    }
                    match set.children.get(&pe) {
                        Some(sub) => out.extend(self.remove_items(item, sub, tp)),
                        None => out.push(item.clone()),
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
            other => Some(other.clone()),
        }
    }

    /// `set` plus every struct field that has members below it (structured-merge-diff's
    /// `EnsureNamedFieldsAreMembers`; keys of maps are not added).
    fn ensure_named(&self, set: &FieldSet, tp: &mut Vec<String>) -> FieldSet {
        let is_map = self.is_map(tp);
        let mut members = set.members.clone();
        let mut children = BTreeMap::new();
        for (pe, child) in &set.children {
            let below = match pe {
                PathElement::Field(name) => {
                    if !is_map {
                        members.insert(pe.clone());
                    }
                    tp.push(if is_map {
                        "*".to_string()
                    } else {
                        name.clone()
                    });
                    let below = self.ensure_named(child, tp);
                    tp.pop();
                    below
                }
                PathElement::Key(_) => self.ensure_named(child, tp),
                _ => child.clone(),
            };
            children.insert(pe.clone(), below);
        }
        FieldSet { members, children }
    }

    fn named_set(&self, value: &Value) -> FieldSet {
        let (set, _) = self.field_set(value, false);
        self.ensure_named(&set, &mut Vec::new())
    }
}

/// Items of a list by path element (duplicates together), recording first appearances (not in
/// `seen`) in `order`.
fn index_items<'v>(
    list: &'v [Value],
    lt: &ListType,
    path: &[PathElement],
    order: &mut Vec<PathElement>,
    seen: Option<&BTreeMap<PathElement, Vec<&Value>>>,
    errors: &mut Vec<String>,
) -> BTreeMap<PathElement, Vec<&'v Value>> {
    let mut by_pe: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    for (i, item) in list.iter().enumerate() {
        match Typed::item_pe(item, lt) {
            Ok(pe) => match by_pe.get_mut(&pe) {
                Some(items) => items.push(item),
                None => {
                    if !seen.is_some_and(|s| s.contains_key(&pe)) {
                        order.push(pe.clone());
                    }
                    by_pe.insert(pe, vec![item]);
                }
            },
            Err(e) => errors.push(prefixed(path, &format!("element {i}: {e}"))),
        }
    }
    by_pe
}

fn union_keys<'v>(
    l: Option<&'v Map<String, Value>>,
    r: Option<&'v Map<String, Value>>,
) -> Vec<&'v str> {
    let mut keys: Vec<&str> = l
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(r) = r {
        for key in r.keys() {
            if !l.is_some_and(|m| m.contains_key(key)) {
                keys.push(key);
            }
        }
    }
    keys
}

fn compare_leaf(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], out: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if !values_equal(a, b) => out.modified.insert(path),
        _ => {}
    }
}

fn mark_presence(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], out: &mut Comparison) {
    if l.is_none() {
        out.added.insert(path);
    } else if r.is_none() {
        out.removed.insert(path);
    }
}

fn prefixed(path: &[PathElement], message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{}: {message}", path_string(path))
    }
}

fn join_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => {
            let mut lines = vec!["errors:".to_string()];
            lines.extend(many.iter().map(|e| format!("  {e}")));
            lines.join("\n")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Managed fields
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who owns a set: Kubernetes keys managers by the JSON of `{manager, operation, apiVersion
/// (updates only), subresource}`, which `key` is (and sorts by).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ManagerId {
    key: String,
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
}

impl ManagerId {
    fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> ManagerId {
        let api_version = match operation {
            Operation::Apply => "",
            Operation::Update => api_version,
        };
        let mut key = String::from("{");
        let field = |name: &str, value: &str, key: &mut String| {
            if value.is_empty() {
                return;
            }
            if key.len() > 1 {
                key.push(',');
            }
            go_json_string(name, key);
            key.push(':');
            go_json_string(value, key);
        };
        field("manager", manager, &mut key);
        field("operation", operation.as_str(), &mut key);
        field("apiVersion", api_version, &mut key);
        field("subresource", subresource, &mut key);
        key.push('}');
        ManagerId {
            key,
            manager: manager.to_string(),
            operation,
            api_version: api_version.to_string(),
            subresource: subresource.to_string(),
        }
    }

    /// `"kubectl"`, `"kube-controller-manager" with subresource "status" using apps/v1`.
    fn describe(&self) -> String {
        let mut s = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

#[derive(Clone, Debug)]
struct Entry {
    set: FieldSet,
    api_version: String,
    applied: bool,
    /// Unix seconds.
    time: Option<i64>,
}

type Managed = BTreeMap<ManagerId, Entry>;

fn string_field<'v>(
    entry: &'v Map<String, Value>,
    name: &str,
) -> std::result::Result<&'v str, String> {
    match entry.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{name} must be a string, found {other}")),
    }
}

/// Decodes `metadata.managedFields` (Kubernetes' `DecodeManagedFields`).
fn decode_managed(list: Option<&Value>) -> std::result::Result<Managed, String> {
    let mut managed = Managed::new();
    let entries = match list {
        None | Some(Value::Null) => return Ok(managed),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(format!("managedFields must be a list, found {other}")),
    };
    for (i, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let operation = match string_field(entry, "operation")? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = string_field(entry, "apiVersion")?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match string_field(entry, "fieldsType")? {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    go_quote(other)
                ))
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => FieldSet::parse_v1(fields)
                .map_err(|e| format!("error decoding versioned set: error decoding set: {e}"))?,
        };
        let time = match entry.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(parse_time(t)?),
            Some(other) => return Err(format!("time must be a string, found {other}")),
        };
        let id = ManagerId::new(
            string_field(entry, "manager")?,
            operation,
            api_version,
            string_field(entry, "subresource")?,
        );
        managed.insert(
            id,
            Entry {
                set,
                api_version: api_version.to_string(),
                applied: operation == Operation::Apply,
                time,
            },
        );
    }
    Ok(managed)
}

/// Encodes managed fields in Kubernetes' order (operation, time, manager, apiVersion,
/// subresource); `None` when there is nothing to record.
fn encode_managed(managed: &Managed) -> Option<Value> {
    if managed.is_empty() {
        return None;
    }
    type SortKey<'m> = (&'static str, i64, &'m str, &'m str, &'m str);
    let mut rows: Vec<(SortKey<'_>, Value)> = Vec::new();
    for (id, entry) in managed {
        let operation = if entry.applied { "Apply" } else { "Update" };
        let mut o = Map::new();
        if !id.manager.is_empty() {
            o.insert("manager".into(), Value::String(id.manager.clone()));
        }
        o.insert("operation".into(), Value::String(operation.into()));
        if !entry.api_version.is_empty() {
            o.insert(
                "apiVersion".into(),
                Value::String(entry.api_version.clone()),
            );
        }
        if let Some(t) = entry.time.and_then(format_time) {
            o.insert("time".into(), Value::String(t));
        }
        o.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        o.insert("fieldsV1".into(), entry.set.to_fields_v1());
        if !id.subresource.is_empty() {
            o.insert("subresource".into(), Value::String(id.subresource.clone()));
        }
        let key = (
            operation,
            entry.time.unwrap_or(0),
            id.manager.as_str(),
            entry.api_version.as_str(),
            id.subresource.as_str(),
        );
        rows.push((key, Value::Object(o)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Some(Value::Array(rows.into_iter().map(|(_, v)| v).collect()))
}

/// Whether client-sent managedFields ask for a reset: `[]` or `[{}]`.
fn is_reset(list: Option<&Value>) -> bool {
    match list {
        Some(Value::Array(entries)) => match entries.as_slice() {
            [] => true,
            [Value::Object(only)] => only.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Merges the oldest `Update` entries into `ancient-changes` (one per apiVersion) until at most
/// `max` remain (Kubernetes' `capManagersManager`).
fn cap_update_managers(managed: &mut Managed, max: usize) {
    let mut updaters: Vec<ManagerId> = managed
        .iter()
        .filter(|(_, e)| !e.applied)
        .map(|(id, _)| id.clone())
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort_by(|a, b| {
        let ta = managed.get(a).and_then(|e| e.time).unwrap_or(0);
        let tb = managed.get(b).and_then(|e| e.time).unwrap_or(0);
        ta.cmp(&tb).then_with(|| a.key.cmp(&b.key))
    });
    let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= max {
            break;
        }
        let Some(version) = managed.get(&id).map(|e| e.api_version.clone()) else {
            continue;
        };
        let bucket = ManagerId::new(ANCIENT_CHANGES, Operation::Update, &version, "");
        let Some(first) = first_of_version.get(&version).cloned() else {
            first_of_version.insert(version, id);
            continue;
        };
        if !managed.contains_key(&bucket) {
            if let Some(moved) = managed.remove(&first) {
                managed.insert(bucket.clone(), moved);
            }
        }
        // Merge this entry into the bucket; when this entry is an existing bucket (it sorts
        // after the first entry of its version), the first entry goes into it instead.
        let absorbed = if id == bucket {
            managed.remove(&first)
        } else {
            managed.remove(&id)
        };
        if let (Some(absorbed), Some(target)) = (absorbed, managed.get_mut(&bucket)) {
            target.set = target.set.union(&absorbed.set);
            if id != bucket {
                target.time = absorbed.time;
            }
        }
        length -= 1;
    }
}

fn parse_time(text: &str) -> std::result::Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_second)
        .map_err(|e| format!("invalid time {text:?}: {e}"))
}

fn format_time(seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn take_managed_fields(object: &mut Value) -> Option<Value> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
}

fn set_managed_fields(object: &mut Value, managed: Option<Value>) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    match managed {
        Some(list) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("managedFields".into(), list);
            }
        }
        None => {
            if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn group_of(api_version: &str) -> &str {
    api_version
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default()
}

/// `apps/v1, Kind=Deployment`, `/v1, Kind=Pod` (Go's `GroupVersionKind.String()`).
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// `default/web; apps/v1, Kind=Deployment`, as Kubernetes names an object in typing errors.
fn object_gvknn(object: &Value) -> String {
    format!(
        "{}/{}; {}",
        str_at(object, "/metadata/namespace"),
        str_at(object, "/metadata/name"),
        gvk_string(str_at(object, "/apiVersion"), str_at(object, "/kind"))
    )
}

// ---------------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Conflicts(Vec<(ManagerId, FieldPath)>);

impl Conflicts {
    fn without(self, allowed: &FieldSet) -> Conflicts {
        Conflicts(
            self.0
                .into_iter()
                .filter(|(_, p)| !allowed.has(&p.0))
                .collect(),
        )
    }

    fn into_error(self) -> ApiError {
        let causes: Vec<Cause> = self
            .0
            .iter()
            .map(|(id, path)| {
                Cause::new(
                    "FieldManagerConflict",
                    path.to_string(),
                    format!("conflict with {}", id.describe()),
                )
            })
            .collect();
        let message = match self.0.as_slice() {
            [(id, path)] => {
                format!(
                    "Apply failed with 1 conflict: conflict with {}: {path}",
                    id.describe()
                )
            }
            all => {
                let mut lines = Vec::new();
                let mut current: Option<&ManagerId> = None;
                for (id, path) in all {
                    if current != Some(id) {
                        lines.push(format!("conflicts with {}:", id.describe()));
                        current = Some(id);
                    }
                    lines.push(format!("- {path}"));
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    all.len(),
                    lines.join("\n")
                )
            }
        };
        ApiError::Conflict {
            subject: Subject::default(),
            message,
            causes,
        }
    }
}

enum Failure {
    Conflicts(Conflicts),
    Internal(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Internal(message)
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> ApiError {
        match f {
            Failure::Conflicts(c) => c.into_error(),
            Failure::Internal(m) => ApiError::internal(m),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The field manager
// ---------------------------------------------------------------------------------------------

/// The reset fields Kubernetes' built-in strategies use by default: a write to the main
/// resource does not own `status`, one to the `status` subresource does not own `spec`.
pub fn default_reset_fields(subresource: Option<&str>) -> &'static [&'static [&'static str]] {
    match subresource {
        None => &[&["status"]],
        Some("status") => &[&["spec"]],
        Some(_) => &[],
    }
}

/// Server-side apply and managed-fields tracking for one kind of object and one endpoint (the
/// main resource or a subresource), like Kubernetes' `FieldManager`.
pub struct FieldManager<'a> {
    info: &'a dyn TypeInfo,
    subresource: &'a str,
    now: &'a str,
    reset: FieldSet,
    max_update_managers: usize,
}

impl<'a> FieldManager<'a> {
    /// A field manager for `subresource` (None: the main resource) with
    /// [`default_reset_fields`]; `now` is the RFC 3339 time recorded in changed entries.
    pub fn new(info: &'a dyn TypeInfo, subresource: Option<&'a str>, now: &'a str) -> Self {
        FieldManager {
            info,
            subresource: subresource.unwrap_or_default(),
            now,
            reset: FieldSet::from_paths(default_reset_fields(subresource)),
            max_update_managers: DEFAULT_MAX_UPDATE_MANAGERS,
        }
    }

    /// Replaces the reset fields: paths (field names from the root) whose changes this
    /// endpoint's strategy discards, so that nobody gains or loses them through it (e.g.
    /// `&[&["spec"], &["metadata", "labels"]]` for a Deployment's status; `&[]` for a custom
    /// resource without a status subresource).
    pub fn with_reset_fields(mut self, reset: &[&[&str]]) -> Self {
        self.reset = FieldSet::from_paths(reset);
        self
    }

    /// Replaces how many `Update` entries are kept ([`DEFAULT_MAX_UPDATE_MANAGERS`]).
    pub fn with_max_update_managers(mut self, max: usize) -> Self {
        self.max_update_managers = max;
        self
    }

    fn typed(&self) -> Typed<'a> {
        Typed { info: self.info }
    }

    fn now(&self) -> Result<i64> {
        parse_time(self.now).map_err(ApiError::internal)
    }

    /// See [`server_side_apply`].
    pub fn apply(
        &self,
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value> {
        validate_field_manager(Some(manager), "PatchOptions", true)?;
        if !matches!(config, Value::Object(_) | Value::Null) {
            let found = match config {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            return Err(ApiError::bad_request(format!(
                "error decoding patch: json: cannot unmarshal {found} into Go value of type \
                 map[string]interface {{}}"
            )));
        }
        let api_version = str_at(config, "/apiVersion");
        let kind = str_at(config, "/kind");
        let kind_mismatch = live.is_some_and(|l| {
            let (lv, lk) = (str_at(l, "/apiVersion"), str_at(l, "/kind"));
            (!lv.is_empty() && lv != api_version) || (!lk.is_empty() && lk != kind)
        });
        if api_version.is_empty() || kind.is_empty() || kind_mismatch {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {}",
                gvk_string(api_version, kind)
            )));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let name = str_at(config, "/metadata/name");
        match live {
            Some(l) => {
                let live_name = str_at(l, "/metadata/name");
                if name != live_name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({name}) does not match the name on the URL \
                         ({live_name})"
                    )));
                }
                let namespace = str_at(config, "/metadata/namespace");
                let live_namespace = str_at(l, "/metadata/namespace");
                // A namespace given for a cluster-scoped object is dropped (below).
                if !namespace.is_empty()
                    && !live_namespace.is_empty()
                    && namespace != live_namespace
                {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace \
                         sent on the request",
                    ));
                }
            }
            None if name.is_empty() => {
                return Err(ApiError::bad_request(
                    "metadata.name: Required value: name is required",
                ))
            }
            None => {}
        }
        let now = self.now()?;
        let typed = self.typed();
        let (_, errors) = typed.field_set(config, true);
        if !errors.is_empty() {
            return Err(ApiError::internal(format!(
                "failed to create typed patch object ({}): {}",
                object_gvknn(config),
                join_errors(&errors)
            )));
        }
        let mut live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        let live_fields = take_managed_fields(&mut live_obj);
        let managed = decode_managed(live_fields.as_ref())
            .map_err(|e| ApiError::internal(format!("failed to decode managed fields: {e}")))?;
        let (_, errors) = typed.field_set(&live_obj, false);
        if !errors.is_empty() {
            return Err(ApiError::internal(format!(
                "failed to create typed live object ({}): {}",
                object_gvknn(&live_obj),
                join_errors(&errors)
            )));
        }
        let cluster_scoped = live.is_some_and(|l| str_at(l, "/metadata/namespace").is_empty());
        let mut config = Cow::Borrowed(config);
        if cluster_scoped && !str_at(&config, "/metadata/namespace").is_empty() {
            if let Some(meta) = config
                .to_mut()
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
            {
                meta.remove("namespace");
            }
        }
        let config = config.as_ref();
        let attempt = self.apply_once(&live_obj, config, managed.clone(), manager, force, now);
        let (mut object, managed) = match attempt {
            Err(Failure::Conflicts(conflicts)) if manager == "kubectl" => {
                match self.allowed_by_last_applied(&live_obj, api_version) {
                    Some(allowed) => {
                        let rest = conflicts.without(&allowed);
                        if !rest.0.is_empty() {
                            return Err(rest.into_error());
                        }
                        self.apply_once(&live_obj, config, managed, manager, true, now)?
                    }
                    None => return Err(conflicts.into_error()),
                }
            }
            other => other?,
        };
        if manager == "kubectl" {
            update_last_applied(&mut object, config);
        }
        set_managed_fields(&mut object, encode_managed(&managed));
        Ok(object)
    }

    /// One apply: merge, prune what this manager stopped applying, detect conflicts, record.
    fn apply_once(
        &self,
        live: &Value,
        config: &Value,
        mut managed: Managed,
        manager: &str,
        force: bool,
        now: i64,
    ) -> std::result::Result<(Value, Managed), Failure> {
        let typed = self.typed();
        let api_version = str_at(config, "/apiVersion");
        if managed.is_empty() {
            // An object nobody tracked yet: what it has belongs to "before-first-apply".
            let empty = Value::Object(Map::new());
            managed =
                self.update_core(&empty, live, managed, BEFORE_FIRST_APPLY, api_version, now)?;
        }
        let id = ManagerId::new(manager, Operation::Apply, "", self.subresource);
        let merged = typed.merge_root(live, config)?;
        let last = managed.get(&id).map(|e| e.set.clone());
        let previous_time = managed.get(&id).and_then(|e| e.time);
        let (set, _) = typed.field_set(config, false);
        managed.insert(
            id.clone(),
            Entry {
                set: set.recursive_difference(&self.reset),
                api_version: api_version.to_string(),
                applied: true,
                time: previous_time,
            },
        );
        let merged = self.prune(merged, &managed, last.as_ref());
        let cmp = typed.compare_root(live, &merged)?.exclude(&self.reset);
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts = Conflicts::default();
        for (other, entry) in &managed {
            if *other == id {
                continue;
            }
            for path in entry.set.intersection(&changed).paths() {
                conflicts.0.push((other.clone(), path));
            }
        }
        if !force && !conflicts.0.is_empty() {
            return Err(Failure::Conflicts(conflicts));
        }
        for (other, entry) in managed.iter_mut() {
            if *other != id {
                entry.set = entry.set.difference(&changed).difference(&cmp.removed);
            }
        }
        let noop = values_equal(live, &merged);
        if let Some(entry) = managed.get_mut(&id) {
            entry.set = entry.set.difference(strip_set());
            if !noop {
                entry.time = Some(now);
            }
        }
        managed.retain(|_, e| !e.set.is_empty());
        let object = if noop { live.clone() } else { merged };
        Ok((object, managed))
    }

    /// Removes from `merged` what the applier owned last time (`last`) and no longer applies,
    /// unless some manager (the applier's new set included) owns it.
    fn prune(&self, merged: Value, managed: &Managed, last: Option<&FieldSet>) -> Value {
        let Some(last) = last.filter(|l| !l.is_empty()) else {
            return merged;
        };
        let typed = self.typed();
        let last = typed.ensure_named(last, &mut Vec::new());
        let pruned = typed.remove_items_root(&merged, &last);
        // Add back whatever some manager owns.
        let owned = managed
            .values()
            .fold(FieldSet::new(), |acc, e| acc.union(&e.set));
        let owned = typed.ensure_named(&owned, &mut Vec::new());
        let merged_set = typed.named_set(&merged);
        let pruned_set = typed.named_set(&pruned);
        let pruned =
            typed.remove_items_root(&merged, &merged_set.difference(&pruned_set.union(&owned)));
        // Only what the applier owned last time may go.
        let pruned_set = typed.named_set(&pruned);
        typed.remove_items_root(
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last),
        )
    }

    /// The conflicts `kubectl` may override when it upgrades from client-side apply: fields of
    /// the last-applied annotation that still have their applied value.
    fn allowed_by_last_applied(&self, live: &Value, api_version: &str) -> Option<FieldSet> {
        let text = live.pointer(LAST_APPLIED_POINTER)?.as_str()?;
        if text.is_empty() {
            return None;
        }
        let last: Value = serde_json::from_str(text).ok()?;
        if str_at(&last, "/apiVersion") != api_version {
            return None;
        }
        let typed = self.typed();
        let (set, errors) = typed.field_set(&last, true);
        if !errors.is_empty() {
            return None;
        }
        let cmp = typed.compare_root(&last, live).ok()?;
        Some(
            set.difference(&cmp.modified)
                .difference(&cmp.added)
                .difference(&cmp.removed),
        )
    }

    /// See [`update_managed_fields`].
    pub fn update(&self, old: Option<&Value>, new: &mut Value, manager: &str) -> Result<()> {
        if new.get("metadata").and_then(Value::as_object).is_none() {
            return Ok(());
        }
        let now = self.now()?;
        let sent = take_managed_fields(new);
        let old_fields = old.and_then(|o| o.pointer("/metadata/managedFields"));
        let from_old = || decode_managed(old_fields).unwrap_or_default();
        let managed = if !self.subresource.is_empty() {
            from_old()
        } else if is_reset(sent.as_ref()) {
            Managed::new()
        } else {
            match decode_managed(sent.as_ref()) {
                Ok(m) if !m.is_empty() => {
                    validate_sent_managers(sent.as_ref(), new)?;
                    m
                }
                _ => from_old(),
            }
        };
        let exists = old.is_some_and(|o| !str_at(o, "/metadata/uid").is_empty());
        if managed.is_empty() && exists {
            // Tracking stays off for an existing object until the next apply.
            return Ok(());
        }
        let api_version = str_at(new, "/apiVersion").to_string();
        let mut old_clean = old.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        take_managed_fields(&mut old_clean);
        match self.update_core(&old_clean, new, managed, manager, &api_version, now) {
            Ok(m) if !api_version.is_empty() => set_managed_fields(new, encode_managed(&m)),
            // Like Kubernetes' UpdateNoErrors: keep what the object had.
            _ => set_managed_fields(new, old_fields.cloned()),
        }
        Ok(())
    }

    /// Records the fields `new` changed from `old` as `manager`'s (an `Update` entry) and takes
    /// them (and removed fields) away from every other manager; caps the `Update` entries.
    fn update_core(
        &self,
        old: &Value,
        new: &Value,
        mut managed: Managed,
        manager: &str,
        api_version: &str,
        now: i64,
    ) -> std::result::Result<Managed, String> {
        let Comparison {
            removed,
            modified,
            added,
            ..
        } = old
            .as_object()
            .filter(|m| m.is_empty())
            .and_then(|_| self.typed().compare_created(new))
            .unwrap_or_else(|| self.typed().compare_root(old, new))?
            .exclude(&self.reset);
        let mut changed = added;
        changed.absorb(modified);
        for entry in managed.values_mut() {
            entry.set.subtract(&changed);
            entry.set.subtract(&removed);
        }
        managed.retain(|_, e| !e.set.is_empty());
        let mut mine = changed;
        mine.subtract(strip_set());
        if !mine.is_empty() {
            let name = if manager.is_empty() {
                UNKNOWN_MANAGER
            } else {
                manager
            };
            let id = ManagerId::new(name, Operation::Update, api_version, self.subresource);
            let mut set = mine;
            if let Some(previous) = managed.remove(&id) {
                set.absorb(previous.set);
            }
            managed.insert(
                id,
                Entry {
                    set,
                    api_version: api_version.to_string(),
                    applied: false,
                    time: Some(now),
                },
            );
        }
        cap_update_managers(&mut managed, self.max_update_managers);
        Ok(managed)
    }
}

/// Sets the last-applied annotation to the applied configuration when the object has one
/// (so that client-side `kubectl apply` keeps working after a server-side one).
fn update_last_applied(object: &mut Value, config: &Value) {
    let present = object
        .pointer(LAST_APPLIED_POINTER)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !present {
        return;
    }
    let mut applied = config.clone();
    if let Some(annotations) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut text = String::new();
    go_json(&applied, &mut text);
    text.push('\n');
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(text));
    }
}

/// Validates the managers of client-sent managedFields like `ValidateManagedFields` (422).
fn validate_sent_managers(sent: Option<&Value>, object: &Value) -> Result<()> {
    let Some(Value::Array(entries)) = sent else {
        return Ok(());
    };
    let mut causes = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("metadata.managedFields[{i}]");
        let manager = str_at(entry, "/manager");
        causes.extend(manager_causes(manager, &format!("{field}.manager")));
        if str_at(entry, "/subresource").len() > MAX_SUBRESOURCE_LENGTH {
            causes.push(Cause::new(
                "FieldValueTooLong",
                format!("{field}.subresource"),
                format!("Too long: may not be more than {MAX_SUBRESOURCE_LENGTH} bytes"),
            ));
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        str_at(object, "/kind"),
        group_of(str_at(object, "/apiVersion")),
        str_at(object, "/metadata/name"),
        causes,
    ))
}

fn manager_causes(manager: &str, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        causes.push(Cause::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
        ));
    }
    for (i, c) in manager.char_indices() {
        if !is_print(c) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!(
                    "Invalid value: {}: invalid character U+{:04X} (at position {i})",
                    go_quote(manager),
                    c as u32
                ),
            ));
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Server-side apply. `live`: the current object (None = the object does not exist yet: apply
/// creates it). `config`: the applied configuration (must have apiVersion, kind and
/// metadata.name, and match the live object's; 400 otherwise). Returns the new object with
/// `metadata.managedFields` updated (this manager's `Apply` entry holds exactly the fields of
/// `config`).
///
/// Conflicts (the config sets, to a different value, a field another manager owns) fail with
/// 409 `Apply failed with 1 conflict: conflict with "<mgr>" using apps/v1: .spec.replicas` and
/// one `FieldManagerConflict` cause per field, unless `force`, in which case the fields move to
/// this manager. Fields this manager applied before but no longer applies are removed unless
/// another manager owns them. `manager` must be a valid `fieldManager` (422 otherwise).
/// Main-resource applies do not own `status`, status-subresource applies do not own `spec`
/// ([`default_reset_fields`]; use [`FieldManager`] for others).
///
/// The caller still compares `config`'s name/namespace with the URL on create, and applies
/// its strategy (defaulting, reset of status or spec, validation) to the result.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    info: &dyn TypeInfo,
    now: &str,
) -> Result<Value> {
    FieldManager::new(info, subresource, now).apply(live, config, manager, force)
}

/// For ordinary create/update/patch: `new` is the object about to be stored, `old` the previous
/// one (None on create). Records the fields that changed as owned by `manager` (an `Update`
/// entry per manager, apiVersion and subresource, timed `now`) and removes them, and the
/// removed fields, from every other manager; entries left empty are dropped, and past
/// [`DEFAULT_MAX_UPDATE_MANAGERS`] `Update` entries the oldest merge into `ancient-changes`.
///
/// managedFields sent by the client replace the stored ones when they decode (422 if a manager
/// name is invalid); `[]` clears them, and tracking of an existing object then stays off until
/// the next apply. Invalid ones are ignored; subresource writes always keep the stored ones.
/// Identity and bookkeeping metadata (name, uid, resourceVersion, generation, ...) is never
/// tracked, nor `status` on the main resource or `spec` on `status`
/// ([`default_reset_fields`]). An empty `manager` is recorded as `unknown`.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    info: &dyn TypeInfo,
    now: &str,
) -> Result<()> {
    FieldManager::new(info, subresource, now).update(old, new, manager)
}

/// The manager name for a request without `fieldManager`: the User-Agent up to its first `/`,
/// without unprintable characters, cut to 128 bytes (`unknown` when nothing is left).
pub fn default_manager(user_agent: Option<&str>) -> String {
    let prefix = user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        UNKNOWN_MANAGER.to_string()
    } else {
        out
    }
}

/// Validates the `fieldManager` query parameter like Kubernetes (`ValidateFieldManager`, and
/// `ValidatePatchOptions` for apply, where it is `required`): at most 128 bytes, printable.
/// `options_kind` names the options in the 422 (`PatchOptions`, `CreateOptions`,
/// `UpdateOptions`), e.g. `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required
/// value: is required for apply patch`.
pub fn validate_field_manager(
    field_manager: Option<&str>,
    options_kind: &str,
    required: bool,
) -> Result<()> {
    let manager = field_manager.unwrap_or_default();
    let mut causes = Vec::new();
    if required && manager.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    causes.extend(manager_causes(manager, "fieldManager"));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(options_kind, "meta.k8s.io", "", causes))
    }
}

// ---------------------------------------------------------------------------------------------
// Values: equality, order, printing (Go-compatible)
// ---------------------------------------------------------------------------------------------

/// structured-merge-diff's value equality: numbers compare numerically across int and float.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(x), int(y)) {
        (Some(a), Some(b)) if !x.is_f64() && !y.is_f64() => a.cmp(&b),
        _ => {
            let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

/// structured-merge-diff's total order of values: numbers, strings, bools, lists, maps, null.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for (i, key) in keys.into_iter().enumerate() {
                let c = if i == x.len() {
                    Ordering::Less
                } else if i == y.len() {
                    Ordering::Greater
                } else {
                    match (x.get(key), y.get(key)) {
                        (None, _) => Ordering::Greater,
                        (_, None) => Ordering::Less,
                        (Some(p), Some(q)) => compare_values(p, q),
                    }
                };
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let c = ka.cmp(kb).then_with(|| compare_values(va, vb));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// structured-merge-diff's `value.ToString` (strings Go-quoted).
fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        map.get(*k).map(value_to_string).unwrap_or_default()
                    )
                })
                .collect()
        }
    }
}

/// JSON as Go's `encoding/json` writes it: sorted object keys, `<`, `>`, `&` escaped.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => go_number(n, out),
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(key, out);
                out.push(':');
                if let Some(value) = map.get(key) {
                    go_json(value, out);
                }
            }
            out.push('}');
        }
    }
}

/// Numbers as Go's `encoding/json` writes a float64: shortest form, exponent (`1e+21`,
/// `1e-7`) outside [1e-6, 1e21).
fn go_number(n: &serde_json::Number, out: &mut String) {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                let text = format!("{f:e}");
                match text.split_once('e') {
                    Some((mantissa, exp)) if !exp.starts_with('-') => {
                        out.push_str(&format!("{mantissa}e+{exp}"))
                    }
                    _ => out.push_str(&text),
                }
            } else {
                out.push_str(&f.to_string());
            }
        }
        _ => out.push_str(&n.to_string()),
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `strconv.Quote` (`%q`).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: no controls, no spaces but U+0020, no format
/// characters, no private use, no noncharacters.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::NoTypeInfo;
    use serde_json::json;

    const T1: &str = "2024-01-02T03:04:05Z";
    const T2: &str = "2024-01-02T04:00:00Z";
    const T3: &str = "2024-01-02T05:00:00Z";

    /// A Deployment-like shape.
    struct Deploy;

    impl TypeInfo for Deploy {
        fn list_type(&self, path: &[&str]) -> ListType {
            match path {
                ["spec", "template", "spec", "containers"]
                | ["spec", "template", "spec", "containers", "env"] => {
                    ListType::Map(vec!["name".into()])
                }
                ["spec", "template", "spec", "containers", "ports"] => {
                    ListType::Map(vec!["containerPort".into(), "protocol".into()])
                }
                ["metadata", "finalizers"] => ListType::Set,
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
            matches!(
                path,
                ["metadata", "labels"]
                    | ["metadata", "annotations"]
                    | ["spec", "template", "metadata", "labels"]
                    | ["spec", "selector", "matchLabels"]
            )
        }
        fn is_atomic(&self, path: &[&str]) -> bool {
            matches!(path, ["spec", "selector"])
        }
    }

    fn web(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}
                    ]}
                }
            }
        })
    }

    fn web_fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    }

    /// A minimal configuration of `web` with extra content merged into it.
    fn partial(extra: Value) -> Value {
        let mut base = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "web", "namespace": "default"}});
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            b.extend(e);
        }
        base
    }

    fn apply(
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value> {
        server_side_apply(live, config, manager, None, force, &Deploy, now)
    }

    fn managed(obj: &Value) -> Value {
        obj.pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn entry_of<'v>(obj: &'v Value, manager: &str) -> &'v Value {
        obj.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|e| e["manager"] == manager))
            .unwrap_or(&NULL)
    }

    fn without_managed(obj: &Value) -> Value {
        let mut o = obj.clone();
        take_managed_fields(&mut o);
        o
    }

    fn status_of(err: ApiError) -> Value {
        err.to_status()
    }

    #[test]
    fn create_by_apply_records_exactly_the_applied_fields() {
        let config = web(3, "nginx:1.25");
        let out = apply(None, &config, "kubectl", false, T1).unwrap();
        assert_eq!(without_managed(&out), config);
        assert_eq!(
            managed(&out),
            json!([{
                "manager": "kubectl",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": web_fields()
            }])
        );
    }

    #[test]
    fn reapply_with_changed_replicas_updates_object_and_time() {
        let live = apply(None, &web(3, "nginx:1.25"), "kubectl", false, T1).unwrap();
        let out = apply(Some(&live), &web(5, "nginx:1.25"), "kubectl", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(
            managed(&out),
            json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "time": T2, "fieldsType": "FieldsV1", "fieldsV1": web_fields()}])
        );
        // The same configuration again changes nothing, not even the time.
        let again = apply(Some(&out), &web(5, "nginx:1.25"), "kubectl", false, T3).unwrap();
        assert_eq!(again, out);
    }

    /// `web` as `kubectl create` (an Update by kubectl-client-side-apply) stores it.
    fn created_by_update(manager: &str) -> Value {
        let mut obj = web(3, "nginx:1.25");
        obj["metadata"]["uid"] = json!("0b9e3a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        obj["metadata"]["resourceVersion"] = json!("7");
        obj["metadata"]["creationTimestamp"] = json!(T1);
        obj["metadata"]["generation"] = json!(1);
        obj["status"] = json!({});
        update_managed_fields(None, &mut obj, manager, None, &Deploy, T1).unwrap();
        obj
    }

    #[test]
    fn create_by_update_tracks_everything_but_identity_and_status() {
        let obj = created_by_update("kubectl-client-side-apply");
        assert_eq!(
            managed(&obj),
            json!([{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        ".": {},
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            ".": {},
                            "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}},
                            "f:spec": {".": {}, "f:containers": {
                                ".": {},
                                "k:{\"name\":\"nginx\"}": {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                    "f:ports": {
                                        ".": {},
                                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                            ".": {},
                                            "f:containerPort": {}
                                        }
                                    }
                                }
                            }}
                        }
                    }
                }
            }])
        );
    }

    #[test]
    fn apply_of_a_field_owned_by_another_manager_with_a_different_value_conflicts() {
        let live = created_by_update("kubectl-client-side-apply");
        let config = partial(json!({"spec": {"replicas": 5}}));
        let err = apply(Some(&live), &config, "hpa-controller", false, T2).unwrap_err();
        assert_eq!(
            status_of(err),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
                "reason": "Conflict",
                "code": 409,
                "details": {"causes": [{
                    "reason": "FieldManagerConflict",
                    "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                    "field": ".spec.replicas"
                }]}
            })
        );
    }

    #[test]
    fn conflicts_with_appliers_and_several_fields_are_grouped_by_manager() {
        let live = apply(None, &web(3, "nginx:1.25"), "alice", false, T1).unwrap();
        let config = partial(
            json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.26"}
            ]}}}}),
        );
        let err = apply(Some(&live), &config, "bob", false, T2).unwrap_err();
        let status = status_of(err);
        assert_eq!(
            status["message"],
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
        assert_eq!(
            status["details"]["causes"],
            json!([
                {"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"},
                {"reason": "FieldManagerConflict", "message": "conflict with \"alice\"",
                 "field": ".spec.template.spec.containers[name=\"nginx\"].image"}
            ])
        );
    }

    #[test]
    fn same_value_is_no_conflict_and_ownership_is_shared() {
        let live = apply(None, &web(3, "nginx:1.25"), "alice", false, T1).unwrap();
        let config = partial(json!({"spec": {"replicas": 3}}));
        let out = apply(Some(&live), &config, "bob", false, T2).unwrap();
        assert_eq!(without_managed(&out), without_managed(&live));
        assert_eq!(entry_of(&out, "alice")["fieldsV1"], web_fields());
        // A no-op apply does not stamp a time (like Kubernetes).
        assert_eq!(
            *entry_of(&out, "bob"),
            json!({"manager": "bob", "operation": "Apply", "apiVersion": "apps/v1",
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}})
        );
    }

    #[test]
    fn force_moves_ownership() {
        let live = created_by_update("kubectl-client-side-apply");
        let config = partial(json!({"spec": {"replicas": 5}}));
        let out = apply(Some(&live), &config, "hpa-controller", true, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(
            *entry_of(&out, "hpa-controller"),
            json!({"manager": "hpa-controller", "operation": "Apply", "apiVersion": "apps/v1",
                   "time": T2, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}})
        );
        let old = &entry_of(&out, "kubectl-client-side-apply")["fieldsV1"]["f:spec"];
        assert!(old.get("f:replicas").is_none(), "{old}");
        assert!(old.get("f:template").is_some(), "{old}");
        // Entries are sorted: Apply before Update.
        assert_eq!(managed(&out)[0]["manager"], "hpa-controller");
    }

    #[test]
    fn a_field_dropped_from_the_next_apply_is_removed_unless_someone_else_owns_it() {
        let mut first = web(3, "nginx:1.25");
        first["spec"]["minReadySeconds"] = json!(10);
        first["metadata"]["labels"]["tier"] = json!("front");
        let live = apply(None, &first, "alice", false, T1).unwrap();

        let out = apply(Some(&live), &web(3, "nginx:1.25"), "alice", false, T2).unwrap();
        assert_eq!(without_managed(&out), web(3, "nginx:1.25"));
        assert_eq!(entry_of(&out, "alice")["fieldsV1"], web_fields());

        // Bob applied minReadySeconds too (same value): it stays, now Bob's only.
        let shared = apply(
            Some(&live),
            &partial(json!({"spec": {"minReadySeconds": 10}})),
            "bob",
            false,
            T2,
        )
        .unwrap();
        let out = apply(Some(&shared), &web(3, "nginx:1.25"), "alice", false, T3).unwrap();
        assert_eq!(out["spec"]["minReadySeconds"], 10);
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            entry_of(&out, "bob")["fieldsV1"],
            json!({"f:spec": {"f:minReadySeconds": {}}})
        );
    }

    #[test]
    fn containers_merge_per_name_across_managers() {
        let live = apply(None, &web(3, "nginx:1.25"), "alice", false, T1).unwrap();
        let sidecar = partial(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "envoy", "image": "envoy:1.30"}
        ]}}}}));
        let out = apply(Some(&live), &sidecar, "mesh", false, T2).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                {"name": "envoy", "image": "envoy:1.30"}
            ])
        );
        assert_eq!(
            entry_of(&out, "mesh")["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"envoy\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}})
        );
        assert_eq!(entry_of(&out, "alice")["fieldsV1"], web_fields());

        // Alice re-applies her image bump: the sidecar is not hers and stays.
        let out = apply(Some(&out), &web(3, "nginx:1.26"), "alice", false, T3).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(containers[1]["name"], "envoy");

        // The mesh stops applying its container: it goes.
        let out = apply(Some(&out), &partial(json!({})), "mesh", false, T3).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}])
        );
        assert_eq!(*entry_of(&out, "mesh"), Value::Null);
    }

    #[test]
    fn an_update_takes_over_the_changed_field_and_the_next_apply_conflicts() {
        let live = apply(None, &web(3, "nginx:1.25"), "kubectl", false, T1).unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(5);
        update_managed_fields(Some(&live), &mut edited, "kubectl-edit", None, &Deploy, T2).unwrap();
        assert_eq!(
            *entry_of(&edited, "kubectl-edit"),
            json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                   "time": T2, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}})
        );
        let mine = &entry_of(&edited, "kubectl")["fieldsV1"]["f:spec"];
        assert!(mine.get("f:replicas").is_none(), "{mine}");
        assert_eq!(entry_of(&edited, "kubectl")["time"], T1);

        let err = apply(Some(&edited), &web(3, "nginx:1.25"), "kubectl", false, T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
        );
        // With force the applier takes it back and the edit's entry, now empty, goes.
        let out = apply(Some(&edited), &web(3, "nginx:1.25"), "kubectl", true, T3).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            managed(&out),
            json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "time": T3, "fieldsType": "FieldsV1", "fieldsV1": web_fields()}])
        );
    }

    #[test]
    fn an_update_that_changes_nothing_leaves_entries_alone() {
        let live = apply(None, &web(3, "nginx:1.25"), "kubectl", false, T1).unwrap();
        let mut same = live.clone();
        update_managed_fields(Some(&live), &mut same, "kubectl-edit", None, &Deploy, T2).unwrap();
        assert_eq!(same, live);
    }

    #[test]
    fn an_update_that_removes_a_field_takes_it_from_its_owner() {
        let live = apply(None, &web(3, "nginx:1.25"), "kubectl", false, T1).unwrap();
        let mut new = live.clone();
        new["metadata"].as_object_mut().map(|m| m.remove("labels"));
        update_managed_fields(Some(&live), &mut new, "kubectl-edit", None, &Deploy, T2).unwrap();
        let entries = managed(&new);
        assert_eq!(entries.as_array().map(Vec::len), Some(1));
        assert!(
            entries[0]["fieldsV1"].get("f:metadata").is_none(),
            "{entries}"
        );
    }

    #[test]
    fn set_type_finalizers_union_and_prune_by_value() {
        let a = partial(json!({"metadata": {"name": "web", "namespace": "default",
                                            "finalizers": ["a.example.com/x"]}}));
        let b = partial(json!({"metadata": {"name": "web", "namespace": "default",
                                            "finalizers": ["b.example.com/y"]}}));
        let live = apply(None, &a, "alice", false, T1).unwrap();
        let out = apply(Some(&live), &b, "bob", false, T2).unwrap();
        assert_eq!(
            out["metadata"]["finalizers"],
            json!(["a.example.com/x", "b.example.com/y"])
        );
        assert_eq!(
            entry_of(&out, "alice")["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"a.example.com/x\"": {}}}})
        );
        assert_eq!(
            entry_of(&out, "bob")["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"b.example.com/y\"": {}}}})
        );
        let none =
            partial(json!({"metadata": {"name": "web", "namespace": "default", "finalizers": []}}));
        let out = apply(Some(&out), &none, "alice", false, T3).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b.example.com/y"]));
        assert_eq!(*entry_of(&out, "alice"), Value::Null);
    }

    #[test]
    fn atomic_tolerations_are_replaced_and_owned_as_a_whole() {
        let tolerations = |key: &str| {
            partial(json!({"spec": {"template": {"spec": {"tolerations": [
                {"key": key, "operator": "Exists", "effect": "NoSchedule"}
            ]}}}}))
        };
        let live = apply(None, &tolerations("gpu"), "alice", false, T1).unwrap();
        assert_eq!(
            entry_of(&live, "alice")["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:tolerations": {}}}}})
        );
        let err = apply(Some(&live), &tolerations("spot"), "bob", false, T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.template.spec.tolerations"
        );
        let out = apply(Some(&live), &tolerations("spot"), "bob", true, T2).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}])
        );
        assert_eq!(*entry_of(&out, "alice"), Value::Null);
    }

    #[test]
    fn atomic_maps_are_replaced_and_granular_maps_merge() {
        let live = apply(None, &web(3, "nginx:1.25"), "alice", false, T1).unwrap();
        let config = partial(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "blue"}},
            "spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}}}
        }));
        let out = apply(Some(&live), &config, "bob", true, T2).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "team": "blue"})
        );
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"app": "web", "tier": "x"}})
        );
        assert_eq!(
            entry_of(&out, "bob")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:team": {}}}, "f:spec": {"f:selector": {}}})
        );
    }

    #[test]
    fn map_list_merge_order_follows_structured_merge_diff() {
        let info = Deploy;
        let typed = Typed { info: &info };
        let list = |names: &[&str]| {
            let items: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
            json!({"spec": {"template": {"spec": {"containers": items}}}})
        };
        let merged = typed
            .merge_root(&list(&["a", "b", "c"]), &list(&["c", "a", "d"]))
            .unwrap();
        assert_eq!(merged, list(&["b", "c", "a", "d"]));
        let merged = typed
            .merge_root(&list(&["a", "b"]), &list(&["b", "x"]))
            .unwrap();
        assert_eq!(merged, list(&["a", "b", "x"]));
    }

    #[test]
    fn duplicated_live_items_are_replaced_by_the_applied_one() {
        let mut live = web(3, "nginx:1.25");
        live["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"name": "B", "value": "3"}]);
        let live = apply(None, &live, "alice", false, T1).unwrap_err();
        // The applied configuration itself may not have duplicates.
        assert_eq!(
            live.to_string(),
            "Internal error occurred: failed to create typed patch object (default/web; apps/v1, \
             Kind=Deployment): .spec.template.spec.containers[name=\"nginx\"].env: duplicate \
             entries for key [name=\"A\"]"
        );
        let mut stored = web(3, "nginx:1.25");
        stored["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"name": "B", "value": "3"}]);
        update_managed_fields(None, &mut stored, "legacy", None, &Deploy, T1).unwrap();
        let config = partial(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "env": [{"name": "A", "value": "9"}]}
        ]}}}}));
        let out = apply(Some(&stored), &config, "alice", true, T2).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "9"}, {"name": "B", "value": "3"}])
        );
    }

    #[test]
    fn status_is_not_owned_through_the_main_resource_and_spec_not_through_status() {
        let mut config = web(3, "nginx:1.25");
        config["status"] = json!({"replicas": 3});
        let out = apply(None, &config, "alice", false, T1).unwrap();
        assert_eq!(entry_of(&out, "alice")["fieldsV1"], web_fields());

        let live = created_by_update("kubectl");
        let mut new = live.clone();
        new["status"] = json!({"replicas": 3, "readyReplicas": 3});
        new["spec"]["replicas"] = json!(9);
        // Client-sent managedFields are ignored on subresources.
        new["metadata"]["managedFields"] = json!([]);
        update_managed_fields(
            Some(&live),
            &mut new,
            "kube-controller-manager",
            Some("status"),
            &Deploy,
            T2,
        )
        .unwrap();
        assert_eq!(
            *entry_of(&new, "kube-controller-manager"),
            json!({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                   "time": T2, "fieldsType": "FieldsV1", "subresource": "status",
                   "fieldsV1": {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}})
        );
        assert!(entry_of(&new, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some());
    }

    #[test]
    fn status_applies_are_keyed_by_subresource() {
        let live = created_by_update("kubectl");
        let config = partial(json!({"status": {"replicas": 3}}));
        let out = server_side_apply(
            Some(&live),
            &config,
            "ctrl",
            Some("status"),
            false,
            &Deploy,
            T2,
        )
        .unwrap();
        assert_eq!(
            *entry_of(&out, "ctrl"),
            json!({"manager": "ctrl", "operation": "Apply", "apiVersion": "apps/v1", "time": T2,
                   "fieldsType": "FieldsV1", "subresource": "status",
                   "fieldsV1": {"f:status": {"f:replicas": {}}}})
        );
        let conflicting = partial(json!({"status": {"replicas": 4}}));
        let err = server_side_apply(
            Some(&out),
            &conflicting,
            "other",
            Some("status"),
            false,
            &Deploy,
            T3,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"ctrl\" with subresource \"status\": .status.replicas"
        );
    }

    #[test]
    fn client_sent_managed_fields_are_accepted_reset_or_ignored() {
        let live = created_by_update("kubectl-client-side-apply");
        // Valid ones replace the stored ones.
        let mut new = live.clone();
        let given = json!([{"manager": "someone", "operation": "Update", "apiVersion": "apps/v1",
                            "time": T1, "fieldsType": "FieldsV1",
                            "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        new["metadata"]["managedFields"] = given.clone();
        update_managed_fields(Some(&live), &mut new, "kubectl", None, &Deploy, T2).unwrap();
        assert_eq!(managed(&new), given);

        // Invalid ones are ignored: the stored ones stay.
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Patch",
                                                   "apiVersion": "apps/v1", "fieldsType": "FieldsV1"}]);
        update_managed_fields(Some(&live), &mut new, "kubectl", None, &Deploy, T2).unwrap();
        assert_eq!(managed(&new), managed(&live));

        // [] clears them, and tracking stays off until the next apply.
        let mut cleared = live.clone();
        cleared["metadata"]["managedFields"] = json!([]);
        update_managed_fields(Some(&live), &mut cleared, "kubectl", None, &Deploy, T2).unwrap();
        assert!(
            cleared["metadata"].get("managedFields").is_none(),
            "{cleared}"
        );
        let mut edited = cleared.clone();
        edited["spec"]["replicas"] = json!(4);
        update_managed_fields(
            Some(&cleared),
            &mut edited,
            "kubectl-edit",
            None,
            &Deploy,
            T2,
        )
        .unwrap();
        assert!(
            edited["metadata"].get("managedFields").is_none(),
            "{edited}"
        );

        // An apply to an untracked object credits what is there to "before-first-apply".
        let config = partial(json!({"spec": {"replicas": 5}}));
        let err = apply(Some(&edited), &config, "hpa", false, T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let out = apply(Some(&edited), &config, "hpa", true, T3).unwrap();
        let entries = managed(&out);
        let names: Vec<&Value> = entries
            .as_array()
            .map(|l| l.iter().map(|e| &e["manager"]).collect())
            .unwrap_or_default();
        assert_eq!(names, [&json!("hpa"), &json!("before-first-apply")]);
    }

    #[test]
    fn client_sent_managers_are_validated() {
        let live = created_by_update("kubectl");
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([{"manager": "x".repeat(129), "operation": "Update",
                                                   "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                                                   "fieldsV1": {"f:spec": {}}}]);
        let err =
            update_managed_fields(Some(&live), &mut new, "kubectl", None, &Deploy, T2).unwrap_err();
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "FieldValueTooLong", "field": "metadata.managedFields[0].manager",
                    "message": "Too long: may not be more than 128 bytes"}])
        );
    }

    #[test]
    fn update_entries_past_the_cap_merge_into_ancient_changes() {
        let mut obj = created_by_update("creator");
        for i in 0..11 {
            let old = obj.clone();
            obj["metadata"]["labels"][format!("l{i}")] = json!("v");
            let now = format!("2024-01-03T00:00:{i:02}Z");
            update_managed_fields(
                Some(&old),
                &mut obj,
                &format!("m{i:02}"),
                None,
                &Deploy,
                &now,
            )
            .unwrap();
        }
        let entries = managed(&obj);
        let names: Vec<&str> = entries
            .as_array()
            .map(|l| l.iter().filter_map(|e| e["manager"].as_str()).collect())
            .unwrap_or_default();
        // The 11th entry (m09) merged the two oldest, creator and m00, into ancient-changes;
        // the 12th (m10) merged m01 into it, which gave it m01's time.
        assert_eq!(
            names,
            [
                "ancient-changes",
                "m02",
                "m03",
                "m04",
                "m05",
                "m06",
                "m07",
                "m08",
                "m09",
                "m10"
            ]
        );
        let ancient = entry_of(&obj, "ancient-changes");
        assert_eq!(ancient["time"], "2024-01-03T00:00:01Z");
        assert_eq!(ancient["operation"], "Update");
        assert_eq!(ancient["apiVersion"], "apps/v1");
        let fields = &ancient["fieldsV1"];
        assert!(
            fields["f:metadata"]["f:labels"].get("f:l0").is_some(),
            "{fields}"
        );
        assert!(
            fields["f:metadata"]["f:labels"].get("f:l1").is_some(),
            "{fields}"
        );
        assert!(fields["f:spec"].get("f:replicas").is_some(), "{fields}");

        // One more: the next oldest joins the bucket.
        let old = obj.clone();
        obj["metadata"]["labels"]["l11"] = json!("v");
        update_managed_fields(
            Some(&old),
            &mut obj,
            "m11",
            None,
            &Deploy,
            "2024-01-03T00:01:00Z",
        )
        .unwrap();
        assert_eq!(managed(&obj).as_array().map(Vec::len), Some(10));
        let ancient = entry_of(&obj, "ancient-changes");
        assert_eq!(ancient["time"], "2024-01-03T00:00:02Z");
        assert!(ancient["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:l2")
            .is_some());
        assert_eq!(*entry_of(&obj, "m02"), Value::Null);
        // Apply entries are never merged.
        let config = partial(json!({"metadata": {"name": "web", "namespace": "default",
                                                 "annotations": {"a": "b"}}}));
        let out = apply(Some(&obj), &config, "alice", false, T3).unwrap();
        assert_eq!(managed(&out).as_array().map(Vec::len), Some(11));
    }

    #[test]
    fn kubectl_upgrading_from_client_side_apply_may_take_over_unchanged_fields() {
        let mut live = created_by_update("kubectl-client-side-apply");
        let last = web(3, "nginx:1.25");
        live["metadata"]["annotations"] =
            json!({LAST_APPLIED_ANNOTATION: serde_json::to_string(&last).unwrap()});
        let out = apply(Some(&live), &web(5, "nginx:1.25"), "kubectl", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let annotation = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap_or_default();
        let mut text = String::new();
        go_json(&web(5, "nginx:1.25"), &mut text);
        assert_eq!(annotation, format!("{text}\n"));
        // Another manager is never allowed to.
        let err = apply(Some(&live), &web(5, "nginx:1.25"), "other", false, T2).unwrap_err();
        assert_eq!(err.to_status()["code"], 409);
        // Nor kubectl when the live value is no longer the last-applied one.
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(7);
        update_managed_fields(Some(&live), &mut drifted, "hpa", None, &Deploy, T2).unwrap();
        let err = apply(Some(&drifted), &web(5, "nginx:1.25"), "kubectl", false, T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"hpa\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn fields_v1_round_trips_a_realistic_deployment() {
        let fields = json!({
            "f:metadata": {
                "f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}},
                "f:finalizers": {".": {}, "v:\"example.com/protect\"": {}},
                "f:labels": {".": {}, "f:app": {}}
            },
            "f:spec": {
                "f:progressDeadlineSeconds": {},
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                               "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:env": {".": {}, "k:{\"name\":\"MODE\"}": {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}, "f:protocol": {}
                            }},
                            "f:resources": {}
                        }},
                        "f:dnsPolicy": {},
                        "f:tolerations": {}
                    }
                }
            },
            "f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {
                ".": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}
            }}}
        });
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert_eq!(set.to_fields_v1(), fields);
        let printed: Vec<String> = set.paths().iter().map(ToString::to_string).collect();
        assert!(printed.contains(&".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"].containerPort".to_string()), "{printed:?}");
        assert!(printed.contains(&".metadata.finalizers[=\"example.com/protect\"]".to_string()));
        assert!(printed.contains(&".metadata.labels".to_string()));
        assert!(!printed.contains(&".spec".to_string()));
        assert_eq!(printed.len(), 34);
        // Key fields are sorted whatever order they were written in; unknown element types
        // are dropped.
        let odd =
            json!({"f:p": {"k:{\"protocol\":\"TCP\",\"containerPort\":80}": {}, "x:future": {}}});
        assert_eq!(
            FieldSet::from_fields_v1(&odd).unwrap().to_fields_v1(),
            json!({"f:p": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}}})
        );
        for bad in [
            json!({"q": {}}),
            json!({"fx": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"i:x": {}}),
        ] {
            assert_eq!(
                FieldSet::from_fields_v1(&bad).unwrap_err().to_status()["code"],
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn field_set_operations() {
        let set = |v: Value| FieldSet::from_fields_v1(&v).unwrap();
        let a = set(json!({"f:a": {".": {}, "f:b": {}, "f:c": {}}, "f:d": {}}));
        let b = set(json!({"f:a": {"f:c": {}, "f:e": {}}, "f:f": {}}));
        assert_eq!(
            a.union(&b).to_fields_v1(),
            json!({"f:a": {".": {}, "f:b": {}, "f:c": {}, "f:e": {}}, "f:d": {}, "f:f": {}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:a": {"f:c": {}}})
        );
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:a": {".": {}, "f:b": {}}, "f:d": {}})
        );
        let parent = set(json!({"f:a": {}}));
        assert_eq!(
            a.difference(&parent).to_fields_v1(),
            json!({"f:a": {"f:b": {}, "f:c": {}}, "f:d": {}})
        );
        assert_eq!(
            a.recursive_difference(&parent).to_fields_v1(),
            json!({"f:d": {}})
        );
        assert!(a.intersection(&set(json!({"f:z": {}}))).is_empty());
        // Nodes emptied by a difference disappear; a union merges nested children.
        let deep = set(json!({"f:a": {"f:b": {".": {}, "f:x": {}}}, "f:d": {"f:y": {}}}));
        assert_eq!(
            deep.difference(&set(json!({"f:a": {"f:b": {".": {}, "f:x": {}}}})))
                .to_fields_v1(),
            json!({"f:d": {"f:y": {}}})
        );
        assert_eq!(
            deep.recursive_difference(&set(json!({"f:d": {}})))
                .to_fields_v1(),
            json!({"f:a": {"f:b": {".": {}, "f:x": {}}}})
        );
        assert_eq!(
            deep.union(&set(json!({"f:a": {"f:b": {"f:z": {}}}})))
                .to_fields_v1(),
            json!({"f:a": {"f:b": {".": {}, "f:x": {}, "f:z": {}}}, "f:d": {"f:y": {}}})
        );
        let p = [
            PathElement::Field("a".into()),
            PathElement::Field("b".into()),
        ];
        assert!(a.has(&p));
        assert!(!b.has(&p));
    }

    #[test]
    fn comparing_a_new_object_matches_the_general_comparison() {
        let objects = [
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {}},
                "spec": {"replicas": 3, "paused": null, "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}],
                         "ports": [{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 80}]},
                        {"name": "b", "args": ["x", "y"], "resources": {}}
                    ]}}},
                "status": {"replicas": 1}
            }),
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}, 3]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
            json!({"metadata": {"name": "n"}, "data": {"k": "v", "empty": ""}, "list": [], "m": {}}),
            json!({"a": [1, 2, 2], "b": [{"x": 1}], "c": null}),
        ];
        let infos: [&dyn TypeInfo; 2] = [&Deploy, &NoTypeInfo];
        for info in infos {
            let typed = Typed { info };
            for obj in &objects {
                let general = typed.compare_root(&json!({}), obj);
                let fast = typed.compare_created(obj).expect("the fast path applies");
                match (general, fast) {
                    (Ok(g), Ok(f)) => {
                        assert_eq!(g.added, f.added, "{obj}");
                        assert_eq!(g.modified, f.modified, "{obj}");
                        assert_eq!(g.removed, f.removed, "{obj}");
                    }
                    (Err(g), Err(f)) => assert_eq!(g, f, "{obj}"),
                    (g, f) => panic!("{obj}: general {:?}, fast {:?}", g.is_ok(), f.is_ok()),
                }
            }
            assert!(typed.compare_created(&json!({})).is_none());
        }
    }

    #[test]
    fn field_set_of_an_object_follows_the_type_info() {
        let obj = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "protocol": "UDP"}, {"containerPort": 80}
            ]}]}}, "paused": null}
        });
        let set = FieldSet::from_value(&obj, &Deploy).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:annotations": {}, "f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {"f:paused": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"a\"}": {".": {}, "f:name": {}, "f:ports": {
                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                        "k:{\"containerPort\":80,\"protocol\":\"UDP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}
                    }}
                }}}}
            })
        );
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}, 3]}}}});
        assert_eq!(
            FieldSet::from_value(&bad, &Deploy).unwrap_err().to_string(),
            "errors:\n  .spec.template.spec.containers: element 0: associative list with keys has \
             an element that omits all key fields [\"name\"] (and doesn't have default values for \
             any key fields)\n  .spec.template.spec.containers: element 1: associative list with \
             keys may not have non-map elements"
        );
    }

    #[test]
    fn apply_rejects_bad_configurations() {
        let live = apply(None, &web(3, "nginx:1.25"), "kubectl", false, T1).unwrap();
        let cases = [
            (json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "web"}}),
             "invalid object type: apps/v1beta1, Kind=Deployment"),
            (json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}}),
             "invalid object type: apps/v1, Kind=StatefulSet"),
            (json!({"kind": "Deployment", "metadata": {"name": "web"}}),
             "invalid object type: /, Kind=Deployment"),
            (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other"}}),
             "the name of the object (other) does not match the name on the URL (web)"),
            (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}),
             "the name of the object () does not match the name on the URL (web)"),
            (json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "prod"}}),
             "the namespace of the provided object does not match the namespace sent on the request"),
            (json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "managedFields": []}}),
             "metadata.managedFields must be nil"),
            (json!(["not", "an", "object"]),
             "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
        ];
        for (config, message) in cases {
            let err = apply(Some(&live), &config, "kubectl", false, T2).unwrap_err();
            let status = err.to_status();
            assert_eq!(status["code"], 400, "{config}");
            assert_eq!(status["message"], message, "{config}");
        }
        let nameless = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        let err = server_side_apply(None, &nameless, "kubectl", None, false, &NoTypeInfo, T1)
            .unwrap_err();
        assert_eq!(err.to_status()["code"], 400);
        let err = server_side_apply(None, &web(1, "x"), "", None, false, &Deploy, T1).unwrap_err();
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["kind"], "PatchOptions");
        assert_eq!(status["details"]["group"], "meta.k8s.io");
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "FieldValueRequired", "field": "fieldManager",
                    "message": "Required value: is required for apply patch"}])
        );
    }

    #[test]
    fn field_manager_names_are_validated_and_derived_from_the_user_agent() {
        assert!(validate_field_manager(None, "UpdateOptions", false).is_ok());
        assert!(validate_field_manager(Some("kubectl-edit"), "PatchOptions", true).is_ok());
        let err =
            validate_field_manager(Some(&"m".repeat(129)), "CreateOptions", false).unwrap_err();
        assert_eq!(
            err.to_status()["details"]["causes"],
            json!([{"reason": "FieldValueTooLong", "field": "fieldManager",
                    "message": "Too long: may not be more than 128 bytes"}])
        );
        let err = validate_field_manager(Some("bad\u{1}name"), "PatchOptions", true).unwrap_err();
        assert_eq!(
            err.to_status()["details"]["causes"],
            json!([{"reason": "FieldValueInvalid", "field": "fieldManager",
                    "message": "Invalid value: \"bad\\x01name\": invalid character U+0001 (at position 3)"}])
        );
        assert_eq!(
            default_manager(Some("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9")),
            "kubectl"
        );
        assert_eq!(
            default_manager(Some("OpenAPI-Generator/31.0.0/python")),
            "OpenAPI-Generator"
        );
        assert_eq!(default_manager(Some("kube\u{7}rs")), "kubers");
        assert_eq!(default_manager(Some(&"é".repeat(100))), "é".repeat(64));
        assert_eq!(default_manager(None), "unknown");
        assert_eq!(default_manager(Some("/x")), "unknown");
    }

    #[test]
    fn managed_field_entries_decode_and_sort_like_kubernetes() {
        let list = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05.123+01:00",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T02:04:05Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": T3,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}}
        ]);
        let managed = decode_managed(Some(&list)).unwrap();
        let encoded = encode_managed(&managed).unwrap_or_default();
        let names: Vec<&Value> = encoded
            .as_array()
            .map(|l| l.iter().map(|e| &e["manager"]).collect())
            .unwrap_or_default();
        // Apply first; then by time (a and b are the same second, then by name).
        assert_eq!(names, [&json!("z"), &json!("a"), &json!("b")]);
        assert_eq!(encoded[2]["time"], "2024-01-02T02:04:05Z");
        for (bad, message) in [
            (
                json!([{"manager": "a", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
                "operation must be `Apply` or `Update`",
            ),
            (
                json!([{"manager": "a", "operation": "Apply", "fieldsType": "FieldsV1"}]),
                "apiVersion must not be empty",
            ),
            (
                json!([{"manager": "a", "operation": "Apply", "apiVersion": "v1"}]),
                "missing fieldsType in managed fields entry 0",
            ),
            (
                json!([{"manager": "a", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
                "invalid fieldsType \"FieldsV2\" in managed fields entry 0",
            ),
        ] {
            assert_eq!(decode_managed(Some(&bad)).unwrap_err(), message);
        }
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(Some(&json!([{"manager": "a"}]))));
        assert!(!is_reset(None));
    }

    #[test]
    fn conflict_paths_print_keys_sets_and_go_quoting() {
        let p = FieldPath(vec![
            PathElement::Field("spec".into()),
            PathElement::Key(vec![
                ("containerPort".into(), json!(80)),
                ("protocol".into(), json!("TCP")),
            ]),
            PathElement::Value(json!("a\"b")),
            PathElement::Index(2),
        ]);
        assert_eq!(
            p.to_string(),
            ".spec[containerPort=80,protocol=\"TCP\"][=\"a\\\"b\"][2]"
        );
        assert_eq!(
            PathElement::Value(json!("<a&b>")).to_fields_key(),
            "v:\"\\u003ca\\u0026b\\u003e\""
        );
        assert_eq!(
            ManagerId::new("m", Operation::Update, "v1", "status").key,
            "{\"manager\":\"m\",\"operation\":\"Update\",\"apiVersion\":\"v1\",\"subresource\":\"status\"}"
        );
        assert_eq!(
            ManagerId::new("m", Operation::Apply, "v1", "").describe(),
            "\"m\""
        );
    }

    /// `list` is a set of strings (structured-merge-diff's set_test.go shape).
    struct SetInfo;

    impl TypeInfo for SetInfo {
        fn list_type(&self, path: &[&str]) -> ListType {
            match path {
                ["list"] => ListType::Set,
                _ => ListType::Atomic,
            }
        }
        fn patch_merge_key(&self, _path: &[&str]) -> Option<String> {
            None
        }
        fn patch_strategies(&self, _path: &[&str]) -> Vec<String> {
            Vec::new()
        }
        fn is_map(&self, _path: &[&str]) -> bool {
            false
        }
        fn is_atomic(&self, _path: &[&str]) -> bool {
            false
        }
    }

    fn listed(items: &[&str]) -> Value {
        json!({"apiVersion": "v1", "kind": "L", "metadata": {"name": "l"}, "list": items})
    }

    #[test]
    fn set_cases_from_structured_merge_diff() {
        let ssa = |live: Option<&Value>, cfg: &Value, m: &str| {
            server_side_apply(live, cfg, m, None, false, &SetInfo, T1).unwrap()
        };
        let update = |old: &Value, items: &[&str], m: &str| {
            let mut new = old.clone();
            new["list"] = json!(items);
            update_managed_fields(Some(old), &mut new, m, None, &SetInfo, T2).unwrap();
            new
        };
        // apply_update_apply_no_overlap
        let live = ssa(None, &listed(&["a", "c"]), "default");
        let live = update(&live, &["a", "b", "c", "d"], "controller");
        let out = ssa(
            Some(&live),
            &listed(&["a", "aprime", "c", "cprime"]),
            "default",
        );
        assert_eq!(out["list"], json!(["a", "b", "aprime", "c", "d", "cprime"]));
        assert_eq!(
            entry_of(&out, "default")["fieldsV1"],
            json!({"f:list": {"v:\"a\"": {}, "v:\"aprime\"": {}, "v:\"c\"": {}, "v:\"cprime\"": {}}})
        );
        assert_eq!(
            entry_of(&out, "controller")["fieldsV1"],
            json!({"f:list": {"v:\"b\"": {}, "v:\"d\"": {}}})
        );
        // apply_update_apply_reorder: reordering a set is no change, nobody gains anything.
        let live = ssa(None, &listed(&["a", "b", "c", "d"]), "default");
        let live = update(&live, &["a", "d", "c", "b"], "controller");
        assert_eq!(*entry_of(&live, "controller"), Value::Null);
        let out = ssa(Some(&live), &listed(&["a", "b", "c", "d"]), "default");
        assert_eq!(out["list"], json!(["a", "b", "c", "d"]));
        // apply_twice_remove
        let out = ssa(Some(&out), &listed(&["a", "c"]), "default");
        assert_eq!(out["list"], json!(["a", "c"]));
    }

    #[test]
    fn go_json_matches_encoding_json() {
        let mut out = String::new();
        go_json(
            &json!({"b": [1.0, 1.5, 1e21, 1e-7, 0.000001, -3], "a": "x<y>&\u{1}\n"}),
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"a":"x\u003cy\u003e\u0026\u0001\n","b":[1,1.5,1e+21,1e-7,0.000001,-3]}"#
        );
    }

    #[test]
    fn a_namespace_sent_for_a_cluster_scoped_object_is_dropped() {
        let live = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        let config = json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "team-a", "namespace": "default", "labels": {"x": "y"}}});
        let out = server_side_apply(
            Some(&live),
            &config,
            "kubectl",
            None,
            false,
            &NoTypeInfo,
            T1,
        )
        .unwrap();
        assert_eq!(out["metadata"].get("namespace"), None);
        assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
    }

    #[test]
    fn numbers_compare_across_int_and_float() {
        let live = apply(None, &web(3, "nginx:1.25"), "alice", false, T1).unwrap();
        let config = partial(json!({"spec": {"replicas": 3.0}}));
        let out = apply(Some(&live), &config, "bob", false, T2).unwrap();
        assert!(entry_of(&out, "bob")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some());
    }
}
