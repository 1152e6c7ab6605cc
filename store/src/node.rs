//! A store member: raft, the MVCC state machine, watches and leases behind one Rust API.
//!
//! The gRPC services (etcd v3 API) and, later, the apiserver call [`StoreNode`] directly. Every
//! method works on any member: writes go to the leader (forwarded over the peer network when
//! this member follows), linearizable reads obtain a read index from the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use keelson_proto::etcdserverpb as pb;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::{url_string, AutoCompaction, ClusterState, StoreConfig};
use crate::error::{EtcdError, Result, StoreError};
use crate::lease::Lessor;
use crate::mvcc::{self, Mvcc};
use crate::network::{
    BoxFuture, Forward, ForwardReply, MembershipOp, NetError, Network, PeerReply, PeerRequest,
    PeerService, PeerTransport, Target,
};
use crate::storage::db::{self, CF_RAFT_META};
use crate::storage::log_store::LogStore;
use crate::storage::state_machine::StateMachine;
use crate::types::{AlarmKind, Member, NodeId, Pb, Raft, Request, Response};
use crate::watch::WatchHub;

/// The version this server reports to etcd clients. Kubernetes uses watch progress requests
/// only from 3.5.13 on, which we implement.
pub const ETCD_VERSION: &str = "3.5.17";
/// The cluster version (major.minor) etcd reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

pub(crate) const KEY_IDENTITY: &[u8] = b"identity";
/// Present while this member's key-value data came from a snapshot file (`restore`) rather
/// than from its raft log, and the log has not yet been compacted into a raft snapshot.
pub(crate) const KEY_RESTORED: &[u8] = b"restored-unpurged";

/// Who this data directory belongs to; written once, at bootstrap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub member_id: NodeId,
    pub cluster_id: u64,
    pub cluster_token: String,
}

/// FNV-1a, 64 bit: stable across versions and platforms, so every member derives the same ids
/// from the same flags.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    if h == 0 {
        1
    } else {
        h
    }
}

/// A member id from its peer URLs and the cluster token (etcd derives it the same way), plus a
/// time component for members added at run time.
pub fn compute_member_id(peer_urls: &[String], token: &str, salt: Option<u64>) -> NodeId {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    let salt = salt.map(|s| s.to_be_bytes()).unwrap_or_default();
    fnv1a(&[joined.as_bytes(), token.as_bytes(), &salt])
}

pub fn compute_cluster_id(member_ids: &[NodeId], token: &str) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_be_bytes()).collect();
    fnv1a(&[&bytes, token.as_bytes()])
}

/// How a member talks to the outside, for tests and for the process wiring.
pub struct NodeOptions {
    pub transport: Arc<dyn PeerTransport>,
}

/// One member of the store. Cheap to share (`Arc`).
pub struct StoreNode {
    pub id: NodeId,
    pub cluster_id: u64,
    pub config: StoreConfig,
    raft: Raft,
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    lessor: Arc<Lessor>,
    transport: Arc<dyn PeerTransport>,
    peer_service: Arc<dyn PeerService>,
    reads: mpsc::UnboundedSender<oneshot::Sender<Result<u64, EtcdError>>>,
    proposals: mpsc::UnboundedSender<Proposal>,
    /// Set while leadership is being handed over: no new proposals go to raft meanwhile.
    transferring: tokio::sync::watch::Sender<bool>,
    /// Held shared by every proposal on its way into raft; a leadership transfer takes it
    /// exclusively once to know that nothing it did not see is still being appended.
    proposing: Arc<tokio::sync::RwLock<()>>,
    /// Set once this member published its attributes (etcd serves clients only after that).
    published: tokio::sync::watch::Sender<bool>,
    min_lease_ttl: i64,
    request_timeout: Duration,
    shutdown: tokio::sync::watch::Sender<bool>,
    started: Instant,
    /// ReadIndex rounds this member started (each serves every reader waiting at its start).
    read_rounds: std::sync::atomic::AtomicU64,
    /// The database size and when it was measured (RocksDB's size properties take locks, too
    /// costly to read on every write).
    db_size: parking_lot::Mutex<(Instant, u64)>,
    log_stats: Arc<crate::storage::log_store::LogStats>,
    /// Where the member keeps its latest raft snapshot.
    snap_dir: std::path::PathBuf,
    /// See [`KEY_RESTORED`].
    restored_unpurged: std::sync::atomic::AtomicBool,
    counters: Counters,
}

/// The peer-facing handle of a member (holds it weakly, so a stopped member goes away).
struct Handler(Weak<StoreNode>);

impl PeerService for Handler {
    fn handle(&self, from: NodeId, req: PeerRequest) -> BoxFuture<'static, PeerReply> {
        let node = self.0.upgrade();
        Box::pin(async move {
            let Some(node) = node else {
                return stopped_reply(req);
            };
            node.handle_peer(from, req).await
        })
    }
}

fn stopped_reply(req: PeerRequest) -> PeerReply {
    use openraft::error::Fatal;
    match req {
        PeerRequest::AppendEntries(_) => {
            PeerReply::AppendEntries(Err(RaftError::Fatal(Fatal::Stopped)))
        }
        PeerRequest::Vote(_) => PeerReply::Vote(Err(RaftError::Fatal(Fatal::Stopped))),
        PeerRequest::InstallSnapshot(_) => {
            PeerReply::InstallSnapshot(Err(RaftError::Fatal(Fatal::Stopped)))
        }
        PeerRequest::Forward(_) => PeerReply::Forward(Err(EtcdError::Stopped)),
    }
}

impl StoreNode {
    /// Opens (or bootstraps) the member described by `config` and starts raft.
    pub async fn start(config: StoreConfig, opts: NodeOptions) -> Result<Arc<StoreNode>> {
        config.validate()?;
        let member_dir = config.data_dir.join("member");
        std::fs::create_dir_all(&member_dir)?;
        let db = db::open(&member_dir.join("db"))?;
        db::check_format(&db, &config.data_dir)?;
        let transport = opts.transport;

        let meta = db::cf(&db, CF_RAFT_META)?;
        let stored: Option<Identity> = match db.get_cf(meta, KEY_IDENTITY)? {
            Some(v) => Some(
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("member identity: {e}")))?,
            ),
            None => None,
        };
        let restored_unpurged = db.get_cf(meta, KEY_RESTORED)?.is_some();
        let mut bootstrap: Option<BTreeMap<NodeId, Member>> = None;
        let identity = match stored {
            Some(id) => {
                if id.name != config.name {
                    return Err(StoreError::config(format!(
                        "data dir {} belongs to member {:?} (ID {:x}) of cluster {:x}, not to {:?}",
                        config.data_dir.display(),
                        id.name,
                        id.member_id,
                        id.cluster_id,
                        config.name
                    )));
                }
                tracing::info!(
                    member = %format!("{:x}", id.member_id),
                    cluster = %format!("{:x}", id.cluster_id),
                    "restarting member from its data dir; bootstrap flags are ignored"
                );
                id
            }
            None => match config.initial_cluster_state {
                ClusterState::New => {
                    let token = &config.initial_cluster_token;
                    let mut members = BTreeMap::new();
                    let mut my_id = None;
                    for (name, urls) in &config.initial_cluster {
                        let urls: Vec<String> = urls.iter().map(url_string).collect();
                        let id = compute_member_id(&urls, token, None);
                        if members.contains_key(&id) {
                            return Err(StoreError::config(format!(
                                "--initial-cluster: member {name:?} has the same peer URLs as another member"
                            )));
                        }
                        if *name == config.name {
                            my_id = Some(id);
                        }
                        // Every founding member must write the very same first log entry, so
                        // nothing member-specific goes in: each member publishes its client
                        // URLs through raft once it runs.
                        members.insert(
                            id,
                            Member {
                                name: name.clone(),
                                peer_urls: urls,
                                client_urls: Vec::new(),
                            },
                        );
                    }
                    let member_id = my_id.ok_or_else(|| {
                        StoreError::config(format!(
                            "couldn't find local name {:?} in the initial cluster configuration",
                            config.name
                        ))
                    })?;
                    let ids: Vec<NodeId> = members.keys().copied().collect();
                    let cluster_id = compute_cluster_id(&ids, token);
                    bootstrap = Some(members);
                    Identity {
                        name: config.name.clone(),
                        member_id,
                        cluster_id,
                        cluster_token: token.clone(),
                    }
                }
                ClusterState::Existing => join_existing(&config, &transport).await?,
            },
        };
        let v = serde_json::to_vec(&identity).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        db.put_cf_opt(meta, KEY_IDENTITY, v, &wo)?;
        transport.set_identity(identity.cluster_id, identity.member_id);

        let et = config.election_timeout.as_millis() as u64;
        let (election_min, election_max) = openraft_election_bounds(et);
        let raft_config = openraft::Config {
            cluster_name: identity.cluster_token.clone(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            install_snapshot_timeout: (et * 10).max(10_000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count),
            max_in_snapshot_log_to_keep: config.snapshot_catchup_entries,
            purge_batch_size: (config.snapshot_count / 4).clamp(1, 1024),
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::config(format!("raft configuration: {e}")))?;

        let mvcc = Arc::new(Mvcc::open(db.clone())?);
        let hub = WatchHub::new(mvcc.clone());
        let snap_dir = member_dir.join("snap");
        let sm = StateMachine::new(mvcc.clone(), hub.clone(), snap_dir.clone())?;
        let log = LogStore::new(db.clone())?;
        let log_stats = log.stats();
        let raft = Raft::new(
            identity.member_id,
            Arc::new(raft_config),
            Network::new(transport.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| StoreError::Raft(e.to_string()))?;

        if let Some(members) = bootstrap {
            match raft.initialize(members).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StoreError::Raft(format!("bootstrapping the cluster: {e}"))),
            }
        }

        // etcd: minimum lease TTL is 1.5 election timeouts, rounded up to whole seconds.
        let min_lease_ttl = ((config.election_timeout.as_millis() as i64 * 3 / 2) + 999) / 1000;
        let request_timeout = Duration::from_secs(5) + config.election_timeout * 2;
        let (reads_tx, reads_rx) = mpsc::unbounded_channel();
        let (proposals_tx, proposals_rx) = mpsc::unbounded_channel();
        let (transferring, transfer_rx) = tokio::sync::watch::channel(false);
        let (published, _) = tokio::sync::watch::channel(false);
        let proposing = Arc::new(tokio::sync::RwLock::new(()));
        tokio::spawn(proposer_loop(
            raft.clone(),
            proposals_rx,
            transfer_rx,
            proposing.clone(),
        ));
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let node = Arc::new_cyclic(|weak: &Weak<StoreNode>| StoreNode {
            id: identity.member_id,
            cluster_id: identity.cluster_id,
            config,
            raft,
            mvcc,
            hub,
            lessor: Arc::new(Lessor::new(Duration::from_millis(et))),
            transport,
            peer_service: Arc::new(Handler(weak.clone())),
            reads: reads_tx,
            proposals: proposals_tx,
            transferring,
            proposing,
            published,
            min_lease_ttl: min_lease_ttl.max(1),
            request_timeout,
            shutdown,
            started: Instant::now(),
            read_rounds: std::sync::atomic::AtomicU64::new(0),
            db_size: parking_lot::Mutex::new((Instant::now(), 0)),
            log_stats,
            snap_dir,
            restored_unpurged: std::sync::atomic::AtomicBool::new(restored_unpurged),
            counters: Counters::default(),
        });
        tokio::spawn(count_leader_changes(Arc::downgrade(&node)));
        tokio::spawn(read_index_loop(Arc::downgrade(&node), reads_rx));
        tokio::spawn(lease_loop(Arc::downgrade(&node)));
        tokio::spawn(publish_attributes(Arc::downgrade(&node)));
        tokio::spawn(removal_watch(Arc::downgrade(&node)));
        if node.config.auto_compaction != AutoCompaction::Off {
            tokio::spawn(auto_compact_loop(Arc::downgrade(&node)));
        }
        Ok(node)
    }

    /// The handler other members' requests go to.
    pub fn peer_service(&self) -> Arc<dyn PeerService> {
        self.peer_service.clone()
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn mvcc(&self) -> &Arc<Mvcc> {
        &self.mvcc
    }

    pub fn hub(&self) -> &Arc<WatchHub> {
        &self.hub
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Appends to and syncs of this member's raft log so far.
    /// Leader changes this member has seen (each time it learns of a new leader).
    pub fn leader_changes(&self) -> u64 {
        self.counters
            .leader_changes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Proposals (writes) waiting for raft, on their way to the leader or being committed.
    pub fn proposals_pending(&self) -> u64 {
        self.counters
            .pending
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Proposals that failed in raft: timed out, lost their leader, or the member stopped
    /// (not requests the state machine refused, such as a missing lease).
    pub fn proposals_failed(&self) -> u64 {
        self.counters
            .failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn log_stats(&self) -> &crate::storage::log_store::LogStats {
        &self.log_stats
    }

    /// Bytes of the member's latest raft snapshot file (0 before the first snapshot).
    pub fn snapshot_bytes(&self) -> u64 {
        std::fs::metadata(self.snap_dir.join(crate::storage::state_machine::SNAP_DATA))
            .map_or(0, |m| m.len())
    }

    /// How many ReadIndex rounds this member has run for its linearizable reads.
    pub fn read_index_rounds(&self) -> u64 {
        self.read_rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until this member has published its name and client URLs to the cluster, which
    /// needs a leader (etcd serves clients only from then on).
    pub async fn wait_published(&self) {
        let mut rx = self.published.subscribe();
        let _ = rx.wait_for(|p| *p).await;
    }

    /// Pauses new proposals while leadership is handed over; they resume when the returned
    /// guard is dropped. Resolves once the proposals already past the gate are in the log
    /// (committed and applied, or failed), so the log's end stays put from then on.
    pub(crate) async fn pause_proposals(&self) -> ProposalPause<'_> {
        self.transferring.send_replace(true);
        let pause = ProposalPause(&self.transferring);
        drop(self.proposing.write().await);
        pause
    }

    /// Resolves when the member is shutting down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops raft and background work. Safe to call more than once. A leader first hands
    /// leadership to its most caught-up voter, as etcd does on a graceful stop, so a rolling
    /// restart pauses writes for a transfer rather than for an election timeout.
    pub async fn shutdown(&self) {
        if !*self.shutdown.borrow() {
            self.hand_over_leadership().await;
        }
        // `send_replace`: the flag must flip even when nobody is subscribed yet.
        self.shutdown.send_replace(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    async fn hand_over_leadership(&self) {
        if !self.is_leader() {
            return;
        }
        let m = self.metrics();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let target = m
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.id && voters.contains(id))
            .max_by_key(|(_, matched)| matched.map(|l| l.index))
            .map(|(id, _)| *id);
        let Some(target) = target else {
            return;
        };
        let bound = self.config.election_timeout * 8;
        match tokio::time::timeout(bound, self.move_leader(target)).await {
            Ok(Ok(())) => {
                tracing::info!(to = %format!("{target:x}"), "handed leadership over before stopping")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not hand leadership over before stopping")
            }
            Err(_) => tracing::warn!("handing leadership over before stopping timed out"),
        }
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, Member> {
        self.raft.metrics().borrow().clone()
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.id) && m.state == ServerState::Leader
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// A response header: cluster, member, revision (the current one if 0) and raft term.
    pub fn header(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision: if revision == 0 {
                self.mvcc.current_rev()
            } else {
                revision
            },
            raft_term: self.term(),
        }
    }

    /// Fills the identity fields of a header the state machine produced.
    pub fn fill_header(&self, h: &mut Option<pb::ResponseHeader>) {
        let rev = h.as_ref().map(|h| h.revision).unwrap_or(0);
        *h = Some(self.header(rev));
    }

    fn member_of(&self, id: NodeId) -> Option<Member> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().get_node(&id).cloned()
    }

    // ---------------------------------------------------------------- writes

    /// Proposes a request through raft (on the leader, wherever it is) and returns what the
    /// state machine answered.
    pub async fn propose(&self, req: Request) -> Result<Response> {
        use std::sync::atomic::Ordering;
        self.check_request_size(&req)?;
        if req.may_grow() {
            self.check_quota(&req).await?;
        }
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        let resp = tokio::time::timeout_at(deadline, self.propose_until(req, deadline))
            .await
            .map_err(|_| StoreError::from(EtcdError::Timeout))
            .and_then(|r| r);
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        if resp.is_err() {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        match resp? {
            Response::Error(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    async fn propose_until(
        &self,
        req: Request,
        deadline: tokio::time::Instant,
    ) -> Result<Response> {
        loop {
            match self.leader() {
                Some(l) if l == self.id => match self.submit(req.clone()).await {
                    Ok((r, _)) => return Ok(r),
                    // Not committed (never appended, or truncated): safe to retry elsewhere.
                    Err(EtcdError::NotLeader) => {}
                    Err(e) => return Err(e.into()),
                },
                Some(l) => match self.forward(l, Forward::Write(req.clone())).await {
                    Ok(ForwardReply::Write(r, index)) => {
                        // Like etcd, answer once this member applied the write too, so a
                        // serializable read here right after sees it.
                        self.wait_applied(index).await?;
                        return Ok(r);
                    }
                    Ok(other) => {
                        return Err(
                            EtcdError::Internal(format!("unexpected reply {other:?}")).into()
                        )
                    }
                    Err(StoreError::Etcd(EtcdError::NotLeader | EtcdError::NoLeader)) => {}
                    Err(StoreError::Peer { .. }) if !self.delivered_maybe() => {}
                    Err(e) => return Err(e),
                },
                None => {}
            }
            self.wait_leader_change(deadline).await?;
        }
    }

    /// Hands a request to the proposer, which batches concurrent requests into one log entry.
    async fn submit(&self, req: Request) -> Result<(Response, u64), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.proposals
            .send(Proposal { req, tx })
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Whether a failed forward may have reached the leader. Unreachable errors did not; we
    /// report everything else as ambiguous (see `forward`).
    fn delivered_maybe(&self) -> bool {
        false
    }

    /// Waits (briefly) for the leader to be known or to change.
    async fn wait_leader_change(&self, deadline: tokio::time::Instant) -> Result<()> {
        let before = self.leader();
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let now = rx.borrow().current_leader;
                if now != before || now.is_some() {
                    return;
                }
            }
        };
        let step = tokio::time::Instant::now() + self.config.heartbeat_interval * 2;
        let _ = tokio::time::timeout_at(step.min(deadline), wait).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(if self.leader().is_none() {
                EtcdError::NoLeader
            } else {
                EtcdError::Timeout
            }
            .into());
        }
        Ok(())
    }

    /// Sends a leader-only operation to member `to`. Errors that prove the request was not
    /// delivered come back as `StoreError::Peer`; a timeout is `EtcdError::Timeout`.
    async fn forward(&self, to: NodeId, f: Forward) -> Result<ForwardReply> {
        let member = self.member_of(to).ok_or_else(|| StoreError::Peer {
            target: to,
            message: "unknown member".into(),
        })?;
        match self
            .transport
            .call(
                Target::member(to, &member),
                PeerRequest::Forward(f),
                self.request_timeout,
            )
            .await
        {
            Ok(PeerReply::Forward(r)) => r.map_err(Into::into),
            Ok(other) => {
                Err(EtcdError::Internal(format!("unexpected peer reply {other:?}")).into())
            }
            Err(NetError::Timeout(_)) => Err(EtcdError::Timeout.into()),
            Err(e) => Err(StoreError::Peer {
                target: to,
                message: e.to_string(),
            }),
        }
    }

    fn check_request_size(&self, req: &Request) -> Result<()> {
        let size = match req {
            Request::Put(p) => prost::Message::encoded_len(&p.0),
            Request::DeleteRange(d) => prost::Message::encoded_len(&d.0),
            Request::Txn(t) => prost::Message::encoded_len(&t.0),
            _ => 0,
        };
        if size > self.config.max_request_bytes {
            return Err(EtcdError::RequestTooLarge.into());
        }
        Ok(())
    }

    /// The database size for quota checks, measured at most every 50 ms.
    fn db_size(&self) -> u64 {
        let mut cached = self.db_size.lock();
        if cached.1 == 0 || cached.0.elapsed() >= Duration::from_millis(50) {
            *cached = (Instant::now(), db::size_bytes(self.mvcc.db()));
        }
        cached.1
    }

    async fn check_quota(&self, req: &Request) -> Result<()> {
        if self.mvcc.read().has_alarm(AlarmKind::NoSpace) {
            return Err(EtcdError::NoSpace.into());
        }
        let cost = match req {
            Request::Put(p) => p.0.key.len() + p.0.value.len() + crate::types::QUOTA_KV_OVERHEAD,
            Request::Txn(t) => crate::types::quota_cost(&t.0),
            _ => crate::types::QUOTA_KV_OVERHEAD,
        } as u64;
        let size = self.db_size();
        if size + cost > self.config.quota_backend_bytes {
            tracing::warn!(
                db_size = size,
                quota = self.config.quota_backend_bytes,
                "database space exceeded; raising NOSPACE alarm"
            );
            let alarm = Request::Alarm {
                activate: true,
                member: self.id,
                kind: AlarmKind::NoSpace,
            };
            if let Err(e) = Box::pin(self.propose(alarm)).await {
                tracing::warn!(error = %e, "raising NOSPACE alarm failed");
            }
            return Err(EtcdError::NoSpace.into());
        }
        Ok(())
    }

    pub async fn put(&self, r: pb::PutRequest) -> Result<pb::PutResponse> {
        mvcc::check_put(&r)?;
        match self.propose(Request::Put(Pb(r))).await? {
            Response::Put(mut p) => {
                self.fill_header(&mut p.0.header);
                Ok(p.0)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_range(&self, r: pb::DeleteRangeRequest) -> Result<pb::DeleteRangeResponse> {
        mvcc::check_delete(&r)?;
        match self.propose(Request::DeleteRange(Pb(r))).await? {
            Response::DeleteRange(mut d) => {
                self.fill_header(&mut d.0.header);
                Ok(d.0)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn txn(&self, r: pb::TxnRequest) -> Result<pb::TxnResponse> {
        mvcc::check_txn(&r)?;
        if !mvcc::txn_has_writes(&r) {
            // Read-only: no raft entry, just a (linearizable unless every range is
            // serializable) local evaluation.
            let serializable = r.success.iter().chain(r.failure.iter()).all(|op| {
                matches!(&op.request, Some(pb::request_op::Request::RequestRange(rr)) if rr.serializable)
            });
            if !serializable {
                self.linearize().await?;
            }
            let mut resp = self.mvcc.txn_readonly(&r)?;
            self.fill_header(&mut resp.header);
            return Ok(resp);
        }
        match self.propose(Request::Txn(Pb(r))).await? {
            Response::Txn(mut t) => {
                self.fill_header(&mut t.0.header);
                Ok(t.0)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn compact(&self, revision: i64, physical: bool) -> Result<pb::CompactionResponse> {
        match self
            .propose(Request::Compact { revision, physical })
            .await?
        {
            Response::Compact { revision } => {
                if physical {
                    // Compaction is applied synchronously with its raft entry, so once this
                    // member applied it the old revisions are gone here. Make that durable.
                    self.mvcc.db().flush_wal(true)?;
                }
                Ok(pb::CompactionResponse {
                    header: Some(self.header(revision)),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    // ---------------------------------------------------------------- reads

    /// A linearizable point: after this returns, local reads see every write acknowledged
    /// before it was called.
    pub async fn linearize(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.reads.send(tx).map_err(|_| EtcdError::Stopped)?;
        let index = tokio::time::timeout(self.request_timeout, rx)
            .await
            .map_err(|_| EtcdError::Timeout)?
            .map_err(|_| EtcdError::Stopped)??;
        self.wait_applied(index).await
    }

    /// Waits until this member applied the log up to `index`.
    async fn wait_applied(&self, index: u64) -> Result<()> {
        if self.raft.metrics().borrow().last_applied.map(|l| l.index) >= Some(index) {
            return Ok(());
        }
        self.raft
            .wait(Some(self.request_timeout))
            .applied_index_at_least(Some(index), "apply")
            .await
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => EtcdError::Timeout,
                openraft::metrics::WaitError::ShuttingDown => EtcdError::Stopped,
            })?;
        Ok(())
    }

    /// Obtains a read index: from raft if leading, from the leader otherwise.
    async fn read_index_once(&self) -> Result<u64, EtcdError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        loop {
            match self.leader() {
                Some(l) if l == self.id => match self.raft.get_read_log_id().await {
                    Ok((read, _)) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {}
                    Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                        return Err(EtcdError::Timeout)
                    }
                    Err(RaftError::Fatal(_)) => return Err(EtcdError::Stopped),
                },
                Some(l) => match self.forward(l, Forward::ReadIndex).await {
                    Ok(ForwardReply::ReadIndex(i)) => return Ok(i.unwrap_or(0)),
                    Ok(_) => return Err(EtcdError::Internal("unexpected read index reply".into())),
                    Err(StoreError::Etcd(EtcdError::NotLeader)) | Err(StoreError::Peer { .. }) => {}
                    Err(StoreError::Etcd(e)) => return Err(e),
                    Err(e) => return Err(EtcdError::Internal(e.to_string())),
                },
                None => {}
            }
            if let Err(e) = self.wait_leader_change(deadline).await {
                return Err(match e {
                    StoreError::Etcd(e) => e,
                    other => EtcdError::Internal(other.to_string()),
                });
            }
        }
    }

    pub async fn range(&self, r: pb::RangeRequest) -> Result<pb::RangeResponse> {
        mvcc::check_range(&r)?;
        if !r.serializable {
            self.linearize().await?;
        }
        let mut resp = self.mvcc.range(&r)?;
        self.fill_header(&mut resp.header);
        Ok(resp)
    }

    // ---------------------------------------------------------------- leases

    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<pb::LeaseGrantResponse> {
        if ttl > mvcc::MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        let ttl = ttl.max(self.min_lease_ttl);
        let id = if id == 0 { self.new_lease_id() } else { id };
        match self.propose(Request::LeaseGrant { id, ttl }).await? {
            Response::LeaseGrant { id, ttl, revision } => {
                self.lessor.granted(id, ttl);
                Ok(pb::LeaseGrantResponse {
                    header: Some(self.header(revision)),
                    id,
                    ttl,
                    error: String::new(),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    fn new_lease_id(&self) -> i64 {
        use rand::Rng;
        let st = self.mvcc.read();
        let mut rng = rand::thread_rng();
        loop {
            // Positive, nonzero, and printed by etcdctl as 16 hex digits like etcd's.
            let id: i64 = rng.gen_range(0x0100_0000_0000_0000..i64::MAX);
            if !st.leases.contains_key(&id) {
                return id;
            }
        }
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<pb::LeaseRevokeResponse> {
        match self.propose(Request::LeaseRevoke { id }).await? {
            Response::LeaseRevoke { revision } => Ok(pb::LeaseRevokeResponse {
                header: Some(self.header(revision)),
            }),
            other => Err(unexpected(other)),
        }
    }

    // ---------------------------------------------------------------- auth

    /// Proposes a change to users, roles or whether authentication is on.
    pub async fn auth_change(&self, r: crate::auth::AuthRequest) -> Result<pb::ResponseHeader> {
        match self.propose(Request::Auth(r)).await? {
            Response::Auth { revision, .. } => Ok(self.header(revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Reads the applied state once this member has applied everything committed before the
    /// call (a linearizable read of users and roles, as etcd's go through raft).
    pub async fn auth_read<T>(&self, f: impl FnOnce(&mvcc::KvState) -> T) -> Result<T> {
        self.linearize().await?;
        Ok(self.with_state(f))
    }

    /// Runs `f` on the applied state under its read lock (no waiting: for permission checks).
    pub fn with_state<T>(&self, f: impl FnOnce(&mvcc::KvState) -> T) -> T {
        f(&self.mvcc.read())
    }

    /// Renews a lease on the leader. Returns the TTL, or 0 if the lease does not exist (etcd's
    /// keep-alive answer for an unknown lease).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        match self.leader_op(Forward::LeaseKeepAlive { id }).await? {
            ForwardReply::KeepAlive { ttl } => Ok(ttl),
            other => Err(EtcdError::Internal(format!("unexpected reply {other:?}")).into()),
        }
    }

    /// etcd's TimeToLive: remaining TTL from the leader, -1 if the lease is gone.
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<pb::LeaseTimeToLiveResponse> {
        match self.leader_op(Forward::LeaseTimeToLive { id }).await? {
            ForwardReply::TimeToLive {
                ttl,
                granted_ttl,
                keys: ks,
            } => Ok(pb::LeaseTimeToLiveResponse {
                header: Some(self.header(0)),
                id,
                ttl,
                granted_ttl,
                keys: if keys { ks } else { Vec::new() },
            }),
            other => Err(EtcdError::Internal(format!("unexpected reply {other:?}")).into()),
        }
    }

    /// Granted leases, soonest to expire first (as etcd lists them; a follower, which keeps
    /// no deadlines, lists them by ID).
    pub fn lease_leases(&self) -> pb::LeaseLeasesResponse {
        let st = self.mvcc.read();
        let mut ids: Vec<(Option<Instant>, i64)> = st
            .leases
            .keys()
            .map(|id| (self.lessor.deadline(*id), *id))
            .collect();
        ids.sort();
        pb::LeaseLeasesResponse {
            header: Some(self.header(st.current_rev)),
            leases: ids
                .into_iter()
                .map(|(_, id)| pb::LeaseStatus { id })
                .collect(),
        }
    }

    /// Runs a leader-only operation here if leading, else on the leader.
    async fn leader_op(&self, f: Forward) -> Result<ForwardReply> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        loop {
            match self.leader() {
                Some(l) if l == self.id => match self.leader_local(f.clone()).await {
                    Err(EtcdError::NotLeader) => {}
                    r => return r.map_err(Into::into),
                },
                Some(l) => match self.forward(l, f.clone()).await {
                    Err(StoreError::Etcd(EtcdError::NotLeader)) | Err(StoreError::Peer { .. }) => {}
                    r => return r,
                },
                None => {}
            }
            self.wait_leader_change(deadline).await?;
        }
    }

    /// A forwarded (or local) leader-only operation, run here.
    async fn leader_local(&self, f: Forward) -> Result<ForwardReply, EtcdError> {
        let must_lead = !matches!(
            f,
            Forward::Join { .. } | Forward::TimeoutNow { .. } | Forward::PauseElection { .. }
        );
        if must_lead && !self.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        match f {
            Forward::Write(req) => self
                .submit(req)
                .await
                .map(|(r, index)| ForwardReply::Write(r, index)),
            Forward::ReadIndex => {
                let (tx, rx) = oneshot::channel();
                self.reads.send(tx).map_err(|_| EtcdError::Stopped)?;
                let i = rx.await.map_err(|_| EtcdError::Stopped)??;
                Ok(ForwardReply::ReadIndex(Some(i)))
            }
            Forward::LeaseKeepAlive { id } => {
                self.ensure_primary_lessor();
                let ttl = self.mvcc.read().leases.get(&id).map(|l| l.ttl);
                let ttl = match ttl {
                    Some(ttl) => self.lessor.renew(id, ttl).unwrap_or(0),
                    None => 0,
                };
                Ok(ForwardReply::KeepAlive { ttl })
            }
            Forward::LeaseTimeToLive { id } => {
                self.ensure_primary_lessor();
                let st = self.mvcc.read();
                match (st.leases.get(&id), self.lessor.remaining(id)) {
                    (Some(l), Some(rem)) => Ok(ForwardReply::TimeToLive {
                        ttl: rem,
                        granted_ttl: l.ttl,
                        keys: l.keys.iter().cloned().collect(),
                    }),
                    (Some(l), None) => Ok(ForwardReply::TimeToLive {
                        ttl: l.ttl,
                        granted_ttl: l.ttl,
                        keys: l.keys.iter().cloned().collect(),
                    }),
                    (None, _) => Ok(ForwardReply::TimeToLive {
                        ttl: -1,
                        granted_ttl: 0,
                        keys: Vec::new(),
                    }),
                }
            }
            Forward::Membership(op) => self.change_membership_local(op).await,
            Forward::Join { peer_urls } => {
                let m = self.metrics();
                let found = m
                    .membership_config
                    .membership()
                    .nodes()
                    .find(|(_, n)| n.peer_urls.iter().any(|u| peer_urls.contains(u)))
                    .map(|(id, _)| *id);
                match found {
                    Some(member_id) => Ok(ForwardReply::Joined {
                        cluster_id: self.cluster_id,
                        member_id,
                    }),
                    None => Err(EtcdError::MemberNotFound),
                }
            }
            Forward::TimeoutNow { millis } => {
                crate::transfer::campaign(self, Duration::from_millis(millis)).await?;
                Ok(ForwardReply::Done)
            }
            Forward::PauseElection { millis } => {
                crate::transfer::pause_election(self, Duration::from_millis(millis));
                Ok(ForwardReply::Done)
            }
        }
    }

    /// A new leader takes over lease deadlines at once, not at the next lease tick.
    fn ensure_primary_lessor(&self) {
        if !self.lessor.is_primary() {
            let leases = self.mvcc.read().leases.clone();
            self.lessor.promote(&leases);
        }
    }

    async fn handle_peer(self: Arc<Self>, _from: NodeId, req: PeerRequest) -> PeerReply {
        match req {
            PeerRequest::AppendEntries(r) => {
                PeerReply::AppendEntries(self.raft.append_entries(r).await)
            }
            PeerRequest::Vote(r) => PeerReply::Vote(self.raft.vote(r).await),
            PeerRequest::InstallSnapshot(r) => {
                PeerReply::InstallSnapshot(self.raft.install_snapshot(r).await)
            }
            PeerRequest::Forward(f) => PeerReply::Forward(self.leader_local(f).await),
        }
    }

    // ---------------------------------------------------------------- cluster

    /// Members sorted by ID, as etcd lists them.
    pub fn member_list(&self) -> Vec<pb::Member> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut out: Vec<pb::Member> = membership
            .nodes()
            .map(|(id, n)| pb::Member {
                id: *id,
                name: n.name.clone(),
                peer_ur_ls: n.peer_urls.clone(),
                client_ur_ls: n.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    pub async fn member_add(&self, peer_urls: Vec<String>, learner: bool) -> Result<pb::Member> {
        if peer_urls.is_empty() {
            return Err(EtcdError::MemberBadUrls.into());
        }
        let mut urls = Vec::new();
        for u in &peer_urls {
            let parsed =
                crate::config::parse_urls("peer URL", u).map_err(|_| EtcdError::MemberBadUrls)?;
            urls.extend(parsed.iter().map(url_string));
        }
        self.linearize().await?;
        for m in self.member_list() {
            if m.peer_ur_ls.iter().any(|u| urls.contains(u)) {
                return Err(EtcdError::PeerUrlExist.into());
            }
        }
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let id = compute_member_id(&urls, &self.config.initial_cluster_token, Some(salt));
        let member = Member {
            name: String::new(),
            peer_urls: urls.clone(),
            client_urls: Vec::new(),
        };
        self.membership(MembershipOp::Add {
            id,
            member,
            learner,
        })
        .await?;
        Ok(pb::Member {
            id,
            name: String::new(),
            peer_ur_ls: urls,
            client_ur_ls: Vec::new(),
            is_learner: learner,
        })
    }

    pub async fn member_remove(&self, id: NodeId) -> Result<()> {
        // Check against the committed membership, not a follower's possibly older view (a
        // member just added through another member must be found).
        self.linearize().await?;
        if !self.member_list().iter().any(|m| m.id == id) {
            return Err(EtcdError::MemberNotFound.into());
        }
        self.membership(MembershipOp::Remove { id }).await
    }

    pub async fn member_update(&self, id: NodeId, peer_urls: Vec<String>) -> Result<()> {
        self.linearize().await?;
        let mut member = self.member_of(id).ok_or(EtcdError::MemberNotFound)?;
        let mut urls = Vec::new();
        for u in &peer_urls {
            let parsed =
                crate::config::parse_urls("peer URL", u).map_err(|_| EtcdError::MemberBadUrls)?;
            urls.extend(parsed.iter().map(url_string));
        }
        if urls.is_empty() {
            return Err(EtcdError::MemberBadUrls.into());
        }
        for m in self.member_list() {
            if m.id != id && m.peer_ur_ls.iter().any(|u| urls.contains(u)) {
                return Err(EtcdError::PeerUrlExist.into());
            }
        }
        member.peer_urls = urls;
        self.membership(MembershipOp::Update { id, member }).await
    }

    pub async fn member_promote(&self, id: NodeId) -> Result<()> {
        self.linearize().await?;
        let list = self.member_list();
        let m = list
            .iter()
            .find(|m| m.id == id)
            .ok_or(EtcdError::MemberNotFound)?;
        if !m.is_learner {
            return Err(EtcdError::MemberNotLearner.into());
        }
        self.membership(MembershipOp::Promote { id }).await
    }

    async fn membership(&self, op: MembershipOp) -> Result<()> {
        // A member removing itself never receives the configuration without it.
        let removes_self = op == MembershipOp::Remove { id: self.id };
        match self.leader_op(Forward::Membership(op)).await? {
            ForwardReply::Membership { .. } if removes_self => Ok(()),
            // Answer with the new membership in place here too (etcd waits for its own apply).
            ForwardReply::Membership { index } => self.wait_applied(index).await,
            other => Err(EtcdError::Internal(format!("unexpected reply {other:?}")).into()),
        }
    }

    /// Runs a membership change on the leader. One change at a time, as etcd serializes
    /// them: a change asked for while another is still being committed (a new cluster's first
    /// configuration, two servers joining at once) waits for it, up to the request timeout,
    /// and then fails with `unhealthy cluster`.
    async fn change_membership_local(&self, op: MembershipOp) -> Result<ForwardReply, EtcdError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            match self.change_membership_once(op.clone()).await {
                Err(EtcdError::Unhealthy) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// A member restored from a snapshot file holds key-value data that no log entry carries:
    /// its log starts with the restored membership at index 0. A member added later would
    /// replay that log and miss the data, so before the first addition the leader compacts
    /// its log into a raft snapshot and purges it; newcomers then install the snapshot.
    async fn purge_restored_log(&self) -> Result<(), EtcdError> {
        use std::sync::atomic::Ordering;
        if !self.restored_unpurged.load(Ordering::Acquire) {
            return Ok(());
        }
        let fatal = |e: openraft::error::Fatal<NodeId>| match e {
            openraft::error::Fatal::Stopped => EtcdError::Stopped,
            other => EtcdError::Internal(format!("raft: {other}")),
        };
        let waited = |what: &str, e: openraft::metrics::WaitError| {
            tracing::warn!("{what}: {e}");
            EtcdError::Unhealthy
        };
        if self.metrics().purged.is_none() {
            let m = self.metrics();
            if m.snapshot.is_none() {
                self.raft.trigger().snapshot().await.map_err(fatal)?;
            }
            let m = self
                .raft
                .wait(Some(self.request_timeout))
                .metrics(
                    |m| m.snapshot.is_some(),
                    "a raft snapshot of the restored data",
                )
                .await
                .map_err(|e| waited("building a snapshot of the restored data", e))?;
            // Everything up to the snapshot (which covers entry 0) goes.
            let upto = m.snapshot.map_or(0, |s| s.index);
            self.raft.trigger().purge_log(upto).await.map_err(fatal)?;
            self.raft
                .wait(Some(self.request_timeout))
                .metrics(|m| m.purged.is_some(), "the restored log purged")
                .await
                .map_err(|e| waited("purging the restored log", e))?;
        }
        let db = self.mvcc.db();
        let meta = db::cf(db, CF_RAFT_META).map_err(|e| EtcdError::Internal(e.to_string()))?;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        db.delete_cf_opt(meta, KEY_RESTORED, &wo)
            .map_err(|e| EtcdError::Internal(format!("clearing the restore marker: {e}")))?;
        self.restored_unpurged.store(false, Ordering::Release);
        tracing::info!("compacted the restored log into a raft snapshot before adding a member");
        Ok(())
    }

    async fn change_membership_once(&self, op: MembershipOp) -> Result<ForwardReply, EtcdError> {
        let map_err = |e: RaftError<NodeId, ClientWriteError<NodeId, Member>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => EtcdError::NotLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                openraft::error::ChangeMembershipError::InProgress(_),
            )) => EtcdError::Unhealthy,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                EtcdError::Internal(format!("membership change: {c}"))
            }
            RaftError::Fatal(_) => EtcdError::Stopped,
        };
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let index = match op {
            MembershipOp::Add {
                id,
                member,
                learner,
            } => {
                if membership.get_node(&id).is_some() {
                    return Err(EtcdError::MemberExist);
                }
                self.purge_restored_log().await?;
                let added = self
                    .raft
                    .add_learner(id, member, false)
                    .await
                    .map_err(map_err)?;
                if learner {
                    added.log_id.index
                } else {
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(map_err)?
                        .log_id
                        .index
                }
            }
            MembershipOp::Remove { id } => {
                let change = if voters.contains(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(map_err)?
                    .log_id
                    .index
            }
            MembershipOp::Update { id, member } => {
                if membership.get_node(&id).is_none() {
                    return Err(EtcdError::MemberNotFound);
                }
                self.raft
                    .change_membership(
                        ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                        false,
                    )
                    .await
                    .map_err(map_err)?
                    .log_id
                    .index
            }
            MembershipOp::Promote { id } => {
                if voters.contains(&id) {
                    return Err(EtcdError::MemberNotLearner);
                }
                // etcd only promotes a learner whose log is within 10% of the leader's.
                let last = m.last_log_index.unwrap_or(0);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index)
                    .unwrap_or(0);
                if (matched as f64) < (last as f64) * 0.9 {
                    return Err(EtcdError::LearnerNotReady);
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(map_err)?
                    .log_id
                    .index
            }
        };
        Ok(ForwardReply::Membership { index })
    }

    // ---------------------------------------------------------------- maintenance

    pub fn status(&self) -> pb::StatusResponse {
        let m = self.metrics();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let alarms = self.mvcc.read().alarms.clone();
        pb::StatusResponse {
            header: Some(self.header(0)),
            version: ETCD_VERSION.to_string(),
            db_size: db::size_bytes(self.mvcc.db()) as i64,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            errors: alarms
                .iter()
                .map(|(member, kind)| format!("memberID:{member} alarm:{} ", alarm_name(*kind)))
                .collect(),
            db_size_in_use: db::size_in_use_bytes(self.mvcc.db()) as i64,
            is_learner: !voters.contains(&self.id),
        }
    }

    pub fn alarms(&self) -> Vec<pb::AlarmMember> {
        self.mvcc
            .read()
            .alarms
            .iter()
            .map(|(member, kind)| pb::AlarmMember {
                member_id: *member,
                alarm: kind.to_pb(),
            })
            .collect()
    }

    /// Raises or clears an alarm through raft; returns the alarms that were changed.
    pub async fn alarm_set(
        &self,
        activate: bool,
        member: NodeId,
        kind: AlarmKind,
    ) -> Result<Vec<pb::AlarmMember>> {
        let had = self.mvcc.read().alarms.contains(&(member, kind));
        if !activate && !had {
            return Ok(Vec::new());
        }
        match self
            .propose(Request::Alarm {
                activate,
                member,
                kind,
            })
            .await?
        {
            Response::Alarm { .. } => Ok(vec![pb::AlarmMember {
                member_id: member,
                alarm: kind.to_pb(),
            }]),
            other => Err(unexpected(other)),
        }
    }

    /// Compacts the storage files (etcd's defragment).
    pub async fn defragment(&self) -> Result<()> {
        let db = self.mvcc.db().clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            db.flush_wal(true)?;
            for name in db::SM_CFS {
                let cf = db::cf(&db, name)?;
                db.flush_cf(cf)?;
                let mut opts = rocksdb::CompactOptions::default();
                opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Raft(format!("defragment task: {e}")))?
    }

    /// Hash of every stored key-value revision.
    pub fn hash(&self) -> Result<u32> {
        Ok(self.mvcc.hash_kv(0)?.0)
    }

    pub fn hash_kv(&self, rev: i64) -> Result<pb::HashKvResponse> {
        let (hash, cur, compact) = self.mvcc.hash_kv(rev)?;
        Ok(pb::HashKvResponse {
            header: Some(self.header(cur)),
            hash,
            compact_revision: compact,
            hash_revision: if rev == 0 { cur } else { rev },
        })
    }

    /// A consistent point-in-time copy of the store (see `mvcc::snapshot`).
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        let mvcc = self.mvcc.clone();
        tokio::task::spawn_blocking(move || mvcc.snapshot().map(|(_, d)| d))
            .await
            .map_err(|e| StoreError::Raft(format!("snapshot task: {e}")))?
    }

    /// Hands leadership to `target` (etcd's MoveLeader). Must run on the leader.
    pub async fn move_leader(&self, target: NodeId) -> Result<()> {
        if !self.is_leader() {
            return Err(EtcdError::NotLeader.into());
        }
        let list = self.member_list();
        let Some(t) = list.iter().find(|m| m.id == target) else {
            return Err(EtcdError::BadLeaderTransferee.into());
        };
        if t.is_learner {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        if target == self.id {
            return Ok(());
        }
        crate::transfer::transfer_leadership(self, target).await
    }

    /// Sends a forwarded operation to a specific member.
    pub(crate) async fn forward_to(&self, to: NodeId, f: Forward) -> Result<ForwardReply> {
        self.forward(to, f).await
    }
}

/// openraft's `election_timeout_{min,max}` for an etcd-style `--election-timeout` of `et` ms.
///
/// etcd's follower campaigns after a randomized `[et, 2·et)` without a heartbeat and refuses
/// votes for `et` after its last one (check-quorum). openraft 0.9 works differently: a follower
/// that knows a leader waits `leader_lease + t` before it campaigns, where `leader_lease` is
/// `election_timeout_max` and `t` is drawn once per node from `[min, max)`, and it refuses
/// votes until `leader_lease` has passed. Passing `[et, 2·et)` through unchanged made a
/// follower wait 3–4 election timeouts, so failover took over 3 s at etcd's defaults.
///
/// With `[0.35·et, 0.65·et)` a follower campaigns after `[1.0·et, 1.3·et)` of silence and its
/// vote lease (`0.65·et`) has expired by the time any peer campaigns, so the first election
/// after a leader dies normally succeeds. openraft looks at the timer on a tick every
/// 1.5 heartbeats, which adds up to another 150 ms at the defaults; with `[0.3·et, 0.7·et)`
/// the slowest of 20 failovers took 1.49–1.52 s. The 0.3·et spread between two survivors
/// keeps split votes rare. A candidate whose election failed retries after its own `t`.
/// `StoreConfig::validate` keeps `et ≥ 5·heartbeat`, so the minimum stays above the
/// heartbeat interval as openraft requires.
fn openraft_election_bounds(et: u64) -> (u64, u64) {
    let min = (et * 35 / 100).max(2);
    // `min + max = et` exactly, whatever the rounding.
    let max = et.saturating_sub(min).max(min + 1);
    (min, max)
}

/// Counters behind [`StoreNode::leader_changes`] and the proposal metrics.
#[derive(Default)]
struct Counters {
    leader_changes: std::sync::atomic::AtomicU64,
    pending: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

/// Counts the leaders this member learns of (etcd's `leader_changes_seen_total`).
async fn count_leader_changes(node: Weak<StoreNode>) {
    let Some(mut rx) = node.upgrade().map(|n| n.raft.metrics()) else {
        return;
    };
    let mut last = None;
    loop {
        let now = rx.borrow_and_update().current_leader;
        if now.is_some() && now != last {
            let Some(n) = node.upgrade() else { return };
            n.counters
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            last = now;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn alarm_name(k: AlarmKind) -> &'static str {
    match k {
        AlarmKind::NoSpace => "NOSPACE",
        AlarmKind::Corrupt => "CORRUPT",
    }
}

fn unexpected(r: Response) -> StoreError {
    EtcdError::Internal(format!("unexpected state machine response {r:?}")).into()
}

/// Finds out, from any founding member, which member we are in an existing cluster.
async fn join_existing(
    config: &StoreConfig,
    transport: &Arc<dyn PeerTransport>,
) -> Result<Identity> {
    let mine = config.advertise_peer_strings();
    let others: Vec<Vec<String>> = config
        .initial_cluster
        .iter()
        .map(|(_, urls)| urls.iter().map(url_string).collect::<Vec<_>>())
        .filter(|urls: &Vec<String>| !urls.iter().any(|u| mine.contains(u)))
        .collect();
    if others.is_empty() {
        return Err(StoreError::config(
            "--initial-cluster-state=existing needs at least one other member in --initial-cluster",
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        for urls in &others {
            let t = Target {
                id: None,
                urls: urls.clone(),
            };
            let req = PeerRequest::Forward(Forward::Join {
                peer_urls: mine.clone(),
            });
            match transport.call(t, req, Duration::from_secs(3)).await {
                Ok(PeerReply::Forward(Ok(ForwardReply::Joined {
                    cluster_id,
                    member_id,
                }))) => {
                    return Ok(Identity {
                        name: config.name.clone(),
                        member_id,
                        cluster_id,
                        cluster_token: config.initial_cluster_token.clone(),
                    })
                }
                Ok(PeerReply::Forward(Err(EtcdError::MemberNotFound))) => {
                    return Err(StoreError::config(format!(
                        "this member's peer URLs {} are not in the cluster: add it first with `member add`",
                        mine.join(",")
                    )))
                }
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(StoreError::config(format!(
        "could not reach any member of --initial-cluster to join: {last}"
    )))
}

/// Keeps proposals paused while alive.
pub(crate) struct ProposalPause<'a>(&'a tokio::sync::watch::Sender<bool>);

impl Drop for ProposalPause<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// A request waiting to be proposed, and where its response goes.
struct Proposal {
    req: Request,
    tx: oneshot::Sender<Result<(Response, u64), EtcdError>>,
}

/// Most requests in one log entry.
const MAX_BATCH: usize = 1024;
/// Most request bytes in one log entry (a single larger request still goes alone).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Log entries proposed and not yet answered. While they are in flight, new requests gather
/// into the next batch: openraft 0.9 syncs the log once per proposed entry, so batching is what
/// lets many writers share one fsync (group commit).
const PROPOSALS_IN_FLIGHT: usize = 2;

fn request_bytes(r: &Request) -> usize {
    match r {
        Request::Put(p) => prost::Message::encoded_len(&p.0),
        Request::DeleteRange(d) => prost::Message::encoded_len(&d.0),
        Request::Txn(t) => prost::Message::encoded_len(&t.0),
        _ => 64,
    }
}

async fn proposer_loop(
    raft: Raft,
    mut rx: mpsc::UnboundedReceiver<Proposal>,
    transferring: tokio::sync::watch::Receiver<bool>,
    proposing: Arc<tokio::sync::RwLock<()>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(PROPOSALS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = request_bytes(&first.req);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += request_bytes(&p.req);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let mut transferring = transferring.clone();
        let proposing = proposing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // During a leadership transfer the leader must go quiet (etcd drops proposals
            // then); these wait, and afterwards find out whether this member still leads.
            // The gate is checked again under the shared lock, which the transfer takes
            // exclusively after closing the gate: a proposal is either seen by it or held back.
            let _in_flight = loop {
                let _ = transferring.wait_for(|t| !*t).await;
                let guard = proposing.clone().read_owned().await;
                if !*transferring.borrow() {
                    break guard;
                }
            };
            let (mut reqs, txs): (Vec<Request>, Vec<_>) =
                batch.into_iter().map(|p| (p.req, p.tx)).unzip();
            let single = reqs.len() == 1;
            let entry = match reqs.pop() {
                Some(r) if single => r,
                Some(r) => {
                    reqs.push(r);
                    Request::Batch(reqs)
                }
                None => return,
            };
            type Tx = oneshot::Sender<Result<(Response, u64), EtcdError>>;
            let fail = |txs: Vec<Tx>, e: EtcdError| {
                for tx in txs {
                    let _ = tx.send(Err(e.clone()));
                }
            };
            match raft.client_write(entry).await {
                Ok(r) => match r.data {
                    Response::Batch(resps) if !single && resps.len() == txs.len() => {
                        for (tx, resp) in txs.into_iter().zip(resps) {
                            let _ = tx.send(Ok((resp, r.log_id.index)));
                        }
                    }
                    resp if single => {
                        if let Some(tx) = txs.into_iter().next() {
                            let _ = tx.send(Ok((resp, r.log_id.index)));
                        }
                    }
                    other => fail(
                        txs,
                        EtcdError::Internal(format!("batch answered with {other:?}")),
                    ),
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    fail(txs, EtcdError::NotLeader)
                }
                Err(RaftError::APIError(e)) => fail(txs, EtcdError::Internal(e.to_string())),
                Err(RaftError::Fatal(_)) => fail(txs, EtcdError::Stopped),
            }
        });
    }
}

/// Read-index rounds in flight at once. While they run, new readers gather into the next
/// batch, so a reader waits for at most the round in progress plus its own, and a slow round
/// (a follower's answer delayed) does not hold every later reader up behind it.
const READ_ROUNDS_IN_FLIGHT: usize = 2;

/// Serves read-index requests, one raft round for every batch of waiting readers.
async fn read_index_loop(
    node: Weak<StoreNode>,
    mut rx: mpsc::UnboundedReceiver<oneshot::Sender<Result<u64, EtcdError>>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(READ_ROUNDS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // Everyone who arrived while we waited for a slot joins this round: their requests
        // all came in before the round starts, so its read index covers them.
        let mut waiting = vec![first];
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
        }
        let Some(n) = node.upgrade() else { return };
        n.read_rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let _permit = permit;
            let r = n.read_index_once().await;
            drop(n);
            for w in waiting {
                let _ = w.send(r.clone());
            }
        });
    }
}

/// Leader-side lease work: promotion/demotion, expiry and revocation.
async fn lease_loop(node: Weak<StoreNode>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(n) = node.upgrade() else { return };
        if *n.shutdown.borrow() {
            return;
        }
        let leading = n.is_leader();
        if leading && !n.lessor.is_primary() {
            let leases = n.mvcc.read().leases.clone();
            n.lessor.promote(&leases);
        } else if !leading && n.lessor.is_primary() {
            n.lessor.demote();
        }
        if !leading {
            continue;
        }
        {
            let st = n.mvcc.read();
            n.lessor.sync(&st.leases);
        }
        for id in n.lessor.expired().into_iter().take(500) {
            match n.propose(Request::LeaseRevoke { id }).await {
                Ok(_) | Err(StoreError::Etcd(EtcdError::LeaseNotFound)) => {}
                Err(e) => {
                    tracing::warn!(lease = %format!("{id:016x}"), error = %e, "revoking expired lease");
                    break;
                }
            }
        }
    }
}

/// Stops a member that was removed from the cluster (etcd does the same): once the cluster's
/// membership no longer lists it, it could only disrupt the others.
async fn removal_watch(node: Weak<StoreNode>) {
    // A member being added may briefly see a membership that does not list it yet (a
    // snapshot older than its addition), so the absence must persist before we act.
    const GRACE: Duration = Duration::from_secs(3);
    let mut missing_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(n) = node.upgrade() else { return };
        if *n.shutdown.borrow() {
            return;
        }
        let m = n.metrics();
        let membership = m.membership_config.membership();
        // While a removal is in flight the joint configuration still lists the member in its
        // old half, and the leader may stop replicating to it before it sees the final one:
        // what counts is the newest configuration.
        let in_newest = membership
            .get_joint_config()
            .last()
            .is_some_and(|c| c.contains(&n.id));
        let listed = in_newest || membership.learner_ids().any(|l| l == n.id);
        let known = membership.nodes().next().is_some();
        if listed || !known {
            missing_since = None;
            continue;
        }
        let since = *missing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= GRACE {
            tracing::error!(
                member = %format!("{:x}", n.id),
                "the member has been permanently removed from the cluster; stopping"
            );
            n.shutdown().await;
            return;
        }
    }
}

/// Publishes this member's name and client URLs into the membership (etcd does the same when a
/// member starts), so `member list` shows them.
async fn publish_attributes(node: Weak<StoreNode>) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
        let Some(n) = node.upgrade() else { return };
        if *n.shutdown.borrow() {
            return;
        }
        if n.leader().is_none() {
            continue;
        }
        let Some(current) = n.member_of(n.id) else {
            continue;
        };
        let want = Member {
            name: n.config.name.clone(),
            peer_urls: current.peer_urls.clone(),
            client_urls: n.config.advertise_client_strings(),
        };
        if current == want {
            n.published.send_replace(true);
            return;
        }
        match n
            .membership(MembershipOp::Update {
                id: n.id,
                member: want,
            })
            .await
        {
            Ok(()) => {
                tracing::info!(name = %n.config.name, "published member attributes");
                n.published.send_replace(true);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "publishing member attributes; will retry"),
        }
    }
}

/// Leader-side automatic compaction (etcd's `--auto-compaction-*`).
async fn auto_compact_loop(node: Weak<StoreNode>) {
    // etcd's compactors. Periodic: sample the revision every retention/10 (the retention
    // capped at an hour), and, after a first whole retention, compact once per retention (at
    // most once an hour) to the newest revision seen at least one retention ago. Revision:
    // every 5 minutes, keep the last N revisions.
    let Some((mode, revision_interval)) = node.upgrade().map(|n| {
        (
            n.config.auto_compaction.clone(),
            n.config.revision_compaction_interval,
        )
    }) else {
        return;
    };
    let interval = match &mode {
        AutoCompaction::Periodic(d) => {
            ((*d).min(Duration::from_secs(3600)) / 10).max(Duration::from_millis(10))
        }
        AutoCompaction::Revision(_) => revision_interval.max(Duration::from_millis(10)),
        AutoCompaction::Off => return,
    };
    let mut samples: std::collections::VecDeque<(Instant, i64)> = Default::default();
    let started = Instant::now();
    let mut last_success: Option<Instant> = None;
    let mut last_target = 0;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let Some(n) = node.upgrade() else { return };
        if *n.shutdown.borrow() {
            return;
        }
        let now = Instant::now();
        let cur = n.mvcc.current_rev();
        let target = match &mode {
            AutoCompaction::Periodic(d) => {
                samples.push_back((now, cur));
                let mut old_enough = None;
                while let Some((at, rev)) = samples.front().copied() {
                    if now.duration_since(at) < *d {
                        break;
                    }
                    old_enough = Some(rev);
                    // Keep the newest old-enough sample for the next round.
                    if samples
                        .get(1)
                        .is_some_and(|(at1, _)| now.duration_since(*at1) >= *d)
                    {
                        samples.pop_front();
                    } else {
                        break;
                    }
                }
                let every = match last_success {
                    None => *d,
                    Some(_) => (*d).min(Duration::from_secs(3600)),
                };
                if last_success.unwrap_or(started).elapsed() < every {
                    None
                } else {
                    old_enough
                }
            }
            AutoCompaction::Revision(keep) => Some(cur - keep),
            AutoCompaction::Off => None,
        };
        if !n.is_leader() {
            continue;
        }
        let Some(rev) = target else { continue };
        if rev <= 0 || rev == last_target || rev <= n.mvcc.compact_rev() {
            continue;
        }
        match n.compact(rev, false).await {
            Ok(_) | Err(StoreError::Etcd(EtcdError::Compacted)) => {
                tracing::info!(revision = rev, "auto-compacted");
                last_success = Some(Instant::now());
                last_target = rev;
            }
            Err(e) => {
                tracing::warn!(error = %e, revision = rev, "auto-compaction failed; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::openraft_election_bounds;

    /// A follower that knew a leader campaigns after `lease + t` (`lease` = max, `t` in
    /// `[min, max)`) and refuses votes for `lease`: the campaign must start no earlier than
    /// etcd's `et` and the peers' vote leases must be over by then.
    #[test]
    fn election_bounds_campaign_after_one_timeout_and_outlast_the_vote_lease() {
        for et in [50u64, 100, 300, 1000, 2500, 10_000] {
            let (min, max) = openraft_election_bounds(et);
            assert!(min < max, "et {et}: {min}..{max}");
            let heartbeat = et / 5;
            assert!(
                min > heartbeat,
                "et {et}: min {min} must exceed heartbeat {heartbeat}"
            );
            let (earliest, latest) = (max + min, max + max);
            assert!(
                earliest >= et,
                "et {et}: campaign at {earliest} before {et}"
            );
            assert!(
                latest <= et * 13 / 10 + 1,
                "et {et}: campaign as late as {latest}"
            );
            assert!(
                max < earliest,
                "et {et}: vote lease {max} outlasts the earliest campaign"
            );
        }
    }
}
