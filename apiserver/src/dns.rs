//! Cluster DNS: Kubernetes' DNS-based service discovery, answered from the watch cache (what
//! CoreDNS' `kubernetes` plugin does with its own informers), with the hickory DNS server.
//!
//! Under the cluster domain (`cluster.local`):
//! - `<svc>.<ns>.svc.<zone>`: A, the ClusterIP; for a headless Service (`clusterIP: None`)
//!   one A per ready endpoint of its EndpointSlices (every endpoint with
//!   `publishNotReadyAddresses`); for an ExternalName Service a CNAME to its `externalName`.
//! - `<hostname>.<svc>.<ns>.svc.<zone>`: A of the headless Service's endpoint with that
//!   `hostname` (a StatefulSet pod), or whose address dashed is the label.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV per named port: the Service's name (with
//!   the ClusterIP in the additional section), or one per endpoint of a headless Service.
//! - `<a-b-c-d>.<ns>.pod.<zone>`: A, when a pod of that namespace has that IP (CoreDNS'
//!   `pods verified`).
//!
//! A name of the zone that is none of these is NXDOMAIN, a name that exists without records
//! of the asked type is NODATA, both with the zone's SOA (the cache revision its serial).
//! Other names are forwarded to the upstream resolver as they came, and its answer relayed.
//! TTLs are 5 s, as CoreDNS' default.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use serde_json::Value;

use crate::Api;

/// TTL of every answer (CoreDNS' default).
pub const TTL: u32 = 5;

/// How long a forwarded query may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// What the DNS server serves.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The cluster domain, without a trailing dot (`cluster.local`).
    pub domain: String,
    /// Where names outside the domain go (None: they get SERVFAIL).
    pub upstream: Option<SocketAddr>,
}

/// Whether `domain` can be the cluster domain.
pub fn valid_domain(domain: &str) -> bool {
    !domain.is_empty() && name(domain).is_some()
}

/// The first `nameserver` of a resolv.conf text, port 53.
pub fn upstream_of_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// The answer to one question: records, and whether the name exists at all.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub records: Vec<Record>,
    pub additionals: Vec<Record>,
    /// NXDOMAIN when false.
    pub exists: bool,
}

/// Serves DNS queries from the API's watch cache.
pub struct ClusterDns {
    api: Arc<Api>,
    cfg: DnsConfig,
    zone: Name,
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(s).ok().map(|mut n| {
        n.set_fqdn(true);
        n
    })
}

fn a(owner: &Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(owner.clone(), TTL, RData::A(A(ip)))
}

/// `10.1.2.3` as `10-1-2-3`, and back.
fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

fn undashed(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

/// A ready (or, with `publish_not_ready`, any) endpoint of a headless Service: its address and
/// the label it is known by (its hostname, else its address dashed).
struct Endpoint {
    ip: Ipv4Addr,
    label: String,
}

impl ClusterDns {
    pub fn new(api: Arc<Api>, cfg: DnsConfig) -> Option<ClusterDns> {
        let zone = name(&cfg.domain)?;
        Some(ClusterDns { api, cfg, zone })
    }

    fn object(&self, group: &str, plural: &str, ns: &str, n: &str) -> Option<Arc<Value>> {
        let def = self.api.registry.get(group, "v1", plural)?;
        let (_, e) = self.api.cache.get(&def.key(Some(ns), n));
        Some(e?.obj())
    }

    fn objects(&self, group: &str, plural: &str, ns: &str) -> Vec<Arc<Value>> {
        let Some(def) = self.api.registry.get(group, "v1", plural) else {
            return Vec::new();
        };
        self.api
            .cache
            .snapshot(&def.list_prefix(Some(ns)))
            .items
            .into_iter()
            .map(|(_, e)| e.obj())
            .collect()
    }

    fn endpoints(&self, svc: &Value, ns: &str, svc_name: &str) -> Vec<Endpoint> {
        let publish_all = svc
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            == Some(true);
        let mut out: Vec<Endpoint> = Vec::new();
        for slice in self.objects("discovery.k8s.io", "endpointslices", ns) {
            let owner = slice
                .pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str);
            if owner != Some(svc_name) {
                continue;
            }
            for ep in slice
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // An endpoint is ready unless it says it is not.
                let ready = ep.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false);
                if !ready && !publish_all {
                    continue;
                }
                let hostname = ep.get("hostname").and_then(Value::as_str);
                for addr in ep
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    if out.iter().any(|e| e.ip == ip) {
                        continue;
                    }
                    out.push(Endpoint {
                        ip,
                        label: hostname.map_or_else(|| dashed(addr), str::to_string),
                    });
                }
            }
        }
        out.sort_by_key(|e| e.ip);
        out
    }

    /// The answer to `qname`/`qtype` under the cluster zone, or None if the name is not in it.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        if !self.zone.zone_of(qname) {
            return None;
        }
        let lower = qname.to_lowercase();
        let text = lower.to_ascii();
        let inner = text
            .trim_end_matches('.')
            .strip_suffix(self.cfg.domain.as_str())
            .unwrap_or("")
            .trim_end_matches('.');
        let labels: Vec<&str> = if inner.is_empty() {
            Vec::new()
        } else {
            inner.split('.').collect()
        };
        let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
        let mut ans = Answer {
            exists: true,
            ..Default::default()
        };
        match labels.as_slice() {
            // The zone itself, and the `svc`/`pod` subdomains and namespaces under them.
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => {}
            [ip, ns, "pod"] => {
                let Some(ip) = undashed(ip) else {
                    return Some(Answer::default());
                };
                let want = ip.to_string();
                let found = self.objects("", "pods", ns).iter().any(|p| {
                    p.pointer("/status/podIP").and_then(Value::as_str) == Some(want.as_str())
                });
                if !found {
                    return Some(Answer::default());
                }
                if wants(RecordType::A) {
                    ans.records.push(a(qname, ip));
                }
            }
            [svc_name, ns, "svc"] => {
                let Some(svc) = self.object("", "services", ns, svc_name) else {
                    return Some(Answer::default());
                };
                let ty = svc.pointer("/spec/type").and_then(Value::as_str);
                let cluster_ip = svc.pointer("/spec/clusterIP").and_then(Value::as_str);
                if ty == Some("ExternalName") {
                    let target = svc
                        .pointer("/spec/externalName")
                        .and_then(Value::as_str)
                        .and_then(name);
                    if let Some(target) = target {
                        // A CNAME answers every type, as CoreDNS does.
                        ans.records.push(Record::from_rdata(
                            qname.clone(),
                            TTL,
                            RData::CNAME(CNAME(target)),
                        ));
                    }
                } else if cluster_ip == Some("None") {
                    if wants(RecordType::A) {
                        for e in self.endpoints(&svc, ns, svc_name) {
                            ans.records.push(a(qname, e.ip));
                        }
                    }
                } else if let Some(ip) = cluster_ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                    if wants(RecordType::A) {
                        ans.records.push(a(qname, ip));
                    }
                }
            }
            [label, svc_name, ns, "svc"] if !label.starts_with('_') => {
                let Some(svc) = self.object("", "services", ns, svc_name) else {
                    return Some(Answer::default());
                };
                let Some(e) = self
                    .endpoints(&svc, ns, svc_name)
                    .into_iter()
                    .find(|e| e.label == *label)
                else {
                    return Some(Answer::default());
                };
                if wants(RecordType::A) {
                    ans.records.push(a(qname, e.ip));
                }
            }
            [port, proto, svc_name, ns, "svc"] => {
                let (Some(port), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_'))
                else {
                    return Some(Answer::default());
                };
                let Some(svc) = self.object("", "services", ns, svc_name) else {
                    return Some(Answer::default());
                };
                let number = svc
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|p| {
                        p.get("name").and_then(Value::as_str) == Some(port)
                            && p.get("protocol")
                                .and_then(Value::as_str)
                                .unwrap_or("TCP")
                                .eq_ignore_ascii_case(proto)
                    })
                    .and_then(|p| p.get("port"))
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok());
                let Some(number) = number else {
                    return Some(Answer::default());
                };
                if !wants(RecordType::SRV) {
                    return Some(ans);
                }
                let service = name(&format!("{svc_name}.{ns}.svc.{}", self.cfg.domain));
                let headless =
                    svc.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
                let Some(service) = service else {
                    return Some(ans);
                };
                if headless {
                    let eps = self.endpoints(&svc, ns, svc_name);
                    let weight = u16::try_from(100 / eps.len().max(1)).unwrap_or(1);
                    for e in eps {
                        if let Some(target) = name(&format!("{}.{}", e.label, service.to_ascii())) {
                            ans.records.push(Record::from_rdata(
                                qname.clone(),
                                TTL,
                                RData::SRV(SRV::new(0, weight, number, target.clone())),
                            ));
                            ans.additionals.push(a(&target, e.ip));
                        }
                    }
                } else {
                    ans.records.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::SRV(SRV::new(0, 100, number, service.clone())),
                    ));
                    if let Some(ip) = svc
                        .pointer("/spec/clusterIP")
                        .and_then(Value::as_str)
                        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    {
                        ans.additionals.push(a(&service, ip));
                    }
                }
            }
            _ => return Some(Answer::default()),
        }
        Some(ans)
    }

    fn soa(&self) -> Option<Record> {
        let serial = u32::try_from(self.api.cache.revision().rem_euclid(1 << 32)).unwrap_or(0);
        let mname = name(&format!("ns.dns.{}", self.cfg.domain))?;
        let rname = name(&format!("hostmaster.{}", self.cfg.domain))?;
        Some(Record::from_rdata(
            self.zone.clone(),
            TTL,
            RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL)),
        ))
    }

    /// Sends `raw` (a query as it came) to the upstream resolver; its reply.
    async fn forward(&self, raw: &[u8]) -> Option<Message> {
        let upstream = self.cfg.upstream?;
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let sock = tokio::net::UdpSocket::bind(bind).await.ok()?;
        sock.send_to(raw, upstream).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if from != upstream {
            return None;
        }
        Message::from_vec(&buf[..n]).ok()
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut meta = Metadata::response_from_request(&request.metadata);
        let fail = |code: ResponseCode| {
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = code;
            m
        };
        let Some(q) = request.queries.queries().first() else {
            let r = builder.build_no_records(fail(ResponseCode::FormErr));
            return send(&mut response, r, &request.metadata).await;
        };
        let qname = Name::from(q.name().clone());
        match self.answer(&qname, q.query_type()) {
            Some(ans) => {
                meta.authoritative = true;
                meta.recursion_available = true;
                let soa: Vec<Record> = if ans.records.is_empty() {
                    self.soa().into_iter().collect()
                } else {
                    Vec::new()
                };
                if !ans.exists {
                    meta.response_code = ResponseCode::NXDomain;
                }
                let r = builder.build(
                    meta,
                    ans.records.iter(),
                    std::iter::empty(),
                    soa.iter(),
                    ans.additionals.iter(),
                );
                send(&mut response, r, &request.metadata).await
            }
            None => match self.forward(request.as_slice()).await {
                Some(reply) => {
                    meta.response_code = reply.metadata.response_code;
                    meta.recursion_available = reply.metadata.recursion_available;
                    meta.authoritative = reply.metadata.authoritative;
                    let r = builder.build(
                        meta,
                        reply.answers.iter(),
                        reply.authorities.iter(),
                        std::iter::empty(),
                        reply.additionals.iter(),
                    );
                    send(&mut response, r, &request.metadata).await
                }
                None => {
                    let r = builder.build_no_records(fail(ResponseCode::ServFail));
                    send(&mut response, r, &request.metadata).await
                }
            },
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    r: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Metadata,
) -> ResponseInfo {
    match response.send_response(r).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "sending a DNS response");
            let mut m = Metadata::response_from_request(request);
            m.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: m,
                counts: Default::default(),
            })
        }
    }
}

/// The UDP and TCP sockets of the DNS server.
pub struct Sockets {
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
}

/// Binds `addr` for UDP and TCP.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Sockets> {
    Ok(Sockets {
        udp: tokio::net::UdpSocket::bind(addr).await?,
        tcp: tokio::net::TcpListener::bind(addr).await?,
    })
}

/// Serves cluster DNS on `sockets` until the process ends.
pub async fn serve(api: Arc<Api>, cfg: DnsConfig, sockets: Sockets) -> std::io::Result<()> {
    let handler = ClusterDns::new(api, cfg.clone()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--cluster-domain {:?} is not a DNS name", cfg.domain),
        )
    })?;
    let Sockets { udp, tcp } = sockets;
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64);
    server
        .block_until_done()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_is_the_first_nameserver() {
        let conf = "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n";
        assert_eq!(
            upstream_of_resolv_conf(conf),
            Some("192.0.2.53:53".parse().expect("addr"))
        );
        assert_eq!(upstream_of_resolv_conf("search x\n"), None);
    }

    #[test]
    fn dashed_addresses_round_trip() {
        assert_eq!(dashed("10.88.0.7"), "10-88-0-7");
        assert_eq!(undashed("10-88-0-7"), Some(Ipv4Addr::new(10, 88, 0, 7)));
        assert_eq!(undashed("web"), None);
    }
}
