//! `keelson kv snapshot save|status|restore`.
//!
//! `save` streams Maintenance.Snapshot into `<file>.part`, syncs it and renames it into place.
//! `status` and `restore` read keelson snapshot files (what a keelson server streams); a file
//! saved from etcd is a bbolt database keelson cannot read, and is refused with a clear error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;
use keelson_store::config::{parse_initial_cluster, parse_urls, StoreConfig};

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{human_bytes, out, table, Obj, OutputFormat};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores a snapshot of the store to the given file
    Save {
        /// <filename>
        args: Vec<String>,
    },
    /// Gets backend snapshot status of a given file
    Status {
        /// <filename>
        args: Vec<String>,
    },
    /// Restores a snapshot into a new data dir for a member of a new cluster
    Restore {
        /// Path to the data directory [default: <name>.keelson]
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Initial cluster configuration for restore bootstrap
        #[arg(
            long = "initial-cluster",
            default_value = "default=http://localhost:2380"
        )]
        initial_cluster: String,
        /// Initial cluster token for the cluster during restore bootstrap
        #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster
        #[arg(
            long = "initial-advertise-peer-urls",
            default_value = "http://localhost:2380"
        )]
        initial_advertise_peer_urls: String,
        /// Human-readable name for this member
        #[arg(long, default_value = "default")]
        name: String,
        /// Accepted for etcdctl compatibility; keelson snapshots are always verified
        #[arg(long = "skip-hash-check")]
        skip_hash_check: bool,
        /// <filename>
        args: Vec<String>,
    },
}

fn one_file(args: &[String], what: &str) -> Result<PathBuf, KvError> {
    if args.len() != 1 {
        return Err(KvError::BadArgs(format!(
            "snapshot {what} expects one argument"
        )));
    }
    Ok(PathBuf::from(&args[0]))
}

pub async fn run(global: &GlobalFlags, args: SnapshotArgs) -> Result<(), KvError> {
    match args.command {
        SnapshotCommand::Save { args } => save(global, &one_file(&args, "save")?).await,
        SnapshotCommand::Status { args } => status(global, &one_file(&args, "status")?),
        SnapshotCommand::Restore {
            data_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            name,
            skip_hash_check: _,
            args,
        } => {
            let file = one_file(&args, "restore")?;
            let mut config = StoreConfig::default_for(&name);
            config.data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.keelson")));
            config.initial_cluster = parse_initial_cluster(&initial_cluster)
                .map_err(|e| KvError::BadArgs(e.to_string()))?;
            config.initial_advertise_peer_urls = parse_urls(
                "--initial-advertise-peer-urls",
                &initial_advertise_peer_urls,
            )
            .map_err(|e| KvError::BadArgs(e.to_string()))?;
            config.listen_peer_urls = config.initial_advertise_peer_urls.clone();
            config.initial_cluster_token = initial_cluster_token;
            let data = read_snapshot(&file)?;
            let r = keelson_store::restore::restore(&data, &config)
                .map_err(|e| KvError::Failed(e.to_string()))?;
            out(&format!(
                "restored snapshot {} (revision {}) into {} as member {:x} of cluster {:x}\n",
                file.display(),
                r.revision,
                r.data_dir.display(),
                r.member_id,
                r.cluster_id
            ));
            Ok(())
        }
    }
}

async fn save(global: &GlobalFlags, path: &Path) -> Result<(), KvError> {
    let eps = global.endpoint_list();
    if eps.len() != 1 {
        return Err(KvError::BadArgs(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            eps.join(" ")
        )));
    }
    let c = global.connect().await?;
    let part = PathBuf::from(format!("{}.part", path.display()));
    let mut file = std::fs::File::create(&part)
        .map_err(|e| KvError::Io(format!("could not open {} ({e})", part.display())))?;
    let mut stream = c
        .maintenance()
        .snapshot(pb::SnapshotRequest {})
        .await?
        .into_inner();
    let progress = std::io::stderr().is_terminal();
    let mut total = 0u64;
    let result: Result<(), KvError> = async {
        while let Some(chunk) = stream.message().await? {
            file.write_all(&chunk.blob)?;
            total += chunk.blob.len() as u64;
            if progress {
                eprint!("\rreceived {}   ", human_bytes(total));
            }
        }
        file.sync_all()?;
        Ok(())
    }
    .await;
    if progress {
        eprintln!();
    }
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, path)
        .map_err(|e| KvError::Io(format!("could not rename {} ({e})", part.display())))?;
    // The rename is durable only once the directory holding it is synced.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| KvError::Io(format!("could not sync {} ({e})", dir.display())))?;
    out(&format!("Snapshot saved at {}\n", path.display()));
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<Vec<u8>, KvError> {
    let data = std::fs::read(path)
        .map_err(|e| KvError::Io(format!("could not read {} ({e})", path.display())))?;
    // bbolt's meta page carries the magic 0xED0CDAED at offset 16 of page 0.
    if data.len() >= 20 && data[16..20] == [0xed, 0xda, 0x0c, 0xed] {
        return Err(KvError::Failed(format!(
            "{} is an etcd (bbolt) snapshot; keelson can only read snapshots saved from keelson",
            path.display()
        )));
    }
    Ok(data)
}

fn status(global: &GlobalFlags, path: &Path) -> Result<(), KvError> {
    let format = global.output()?;
    let data = read_snapshot(path)?;
    let s = keelson_store::restore::status(&data).map_err(|e| {
        KvError::Failed(format!(
            "{} is not a valid keelson snapshot ({e})",
            path.display()
        ))
    })?;
    match format {
        OutputFormat::Json => out(&format!(
            "{}\n",
            Obj::new()
                .int_always("hash", s.hash)
                .int_always("revision", s.revision)
                .int_always("totalKey", s.total_keys as i64)
                .int_always("totalSize", s.total_size as i64)
                .build()
        )),
        OutputFormat::Table => out(&table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                human_bytes(s.total_size as u64),
            ]],
        )),
        _ => out(&format!(
            "{:x}, {}, {}, {}\n",
            s.hash,
            s.revision,
            s.total_keys,
            human_bytes(s.total_size as u64)
        )),
    }
    Ok(())
}
