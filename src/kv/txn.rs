//! `keelson kv txn`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct TxnArgs {}

pub async fn run(_global: &GlobalFlags, _args: TxnArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported("`txn` is not implemented yet".into()))
}
