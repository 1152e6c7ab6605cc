//! Leader election on a `coordination.k8s.io/v1` Lease (client-go's leaderelection).
//!
//! A candidate takes the lease when nobody holds it or when its holder has not renewed it
//! for `lease_duration`, judged by the candidate's own clock from when it last saw the record
//! change (so clocks of different machines never have to agree). The holder renews every
//! `retry_period` and stops acting when it has failed to renew for `renew_deadline`, which is
//! shorter than `lease_duration`: the old leader has stopped before a new one can start. All
//! writes use the lease's resourceVersion, so two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

/// Where and how to elect.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity (unique per process).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// kube-controller-manager's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: &str, identity: String) -> LeaderConfig {
        LeaderConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The same ratios scaled to another lease duration (tests shorten it).
    pub fn with_lease_duration(mut self, d: Duration) -> LeaderConfig {
        self.lease_duration = d;
        self.renew_deadline = d * 2 / 3;
        self.retry_period = (d / 7).max(Duration::from_millis(100));
        self
    }
}

/// An identity for this process: host name, process id and a random suffix.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "keelson".into());
    format!(
        "{host}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// What a candidate last saw of the lease.
struct Observed {
    holder: String,
    renew: Option<MicroTime>,
    transitions: i32,
    at: Instant,
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Runs `lead` each time this candidate becomes leader, until `stop` turns true. `lead` gets a
/// receiver that turns true when leadership is lost (or on stop); it must stop acting then.
pub async fn run<F, Fut>(
    client: Client,
    cfg: LeaderConfig,
    mut stop: watch::Receiver<bool>,
    lead: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let leases: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<Observed> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        match try_acquire_or_renew(&leases, &cfg, &mut observed, false).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                let (lost_tx, lost_rx) = watch::channel(false);
                let work = tokio::spawn(lead(lost_rx));
                let released = hold(&leases, &cfg, &mut observed, &mut stop).await;
                lost_tx.send_replace(true);
                let _ = work.await;
                if released {
                    return;
                }
                tracing::warn!(lease = %cfg.name, "lost leadership");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(lease = %cfg.name, error = %e, "leader election attempt failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.retry_period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Renews until that fails for `renew_deadline` (returns false) or `stop` (releases the
/// lease so a successor need not wait, returns true).
async fn hold(
    leases: &Api<Lease>,
    cfg: &LeaderConfig,
    observed: &mut Option<Observed>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut last_renew = Instant::now();
    loop {
        let stopped = tokio::select! {
            _ = tokio::time::sleep(cfg.retry_period) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            if let Err(e) = try_acquire_or_renew(leases, cfg, observed, true).await {
                tracing::debug!(error = %e, "releasing the lease failed");
            }
            return true;
        }
        // Each attempt is bounded so a hung request cannot outlive the deadline.
        let left = cfg.renew_deadline.saturating_sub(last_renew.elapsed());
        let attempt =
            tokio::time::timeout(left, try_acquire_or_renew(leases, cfg, observed, false));
        match attempt.await {
            Ok(Ok(true)) => last_renew = Instant::now(),
            Ok(Ok(false)) => return false, // somebody else holds it
            Ok(Err(e)) => tracing::debug!(error = %e, "renewing the lease failed"),
            Err(_) => {}
        }
        if last_renew.elapsed() >= cfg.renew_deadline {
            return false;
        }
    }
}

/// One election step: Ok(true) if this candidate holds the lease afterwards. With `release`,
/// gives the lease up instead (only if held).
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    cfg: &LeaderConfig,
    observed: &mut Option<Observed>,
    release: bool,
) -> Result<bool, kube::Error> {
    let secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let current = leases.get_opt(&cfg.name).await?;
    let Some(mut lease) = current else {
        if release {
            return Ok(false);
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    // When did the record last change, by our clock?
    let changed = observed.as_ref().is_none_or(|o| {
        o.holder != holder || o.renew != spec.renew_time || o.transitions != transitions
    });
    if changed {
        // The first time we see a record, count the time since its renewal as already passed
        // (bounded by the lease duration): a restarted single server need not wait a full
        // lease for its own stale record, while a live holder renewed moments ago keeps it.
        let age = match (&observed, &spec.renew_time) {
            (None, Some(t)) => jiff::Timestamp::now()
                .duration_since(t.0)
                .try_into()
                .unwrap_or(Duration::ZERO)
                .min(cfg.lease_duration),
            _ => Duration::ZERO,
        };
        *observed = Some(Observed {
            holder: holder.clone(),
            renew: spec.renew_time.clone(),
            transitions,
            at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        });
    }
    let held_by_me = holder == cfg.identity;
    if release {
        if !held_by_me {
            return Ok(false);
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(now_micro()),
            acquire_time: Some(now_micro()),
            lease_transitions: Some(transitions),
            ..Default::default()
        });
        leases
            .replace(&cfg.name, &PostParams::default(), &lease)
            .await?;
        return Ok(true);
    }
    let holder_secs = spec.lease_duration_seconds.unwrap_or(secs).max(1);
    let expired = observed
        .as_ref()
        .is_none_or(|o| o.at.elapsed() >= Duration::from_secs(holder_secs as u64));
    if !holder.is_empty() && !held_by_me && !expired {
        return Ok(false);
    }
    let mut next = spec.clone();
    next.holder_identity = Some(cfg.identity.clone());
    next.lease_duration_seconds = Some(secs);
    next.renew_time = Some(now_micro());
    if !held_by_me {
        next.acquire_time = Some(now_micro());
        next.lease_transitions = Some(transitions + 1);
    }
    lease.spec = Some(next.clone());
    match leases
        .replace(&cfg.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => {
            *observed = Some(Observed {
                holder: cfg.identity.clone(),
                renew: next.renew_time,
                transitions: next.lease_transitions.unwrap_or(transitions),
                at: Instant::now(),
            });
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
