//! The store's ports in `keelson server`: the client port and the peer port take TLS with
//! certificates of the store CA (`<data-dir>/pki/etcd/`), and refuse plain connections and
//! connections without such a certificate (the cluster CA's admin certificate included).
//! `keelson certificate rotate` issues new leaf certificates that the running server presents
//! from the next handshake on. Real clients: etcdctl 3.4, curl and openssl.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::{run_bounded, KeelsonServer, Out};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// etcdctl 3.4 against `endpoint` with the TLS flags `tls`.
fn etcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> Out {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=3s", "--command-timeout=5s"])
        .args(tls)
        .args(args);
    run_bounded(c, None, Duration::from_secs(30))
}

fn tls_flags(ca: &Path, cert: Option<(&Path, &Path)>) -> Vec<String> {
    let mut v = vec![format!("--cacert={}", ca.display())];
    if let Some((c, k)) = cert {
        v.push(format!("--cert={}", c.display()));
        v.push(format!("--key={}", k.display()));
    }
    v
}

/// curl's exit status and HTTP code for `url` with extra flags.
fn curl(url: &str, flags: &[String]) -> Out {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .args(flags)
    .arg(url);
    run_bounded(c, None, Duration::from_secs(20))
}

/// The serial of the certificate a TLS port presents now (a new connection).
fn served_serial(port: u16, ca: &Path, cert: (&Path, &Path)) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -CAfile {} -cert {} -key {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        ca.display(),
        cert.0.display(),
        cert.1.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script]);
    let out = run_bounded(c, None, Duration::from_secs(20));
    assert!(
        out.ok && out.stdout.starts_with("serial="),
        "openssl: {} {}",
        out.stdout,
        out.stderr
    );
    out.stdout.trim().to_string()
}

fn file_serial(path: &Path) -> String {
    let mut c = Command::new("openssl");
    c.args(["x509", "-noout", "-serial", "-in"]).arg(path);
    let out = run_bounded(c, None, Duration::from_secs(20));
    assert!(out.ok, "openssl x509: {}", out.stderr);
    out.stdout.trim().to_string()
}

struct StorePki {
    ca: PathBuf,
    client: (PathBuf, PathBuf),
    peer: (PathBuf, PathBuf),
    cluster_ca: PathBuf,
    admin: (PathBuf, PathBuf),
}

fn store_pki(s: &KeelsonServer) -> StorePki {
    let pki = s.data_dir().join("pki");
    let etcd = pki.join("etcd");
    StorePki {
        ca: etcd.join("ca.crt"),
        client: (etcd.join("client.crt"), etcd.join("client.key")),
        peer: (etcd.join("peer.crt"), etcd.join("peer.key")),
        cluster_ca: pki.join("ca.crt"),
        admin: (pki.join("admin.crt"), pki.join("admin.key")),
    }
}

fn pair(p: &(PathBuf, PathBuf)) -> (&Path, &Path) {
    (p.0.as_path(), p.1.as_path())
}

#[test]
fn the_store_ports_refuse_plain_and_certificateless_connections() {
    let s = KeelsonServer::start_secure_store(keelson(), &[]);
    let p = store_pki(&s);
    let https = format!("https://127.0.0.1:{}", s.client_port);

    // The store CA's client certificate: etcdctl works.
    let ok = tls_flags(&p.ca, Some(pair(&p.client)));
    let put = etcdctl(&https, &ok, &["put", "/tls/k", "v1"]);
    assert!(
        put.ok,
        "etcdctl put over mTLS: {} {}",
        put.stdout, put.stderr
    );
    let get = etcdctl(&https, &ok, &["get", "/tls/k", "--print-value-only"]);
    assert_eq!(get.stdout.trim(), "v1", "{}", get.stderr);

    // No client certificate, a certificate of the cluster CA, or plain HTTP: refused.
    let none = etcdctl(&https, &tls_flags(&p.ca, None), &["get", "/tls/k"]);
    assert!(
        !none.ok,
        "no client certificate must be refused: {}",
        none.stdout
    );
    let admin = etcdctl(
        &https,
        &tls_flags(&p.ca, Some(pair(&p.admin))),
        &["get", "/tls/k"],
    );
    assert!(
        !admin.ok,
        "the cluster CA's admin certificate opens nothing on the store: {}",
        admin.stdout
    );
    let plain = etcdctl(
        &format!("http://127.0.0.1:{}", s.client_port),
        &[],
        &["get", "/tls/k"],
    );
    assert!(!plain.ok, "plain HTTP must be refused: {}", plain.stdout);
    // keelson kv, with etcdctl's flags.
    let kv = common::keelson_kv(
        Path::new(keelson()),
        std::slice::from_ref(&https),
        &[
            &format!("--cacert={}", p.ca.display()),
            &format!("--cert={}", p.client.0.display()),
            &format!("--key={}", p.client.1.display()),
            "get",
            "/tls/k",
            "--print-value-only",
        ],
    );
    assert_eq!(
        kv.stdout.trim(),
        "v1",
        "keelson kv over mTLS: {}",
        kv.stderr
    );

    // The peer port: mutual TLS with a store certificate, nothing else.
    let peer = format!("https://127.0.0.1:{}/", s.peer_port);
    let cert_flags = |c: &(PathBuf, PathBuf)| {
        vec![
            "--cacert".to_string(),
            p.ca.display().to_string(),
            "--cert".into(),
            c.0.display().to_string(),
            "--key".into(),
            c.1.display().to_string(),
        ]
    };
    let with_peer_cert = curl(&peer, &cert_flags(&p.peer));
    assert!(
        with_peer_cert.ok && with_peer_cert.stdout.trim() != "000",
        "the peer port answers a member's certificate: {} {}",
        with_peer_cert.stdout,
        with_peer_cert.stderr
    );
    let plain_peer = curl(
        &format!("http://127.0.0.1:{}/", s.peer_port),
        &["--http2-prior-knowledge".to_string()],
    );
    assert!(
        !plain_peer.ok,
        "plain HTTP/2 to the peer port: {plain_peer:?}"
    );
    let no_cert = curl(&peer, &["--cacert".to_string(), p.ca.display().to_string()]);
    assert!(
        !no_cert.ok,
        "the peer port without a certificate: {no_cert:?}"
    );
    let admin_peer = curl(&peer, &cert_flags(&p.admin));
    assert!(
        !admin_peer.ok,
        "the peer port with the cluster CA's admin certificate: {admin_peer:?}"
    );
}

#[test]
fn certificate_rotate_is_served_without_a_restart() {
    let s = KeelsonServer::start_secure_store(keelson(), &[]);
    let p = store_pki(&s);
    let pid = s.pid();
    let https = format!("https://127.0.0.1:{}", s.client_port);
    let store_before = served_serial(s.client_port, &p.ca, pair(&p.client));
    let api_before = served_serial(s.port, &p.cluster_ca, pair(&p.admin));
    assert_eq!(
        store_before,
        file_serial(&s.data_dir().join("pki/etcd/server.crt"))
    );
    // An operator's copy of the old client certificate.
    let old = s.dir.path().join("old-client");
    std::fs::create_dir_all(&old).expect("mkdir");
    let old_pair = (old.join("client.crt"), old.join("client.key"));
    std::fs::copy(&p.client.0, &old_pair.0).expect("copy");
    std::fs::copy(&p.client.1, &old_pair.1).expect("copy");

    let mut c = Command::new(keelson());
    c.args(["certificate", "rotate", "--data-dir"])
        .arg(s.data_dir());
    let rotated = run_bounded(c, None, Duration::from_secs(60));
    assert!(rotated.ok, "keelson certificate rotate: {}", rotated.stderr);
    assert!(
        rotated.stdout.contains("etcd/server.crt") && rotated.stdout.contains("apiserver.crt"),
        "{}",
        rotated.stdout
    );
    let store_file = file_serial(&s.data_dir().join("pki/etcd/server.crt"));
    let api_file = file_serial(&s.data_dir().join("pki/apiserver.crt"));
    assert_ne!(store_file, store_before);

    // New handshakes present the new certificates, from the same process.
    common::wait_until(
        Duration::from_secs(15),
        "the rotated certificates are served",
        || {
            served_serial(s.client_port, &p.ca, pair(&p.client)) == store_file
                && served_serial(s.port, &p.cluster_ca, pair(&p.admin)) == api_file
        },
    );
    assert_ne!(api_file, api_before);
    assert_eq!(s.pid(), pid, "no restart");
    // The new client certificate works, and so does the old one until it expires.
    for cert in [pair(&p.client), pair(&old_pair)] {
        let get = etcdctl(
            &https,
            &tls_flags(&p.ca, Some(cert)),
            &["put", "/tls/rotated", "yes"],
        );
        assert!(get.ok, "etcdctl after rotation: {}", get.stderr);
    }
    assert_ne!(
        file_serial(&p.client.0),
        file_serial(&old_pair.0),
        "the client certificate was rotated too"
    );
    // The rewritten admin kubeconfig carries the new admin certificate.
    s.kubectl_ok(&["get", "namespaces"]);
    let check = {
        let mut c = Command::new(keelson());
        c.args(["certificate", "check", "--data-dir"])
            .arg(s.data_dir());
        run_bounded(c, None, Duration::from_secs(30))
    };
    assert!(
        check.ok && check.stdout.contains("etcd/peer.crt"),
        "{}",
        check.stdout
    );
}

#[test]
fn a_server_refuses_plain_store_ports_it_was_not_told_to_allow() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str]| {
        let mut c = Command::new(keelson());
        c.args(["server", "--name", "x", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--bind-address", "127.0.0.1", "--disable-agent"])
            .args(args);
        run_bounded(c, None, Duration::from_secs(30))
    };
    let port = common::free_port();
    let peer = format!("https://127.0.0.1:{}", common::free_port());
    let plain_client = format!("http://127.0.0.1:{port}");
    let out = run(&[
        "--listen-client-urls",
        &plain_client,
        "--listen-peer-urls",
        &peer,
    ]);
    assert!(
        !out.ok && out.stderr.contains("--etcd-insecure-loopback"),
        "{}",
        out.stderr
    );
    let wide = format!("http://0.0.0.0:{port}");
    let out = run(&[
        "--listen-client-urls",
        &wide,
        "--etcd-insecure-loopback",
        "--listen-peer-urls",
        &peer,
    ]);
    assert!(
        !out.ok && out.stderr.contains("loopback addresses only"),
        "{}",
        out.stderr
    );
    let plain_peer = format!("http://127.0.0.1:{}", common::free_port());
    let out = run(&[
        "--listen-client-urls",
        &plain_client,
        "--etcd-insecure-loopback",
        "--listen-peer-urls",
        &plain_peer,
    ]);
    assert!(
        !out.ok && out.stderr.contains("mutual TLS"),
        "{}",
        out.stderr
    );
    assert!(
        !dir.path().join("data").join("pki").exists(),
        "a refused start writes nothing"
    );
}

#[test]
fn keelson_store_takes_etcds_tls_flags() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("ca");
    let mut c = Command::new(keelson());
    c.args(["certificate", "ca", "--data-dir"]).arg(&data);
    let out = run_bounded(c, None, Duration::from_secs(60));
    assert!(out.ok, "keelson certificate ca: {}", out.stderr);
    let etcd = data.join("pki/etcd");
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let https = format!("https://127.0.0.1:{client_port}");
    let peer = format!("https://127.0.0.1:{peer_port}");
    let path = |f: &str| etcd.join(f).display().to_string();
    let mut cmd = Command::new(keelson());
    cmd.arg("store")
        .args(["--name", "t1", "--data-dir"])
        .arg(dir.path().join("member"))
        .args(["--listen-client-urls", &https, "--listen-peer-urls", &peer])
        .args([
            "--cert-file",
            &path("server.crt"),
            "--key-file",
            &path("server.key"),
        ])
        .args(["--trusted-ca-file", &path("ca.crt"), "--client-cert-auth"])
        .args([
            "--peer-cert-file",
            &path("peer.crt"),
            "--peer-key-file",
            &path("peer.key"),
        ])
        .args([
            "--peer-trusted-ca-file",
            &path("ca.crt"),
            "--peer-client-cert-auth",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _member = common::ChildGuard::spawn("keelson store", &mut cmd).expect("spawn");
    let ca = etcd.join("ca.crt");
    let client = (etcd.join("client.crt"), etcd.join("client.key"));
    let ok = tls_flags(&ca, Some(pair(&client)));
    common::wait_until(
        Duration::from_secs(30),
        "the member serves over TLS",
        || etcdctl(&https, &ok, &["put", "k", "v"]).ok,
    );
    let get = etcdctl(&https, &ok, &["get", "k", "--print-value-only"]);
    assert_eq!(get.stdout.trim(), "v", "{}", get.stderr);
    assert!(!etcdctl(&https, &tls_flags(&ca, None), &["get", "k"]).ok);
    // etcd's answer to an https URL without certificates.
    let mut c = Command::new(keelson());
    c.arg("store")
        .args(["--name", "t2", "--data-dir"])
        .arg(dir.path().join("member2"))
        .args([
            "--listen-client-urls",
            &format!("https://127.0.0.1:{}", common::free_port()),
        ]);
    let out = run_bounded(c, None, Duration::from_secs(30));
    assert!(
        !out.ok
            && out
                .stderr
                .contains("TLS key/cert (--cert-file, --key-file) must be provided"),
        "{}",
        out.stderr
    );
}

#[test]
fn with_etcd_auth_on_a_client_certificate_names_its_user() {
    let s = KeelsonServer::start_secure_store(keelson(), &[]);
    let p = store_pki(&s);
    let https = format!("https://127.0.0.1:{}", s.client_port);
    let root_cert = tls_flags(&p.ca, Some(pair(&p.client)));
    for args in [
        &["user", "add", "root:rootpw", "--interactive=false"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(&https, &root_cert, args);
        assert!(out.ok, "etcdctl {args:?}: {}", out.stderr);
    }
    // `client.crt` says CN=root: no --user needed.
    let put = etcdctl(&https, &root_cert, &["put", "/by-cert", "1"]);
    assert!(put.ok, "as root by certificate: {}", put.stderr);
    // The peer certificate's CN names no user: denied.
    let other = etcdctl(
        &https,
        &tls_flags(&p.ca, Some(pair(&p.peer))),
        &["get", "/by-cert"],
    );
    assert!(
        !other.ok && other.stderr.contains("permission denied"),
        "{}",
        other.stderr
    );
    // The apiserver uses its member in-process: etcd auth does not apply to it.
    s.kubectl_ok(&["create", "configmap", "after-auth", "--from-literal=a=b"]);
    s.kubectl_ok(&["get", "configmap", "after-auth"]);
}
