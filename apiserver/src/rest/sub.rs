//! Subresources: status, scale, binding, eviction, finalize, ephemeralcontainers, and the
//! kubelet-served streaming ones (log, exec, attach, portforward, proxy).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::read::present;
use super::write::{self, delete_object, delete_options, update_object, Change, Via, WriteCtx};
use super::{respond, Req, Target};
use crate::codec::{self, Output};
use crate::error::{ApiError, Result, Subject};
use crate::registry::{ResourceDef, Sub};
use crate::{meta, Api};

pub async fn serve(api: &Arc<Api>, t: &Target, sub: Sub, req: &Req) -> Result<Response> {
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.as_deref();
    match (sub, req.method.clone()) {
        (Sub::Status, Method::GET) | (Sub::Ephemeral, Method::GET) => {
            let obj = current(api, &t.def, ns, &name).await?;
            Ok(respond(
                StatusCode::OK,
                Output::Json,
                &present(&t.def, &obj),
                &[],
            ))
        }
        (Sub::Status, Method::PUT) => {
            let mut ctx = WriteCtx::from_req(req)?;
            let body = codec::decode_object(req.header("content-type"), &req.body)?;
            let v = update_object(
                api,
                &t.def,
                ns,
                &name,
                Change::Replace(body),
                Via::sub(Sub::Status),
                &mut ctx,
            )
            .await?;
            Ok(respond(
                StatusCode::OK,
                Output::Json,
                &present(&t.def, &v),
                &ctx.warnings,
            ))
        }
        (Sub::Status, Method::PATCH) => {
            let (v, warnings, _) =
                write::patch_object(api, t, req, &name, Some(Sub::Status)).await?;
            Ok(respond(
                StatusCode::OK,
                Output::Json,
                &present(&t.def, &v),
                &warnings,
            ))
        }
        (Sub::Ephemeral, Method::PUT | Method::PATCH) => ephemeral(api, t, req, &name).await,
        (Sub::Scale, Method::GET) => {
            let obj = current(api, &t.def, ns, &name).await?;
            Ok(respond(
                StatusCode::OK,
                Output::Json,
                &scale_of(&t.def, &obj)?,
                &[],
            ))
        }
        (Sub::Scale, Method::PUT | Method::PATCH) => scale_update(api, t, req, &name).await,
        (Sub::Binding, Method::POST) => binding(api, t, req, &name).await,
        (Sub::Eviction, Method::POST) => eviction(api, t, req, &name).await,
        (Sub::Finalize, Method::PUT) => finalize(api, t, req, &name).await,
        (Sub::Token, Method::POST) => {
            crate::auth::sa::token_request(api, ns.unwrap_or_default(), &name, req).await
        }
        (Sub::Log, Method::GET) if t.def.plural == "pods" && t.def.group.is_empty() => {
            let obj = current(api, &t.def, ns, &name).await?;
            super::kubelet::log(api, &obj, req).await
        }
        (Sub::Exec, Method::GET | Method::POST)
            if t.def.plural == "pods" && t.def.group.is_empty() =>
        {
            let obj = current(api, &t.def, ns, &name).await?;
            super::kubelet::exec(api, &obj, req).await
        }
        (Sub::Attach, Method::GET | Method::POST)
            if t.def.plural == "pods" && t.def.group.is_empty() =>
        {
            let obj = current(api, &t.def, ns, &name).await?;
            super::kubelet::attach(api, &obj, req).await
        }
        (Sub::PortForward, Method::GET | Method::POST)
            if t.def.plural == "pods" && t.def.group.is_empty() =>
        {
            let obj = current(api, &t.def, ns, &name).await?;
            super::kubelet::port_forward(api, &obj, req).await
        }
        (Sub::Log | Sub::Exec | Sub::Attach | Sub::PortForward | Sub::Proxy, _) => {
            let obj = current(api, &t.def, ns, &name).await?;
            kubelet_only(&t.def, sub, &obj)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn current(api: &Api, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value> {
    api.storage
        .get(&def.key(ns, name), None, false)
        .await?
        .map(|s| s.obj)
        .ok_or_else(|| ApiError::NotFound(Subject::new(&def.group, &def.plural, name)))
}

/// The streaming subresources are served by the pod's kubelet.
fn kubelet_only(def: &ResourceDef, sub: Sub, obj: &Value) -> Result<Response> {
    let name = meta::name(obj).unwrap_or("");
    if def.plural == "pods" {
        let node = obj
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        return Err(ApiError::Unavailable(format!(
            "{} of pod {name} is served by the kubelet of node {node}, and no kubelet endpoint is known for it",
            sub.name()
        )));
    }
    Err(ApiError::Unavailable(format!(
        "{}/{} {name}: proxying is not available",
        def.plural,
        sub.name()
    )))
}

/// The `autoscaling/v1` Scale of an object.
fn scale_of(def: &ResourceDef, obj: &Value) -> Result<Value> {
    let (spec_path, status_path, selector_path) =
        match def.custom.as_ref().and_then(|c| c.scale.clone()) {
            Some(p) => (p.spec_replicas, p.status_replicas, p.label_selector),
            None => (
                ".spec.replicas".to_string(),
                ".status.replicas".to_string(),
                None,
            ),
        };
    let replicas = meta::at(obj, &spec_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = meta::at(obj, &status_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match selector_path {
        Some(p) => meta::at(obj, &p)
            .and_then(Value::as_str)
            .map(str::to_string),
        None => obj
            .get("spec")
            .and_then(|s| s.get("selector"))
            .map(|sel| {
                if def.group.is_empty() {
                    // ReplicationControllers: a plain map selector.
                    crate::selectors::LabelSelector::from_object(&json!({"matchLabels": sel}))
                        .map(|s| s.to_string())
                } else {
                    crate::selectors::LabelSelector::from_object(sel).map(|s| s.to_string())
                }
            })
            .transpose()?,
    };
    let md = meta::metadata(obj).cloned().unwrap_or_default();
    let mut smd = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = md.get(f) {
            smd.insert(f.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if let Some(s) = selector {
        status["selector"] = json!(s);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": smd,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

async fn scale_update(api: &Arc<Api>, t: &Target, req: &Req, name: &str) -> Result<Response> {
    let def = Arc::clone(&t.def);
    let mut ctx = WriteCtx::from_req(req)?;
    let media = codec::media_type(req.header("content-type"));
    let is_put = req.method == Method::PUT;
    let body = if is_put {
        codec::decode_object(req.header("content-type"), &req.body)?
    } else {
        write::parse_patch_body(&media, &req.body)?
    };
    let spec_path = def
        .custom
        .as_ref()
        .and_then(|c| c.scale.as_ref())
        .map_or(".spec.replicas".to_string(), |s| s.spec_replicas.clone());
    let schemas = Arc::clone(&api.schemas);
    let api2 = Arc::clone(api);
    let d2 = Arc::clone(&def);
    let f = move |cur: &Value| -> Result<Value> {
        let scale = scale_of(&d2, cur)?;
        let new_scale = if is_put {
            body.clone()
        } else {
            match media.as_str() {
                codec::MERGE_PATCH => crate::patch::merge::merge_patch(&scale, &body),
                codec::JSON_PATCH => crate::patch::json::json_patch(&scale, &body)?,
                codec::STRATEGIC_PATCH => {
                    let info = schemas.type_info("io.k8s.api.autoscaling.v1.Scale");
                    crate::patch::strategic::strategic_merge_patch(&scale, &body, &info)?
                }
                codec::APPLY_PATCH | codec::APPLY_PATCH_JSON => {
                    crate::patch::merge::merge_patch(&scale, &body)
                }
                other => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "unsupported patch type {other}"
                    )))
                }
            }
        };
        let _ = &api2;
        if let Some(rv) = meta::resource_version(&new_scale) {
            if Some(rv) != meta::resource_version(cur) {
                return Err(ApiError::stale(Subject::new(
                    &d2.group,
                    &d2.plural,
                    meta::name(cur).unwrap_or(""),
                )));
            }
        }
        let replicas = new_scale
            .get("spec")
            .and_then(|s| s.get("replicas"))
            .cloned()
            .unwrap_or(json!(0));
        match replicas.as_i64() {
            Some(n) if n >= 0 && n <= i64::from(i32::MAX) => {}
            _ => {
                return Err(ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    meta::name(cur).unwrap_or(""),
                    vec![crate::error::Cause::invalid(
                        "spec.replicas",
                        &replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
        }
        let mut next = cur.clone();
        meta::set_at(&mut next, &spec_path, replicas);
        Ok(next)
    };
    let v = update_object(
        api,
        &def,
        t.namespace.as_deref(),
        name,
        Change::With(&f),
        Via::main(),
        &mut ctx,
    )
    .await?;
    Ok(respond(
        StatusCode::OK,
        Output::Json,
        &scale_of(&def, &v)?,
        &ctx.warnings,
    ))
}

async fn binding(api: &Arc<Api>, t: &Target, req: &Req, name: &str) -> Result<Response> {
    let mut ctx = WriteCtx::from_req(req)?;
    let body = codec::decode_object(req.header("content-type"), &req.body)?;
    let node = body
        .get("target")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                "",
                name,
                vec![crate::error::Cause::required("target.name")],
            )
        })?
        .to_string();
    if let Some(kind) = body
        .get("target")
        .and_then(|t| t.get("kind"))
        .and_then(Value::as_str)
    {
        if !kind.is_empty() && kind != "Node" {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![crate::error::Cause::not_supported(
                    "target.kind",
                    &json!(kind),
                    &["Node"],
                )],
            ));
        }
    }
    let n2 = node.clone();
    let pod_name = name.to_string();
    let f = move |cur: &Value| -> Result<Value> {
        let assigned = cur
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !assigned.is_empty() {
            return Err(ApiError::Conflict {
                subject: Subject::new("", "pods", &pod_name),
                message: format!("Operation cannot be fulfilled on pods/binding {pod_name:?}: pod {pod_name} is already assigned to node {assigned:?}"),
                causes: Vec::new(),
            });
        }
        if meta::is_deleting(cur) {
            return Err(ApiError::Conflict {
                subject: Subject::new("", "pods", &pod_name),
                message: format!("Operation cannot be fulfilled on pods/binding {pod_name:?}: pod {pod_name} is being deleted, cannot be assigned to a host"),
                causes: Vec::new(),
            });
        }
        let mut next = cur.clone();
        meta::set_at(&mut next, "spec.nodeName", json!(n2));
        let now = meta::now();
        let status = next
            .as_object_mut()
            .map(|m| m.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(s)) = status {
            let conds = s.entry("conditions").or_insert_with(|| json!([]));
            if let Value::Array(cs) = conds {
                cs.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                cs.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            }
        }
        Ok(next)
    };
    // Binding writes spec and status together, like Kubernetes' binding REST.
    update_object(
        api,
        &t.def,
        t.namespace.as_deref(),
        name,
        Change::With(&f),
        Via::sub(Sub::Binding),
        &mut ctx,
    )
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(respond(StatusCode::CREATED, Output::Json, &status, &[]))
}

async fn eviction(api: &Arc<Api>, t: &Target, req: &Req, name: &str) -> Result<Response> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        codec::decode_object(req.header("content-type"), &req.body)?
    };
    let pod = current(api, &t.def, t.namespace.as_deref(), name).await?;
    crate::pdb::check_eviction(api, &pod).await?;
    let mut opts = delete_options(req)?;
    if let Some(d) = body.get("deleteOptions") {
        if let Some(g) = d.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace = Some(g.max(0));
        }
        if let Some(u) = d
            .get("preconditions")
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
        {
            opts.uid = Some(u.to_string());
        }
    }
    delete_object(api, &t.def, t.namespace.as_deref(), name, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(respond(StatusCode::CREATED, Output::Json, &status, &[]))
}

async fn finalize(api: &Arc<Api>, t: &Target, req: &Req, name: &str) -> Result<Response> {
    let mut ctx = WriteCtx::from_req(req)?;
    let body = codec::decode_object(req.header("content-type"), &req.body)?;
    let finalizers = body
        .get("spec")
        .and_then(|s| s.get("finalizers"))
        .cloned()
        .unwrap_or(json!([]));
    let f = move |cur: &Value| -> Result<Value> {
        let mut next = cur.clone();
        meta::set_at(&mut next, "spec.finalizers", finalizers.clone());
        Ok(next)
    };
    let v = update_object(
        api,
        &t.def,
        None,
        name,
        Change::With(&f),
        Via::sub(Sub::Finalize),
        &mut ctx,
    )
    .await?;
    Ok(respond(
        StatusCode::OK,
        Output::Json,
        &present(&t.def, &v),
        &[],
    ))
}

async fn ephemeral(api: &Arc<Api>, t: &Target, req: &Req, name: &str) -> Result<Response> {
    let mut ctx = WriteCtx::from_req(req)?;
    let media = codec::media_type(req.header("content-type"));
    let is_put = req.method == Method::PUT;
    let body = if is_put {
        codec::decode_object(req.header("content-type"), &req.body)?
    } else {
        write::parse_patch_body(&media, &req.body)?
    };
    let api2 = Arc::clone(api);
    let def = Arc::clone(&t.def);
    let f = move |cur: &Value| -> Result<Value> {
        let changed = if is_put {
            body.clone()
        } else {
            write::apply_patch(&api2, &def, &media, &body, cur)?
        };
        let eph = changed
            .get("spec")
            .and_then(|s| s.get("ephemeralContainers"))
            .cloned();
        let mut next = cur.clone();
        match eph {
            Some(e) => meta::set_at(&mut next, "spec.ephemeralContainers", e),
            None => {
                if let Some(s) = next.get_mut("spec").and_then(Value::as_object_mut) {
                    s.remove("ephemeralContainers");
                }
            }
        }
        Ok(next)
    };
    let v = update_object(
        api,
        &t.def,
        t.namespace.as_deref(),
        name,
        Change::With(&f),
        Via::sub(Sub::Ephemeral),
        &mut ctx,
    )
    .await?;
    Ok(respond(
        StatusCode::OK,
        Output::Json,
        &present(&t.def, &v),
        &ctx.warnings,
    ))
}
