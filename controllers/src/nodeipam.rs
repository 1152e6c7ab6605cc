//! Node IPAM (kube-controller-manager's `--allocate-node-cidrs` with the range allocator):
//! every Node without a `spec.podCIDR` gets the lowest free block of `--cluster-cidr`, of
//! `--node-cidr-mask-size` bits, in `spec.podCIDR` and `spec.podCIDRs`. A deleted Node's
//! block is free again. A Node that already has one keeps it (the field is immutable); when
//! the range is used up the Node waits with a `CIDRNotAvailable` event.
//!
//! Taken blocks are read from the Nodes plus what this term assigned that the informer may
//! not show yet; one worker assigns, so no block is given twice.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::watch;

use crate::assigned::Assigned;
use crate::events::{Kind, Recorder};
use crate::informer::{Change, Informer, Shared};
use crate::queue::{run_workers, Next, Queue, Reconcile};

/// The cluster's pod range and the size of each node's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterCidr {
    base: u32,
    prefix: u8,
    node_prefix: u8,
}

fn parse_cidr(s: &str) -> Result<(u32, u8), String> {
    let (ip, bits) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (a.b.c.d/n)"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| (1..=32).contains(b))
        .ok_or_else(|| format!("{s:?}: the prefix length must be 1 to 32"))?;
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    Ok((u32::from(ip) & mask, bits))
}

impl ClusterCidr {
    /// `--cluster-cidr` and `--node-cidr-mask-size`.
    pub fn new(cidr: &str, node_mask: u8) -> Result<ClusterCidr, String> {
        let (base, prefix) = parse_cidr(cidr)?;
        if node_mask < prefix || node_mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {node_mask} must be at least the cluster CIDR's /{prefix} and at most 30"
            ));
        }
        if node_mask - prefix > 16 {
            return Err(format!(
                "--cluster-cidr /{prefix} with --node-cidr-mask-size {node_mask} makes more than 65536 node blocks"
            ));
        }
        Ok(ClusterCidr {
            base,
            prefix,
            node_prefix: node_mask,
        })
    }

    fn blocks(&self) -> u32 {
        1 << (self.node_prefix - self.prefix)
    }

    fn block(&self, i: u32) -> String {
        let ip = self.base + (i << (32 - u32::from(self.node_prefix)));
        format!("{}/{}", Ipv4Addr::from(ip), self.node_prefix)
    }

    /// The index of `cidr` if it is one of this range's blocks.
    fn index_of(&self, cidr: &str) -> Option<u32> {
        let (base, bits) = parse_cidr(cidr).ok()?;
        if bits != self.node_prefix || base < self.base {
            return None;
        }
        let i = (base - self.base) >> (32 - u32::from(self.node_prefix));
        (i < self.blocks()).then_some(i)
    }

    fn first_free(&self, taken: &BTreeSet<u32>) -> Option<u32> {
        (0..self.blocks()).find(|i| !taken.contains(i))
    }
}

fn pod_cidr(n: &Node) -> Option<&str> {
    n.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

pub struct NodeIpam {
    client: Client,
    cidr: ClusterCidr,
    nodes: Arc<Informer<Node>>,
    queue: Queue,
    events: Recorder,
    /// Blocks this term assigned, by node, until the informer shows them.
    assigned: Assigned,
}

impl NodeIpam {
    pub fn new(client: Client, cidr: ClusterCidr, shared: &Shared) -> Arc<NodeIpam> {
        let me = Arc::new(NodeIpam {
            events: Recorder::new(client.clone(), "node-ipam-controller"),
            client,
            cidr,
            nodes: Arc::clone(&shared.nodes),
            queue: Queue::new(),
            assigned: Assigned::default(),
        });
        let weak = Arc::downgrade(&me);
        me.nodes.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            match c {
                Change::Applied { new, .. } => me.queue.add(new.name_any()),
                // A freed block may be what a waiting node needs.
                Change::Deleted(_) => {
                    for n in me.nodes.list() {
                        if pod_cidr(&n).is_none() {
                            me.queue.add(n.name_any());
                        }
                    }
                }
            }
        });
        me
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.nodes.start_all(&self.client, &stop);
        self.nodes.wait_synced(stop.clone()).await;
        let keys = self.nodes.keys();
        run_workers(
            "node-ipam",
            Arc::clone(&self),
            self.queue.clone(),
            1,
            keys,
            stop,
        )
        .await;
    }

    fn taken(&self, name: &str) -> BTreeSet<u32> {
        let mut taken: BTreeSet<u32> = self
            .nodes
            .list()
            .iter()
            .filter(|n| n.name_any() != name)
            .filter_map(|n| pod_cidr(n).and_then(|c| self.cidr.index_of(c)))
            .collect();
        taken.extend(
            self.assigned
                .others(name, |n| self.nodes.get_key(n).is_some()),
        );
        taken
    }

    async fn sync(&self, name: &str) -> Result<Next, kube::Error> {
        let Some(node) = self.nodes.get_key(name) else {
            self.assigned.forget(name);
            return Ok(Next::Done);
        };
        if let Some(c) = pod_cidr(&node) {
            if let Some(i) = self.cidr.index_of(c) {
                self.assigned.set(name, i);
            }
            return Ok(Next::Done);
        }
        let taken = self.taken(name);
        let Some(i) = self.cidr.first_free(&taken) else {
            self.events
                .record(
                    &*node,
                    Kind::Warning,
                    "CIDRNotAvailable",
                    &format!("Node {name} status is now: CIDRNotAvailable"),
                )
                .await;
            return Ok(Next::After(Duration::from_secs(30)));
        };
        let block = self.cidr.block(i);
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"spec": {"podCIDR": block, "podCIDRs": [block]}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.assigned.set(name, i);
        self.events
            .record(
                &*node,
                Kind::Normal,
                "CIDRAssignmentSucceeded",
                &format!("Node {name} was given pod CIDR {block}"),
            )
            .await;
        Ok(Next::Done)
    }
}

impl Reconcile for NodeIpam {
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

    #[test]
    fn blocks_of_the_cluster_cidr() {
        let c = ClusterCidr::new("10.244.0.0/16", 24).expect("cidr");
        assert_eq!(c.blocks(), 256);
        assert_eq!(c.block(0), "10.244.0.0/24");
        assert_eq!(c.block(3), "10.244.3.0/24");
        assert_eq!(c.index_of("10.244.3.0/24"), Some(3));
        assert_eq!(c.index_of("10.245.0.0/24"), None);
        assert_eq!(c.index_of("10.244.3.0/25"), None);
        let taken: BTreeSet<u32> = [0, 1, 3].into();
        assert_eq!(c.first_free(&taken), Some(2));
        let small = ClusterCidr::new("10.1.2.3/23", 24).expect("cidr");
        assert_eq!(small.block(1), "10.1.3.0/24", "the base is masked");
        assert_eq!(small.first_free(&[0, 1].into()), None);
        for (cidr, mask) in [
            ("10.0.0.0/24", 16),
            ("10.0.0.0/8", 25),
            ("nope", 24),
            ("10.0.0.0/16", 31),
        ] {
            assert!(ClusterCidr::new(cidr, mask).is_err(), "{cidr} /{mask}");
        }
    }
}
