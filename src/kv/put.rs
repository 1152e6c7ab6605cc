//! `keelson kv put`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct PutArgs {}

pub async fn run(_global: &GlobalFlags, _args: PutArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported("`put` is not implemented yet".into()))
}
