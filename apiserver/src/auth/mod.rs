//! Who may do what: authentication of a request (client certificates, bearer tokens,
//! impersonation), its attributes ([`request`]), and the authorizer — the `system:masters`
//! group first, then RBAC ([`rbac`]) on the stored roles and bindings, whose defaults
//! [`policy`] writes — plus the review APIs that let clients ask ([`review`]).

pub mod authn;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod request;
pub mod review;
pub mod sa;
pub mod token;

use std::sync::Arc;

use axum::http::HeaderMap;
use parking_lot::RwLock;
use serde_json::Value;

use crate::error::{ApiError, Result, Subject};
use crate::pki::ADMIN_GROUP;
use crate::rest::User;
use crate::watchcache::WatchCache;
use crate::Api;
pub use request::{request_info, RequestInfo};

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials (when anonymous requests are allowed).
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const RBAC_RESOURCES: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// The authorizer: an index of RBAC objects, rebuilt from the watch cache when they change.
#[derive(Default)]
pub struct Authorizer {
    index: RwLock<Arc<rbac::Index>>,
    /// Which node each pod is bound to and what it uses (the Node authorizer's graph).
    graph: RwLock<node::Graph>,
}

/// Kubernetes' `system:node` rules, which the Node authorizer grants kubelets.
fn node_rules() -> &'static [rbac::Rule] {
    static RULES: std::sync::OnceLock<Vec<rbac::Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        policy::node_rules()
            .iter()
            .map(rbac::Rule::from_json)
            .collect()
    })
}

fn pods_prefix(api: &Api) -> Option<String> {
    api.registry.get("", "v1", "pods").map(|d| d.prefix.clone())
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authorizer(rev {})", self.index.read().rev)
    }
}

/// The watch-cache prefixes of the RBAC objects, in [`RBAC_RESOURCES`] order.
fn prefixes(api: &Api) -> Vec<String> {
    RBAC_RESOURCES
        .iter()
        .filter_map(|r| api.registry.get(RBAC_GROUP, "v1", r))
        .map(|d| d.prefix.clone())
        .collect()
}

fn objects(cache: &WatchCache, prefix: &str) -> (i64, Vec<Arc<Value>>) {
    let snap = cache.snapshot(prefix);
    (
        snap.rev,
        snap.items.into_iter().map(|(_, e)| e.obj()).collect(),
    )
}

impl Authorizer {
    /// Rebuilds the index from what the watch cache holds now.
    pub fn rebuild(&self, api: &Api) {
        let p = prefixes(api);
        let [cr, r, crb, rb] = p.as_slice() else {
            tracing::error!(
                "the RBAC resources are not registered; only system:masters is authorized"
            );
            return;
        };
        let (rev, cluster_roles) = objects(&api.cache, cr);
        let (_, roles) = objects(&api.cache, r);
        let (_, cluster_bindings) = objects(&api.cache, crb);
        let (_, bindings) = objects(&api.cache, rb);
        let index = rbac::Index::build(rev, cluster_roles, roles, cluster_bindings, bindings);
        *self.index.write() = Arc::new(index);
    }

    /// The decision on one request.
    pub fn decide(&self, user: &User, info: &RequestInfo) -> rbac::Decision {
        // Kubernetes' privileged-group authorizer: `system:masters` can do anything, whatever
        // the roles say (so deleting `cluster-admin` cannot lock the admin out).
        if user.groups.iter().any(|g| g == ADMIN_GROUP) {
            return rbac::Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        // The Node authorizer, then RBAC (as Kubernetes' `--authorization-mode=Node,RBAC`).
        if let Some(node) = node::node_of(user) {
            if node::decide(&self.graph.read(), node_rules(), node, info) == Some(true) {
                return rbac::Decision {
                    allowed: true,
                    reason: String::new(),
                };
            }
        }
        let index = Arc::clone(&self.index.read());
        index.authorize(user, info)
    }

    /// Rebuilds the Node authorizer's graph from the pods the watch cache holds now.
    pub fn rebuild_graph(&self, api: &Api) {
        let Some(prefix) = pods_prefix(api) else {
            return;
        };
        let snap = api.cache.snapshot(&prefix);
        let mut g = node::Graph::default();
        for (key, e) in snap.items {
            if let Some(k) = node::pod_key(&key, &prefix) {
                g.apply(&k, Some(&e.obj()));
            }
        }
        *self.graph.write() = g;
    }

    fn pod_event(&self, prefix: &str, ev: &crate::watchcache::CacheEvent) {
        let Some(k) = node::pod_key(&ev.key, prefix) else {
            return;
        };
        let obj = (ev.kind != crate::watchcache::EventKind::Deleted).then(|| ev.obj());
        self.graph.write().apply(&k, obj.as_deref());
    }

    /// `Ok` if allowed, else `403 Forbidden` worded as Kubernetes words it.
    pub fn authorize(&self, user: &User, info: &RequestInfo) -> Result<()> {
        if self.decide(user, info).allowed {
            Ok(())
        } else {
            Err(forbidden(user, info))
        }
    }

    /// The rules that apply to `user` in `namespace`, and whether the list is complete.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<rbac::Rule>, Vec<rbac::Rule>) {
        if user.groups.iter().any(|g| g == ADMIN_GROUP) {
            let all = vec!["*".to_string()];
            return (
                vec![rbac::Rule {
                    verbs: all.clone(),
                    api_groups: all.clone(),
                    resources: all.clone(),
                    ..Default::default()
                }],
                vec![rbac::Rule {
                    verbs: all.clone(),
                    non_resource_urls: all,
                    ..Default::default()
                }],
            );
        }
        let index = Arc::clone(&self.index.read());
        index.rules_for(user, namespace)
    }
}

/// Kubernetes' `Forbidden` for a denied request.
pub fn forbidden(user: &User, info: &RequestInfo) -> ApiError {
    if !info.resource_request {
        return ApiError::Forbidden {
            subject: Subject::new("", "", ""),
            message: format!(
                "forbidden: User {:?} cannot {} path {:?}",
                user.name, info.verb, info.path
            ),
        };
    }
    let scope = if info.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", info.namespace)
    };
    let why = format!(
        "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
        user.name,
        info.verb,
        info.combined_resource(),
        info.api_group
    );
    let qualified = if info.api_group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{}", info.resource, info.api_group)
    };
    let message = if info.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {:?} is forbidden: {why}", info.name)
    };
    ApiError::Forbidden {
        subject: Subject::new(&info.api_group, &info.resource, &info.name),
        message,
    }
}

/// The user of a request: its client certificate's, else its bearer token's (a static token
/// or a ServiceAccount token), else anonymous if allowed; otherwise `401`.
pub fn authenticate(
    api: &Api,
    cert_user: Option<User>,
    authorization: Option<&str>,
) -> Result<User> {
    api.config
        .authn
        .authenticate(cert_user, authorization, |token| {
            sa::authenticate(api, token, &[token::ISSUER])
        })
}

/// Keeps the authorizer current: the RBAC index rebuilt whenever a role or binding changes,
/// the Node authorizer's graph updated with every pod change.
pub async fn sync(api: Arc<Api>) {
    let prefixes = prefixes(&api);
    let Some(first) = prefixes.first().cloned() else {
        return;
    };
    let pods = pods_prefix(&api).unwrap_or_else(|| "/registry/pods/".into());
    let relevant = |key: &str| prefixes.iter().any(|p| key.starts_with(p.as_str()));
    loop {
        // Subscribe first, then build: a change after the build is in the subscription.
        let sub = api.cache.subscribe_snapshot(&first);
        let (epoch, mut rx) = (sub.epoch, sub.rx);
        api.authz.rebuild(&api);
        api.authz.rebuild_graph(&api);
        loop {
            use tokio::sync::broadcast::error::RecvError;
            let mut changed = match rx.recv().await {
                Ok(ev) if ev.seq > sub.seq => {
                    api.authz.pod_event(&pods, &ev);
                    relevant(&ev.key)
                }
                Ok(_) => false,
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            };
            // Coalesce a burst (a bootstrap, a `kubectl apply` of many roles) into one rebuild.
            let lagged = match crate::watchcache::drain(&mut rx, |ev| {
                api.authz.pod_event(&pods, ev);
                changed |= relevant(&ev.key);
            }) {
                crate::watchcache::Drained::Closed => return,
                crate::watchcache::Drained::Lagged => true,
                crate::watchcache::Drained::Empty => false,
            };
            if lagged || api.cache.epoch() != epoch {
                break;
            }
            if changed {
                api.authz.rebuild(&api);
            }
        }
    }
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Applies `Impersonate-User` / `Impersonate-Group` / `Impersonate-Uid`: the requester
/// must be allowed to `impersonate` each (users, groups, service accounts, uids), and the
/// request then runs as the impersonated user.
pub fn impersonate(api: &Api, user: User, headers: &HeaderMap) -> Result<User> {
    let names = header_values(headers, "impersonate-user");
    let groups = header_values(headers, "impersonate-group");
    let uids = header_values(headers, "impersonate-uid");
    let extras = headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-extra-"));
    if names.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || extras {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, a uid or extra fields without impersonating a user",
            ));
        }
        return Ok(user);
    }
    if extras {
        return Err(ApiError::bad_request(
            "impersonating user extra fields (Impersonate-Extra-*) is not supported",
        ));
    }
    let [name] = names.as_slice() else {
        return Err(ApiError::bad_request(
            "only one Impersonate-User header may be given",
        ));
    };
    let check = |info: RequestInfo| api.authz.authorize(&user, &info);
    let mut as_groups: Vec<String> = Vec::new();
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, sa)) => {
            check(RequestInfo::resource(
                "impersonate",
                "",
                ns,
                "serviceaccounts",
                "",
                sa,
            ))?;
            as_groups.push("system:serviceaccounts".into());
            as_groups.push(format!("system:serviceaccounts:{ns}"));
        }
        None => check(RequestInfo::resource(
            "impersonate",
            "",
            "",
            "users",
            "",
            name,
        ))?,
    }
    for g in &groups {
        check(RequestInfo::resource(
            "impersonate",
            "",
            "",
            "groups",
            "",
            g,
        ))?;
        if !as_groups.iter().any(|have| have == g) {
            as_groups.push(g.to_string());
        }
    }
    let mut uid = String::new();
    if let Some(u) = uids.first() {
        check(RequestInfo::resource(
            "impersonate",
            "authentication.k8s.io",
            "",
            "uids",
            "",
            u,
        ))?;
        uid = u.to_string();
    }
    if *name != ANONYMOUS && !as_groups.iter().any(|g| g == AUTHENTICATED) {
        as_groups.push(AUTHENTICATED.into());
    }
    Ok(User {
        name: name.to_string(),
        uid,
        groups: as_groups,
    })
}
