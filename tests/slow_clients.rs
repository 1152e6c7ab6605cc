//! A client that opens a connection and trickles its request headers (slowloris) is cut off
//! by the API server instead of holding the connection open.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{run_bounded, KeelsonServer};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// Connects with TLS offering the ALPN protocol `sys.argv[2]` (the scripts below start with
/// this).
const CONNECT: &str = r#"
import socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols([sys.argv[2]])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
"#;

/// Waits for the server to close the connection; prints how long that took, or `open` if it
/// did not within 60 s (the scripts below end with this).
const WAIT_FOR_CLOSE: &str = r#"
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

/// Sends half a request's headers.
const SLOWLORIS: &str = r#"
s.sendall(b"GET /version HTTP/1.1\r\nHost: localhost\r\n")
"#;

/// The same over HTTP/2: the connection preface and SETTINGS, then a HEADERS frame without
/// END_HEADERS, and the CONTINUATION that would finish it never sent.
const SLOWLORIS_H2: &str = r#"
assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
headers = b"\x82\x84\x87"
frame = len(headers).to_bytes(3, "big") + b"\x01\x00" + (1).to_bytes(4, "big") + headers
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + frame)
"#;

/// Runs one of the scripts above over `alpn` against `s` and returns after how many seconds
/// the server closed the connection.
fn seconds_until_closed(s: &KeelsonServer, alpn: &str, script: &str) -> f64 {
    let mut cmd = Command::new("python3");
    let program = format!("{CONNECT}{script}{WAIT_FOR_CLOSE}");
    cmd.args(["-c", &program, &s.port.to_string(), alpn]);
    let out = run_bounded(cmd, None, Duration::from_secs(90));
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"closed"), "{}", out.stdout);
    words.get(1).and_then(|w| w.parse().ok()).expect("seconds")
}

#[test]
fn an_http2_client_that_never_finishes_its_headers_is_disconnected() {
    let s = KeelsonServer::start(keelson(), &[]);
    let secs = seconds_until_closed(&s, "h2", SLOWLORIS_H2);
    // IDLE_TIMEOUT (32 s), and at most 5 s for a graceful close.
    assert!((28.0..45.0).contains(&secs), "closed after {secs} s");
    assert!(s
        .kubectl_ok(&["get", "--raw", "/version"])
        .contains("gitVersion"));
}

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    let s = KeelsonServer::start(keelson(), &[]);
    let secs = seconds_until_closed(&s, "http/1.1", SLOWLORIS);
    // HEADER_READ_TIMEOUT is Kubernetes' 32 s.
    assert!((28.0..45.0).contains(&secs), "closed after {secs} s");
    // A well-behaved client is served as before.
    assert!(s
        .kubectl_ok(&["get", "--raw", "/version"])
        .contains("gitVersion"));
}
