//! `keelson kv member`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct MemberArgs {}

pub async fn run(_global: &GlobalFlags, _args: MemberArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`member` is not implemented yet".into(),
    ))
}
