//! What a request asks to do, in the terms authorization decides on: Kubernetes'
//! `RequestInfo` (verb, API group, namespace, resource, subresource, name), read off the path,
//! the method and the query alone, before the server looks at what exists.

use axum::http::Method;

/// The attributes of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Under `/api/<v>/…` or `/apis/<g>/<v>/…` with at least a resource; otherwise the
    /// request is for a non-resource URL ([`RequestInfo::path`]).
    pub resource_request: bool,
    pub path: String,
    /// Kubernetes' verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` for resources; the lower-case HTTP method for non-resource URLs.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// A list's or watch's `fieldSelector`, as sent.
    pub field_selector: String,
}

impl RequestInfo {
    /// A resource request, for access reviews and tests.
    pub fn resource(
        verb: &str,
        group: &str,
        namespace: &str,
        resource: &str,
        subresource: &str,
        name: &str,
    ) -> RequestInfo {
        RequestInfo {
            resource_request: true,
            path: String::new(),
            verb: verb.to_string(),
            api_group: group.to_string(),
            api_version: String::new(),
            namespace: namespace.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            name: name.to_string(),
            field_selector: String::new(),
        }
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> RequestInfo {
        RequestInfo {
            resource_request: false,
            path: path.to_string(),
            verb: verb.to_string(),
            ..RequestInfo::default()
        }
    }

    /// `pods` or `pods/log`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Subresources of a namespace (`/api/v1/namespaces/<ns>/status`), not resources in it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Streams whose WebSocket or SPDY upgrade needs `create` whatever the method (Kubernetes
/// 1.31+ checks `create` for the WebSocket GET of exec, attach and port-forward).
const CONNECT_CREATE: &[&str] = &["exec", "attach", "portforward"];

fn http_verb(method: &Method) -> String {
    match *method {
        Method::GET | Method::HEAD => "get".into(),
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => "delete".into(),
        ref other => other.as_str().to_ascii_lowercase(),
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a request's attributes the way Kubernetes' `RequestInfoFactory` does.
pub fn request_info(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
    let non_resource = || RequestInfo::non_resource(&method.as_str().to_ascii_lowercase(), path);
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, mut rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (g, v, rest),
        _ => return non_resource(),
    };
    let mut info = RequestInfo {
        resource_request: true,
        path: path.to_string(),
        verb: http_verb(method),
        api_group: group.to_string(),
        api_version: version.to_string(),
        ..RequestInfo::default()
    };
    let mut watch_path = false;
    if rest.first() == Some(&"watch") && method == Method::GET {
        watch_path = true;
        info.verb = "watch".into();
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") {
        if let Some(ns) = rest.get(1) {
            info.namespace = ns.to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
    }
    info.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    info.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    info.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    if info.resource.is_empty() {
        // `/api/v1/watch` and the like.
        return non_resource();
    }
    let pairs = query_pairs(query);
    let param = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if info.name.is_empty() && info.verb == "get" {
        let watch = matches!(param("watch"), Some("true" | "1" | "True" | "TRUE"));
        info.verb = if watch { "watch" } else { "list" }.into();
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    // A list or watch of one object by name is authorized as that object (so `resourceNames`
    // rules allow `kubectl get pod x -w`).
    if matches!(info.verb.as_str(), "list" | "watch") {
        info.field_selector = param("fieldSelector").unwrap_or_default().to_string();
    }
    if matches!(info.verb.as_str(), "list" | "watch") && info.name.is_empty() {
        if let Some(fs) = param("fieldSelector") {
            if let Ok(sel) = crate::selectors::FieldSelector::parse(fs) {
                if let Some(name) = sel.exact_name() {
                    info.name = name.to_string();
                }
            }
        }
    }
    if watch_path && info.verb != "watch" {
        info.verb = "watch".into();
    }
    if CONNECT_CREATE.contains(&info.subresource.as_str()) && info.resource == "pods" {
        info.verb = "create".into();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ri(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
        request_info(&method, path, query)
    }

    #[test]
    fn resource_paths_are_read_like_kubernetes() {
        let i = ri(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "default", "pods")
        );
        let i = ri(
            Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("watch=true"),
        );
        assert_eq!(i.verb, "watch");
        let i = ri(Method::GET, "/api/v1/watch/namespaces/default/pods/p", None);
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "p"));
        let i = ri(Method::GET, "/api/v1/namespaces/ns1/pods/p/log", None);
        assert_eq!(
            (
                i.verb.as_str(),
                i.combined_resource().as_str(),
                i.name.as_str()
            ),
            ("get", "pods/log", "p")
        );
        let i = ri(Method::GET, "/api/v1/namespaces/ns1/pods/p/exec", None);
        assert_eq!(i.verb, "create");
        let i = ri(
            Method::DELETE,
            "/apis/apps/v1/namespaces/a/deployments",
            None,
        );
        assert_eq!(
            (i.verb.as_str(), i.api_group.as_str()),
            ("deletecollection", "apps")
        );
        let i = ri(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            None,
        );
        assert_eq!(
            (i.verb.as_str(), i.combined_resource().as_str()),
            ("update", "deployments/scale")
        );
        let i = ri(Method::POST, "/api/v1/nodes", None);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("create", "", "nodes")
        );
    }

    #[test]
    fn a_namespace_is_in_itself() {
        let i = ri(Method::GET, "/api/v1/namespaces/team", None);
        assert_eq!(
            (i.namespace.as_str(), i.resource.as_str(), i.name.as_str()),
            ("team", "namespaces", "team")
        );
        let i = ri(Method::PUT, "/api/v1/namespaces/team/finalize", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "team", "finalize")
        );
        let i = ri(Method::GET, "/api/v1/namespaces", None);
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("list", ""));
    }

    #[test]
    fn a_field_selector_on_the_name_names_the_object() {
        let i = ri(
            Method::GET,
            "/api/v1/namespaces/a/configmaps",
            Some("fieldSelector=metadata.name%3Dcfg&watch=1"),
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "cfg"));
    }

    #[test]
    fn everything_else_is_a_non_resource_url() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/metrics",
            "/version",
        ] {
            let i = ri(Method::GET, p, None);
            assert!(!i.resource_request, "{p}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), ("get", p));
        }
        assert_eq!(ri(Method::POST, "/logs", None).verb, "post");
    }
}
