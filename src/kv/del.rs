//! `keelson kv del`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct DelArgs {}

pub async fn run(_global: &GlobalFlags, _args: DelArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported("`del` is not implemented yet".into()))
}
