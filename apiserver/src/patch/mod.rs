//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch and
//! server-side apply. All of them work on objects as `serde_json::Value`; what they need to
//! know about an object's structure (how a list merges, which maps are atomic) comes from a
//! [`TypeInfo`], which the schema registry implements for built-in types and for custom
//! resources.

pub mod apply;
pub mod json;
pub mod merge;
pub mod strategic;

/// How a list field merges (Kubernetes' `x-kubernetes-list-type` and
/// `x-kubernetes-list-map-keys`, or the strategic-merge `patchMergeKey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole (the default for lists without merge metadata).
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects identified by these key fields (e.g. `["containerPort", "protocol"]`).
    Map(Vec<String>),
}

/// Structural facts about one kind of object, addressed by field path.
///
/// `path` is the list of field names from the object root to the field in question; list
/// elements and map values are transparent (`["spec", "template", "spec", "containers",
/// "ports"]` names the ports of every container). Map values of `additionalProperties` maps are
/// addressed with the element name `"*"` (e.g. `["metadata", "labels", "*"]`), which most
/// callers never need.
pub trait TypeInfo: Send + Sync {
    /// How the list at `path` merges under server-side apply (and `x-kubernetes-list-type`).
    fn list_type(&self, path: &[&str]) -> ListType;
    /// The strategic-merge-patch merge key of the list at `path` (`patchMergeKey`), if any.
    fn patch_merge_key(&self, path: &[&str]) -> Option<String>;
    /// The strategic-merge-patch strategies of the field at `path` (`patchStrategy`, e.g.
    /// `["merge"]`, `["merge", "retainKeys"]`, `["replace"]`); empty when none is declared.
    fn patch_strategies(&self, path: &[&str]) -> Vec<String>;
    /// Whether the object at `path` is a map with arbitrary keys (`additionalProperties`, e.g.
    /// labels, `data`) rather than a struct with declared fields.
    fn is_map(&self, path: &[&str]) -> bool;
    /// Whether the map/struct at `path` is atomic (`x-kubernetes-map-type: atomic`): replaced
    /// as a whole by apply, and owned as a whole in managed fields.
    fn is_atomic(&self, path: &[&str]) -> bool;
}

/// A [`TypeInfo`] that knows nothing: every list atomic, no merge keys, nothing atomic.
/// Strategic merge patches are refused for such types; it is what an unstructured custom
/// resource without list metadata looks like.
pub struct NoTypeInfo;

impl TypeInfo for NoTypeInfo {
    fn list_type(&self, _path: &[&str]) -> ListType {
        ListType::Atomic
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
