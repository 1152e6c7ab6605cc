//! `keelson kv lease`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct LeaseArgs {}

pub async fn run(_global: &GlobalFlags, _args: LeaseArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`lease` is not implemented yet".into(),
    ))
}
