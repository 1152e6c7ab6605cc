//! Entry points for fuzzing the decoders and engines that take a client's bytes: request
//! bodies (JSON, YAML, protobuf), the patch engines and the selector parsers. The `fuzz/`
//! crate's cargo-fuzz targets call these, and so does the suite's smoke run
//! (`tests/fuzz_smoke.rs`). Each must return normally for any input: bad input is an error,
//! never a panic, a hang or an unbounded allocation.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::codec;
use crate::patch;
use crate::schema::Schemas;
use crate::selectors::{FieldSelector, LabelSelector};

pub use keelson_store::fuzz::Target;

/// The fuzz targets, by name (the `fuzz/fuzz_targets/<name>.rs` files).
pub const TARGETS: &[Target] = &[
    ("decode_json", decode_json),
    ("decode_yaml", decode_yaml),
    ("decode_protobuf", decode_protobuf),
    ("json_patch", json_patch),
    ("merge_patch", merge_patch),
    ("strategic_merge_patch", strategic_merge_patch),
    ("label_selector", label_selector),
    ("field_selector", field_selector),
];

pub fn decode_json(data: &[u8]) {
    let _ = codec::decode_object(Some(codec::JSON), data);
}

pub fn decode_yaml(data: &[u8]) {
    let _ = codec::decode_object(Some(codec::YAML), data);
}

pub fn decode_protobuf(data: &[u8]) {
    let _ = codec::decode_object(Some(codec::PROTOBUF), data);
}

/// Splits the input at its first `0xff` (never in valid UTF-8) into two JSON documents: the
/// object and the patch.
fn two_documents(data: &[u8]) -> Option<(Value, Value)> {
    let cut = data.iter().position(|b| *b == 0xff)?;
    let a = serde_json::from_slice(&data[..cut]).ok()?;
    let b = serde_json::from_slice(&data[cut + 1..]).ok()?;
    Some((a, b))
}

pub fn json_patch(data: &[u8]) {
    if let Some((target, p)) = two_documents(data) {
        let _ = patch::json::json_patch(&target, &p);
    }
}

pub fn merge_patch(data: &[u8]) {
    if let Some((target, p)) = two_documents(data) {
        let _ = patch::merge::merge_patch(&target, &p);
    }
}

fn schemas() -> &'static Arc<Schemas> {
    static S: OnceLock<Arc<Schemas>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Schemas::builtin()))
}

/// A strategic merge patch of a Pod (lists merged by key, `$patch` directives, retainKeys).
pub fn strategic_merge_patch(data: &[u8]) {
    if let Some((target, p)) = two_documents(data) {
        let info = schemas().type_info("io.k8s.api.core.v1.Pod");
        let _ = patch::strategic::strategic_merge_patch(&target, &p, &info);
    }
}

pub fn label_selector(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = LabelSelector::parse(s) {
        let mut labels = serde_json::Map::new();
        labels.insert("app".into(), Value::String("web".into()));
        let _ = sel.matches(Some(&labels));
    }
}

pub fn field_selector(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = FieldSelector::parse(s) {
        let _ = sel.matches(|f| (f == "metadata.name").then(|| "x".to_string()));
    }
}
