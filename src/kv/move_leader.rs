//! `keelson kv move_leader`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct MoveLeaderArgs {}

pub async fn run(_global: &GlobalFlags, _args: MoveLeaderArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`move_leader` is not implemented yet".into(),
    ))
}
