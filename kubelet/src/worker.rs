//! One worker per pod drives what the runtime has toward the pod's spec: sandbox, init
//! containers in order, app containers, restarts with back-off, probes, hooks, volumes kept
//! in sync, termination, and the status it reports.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::backoff::{self, go_duration, Backoff};
use crate::probe::{self, Outcome, Target, Tracker};
use crate::runtime::{ContainerInfo, ContainerState, ImageError, PodInfo, Runtime, SandboxConfig};
use crate::spec::{self, Prepared, Sources};
use crate::status::{self, ContainerView, PodView};

/// What every pod worker of one node shares.
pub struct NodeContext {
    pub client: Client,
    pub runtime: Arc<dyn Runtime>,
    pub node: String,
    pub host_ip: String,
    /// Where pods' volumes live; `None` for the fake runtime (no files).
    pub root_dir: Option<PathBuf>,
    /// The node's allocatable resources (defaults of resourceFieldRef).
    pub allocatable: BTreeMap<String, String>,
    /// Status writes in flight at once.
    pub slots: Arc<Semaphore>,
    /// The latest relist of the runtime's pods (the kubelet's PLEG).
    pub relist: watch::Receiver<Arc<Relist>>,
    /// Projected ServiceAccount tokens, shared by the node's pods.
    pub tokens: spec::TokenCache,
    /// The node's cluster DNS settings.
    pub dns: crate::dns::ClusterDns,
    /// The host's resolv.conf.
    pub host_resolv: crate::dns::Resolv,
}

/// The sandbox of `pod` on this node, its resolver included.
fn sandbox_of(ctx: &NodeContext, pod: &Pod) -> crate::runtime::SandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let dns = crate::dns::pod_resolv(&spec, ns, &ctx.dns, &ctx.host_resolv).unwrap_or_else(|e| {
        tracing::warn!(pod = ?pod.metadata.name, error = %e, "the pod's DNS settings; it keeps the runtime's");
        None
    });
    spec::sandbox_config(pod, dns)
}

/// One relist of the runtime: what it had, and when the listing began.
#[derive(Debug)]
pub struct Relist {
    pub started: Instant,
    pub pods: HashMap<String, PodInfo>,
}

/// What a worker is told about its pod.
#[derive(Clone, Debug)]
pub enum Update {
    Pod(Arc<Pod>),
    /// The pod is gone from the API.
    Gone,
}

/// How often ConfigMap/Secret/downwardAPI volumes are refreshed.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
/// How often a pod with probes or a pending back-off is looked at.
const TICK: Duration = Duration::from_secs(1);
/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: i64 = 30;

/// What the worker knows about one container beyond what the runtime reports.
struct Track {
    restarts: Backoff,
    /// Why it is not running (reason, message).
    waiting: Option<(String, String)>,
    /// The instance the probe state belongs to.
    instance: Option<String>,
    startup: Tracker,
    liveness: Tracker,
    readiness: Tracker,
    started: bool,
    ready: bool,
}

impl Default for Track {
    fn default() -> Track {
        Track {
            restarts: Backoff::default(),
            waiting: None,
            instance: None,
            startup: Tracker::new(false),
            liveness: Tracker::new(true),
            readiness: Tracker::new(false),
            started: false,
            ready: false,
        }
    }
}

/// An image that failed to pull, and since when it is backed off.
#[derive(Default)]
struct Pull {
    backoff: Backoff,
    failed_at: Option<Timestamp>,
    message: String,
}

struct Worker {
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    uid: String,
    name: String,
    api: Api<Pod>,
    sandbox: SandboxConfig,
    tracks: HashMap<(bool, String), Track>,
    pulls: HashMap<String, Pull>,
    last_status: Option<Value>,
    start_time: Option<Timestamp>,
    volumes: Option<HashMap<String, Prepared>>,
    volumes_at: Option<Instant>,
    volume_error: Option<String>,
    info: PodInfo,
    /// When the runtime state in `info` was read (the start of that read).
    read_at: Instant,
    /// When this worker first saw the pod, until its start is recorded
    /// (`kubelet_pod_start_duration_seconds`); None for pods that were already running.
    seen: Option<Instant>,
}

fn policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn grace_of(pod: &Pod) -> Duration {
    let s = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE);
    Duration::from_secs(s.max(0).unsigned_abs())
}

/// Runs the worker of one pod until the pod is gone (deleted from the API, or terminated and
/// finally deleted by this worker) or `stop`.
pub async fn run(
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    mut updates: watch::Receiver<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let mut relist = ctx.relist.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut w = Worker {
        api: Api::namespaced(ctx.client.clone(), &ns),
        sandbox: sandbox_of(&ctx, &pod),
        name: pod.metadata.name.clone().unwrap_or_default(),
        info: relist.borrow().pods.get(&uid).cloned().unwrap_or_default(),
        read_at: relist.borrow().started,
        start_time: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .and_then(|t| t.0.to_string().parse().ok()),
        ctx,
        pod,
        uid,
        tracks: HashMap::new(),
        pulls: HashMap::new(),
        last_status: None,
        volumes: None,
        volumes_at: None,
        volume_error: None,
        seen: None,
    };
    // A pod that is already Running (adopted after a restart) was not started by us.
    let running = w.pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    if !running {
        w.seen = Some(Instant::now());
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    loop {
        if w.pod.metadata.deletion_timestamp.is_some() {
            w.terminate().await;
            return;
        }
        if dirty {
            // Act, then look again at once while acting changed something (bounded).
            for _ in 0..4 {
                match w.sync().await {
                    Ok(true) => w.refresh().await,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(pod = %w.name, error = %e, "pod sync");
                        break;
                    }
                }
            }
            w.report().await;
        }
        dirty = true;
        let needs_tick = w.needs_tick();
        tokio::select! {
            r = updates.changed() => {
                if r.is_err() {
                    return;
                }
                let u = updates.borrow_and_update().clone();
                match u {
                    Update::Pod(p) => {
                        // Our own status coming back (or any change outside what the
                        // worker acts on) needs no sync.
                        dirty = p.spec != w.pod.spec
                            || p.metadata.deletion_timestamp != w.pod.metadata.deletion_timestamp
                            || p.metadata.labels != w.pod.metadata.labels
                            || p.metadata.annotations != w.pod.metadata.annotations;
                        w.pod = p;
                    }
                    Update::Gone => {
                        w.remove(Duration::ZERO).await;
                        return;
                    }
                }
            }
            r = relist.changed() => {
                if r.is_err() {
                    return;
                }
                let (started, info) = {
                    let r = relist.borrow_and_update();
                    (r.started, r.pods.get(&w.uid).cloned().unwrap_or_default())
                };
                // A listing that began before the worker last read the runtime itself may
                // predate what the worker did since (a container it just started): acting
                // on it would start that container again.
                if started < w.read_at {
                    dirty = false;
                    continue;
                }
                w.read_at = started;
                // Time-driven work (probes, back-offs) waits for the tick.
                dirty = info != w.info;
                w.info = info;
            }
            _ = tick.tick(), if needs_tick => {}
            _ = crate::stopped(&mut stop) => return,
        }
    }
}

impl Worker {
    fn runtime(&self) -> &dyn Runtime {
        &*self.ctx.runtime
    }

    /// Re-reads the pod from the runtime (after acting on it).
    async fn refresh(&mut self) {
        let started = Instant::now();
        match self.ctx.runtime.pod(&self.uid).await {
            Ok(info) => {
                self.info = info.unwrap_or_default();
                self.read_at = started;
            }
            Err(e) => tracing::warn!(pod = %self.name, error = %e, "reading the pod's containers"),
        }
    }

    fn pod_ip(&self) -> String {
        if self.sandbox.host_network {
            return self.ctx.host_ip.clone();
        }
        self.info
            .sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .unwrap_or_default()
    }

    /// Probes to run, a back-off to wait out, or volumes to keep fresh.
    fn needs_tick(&self) -> bool {
        if matches!(phase(&self.pod), "Succeeded" | "Failed") {
            return false;
        }
        let spec = self.pod.spec.as_ref();
        let probes = spec.is_some_and(|s| {
            s.containers.iter().any(|c| {
                c.liveness_probe.is_some()
                    || c.readiness_probe.is_some()
                    || c.startup_probe.is_some()
            })
        });
        let volumes = self.ctx.root_dir.is_some()
            && spec.is_some_and(|s| {
                s.volumes
                    .iter()
                    .flatten()
                    .any(|v| v.config_map.is_some() || v.secret.is_some() || v.projected.is_some())
            });
        probes
            || volumes
            || self.tracks.values().any(|t| t.waiting.is_some())
            || !self.pulls.is_empty()
    }

    /// Prepares the volumes (or refreshes them when due). Errors stay in `volume_error`.
    async fn prepare_volumes(&mut self) {
        let Some(root) = self.ctx.root_dir.clone() else {
            // The fake runtime has no files: each volume is a placeholder its mounts accept
            // (every pod has at least its ServiceAccount volume).
            if self.volumes.is_none() {
                let names = self
                    .pod
                    .spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten());
                self.volumes = Some(names.map(|v| (v.name.clone(), Prepared::Tmpfs)).collect());
            }
            return;
        };
        if self.volumes.is_some()
            && self
                .volumes_at
                .is_some_and(|t| t.elapsed() < VOLUME_REFRESH)
        {
            return;
        }
        let pod = Arc::clone(&self.pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let client = self.ctx.client.clone();
        let mut sources = Sources::new(&client, &ns).with_tokens(self.ctx.tokens.clone());
        let pod_ip = self.pod_ip();
        let mut prepared = HashMap::new();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            match spec::prepare_volume(
                &mut sources,
                &pod,
                &root,
                v,
                &pod_ip,
                &self.ctx.host_ip,
                &self.ctx.allocatable,
            )
            .await
            {
                Ok(p) => {
                    prepared.insert(v.name.clone(), p);
                }
                Err(e) => {
                    if self.volume_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(pod = %self.name, error = %e, "volume");
                    }
                    self.volume_error = Some(e);
                    self.volumes_at = Some(Instant::now());
                    return;
                }
            }
        }
        self.volume_error = None;
        self.volumes = Some(prepared);
        self.volumes_at = Some(Instant::now());
    }

    /// One pass over the pod; true when it changed something in the runtime.
    async fn sync(&mut self) -> crate::Result<bool> {
        if matches!(phase(&self.pod), "Succeeded" | "Failed") {
            // Ended for good: nothing runs any more.
            let mut acted = false;
            for c in self.info.containers.clone() {
                if c.state.is_running() {
                    self.runtime()
                        .stop_container(&c.id, grace_of(&self.pod))
                        .await?;
                    acted = true;
                }
            }
            return Ok(acted);
        }
        self.prepare_volumes().await;
        if self.volume_error.is_some() {
            return Ok(false);
        }
        if self.info.sandbox.is_none() {
            self.sandbox = sandbox_of(&self.ctx, &self.pod);
            self.runtime().run_sandbox(&self.sandbox).await?;
            self.start_time.get_or_insert_with(Timestamp::now);
            return Ok(true);
        }
        self.start_time.get_or_insert_with(Timestamp::now);
        let pod = Arc::clone(&self.pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = policy(&pod).to_string();
        let mut acted = false;
        // Init containers, one at a time, in order.
        for c in spec.init_containers.iter().flatten() {
            let latest = self.info.latest(&c.name, true).cloned();
            match latest.as_ref().map(|l| &l.state) {
                Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
                None => acted |= self.start(c, true, 0).await,
                Some(ContainerState::Created) | Some(ContainerState::Running { .. }) => {}
                Some(ContainerState::Exited { .. }) => {
                    if policy != "Never" {
                        if let Some(l) = &latest {
                            acted |= self.restart(c, true, l).await;
                        }
                    }
                }
            }
            return Ok(acted);
        }
        for c in &spec.containers {
            let latest = self.info.latest(&c.name, false).cloned();
            match latest {
                None => acted |= self.start(c, false, 0).await,
                Some(l) => match &l.state {
                    ContainerState::Created => {
                        // A start that did not finish: begin this attempt again.
                        self.runtime().remove_container(&l.id).await?;
                        acted |= self.start(c, false, l.attempt).await;
                    }
                    ContainerState::Running { .. } => acted |= self.probe(c, &l).await,
                    ContainerState::Exited { exit_code, .. } => {
                        if should_restart(&policy, *exit_code) {
                            acted |= self.restart(c, false, &l).await;
                        } else if let Some(t) = self.tracks.get_mut(&(false, c.name.clone())) {
                            t.waiting = None;
                            t.ready = false;
                        }
                    }
                },
            }
        }
        Ok(acted)
    }

    /// Starts a restart of a container that ended, unless it is backing off.
    async fn restart(&mut self, c: &Container, init: bool, ended: &ContainerInfo) -> bool {
        let ContainerState::Exited {
            started_at,
            finished_at,
            ..
        } = ended.state
        else {
            return false;
        };
        let now = Timestamp::now();
        let pod_ref = format!("{}_{}({})", self.name, self.sandbox.namespace, self.uid);
        let t = self.tracks.entry((init, c.name.clone())).or_default();
        t.ready = false;
        t.started = false;
        let ran =
            Duration::try_from(finished_at.duration_since(started_at)).unwrap_or(Duration::ZERO);
        if ran >= backoff::RESET_AFTER {
            t.restarts.reset();
        }
        if t.restarts.remaining(finished_at, now).is_some() {
            t.waiting = Some((
                "CrashLoopBackOff".into(),
                format!(
                    "back-off {} restarting failed container={} pod={pod_ref}",
                    go_duration(t.restarts.delay()),
                    c.name
                ),
            ));
            return false;
        }
        t.restarts.next();
        let started = self.start(c, init, ended.attempt + 1).await;
        if started {
            // Keep the instance that ended (lastState, `logs -p`); older ones go.
            for old in self.info.containers.clone() {
                if old.name == c.name && old.init == init && old.attempt < ended.attempt {
                    if let Err(e) = self.runtime().remove_container(&old.id).await {
                        tracing::debug!(pod = %self.name, error = %e, "removing an old instance");
                    }
                }
            }
        }
        started
    }

    /// Pulls the image (by policy and back-off), resolves the environment, creates and
    /// starts one container, and runs its postStart hook. True if it was started.
    async fn start(&mut self, c: &Container, init: bool, attempt: u32) -> bool {
        let key = (init, c.name.clone());
        let image = c.image.clone().unwrap_or_default();
        let now = Timestamp::now();
        // Image pull, with back-off after a failure.
        let pull = self.pulls.entry(image.clone()).or_default();
        if let Some(at) = pull.failed_at {
            if pull.backoff.remaining(at, now).is_some() {
                let msg = format!("Back-off pulling image {image:?}: {}", pull.message);
                self.tracks.entry(key).or_default().waiting =
                    Some(("ImagePullBackOff".into(), msg));
                return false;
            }
        }
        match self
            .ctx
            .runtime
            .ensure_image(&image, &spec::pull_policy(c))
            .await
        {
            Ok(_) => {
                self.pulls.remove(&image);
            }
            Err(e) => {
                let (reason, msg) = match e {
                    ImageError::Pull(m) => ("ErrImagePull", m),
                    ImageError::NeverPull(m) => ("ErrImageNeverPull", m),
                };
                tracing::info!(pod = %self.name, image = %image, reason, error = %msg, "image");
                let pull = self.pulls.entry(image.clone()).or_default();
                pull.backoff.next();
                pull.failed_at = Some(Timestamp::now());
                pull.message = msg.clone();
                self.tracks.entry(key).or_default().waiting = Some((reason.into(), msg));
                return false;
            }
        }
        let pod = Arc::clone(&self.pod);
        let ns = self.sandbox.namespace.clone();
        let client = self.ctx.client.clone();
        let mut sources = Sources::new(&client, &ns);
        let pod_ip = self.pod_ip();
        let config = match spec::environment(
            &mut sources,
            &pod,
            c,
            &pod_ip,
            &self.ctx.host_ip,
            &self.ctx.allocatable,
        )
        .await
        {
            Ok(env) => spec::container_config(
                &pod,
                c,
                init,
                attempt,
                env,
                self.volumes.as_ref().unwrap_or(&HashMap::new()),
            ),
            Err(e) => Err(e),
        };
        let config = match config {
            Ok(cfg) => cfg,
            Err(msg) => {
                self.tracks.entry(key).or_default().waiting =
                    Some(("CreateContainerConfigError".into(), msg));
                return false;
            }
        };
        if let Err(e) = self
            .ctx
            .runtime
            .start_container(&self.sandbox, &config)
            .await
        {
            tracing::warn!(pod = %self.name, container = %c.name, error = %e, "starting");
            let t = self.tracks.entry(key).or_default();
            t.waiting = Some(("RunContainerError".into(), e.to_string()));
            return true;
        }
        let t = self.tracks.entry(key.clone()).or_default();
        t.waiting = None;
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            self.refresh().await;
            if let Some(l) = self.info.latest(&c.name, init).cloned() {
                let target = Target {
                    runtime: &*self.ctx.runtime,
                    container_id: &l.id,
                    container: c,
                    pod_ip: &pod_ip,
                };
                if let Outcome::Failure(why) =
                    probe::hook(&target, hook, Duration::from_secs(30)).await
                {
                    tracing::warn!(pod = %self.name, container = %c.name, error = %why, "postStart hook failed; killing the container");
                    let _ = self.ctx.runtime.stop_container(&l.id, grace_of(&pod)).await;
                }
            }
        }
        true
    }

    /// Runs the probes of a running container that are due. True if it killed it.
    async fn probe(&mut self, c: &Container, l: &ContainerInfo) -> bool {
        let ContainerState::Running { started_at } = l.state else {
            return false;
        };
        let pod_ip = self.pod_ip();
        let runtime = Arc::clone(&self.ctx.runtime);
        let t = self.tracks.entry((false, c.name.clone())).or_default();
        t.waiting = None;
        if t.instance.as_deref() != Some(l.id.as_str()) {
            // A new instance (or one adopted after a kubelet restart): probes start afresh.
            *t = Track {
                restarts: std::mem::take(&mut t.restarts),
                instance: Some(l.id.clone()),
                ..Track::default()
            };
        }
        let target = Target {
            runtime: &*runtime,
            container_id: &l.id,
            container: c,
            pod_ip: &pod_ip,
        };
        let now = Timestamp::now();
        if !t.started {
            match &c.startup_probe {
                None => t.started = true,
                Some(p) if t.startup.due(p, started_at, now) => {
                    let o = probe::run(&target, p).await;
                    t.startup.record(p, &o, Timestamp::now());
                    if t.startup.ok {
                        t.started = true;
                    } else if t.startup.failures() >= p.failure_threshold.unwrap_or(3).max(1) {
                        let why = t.startup.last_failure.clone().unwrap_or_default();
                        tracing::info!(pod = %self.name, container = %c.name, error = %why, "startup probe failed; restarting");
                        let grace = probe_grace(p, &self.pod);
                        let _ = runtime.stop_container(&l.id, grace).await;
                        return true;
                    }
                }
                Some(_) => {}
            }
        }
        if t.started {
            if let Some(p) = &c.liveness_probe {
                if t.liveness.due(p, started_at, now) {
                    let o = probe::run(&target, p).await;
                    t.liveness.record(p, &o, Timestamp::now());
                    if !t.liveness.ok {
                        let why = t.liveness.last_failure.clone().unwrap_or_default();
                        tracing::info!(pod = %self.name, container = %c.name, error = %why, "liveness probe failed; restarting");
                        let grace = probe_grace(p, &self.pod);
                        t.ready = false;
                        let _ = runtime.stop_container(&l.id, grace).await;
                        return true;
                    }
                }
            }
            match &c.readiness_probe {
                None => t.ready = true,
                Some(p) => {
                    if t.readiness.due(p, started_at, now) {
                        let o = probe::run(&target, p).await;
                        if t.readiness.record(p, &o, Timestamp::now()) {
                            tracing::info!(pod = %self.name, container = %c.name, ready = t.readiness.ok, "readiness changed");
                        }
                    }
                    t.ready = t.readiness.ok;
                }
            }
        }
        false
    }

    /// Computes the status and writes it when it changed.
    async fn report(&mut self) {
        let pod = Arc::clone(&self.pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let runtime_name = self.ctx.runtime.name();
        let volume_waiting = self
            .volume_error
            .as_ref()
            .map(|e| ("CreateContainerConfigError", e.as_str()));
        let policy = policy(&pod);
        let mut initialized = true;
        let mut init_failed = false;
        let mut init_views = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            let latest = self.info.latest(&c.name, true);
            let done = matches!(
                latest.map(|l| &l.state),
                Some(ContainerState::Exited { exit_code: 0, .. })
            );
            if let Some(ContainerState::Exited { exit_code, .. }) = latest.map(|l| &l.state) {
                if *exit_code != 0 && policy == "Never" {
                    init_failed = true;
                }
            }
            if !done {
                initialized = false;
            }
            let t = self.tracks.get(&(true, c.name.clone()));
            init_views.push(ContainerView {
                name: &c.name,
                image: c.image.as_deref().unwrap_or_default(),
                runtime: runtime_name,
                latest,
                previous: self.info.previous(&c.name, true),
                waiting: volume_waiting
                    .or(t.and_then(|t| t.waiting.as_ref().map(|(r, m)| (r.as_str(), m.as_str())))),
                ready: done,
                started: latest.is_some_and(|l| l.state.is_running()),
            });
        }
        let mut app_views = Vec::new();
        for c in &spec.containers {
            let latest = self.info.latest(&c.name, false);
            let t = self.tracks.get(&(false, c.name.clone()));
            let running = latest.is_some_and(|l| l.state.is_running());
            let waiting = if !initialized && latest.is_none() {
                Some(("PodInitializing", ""))
            } else {
                volume_waiting
                    .or(t.and_then(|t| t.waiting.as_ref().map(|(r, m)| (r.as_str(), m.as_str()))))
            };
            app_views.push(ContainerView {
                name: &c.name,
                image: c.image.as_deref().unwrap_or_default(),
                runtime: runtime_name,
                latest,
                previous: self.info.previous(&c.name, false),
                waiting,
                ready: running && t.is_some_and(|t| t.ready),
                started: running && t.is_some_and(|t| t.started),
            });
        }
        let pod_ip = self.pod_ip();
        let view = PodView {
            host_ip: &self.ctx.host_ip,
            pod_ip: self.info.sandbox.as_ref().map(|_| pod_ip.as_str()),
            start_time: self.start_time,
            init: init_views,
            app: app_views,
            initialized,
            init_failed,
        };
        let previous = self.last_status.clone().or_else(|| {
            pod.status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
        });
        let status = status::pod_status(&pod, &view, previous.as_ref(), Timestamp::now());
        if status["phase"] == "Running" {
            if let Some(seen) = self.seen.take() {
                crate::metrics::pod_started(seen.elapsed());
            }
        }
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let Ok(_slot) = self.ctx.slots.acquire().await else {
            return;
        };
        let patch = json!({"status": status});
        match self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(pod = %self.name, error = %e, "status"),
        }
    }

    /// The pod is being deleted: preStop hooks, stop signal, grace, SIGKILL; then the pod
    /// leaves the runtime and, with a final delete, the API.
    async fn terminate(&mut self) {
        let pod = Arc::clone(&self.pod);
        let grace = grace_of(&pod);
        let deadline = Instant::now() + grace;
        let pod_ip = self.pod_ip();
        self.refresh().await;
        let running: Vec<ContainerInfo> = self
            .info
            .containers
            .iter()
            .filter(|c| c.state.is_running())
            .cloned()
            .collect();
        let spec = pod.spec.clone().unwrap_or_default();
        let runtime = Arc::clone(&self.ctx.runtime);
        let stops = running.iter().map(|inst| {
            let c = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == inst.name)
                .cloned();
            let runtime = Arc::clone(&runtime);
            let pod_ip = pod_ip.clone();
            let name = self.name.clone();
            async move {
                if let Some(c) = &c {
                    if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                        let target = Target { runtime: &*runtime, container_id: &inst.id, container: c, pod_ip: &pod_ip };
                        let left = deadline.saturating_duration_since(Instant::now());
                        if let Outcome::Failure(why) = probe::hook(&target, hook, left).await {
                            tracing::info!(pod = %name, container = %inst.name, error = %why, "preStop hook");
                        }
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = runtime.stop_container(&inst.id, left).await {
                    tracing::warn!(pod = %name, container = %inst.name, error = %e, "stopping");
                }
            }
        });
        futures::future::join_all(stops).await;
        self.remove(Duration::ZERO).await;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %self.name, error = %e, "final delete"),
        }
    }

    /// Removes the pod from the runtime and its volumes from the disk.
    async fn remove(&mut self, grace: Duration) {
        if let Err(e) = self.ctx.runtime.remove_pod(&self.uid, grace).await {
            tracing::warn!(pod = %self.name, error = %e, "removing the pod's containers");
        }
        remove_pod_dir(self.ctx.root_dir.as_deref(), &self.uid);
    }
}

/// Removes what the kubelet kept on disk for a pod.
pub fn remove_pod_dir(root: Option<&std::path::Path>, uid: &str) {
    if let Some(root) = root {
        let dir = spec::pod_dir(root, uid);
        if dir.exists() {
            // Memory emptyDirs first: never delete through a mount point.
            spec::unmount_under(&dir);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a pod's directory");
            }
        }
    }
}

fn probe_grace(p: &k8s_openapi::api::core::v1::Probe, pod: &Pod) -> Duration {
    let s = p
        .termination_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE);
    Duration::from_secs(s.max(0).unsigned_abs())
}
