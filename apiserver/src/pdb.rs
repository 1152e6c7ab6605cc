//! PodDisruptionBudgets at eviction time (the eviction subresource's admission).

use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::selectors::LabelSelector;
use crate::storage::Outcome;
use crate::{meta, Api};

/// Refuses an eviction that a matching PodDisruptionBudget does not allow, and uses up one
/// allowed disruption when it does (Kubernetes' eviction REST).
pub async fn check_eviction(api: &Api, pod: &Value) -> Result<()> {
    let Some(ns) = meta::namespace(pod) else {
        return Ok(());
    };
    // Terminal pods may always be evicted.
    let phase = pod
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return Ok(());
    }
    let prefix = format!("/registry/poddisruptionbudgets/{ns}/");
    let snap = api.cache.snapshot(&prefix);
    let mut matching = Vec::new();
    for (key, e) in snap.items {
        let obj = e.obj();
        let Some(sel) = obj.get("spec").and_then(|s| s.get("selector")) else {
            continue;
        };
        let Ok(sel) = LabelSelector::from_object(sel) else {
            continue;
        };
        if !sel.is_empty() && sel.matches(meta::labels(pod)) {
            matching.push(key);
        }
    }
    if matching.len() > 1 {
        return Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let Some(key) = matching.pop() else {
        return Ok(());
    };
    for _ in 0..8 {
        let Some(cur) = api.storage.get(&key, None, false).await? else {
            return Ok(());
        };
        let gen = meta::metadata(&cur.obj)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = cur.obj.get("status").cloned().unwrap_or(json!({}));
        let observed = status
            .get("observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if observed < gen {
            return Err(ApiError::TooManyRequests(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget is still being processed by the server.".into(),
            ));
        }
        let allowed = status
            .get("disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed < 1 {
            let name = meta::name(&cur.obj).unwrap_or("");
            return Err(ApiError::TooManyRequests(format!(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {name} needs {} healthy pods and has {} currently",
                status.get("desiredHealthy").and_then(Value::as_i64).unwrap_or(0),
                status.get("currentHealthy").and_then(Value::as_i64).unwrap_or(0)
            )));
        }
        let mut next = cur.obj.clone();
        meta::set_at(&mut next, "status.disruptionsAllowed", json!(allowed - 1));
        match api.storage.update(&key, cur.rv, &next, &[]).await? {
            Outcome::Done(_) => return Ok(()),
            Outcome::Failed(_) => continue,
        }
    }
    Err(ApiError::TooManyRequests(
        "Cannot evict pod: the disruption budget keeps changing; retry".into(),
    ))
}
