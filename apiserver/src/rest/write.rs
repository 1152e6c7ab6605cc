//! Writes: create, update (PUT), patch, delete and deletecollection, with Kubernetes'
//! optimistic concurrency, defaulting, validation, managed fields, finalizers and graceful
//! deletion.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::read::{self, present, Selectors};
use super::{respond, success_status, Req, Target};
use crate::codec::{self, Output};
use crate::error::{ApiError, Cause, Result, Subject};
use crate::patch::{self, TypeInfo};
use crate::registry::{ResourceDef, Sub};
use crate::storage::{Extra, Outcome, Stored};
use crate::{alloc, convert, crd, meta, validation, Api};

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Per-request write options.
pub struct WriteCtx {
    pub dry_run: bool,
    pub manager: String,
    pub validation: FieldValidation,
    pub warnings: Vec<String>,
    /// The user agent, for the default field manager.
    pub user_agent: Option<String>,
    /// The node of a kubelet making the request (NodeRestriction).
    pub node: Option<String>,
}

impl WriteCtx {
    pub fn from_req(req: &Req) -> Result<WriteCtx> {
        let dry_run = match req.query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                )))
            }
        };
        let validation = match req.q("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                )))
            }
        };
        let ua = req.header("user-agent").map(str::to_string);
        let manager = match req.q("fieldManager") {
            Some(m) if !m.is_empty() => {
                if m.len() > 128 || m.chars().any(|c| c.is_control()) {
                    return Err(ApiError::invalid(
                        "PatchOptions",
                        "meta.k8s.io",
                        "",
                        vec![Cause::invalid(
                            "fieldManager",
                            &json!(m),
                            "must be at most 128 printable characters",
                        )],
                    ));
                }
                m.to_string()
            }
            _ => patch::apply::default_manager(ua.as_deref()),
        };
        Ok(WriteCtx {
            dry_run,
            manager,
            validation,
            warnings: Vec::new(),
            user_agent: ua,
            node: crate::auth::node::node_of(&req.user).map(str::to_string),
        })
    }

    pub fn internal(manager: &str) -> WriteCtx {
        WriteCtx {
            dry_run: false,
            manager: manager.to_string(),
            validation: FieldValidation::Ignore,
            warnings: Vec::new(),
            user_agent: None,
            node: None,
        }
    }
}

fn subject(def: &ResourceDef, name: &str) -> Subject {
    Subject::new(&def.group, &def.plural, name)
}

/// The TypeInfo of a resource's objects.
pub fn type_info(api: &Api, def: &ResourceDef) -> Box<dyn TypeInfo> {
    match &def.schema {
        Some(name) => Box::new(api.schemas.type_info(name)),
        None => match def.custom.as_ref().and_then(|c| c.schema.clone()) {
            Some(schema) => Box::new(crate::crd::CustomTypeInfo::new(schema)),
            None => Box::new(patch::NoTypeInfo),
        },
    }
}

/// apiVersion/kind of a body must match the resource (or be empty).
fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> Result<()> {
    let (av, kind) = meta::type_meta(obj);
    let (av, kind) = (av.map(str::to_string), kind.map(str::to_string));
    if let Some(k) = kind.as_deref().filter(|k| !k.is_empty()) {
        if k != def.kind {
            return Err(ApiError::bad_request(format!(
                "{k} in version {:?} cannot be handled as a {}: the object kind {k:?} does not match the resource kind {:?}",
                def.version, def.kind, def.kind
            )));
        }
    }
    if let Some(a) = av.as_deref().filter(|a| !a.is_empty()) {
        if a != def.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(def.api_version()));
        m.insert("kind".into(), json!(def.kind));
    }
    Ok(())
}

/// Unknown fields and wrong types, per `fieldValidation`; unknown fields of built-in types are
/// then dropped, as decoding into the Go types does in Kubernetes. One walk finds and drops
/// them (under `Strict` the write fails, so the pruned object is never used).
fn check_fields(api: &Api, def: &ResourceDef, obj: &mut Value, ctx: &mut WriteCtx) -> Result<()> {
    let unknown = match &def.schema {
        Some(schema) => {
            if let Err(e) = crate::typecheck::check(schema, obj) {
                return Err(ApiError::bad_request(format!(
                    "{} in version {:?} cannot be handled as a {}: {e}",
                    def.kind, def.version, def.kind
                )));
            }
            api.schemas.prune_unknown_fields(schema, obj)
        }
        None => match def.custom.as_ref().and_then(|c| c.schema.as_ref()) {
            Some(schema) if ctx.validation != FieldValidation::Ignore => {
                crd::unknown_fields(schema, obj)
            }
            _ => Vec::new(),
        },
    };
    if unknown.is_empty() {
        return Ok(());
    }
    match ctx.validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )))
        }
        _ => {
            for f in unknown {
                ctx.warnings.push(format!("unknown field {f:?}"));
            }
            Ok(())
        }
    }
}

/// Metadata validation every object gets.
fn validate_meta(def: &ResourceDef, obj: &Value, causes: &mut Vec<Cause>) {
    let md = meta::metadata(obj);
    match meta::name(obj) {
        None => causes.push(Cause::required("metadata.name")),
        Some(n) => {
            for e in def.strategy.name_rule().check(n) {
                causes.push(Cause::invalid("metadata.name", &json!(n), e));
            }
        }
    }
    if def.namespaced && meta::namespace(obj).is_none() {
        causes.push(Cause::required("metadata.namespace"));
    }
    validation::labels(md.and_then(|m| m.get("labels")), "metadata.labels", causes);
    validation::annotations(
        md.and_then(|m| m.get("annotations")),
        "metadata.annotations",
        causes,
    );
    if let Some(fs) = md
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
    {
        for (i, f) in fs.iter().enumerate() {
            match f.as_str() {
                Some(s) if validation::qualified_name(s).is_empty() => {}
                _ => causes.push(Cause::invalid(
                    format!("metadata.finalizers[{i}]"),
                    f,
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                )),
            }
        }
    }
    if let Some(refs) = md
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
    {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for f in ["apiVersion", "kind", "name", "uid"] {
                if r.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                    causes.push(Cause::required(format!(
                        "metadata.ownerReferences[{i}].{f}"
                    )));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            causes.push(Cause::invalid(
                "metadata.ownerReferences",
                &json!(controllers),
                "Only one reference can have Controller set to true",
            ));
        }
    }
}

fn validate(
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    custom_schema: Option<&Value>,
    sub: Option<Sub>,
) -> Result<()> {
    let mut causes = Vec::new();
    validate_meta(def, obj, &mut causes);
    // Subresource writes change only their part; the main resource's update rules (e.g. pod
    // spec immutability) do not apply to them.
    if sub.is_none() {
        causes.extend(def.strategy.validate(obj, old));
    }
    if let Some(schema) = custom_schema {
        causes.extend(crd::validate_custom(schema, obj));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &def.kind,
            &def.group,
            meta::name(obj).unwrap_or(""),
            causes,
        ))
    }
}

/// Pod Security admission of a new object in `ns`: a pod that violates the namespace's
/// `enforce` level is refused; violations of its `warn` level, by a pod or a workload's pod
/// template, become warnings.
fn pod_security(
    api: &Api,
    def: &ResourceDef,
    ns: &str,
    obj: &Value,
    ctx: &mut WriteCtx,
) -> Result<()> {
    let is_pod = def.group.is_empty() && def.plural == "pods";
    let (pod_meta, spec) = if is_pod {
        (obj.get("metadata"), &obj["spec"])
    } else {
        match crate::podsecurity::template_of(&def.group, &def.plural, obj) {
            Some((m, s)) => (Some(m), s),
            None => return Ok(()),
        }
    };
    let Some(entry) = api.cache.get(&format!("/registry/namespaces/{ns}")).1 else {
        return Ok(());
    };
    let ns_obj = entry.obj();
    let labels = meta::metadata(&ns_obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    if is_pod {
        if let Some(p) = crate::podsecurity::policy(labels, "enforce") {
            let v = crate::podsecurity::check(p.level, pod_meta, spec);
            if !v.is_empty() {
                let name = meta::name(obj).unwrap_or("");
                return Err(ApiError::Forbidden {
                    subject: Subject::new("", "pods", name),
                    message: format!(
                        "pods {name:?} is forbidden: violates PodSecurity {:?}: {}",
                        p.label,
                        v.join(", ")
                    ),
                });
            }
        }
    }
    if let Some(p) = crate::podsecurity::policy(labels, "warn") {
        let v = crate::podsecurity::check(p.level, pod_meta, spec);
        if !v.is_empty() {
            ctx.warnings.push(format!(
                "would violate PodSecurity {:?}: {}",
                p.label,
                v.join(", ")
            ));
        }
    }
    Ok(())
}

/// LimitRanger admission of a new pod: its namespace's LimitRanges (from the watch cache)
/// default and bound its containers' resources.
fn limit_ranges(api: &Api, pod: &mut Value) -> Result<()> {
    let (Some(ns), Some(def)) = (
        meta::namespace(pod).map(str::to_string),
        api.registry.get("", "v1", "limitranges"),
    ) else {
        return Ok(());
    };
    let ranges: Vec<Value> = api
        .cache
        .snapshot(&format!("{}{ns}/", def.prefix))
        .items
        .into_iter()
        .map(|(_, e)| (*e.obj()).clone())
        .collect();
    crate::limitranger::admit(&ranges, pod).map_err(|message| {
        let name = meta::name(pod).unwrap_or("");
        ApiError::Forbidden {
            subject: Subject::new("", "pods", name),
            message: format!("pods {name:?} is forbidden: {message}"),
        }
    })
}

/// NamespaceLifecycle admission: the namespace must exist and not be terminating.
async fn check_namespace(api: &Api, ns: &str, creating: bool) -> Result<()> {
    let key = format!("/registry/namespaces/{ns}");
    let deleting = match api.cache.get(&key).1 {
        Some(e) => Some(meta::is_deleting(&e.obj())),
        None => api
            .storage
            .get(&key, None, false)
            .await?
            .map(|s| meta::is_deleting(&s.obj)),
    };
    match deleting {
        None => Err(ApiError::NotFound(Subject::new("", "namespaces", ns))),
        Some(true) if creating => Err(ApiError::Forbidden {
            subject: Subject::new("", "namespaces", ns),
            message: format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        }),
        Some(_) => Ok(()),
    }
}

fn now_stamp() -> String {
    meta::now()
}

/// Creates an object of `def` in `ns` (already decoded), returning it as stored.
pub async fn create_object(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    ctx: &mut WriteCtx,
) -> Result<Value> {
    check_type_meta(def, &mut obj)?;
    if def.namespaced {
        let ns =
            ns.ok_or_else(|| ApiError::bad_request("the namespace of the object is missing"))?;
        match meta::namespace(&obj) {
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta::metadata_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta::metadata_mut(&mut obj).remove("namespace");
    }
    check_fields(api, def, &mut obj, ctx)?;
    let generate = meta::meta_str(&obj, "generateName").map(str::to_string);
    if meta::name(&obj).is_none() {
        match generate.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => {
                meta::metadata_mut(&mut obj).insert("name".into(), json!(meta::generate_name(g)));
            }
            None => {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    "",
                    vec![Cause::required("metadata.name")
                        .with_message("name or generateName is required")],
                ))
            }
        }
    }
    if let Some(ns) = meta::namespace(&obj).map(str::to_string) {
        check_namespace(api, &ns, true).await?;
        pod_security(api, def, &ns, &obj, ctx)?;
    }
    let mut obj = convert::to_storage(def, obj);
    {
        let md = meta::metadata_mut(&mut obj);
        md.insert("uid".into(), json!(meta::new_uid()));
        md.insert("creationTimestamp".into(), json!(now_stamp()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(f);
        }
        if def.strategy.has_generation() || def.custom.is_some() {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
    }
    def.strategy.default(&mut obj);
    if def.has(Sub::Status) && def.custom.is_some() {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    if def.group.is_empty() && def.plural == "pods" {
        limit_ranges(api, &mut obj)?;
        crate::auth::sa::admit(api, ns, &mut obj).await?;
    }
    // ResourceQuota comes last, on the object as it will be stored.
    if let Some(ns) = meta::namespace(&obj).map(str::to_string) {
        crate::quota::admit(api, def, &ns, &obj)?;
    }
    def.strategy.prepare_create(&mut obj);
    let custom_schema = def.custom.as_ref().and_then(|c| c.schema.clone());
    if let Some(schema) = &custom_schema {
        crd::prune_and_default(schema, &mut obj);
    }
    validate(def, &obj, None, custom_schema.as_ref(), None)?;
    if !matches!(meta::metadata(&obj).and_then(|m| m.get("managedFields")), Some(Value::Array(a)) if !a.is_empty())
    {
        let info = type_info(api, def);
        patch::apply::update_managed_fields(
            None,
            &mut obj,
            &ctx.manager,
            None,
            info.as_ref(),
            &now_stamp(),
        )?;
    }
    // Only address allocation (services) and generated names try again, and every attempt
    // starts from the object as it was before allocation; other objects are not copied.
    let may_retry = generate.is_some() || alloc::allocates(def);
    let mut base = Some(obj);
    for attempt in 0..8 {
        let mut obj = match (&base, may_retry) {
            (Some(b), true) => b.clone(),
            _ => match base.take() {
                Some(b) => b,
                None => break,
            },
        };
        let extras = alloc::on_create(api, def, &mut obj).await?;
        if ctx.dry_run {
            return Ok(obj);
        }
        let name = meta::name(&obj).unwrap_or_default().to_string();
        let key = def.key(meta::namespace(&obj), &name);
        match api.storage.create(&key, &obj, &extras).await? {
            Outcome::Done(rev) => {
                meta::set_resource_version(&mut obj, rev);
                crd::after_write(api, def, &obj).await;
                return Ok(obj);
            }
            Outcome::Failed(Some(_)) => {
                // A generated name may collide; try another.
                if let (Some(g), true) = (generate.as_deref(), attempt < 7) {
                    if let Some(b) = base.as_mut() {
                        meta::metadata_mut(b).insert("name".into(), json!(meta::generate_name(g)));
                    }
                    continue;
                }
                return Err(ApiError::AlreadyExists(subject(def, &name)));
            }
            // An allocation was taken concurrently: allocate again.
            Outcome::Failed(None) => continue,
        }
    }
    Err(ApiError::Unavailable(
        "could not allocate the object's addresses; try again".into(),
    ))
}

/// The fields of metadata only the server sets: carried over from the stored object.
fn keep_system_meta(new: &mut Value, old: &Value) {
    let old_md = meta::metadata(old).cloned().unwrap_or_default();
    let md = meta::metadata_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "selfLink",
    ] {
        match old_md.get(f) {
            Some(v) => {
                md.insert(f.to_string(), v.clone());
            }
            None => {
                md.remove(f);
            }
        }
    }
}

/// Everything but metadata and status changed?
fn spec_changed(new: &Value, old: &Value) -> bool {
    meta::without(new, &["metadata", "status", "apiVersion", "kind"])
        != meta::without(old, &["metadata", "status", "apiVersion", "kind"])
}

/// Prepares `new` as the next version of `old` written through `sub` (None = main resource).
fn prepare_update(
    api: &Api,
    def: &ResourceDef,
    mut new: Value,
    old: &Value,
    sub: Option<Sub>,
) -> Result<Value> {
    let _ = api;
    new = convert::to_storage(def, new);
    keep_system_meta(&mut new, old);
    match sub {
        Some(Sub::Status) => {
            // Only status changes (and managed fields); metadata stays as it was.
            let status = new.get("status").cloned();
            let managed = meta::metadata(&new)
                .and_then(|m| m.get("managedFields"))
                .cloned();
            let mut next = old.clone();
            if let Some(m) = next.as_object_mut() {
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
            }
            if let Some(mf) = managed {
                meta::metadata_mut(&mut next).insert("managedFields".into(), mf);
            }
            new = next;
        }
        // Binding sets spec.nodeName and the PodScheduled condition together.
        Some(Sub::Binding) => {}
        _ => {
            if def.has(Sub::Status) {
                if let Some(m) = new.as_object_mut() {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
            }
        }
    }
    def.strategy.default(&mut new);
    if sub.is_none() {
        def.strategy.prepare_update(&mut new, old);
    }
    if let Some(schema) = def.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        crd::prune_and_default(schema, &mut new);
    }
    if (def.strategy.has_generation() || def.custom.is_some()) && spec_changed(&new, old) {
        let g = meta::metadata(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    Ok(new)
}

fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    meta::remove_resource_version(&mut a);
    meta::remove_resource_version(&mut b);
    a == b
}

/// Writes `next` over `cur` (conditional on cur.rv), deleting instead when a deleting object
/// lost its last finalizer. Returns None when the condition failed (caller retries or 409s).
async fn write_next(
    api: &Api,
    def: &ResourceDef,
    key: &str,
    cur: &Stored,
    mut next: Value,
    ctx: &WriteCtx,
) -> Result<Option<Value>> {
    // Nothing changed: nothing is written, unless the stored bytes are stale (encrypted with
    // a key no longer the first), which a rewrite encrypts anew.
    if same_ignoring_rv(&next, &cur.obj) && !cur.stale {
        return Ok(Some(cur.obj.clone()));
    }
    let finalized = meta::is_deleting(&next)
        && meta::finalizers(&next).is_empty()
        && !namespace_pending(def, &next);
    if ctx.dry_run {
        return Ok(Some(next));
    }
    if finalized {
        let extras = alloc::on_delete(def, &cur.obj);
        return match api.storage.delete(key, cur.rv, &extras).await? {
            Outcome::Done(rev) => {
                meta::set_resource_version(&mut next, rev);
                crd::after_delete(api, def, &next).await;
                Ok(Some(next))
            }
            Outcome::Failed(_) => Ok(None),
        };
    }
    let extras = alloc::on_update(api, def, &mut next, &cur.obj).await?;
    match api.storage.update(key, cur.rv, &next, &extras).await? {
        Outcome::Done(rev) => {
            meta::set_resource_version(&mut next, rev);
            crd::after_write(api, def, &next).await;
            Ok(Some(next))
        }
        Outcome::Failed(_) => Ok(None),
    }
}

/// Namespaces also wait for `spec.finalizers` (emptied by the namespace controller).
fn namespace_pending(def: &ResourceDef, obj: &Value) -> bool {
    def.group.is_empty()
        && def.plural == "namespaces"
        && obj
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// How a new object is derived from the current one (PUT body, patch, subresource change).
pub enum Change<'a> {
    /// A full object (PUT).
    Replace(Value),
    /// A function of the current object (patches, scale, binding); may return an error.
    With(&'a (dyn Fn(&Value) -> Result<Value> + Send + Sync)),
}

/// Which path an update takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Via {
    /// The subresource written through (None = the main resource).
    pub sub: Option<Sub>,
    /// Managed fields were already computed (server-side apply).
    pub applied: bool,
}

impl Via {
    pub fn main() -> Via {
        Via::default()
    }

    pub fn sub(sub: Sub) -> Via {
        Via {
            sub: Some(sub),
            applied: false,
        }
    }
}

/// Update with Kubernetes' GuaranteedUpdate semantics: retried on conflicts unless the client
/// pinned a resourceVersion.
pub async fn update_object(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    change: Change<'_>,
    via: Via,
    ctx: &mut WriteCtx,
) -> Result<Value> {
    let Via {
        sub,
        applied: managed,
    } = via;
    let key = def.key(ns, name);
    for _ in 0..32 {
        let cur = api.storage.get(&key, None, false).await?;
        let Some(cur) = cur else {
            if let (Change::Replace(obj), true) = (&change, def.strategy.allow_create_on_update()) {
                return create_object(api, def, ns, obj.clone(), ctx).await;
            }
            return Err(ApiError::NotFound(subject(def, name)));
        };
        let served_cur = present(def, &cur.obj);
        let mut new = match &change {
            Change::Replace(v) => v.clone(),
            Change::With(f) => f(&served_cur)?,
        };
        check_type_meta(def, &mut new)?;
        match meta::name(&new) {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            None => {
                meta::metadata_mut(&mut new).insert("name".into(), json!(name));
            }
            _ => {}
        }
        if def.namespaced {
            match meta::namespace(&new) {
                Some(n) if Some(n) != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta::metadata_mut(&mut new).insert("namespace".into(), json!(ns.unwrap_or("")));
                }
            }
        }
        check_fields(api, def, &mut new, ctx)?;
        // A PUT pins the resourceVersion its body carries. A patch carries the current one
        // unless it set another: only that pins (a patch without one is retried on conflict,
        // like Kubernetes' GuaranteedUpdate; one naming the version it read fails when that
        // version is gone, here or on the retry).
        let pinned = match &change {
            Change::Replace(_) => meta::resource_version(&new).map(str::to_string),
            Change::With(_) => meta::resource_version(&new)
                .filter(|rv| *rv != cur.rv.to_string())
                .map(str::to_string),
        };
        if let Some(rv) = &pinned {
            if *rv != cur.rv.to_string() {
                if rv.parse::<i64>().is_err() {
                    return Err(ApiError::bad_request(format!(
                        "invalid resource version: {rv:?}"
                    )));
                }
                return Err(ApiError::stale(subject(def, name)));
            }
        }
        let mut next = prepare_update(api, def, new, &cur.obj, sub)?;
        crate::auth::node::admit_update(ctx.node.as_deref(), def, &cur.obj, &next)?;
        let custom_schema = def.custom.as_ref().and_then(|c| c.schema.clone());
        validate(def, &next, Some(&cur.obj), custom_schema.as_ref(), sub)?;
        if !managed {
            let info = type_info(api, def);
            let subname = sub.map(Sub::name);
            patch::apply::update_managed_fields(
                Some(&cur.obj),
                &mut next,
                &ctx.manager,
                subname,
                info.as_ref(),
                &now_stamp(),
            )?;
        }
        match write_next(api, def, &key, &cur, next, ctx).await? {
            Some(v) => return Ok(v),
            None if pinned.is_some() => return Err(ApiError::stale(subject(def, name))),
            None => continue,
        }
    }
    Err(ApiError::stale(subject(def, name)))
}

pub async fn create(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let mut ctx = WriteCtx::from_req(req)?;
    let obj = codec::decode_object(req.header("content-type"), &req.body)?;
    let out = req.output()?;
    let node_uid = |node: &str| {
        let def = api.registry.get("", "v1", "nodes")?;
        let (_, e) = api.cache.get(&def.key(None, node));
        Some(crate::meta::uid(&e?.obj())?.to_string())
    };
    crate::auth::node::admit_create(
        &req.user,
        &t.def.group,
        &t.def.plural,
        t.namespace.as_deref(),
        &obj,
        &node_uid,
    )?;
    let created = create_object(api, &t.def, t.namespace.as_deref(), obj, &mut ctx).await?;
    let code = StatusCode::CREATED;
    Ok(respond(
        code,
        plain(out),
        &present(&t.def, &created),
        &ctx.warnings,
    ))
}

/// Writes answer JSON or YAML (a Table is only for reads).
fn plain(out: Output) -> Output {
    match out {
        Output::Yaml => Output::Yaml,
        _ => Output::Json,
    }
}

pub async fn update(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let mut ctx = WriteCtx::from_req(req)?;
    let obj = codec::decode_object(req.header("content-type"), &req.body)?;
    let out = req.output()?;
    let name = t.name.clone().unwrap_or_default();
    let existed = api
        .storage
        .get(&t.def.key(t.namespace.as_deref(), &name), None, false)
        .await?
        .is_some();
    let v = update_object(
        api,
        &t.def,
        t.namespace.as_deref(),
        &name,
        Change::Replace(obj),
        Via::main(),
        &mut ctx,
    )
    .await?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(respond(
        code,
        plain(out),
        &present(&t.def, &v),
        &ctx.warnings,
    ))
}

/// Applies a patch body of the given media type to `cur`.
pub fn apply_patch(
    api: &Api,
    def: &ResourceDef,
    media: &str,
    patch_body: &Value,
    cur: &Value,
) -> Result<Value> {
    match media {
        codec::MERGE_PATCH => Ok(patch::merge::merge_patch(cur, patch_body)),
        codec::JSON_PATCH => patch::json::json_patch(cur, patch_body),
        codec::STRATEGIC_PATCH => {
            if def.custom.is_some() {
                return Err(ApiError::UnsupportedMediaType(
                    "strategic merge patch is not supported for custom resources; use a merge or JSON patch".into(),
                ));
            }
            let info = type_info(api, def);
            patch::strategic::strategic_merge_patch(cur, patch_body, info.as_ref())
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
        ))),
    }
}

/// Parses a patch body: JSON for the JSON-based patch types, YAML (a JSON superset) for apply.
pub fn parse_patch_body(media: &str, body: &[u8]) -> Result<Value> {
    if body.len() > codec::MAX_BODY_BYTES {
        return Err(codec::too_large());
    }
    match media {
        codec::APPLY_PATCH => codec::yaml_to_json(body),
        codec::APPLY_PATCH_JSON => codec::parse_json(body),
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

pub async fn patch(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let name = t.name.clone().unwrap_or_default();
    let (v, warnings, created) = patch_object(api, t, req, &name, None).await?;
    let out = req.output()?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(respond(code, plain(out), &present(&t.def, &v), &warnings))
}

/// PATCH of an object or of its status: (object, warnings, created?).
pub async fn patch_object(
    api: &Arc<Api>,
    t: &Target,
    req: &Req,
    name: &str,
    sub: Option<Sub>,
) -> Result<(Value, Vec<String>, bool)> {
    let mut ctx = WriteCtx::from_req(req)?;
    let media = codec::media_type(req.header("content-type"));
    let body = parse_patch_body(&media, &req.body)?;
    let def = &t.def;
    let ns = t.namespace.as_deref();
    if media == codec::APPLY_PATCH || media == codec::APPLY_PATCH_JSON {
        if req.q("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml, requires fieldManager to be set",
            ));
        }
        let force = req.q_bool("force")?;
        let info = type_info(api, def);
        let key = def.key(ns, name);
        for _ in 0..32 {
            let cur = api.storage.get(&key, None, false).await?;
            match cur {
                None => {
                    if sub.is_some() {
                        return Err(ApiError::NotFound(subject(def, name)));
                    }
                    let mut config = body.clone();
                    check_type_meta(def, &mut config)?;
                    check_fields(api, def, &mut config, &mut ctx)?;
                    let obj = patch::apply::server_side_apply(
                        None,
                        &config,
                        &ctx.manager,
                        None,
                        force,
                        info.as_ref(),
                        &now_stamp(),
                    )?;
                    let created = create_object(api, def, ns, obj, &mut ctx).await?;
                    return Ok((created, ctx.warnings, true));
                }
                Some(cur) => {
                    let served = present(def, &cur.obj);
                    let mut config = body.clone();
                    check_type_meta(def, &mut config)?;
                    let mut obj = patch::apply::server_side_apply(
                        Some(&served),
                        &config,
                        &ctx.manager,
                        sub.map(Sub::name),
                        force,
                        info.as_ref(),
                        &now_stamp(),
                    )?;
                    meta::set_resource_version(&mut obj, cur.rv);
                    let fixed = obj.clone();
                    let f = move |_: &Value| Ok(fixed.clone());
                    match update_object(
                        api,
                        def,
                        ns,
                        name,
                        Change::With(&f),
                        Via { sub, applied: true },
                        &mut ctx,
                    )
                    .await
                    {
                        Ok(v) => return Ok((v, ctx.warnings, false)),
                        Err(ApiError::Conflict { causes, .. }) if causes.is_empty() => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        return Err(ApiError::stale(subject(def, name)));
    }
    let f = |cur: &Value| -> Result<Value> { apply_patch(api, def, &media, &body, cur) };
    let v = update_object(
        api,
        def,
        ns,
        name,
        Change::With(&f),
        Via {
            sub,
            applied: false,
        },
        &mut ctx,
    )
    .await?;
    Ok((v, ctx.warnings, false))
}

/// DeleteOptions from the body (JSON or protobuf) and the query.
pub struct DeleteOptions {
    pub grace: Option<i64>,
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub rv: Option<String>,
    pub dry_run: bool,
}

pub fn delete_options(req: &Req) -> Result<DeleteOptions> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        codec::decode_object(req.header("content-type"), &req.body)?
    };
    let dry_run = req.q("dryRun") == Some("All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let mut propagation = req.q("propagationPolicy").map(str::to_string).or_else(|| {
        body.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let orphan = req
        .q_bool("orphanDependents")
        .ok()
        .filter(|b| *b)
        .or(body.get("orphanDependents").and_then(Value::as_bool));
    if propagation.is_none() {
        if let Some(o) = orphan {
            propagation = Some(if o { "Orphan" } else { "Background" }.to_string());
        }
    }
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
    }
    let grace = match req.q_i64("gracePeriodSeconds")? {
        Some(g) => Some(g),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let pre = body.get("preconditions");
    Ok(DeleteOptions {
        grace: grace.map(|g| g.max(0)),
        propagation,
        uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

/// Deletes one object: immediately, or by marking it (graceful pods, finalizers). Returns the
/// object and whether it is gone.
pub async fn delete_object(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool)> {
    let key = def.key(ns, name);
    for _ in 0..32 {
        let Some(cur) = api.storage.get(&key, None, false).await? else {
            return Err(ApiError::NotFound(subject(def, name)));
        };
        if let Some(u) = &opts.uid {
            let have = meta::uid(&cur.obj).unwrap_or("");
            if have != u {
                return Err(ApiError::Conflict {
                    subject: subject(def, name),
                    message: format!(
                        "Precondition failed: UID in precondition: {u}, UID in object meta: {have}"
                    ),
                    causes: Vec::new(),
                });
            }
        }
        if let Some(rv) = &opts.rv {
            if *rv != cur.rv.to_string() {
                return Err(ApiError::Conflict {
                    subject: subject(def, name),
                    message: format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.rv),
                    causes: Vec::new(),
                });
            }
        }
        let mut next = cur.obj.clone();
        let mut finalizers = meta::finalizers(&next);
        match opts.propagation.as_deref() {
            Some("Foreground") => {
                finalizers.retain(|f| f != "orphan");
                if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                    finalizers.push("foregroundDeletion".into());
                }
            }
            Some("Orphan") => {
                finalizers.retain(|f| f != "foregroundDeletion");
                if !finalizers.iter().any(|f| f == "orphan") {
                    finalizers.push("orphan".into());
                }
            }
            Some("Background") => finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion"),
            _ => {}
        }
        // Graceful deletion of scheduled, running pods: the kubelet finishes it.
        let grace = graceful_period(def, &cur.obj, opts.grace);
        let already = meta::is_deleting(&cur.obj);
        let namespace = def.group.is_empty() && def.plural == "namespaces";
        let must_mark = !finalizers.is_empty() || grace > 0 || namespace;
        if must_mark {
            let md = meta::metadata_mut(&mut next);
            if finalizers.is_empty() {
                md.remove("finalizers");
            } else {
                md.insert("finalizers".into(), json!(finalizers));
            }
            let cur_grace = md.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
            if !already || cur_grace.is_some_and(|g| grace < g) {
                md.insert("deletionTimestamp".into(), json!(meta::time_in(grace)));
                md.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if namespace {
                if let Some(m) = next.as_object_mut() {
                    m.insert("status".into(), json!({"phase": "Terminating"}));
                }
            }
            if same_ignoring_rv(&next, &cur.obj) {
                return Ok((cur.obj, false));
            }
            if opts.dry_run {
                return Ok((next, false));
            }
            match api.storage.update(&key, cur.rv, &next, &[]).await? {
                Outcome::Done(rev) => {
                    meta::set_resource_version(&mut next, rev);
                    return Ok((next, false));
                }
                Outcome::Failed(_) => continue,
            }
        }
        if opts.dry_run {
            return Ok((cur.obj, true));
        }
        let extras: Vec<Extra> = alloc::on_delete(def, &cur.obj);
        match api.storage.delete(&key, cur.rv, &extras).await? {
            Outcome::Done(rev) => {
                let mut gone = cur.obj;
                meta::set_resource_version(&mut gone, rev);
                crd::after_delete(api, def, &gone).await;
                return Ok((gone, true));
            }
            Outcome::Failed(_) => continue,
        }
    }
    Err(ApiError::stale(subject(def, name)))
}

/// The grace period a deletion gets: pods on a node get theirs (default 30 s) unless already
/// finished; everything else is deleted at once.
fn graceful_period(def: &ResourceDef, obj: &Value, asked: Option<i64>) -> i64 {
    if !(def.group.is_empty() && def.plural == "pods") {
        return 0;
    }
    let scheduled = obj
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = obj
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !scheduled || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    asked.unwrap_or_else(|| {
        obj.get("spec")
            .and_then(|s| s.get("terminationGracePeriodSeconds"))
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}

pub async fn delete(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let opts = delete_options(req)?;
    let name = t.name.clone().unwrap_or_default();
    let (obj, gone) = delete_object(api, &t.def, t.namespace.as_deref(), &name, &opts).await?;
    let out = plain(req.output()?);
    if !gone
        || t.def.strategy.return_deleted_object()
        || (t.def.group.is_empty() && t.def.plural == "namespaces")
    {
        return Ok(respond(StatusCode::OK, out, &present(&t.def, &obj), &[]));
    }
    Ok(respond(
        StatusCode::OK,
        out,
        &success_status(&t.def, &name, meta::uid(&obj)),
        &[],
    ))
}

pub async fn delete_collection(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let opts = delete_options(req)?;
    let sel = Selectors::parse(&t.def, req)?;
    let (items, _, _) = read::list_objects(
        api,
        &t.def,
        t.namespace.as_deref(),
        &sel,
        &read::ListParams::default(),
    )
    .await?;
    let mut deleted = Vec::new();
    for obj in items {
        let name = meta::name(&obj).unwrap_or_default().to_string();
        let ns = meta::namespace(&obj).map(str::to_string);
        match delete_object(api, &t.def, ns.as_deref(), &name, &opts).await {
            Ok((o, _)) => deleted.push(present(&t.def, &o)),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let v = json!({
        "kind": t.def.list_kind(),
        "apiVersion": t.def.api_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(respond(StatusCode::OK, plain(req.output()?), &v, &[]))
}
