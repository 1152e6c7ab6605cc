//! Cluster DNS (`keelson server --cluster-dns-bind`): Kubernetes' DNS names answered from the
//! API, and other names forwarded upstream, asked over UDP as a pod's resolver would.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use common::server::KeelsonServer;
use common::{free_port, wait_until, ChildGuard};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// A UDP DNS server on loopback that answers every A query with 203.0.113.7 (the test's
/// stand-in for the host's resolver).
const UPSTREAM: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, addr = s.recvfrom(4096)
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([203, 0, 113, 7])
    s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, addr)
"#;

fn ask(port: u16, name: &str, ty: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), ty));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sock.send_to(&m.to_vec().expect("encode"), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("a DNS answer");
    let r = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(r.metadata.id, 4242);
    r
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    a_of(&m.answers)
}

fn a_of(records: &[hickory_proto::rr::Record]) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

#[test]
fn services_pods_and_outside_names_resolve() {
    let dns_port = free_port();
    let upstream_port = free_port();
    let mut stub = Command::new("python3");
    stub.args(["-c", UPSTREAM, &upstream_port.to_string()]);
    let _upstream = ChildGuard::spawn("upstream DNS", &mut stub).expect("python3");
    let s = KeelsonServer::start(
        keelson(),
        &[
            "--cluster-dns-bind",
            &format!("127.0.0.1:{dns_port}"),
            "--cluster-dns-upstream",
            &format!("127.0.0.1:{upstream_port}"),
        ],
    );
    let manifest = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [10.88.0.11], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.88.0.12], conditions: {ready: true}}
- {addresses: [10.88.0.13], conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: db.example.com
"#;
    let f = s.file("dns.yaml", manifest);
    s.kubectl_ok(&["apply", "-f", &f]);
    wait_until(Duration::from_secs(20), "web resolves", || {
        a_records(&ask(
            dns_port,
            "web.default.svc.cluster.local.",
            RecordType::A,
        )) == [Ipv4Addr::new(10, 96, 0, 50)]
    });
    let web = ask(dns_port, "WEB.default.svc.cluster.local.", RecordType::A);
    assert!(web.metadata.authoritative, "{web:?}");
    assert_eq!(web.answers[0].ttl, 5);
    // A headless Service: its ready endpoints; each by its hostname or dashed address.
    wait_until(Duration::from_secs(20), "db's endpoints resolve", || {
        a_records(&ask(
            dns_port,
            "db.default.svc.cluster.local.",
            RecordType::A,
        )) == [Ipv4Addr::new(10, 88, 0, 11), Ipv4Addr::new(10, 88, 0, 12)]
    });
    assert_eq!(
        a_records(&ask(
            dns_port,
            "db-0.db.default.svc.cluster.local.",
            RecordType::A
        )),
        [Ipv4Addr::new(10, 88, 0, 11)]
    );
    assert_eq!(
        a_records(&ask(
            dns_port,
            "10-88-0-12.db.default.svc.cluster.local.",
            RecordType::A
        )),
        [Ipv4Addr::new(10, 88, 0, 12)]
    );
    // SRV of a named port: the Service, or each endpoint of a headless one.
    let srv = ask(
        dns_port,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let targets: Vec<(u16, String)> = srv
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        [(80, "web.default.svc.cluster.local.".to_string())]
    );
    assert_eq!(a_of(&srv.additionals), [Ipv4Addr::new(10, 96, 0, 50)]);
    let srv = ask(
        dns_port,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let mut targets: Vec<String> = srv
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(s.target.to_ascii()),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "10-88-0-12.db.default.svc.cluster.local.",
            "db-0.db.default.svc.cluster.local."
        ]
    );
    // ExternalName: a CNAME.
    let ext = ask(dns_port, "ext.default.svc.cluster.local.", RecordType::A);
    let cname: Vec<String> = ext
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(cname, ["db.example.com."]);
    // Names of the zone that do not exist: NXDOMAIN with the SOA; no record of the type: NODATA.
    let none = ask(dns_port, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(none.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        matches!(
            none.authorities.first().map(|r| &r.data),
            Some(RData::SOA(_))
        ),
        "{none:?}"
    );
    let aaaa = ask(dns_port, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());
    // A pod by its dashed address, when a pod of the namespace has it.
    s.kubectl_ok(&["run", "p", "--image=registry.invalid/x:1"]);
    s.kubectl_ok(&[
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"podIP":"10.88.0.42","podIPs":[{"ip":"10.88.0.42"}]}}"#,
    ]);
    wait_until(Duration::from_secs(20), "the pod's name resolves", || {
        a_records(&ask(
            dns_port,
            "10-88-0-42.default.pod.cluster.local.",
            RecordType::A,
        )) == [Ipv4Addr::new(10, 88, 0, 42)]
    });
    let other = ask(
        dns_port,
        "10-88-0-43.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
    // Outside the cluster domain: forwarded, the upstream's answer relayed.
    let out = ask(dns_port, "example.org.", RecordType::A);
    assert_eq!(out.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&out), [Ipv4Addr::new(203, 0, 113, 7)]);
}

#[test]
fn a_bad_cluster_domain_stops_the_server() {
    let out = KeelsonServer::prepared(
        keelson(),
        &[
            "--cluster-dns-bind",
            &format!("127.0.0.1:{}", free_port()),
            "--cluster-domain",
            "bad..domain",
        ],
    )
    .run_to_exit();
    assert!(!out.ok);
    assert!(out.stderr.contains("--cluster-domain"), "{}", out.stderr);
}
