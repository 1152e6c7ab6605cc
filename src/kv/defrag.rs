//! `keelson kv defrag`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct DefragArgs {}

pub async fn run(_global: &GlobalFlags, _args: DefragArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`defrag` is not implemented yet".into(),
    ))
}
