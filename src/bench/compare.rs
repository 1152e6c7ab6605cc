//! `keelson bench compare-etcd`.
use clap::Args;

use super::error::Result;

#[derive(Args, Debug)]
pub struct CompareArgs {}

pub async fn run(_args: CompareArgs) -> Result<()> {
    Ok(())
}
