//! The service load balancer: Kubernetes' service controller with a bare-metal provider (what
//! k3s' ServiceLB or MetalLB give a cluster without a cloud). Every Service of
//! `type: LoadBalancer` without a `spec.loadBalancerClass` gets one address of the configured
//! pool (`--service-lb-pool`) in `status.loadBalancer.ingress`: `spec.loadBalancerIP` when it
//! asks for a free address of the pool, else the lowest free one. A Service that stops being
//! a LoadBalancer gives its address back (its status is cleared), and so does a deleted one.
//!
//! Which addresses are taken is read from the Services' status, plus what this leadership
//! term assigned and the informer may not show yet; one worker assigns, so two Services never
//! get the same address. Getting traffic to the address is the proxy's part.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use tokio::sync::watch;

use crate::assigned::Assigned;
use crate::events::{Kind, Recorder};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::queue::{run_workers, Next, Queue, Reconcile};

/// Addresses a LoadBalancer Service may get: IPv4 ranges, inclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    ranges: Vec<(u32, u32)>,
}

impl Pool {
    /// `a.b.c.d`, `a.b.c.d-a.b.c.e` or `a.b.c.d/n`, comma-separated.
    pub fn parse(s: &str) -> Result<Pool, String> {
        let ip = |t: &str| {
            t.trim()
                .parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| format!("{t:?} is not an IPv4 address"))
        };
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = if let Some((a, b)) = part.split_once('-') {
                (ip(a)?, ip(b)?)
            } else if let Some((base, bits)) = part.split_once('/') {
                let bits: u32 = bits
                    .parse()
                    .ok()
                    .filter(|b| (1..=32).contains(b))
                    .ok_or_else(|| format!("{part:?}: the prefix length must be 1 to 32"))?;
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                let base = ip(base)? & mask;
                (base, base | !mask)
            } else {
                let one = ip(part)?;
                (one, one)
            };
            if range.0 > range.1 {
                return Err(format!("{part:?}: the range ends before it starts"));
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("the pool has no address".into());
        }
        Ok(Pool { ranges })
    }

    pub fn contains(&self, ip: u32) -> bool {
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
    }

    /// The lowest address of the pool not in `used`.
    fn first_free(&self, used: &BTreeSet<u32>) -> Option<u32> {
        let mut starts: Vec<(u32, u32)> = self.ranges.clone();
        starts.sort_unstable();
        starts
            .into_iter()
            .find_map(|(a, b)| (a..=b).find(|ip| !used.contains(ip)))
    }
}

/// Whether this controller serves `svc`: a LoadBalancer of no other implementation.
fn wants_address(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// The IPv4 addresses in the Service's `status.loadBalancer.ingress`.
fn ingress_ips(svc: &Service) -> Vec<u32> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect()
}

/// What to do about one Service, given the pool addresses the others hold (pure).
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Keep,
    Assign(u32),
    /// Clear `status.loadBalancer`: the Service holds pool addresses it no longer wants.
    Release,
    /// It wants an address it cannot have (why).
    Pending(String),
}

fn decide(pool: &Pool, svc: &Service, others: &BTreeSet<u32>) -> Decision {
    let have: Vec<u32> = ingress_ips(svc)
        .into_iter()
        .filter(|ip| pool.contains(*ip))
        .collect();
    if !wants_address(svc) {
        let owned_by_other_class = svc
            .spec
            .as_ref()
            .is_some_and(|s| s.load_balancer_class.is_some());
        return if !have.is_empty() && !owned_by_other_class {
            Decision::Release
        } else {
            Decision::Keep
        };
    }
    let requested = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .filter(|ip| !ip.is_empty());
    if let Some(req) = requested {
        let Ok(ip) = req.parse::<Ipv4Addr>().map(u32::from) else {
            return Decision::Pending(format!(
                "spec.loadBalancerIP {req:?} is not an IPv4 address"
            ));
        };
        if have == [ip] {
            return Decision::Keep;
        }
        if !pool.contains(ip) {
            return Decision::Pending(format!(
                "spec.loadBalancerIP {req} is not in the service load balancer's pool"
            ));
        }
        if others.contains(&ip) {
            return Decision::Pending(format!(
                "spec.loadBalancerIP {req} is in use by another Service"
            ));
        }
        return Decision::Assign(ip);
    }
    if let [ip] = have.as_slice() {
        if !others.contains(ip) {
            return Decision::Keep;
        }
    }
    match pool.first_free(others) {
        Some(ip) => Decision::Assign(ip),
        None => Decision::Pending("no address is left in the service load balancer's pool".into()),
    }
}

pub struct ServiceLb {
    client: Client,
    pool: Pool,
    services: Arc<Informer<Service>>,
    queue: Queue,
    events: Recorder,
    /// What this term assigned, by Service key, until the informer shows it.
    assigned: Assigned,
}

impl ServiceLb {
    pub fn new(client: Client, pool: Pool) -> Arc<ServiceLb> {
        let me = Arc::new(ServiceLb {
            events: Recorder::new(client.clone(), "service-controller"),
            client,
            pool,
            services: Informer::new(),
            queue: Queue::new(),
            assigned: Assigned::default(),
        });
        let weak = Arc::downgrade(&me);
        me.services.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            let (old, new) = match c {
                Change::Applied { old, new } => (old, Some(new)),
                Change::Deleted(old) => (Some(old), None),
            };
            let freed = old.is_some_and(|o| !ingress_ips(o).is_empty())
                && new.is_none_or(|n| ingress_ips(n).is_empty());
            if let Some(svc) = new.or(old) {
                me.queue.add(key_of(svc));
            }
            // An address given back may be what a waiting Service needs.
            if freed {
                for svc in me.services.list() {
                    if wants_address(&svc) && ingress_ips(&svc).is_empty() {
                        me.queue.add(key_of(&*svc));
                    }
                }
            }
        });
        me
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.services.start_all(&self.client, &stop);
        self.services.wait_synced(stop.clone()).await;
        let keys = self.services.keys();
        // One worker: assignments never race.
        run_workers(
            "service-lb",
            Arc::clone(&self),
            self.queue.clone(),
            1,
            keys,
            stop,
        )
        .await;
    }

    /// The pool addresses every Service but `key` holds or was just given.
    fn taken_by_others(&self, key: &str) -> BTreeSet<u32> {
        let mut taken: BTreeSet<u32> = BTreeSet::new();
        for svc in self.services.list() {
            if key_of(&*svc) != key {
                taken.extend(
                    ingress_ips(&svc)
                        .into_iter()
                        .filter(|ip| self.pool.contains(*ip)),
                );
            }
        }
        taken.extend(
            self.assigned
                .others(key, |k| self.services.get_key(k).is_some()),
        );
        taken
    }

    async fn sync(&self, key: &str) -> Result<Next, kube::Error> {
        let Some(svc) = self.services.get_key(key) else {
            self.assigned.forget(key);
            return Ok(Next::Done);
        };
        let (ns, name) = split_key(key);
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let others = self.taken_by_others(key);
        match decide(&self.pool, &svc, &others) {
            Decision::Keep => {
                if let Some(ip) = ingress_ips(&svc).first() {
                    if wants_address(&svc) {
                        self.assigned.set(key, *ip);
                    }
                }
                Ok(Next::Done)
            }
            Decision::Assign(ip) => {
                let addr = Ipv4Addr::from(ip).to_string();
                let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": addr, "ipMode": "VIP"}]}}});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                self.assigned.set(key, ip);
                self.events
                    .record(
                        &*svc,
                        Kind::Normal,
                        "IPAllocated",
                        &format!("Assigned IP [\"{addr}\"]"),
                    )
                    .await;
                Ok(Next::Done)
            }
            Decision::Release => {
                let patch = json!({"status": {"loadBalancer": {"ingress": null}}});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                self.assigned.forget(key);
                Ok(Next::Done)
            }
            Decision::Pending(why) => {
                self.assigned.forget(key);
                self.events
                    .record(&*svc, Kind::Warning, "AllocationFailed", &why)
                    .await;
                // Freed addresses queue waiting Services too; this is the backstop.
                Ok(Next::After(Duration::from_secs(30)))
            }
        }
    }
}

impl Reconcile for ServiceLb {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ty: &str, class: Option<&str>, requested: Option<&str>, have: &[&str]) -> Service {
        let mut v = json!({"metadata": {"name": "s", "namespace": "default"},
            "spec": {"type": ty, "ports": [{"port": 80}]}});
        if let Some(c) = class {
            v["spec"]["loadBalancerClass"] = json!(c);
        }
        if let Some(r) = requested {
            v["spec"]["loadBalancerIP"] = json!(r);
        }
        if !have.is_empty() {
            let ingress: Vec<_> = have.iter().map(|ip| json!({"ip": ip})).collect();
            v["status"] = json!({"loadBalancer": {"ingress": ingress}});
        }
        serde_json::from_value(v).expect("service")
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().expect("ip"))
    }

    #[test]
    fn pools_parse_addresses_ranges_and_prefixes() {
        let p = Pool::parse("192.0.2.10-192.0.2.12, 198.51.100.7,203.0.113.0/30").expect("pool");
        for yes in [
            "192.0.2.10",
            "192.0.2.12",
            "198.51.100.7",
            "203.0.113.0",
            "203.0.113.3",
        ] {
            assert!(p.contains(ip(yes)), "{yes}");
        }
        for no in ["192.0.2.9", "192.0.2.13", "198.51.100.8", "203.0.113.4"] {
            assert!(!p.contains(ip(no)), "{no}");
        }
        for bad in ["", "10.0.0.1-10.0.0.0", "10.0.0.0/33", "nope", "10.0.0.1-x"] {
            assert!(Pool::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_assigned_kept_requested_and_given_back() {
        let pool = Pool::parse("192.0.2.10-192.0.2.11").expect("pool");
        let none = BTreeSet::new();
        let lb = svc("LoadBalancer", None, None, &[]);
        assert_eq!(
            decide(&pool, &lb, &none),
            Decision::Assign(ip("192.0.2.10"))
        );
        let taken: BTreeSet<u32> = [ip("192.0.2.10")].into();
        assert_eq!(
            decide(&pool, &lb, &taken),
            Decision::Assign(ip("192.0.2.11"))
        );
        let full: BTreeSet<u32> = [ip("192.0.2.10"), ip("192.0.2.11")].into();
        assert!(
            matches!(decide(&pool, &lb, &full), Decision::Pending(m) if m.contains("no address"))
        );
        // Its own address it keeps, unless another holds it too.
        let has = svc("LoadBalancer", None, None, &["192.0.2.11"]);
        assert_eq!(decide(&pool, &has, &none), Decision::Keep);
        let dup: BTreeSet<u32> = [ip("192.0.2.11")].into();
        assert_eq!(
            decide(&pool, &has, &dup),
            Decision::Assign(ip("192.0.2.10"))
        );
        // spec.loadBalancerIP: a free pool address, else it waits and says why.
        let req = svc("LoadBalancer", None, Some("192.0.2.11"), &[]);
        assert_eq!(
            decide(&pool, &req, &none),
            Decision::Assign(ip("192.0.2.11"))
        );
        assert!(matches!(decide(&pool, &req, &dup), Decision::Pending(m) if m.contains("in use")));
        let outside = svc("LoadBalancer", None, Some("10.0.0.1"), &[]);
        assert!(
            matches!(decide(&pool, &outside, &none), Decision::Pending(m) if m.contains("not in"))
        );
        // Not ours: another class's, or no longer a LoadBalancer.
        let other = svc(
            "LoadBalancer",
            Some("example.com/lb"),
            None,
            &["192.0.2.10"],
        );
        assert_eq!(decide(&pool, &other, &none), Decision::Keep);
        let was = svc("ClusterIP", None, None, &["192.0.2.10"]);
        assert_eq!(decide(&pool, &was, &none), Decision::Release);
        assert_eq!(
            decide(&pool, &svc("ClusterIP", None, None, &[]), &none),
            Decision::Keep
        );
    }
}
