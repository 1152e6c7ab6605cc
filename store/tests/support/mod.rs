//! In-process clusters for tests: members talk through the fault-injecting router.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb as pb;
use keelson_store::config::{parse_urls, url_string, ClusterState, StoreConfig};
use keelson_store::network::router::Router;
use keelson_store::types::NodeId;
use keelson_store::{NodeOptions, StoreNode};
use url::Url;

/// Polls `cond` every 20 ms until it holds, panicking with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn url(s: &str) -> Url {
    parse_urls("test", s).expect("valid URL").remove(0)
}

/// Peer URL of a named in-process member; only the router resolves it.
pub fn peer_url(name: &str) -> Url {
    url(&format!("http://{name}.peer.test:2380"))
}

pub struct TestCluster {
    pub router: Arc<Router>,
    pub dir: tempfile::TempDir,
    pub configs: BTreeMap<String, StoreConfig>,
    pub nodes: BTreeMap<String, Arc<StoreNode>>,
}

impl TestCluster {
    /// Fast timings for tests: 50 ms heartbeats, 500 ms elections.
    pub fn config(&self, name: &str, members: &[&str], state: ClusterState) -> StoreConfig {
        let mut c = StoreConfig::default_for(name);
        c.data_dir = self.dir.path().join(name);
        let client = url(&format!("http://{name}.client.test:2379"));
        c.listen_client_urls = vec![client.clone()];
        c.advertise_client_urls = vec![client];
        c.listen_peer_urls = vec![peer_url(name)];
        c.initial_advertise_peer_urls = vec![peer_url(name)];
        c.initial_cluster = members
            .iter()
            .map(|m| (m.to_string(), vec![peer_url(m)]))
            .collect();
        c.initial_cluster_state = state;
        c.heartbeat_interval = Duration::from_millis(50);
        c.election_timeout = Duration::from_millis(500);
        c
    }

    /// Configures `names` as a new cluster without starting anything.
    pub fn configure(names: &[&str], tweak: impl Fn(&mut StoreConfig)) -> TestCluster {
        let mut c = TestCluster {
            router: Router::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            configs: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        for n in names {
            let mut cfg = c.config(n, names, ClusterState::New);
            tweak(&mut cfg);
            c.configs.insert(n.to_string(), cfg);
        }
        c
    }

    /// Starts `names` as a new cluster.
    pub async fn start(names: &[&str], tweak: impl Fn(&mut StoreConfig)) -> TestCluster {
        let mut c = Self::configure(names, tweak);
        for n in names {
            c.boot(n).await;
        }
        c
    }

    /// Starts (or restarts) member `name` from its config and data dir.
    pub async fn boot(&mut self, name: &str) -> Arc<StoreNode> {
        let cfg = self.configs[name].clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let node = loop {
            // A member that just stopped may still hold its database lock for a moment.
            match StoreNode::start(
                cfg.clone(),
                NodeOptions {
                    transport: self.router.transport(0),
                },
            )
            .await
            {
                Ok(n) => break n,
                Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("starting {name}: {e}"),
            }
        };
        self.router.register(
            node.id,
            vec![url_string(&peer_url(name))],
            &node.peer_service(),
        );
        self.nodes.insert(name.to_string(), node.clone());
        node
    }

    /// Stops member `name` (its data dir stays).
    pub async fn stop(&mut self, name: &str) {
        if let Some(n) = self.nodes.remove(name) {
            self.router.unregister(n.id);
            n.shutdown().await;
        }
    }

    pub fn node(&self, name: &str) -> &Arc<StoreNode> {
        &self.nodes[name]
    }

    pub fn name_of(&self, id: NodeId) -> String {
        self.nodes
            .iter()
            .find(|(_, n)| n.id == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no running member with id {id:x}"))
    }

    /// Waits until every running member agrees on one leader; returns its name.
    pub async fn wait_leader(&self) -> String {
        let mut found = None;
        wait_until(
            Duration::from_secs(20),
            "all members agree on a leader",
            || {
                let leaders: Vec<Option<NodeId>> =
                    self.nodes.values().map(|n| n.leader()).collect();
                let agreed = leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]);
                let is_running_leader = agreed
                    && self
                        .nodes
                        .values()
                        .any(|n| Some(n.id) == leaders[0] && n.is_leader());
                if is_running_leader {
                    found = leaders[0];
                }
                async move { is_running_leader }
            },
        )
        .await;
        self.name_of(found.expect("leader found"))
    }

    /// Waits until every running member applied the same log index and returns HashKV of each.
    pub async fn converged_hashes(&self) -> BTreeMap<String, (u32, i64)> {
        wait_until(
            Duration::from_secs(20),
            "members applied the same index",
            || {
                let applied: Vec<_> = self
                    .nodes
                    .values()
                    .map(|n| n.metrics().last_applied.map(|l| l.index))
                    .collect();
                let same = applied.iter().all(|a| *a == applied[0]);
                async move { same }
            },
        )
        .await;
        self.nodes
            .iter()
            .map(|(name, n)| {
                let h = n.hash_kv(0).expect("hash_kv");
                (
                    name.clone(),
                    (h.hash, h.header.map(|h| h.revision).unwrap_or(0)),
                )
            })
            .collect()
    }

    pub async fn shutdown(mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for n in names {
            self.stop(&n).await;
        }
    }
}

pub fn put_req(k: &str, v: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn get_req(k: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: k.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The value of `k` read linearizably through `node`.
pub async fn get(node: &StoreNode, k: &str) -> Option<String> {
    let r = node.range(get_req(k)).await.expect("linearizable get");
    r.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// The value of `k` in `node`'s local state (serializable).
pub async fn get_local(node: &StoreNode, k: &str) -> Option<String> {
    let mut r = get_req(k);
    r.serializable = true;
    let r = node.range(r).await.expect("serializable get");
    r.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// A single member serving the etcd gRPC API on a loopback port, for client-library tests.
pub struct GrpcMember {
    pub running: keelson_store::server::Running,
    _dir: tempfile::TempDir,
}

impl GrpcMember {
    pub async fn start(tweak: impl FnOnce(&mut StoreConfig)) -> GrpcMember {
        let dir = tempfile::tempdir().expect("temp dir");
        let any = url("http://127.0.0.1:0");
        let mut config = StoreConfig::default_for("g");
        config.data_dir = dir.path().join("g.keelson");
        config.listen_client_urls = vec![any.clone()];
        config.advertise_client_urls = vec![any.clone()];
        config.listen_peer_urls = vec![any.clone()];
        config.initial_advertise_peer_urls = vec![any.clone()];
        config.initial_cluster = vec![("g".to_string(), vec![any])];
        tweak(&mut config);
        let running = keelson_store::server::run_member(config)
            .await
            .expect("start member");
        let node = running.node.clone();
        wait_until(Duration::from_secs(15), "the member leads", || {
            let leads = node.is_leader();
            async move { leads }
        })
        .await;
        GrpcMember { running, _dir: dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.running.client_addrs[0])
    }

    pub fn node(&self) -> &Arc<StoreNode> {
        &self.running.node
    }

    pub async fn stop(self) {
        self.running.node.shutdown().await;
    }
}
