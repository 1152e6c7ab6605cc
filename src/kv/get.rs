//! `keelson kv get`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct GetArgs {}

pub async fn run(_global: &GlobalFlags, _args: GetArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported("`get` is not implemented yet".into()))
}
