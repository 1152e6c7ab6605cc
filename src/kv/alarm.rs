//! `keelson kv alarm`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct AlarmArgs {}

pub async fn run(_global: &GlobalFlags, _args: AlarmArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`alarm` is not implemented yet".into(),
    ))
}
