//! `keelson kv endpoint`.

use clap::Args;

use super::client::GlobalFlags;
use super::error::KvError;

#[derive(Args, Debug)]
pub struct EndpointArgs {}

pub async fn run(_global: &GlobalFlags, _args: EndpointArgs) -> Result<(), KvError> {
    Err(KvError::Unsupported(
        "`endpoint` is not implemented yet".into(),
    ))
}
