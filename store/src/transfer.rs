//! Leadership transfer (etcd's MoveLeader) on openraft 0.9, which has no transfer primitive.
//!
//! Followers that heard from a leader recently refuse to vote (openraft's leader lease), so the
//! leader first makes sure the target has its whole log, then stops sending heartbeats and
//! campaigning, asks the other voters to hold off their own elections, and tells the target to
//! campaign until the leases run out and it wins.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::{EtcdError, Result};
use crate::network::Forward;
use crate::node::StoreNode;
use crate::types::NodeId;

pub(crate) async fn transfer_leadership(node: &StoreNode, target: NodeId) -> Result<()> {
    let et = node.config.election_timeout;
    // The followers' leader lease (openraft's election timeout upper bound, 0.7 of the
    // election timeout: see `openraft_election_bounds`) has to run out before anyone grants a
    // vote, and every round costs two vote fsyncs, so leave room for several rounds.
    let window = et * 6;
    // No new proposals from here on (etcd's raft drops them while a transfer is pending), so
    // the target can catch up even under a steady stream of writes; they resume afterwards.
    let _paused = match tokio::time::timeout(et * 2, node.pause_proposals()).await {
        Ok(p) => p,
        Err(_) => return Err(EtcdError::LeaderTransferTimeout.into()),
    };
    // 1. The target must hold everything we have.
    let caught_up = node
        .raft()
        .wait(Some(et * 2))
        .metrics(
            |m| {
                let last = m.last_log_index.unwrap_or(0);
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .is_some_and(|l| l.index >= last)
            },
            "leader transfer: target catches up",
        )
        .await;
    if caught_up.is_err() {
        return Err(EtcdError::LeaderTransferTimeout.into());
    }
    // 2. Go quiet (no heartbeats), and keep the others from campaigning.
    let rc = node.raft().runtime_config();
    rc.heartbeat(false);
    rc.elect(false);
    let voters: BTreeSet<NodeId> = node
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let millis = window.as_millis() as u64;
    for v in voters
        .iter()
        .copied()
        .filter(|v| *v != node.id && *v != target)
    {
        if let Err(e) = node.forward_to(v, Forward::PauseElection { millis }).await {
            tracing::debug!(member = %format!("{v:x}"), error = %e, "pausing elections");
        }
    }
    // 3. The target campaigns until it wins.
    let r = node
        .forward_to(target, Forward::TimeoutNow { millis })
        .await;
    rc.heartbeat(true);
    rc.elect(true);
    if let Err(e) = r {
        tracing::warn!(error = %e, "leader transfer: target did not take over");
    }
    let done = node
        .raft()
        .wait(Some(et * 2))
        .metrics(|m| m.current_leader == Some(target), "leader transfer")
        .await;
    match done {
        Ok(_) => Ok(()),
        Err(_) => Err(EtcdError::LeaderTransferTimeout.into()),
    }
}

/// Campaigns until this member leads or `window` passes.
///
/// Every campaign bumps the term, and a vote granted for an older term is thrown away, so a new
/// round starts only after the last one had time to finish: the voters persist their vote before
/// they answer, which takes a while on a busy disk.
pub(crate) async fn campaign(node: &StoreNode, window: Duration) -> Result<(), EtcdError> {
    let deadline = tokio::time::Instant::now() + window;
    let round = (node.config.election_timeout / 2).max(node.config.heartbeat_interval * 2);
    let me = node.id;
    while tokio::time::Instant::now() < deadline {
        if node.is_leader() {
            return Ok(());
        }
        if node.raft().trigger().elect().await.is_err() {
            return Err(EtcdError::Stopped);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let won = node
            .raft()
            .wait(Some(round.min(left)))
            .metrics(|m| m.current_leader == Some(me), "campaign round")
            .await;
        if won.is_ok() && node.is_leader() {
            return Ok(());
        }
    }
    if node.is_leader() {
        Ok(())
    } else {
        Err(EtcdError::LeaderTransferTimeout)
    }
}

/// Holds off this member's own elections for `window`.
pub(crate) fn pause_election(node: &StoreNode, window: Duration) {
    let raft = node.raft().clone();
    raft.runtime_config().elect(false);
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        raft.runtime_config().elect(true);
    });
}
