//! openraft's own storage test suite, run on keelson's RocksDB log store and MVCC state
//! machine.

use std::sync::Arc;

use keelson_store::mvcc::Mvcc;
use keelson_store::storage::{db, log_store::LogStore, state_machine::StateMachine};
use keelson_store::types::{StorageError, TypeConfig};
use keelson_store::watch::WatchHub;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};

struct Builder;

fn err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(err)?;
        let db = db::open(&dir.path().join("db")).map_err(err)?;
        let mvcc = Arc::new(Mvcc::open(db.clone()).map_err(err)?);
        let hub = WatchHub::new(mvcc.clone());
        let sm = StateMachine::new(mvcc, hub, dir.path().join("snap")).map_err(err)?;
        Ok((dir, LogStore::new(db).map_err(err)?, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
