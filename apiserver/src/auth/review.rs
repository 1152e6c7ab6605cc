//! The review APIs: `authorization.k8s.io/v1` (SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectRulesReview — what `kubectl auth can-i` asks) and
//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`). Each is a `create`
//! that stores nothing and answers the object back with its `status` filled in.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{RequestInfo, User};
use crate::codec;
use crate::error::{ApiError, Cause, Result};
use crate::rest;
use crate::{meta, Api};

pub const AUTHORIZATION: &str = "authorization.k8s.io";
pub const AUTHENTICATION: &str = "authentication.k8s.io";
const VERSION: &str = "v1";

/// (group, plural, kind, namespaced) of every review resource.
const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        AUTHORIZATION,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    ),
    (
        AUTHORIZATION,
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
    (
        AUTHORIZATION,
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    ),
    (
        AUTHORIZATION,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
    ),
    (
        AUTHENTICATION,
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
    ),
    (AUTHENTICATION, "tokenreviews", "TokenReview", false),
];

/// Whether this group's requests are answered here.
pub fn serves(group: &str) -> bool {
    group == AUTHORIZATION || group == AUTHENTICATION
}

fn resources_of(
    group: &str,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str, bool)> + '_ {
    REVIEWS.iter().filter(move |r| r.0 == group)
}

/// The groups' entries in `/apis`.
pub fn group_entries() -> Vec<Value> {
    [AUTHENTICATION, AUTHORIZATION]
        .iter()
        .map(|g| {
            let v = json!({"groupVersion": format!("{g}/{VERSION}"), "version": VERSION});
            json!({"name": g, "versions": [v], "preferredVersion": v})
        })
        .collect()
}

/// `/apis/<group>`.
pub fn api_group(group: &str) -> Option<Value> {
    group_entries()
        .into_iter()
        .find(|g| g["name"] == group)
        .map(|mut g| {
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })
}

/// `/apis/<group>/v1`.
pub fn resource_list(group: &str) -> Value {
    let resources: Vec<Value> = resources_of(group)
        .map(|(_, plural, kind, namespaced)| {
            json!({"name": plural, "singularName": "", "namespaced": namespaced,
                   "kind": kind, "verbs": ["create"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1",
           "groupVersion": format!("{group}/{VERSION}"), "resources": resources})
}

/// The groups in aggregated discovery.
pub fn aggregated_entries() -> Vec<Value> {
    [AUTHENTICATION, AUTHORIZATION]
        .iter()
        .map(|g| {
            let resources: Vec<Value> = resources_of(g)
                .map(|(group, plural, kind, namespaced)| {
                    json!({"resource": plural,
                           "responseKind": {"group": group, "version": VERSION, "kind": kind},
                           "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                           "singularResource": kind.to_ascii_lowercase(), "verbs": ["create"]})
                })
                .collect();
            json!({"metadata": {"name": g},
                   "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]})
        })
        .collect()
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The request an access review asks about, checked as Kubernetes checks it.
fn attributes(kind: &str, spec: &Value, local_ns: Option<&str>) -> Result<RequestInfo> {
    let res = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let invalid = |field: &str, detail: &str| {
        ApiError::invalid(
            kind,
            AUTHORIZATION,
            "",
            vec![Cause::invalid(field, &json!(""), detail)],
        )
    };
    match (res, non) {
        (Some(r), None) => {
            let ns = str_field(r, "namespace");
            if let Some(local) = local_ns {
                if ns != local {
                    return Err(invalid(
                        "spec.resourceAttributes.namespace",
                        "must match metadata.namespace",
                    ));
                }
            }
            Ok(RequestInfo::resource(
                str_field(r, "verb"),
                str_field(r, "group"),
                ns,
                str_field(r, "resource"),
                str_field(r, "subresource"),
                str_field(r, "name"),
            ))
        }
        (None, Some(n)) if local_ns.is_none() => Ok(RequestInfo::non_resource(
            str_field(n, "verb"),
            str_field(n, "path"),
        )),
        (None, Some(_)) => Err(invalid(
            "spec.nonResourceAttributes",
            "disallowed on this kind of request",
        )),
        _ => Err(invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn user_info(u: &User) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    v
}

/// Answers a review request; `None` when the path is not one of the reviews.
pub fn serve(
    api: &Api,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    req: &rest::Req,
    user: &User,
) -> Option<Response> {
    let (ns, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some(*ns), *plural),
        _ => return None,
    };
    let &(_, _, kind, namespaced) = resources_of(group).find(|r| r.1 == plural)?;
    if version != VERSION || namespaced != ns.is_some() {
        return Some(ApiError::NoSuchResource.into_response());
    }
    if *method != Method::POST {
        return Some(ApiError::MethodNotAllowed.into_response());
    }
    Some(match review(api, kind, ns, req, user) {
        Ok(v) => match req.output() {
            Ok(out) => rest::respond(StatusCode::CREATED, out, &v, &[]),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    })
}

fn review(api: &Api, kind: &str, ns: Option<&str>, req: &rest::Req, user: &User) -> Result<Value> {
    let mut obj = codec::decode_object(req.header("content-type"), &req.body)?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = if matches!(kind, "SelfSubjectReview" | "TokenReview") {
        AUTHENTICATION
    } else {
        AUTHORIZATION
    };
    let want_version = format!("{group}/{VERSION}");
    let got_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if (!api_version.is_empty() && api_version != want_version)
        || (!got_kind.is_empty() && got_kind != kind)
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {api_version} {got_kind}, not a {want_version} {kind}"
        )));
    }
    obj["apiVersion"] = json!(want_version);
    obj["kind"] = json!(kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match kind {
        "SelfSubjectReview" => json!({"userInfo": user_info(user)}),
        "TokenReview" => token_review(api, &spec),
        "SelfSubjectRulesReview" => {
            let namespace = str_field(&spec, "namespace");
            let (res, non) = api.authz.rules_for(user, namespace);
            json!({
                "resourceRules": res.iter().map(|r| r.to_resource_rule_json()).collect::<Vec<_>>(),
                "nonResourceRules": non.iter().map(|r| r.to_non_resource_rule_json()).collect::<Vec<_>>(),
                "incomplete": false,
            })
        }
        "SelfSubjectAccessReview" => decision(api, user, &attributes(kind, &spec, None)?),
        _ => {
            let subject = User {
                name: str_field(&spec, "user").to_string(),
                uid: str_field(&spec, "uid").to_string(),
                groups: crate::meta::string_list(&spec, "groups"),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::invalid(
                    kind,
                    AUTHORIZATION,
                    "",
                    vec![Cause::invalid(
                        "spec.user,spec.groups",
                        &json!(""),
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            if let Some(n) = ns {
                obj["metadata"]["namespace"] = json!(n);
            }
            decision(api, &subject, &attributes(kind, &spec, ns)?)
        }
    };
    obj["status"] = status;
    Ok(obj)
}

/// A TokenReview's status: whose token it is, for which audiences — or why it is not valid.
fn token_review(api: &Api, spec: &Value) -> Value {
    let token = str_field(spec, "token");
    let audiences: Vec<String> = Some(meta::string_list(spec, "audiences"))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![super::token::ISSUER.to_string()]);
    let wanted: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let header = format!("Bearer {token}");
    let user = if token.is_empty() {
        None
    } else {
        api.config
            .authn
            .authenticate(None, Some(&header), |t| {
                super::sa::authenticate(api, t, &wanted)
            })
            .ok()
    };
    match user {
        Some(u) => json!({"authenticated": true, "user": user_info(&u), "audiences": audiences}),
        None => {
            json!({"authenticated": false, "user": {}, "error": "invalid bearer token, the token is not valid for this server or has expired"})
        }
    }
}

fn decision(api: &Api, user: &User, info: &RequestInfo) -> Value {
    let d = api.authz.decide(user, info);
    let mut s = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        s["reason"] = json!(d.reason);
    }
    s
}
