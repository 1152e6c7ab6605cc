//! The etcd Auth API: the same etcdctl 3.4 session (users, roles, key-range permissions,
//! `auth enable`, `--user`) against the real etcd 3.4 and `keelson store` prints the same,
//! command by command. Then, on a three-member keelson cluster: a token from one member works
//! on another, forged tokens are refused, watches need read permission, `keelson kv --user`
//! works, and the auth state survives a restart of every member. (A client certificate's
//! common name as the user: `tests/etcd_tls.rs`.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::server::{run_bounded, Out};
use common::{EtcdLikeConfig, KeelsonCluster};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// etcdctl 3.4 against `endpoint`: exit status, and stdout and stderr without etcdctl's
/// client-side log lines (they carry timestamps).
fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=3s", "--command-timeout=10s"])
        .args(args);
    let out: Out = run_bounded(c, None, Duration::from_secs(30));
    let text: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| !l.starts_with("{\"level\""))
        .collect();
    (out.ok, text.join("\n"))
}

/// The session: `(user, args)`; the user is `name:password` or empty.
const SESSION: &[(&str, &[&str])] = &[
    ("", &["auth", "enable"]),
    ("", &["user", "add", "root:rootpw", "--interactive=false"]),
    ("", &["user", "add", "alice:alicepw", "--interactive=false"]),
    ("", &["user", "add", "alice:again", "--interactive=false"]),
    ("", &["role", "add", "app"]),
    ("", &["role", "add", "app"]),
    (
        "",
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "/app/",
            "--prefix=true",
        ],
    ),
    ("", &["role", "grant-permission", "app", "read", "/cfg"]),
    (
        "",
        &[
            "role",
            "grant-permission",
            "app",
            "write",
            "/logs/a",
            "/logs/m",
        ],
    ),
    ("", &["user", "grant-role", "alice", "app"]),
    ("", &["user", "grant-role", "alice", "nosuchrole"]),
    ("", &["auth", "enable"]),
    ("", &["user", "grant-role", "root", "root"]),
    ("", &["auth", "enable"]),
    ("", &["put", "/app/x", "1"]),
    ("", &["get", "/app/x"]),
    ("alice:alicepw", &["put", "/app/x", "1"]),
    ("alice:alicepw", &["get", "/app/x"]),
    ("alice:alicepw", &["get", "/app/", "--prefix"]),
    ("alice:alicepw", &["get", "/", "--prefix"]),
    ("alice:alicepw", &["put", "/other", "1"]),
    ("alice:alicepw", &["get", "/cfg"]),
    ("alice:alicepw", &["put", "/cfg", "2"]),
    ("alice:alicepw", &["put", "/logs/b", "2"]),
    ("alice:alicepw", &["get", "/logs/b"]),
    ("alice:wrong", &["get", "/app/x"]),
    ("nobody:pw", &["get", "/app/x"]),
    ("alice:alicepw", &["user", "list"]),
    ("alice:alicepw", &["user", "get", "alice"]),
    ("alice:alicepw", &["compaction", "1"]),
    ("root:rootpw", &["user", "list"]),
    ("root:rootpw", &["role", "list"]),
    ("root:rootpw", &["role", "get", "app"]),
    ("root:rootpw", &["role", "get", "root"]),
    ("root:rootpw", &["user", "get", "alice"]),
    ("root:rootpw", &["get", "/", "--prefix", "--keys-only"]),
    ("alice:alicepw", &["del", "/app/x"]),
    ("root:rootpw", &["role", "revoke-permission", "app", "/cfg"]),
    ("root:rootpw", &["role", "revoke-permission", "app", "/cfg"]),
    ("alice:alicepw", &["get", "/cfg"]),
    ("root:rootpw", &["user", "revoke-role", "alice", "app"]),
    ("root:rootpw", &["user", "revoke-role", "alice", "app"]),
    ("alice:alicepw", &["get", "/app/x"]),
    ("root:rootpw", &["user", "delete", "root"]),
    ("root:rootpw", &["user", "revoke-role", "root", "root"]),
    ("root:rootpw", &["role", "delete", "root"]),
    ("root:rootpw", &["auth", "disable"]),
    ("", &["auth", "disable"]),
    ("", &["get", "/", "--prefix", "--keys-only"]),
    ("", &["user", "delete", "alice"]),
    ("", &["user", "delete", "alice"]),
    ("", &["role", "delete", "app"]),
    ("", &["role", "list"]),
    ("", &["user", "list"]),
];

fn run_session(endpoint: &str) -> Vec<String> {
    SESSION
        .iter()
        .map(|(user, args)| {
            let mut full: Vec<String> = Vec::new();
            if !user.is_empty() {
                full.push(format!("--user={user}"));
            }
            full.extend(args.iter().map(|a| a.to_string()));
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            let (ok, text) = etcdctl(endpoint, &refs);
            format!(
                "$ etcdctl {} -> {}\n{text}",
                refs.join(" "),
                if ok { "ok" } else { "fails" }
            )
        })
        .collect()
}

#[test]
fn the_auth_session_prints_what_etcd_prints() {
    let etcd = EtcdLikeConfig::etcd().start();
    let ours = EtcdLikeConfig::keelson(keelson()).start();
    let theirs = run_session(&etcd.client_url());
    let mine = run_session(&ours.client_url());
    let mut diffs = Vec::new();
    for (t, m) in theirs.iter().zip(&mine) {
        if t != m {
            diffs.push(format!("etcd:\n{t}\nkeelson:\n{m}\n"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} commands differ:\n{}",
        diffs.len(),
        SESSION.len(),
        diffs.join("\n")
    );
    // The session did exercise both outcomes.
    assert!(mine.iter().any(|l| l.contains("permission denied")));
    assert!(mine.iter().any(|l| l.contains("Authentication Enabled")));
}

/// `name:password` users with a role on `/app/` on `endpoint`, and auth on.
fn set_up_auth(endpoint: &str) {
    for args in [
        &["user", "add", "root:rootpw", "--interactive=false"][..],
        &["user", "add", "alice:alicepw", "--interactive=false"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "/app/",
            "--prefix=true",
        ],
        &["user", "grant-role", "alice", "app"],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        let (ok, text) = etcdctl(endpoint, args);
        assert!(ok, "etcdctl {args:?}: {text}");
    }
}

fn with_token<T>(token: &str, req: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut()
        .insert("token", token.parse().expect("ascii token"));
    r
}

#[test]
fn tokens_work_on_every_member_and_auth_survives_restarts() {
    let mut cluster = KeelsonCluster::start(keelson(), &["a1", "a2", "a3"], &[]);
    let eps = cluster.endpoints();
    set_up_auth(&eps[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use keelson_proto::etcdserverpb as pb;
        let connect = |url: String| async move {
            tonic::transport::Endpoint::from_shared(url)
                .expect("url")
                .connect()
                .await
                .expect("connect")
        };
        let mut auth = pb::auth_client::AuthClient::new(connect(eps[0].clone()).await);
        let token = auth
            .authenticate(pb::AuthenticateRequest {
                name: "alice".into(),
                password: "alicepw".into(),
            })
            .await
            .expect("authenticate on the first member")
            .into_inner()
            .token;
        // The token, issued by the first member, on the second.
        let mut kv = pb::kv_client::KvClient::new(connect(eps[1].clone()).await);
        kv.put(with_token(
            &token,
            pb::PutRequest {
                key: b"/app/k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            },
        ))
        .await
        .expect("a put with another member's token");
        let denied = kv
            .put(with_token(
                &token,
                pb::PutRequest {
                    key: b"/elsewhere".to_vec(),
                    value: b"v".to_vec(),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("outside the role");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(denied.message(), "etcdserver: permission denied");
        let mut bad = tonic::Request::new(pb::RangeRequest {
            key: b"/app/k".to_vec(),
            ..Default::default()
        });
        bad.metadata_mut()
            .insert("token", "forged.00".parse().expect("ascii"));
        let e = kv.range(bad).await.expect_err("a forged token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert_eq!(e.message(), "etcdserver: invalid auth token");

        // Watches need read permission on their range.
        let mut watch = pb::watch_client::WatchClient::new(connect(eps[2].clone()).await);
        let reqs = |key: &[u8]| {
            tokio_stream::iter(vec![pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: key.to_vec(),
                        ..Default::default()
                    },
                )),
            }])
        };
        for (key, allowed) in [(&b"/elsewhere"[..], false), (&b"/app/k"[..], true)] {
            let mut stream = watch
                .watch(with_token(&token, reqs(key)))
                .await
                .expect("watch stream")
                .into_inner();
            let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("a watch answer in time")
                .expect("stream")
                .expect("a response");
            assert!(first.created);
            assert_eq!(first.canceled, !allowed, "{key:?}: {first:?}");
            if !allowed {
                assert_eq!(first.cancel_reason, "etcdserver: permission denied");
            }
        }
    });

    // keelson kv --user, and --user without a password.
    let kv = common::keelson_kv(
        Path::new(keelson()),
        &eps,
        &[
            "--user",
            "alice:alicepw",
            "get",
            "/app/k",
            "--print-value-only",
        ],
    );
    assert_eq!(kv.stdout.trim(), "v", "{}", kv.stderr);
    let kv = common::keelson_kv(Path::new(keelson()), &eps, &["get", "/app/k"]);
    assert!(
        kv.code != Some(0) && kv.stderr.contains("user name is empty"),
        "{}",
        kv.stderr
    );

    // Users, roles and the enabled flag are replicated state: kept across restarts.
    for i in 0..3 {
        cluster.kill_member(i);
    }
    for i in 0..3 {
        cluster.start_member(i);
    }
    common::wait_until(
        Duration::from_secs(30),
        "alice reads after a restart",
        || {
            let (ok, text) = etcdctl(&eps[1], &["--user=alice:alicepw", "get", "/app/k"]);
            ok && text.contains("/app/k")
        },
    );
    let (ok, text) = etcdctl(&eps[2], &["get", "/app/k"]);
    assert!(!ok && text.contains("user name is empty"), "{text}");
}
