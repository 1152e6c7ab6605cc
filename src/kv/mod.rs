//! `keelson kv`: an etcd v3 client with etcdctl's commands, flags and output formats.

use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub struct KvArgs {
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

pub async fn run(_args: KvArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("keelson kv is not implemented yet")
}
