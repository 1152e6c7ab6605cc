//! The Python `kubernetes` client (installed by `scripts/test` into its own virtualenv) runs
//! `tests/python/client_session.py` against `keelson server`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{run_bounded, KeelsonServer};

/// The interpreter that has the `kubernetes` package: `$KEELSON_PYTHON` (set by
/// `scripts/test`), else `python3`.
fn python() -> String {
    std::env::var("KEELSON_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn python_kubernetes_client_session() {
    let py = python();
    let probe = Command::new(&py).args(["-c", "import kubernetes"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python kubernetes client is missing for {py}: run ./scripts/test (it installs it into \
         ~/.cache/keelson/pyvenv) or set KEELSON_PYTHON"
    );
    let s = KeelsonServer::start(env!("CARGO_BIN_EXE_keelson"), &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/client_session.py"
    );
    let mut cmd = Command::new(&py);
    cmd.arg(script).arg(s.kubeconfig()).stdin(Stdio::null());
    let out = run_bounded(cmd, None, Duration::from_secs(120));
    assert!(
        out.ok && out.stdout.contains("all ok"),
        "python client session failed:\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        out.stdout,
        out.stderr,
        s.server_log()
    );
    for step in ["crud", "selectors", "watch", "patch-and-scale", "delete"] {
        assert!(
            out.stdout.contains(&format!("ok {step}\n")),
            "step {step} missing:\n{}",
            out.stdout
        );
    }
}
