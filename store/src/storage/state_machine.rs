//! openraft's state machine over the MVCC store, and snapshot files.
// openraft's `StorageError` is large, and it is what the storage traits return.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};

use crate::mvcc::Mvcc;
use crate::types::{
    Entry, LogId, Response, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::watch::WatchHub;

pub(crate) const SNAP_DATA: &str = "current.snap";
const SNAP_META: &str = "current.meta";

fn sm_err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snap_err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

/// The raft state machine of one member.
#[derive(Clone)]
pub struct StateMachine {
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    snap_dir: PathBuf,
}

impl StateMachine {
    pub fn new(mvcc: Arc<Mvcc>, hub: Arc<WatchHub>, snap_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&snap_dir)?;
        Ok(StateMachine {
            mvcc,
            hub,
            snap_dir,
        })
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        write_atomic(&self.snap_dir.join(SNAP_DATA), data).map_err(snap_err)?;
        let m = bincode::serialize(meta).map_err(snap_err)?;
        write_atomic(&self.snap_dir.join(SNAP_META), &m).map_err(snap_err)
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let meta_path = self.snap_dir.join(SNAP_META);
        if !meta_path.exists() {
            return Ok(None);
        }
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| -> StorageError { StorageIOError::read_snapshot(None, &e).into() })
        };
        let meta: SnapshotMeta = bincode::deserialize(&read(&meta_path)?)
            .map_err(|e| -> StorageError { StorageIOError::read_snapshot(None, &e).into() })?;
        let data = read(&self.snap_dir.join(SNAP_DATA))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Writes a file so that a crash leaves either the old or the new contents.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // The snapshot lets the log be purged, so everything applied so far must be durable.
        self.mvcc.db().flush_wal(true).map_err(snap_err)?;
        let (header, data) = self.mvcc.snapshot().map_err(snap_err)?;
        let snapshot_id = match header.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, header.current_rev),
            None => format!("0-0-{}", header.current_rev),
        };
        let meta = SnapshotMeta {
            last_log_id: header.last_applied,
            last_membership: header.membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.mvcc.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let applied = {
            let mut ap = self.mvcc.applier().map_err(sm_err)?;
            for entry in entries {
                ap.set_applied(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => out.push(Response::None),
                    EntryPayload::Normal(req) => out.push(ap.apply(&req).map_err(sm_err)?),
                    EntryPayload::Membership(m) => {
                        ap.set_membership(StoredMembership::new(Some(entry.log_id), m));
                        out.push(Response::None);
                    }
                }
            }
            ap.commit().map_err(sm_err)?
        };
        self.hub.publish(applied.events);
        if let Some(rev) = applied.compacted {
            self.hub.compacted(rev);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let header = self.mvcc.install(&data).map_err(|e| -> StorageError {
            StorageIOError::read_snapshot(Some(meta.signature()), &e).into()
        })?;
        self.save_snapshot(meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, revision = header.current_rev, "installed snapshot");
        self.hub.restored(header.current_rev, header.compact_rev);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.load_snapshot()
    }
}
