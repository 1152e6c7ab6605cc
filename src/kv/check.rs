//! `keelson kv check`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct CheckArgs {}

pub async fn run(_global: &GlobalFlags, _args: CheckArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`check` is not implemented yet".into(),
    ))
}
