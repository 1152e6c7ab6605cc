//! `keelson kv snapshot`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct SnapshotArgs {}

pub async fn run(_global: &GlobalFlags, _args: SnapshotArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`snapshot` is not implemented yet".into(),
    ))
}
