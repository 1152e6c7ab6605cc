//! `keelson kv defrag`.

use clap::Args;
use keelson_proto::etcdserverpb as pb;

use super::client::GlobalFlags;
use super::endpoint::endpoints;
use super::error::KvError;
use super::output::out;

#[derive(Args, Debug)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long)]
    pub cluster: bool,
    /// Data directory for offline defragmentation (not supported by keelson)
    #[arg(long = "data-dir")]
    pub data_dir: Option<String>,
}

pub async fn run(global: &GlobalFlags, args: DefragArgs) -> Result<(), KvError> {
    if args.data_dir.is_some() {
        return Err(KvError::Unsupported(
            "offline defragmentation (--data-dir) is not supported by keelson kv".into(),
        ));
    }
    let eps = endpoints(global, args.cluster).await?;
    let mut failed = false;
    for ep in &eps {
        let r = match global.connect_one(ep).await {
            Ok(c) => {
                // Defragmentation may take long: no command timeout, like etcdctl.
                c.maintenance()
                    .defragment(pb::DefragmentRequest {})
                    .await
                    .map_err(KvError::Grpc)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => out(&format!("Finished defragmenting etcd member[{ep}]\n")),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = true;
            }
        }
    }
    if failed {
        Err(KvError::Failed("defragment failed on some members".into()))
    } else {
        Ok(())
    }
}
