//! The one RocksDB instance behind a member: column families per concern.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteOptions, DB};

use crate::error::{Result, StoreError};

/// Raft log entries, keyed by big-endian log index.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Raft vote, committed and purged log ids; the member's identity.
pub const CF_RAFT_META: &str = "raft_meta";
/// MVCC values, keyed by etcd's revision bytes.
pub const CF_KV: &str = "kv";
/// State-machine bookkeeping written in the same batch as the data it describes.
pub const CF_SM_META: &str = "sm_meta";
/// Granted leases (id → ttl).
pub const CF_LEASE: &str = "lease";

pub const ALL_CFS: [&str; 5] = [CF_RAFT_LOG, CF_RAFT_META, CF_KV, CF_SM_META, CF_LEASE];
/// Column families that make up the state machine (replaced wholesale by a snapshot install).
pub const SM_CFS: [&str; 3] = [CF_KV, CF_SM_META, CF_LEASE];

/// Bytes all memtables together may hold before RocksDB flushes the largest.
pub const MEMTABLE_BUDGET: usize = 32 << 20;
/// Memtable size of the raft log: its entries are purged after the next snapshot, so a large
/// memtable only holds them in memory for longer.
const RAFT_LOG_MEMTABLE: usize = 8 << 20;
/// Memtable size of the MVCC values.
const KV_MEMTABLE: usize = 8 << 20;

pub fn open(path: &Path) -> Result<Arc<DB>> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // A crash may leave a torn last WAL record; everything before it is intact.
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(3);
    // One memtable budget for the whole member: without it each column family may hold two
    // 64 MiB memtables, and a server's memory would grow with write volume instead of data.
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut o = Options::default();
        if *name == CF_KV {
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_write_buffer_size(KV_MEMTABLE);
        }
        if *name == CF_RAFT_LOG {
            o.set_write_buffer_size(RAFT_LOG_MEMTABLE);
        }
        ColumnFamilyDescriptor::new(*name, o)
    });
    let db = DB::open_cf_descriptors(&opts, path, cfs)?;
    Ok(Arc::new(db))
}

/// The data-dir format this binary reads and writes. Bump it, with a migration from the
/// previous one, whenever what is on disk changes meaning (column families, key layouts, the
/// raft log's or the snapshots' encoding), so that a server never runs on data it would
/// misread.
pub const DATA_FORMAT: u32 = 1;
/// `raft_meta` key of the data format (u32, little endian).
const KEY_FORMAT: &[u8] = b"data-format";

/// Checks that this binary can read the member's data, then records the format. A data dir
/// written by a newer keelson is refused before anything is written to it (a downgrade);
/// one without the marker is new, or was written before the marker existed (format 1).
pub fn check_format(db: &DB, data_dir: &Path) -> Result<()> {
    let meta = cf(db, CF_RAFT_META)?;
    let stored = match db.get_cf(meta, KEY_FORMAT)? {
        None => None,
        Some(v) => {
            let bytes: [u8; 4] = v.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("data format marker of {} bytes", v.len()))
            })?;
            Some(u32::from_le_bytes(bytes))
        }
    };
    match stored {
        Some(f) if f == DATA_FORMAT => Ok(()),
        Some(f) if f > DATA_FORMAT => Err(StoreError::config(format!(
            "data dir {} was written by a newer keelson (data format {f}); this binary reads \
             data format {DATA_FORMAT}: run the newer binary, or rebuild this member from a \
             snapshot saved by a member of the same version",
            data_dir.display()
        ))),
        Some(f) => Err(StoreError::Corrupt(format!(
            "data dir {}: unknown data format {f}",
            data_dir.display()
        ))),
        None => {
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            db.put_cf_opt(meta, KEY_FORMAT, DATA_FORMAT.to_le_bytes(), &wo)?;
            Ok(())
        }
    }
}

pub fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Corrupt(format!("missing column family {name}")))
}

/// Sums RocksDB integer properties over the state machine's column families.
fn sum_properties(db: &DB, props: &[&str]) -> u64 {
    SM_CFS
        .iter()
        .filter_map(|name| db.cf_handle(name))
        .flat_map(|h| {
            props
                .iter()
                .map(move |p| db.property_int_value_cf(h, *p).ok().flatten().unwrap_or(0))
        })
        .sum()
}

/// Bytes the database takes on disk (live SST files, WAL excluded) plus what sits in memtables,
/// summed over the state machine's column families. This is what the space quota limits.
pub fn size_bytes(db: &DB) -> u64 {
    sum_properties(
        db,
        &[
            "rocksdb.total-sst-files-size",
            "rocksdb.size-all-mem-tables",
        ],
    )
}

/// Bytes of live data (an estimate), the analogue of etcd's "db size in use".
pub fn size_in_use_bytes(db: &DB) -> u64 {
    sum_properties(
        db,
        &[
            "rocksdb.estimate-live-data-size",
            "rocksdb.size-all-mem-tables",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(db: &DB, format: u32) {
        let meta = cf(db, CF_RAFT_META).expect("raft_meta");
        db.put_cf(meta, KEY_FORMAT, format.to_le_bytes())
            .expect("put");
    }

    fn stored_format(db: &DB) -> Option<Vec<u8>> {
        let meta = cf(db, CF_RAFT_META).expect("raft_meta");
        db.get_cf(meta, KEY_FORMAT).expect("get")
    }

    #[test]
    fn a_new_or_unmarked_data_dir_gets_this_format_and_a_newer_one_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir.path().join("db")).expect("open");
        check_format(&db, dir.path()).expect("a new data dir");
        assert_eq!(stored_format(&db), Some(DATA_FORMAT.to_le_bytes().to_vec()));
        check_format(&db, dir.path()).expect("the same format again");

        stamp(&db, DATA_FORMAT + 1);
        let err = check_format(&db, dir.path()).expect_err("a newer format");
        let msg = err.to_string();
        assert!(msg.contains("written by a newer keelson"), "{msg}");
        assert!(
            msg.contains(&format!("data format {}", DATA_FORMAT + 1)),
            "{msg}"
        );
        // Refused, and left as it was.
        assert_eq!(
            stored_format(&db),
            Some((DATA_FORMAT + 1).to_le_bytes().to_vec())
        );

        stamp(&db, 0);
        let err = check_format(&db, dir.path()).expect_err("format 0");
        assert!(err.to_string().contains("unknown data format 0"), "{err}");

        let meta = cf(&db, CF_RAFT_META).expect("raft_meta");
        db.put_cf(meta, KEY_FORMAT, b"x").expect("put");
        let err = check_format(&db, dir.path()).expect_err("a torn marker");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
