//! A client that opens a connection and trickles its request headers (slowloris) is cut off
//! by the API server instead of holding the connection open.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{run_bounded, KeelsonServer};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// Connects with TLS, sends half a request's headers, then waits for the server to close the
/// connection; prints how long that took, or `open` if it did not within 60 s.
const SLOWLORIS: &str = r#"
import socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
s.sendall(b"GET /version HTTP/1.1\r\nHost: localhost\r\n")
start = time.monotonic()
s.settimeout(60)
try:
    while s.recv(4096):
        pass
    print("closed", round(time.monotonic() - start, 1))
except socket.timeout:
    print("open")
except (ConnectionResetError, ssl.SSLError):
    print("closed", round(time.monotonic() - start, 1))
"#;

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    let s = KeelsonServer::start(keelson(), &[]);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SLOWLORIS, &s.port.to_string()]);
    let out = run_bounded(cmd, None, Duration::from_secs(90));
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"closed"), "{}", out.stdout);
    let secs: f64 = words.get(1).and_then(|w| w.parse().ok()).expect("seconds");
    // HEADER_READ_TIMEOUT is Kubernetes' 32 s.
    assert!((28.0..45.0).contains(&secs), "closed after {secs} s");
    // A well-behaved client is served as before.
    assert!(s
        .kubectl_ok(&["get", "--raw", "/version"])
        .contains("gitVersion"));
}
