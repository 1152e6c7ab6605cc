//! The generic REST engine: one set of handlers for every resource in the registry.
//!
//! A request under `/api/v1/...` or `/apis/<group>/<version>/...` is parsed into a [`Target`]
//! (resource, namespace, name, subresource) and dispatched by method: GET (get / list / watch),
//! POST (create, or a subresource action), PUT (update), PATCH, DELETE (one or a collection).

pub mod kubelet;
mod read;
mod sub;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::codec::{self, Output};
use crate::error::{ApiError, Result};
use crate::registry::{ResourceDef, Sub};
use crate::Api;

pub use read::ListParams;
pub use read::{list_objects, matches_selectors, Selectors};
pub use write::{create_object, delete_object, update_object, Change, Via, WriteCtx};

/// Who is asking.
#[derive(Clone, Debug, Default)]
pub struct User {
    pub name: String,
    /// Empty when the authenticator knows none.
    pub uid: String,
    pub groups: Vec<String>,
}

/// What a request addresses.
#[derive(Clone, Debug)]
pub struct Target {
    pub def: Arc<ResourceDef>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Sub>,
}

/// A parsed request.
pub struct Req {
    pub method: Method,
    pub query: HashMap<String, String>,
    /// The query as sent (repeated parameters, like exec's `command`, survive in it).
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub user: User,
    /// The connection's upgrade (WebSocket streams of `pods/exec`), taken once.
    pub upgrade: parking_lot::Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    pub fn q_bool(&self, k: &str) -> Result<bool> {
        match self.q(k) {
            None | Some("") => Ok(false),
            Some("true" | "1" | "True" | "TRUE") => Ok(true),
            Some("false" | "0" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for boolean parameter {k:?}"
            ))),
        }
    }

    pub fn q_i64(&self, k: &str) -> Result<Option<i64>> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {s:?} for integer parameter {k:?}"))
            }),
        }
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }

    pub fn output(&self) -> Result<Output> {
        codec::negotiate(self.header("accept"))
    }
}

/// A JSON response with optional `Warning` headers.
pub fn respond(code: StatusCode, out: Output, v: &Value, warnings: &[String]) -> Response {
    let (bytes, ct) = codec::encode(out, v);
    let mut r = (code, bytes).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ct));
    for w in warnings {
        let text = format!("299 - {}", quote_warning(w));
        if let Ok(h) = HeaderValue::from_str(&text) {
            r.headers_mut().append("warning", h);
        }
    }
    r
}

fn quote_warning(w: &str) -> String {
    let escaped: String = w
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.to_status();
        let code = StatusCode::from_u16(status["code"].as_u64().unwrap_or(500) as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        respond(code, Output::Json, &status, &[])
    }
}

/// Parses the path after `/api/v1` or `/apis/<g>/<v>` into a target.
fn parse_target(api: &Api, group: &str, version: &str, rest: &[&str]) -> Result<Target> {
    let find = |plural: &str| api.registry.get(group, version, plural);
    let ns_def = find("namespaces");
    let target = |def: Arc<ResourceDef>,
                  namespace: Option<&str>,
                  name: Option<&str>,
                  sub: Option<&str>|
     -> Result<Target> {
        let sub = match sub {
            Some(s) => Some(
                Sub::parse(s)
                    .filter(|s| def.has(*s))
                    .ok_or(ApiError::NoSuchResource)?,
            ),
            None => None,
        };
        if namespace.is_some() && !def.namespaced {
            return Err(ApiError::NoSuchResource);
        }
        Ok(Target {
            def,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            sub,
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if ns_def.is_none() || !matches!(*plural, "status" | "finalize") =>
        {
            let def = find(plural).ok_or(ApiError::NoSuchResource)?;
            if !def.namespaced {
                return Err(ApiError::NoSuchResource);
            }
            match tail {
                [] => target(def, Some(ns), None, None),
                [name] => target(def, Some(ns), Some(name), None),
                [name, sub] => target(def, Some(ns), Some(name), Some(sub)),
                [name, sub, ..] if *sub == "proxy" => target(def, Some(ns), Some(name), Some(sub)),
                _ => Err(ApiError::NoSuchResource),
            }
        }
        [plural] => target(
            find(plural).ok_or(ApiError::NoSuchResource)?,
            None,
            None,
            None,
        ),
        [plural, name] => target(
            find(plural).ok_or(ApiError::NoSuchResource)?,
            None,
            Some(name),
            None,
        ),
        [plural, name, sub, ..] => {
            let def = find(plural).ok_or(ApiError::NoSuchResource)?;
            target(def, None, Some(name), Some(sub))
        }
        _ => Err(ApiError::NoSuchResource),
    }
}

pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect::<HashMap<_, _>>()
    })
    .unwrap_or_default()
}

/// Serves one resource request. `segments`: the path after `/api/v1` or `/apis/<g>/<v>`.
/// The HTTP parts of a request the engine needs.
pub struct Incoming<'a> {
    pub method: Method,
    pub query: Option<&'a str>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

pub async fn serve(
    api: Arc<Api>,
    group: &str,
    version: &str,
    segments: &[&str],
    incoming: Incoming<'_>,
    user: User,
) -> Response {
    let Incoming {
        method,
        query: raw_query,
        headers,
        body,
        upgrade,
    } = incoming;
    let mut query = parse_query(raw_query);
    // The legacy `/watch/` path prefix.
    let mut segs = segments.to_vec();
    if segs.first() == Some(&"watch") {
        segs.remove(0);
        query.insert("watch".into(), "true".into());
    }
    let target = match parse_target(&api, group, version, &segs) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let req = Req {
        method,
        query,
        raw_query: raw_query.unwrap_or("").to_string(),
        headers,
        body,
        user,
        upgrade: parking_lot::Mutex::new(upgrade),
    };
    match dispatch(&api, &target, &req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(api: &Arc<Api>, t: &Target, req: &Req) -> Result<Response> {
    let verb_ok = |v: &str| -> Result<()> {
        if t.def.allows(v) {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    };
    if let Some(sub) = t.sub {
        return sub::serve(api, t, sub, req).await;
    }
    let m = req.method.clone();
    match (m, &t.name) {
        (Method::GET, None) => {
            if req.q_bool("watch")? {
                verb_ok("watch")?;
                read::watch(api, t, req).await
            } else {
                verb_ok("list")?;
                read::list(api, t, req).await
            }
        }
        (Method::GET, Some(_)) => {
            if req.q_bool("watch")? {
                verb_ok("watch")?;
                read::watch(api, t, req).await
            } else {
                verb_ok("get")?;
                read::get(api, t, req).await
            }
        }
        (Method::POST, None) => {
            verb_ok("create")?;
            write::create(api, t, req).await
        }
        (Method::PUT, Some(_)) => {
            verb_ok("update")?;
            write::update(api, t, req).await
        }
        (Method::PATCH, Some(_)) => {
            verb_ok("patch")?;
            write::patch(api, t, req).await
        }
        (Method::DELETE, Some(_)) => {
            verb_ok("delete")?;
            write::delete(api, t, req).await
        }
        (Method::DELETE, None) => {
            verb_ok("deletecollection")?;
            write::delete_collection(api, t, req).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// A `Status` of success, as DELETE returns for most resources.
pub fn success_status(def: &ResourceDef, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    if let Some(u) = uid {
        details["uid"] = json!(u);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// A streaming response body.
pub fn stream_response(
    out_ct: &'static str,
    stream: impl futures::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>>
        + Send
        + 'static,
) -> Response {
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(out_ct));
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    r
}
