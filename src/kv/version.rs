//! `keelson kv version`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::out;

#[derive(Args, Debug)]
pub struct VersionArgs {}

pub async fn run(_global: &GlobalFlags, _args: VersionArgs) -> Result<(), KvError> {
    out(&format!(
        "keelson kv version: {}\nAPI version: 3.5\n",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(())
}
