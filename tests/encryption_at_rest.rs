//! Secrets encrypted at rest with `--encryption-provider-config`: unreadable in the raw store
//! (read with `keelson kv get`), readable through the API, and re-encrypted with a new key by
//! the Kubernetes rotation procedure (new key first, restart, `kubectl replace` every secret).

mod common;

use common::server::KeelsonServer;

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

fn config(providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
    )
}

/// The raw value of a store key, as `keelson kv get --print-value-only` prints it.
fn raw(s: &KeelsonServer, key: &str) -> String {
    let out = common::keelson_kv(
        std::path::Path::new(keelson()),
        &[format!("http://127.0.0.1:{}", s.client_port)],
        &["get", key, "--print-value-only"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
}

fn secret_value(s: &KeelsonServer, name: &str) -> String {
    let b64 = s.kubectl_ok(&["get", "secret", name, "-o", "jsonpath={.data.password}"]);
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn secrets_are_encrypted_in_the_store_readable_through_the_api_and_rotated() {
    let cfg_dir = tempfile::tempdir().expect("temp dir");
    let cfg = cfg_dir.path().join("encryption.yaml");
    std::fs::write(&cfg, config("  - identity: {}\n")).expect("config");
    let cfg_s = cfg.display().to_string();
    let mut s = KeelsonServer::start(keelson(), &["--encryption-provider-config", &cfg_s]);

    // Identity first: a secret written now is plain in the store.
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "before",
        "--from-literal=password=plain-one",
    ]);
    assert!(raw(&s, "/registry/secrets/default/before").contains("password"));

    // aesgcm first, identity kept to read what is still plain.
    std::fs::write(
        &cfg,
        config(&format!(
            "  - aesgcm: {{keys: [{{name: key1, secret: {K1}}}]}}\n  - identity: {{}}\n"
        )),
    )
    .expect("config");
    s.restart();
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "after",
        "--from-literal=password=hunter2",
    ]);
    let stored = raw(&s, "/registry/secrets/default/after");
    assert!(stored.starts_with("k8s:enc:aesgcm:v1:key1:"), "{stored:?}");
    // Neither the value (base64 in the object) nor the field names are visible.
    for plain in ["aHVudGVyMg", "hunter2", "password"] {
        assert!(!stored.contains(plain), "{plain} in {stored:?}");
    }
    assert_eq!(secret_value(&s, "after"), "hunter2");
    assert_eq!(secret_value(&s, "before"), "plain-one");
    // Other resources are not encrypted.
    s.kubectl_ok(&["create", "configmap", "cm", "--from-literal=k=v"]);
    assert!(raw(&s, "/registry/configmaps/default/cm").contains("\"k\":\"v\""));
    // Watches and lists (the watch cache) see the plaintext too.
    let names = s.kubectl_ok(&["get", "secrets", "-o", "name"]);
    assert!(
        names.contains("secret/after") && names.contains("secret/before"),
        "{names}"
    );

    // Rotation: a new key first, the old one kept for reading; rewriting every secret
    // re-encrypts even those whose content does not change.
    std::fs::write(
        &cfg,
        config(&format!(
            "  - secretbox: {{keys: [{{name: key2, secret: {K2}}}]}}\n  - aesgcm: {{keys: [{{name: key1, secret: {K1}}}]}}\n  - identity: {{}}\n"
        )),
    )
    .expect("config");
    s.restart();
    assert_eq!(secret_value(&s, "after"), "hunter2");
    let all = s.kubectl_ok(&["get", "secrets", "-o", "json"]);
    let list = s.file("secrets.json", &all);
    s.kubectl_ok(&["replace", "-f", &list]);
    for name in ["before", "after"] {
        let stored = raw(&s, &format!("/registry/secrets/default/{name}"));
        assert!(
            stored.starts_with("k8s:enc:secretbox:v1:key2:"),
            "{name}: {stored:?}"
        );
    }
    assert_eq!(secret_value(&s, "before"), "plain-one");

    // Dropping the old key and identity: everything still reads (all is under key2).
    std::fs::write(
        &cfg,
        config(&format!(
            "  - secretbox: {{keys: [{{name: key2, secret: {K2}}}]}}\n"
        )),
    )
    .expect("config");
    s.restart();
    assert_eq!(secret_value(&s, "after"), "hunter2");
    assert_eq!(secret_value(&s, "before"), "plain-one");

    // A configuration that cannot be used stops the server with a clear message.
    std::fs::write(
        &cfg,
        config("  - aesgcm: {keys: [{name: k, secret: c2hvcnQ=}]}\n"),
    )
    .expect("config");
    let out =
        KeelsonServer::prepared(keelson(), &["--encryption-provider-config", &cfg_s]).run_to_exit();
    assert!(!out.ok);
    assert!(out.stderr.contains("32-byte"), "{}", out.stderr);
}
