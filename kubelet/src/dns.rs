//! A pod's resolver configuration, as the kubelet makes it (Kubernetes'
//! `pkg/kubelet/network/dns`): from its `dnsPolicy` and `dnsConfig`, the node's cluster DNS
//! (`--cluster-dns`, `--cluster-domain`) and the host's resolv.conf.

use k8s_openapi::api::core::v1::PodSpec;

/// Kubernetes' limits on a pod's resolv.conf.
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCHES: usize = 32;

/// The node's cluster DNS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterDns {
    /// `--cluster-dns`: the nameservers of ClusterFirst pods (none: they fall back to the
    /// host's, as the kubelet does).
    pub servers: Vec<String>,
    /// `--cluster-domain`.
    pub domain: String,
}

/// A resolv.conf: nameservers, search domains, options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolv {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Resolv {
    /// Parses resolv.conf text (`nameserver`, `search`/`domain`, `options`).
    pub fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("nameserver") => r.servers.extend(w.next().map(str::to_string)),
                Some("search") | Some("domain") => {
                    r.searches = w.map(str::to_string).collect();
                }
                Some("options") => r.options.extend(w.map(str::to_string)),
                _ => {}
            }
        }
        r
    }

    /// As resolv.conf text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for s in &self.servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn push_unique(v: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !i.is_empty() && !v.contains(&i) {
            v.push(i);
        }
    }
}

/// Options merged by name: `later`'s `name[:value]` replaces an earlier one of that name.
fn merge_options(base: &mut Vec<String>, later: impl IntoIterator<Item = String>) {
    for opt in later {
        let name = opt.split(':').next().unwrap_or("").to_string();
        base.retain(|o| o.split(':').next() != Some(name.as_str()));
        base.push(opt);
    }
}

/// The resolver of a pod in `namespace`, or None when the runtime's default (the host's
/// resolv.conf) is what the pod gets. An error for a configuration Kubernetes refuses.
pub fn pod_resolv(
    spec: &PodSpec,
    namespace: &str,
    cluster: &ClusterDns,
    host: &Resolv,
) -> Result<Option<Resolv>, String> {
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        "Default" | "None" => false,
        other => return Err(format!("unsupported dnsPolicy {other:?}")),
    };
    let mut r = if policy == "None" {
        Resolv::default()
    } else if cluster_first && !cluster.servers.is_empty() {
        let d = cluster.domain.trim_end_matches('.');
        let mut searches = vec![
            format!("{namespace}.svc.{d}"),
            format!("svc.{d}"),
            d.to_string(),
        ];
        push_unique(&mut searches, host.searches.iter().cloned());
        Resolv {
            servers: cluster.servers.clone(),
            searches,
            options: vec!["ndots:5".to_string()],
        }
    } else if spec.dns_config.is_none() {
        // The host's resolv.conf as the runtime gives it.
        return Ok(None);
    } else {
        host.clone()
    };
    if let Some(c) = &spec.dns_config {
        push_unique(&mut r.servers, c.nameservers.iter().flatten().cloned());
        push_unique(&mut r.searches, c.searches.iter().flatten().cloned());
        merge_options(
            &mut r.options,
            c.options.iter().flatten().filter_map(|o| {
                let name = o.name.clone()?;
                Some(match o.value.as_deref() {
                    Some(v) if !v.is_empty() => format!("{name}:{v}"),
                    _ => name,
                })
            }),
        );
    }
    if policy == "None" && r.servers.is_empty() {
        return Err("dnsPolicy None needs dnsConfig.nameservers".into());
    }
    r.servers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut v = v;
        v["containers"] = json!([{"name": "c"}]);
        serde_json::from_value(v).expect("pod spec")
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.96.0.10".into()],
            domain: "cluster.local".into(),
        }
    }

    fn host() -> Resolv {
        Resolv::parse("search corp.example\nnameserver 192.0.2.53\noptions edns0\n")
    }

    #[test]
    fn cluster_first_pods_ask_the_cluster_dns_with_kubernetes_search_domains() {
        let r = pod_resolv(&spec(json!({})), "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(r.servers, ["10.96.0.10"]);
        assert_eq!(
            r.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(r.options, ["ndots:5"]);
        assert_eq!(
            r.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_host_network_and_no_cluster_dns_keep_the_hosts_resolver() {
        let d = spec(json!({"dnsPolicy": "Default"}));
        assert_eq!(pod_resolv(&d, "shop", &cluster(), &host()), Ok(None));
        let hn = spec(json!({"hostNetwork": true}));
        assert_eq!(pod_resolv(&hn, "shop", &cluster(), &host()), Ok(None));
        let with = spec(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        let r = pod_resolv(&with, "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(r.servers, ["10.96.0.10"]);
        let none = ClusterDns::default();
        assert_eq!(
            pod_resolv(&spec(json!({})), "shop", &none, &host()),
            Ok(None)
        );
    }

    #[test]
    fn dns_config_merges_and_none_takes_only_it() {
        let s = spec(
            json!({"dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["extra.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}]}}),
        );
        let r = pod_resolv(&s, "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(r.servers, ["10.96.0.10", "192.0.2.1"]);
        assert_eq!(r.searches.last().map(String::as_str), Some("extra.example"));
        assert_eq!(r.options, ["ndots:2", "single-request"]);
        let d = spec(
            json!({"dnsPolicy": "Default", "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        );
        let r = pod_resolv(&d, "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(r.servers, ["192.0.2.53"]);
        assert_eq!(r.options, ["edns0", "ndots:1"]);
        let n = spec(
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.9"], "searches": ["a.example"]}}),
        );
        let r = pod_resolv(&n, "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(
            (r.servers, r.searches, r.options),
            (
                vec!["192.0.2.9".to_string()],
                vec!["a.example".to_string()],
                vec![]
            )
        );
        let bad = spec(json!({"dnsPolicy": "None"}));
        assert!(pod_resolv(&bad, "shop", &cluster(), &host()).is_err());
        let many =
            spec(json!({"dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}}));
        let r = pod_resolv(&many, "shop", &cluster(), &host())
            .expect("ok")
            .expect("resolv");
        assert_eq!(r.servers.len(), MAX_NAMESERVERS);
    }
}
