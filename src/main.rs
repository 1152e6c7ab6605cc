//! `keelson`: a Kubernetes-style control plane in one binary.

mod agent_cmd;
mod bench;
mod certificate_cmd;
mod completion;
mod kv;
mod proxy_cmd;
mod server_cmd;
mod store_cmd;

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: allocation was ~11% of a store leader's
/// CPU under concurrent puts (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run a control-plane server: a store member plus the Kubernetes API on it.
    Server(Box<server_cmd::ServerArgs>),
    /// Run a member of the replicated, etcd-compatible key-value store (etcd's flags).
    Store(Box<store_cmd::StoreArgs>),
    /// Run a node agent (kubelet) that registers nodes and runs the pods bound to them.
    Agent(Box<agent_cmd::AgentArgs>),
    /// A client-side load balancer for several servers' Kubernetes API (for kubectl).
    Proxy(proxy_cmd::ProxyArgs),
    /// An etcd v3 client with etcdctl's commands, flags and output formats.
    Kv(Box<kv::KvArgs>),
    /// Benchmarks against any etcd v3 endpoint.
    Bench(Box<bench::BenchArgs>),
    /// Rotate or check the certificates of a server's data dir.
    Certificate(certificate_cmd::CertificateArgs),
    /// Prints a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    if let Command::Completion(args) = &cli.command {
        completion::generate::<Cli>(args, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Command::Certificate(args) = cli.command {
        return match certificate_cmd::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::FAILURE
            }
        };
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
            Command::Server(args) => server_cmd::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Store(args) => store_cmd::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Agent(args) => agent_cmd::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Proxy(args) => proxy_cmd::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Kv(args) => kv::run(*args).await,
            Command::Bench(args) => bench::run(*args).await,
            Command::Completion(_) | Command::Certificate(_) => Ok(ExitCode::SUCCESS),
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

/// Command-line errors. `keelson kv` reports them like etcdctl (`Error: unknown flag: --x`,
/// exit 1) so scripts written for etcdctl keep working; everything else gets clap's own
/// message and exit code.
fn parse_error(e: clap::Error) -> ExitCode {
    let is_kv = std::env::args().nth(1).as_deref() == Some("kv");
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !is_kv || informational {
        e.exit();
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let text = match (e.kind(), arg) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with("--") => {
            format!("unknown flag: {}", a.split('=').next().unwrap_or(&a))
        }
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with('-') => {
            format!(
                "unknown shorthand flag: '{}' in {a}",
                a.chars().nth(1).unwrap_or('-')
            )
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_string(),
    };
    eprintln!("Error: {text}");
    ExitCode::FAILURE
}
