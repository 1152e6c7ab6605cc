//! Restoring a snapshot file into the data dir of a member of a new cluster (what
//! `etcdutl snapshot restore` does for etcd), and reading a snapshot's summary.
//!
//! Every member of the new cluster is restored from the same file with its own `--name`. The
//! key-value history, leases and revision counters come from the snapshot; the membership is
//! the new `--initial-cluster`, written as the very first raft log entry exactly as a fresh
//! bootstrap writes it, so all restored members start with identical logs and elect a leader
//! among themselves. The new cluster gets new member and cluster ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openraft::{EntryPayload, Membership};
use rocksdb::{WriteBatch, WriteOptions};

use crate::config::{url_string, StoreConfig};
use crate::error::{Result, StoreError};
use crate::mvcc::revision::Revision;
use crate::mvcc::snapshot;
use crate::node::{compute_cluster_id, compute_member_id, Identity};
use crate::storage::db::{self, CF_KV, CF_RAFT_LOG, CF_RAFT_META, CF_SM_META};
use crate::types::{Entry, LogId, Member, NodeId};

/// What a snapshot file holds (etcdctl's `snapshot status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32C over every record of the snapshot.
    pub hash: u32,
    pub revision: i64,
    /// Stored records: every revision of every key, plus leases and bookkeeping.
    pub total_keys: usize,
    /// Bytes of the file.
    pub total_size: usize,
}

/// Verifies a snapshot file and summarises it.
pub fn status(data: &[u8]) -> Result<SnapshotStatus> {
    let parsed = snapshot::parse(data)?;
    let mut crc = 0u32;
    for (cf, k, v) in &parsed.records {
        crc = crc32c::crc32c_append(crc, cf.as_bytes());
        crc = crc32c::crc32c_append(crc, k);
        crc = crc32c::crc32c_append(crc, v);
    }
    Ok(SnapshotStatus {
        hash: crc,
        revision: parsed.header.current_rev,
        total_keys: parsed.records.len(),
        total_size: data.len(),
    })
}

/// The member a restore creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub member_id: NodeId,
    pub cluster_id: u64,
    pub revision: i64,
    pub data_dir: PathBuf,
}

/// Writes a fresh data dir for member `config.name` of the cluster `config.initial_cluster`
/// from a snapshot. Uses the config's name, data dir, initial cluster, advertised peer URLs and
/// cluster token. Refuses to touch an existing data dir.
pub fn restore(data: &[u8], config: &StoreConfig) -> Result<Restored> {
    config.validate()?;
    let parsed = snapshot::parse(data)?;
    if config.data_dir.exists() {
        return Err(StoreError::config(format!(
            "data-dir {:?} exists; restore only writes a new one",
            config.data_dir
        )));
    }

    let token = &config.initial_cluster_token;
    let mut members: BTreeMap<NodeId, Member> = BTreeMap::new();
    let mut my_id = None;
    for (name, urls) in &config.initial_cluster {
        let urls: Vec<String> = urls.iter().map(url_string).collect();
        let id = compute_member_id(&urls, token, None);
        if *name == config.name {
            my_id = Some(id);
        }
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

    // Everything is written under `<data-dir>.restoring` and renamed into place only once it
    // is complete and synced, so an interrupted restore never leaves a data dir that a
    // member would start from.
    let staging = staging_dir(&config.data_dir)?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let written = write_member(&staging, &parsed, members, member_id, cluster_id, config);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    sync_dir(&staging.join("member"))?;
    sync_dir(&staging)?;
    std::fs::rename(&staging, &config.data_dir)?;
    if let Some(parent) = config.data_dir.parent() {
        sync_dir(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })?;
    }
    Ok(Restored {
        member_id,
        cluster_id,
        revision: parsed.header.current_rev,
        data_dir: config.data_dir.clone(),
    })
}

/// A snapshot of what the member under `data_dir` has applied, read from its database while
/// it is not running (RocksDB's lock refuses a running member's). `--cluster-reset` without a
/// file starts from it; entries in the member's log that it had not applied are not in it.
pub fn snapshot_of_data_dir(data_dir: &Path) -> Result<Vec<u8>> {
    let db_path = data_dir.join("member").join("db");
    if !db_path.exists() {
        return Err(StoreError::config(format!(
            "{} holds no store member to reset",
            data_dir.display()
        )));
    }
    let db = db::open(&db_path)?;
    db::check_format(&db, data_dir)?;
    let state = crate::mvcc::load_state(&db)?;
    let (_, bytes) = snapshot::build(&db, &state)?;
    Ok(bytes)
}

/// What [`reset_to_single_member`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reset {
    pub restored: Restored,
    /// Where the member's previous data went, if it had any.
    pub previous: Option<PathBuf>,
}

/// Makes `config.name` the one member of a new cluster whose data is the snapshot `data`,
/// under `config.data_dir` (k3s' `--cluster-reset`). A member the data dir already holds is
/// moved aside to `member.old-<unix seconds>`, never deleted. Other members of the old cluster
/// must not rejoin with their data: they join the new cluster afresh.
pub fn reset_to_single_member(data: &[u8], config: &StoreConfig) -> Result<Reset> {
    let fresh_root = config.data_dir.join("reset.new");
    if fresh_root.exists() {
        // A reset that was interrupted before its final rename.
        std::fs::remove_dir_all(&fresh_root)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut single = config.clone();
    single.data_dir = fresh_root.clone();
    single.initial_cluster = vec![(
        config.name.clone(),
        config.initial_advertise_peer_urls.clone(),
    )];
    single.initial_cluster_state = crate::config::ClusterState::New;
    // A new cluster id, so no member of the old cluster is mistaken for one of the new.
    single.initial_cluster_token = format!("{}-reset-{now}", config.initial_cluster_token);
    let restored = restore(data, &single)?;

    let member = config.data_dir.join("member");
    let previous = if member.exists() {
        let aside = config.data_dir.join(format!("member.old-{now}"));
        std::fs::rename(&member, &aside)?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(fresh_root.join("member"), &member)?;
    std::fs::remove_dir_all(&fresh_root)?;
    sync_dir(&config.data_dir)?;
    Ok(Reset {
        restored: Restored {
            data_dir: config.data_dir.clone(),
            ..restored
        },
        previous,
    })
}

/// `<data-dir>.restoring`, next to the data dir (same filesystem, so the final rename is atomic).
fn staging_dir(data_dir: &Path) -> Result<PathBuf> {
    let name = data_dir.file_name().ok_or_else(|| {
        StoreError::config(format!("data-dir {data_dir:?} does not name a directory"))
    })?;
    let mut staged = name.to_os_string();
    staged.push(".restoring");
    Ok(data_dir.with_file_name(staged))
}

/// fsync of a directory, so a rename or a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The restored member's RocksDB under `dir/member/db`, written with one synced batch.
fn write_member(
    dir: &Path,
    parsed: &snapshot::Parsed<'_>,
    members: BTreeMap<NodeId, Member>,
    member_id: NodeId,
    cluster_id: u64,
    config: &StoreConfig,
) -> Result<()> {
    let token = &config.initial_cluster_token;
    let member_dir = dir.join("member");
    std::fs::create_dir_all(&member_dir)?;
    let db = db::open(&member_dir.join("db"))?;
    db::check_format(&db, dir)?;
    let mut batch = WriteBatch::default();
    for (cf_name, k, v) in &parsed.records {
        // The old cluster's bookkeeping (applied log position, membership, alarms) does not
        // carry over; the revision counters do.
        if *cf_name == CF_SM_META && *k != crate::mvcc::META_COUNTERS {
            continue;
        }
        if *cf_name == CF_KV && Revision::from_bytes(k).is_none() {
            return Err(StoreError::Corrupt(
                "snapshot holds a malformed revision key".into(),
            ));
        }
        let cf = db::cf(&db, cf_name)?;
        batch.put_cf(cf, k, v);
    }

    // The first log entry, byte for byte what `Raft::initialize` writes on a fresh bootstrap.
    let entry = Entry {
        log_id: LogId::default(),
        payload: EntryPayload::Membership(Membership::from(members)),
    };
    let log = db::cf(&db, CF_RAFT_LOG)?;
    batch.put_cf(
        log,
        0u64.to_be_bytes(),
        bincode::serialize(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    );
    let identity = Identity {
        name: config.name.clone(),
        member_id,
        cluster_id,
        cluster_token: token.clone(),
    };
    // Until the log is compacted into a raft snapshot, a member added to the new cluster
    // would miss the data above (see `StoreNode::purge_restored_log`).
    batch.put_cf(db::cf(&db, CF_RAFT_META)?, crate::node::KEY_RESTORED, b"1");
    batch.put_cf(
        db::cf(&db, CF_RAFT_META)?,
        crate::node::KEY_IDENTITY,
        serde_json::to_vec(&identity).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    );
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)?;
    Ok(())
}
