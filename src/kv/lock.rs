//! `keelson kv lock`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct LockArgs {}

pub async fn run(_global: &GlobalFlags, _args: LockArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported("`lock` is not implemented yet".into()))
}
