//! `keelson`: a Kubernetes-style control plane in one binary.

mod bench;
mod completion;
mod kv;
mod store_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keelson",
    version,
    about = "A Kubernetes-style control plane in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a member of the replicated, etcd-compatible key-value store (etcd's flags).
    Store(Box<store_cmd::StoreArgs>),
    /// An etcd v3 client with etcdctl's commands, flags and output formats.
    Kv(Box<kv::KvArgs>),
    /// Benchmarks against any etcd v3 endpoint.
    Bench(Box<bench::BenchArgs>),
    /// Prints a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion(args) = &cli.command {
        completion::generate::<Cli>(args, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keelson: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Store(args) => store_cmd::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Kv(args) => kv::run(*args).await,
            Command::Bench(args) => bench::run(*args).await,
            Command::Completion(_) => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keelson: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
