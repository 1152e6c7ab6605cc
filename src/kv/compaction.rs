//! `keelson kv compaction`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct CompactionArgs {}

pub async fn run(_global: &GlobalFlags, _args: CompactionArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`compaction` is not implemented yet".into(),
    ))
}
