//! `keelson kv watch`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct WatchArgs {}

pub async fn run(_global: &GlobalFlags, _args: WatchArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`watch` is not implemented yet".into(),
    ))
}
