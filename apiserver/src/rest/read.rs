//! GET: one object, lists (from the watch cache or, for pagination and exact revisions, from
//! the store), and watch streams.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{respond, stream_response, Req, Target};
use crate::codec::Output;
use crate::error::{ApiError, Result, Subject};
use crate::registry::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::watchcache::{CacheEvent, EventKind, Start};
use crate::{convert, meta, table, Api};

/// Label and field selectors of a request, validated against the resource.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(def: &ResourceDef, req: &Req) -> Result<Selectors> {
        let labels = match req.q("labelSelector") {
            Some(s) if !s.trim().is_empty() => LabelSelector::parse(s)?,
            _ => LabelSelector::everything(),
        };
        let fields = match req.q("fieldSelector") {
            Some(s) if !s.trim().is_empty() => FieldSelector::parse(s)?,
            _ => FieldSelector::parse("")?,
        };
        let fields = if def.custom.is_some() {
            fields.transform_for_custom(def.namespaced, &[])?
        } else {
            fields.transform_for(&def.group, &def.version, &def.plural)?
        };
        Ok(Selectors { labels, fields })
    }
}

/// Whether an object passes a request's selectors.
pub fn matches_selectors(def: &ResourceDef, sel: &Selectors, obj: &Value) -> bool {
    if !sel.labels.is_empty() && !sel.labels.matches(meta::labels(obj)) {
        return false;
    }
    if sel.fields.is_empty() {
        return true;
    }
    // Field selectors speak the served version's field names.
    let served;
    let obj = if convert::converts(def) {
        served = convert::to_served(def, obj);
        &served
    } else {
        obj
    };
    if def.custom.is_some() {
        return sel
            .fields
            .matches(|f| Some(crate::selectors::custom_field_value(obj, f)));
    }
    sel.fields.matches(|f| match f {
        "metadata.name" => Some(meta::name(obj).unwrap_or("").to_string()),
        "metadata.namespace" => Some(meta::namespace(obj).unwrap_or("").to_string()),
        other => crate::selectors::field_value(&def.group, &def.plural, obj, other),
    })
}

/// Does the key belong to this resource (and namespace)? Prefixes are unique per resource.
fn key_in(def: &ResourceDef, ns: Option<&str>, key: &str) -> bool {
    key.starts_with(&def.list_prefix(ns))
}

/// The object as this resource's version serves it.
pub fn present(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = convert::to_served(def, obj);
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(def.api_version()));
        m.insert("kind".into(), json!(def.kind));
    }
    o
}

pub async fn get(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let name = t.name.as_deref().unwrap_or_default();
    let key = t.def.key(t.namespace.as_deref(), name);
    let rv = req.q("resourceVersion").unwrap_or("");
    let obj = if rv == "0" {
        api.cache.get(&key).1.map(|e| Arc::unwrap_or_clone(e.obj()))
    } else if rv.is_empty() {
        api.storage.get(&key, None, false).await?.map(|s| s.obj)
    } else {
        let n = parse_rv(rv)?;
        api.cache.wait_for(n).await?;
        api.cache.get(&key).1.map(|e| Arc::unwrap_or_clone(e.obj()))
    };
    let obj =
        obj.ok_or_else(|| ApiError::NotFound(Subject::new(&t.def.group, &t.def.plural, name)))?;
    let out = req.output()?;
    let served = present(&t.def, &obj);
    let v = match out {
        Output::Table => {
            let rv = meta::resource_version(&served).unwrap_or("").to_string();
            let (cols, rows) = table_rows(api, &t.def, std::slice::from_ref(&served), req);
            table::table(cols, rows, &rv, None, include(req)?)
        }
        Output::Metadata => partial(&served),
        _ => served,
    };
    Ok(respond(StatusCode::OK, out, &v, &[]))
}

pub fn parse_rv(rv: &str) -> Result<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

fn include(req: &Req) -> Result<table::IncludeObject> {
    table::IncludeObject::from_query(req.q("includeObject"))
}

/// PartialObjectMetadata of an object.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Table columns and rows for objects of one resource.
fn table_rows(
    api: &Api,
    def: &ResourceDef,
    objs: &[Value],
    _req: &Req,
) -> (Vec<Value>, Vec<(Vec<Value>, Value)>) {
    let now = jiff::Timestamp::now();
    if let Some(custom) = def.custom.as_ref() {
        if let Ok(cc) = table::CustomColumns::from_printer_columns(&custom.printer_columns) {
            let rows = objs.iter().map(|o| (cc.cells(o, now), o.clone())).collect();
            return (cc.columns(), rows);
        }
    }
    let _ = api;
    let cols = table::columns(&def.group, &def.plural);
    match cols {
        Some(cols) => {
            let defs = cols.iter().map(column_json).collect();
            let rows = objs
                .iter()
                .map(|o| (table::cells(&def.group, &def.plural, o, now), o.clone()))
                .collect();
            (defs, rows)
        }
        None => {
            let defs = table::default_columns().iter().map(column_json).collect();
            let rows = objs
                .iter()
                .map(|o| (table::default_cells(o), o.clone()))
                .collect();
            (defs, rows)
        }
    }
}

fn column_json(c: &table::Column) -> Value {
    c.to_json()
}

/// A continue token: Kubernetes' shape (base64 of {"v","rv","start"}).
fn encode_continue(rv: i64, start_rel: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start_rel});
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".to_string())
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rv = v
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, start))
}

/// Objects of a list request, the revision of the list, and a continue token.
/// What a list asks for besides its selectors.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListParams<'a> {
    pub rv: &'a str,
    pub rv_match: &'a str,
    pub limit: i64,
    pub cont: Option<&'a str>,
}

pub async fn list_objects(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    sel: &Selectors,
    p: &ListParams<'_>,
) -> Result<(Vec<Value>, i64, Option<String>)> {
    let ListParams {
        rv,
        rv_match,
        limit,
        cont,
    } = *p;
    let prefix = def.list_prefix(ns);
    let store_read = cont.is_some() || rv_match == "Exact" || (limit > 0 && rv != "0");
    if !store_read {
        let rev = match rv {
            "" => api.cache.wait_fresh().await?,
            "0" => api.cache.revision(),
            n => {
                let n = parse_rv(n)?;
                api.cache.wait_for(n).await?;
                n
            }
        };
        let snap = api.cache.snapshot(&prefix);
        let items = snap
            .items
            .into_iter()
            .filter(|(k, e)| key_in(def, ns, k) && matches_selectors(def, sel, &e.obj()))
            .map(|(_, e)| Arc::unwrap_or_clone(e.obj()))
            .collect();
        return Ok((items, snap.rev.max(rev), None));
    }
    // From the store, at one revision for every page.
    let (mut rev, mut from) = match cont {
        Some(token) => {
            if !rv.is_empty() {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rev, start) = decode_continue(token)?;
            (rev, Some(format!("{prefix}{start}").into_bytes()))
        }
        None => match (rv, rv_match) {
            ("", _) => (0, None),
            (n, _) => (parse_rv(n)?, None),
        },
    };
    let compact = api.storage.node().mvcc().compact_rev();
    if rev > 0 && rev <= compact && cont.is_some() {
        return Err(ApiError::Expired(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue token \
             in this response to retrieve the remainder of the results. Continuing with the \
             provided token results in an inconsistent list - objects that were created, \
             modified, or deleted between the time the first chunk was returned and now may \
             show up in the list."
                .into(),
        ));
    }
    let want = if limit > 0 {
        limit as usize
    } else {
        usize::MAX
    };
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let chunk = if limit > 0 {
            (limit * 2).clamp(1, 10_000)
        } else {
            10_000
        };
        let (kvs, read_rev, more) =
            match api.storage.list(&prefix, from.as_deref(), rev, chunk).await {
                Ok(r) => r,
                Err(ApiError::Store(keelson_store::StoreError::Etcd(
                    keelson_store::EtcdError::Compacted,
                ))) => return Err(ApiError::too_old(rev, compact + 1)),
                Err(e) => return Err(e),
            };
        rev = read_rev;
        let n = kvs.len();
        let mut last_key: Option<Vec<u8>> = None;
        for (k, s) in kvs {
            let ks = String::from_utf8_lossy(&k).into_owned();
            last_key = Some(k);
            if !key_in(def, ns, &ks) || !matches_selectors(def, sel, &s.obj) {
                continue;
            }
            items.push(s.obj);
            if items.len() >= want {
                break;
            }
        }
        let Some(mut lk) = last_key else { break };
        lk.push(0);
        let stopped_early = items.len() >= want;
        if stopped_early {
            // More may remain after the last key we took.
            let rel = String::from_utf8_lossy(&lk[prefix.len()..]).into_owned();
            if more || n > 0 {
                next = Some(rel);
            }
            break;
        }
        if !more {
            break;
        }
        from = Some(lk);
    }
    // A continue token only if something is left beyond the last returned key.
    let token = match next {
        Some(rel) => {
            let start = format!("{prefix}{rel}");
            let (rest, _, _) = api
                .storage
                .list(&prefix, Some(start.as_bytes()), rev, 1)
                .await?;
            if rest.is_empty() {
                None
            } else {
                Some(encode_continue(rev, &rel))
            }
        }
        None => None,
    };
    Ok((items, rev, token))
}

pub async fn list(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let sel = Selectors::parse(&t.def, req)?;
    let out = req.output()?;
    let rv = req.q("resourceVersion").unwrap_or("");
    let rv_match = req.q("resourceVersionMatch").unwrap_or("");
    match rv_match {
        "" | "NotOlderThan" | "Exact" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )))
        }
    }
    if !rv_match.is_empty() && rv.is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    let limit = req.q_i64("limit")?.unwrap_or(0).max(0);
    let cont = req.q("continue").filter(|c| !c.is_empty());
    let params = ListParams {
        rv,
        rv_match,
        limit,
        cont,
    };
    let (items, rev, token) =
        list_objects(api, &t.def, t.namespace.as_deref(), &sel, &params).await?;
    let items: Vec<Value> = items.iter().map(|o| present(&t.def, o)).collect();
    let v = match out {
        Output::Table => {
            let (cols, rows) = table_rows(api, &t.def, &items, req);
            table::table(
                cols,
                rows,
                &rev.to_string(),
                token.as_deref(),
                include(req)?,
            )
        }
        Output::Metadata => {
            let mut md = json!({"resourceVersion": rev.to_string()});
            if let Some(c) = &token {
                md["continue"] = json!(c);
            }
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": md,
                "items": items.iter().map(partial).collect::<Vec<_>>(),
            })
        }
        _ => {
            let mut md = json!({"resourceVersion": rev.to_string()});
            if let Some(c) = &token {
                md["continue"] = json!(c);
            }
            json!({
                "kind": t.def.list_kind(),
                "apiVersion": t.def.api_version(),
                "metadata": md,
                "items": items,
            })
        }
    };
    Ok(respond(StatusCode::OK, out, &v, &[]))
}

/// How long a watch lasts when the client does not say: Kubernetes picks 30-60 minutes.
fn default_watch_timeout() -> Duration {
    use rand::Rng;
    Duration::from_secs(rand::thread_rng().gen_range(1800..3600))
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// One encoded watch event line.
fn event_line(ty: &str, obj: &Value) -> bytes::Bytes {
    let mut line = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
    line.push(b'\n');
    bytes::Bytes::from(line)
}

/// `{"type":…,"object":…}` and a newline around an object already encoded as JSON.
fn json_event_line(ty: &str, obj: &[u8]) -> bytes::Bytes {
    let mut line = Vec::with_capacity(obj.len() + ty.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ty.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(obj);
    line.extend_from_slice(b"}\n");
    bytes::Bytes::from(line)
}

struct WatchCtx {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    sel: Selectors,
    out: Output,
    include: table::IncludeObject,
    headers_sent: bool,
}

impl WatchCtx {
    /// The event as the client sees it (selector transitions turn into ADDED/DELETED), or None.
    fn translate(&mut self, ev: &CacheEvent) -> Option<bytes::Bytes> {
        if !key_in(&self.def, self.ns.as_deref(), &ev.key) {
            return None;
        }
        // Without selectors neither side needs decoding to know it matches.
        let everything = self.sel.labels.is_empty() && self.sel.fields.is_empty();
        let now_match = everything || matches_selectors(&self.def, &self.sel, &ev.obj());
        let was_match = if everything {
            ev.has_prev()
        } else {
            ev.prev()
                .is_some_and(|p| matches_selectors(&self.def, &self.sel, &p))
        };
        let ty = match ev.kind {
            EventKind::Added if now_match => "ADDED",
            EventKind::Modified if now_match && was_match => "MODIFIED",
            EventKind::Modified if now_match => "ADDED",
            EventKind::Modified if was_match => "DELETED",
            EventKind::Deleted if was_match || now_match => "DELETED",
            _ => return None,
        };
        // Plain JSON of a resource served as stored: one encoding shared by every watcher.
        if self.out == Output::Json && !convert::converts(&self.def) {
            if let Some(obj) = ev.served_json(&self.def.api_version(), &self.def.kind) {
                return Some(json_event_line(ty, &obj));
            }
        }
        Some(self.encode(ty, &ev.obj()))
    }

    fn encode(&mut self, ty: &str, obj: &Value) -> bytes::Bytes {
        let served = present(&self.def, obj);
        let v = match self.out {
            Output::Table => {
                let now = jiff::Timestamp::now();
                let (cols, cells) = match self.def.custom.as_ref().and_then(|c| {
                    table::CustomColumns::from_printer_columns(&c.printer_columns).ok()
                }) {
                    Some(cc) => (cc.columns(), cc.cells(&served, now)),
                    None => match table::columns(&self.def.group, &self.def.plural) {
                        Some(cols) => (
                            cols.iter().map(column_json).collect(),
                            table::cells(&self.def.group, &self.def.plural, &served, now),
                        ),
                        None => (
                            table::default_columns().iter().map(column_json).collect(),
                            table::default_cells(&served),
                        ),
                    },
                };
                let cols = if self.headers_sent { Vec::new() } else { cols };
                self.headers_sent = true;
                let rv = meta::resource_version(&served).unwrap_or("").to_string();
                table::table(cols, vec![(cells, served)], &rv, None, self.include)
            }
            Output::Metadata => partial(&served),
            _ => served,
        };
        event_line(ty, &v)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> bytes::Bytes {
        let mut md = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": md});
        event_line("BOOKMARK", &obj)
    }
}

fn error_line(e: &ApiError) -> bytes::Bytes {
    event_line("ERROR", &e.to_status())
}

pub async fn watch(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let mut sel = Selectors::parse(&t.def, req)?;
    if let Some(name) = &t.name {
        // GET .../pods/<name>?watch=true watches one object.
        let s = format!("metadata.name={name}");
        let mut extra = crate::selectors::FieldSelector::parse(&s)?;
        if !sel.fields.is_empty() {
            let combined = format!("{},{s}", req.q("fieldSelector").unwrap_or(""));
            extra = crate::selectors::FieldSelector::parse(&combined)?;
        }
        sel.fields = extra;
    }
    let out = req.output()?;
    let include = include(req)?;
    let rv = req.q("resourceVersion").unwrap_or("").to_string();
    let rv_match = req.q("resourceVersionMatch").unwrap_or("");
    let bookmarks = req.q_bool("allowWatchBookmarks")?;
    let send_initial = match req.q("sendInitialEvents") {
        None | Some("") => None,
        Some(_) => Some(req.q_bool("sendInitialEvents")?),
    };
    if send_initial.is_some() && rv_match != "NotOlderThan" {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![crate::error::Cause::not_supported(
                "resourceVersionMatch",
                &json!(rv_match),
                &["NotOlderThan"],
            )],
        ));
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![crate::error::Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let timeout = match req.q_i64("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => default_watch_timeout(),
    };
    let prefix = t.def.list_prefix(t.namespace.as_deref());
    // Where to start: a snapshot (synthetic ADDED events) or after a revision.
    let initial = match (rv.as_str(), send_initial) {
        (_, Some(true)) => {
            if rv.is_empty() {
                api.cache.wait_fresh().await?;
            } else {
                api.cache.wait_for(parse_rv(&rv)?).await?;
            }
            None
        }
        ("", None) => {
            api.cache.wait_fresh().await?;
            None
        }
        ("0", _) => None,
        (n, _) => Some(parse_rv(n)?),
    };
    let snapshot_start = initial.is_none() && send_initial != Some(false);
    let sub = match initial {
        Some(n) => {
            api.cache.wait_for(n).await.ok();
            api.cache.subscribe_after(n)
        }
        None if snapshot_start => Ok(api.cache.subscribe_snapshot(&prefix)),
        None => {
            let cur = api.cache.revision();
            api.cache.subscribe_after(cur)
        }
    };
    let mut ctx = WatchCtx {
        def: Arc::clone(&t.def),
        ns: t.namespace.clone(),
        sel,
        out,
        include,
        headers_sent: false,
    };
    let cache = Arc::clone(&api.cache);
    let ct = crate::codec::JSON;
    let stream = async_stream::stream! {
        let mut sub = match sub {
            Ok(s) => s,
            Err(e) => {
                yield Ok::<_, std::io::Error>(error_line(&e));
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rev: i64 = 0;
        match std::mem::replace(&mut sub.start, Start::After { backlog: Vec::new() }) {
            Start::Snapshot(snap) => {
                last_rev = snap.rev;
                for (k, e) in &snap.items {
                    if !key_in(&ctx.def, ctx.ns.as_deref(), k) || !matches_selectors(&ctx.def, &ctx.sel, &e.obj()) {
                        continue;
                    }
                    yield Ok(ctx.encode("ADDED", &e.obj()));
                }
                if send_initial == Some(true) {
                    yield Ok(ctx.bookmark(snap.rev, true));
                }
            }
            Start::After { backlog } => {
                if let Some(n) = initial {
                    last_rev = n;
                }
                for ev in backlog {
                    last_rev = ev.rev;
                    if let Some(line) = ctx.translate(&ev) {
                        yield Ok(line);
                    }
                }
                if send_initial == Some(false) && bookmarks {
                    yield Ok(ctx.bookmark(cache.revision().max(last_rev), true));
                }
            }
        }
        let mut seq = sub.seq;
        let epoch = sub.epoch;
        let mut rx = sub.rx;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(resource = %ctx.def.plural, last_rev, "watch reached its timeout");
                    break;
                }
                _ = tick.tick() => {
                    if bookmarks {
                        yield Ok(ctx.bookmark(cache.revision().max(last_rev), false));
                    }
                }
                r = rx.recv() => match r {
                    Ok(ev) => {
                        if ev.seq <= seq {
                            continue;
                        }
                        seq = ev.seq;
                        last_rev = ev.rev;
                        if let Some(line) = ctx.translate(&ev) {
                            yield Ok(line);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Catch up from the window, or tell the client to relist.
                        match cache.since_seq(seq, epoch) {
                            Some((evs, new_rx)) => {
                                rx = new_rx;
                                for ev in evs {
                                    seq = ev.seq;
                                    last_rev = ev.rev;
                                    if let Some(line) = ctx.translate(&ev) {
                                        yield Ok(line);
                                    }
                                }
                            }
                            None => {
                                yield Ok(error_line(&ApiError::too_old(last_rev, cache.oldest() + 1)));
                                break;
                            }
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            if cache.epoch() != epoch {
                yield Ok(error_line(&ApiError::too_old(last_rev, cache.oldest() + 1)));
                break;
            }
        }
    };
    Ok(stream_response(ct, stream))
}
