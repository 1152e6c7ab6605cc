//! `keelson kv version`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct VersionArgs {}

pub async fn run(_global: &GlobalFlags, _args: VersionArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`version` is not implemented yet".into(),
    ))
}
