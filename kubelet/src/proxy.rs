//! keelson-proxy: what kube-proxy's nftables mode does on a node. It watches Services and
//! EndpointSlices and programs one nftables table it owns (`table ip keelson`), replaced
//! whole in one `nft -f` transaction per sync and never touching other tables:
//!
//! - ClusterIP:port → one of the Service's ready endpoints, chosen at random per connection
//!   (`numgen random`), from pods and the host alike (`prerouting` and `output` hooks);
//! - NodePort on every local address (`fib daddr type local`), and a LoadBalancer's
//!   `status.loadBalancer.ingress` addresses on the Service's ports (as external traffic);
//! - `sessionAffinity: ClientIP`: a client's connections stick to the endpoint it first got,
//!   for `timeoutSeconds` (a dynamic set per endpoint);
//! - `internalTrafficPolicy: Local` / `externalTrafficPolicy: Local`: only this node's
//!   endpoints (dropped when it has none), without masquerading external traffic;
//! - a Service port without ready endpoints rejects (ICMP port unreachable: connection
//!   refused) instead of letting connections hang;
//! - connections a pod makes to itself through its Service (hairpin) and NodePort traffic
//!   under `externalTrafficPolicy: Cluster` are masqueraded.
//!
//! [`ruleset`] is a pure function of the Services and EndpointSlices; [`run`] keeps the table
//! in step with the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt as _};
use kube::{Api, Client};
use tokio::sync::{watch, Notify};

/// The nftables table keelson-proxy owns.
pub const TABLE: &str = "keelson";
/// The packet mark of connections to masquerade.
const MASQ_MARK: &str = "0x4000";

/// One endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Backend {
    ip: String,
    port: i32,
    local: bool,
}

/// What one Service port needs on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PortRule {
    id: String,
    protocol: String,
    cluster_ip: Option<String>,
    port: i32,
    node_port: Option<i32>,
    /// `status.loadBalancer.ingress` IPs (LoadBalancer Services).
    lb_ips: Vec<String>,
    backends: Vec<Backend>,
    internal_local: bool,
    external_local: bool,
    affinity_seconds: Option<i32>,
}

fn ident(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The rules of every Service port, sorted (pure).
fn port_rules(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &str,
) -> Vec<PortRule> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        let (Some(ns), Some(svc)) = (
            s.metadata.namespace.clone(),
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .cloned(),
        ) else {
            continue;
        };
        if s.address_type != "IPv4" {
            continue;
        }
        by_service.entry((ns, svc)).or_default().push(s);
    }
    let mut out = Vec::new();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
            svc.spec.as_ref(),
        ) else {
            continue;
        };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            continue;
        }
        let cluster_ip = spec.cluster_ip.clone().filter(|ip| {
            !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_ok()
        });
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800)
        });
        let lb_ips: Vec<String> = if ty == "LoadBalancer" {
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone())
                .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
                .collect()
        } else {
            Vec::new()
        };
        let slices = by_service
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default();
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let protocol = p
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".into())
                .to_lowercase();
            if protocol != "tcp" && protocol != "udp" {
                continue;
            }
            let port_name = p.name.clone().unwrap_or_default();
            let mut backends = Vec::new();
            for s in &slices {
                let Some(sp) = s.ports.iter().flatten().find(|sp| {
                    sp.name.clone().unwrap_or_default() == port_name
                        && sp
                            .protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .eq_ignore_ascii_case(&protocol)
                }) else {
                    continue;
                };
                let Some(target) = sp.port else { continue };
                for e in &s.endpoints {
                    let ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                    if !ready {
                        continue;
                    }
                    for ip in &e.addresses {
                        let b = Backend {
                            ip: ip.clone(),
                            port: target,
                            local: e.node_name.as_deref() == Some(node),
                        };
                        if !backends.contains(&b) {
                            backends.push(b);
                        }
                    }
                }
            }
            backends.sort_by(|a, b| (&a.ip, a.port).cmp(&(&b.ip, b.port)));
            out.push(PortRule {
                id: format!("{}_{}_{}", ident(ns), ident(name), i),
                protocol,
                cluster_ip: cluster_ip.clone(),
                port: p.port,
                node_port: p
                    .node_port
                    .filter(|n| *n > 0 && (ty == "NodePort" || ty == "LoadBalancer")),
                lb_ips: lb_ips.clone(),
                backends,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                affinity_seconds,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The statements that send a connection to one of `backends` through chain `chain`'s
/// endpoint chains (`<chain>-<i>`), and those endpoint chains.
fn balance(
    r: &PortRule,
    chain: &str,
    backends: &[&Backend],
    chains: &mut Vec<String>,
    sets: &mut Vec<String>,
) -> Vec<String> {
    if backends.is_empty() {
        return vec!["drop".into()];
    }
    let mut stmts = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let ep = format!("{chain}-{i}");
        let mut body = vec![format!(
            "ip saddr {} meta mark set mark or {MASQ_MARK}",
            b.ip
        )];
        if let Some(secs) = r.affinity_seconds {
            let set = format!("{ep}-aff");
            sets.push(format!(
                "  set {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {secs}s; }}\n"
            ));
            body.push(format!("update @{set} {{ ip saddr }}"));
            stmts.push(format!("ip saddr @{set} goto {ep}"));
        }
        body.push(format!(
            "meta l4proto {} dnat to {}:{}",
            r.protocol, b.ip, b.port
        ));
        chains.push(chain_text(&ep, None, &body));
    }
    if backends.len() == 1 {
        stmts.push(format!("goto {chain}-0"));
    } else {
        let arms: Vec<String> = (0..backends.len())
            .map(|i| format!("{i} : goto {chain}-{i}"))
            .collect();
        stmts.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            backends.len(),
            arms.join(", ")
        ));
    }
    stmts
}

fn chain_text(name: &str, hook: Option<&str>, body: &[String]) -> String {
    let mut s = format!("  chain {name} {{\n");
    if let Some(h) = hook {
        s.push_str(&format!("    {h}\n"));
    }
    for b in body {
        s.push_str(&format!("    {b}\n"));
    }
    s.push_str("  }\n");
    s
}

/// The whole `table ip keelson` for these Services and EndpointSlices on `node`, as one
/// `nft -f` transaction that replaces the table (pure).
pub fn ruleset(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], node: &str) -> String {
    let rules = port_rules(services, slices, node);
    let mut chains: Vec<String> = Vec::new();
    let mut sets: Vec<String> = Vec::new();
    let mut dispatch: Vec<String> = Vec::new();
    let mut refuse: Vec<String> = Vec::new();
    for r in &rules {
        let l4 = &r.protocol;
        let all: Vec<&Backend> = r.backends.iter().collect();
        let local: Vec<&Backend> = r.backends.iter().filter(|b| b.local).collect();
        if r.backends.is_empty() {
            if let Some(ip) = &r.cluster_ip {
                refuse.push(format!("ip daddr {ip} {l4} dport {} reject", r.port));
            }
            if let Some(np) = r.node_port {
                refuse.push(format!("fib daddr type local {l4} dport {np} reject"));
            }
            for ip in &r.lb_ips {
                refuse.push(format!("ip daddr {ip} {l4} dport {} reject", r.port));
            }
            continue;
        }
        if let Some(ip) = &r.cluster_ip {
            let chain = format!("svc-{}", r.id);
            let pick = if r.internal_local { &local } else { &all };
            let body = balance(r, &chain, pick, &mut chains, &mut sets);
            chains.push(chain_text(&chain, None, &body));
            dispatch.push(format!("ip daddr {ip} {l4} dport {} goto {chain}", r.port));
        }
        if r.node_port.is_some() || !r.lb_ips.is_empty() {
            let chain = format!("ext-{}", r.id);
            let mut body = Vec::new();
            let pick = if r.external_local {
                &local
            } else {
                // Replies must come back through this node.
                body.push(format!("meta mark set mark or {MASQ_MARK}"));
                &all
            };
            body.extend(balance(r, &chain, pick, &mut chains, &mut sets));
            chains.push(chain_text(&chain, None, &body));
            for ip in &r.lb_ips {
                dispatch.push(format!("ip daddr {ip} {l4} dport {} goto {chain}", r.port));
            }
            if let Some(np) = r.node_port {
                dispatch.push(format!("fib daddr type local {l4} dport {np} goto {chain}"));
            }
        }
    }
    let mut t = format!("add table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    for s in &sets {
        t.push_str(s);
    }
    t.push_str(&chain_text(
        "nat-prerouting",
        Some("type nat hook prerouting priority dstnat; policy accept;"),
        &["jump services".into()],
    ));
    t.push_str(&chain_text(
        "nat-output",
        Some("type nat hook output priority -100; policy accept;"),
        &["jump services".into()],
    ));
    t.push_str(&chain_text(
        "nat-postrouting",
        Some("type nat hook postrouting priority srcnat; policy accept;"),
        &[format!("meta mark & {MASQ_MARK} == {MASQ_MARK} masquerade")],
    ));
    t.push_str(&chain_text("services", None, &dispatch));
    for hook in ["input", "forward", "output"] {
        t.push_str(&chain_text(
            &format!("filter-{hook}"),
            Some(&format!(
                "type filter hook {hook} priority -110; policy accept;"
            )),
            &["ct state new jump no-endpoints".into()],
        ));
    }
    t.push_str(&chain_text("no-endpoints", None, &refuse));
    for c in &chains {
        t.push_str(c);
    }
    t.push_str("}\n");
    t
}

/// Replaces the table with `script` (`nft -f -`).
async fn apply(script: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| "nft did not finish in 30 s".to_string())?
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this host can run the proxy (`nft` answers).
pub async fn available() -> bool {
    tokio::process::Command::new("nft")
        .args(["list", "tables"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Keeps the node's table in step with the Services and EndpointSlices until `stop`: a sync
/// after every burst of changes (100 ms apart), and at least once a minute.
pub async fn run(client: Client, node: String, mut stop: watch::Receiver<bool>) {
    // Pods on one bridge reach each other's Services only if bridged packets pass the IP
    // hooks (the replies' NAT is undone there), as kube-proxy requires too.
    let bridge = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    if bridge.exists() {
        if let Err(e) = std::fs::write(bridge, "1") {
            tracing::warn!(error = %e, "setting net.bridge.bridge-nf-call-iptables=1");
        }
    }
    let changed = Arc::new(Notify::new());
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_api: Api<Service> = Api::all(client.clone());
    let slice_api: Api<EndpointSlice> = Api::all(client);
    let n1 = Arc::clone(&changed);
    let svc_watch = reflector::reflector(svc_writer, watcher::watcher(svc_api, Default::default()))
        .default_backoff()
        .applied_objects()
        .for_each(move |_| {
            n1.notify_one();
            async {}
        });
    let n2 = Arc::clone(&changed);
    let slice_watch = reflector::reflector(
        slice_writer,
        watcher::watcher(slice_api, Default::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(move |_| {
        n2.notify_one();
        async {}
    });
    let watches = tokio::spawn(async move {
        tokio::join!(svc_watch, slice_watch);
    });
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    let mut last = String::new();
    loop {
        let script = ruleset(&services.state(), &slices.state(), &node);
        if script != last {
            match apply(&script).await {
                Ok(()) => {
                    tracing::debug!(bytes = script.len(), "programmed the node's services");
                    last = script;
                }
                Err(e) => tracing::warn!(error = %e, "programming the node's services"),
            }
        }
        tokio::select! {
            _ = changed.notified() => tokio::time::sleep(Duration::from_millis(100)).await,
            _ = tokio::time::sleep(Duration::from_secs(60)) => last.clear(),
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    watches.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).expect("service"))
    }

    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).expect("slice"))
    }

    fn web() -> Vec<Arc<EndpointSlice>> {
        vec![slice(
            json!({"metadata": {"name": "web-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.88.0.5"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.88.0.6"], "conditions": {"ready": true}, "nodeName": "n2"},
                {"addresses": ["10.88.0.7"], "conditions": {"ready": false}, "nodeName": "n1"}]}),
        )]
    }

    #[test]
    fn a_cluster_ip_balances_over_the_ready_endpoints() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.80", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
        let t = ruleset(&[s], &web(), "n1");
        assert!(
            t.starts_with("add table ip keelson\ndelete table ip keelson\ntable ip keelson {\n"),
            "{t}"
        );
        assert!(
            t.contains("ip daddr 10.96.0.80 tcp dport 80 goto svc-default_web_0"),
            "{t}"
        );
        assert!(t.contains("numgen random mod 2 vmap { 0 : goto svc-default_web_0-0, 1 : goto svc-default_web_0-1 }"), "{t}");
        assert!(t.contains("meta l4proto tcp dnat to 10.88.0.5:8080"), "{t}");
        assert!(t.contains("meta l4proto tcp dnat to 10.88.0.6:8080"), "{t}");
        assert!(
            !t.contains("10.88.0.7"),
            "an unready endpoint gets no traffic: {t}"
        );
        assert!(
            t.contains("ip saddr 10.88.0.5 meta mark set mark or 0x4000"),
            "hairpin: {t}"
        );
        assert!(!t.contains("fib daddr type local"), "{t}");
    }

    /// The generated table is valid nftables (`nft -c` checks it without applying it; the
    /// test suite installs nftables).
    #[test]
    fn nft_accepts_the_generated_table() {
        let np = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.80", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
        let empty = svc(
            json!({"metadata": {"name": "lonely", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.81",
                     "ports": [{"port": 81, "nodePort": 30081, "protocol": "UDP"}]}}),
        );
        let t = ruleset(&[np, empty], &web(), "n1");
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft (Debian nftables) must be installed: scripts/test installs it");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(t.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -c refused:\n{}\n{t}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn node_ports_policies_affinity_and_services_without_endpoints() {
        let np = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.80", "externalTrafficPolicy": "Local",
                     "internalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
        let empty = svc(
            json!({"metadata": {"name": "lonely", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.81",
                     "ports": [{"port": 81, "nodePort": 30081, "protocol": "UDP"}]}}),
        );
        let external = svc(json!({"metadata": {"name": "out", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        let t = ruleset(&[np, empty, external], &web(), "n1");
        assert!(
            t.contains("fib daddr type local tcp dport 30080 goto ext-default_web_0"),
            "{t}"
        );
        // Local policies: only n1's endpoint, and no masquerade of external traffic.
        assert!(t.contains("goto svc-default_web_0-0\n"), "{t}");
        assert!(!t.contains("10.88.0.6"), "{t}");
        let ext = t.split("chain ext-default_web_0 {").nth(1).unwrap_or("");
        let ext = ext.split('}').next().unwrap_or("");
        assert!(!ext.contains("meta mark set mark or 0x4000\n    "), "{ext}");
        // Affinity: a timed set per endpoint, checked before the random pick.
        assert!(t.contains("set svc-default_web_0-0-aff { type ipv4_addr; flags dynamic,timeout; timeout 60s; }"), "{t}");
        assert!(
            t.contains("ip saddr @svc-default_web_0-0-aff goto svc-default_web_0-0"),
            "{t}"
        );
        assert!(
            t.contains("update @svc-default_web_0-0-aff { ip saddr }"),
            "{t}"
        );
        // No endpoints: refused, on the ClusterIP and the node port.
        assert!(t.contains("ip daddr 10.96.0.81 udp dport 81 reject"), "{t}");
        assert!(
            t.contains("fib daddr type local udp dport 30081 reject"),
            "{t}"
        );
        assert!(!t.contains("example.com"), "{t}");
        // A LoadBalancer's address is external traffic on the Service's port.
        let lb = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.80",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}));
        let t = ruleset(&[lb], &web(), "n1");
        assert!(
            t.contains("ip daddr 192.0.2.10 tcp dport 80 goto ext-default_web_0"),
            "{t}"
        );
        assert!(
            t.contains("fib daddr type local tcp dport 30080 goto ext-default_web_0"),
            "{t}"
        );
        // Under a Cluster policy a node with no local endpoint still forwards, masqueraded.
        let cluster = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.80",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
        let t = ruleset(&[cluster], &web(), "n3");
        assert!(t.contains("chain ext-default_web_0 {\n    meta mark set mark or 0x4000\n    numgen random mod 2"), "{t}");
    }
}
