//! `keelson kv elect`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct ElectArgs {}

pub async fn run(_global: &GlobalFlags, _args: ElectArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`elect` is not implemented yet".into(),
    ))
}
