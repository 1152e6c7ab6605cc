//! Service ClusterIP and NodePort allocation.
//!
//! Every allocated IP and node port is a key of its own (`/keelson/serviceips/<ip>`,
//! `/keelson/nodeports/<port>`), claimed with "must not exist" in the same store transaction
//! that writes the Service and released in the one that deletes it: no double allocation even
//! with several apiservers, and nothing leaks when a write fails.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};

use crate::error::{ApiError, Cause, Result};
use crate::registry::ResourceDef;
use crate::storage::Extra;
use crate::Api;

pub const IP_PREFIX: &str = "/keelson/serviceips/";
pub const PORT_PREFIX: &str = "/keelson/nodeports/";

/// An IPv4 CIDR block for service addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> std::result::Result<Cidr, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {s:?}: expected <ip>/<prefix>"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: only IPv4 service ranges are supported"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("invalid CIDR {s:?}: prefix length must be 8..=30"))?;
        let mask = u32::MAX << (32 - bits);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            bits,
        })
    }

    pub fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.bits);
        u32::from(ip) & mask == self.base
    }

    /// The first usable address: the `kubernetes` service's ClusterIP.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// Usable offsets: 1 ..= size-2 (no network or broadcast address).
    fn usable(&self, ip: Ipv4Addr) -> bool {
        let off = u32::from(ip).wrapping_sub(self.base);
        self.contains(ip) && off >= 1 && off <= self.size() - 2
    }
}

/// The node port range.
#[derive(Clone, Copy, Debug)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            lo: 30000,
            hi: 32767,
        }
    }
}

/// Whether creating an object of `def` allocates addresses or ports (and so may have to try
/// again when a concurrent create took them).
pub fn allocates(def: &ResourceDef) -> bool {
    is_service(def)
}

fn is_service(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "services"
}

fn svc_type(obj: &Value) -> &str {
    obj.get("spec")
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn cluster_ip(obj: &Value) -> Option<&str> {
    obj.get("spec")
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn node_ports(obj: &Value) -> Vec<u16> {
    obj.get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .collect()
}

fn needs_node_ports(obj: &Value) -> bool {
    match svc_type(obj) {
        "NodePort" => true,
        "LoadBalancer" => {
            obj.get("spec")
                .and_then(|s| s.get("allocateLoadBalancerNodePorts"))
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn invalid(obj: &Value, field: &str, value: &Value, msg: &str) -> ApiError {
    ApiError::invalid(
        "Service",
        "",
        crate::meta::name(obj).unwrap_or(""),
        vec![Cause::invalid(field, value, msg)],
    )
}

async fn used(api: &Api, prefix: &str) -> Result<HashSet<String>> {
    Ok(api
        .storage
        .keys(prefix)
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
        .collect())
}

async fn pick_ip(api: &Api) -> Result<Ipv4Addr> {
    let cidr = api.config.service_cidr;
    let taken = used(api, IP_PREFIX).await?;
    let usable = cidr.size().saturating_sub(2);
    if taken.len() as u32 >= usable {
        return Err(ApiError::internal(
            "range is full: no ClusterIP addresses left to allocate",
        ));
    }
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        // Offset 1 is reserved for the `kubernetes` service.
        let off = rng.gen_range(2..=cidr.size() - 2);
        let ip = Ipv4Addr::from(cidr.base + off);
        if !taken.contains(&ip.to_string()) {
            return Ok(ip);
        }
    }
    (2..=cidr.size() - 2)
        .map(|off| Ipv4Addr::from(cidr.base + off))
        .find(|ip| !taken.contains(&ip.to_string()))
        .ok_or_else(|| ApiError::internal("range is full: no ClusterIP addresses left to allocate"))
}

async fn pick_port(api: &Api, also_taken: &HashSet<u16>) -> Result<u16> {
    let r = api.config.node_ports;
    let taken = used(api, PORT_PREFIX).await?;
    let free = |p: u16| !taken.contains(&p.to_string()) && !also_taken.contains(&p);
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        let p = rng.gen_range(r.lo..=r.hi);
        if free(p) {
            return Ok(p);
        }
    }
    (r.lo..=r.hi)
        .find(|p| free(*p))
        .ok_or_else(|| ApiError::internal("range is full: no node ports left to allocate"))
}

/// Allocates what a new Service needs and returns the claims for its create transaction.
pub async fn on_create(api: &Api, def: &ResourceDef, obj: &mut Value) -> Result<Vec<Extra>> {
    if !is_service(def) {
        return Ok(Vec::new());
    }
    let mut extra = Vec::new();
    let ty = svc_type(obj).to_string();
    if ty != "ExternalName" {
        let ip = match cluster_ip(obj) {
            Some("None") => None,
            Some(s) => {
                let ip: Ipv4Addr = s.parse().map_err(|_| {
                    invalid(
                        obj,
                        "spec.clusterIPs[0]",
                        &json!(s),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )
                })?;
                let cidr = api.config.service_cidr;
                if !cidr.usable(ip) {
                    return Err(invalid(obj, "spec.clusterIPs", &json!([s]), &format!("failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {}/{}", Ipv4Addr::from(cidr.base), cidr.bits)));
                }
                if api
                    .storage
                    .get(&format!("{IP_PREFIX}{ip}"), None, false)
                    .await?
                    .is_some()
                {
                    return Err(invalid(
                        obj,
                        "spec.clusterIPs",
                        &json!([s]),
                        &format!("failed to allocate IP {s}: provided IP is already allocated"),
                    ));
                }
                Some(ip)
            }
            None => Some(pick_ip(api).await?),
        };
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            match ip {
                Some(ip) => {
                    spec.insert("clusterIP".into(), json!(ip.to_string()));
                    spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                    extra.push(Extra::Claim(format!("{IP_PREFIX}{ip}")));
                }
                None => {
                    spec.insert("clusterIP".into(), json!("None"));
                    spec.insert("clusterIPs".into(), json!(["None"]));
                }
            }
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
    }
    if needs_node_ports(obj) {
        extra.extend(assign_node_ports(api, obj, &HashSet::new()).await?);
    }
    Ok(extra)
}

/// Gives every port of a NodePort/LoadBalancer service a node port; claims the new ones.
/// `owned`: ports the service already holds (no claim needed).
async fn assign_node_ports(api: &Api, obj: &mut Value, owned: &HashSet<u16>) -> Result<Vec<Extra>> {
    let range = api.config.node_ports;
    let taken = used(api, PORT_PREFIX).await?;
    let mut claims = Vec::new();
    let mut mine: HashSet<u16> = HashSet::new();
    let name = crate::meta::name(obj).unwrap_or("").to_string();
    let n = obj
        .get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..n {
        let asked = obj["spec"]["ports"][i]
            .get("nodePort")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let port = if asked != 0 {
            let p = u16::try_from(asked).ok().filter(|p| *p >= range.lo && *p <= range.hi).ok_or_else(|| {
                ApiError::invalid("Service", "", &name, vec![Cause::invalid(format!("spec.ports[{i}].nodePort"), &json!(asked), format!("provided port is not in the valid range. The range of valid ports is {}-{}", range.lo, range.hi))])
            })?;
            if !owned.contains(&p) && !mine.contains(&p) && taken.contains(&p.to_string()) {
                return Err(ApiError::invalid(
                    "Service",
                    "",
                    &name,
                    vec![Cause::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        &json!(asked),
                        "provided port is already allocated",
                    )],
                ));
            }
            p
        } else {
            let mut also = mine.clone();
            also.extend(owned.iter().copied());
            pick_port(api, &also).await?
        };
        obj["spec"]["ports"][i]["nodePort"] = json!(port);
        if !owned.contains(&port) && mine.insert(port) {
            claims.push(Extra::Claim(format!("{PORT_PREFIX}{port}")));
        }
    }
    Ok(claims)
}

/// Keeps allocations across an update, allocating and releasing what the change needs.
pub async fn on_update(
    api: &Api,
    def: &ResourceDef,
    new: &mut Value,
    old: &Value,
) -> Result<Vec<Extra>> {
    if !is_service(def) {
        return Ok(Vec::new());
    }
    let mut extra = Vec::new();
    let old_ip = cluster_ip(old).map(str::to_string);
    let new_ty = svc_type(new).to_string();
    if new_ty == "ExternalName" {
        if let Some(ip) = old_ip.filter(|ip| ip != "None") {
            extra.push(Extra::Release(format!("{IP_PREFIX}{ip}")));
        }
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    } else {
        match (old_ip, cluster_ip(new).map(str::to_string)) {
            (Some(o), None) => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("clusterIP".into(), json!(o));
                    spec.insert("clusterIPs".into(), json!([o]));
                }
            }
            (None, _) => {
                // ExternalName → ClusterIP: allocate like a create.
                let mut probe = new.clone();
                if let Some(spec) = probe.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("ports");
                    spec.insert("type".into(), json!("ClusterIP"));
                }
                extra.extend(on_create(api, def, &mut probe).await?);
                if let (Some(spec), Some(p)) = (
                    new.get_mut("spec").and_then(Value::as_object_mut),
                    probe.get("spec"),
                ) {
                    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                        if let Some(v) = p.get(f) {
                            spec.insert(f.to_string(), v.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let old_ports: HashSet<u16> = node_ports(old).into_iter().collect();
    if needs_node_ports(new) {
        // Ports that kept their port/protocol keep their node port when the update omits it.
        let old_list = old
            .get("spec")
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = new.get_mut("spec").and_then(|s| s.get_mut("ports")) {
            for p in ports.iter_mut() {
                if p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue;
                }
                let same = old_list.iter().find(|o| {
                    o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                });
                if let Some(np) = same
                    .and_then(|o| o.get("nodePort"))
                    .filter(|v| v.as_u64().unwrap_or(0) != 0)
                {
                    p["nodePort"] = np.clone();
                }
            }
        }
        extra.extend(assign_node_ports(api, new, &old_ports).await?);
    } else if let Some(Value::Array(ports)) = new.get_mut("spec").and_then(|s| s.get_mut("ports")) {
        for p in ports {
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    let new_ports: HashSet<u16> = node_ports(new).into_iter().collect();
    for p in old_ports.difference(&new_ports) {
        extra.push(Extra::Release(format!("{PORT_PREFIX}{p}")));
    }
    Ok(extra)
}

/// Releases a Service's allocations in its delete transaction.
pub fn on_delete(def: &ResourceDef, obj: &Value) -> Vec<Extra> {
    if !is_service(def) {
        return Vec::new();
    }
    let mut extra = Vec::new();
    if let Some(ip) = cluster_ip(obj).filter(|ip| *ip != "None") {
        extra.push(Extra::Release(format!("{IP_PREFIX}{ip}")));
    }
    let ports: HashSet<u16> = node_ports(obj).into_iter().collect();
    for p in ports {
        extra.push(Extra::Release(format!("{PORT_PREFIX}{p}")));
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.96.0.0/12").expect("cidr");
        assert_eq!(c.size(), 1 << 20);
        assert_eq!(c.first(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 100, 3, 4)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert!(!c.usable(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!c.usable(Ipv4Addr::new(10, 111, 255, 255)));
        assert_eq!(
            Cidr::parse("10.0.0.5/24").map(|c| c.base),
            Ok(u32::from(Ipv4Addr::new(10, 0, 0, 0)))
        );
        assert!(Cidr::parse("fd00::/64").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/31").is_err());
    }
}
