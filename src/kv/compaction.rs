//! `keelson kv compaction`.

use clap::Args;
use keelson_proto::etcdserverpb as pb;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::out;

#[derive(Args, Debug)]
pub struct CompactionArgs {
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long)]
    pub physical: bool,
    /// <revision>
    pub args: Vec<String>,
}

pub async fn run(global: &GlobalFlags, args: CompactionArgs) -> Result<(), KvError> {
    if args.args.len() != 1 {
        return Err(KvError::BadArgs(
            "compaction command needs 1 argument".into(),
        ));
    }
    let rev: i64 = args.args[0].parse().map_err(|_| {
        KvError::Failed(format!(
            "strconv.ParseInt: parsing {:?}: invalid syntax",
            args.args[0]
        ))
    })?;
    let c = global.connect().await?;
    let req = pb::CompactionRequest {
        revision: rev,
        physical: args.physical,
    };
    c.timed(async { c.kv().compact(req).await }).await?;
    out(&format!("compacted revision {rev}\n"));
    Ok(())
}
