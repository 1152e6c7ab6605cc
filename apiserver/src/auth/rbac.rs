//! Role-based access control with Kubernetes' semantics, decided on an index of the stored
//! Roles, ClusterRoles and their bindings.
//!
//! - A ClusterRoleBinding grants its ClusterRole's rules everywhere: every namespace, the
//!   cluster-scoped resources and the non-resource URLs.
//! - A RoleBinding grants its Role's (or a ClusterRole's) resource rules in its own namespace.
//! - A ClusterRole with an `aggregationRule` has the rules of every ClusterRole its selectors
//!   match (recursively), as Kubernetes' aggregation controller would write them.
//! - Rules only allow; nothing denies. A request no rule allows is denied.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use super::request::RequestInfo;
use crate::meta;
use crate::rest::User;
use crate::selectors::LabelSelector;

/// One PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

use crate::meta::string_list as strings;

impl Rule {
    pub fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    /// Whether this rule allows a request (Kubernetes' `RuleAllows`).
    pub fn allows(&self, info: &RequestInfo) -> bool {
        if !self.verb_matches(&info.verb) {
            return false;
        }
        if !info.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == info.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| info.path.starts_with(prefix))
            });
        }
        if !self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == info.api_group)
        {
            return false;
        }
        let combined = info.combined_resource();
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!info.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(info.subresource.as_str()))
        });
        if !resource_ok {
            return false;
        }
        self.resource_names.is_empty()
            || (!info.name.is_empty() && self.resource_names.contains(&info.name))
    }

    pub fn to_resource_rule_json(&self) -> Value {
        let mut v =
            json!({"verbs": self.verbs, "apiGroups": self.api_groups, "resources": self.resources});
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }

    pub fn to_non_resource_rule_json(&self) -> Value {
        json!({"verbs": self.verbs, "nonResourceURLs": self.non_resource_urls})
    }
}

/// A binding's subject.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
    /// namespace, name
    ServiceAccount(String, String),
}

impl Subject {
    fn applies_to(&self, user: &User) -> bool {
        match self {
            Subject::User(n) => *n == user.name,
            Subject::Group(g) => user.groups.iter().any(|ug| ug == g),
            Subject::ServiceAccount(ns, n) => {
                user.name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    == Some((ns.as_str(), n.as_str()))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Subject::User(n) => format!("User {n:?}"),
            Subject::Group(g) => format!("Group {g:?}"),
            Subject::ServiceAccount(ns, n) => format!("ServiceAccount {n:?}/{ns:?}"),
        }
    }
}

#[derive(Clone, Debug)]
struct Binding {
    /// The binding's own name and kind, for the reason of an allowed decision.
    name: String,
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    subjects: Vec<Subject>,
    /// `Role` or `ClusterRole`.
    role_kind: String,
    role_name: String,
}

impl Binding {
    fn from_json(v: &Value) -> Option<Binding> {
        let namespace = meta::namespace(v).unwrap_or("").to_string();
        let role_ref = v.get("roleRef")?;
        let subjects = v
            .get("subjects")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        let name = s.get("name")?.as_str()?.to_string();
                        match s.get("kind")?.as_str()? {
                            "User" => Some(Subject::User(name)),
                            "Group" => Some(Subject::Group(name)),
                            "ServiceAccount" => {
                                let ns = s
                                    .get("namespace")
                                    .and_then(Value::as_str)
                                    .filter(|n| !n.is_empty())
                                    .unwrap_or(namespace.as_str())
                                    .to_string();
                                Some(Subject::ServiceAccount(ns, name))
                            }
                            _ => None,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Binding {
            name: meta::name(v)?.to_string(),
            namespace,
            subjects,
            role_kind: role_ref.get("kind")?.as_str()?.to_string(),
            role_name: role_ref.get("name")?.as_str()?.to_string(),
        })
    }

    fn subject_for(&self, user: &User) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.applies_to(user))
    }
}

/// What RBAC decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why it was allowed (`RBAC: allowed by …`), empty when denied.
    pub reason: String,
}

/// Every role and binding, indexed for decisions.
#[derive(Debug, Default)]
pub struct Index {
    /// The store revision the index was built at.
    pub rev: i64,
    /// ClusterRoles by name, with aggregation applied.
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    /// Roles by (namespace, name).
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
    cluster_bindings: Vec<Binding>,
    /// RoleBindings by namespace.
    bindings: HashMap<String, Vec<Binding>>,
}

fn rules_of(v: &Value) -> Vec<Rule> {
    v.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

/// The rules of `name` with aggregation applied (each aggregated role at most once, so a
/// cycle of aggregations ends).
fn effective_rules(
    name: &str,
    roles: &HashMap<String, Arc<Value>>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Rule>,
) {
    if !seen.insert(name.to_string()) {
        return;
    }
    let Some(role) = roles.get(name) else { return };
    for r in rules_of(role) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    let selectors: Vec<LabelSelector> = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| LabelSelector::from_object(s).ok())
                .collect()
        })
        .unwrap_or_default();
    if selectors.is_empty() {
        return;
    }
    let mut matched: Vec<&String> = roles
        .iter()
        .filter(|(other, obj)| {
            other.as_str() != name && selectors.iter().any(|s| s.matches(meta::labels(obj)))
        })
        .map(|(other, _)| other)
        .collect();
    matched.sort();
    for other in matched {
        effective_rules(other, roles, seen, out);
    }
}

impl Index {
    /// Builds the index from the stored objects.
    pub fn build(
        rev: i64,
        cluster_roles: Vec<Arc<Value>>,
        roles: Vec<Arc<Value>>,
        cluster_bindings: Vec<Arc<Value>>,
        bindings: Vec<Arc<Value>>,
    ) -> Index {
        let by_name: HashMap<String, Arc<Value>> = cluster_roles
            .into_iter()
            .filter_map(|r| Some((meta::name(&r)?.to_string(), r)))
            .collect();
        let cluster_roles = by_name
            .keys()
            .map(|name| {
                let mut rules = Vec::new();
                effective_rules(name, &by_name, &mut BTreeSet::new(), &mut rules);
                (name.clone(), Arc::new(rules))
            })
            .collect();
        let roles = roles
            .iter()
            .filter_map(|r| {
                let key = (meta::namespace(r)?.to_string(), meta::name(r)?.to_string());
                Some((key, Arc::new(rules_of(r))))
            })
            .collect();
        let mut by_ns: HashMap<String, Vec<Binding>> = HashMap::new();
        for b in bindings.iter().filter_map(|b| Binding::from_json(b)) {
            by_ns.entry(b.namespace.clone()).or_default().push(b);
        }
        Index {
            rev,
            cluster_roles,
            roles,
            cluster_bindings: cluster_bindings
                .iter()
                .filter_map(|b| Binding::from_json(b))
                .collect(),
            bindings: by_ns,
        }
    }

    fn role_rules(&self, b: &Binding) -> Option<&Arc<Vec<Rule>>> {
        match b.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&b.role_name),
            "Role" if !b.namespace.is_empty() => {
                self.roles.get(&(b.namespace.clone(), b.role_name.clone()))
            }
            _ => None,
        }
    }

    /// The bindings that apply to `user` for a request in `namespace` ("" for the cluster
    /// scope): every ClusterRoleBinding, then the namespace's RoleBindings.
    fn applicable<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        let local = (!namespace.is_empty())
            .then(|| self.bindings.get(namespace))
            .flatten()
            .into_iter()
            .flatten();
        self.cluster_bindings.iter().chain(local)
    }

    /// Decides one request.
    pub fn authorize(&self, user: &User, info: &RequestInfo) -> Decision {
        // Non-resource URLs are granted by ClusterRoleBindings only.
        let ns = if info.resource_request {
            info.namespace.as_str()
        } else {
            ""
        };
        for b in self.applicable(ns) {
            let Some(subject) = b.subject_for(user) else {
                continue;
            };
            let Some(rules) = self.role_rules(b) else {
                continue;
            };
            if rules.iter().any(|r| r.allows(info)) {
                let (kind, scope) = if b.namespace.is_empty() {
                    ("ClusterRoleBinding", String::new())
                } else {
                    ("RoleBinding", format!(" in namespace {:?}", b.namespace))
                };
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by {kind} {:?} of {} {:?} to {}{scope}",
                        b.name,
                        b.role_kind,
                        b.role_name,
                        subject.describe()
                    ),
                };
            }
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }

    /// The rules that apply to `user` in `namespace` (SelfSubjectRulesReview): resource rules
    /// of every applicable binding, non-resource rules of the ClusterRoleBindings.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<Rule>) {
        let mut resource = Vec::new();
        let mut non_resource = Vec::new();
        for b in self.applicable(namespace) {
            if b.subject_for(user).is_none() {
                continue;
            }
            let Some(rules) = self.role_rules(b) else {
                continue;
            };
            for r in rules.iter() {
                let target = if !r.non_resource_urls.is_empty() {
                    if !b.namespace.is_empty() {
                        continue;
                    }
                    &mut non_resource
                } else {
                    &mut resource
                };
                if !target.contains(r) {
                    target.push(r.clone());
                }
            }
        }
        (resource, non_resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn a(v: Value) -> Arc<Value> {
        Arc::new(v)
    }

    fn index() -> Index {
        let cluster_roles = vec![
            a(
                json!({"metadata": {"name": "reader", "labels": {"agg": "yes"}},
                     "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]}),
            ),
            a(
                json!({"metadata": {"name": "scaler", "labels": {"agg": "yes"}},
                     "rules": [{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}]}),
            ),
            a(json!({"metadata": {"name": "combined"},
                     "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}})),
            a(json!({"metadata": {"name": "metrics"},
                     "rules": [{"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}]})),
        ];
        let roles = vec![a(
            json!({"metadata": {"name": "cm-one", "namespace": "team"},
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get", "update"]}]}),
        )];
        let cluster_bindings = vec![
            a(
                json!({"metadata": {"name": "ops-read"}, "roleRef": {"kind": "ClusterRole", "name": "combined"},
                     "subjects": [{"kind": "Group", "name": "ops"}]}),
            ),
            a(
                json!({"metadata": {"name": "mon"}, "roleRef": {"kind": "ClusterRole", "name": "metrics"},
                     "subjects": [{"kind": "User", "name": "prom"}]}),
            ),
        ];
        let bindings = vec![
            a(
                json!({"metadata": {"name": "alice-cm", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "cm-one"},
                     "subjects": [{"kind": "User", "name": "alice"}]}),
            ),
            a(
                json!({"metadata": {"name": "sa-read", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                     "subjects": [{"kind": "ServiceAccount", "name": "bot"}]}),
            ),
            // A binding in another namespace to a Role of that name grants nothing here.
            a(
                json!({"metadata": {"name": "alice-cm", "namespace": "other"}, "roleRef": {"kind": "Role", "name": "cm-one"},
                     "subjects": [{"kind": "User", "name": "alice"}]}),
            ),
        ];
        Index::build(1, cluster_roles, roles, cluster_bindings, bindings)
    }

    fn allowed(ix: &Index, u: &User, info: RequestInfo) -> bool {
        ix.authorize(u, &info).allowed
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_subresources() {
        let ix = index();
        let ops = user("bob", &["ops"]);
        let r = RequestInfo::resource;
        assert!(allowed(&ix, &ops, r("list", "", "x", "pods", "", "")));
        assert!(allowed(&ix, &ops, r("get", "", "", "pods", "log", "p")));
        assert!(!allowed(&ix, &ops, r("delete", "", "x", "pods", "", "p")));
        assert!(!allowed(&ix, &ops, r("get", "", "x", "pods", "exec", "p")));
        assert!(!allowed(&ix, &ops, r("get", "apps", "x", "pods", "", "p")));
        // `*/scale` through aggregation.
        assert!(allowed(
            &ix,
            &ops,
            r("update", "apps", "x", "deployments", "scale", "d")
        ));
        assert!(!allowed(
            &ix,
            &ops,
            r("update", "apps", "x", "deployments", "", "d")
        ));
        let alice = user("alice", &[]);
        assert!(allowed(
            &ix,
            &alice,
            r("get", "", "team", "configmaps", "", "settings")
        ));
        assert!(!allowed(
            &ix,
            &alice,
            r("get", "", "team", "configmaps", "", "other")
        ));
        // resourceNames never match a request without a name (list, create).
        assert!(!allowed(
            &ix,
            &alice,
            r("list", "", "team", "configmaps", "", "")
        ));
        assert!(!allowed(
            &ix,
            &alice,
            r("get", "", "other", "configmaps", "", "settings")
        ));
        assert!(!allowed(
            &ix,
            &alice,
            r("get", "", "", "configmaps", "", "settings")
        ));
    }

    #[test]
    fn service_accounts_and_non_resource_urls() {
        let ix = index();
        let r = RequestInfo::resource;
        let bot = user("system:serviceaccount:team:bot", &[]);
        assert!(allowed(&ix, &bot, r("watch", "", "team", "pods", "", "")));
        assert!(!allowed(
            &ix,
            &bot,
            r("watch", "", "default", "pods", "", "")
        ));
        let other_bot = user("system:serviceaccount:other:bot", &[]);
        assert!(!allowed(
            &ix,
            &other_bot,
            r("watch", "", "team", "pods", "", "")
        ));
        let prom = user("prom", &[]);
        assert!(allowed(
            &ix,
            &prom,
            RequestInfo::non_resource("get", "/metrics")
        ));
        assert!(allowed(
            &ix,
            &prom,
            RequestInfo::non_resource("get", "/debug/pprof")
        ));
        assert!(!allowed(
            &ix,
            &prom,
            RequestInfo::non_resource("post", "/metrics")
        ));
        assert!(!allowed(
            &ix,
            &prom,
            RequestInfo::non_resource("get", "/metricsx")
        ));
    }

    #[test]
    fn decisions_say_which_binding_allowed_them() {
        let ix = index();
        let d = ix.authorize(
            &user("alice", &[]),
            &RequestInfo::resource("update", "", "team", "configmaps", "", "settings"),
        );
        assert_eq!(
            d.reason,
            "RBAC: allowed by RoleBinding \"alice-cm\" of Role \"cm-one\" to User \"alice\" in namespace \"team\""
        );
    }

    #[test]
    fn aggregation_cycles_end() {
        let roles = vec![
            a(json!({"metadata": {"name": "a", "labels": {"x": "1"}},
                     "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"y": "1"}}]},
                     "rules": [{"apiGroups": [""], "resources": ["a"], "verbs": ["get"]}]})),
            a(json!({"metadata": {"name": "b", "labels": {"y": "1"}},
                     "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "1"}}]},
                     "rules": [{"apiGroups": [""], "resources": ["b"], "verbs": ["get"]}]})),
        ];
        let bindings = vec![a(
            json!({"metadata": {"name": "x"}, "roleRef": {"kind": "ClusterRole", "name": "a"},
                   "subjects": [{"kind": "User", "name": "u"}]}),
        )];
        let ix = Index::build(1, roles, vec![], bindings, vec![]);
        let u = user("u", &[]);
        assert!(allowed(
            &ix,
            &u,
            RequestInfo::resource("get", "", "", "b", "", "n")
        ));
        let (res, _) = ix.rules_for(&u, "");
        assert_eq!(res.len(), 2);
    }
}
