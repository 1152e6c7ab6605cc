//! The kubelet's metrics under Kubernetes' names: `kubelet_runtime_operations_duration_seconds`
//! and `kubelet_runtime_operations_errors_total` by operation, and
//! `kubelet_pod_start_duration_seconds` (from the worker first seeing a pod to the pod
//! Running), as summaries (sum and count). They are process-wide: an agent process serves them
//! on its kubelet endpoint's `/metrics`, and `keelson server` adds its embedded agent's to the
//! apiserver's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::Result;
use crate::runtime::{
    ContainerConfig, ContainerStats, ExecRequest, ExecResult, ExecStream, ImageError, LogOptions,
    LogStream, PodInfo, Runtime, SandboxConfig, SandboxInfo,
};

#[derive(Clone, Copy, Default)]
struct Summary {
    count: u64,
    sum: Duration,
    errors: u64,
}

#[derive(Default)]
struct Registry {
    operations: BTreeMap<&'static str, Summary>,
    pod_start: Summary,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn record(op: &'static str, took: Duration, failed: bool) {
    let mut r = registry().lock();
    let s = r.operations.entry(op).or_default();
    s.count += 1;
    s.sum += took;
    s.errors += u64::from(failed);
}

/// A pod went from being seen by its worker to Running in `took`.
pub(crate) fn pod_started(took: Duration) {
    let mut r = registry().lock();
    r.pod_start.count += 1;
    r.pod_start.sum += took;
}

/// Appends the kubelet's metrics in the Prometheus text format.
pub fn render(out: &mut String) {
    let r = registry().lock();
    let name = "kubelet_runtime_operations_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How long container runtime operations took."
    );
    let _ = writeln!(out, "# TYPE {name} summary");
    for (op, s) in &r.operations {
        let labels = format!("{{operation_type=\"{op}\"}}");
        let _ = writeln!(out, "{name}_sum{labels} {}", s.sum.as_secs_f64());
        let _ = writeln!(out, "{name}_count{labels} {}", s.count);
    }
    let name = "kubelet_runtime_operations_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} Container runtime operations that failed."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (op, s) in &r.operations {
        let _ = writeln!(out, "{name}{{operation_type=\"{op}\"}} {}", s.errors);
    }
    let name = "kubelet_pod_start_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From the kubelet first seeing a pod to the pod Running."
    );
    let _ = writeln!(out, "# TYPE {name} summary");
    let _ = writeln!(out, "{name}_sum {}", r.pod_start.sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", r.pod_start.count);
}

/// Wraps a runtime so every operation the pod workers ask of it is timed.
pub struct Timed(pub Arc<dyn Runtime>);

async fn timed<T, E>(
    op: &'static str,
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, E> {
    let started = Instant::now();
    let r = f.await;
    record(op, started.elapsed(), r.is_err());
    r
}

impl Runtime for Timed {
    fn version(&self) -> String {
        self.0.version()
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, ImageError>> {
        Box::pin(timed("pull_image", self.0.ensure_image(image, policy)))
    }

    fn run_sandbox<'a>(&'a self, config: &'a SandboxConfig) -> BoxFuture<'a, Result<SandboxInfo>> {
        Box::pin(timed("run_podsandbox", self.0.run_sandbox(config)))
    }

    fn start_container<'a>(
        &'a self,
        sandbox: &'a SandboxConfig,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(
            "start_container",
            self.0.start_container(sandbox, config),
        ))
    }

    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed("stop_container", self.0.stop_container(id, grace)))
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed("remove_container", self.0.remove_container(id)))
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecResult>> {
        Box::pin(timed("exec_sync", self.0.exec(id, command, timeout)))
    }

    fn exec_stream<'a>(
        &'a self,
        id: &'a str,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecStream>> {
        Box::pin(timed("exec", self.0.exec_stream(id, req)))
    }

    fn attach<'a>(
        &'a self,
        id: &'a str,
        tty: bool,
        stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ) -> BoxFuture<'a, Result<ExecStream>> {
        Box::pin(timed("attach", self.0.attach(id, tty, stdin)))
    }

    fn port_forward<'a>(
        &'a self,
        uid: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<tokio::net::TcpStream>> {
        Box::pin(timed("port_forward", self.0.port_forward(uid, port)))
    }

    fn disk_usage(&self) -> BoxFuture<'_, Result<Option<(u64, u64)>>> {
        Box::pin(timed("image_fs_info", self.0.disk_usage()))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<ContainerStats>>> {
        Box::pin(timed("list_container_stats", self.0.stats()))
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<LogStream>> {
        Box::pin(timed("container_logs", self.0.logs(id, options)))
    }

    fn list_pods(&self) -> BoxFuture<'_, Result<Vec<PodInfo>>> {
        Box::pin(timed("list_podsandbox", self.0.list_pods()))
    }

    fn pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<Option<PodInfo>>> {
        Box::pin(timed("podsandbox_status", self.0.pod(uid)))
    }

    fn remove_pod<'a>(&'a self, uid: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed("remove_podsandbox", self.0.remove_pod(uid, grace)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;

    #[tokio::test]
    async fn a_timed_runtime_counts_operations_and_errors() {
        let rt = Timed(Arc::new(FakeRuntime::new(Duration::ZERO, 1)));
        rt.list_pods().await.expect("list");
        rt.list_pods().await.expect("list");
        assert!(rt.attach("no-such-container", false, None).await.is_err());
        pod_started(Duration::from_millis(1500));
        let mut out = String::new();
        render(&mut out);
        let line = |prefix: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{prefix} missing:\n{out}"))
        };
        // Process-wide counters: other tests in this binary may add to them.
        assert!(
            line("kubelet_runtime_operations_duration_seconds_count{operation_type=\"list_podsandbox\"}")
                >= 2.0
        );
        assert!(line("kubelet_runtime_operations_errors_total{operation_type=\"attach\"}") >= 1.0);
        assert!(line("kubelet_pod_start_duration_seconds_count") >= 1.0);
        assert!(line("kubelet_pod_start_duration_seconds_sum") >= 1.5);
    }
}
