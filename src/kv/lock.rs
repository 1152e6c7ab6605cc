//! `keelson kv lock <lockname> [exec-command arg1 ...]`: acquires a distributed lock (see
//! `concurrency`). Without a command it prints the lock's key and holds the lock until SIGINT
//! or SIGTERM; with one, it runs the command holding the lock (`ETCD_LOCK_KEY` and
//! `ETCD_LOCK_REV` in its environment), releases it and exits with the command's status.

use clap::Args;

use super::client::GlobalFlags;
use super::concurrency::{Mutex, Session};
use super::error::KvError;
use super::get::print_range;
use keelson_proto::etcdserverpb as pb;

#[derive(Args, Debug)]
pub struct LockArgs {
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// <lockname>
    pub name: Option<String>,
    /// [exec-command arg1 arg2 ...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Starts listening for SIGINT/SIGTERM now (so a signal that arrives while a command runs is
/// not lost); the receiver turns true once one arrived.
pub fn signals() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupted().await;
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once `rx` saw a signal.
pub async fn signalled(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = t.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub async fn run(global: &GlobalFlags, args: LockArgs) -> Result<(), KvError> {
    let Some(name) = args.name else {
        return Err(KvError::BadArgs(
            "lock takes a lock name argument and an optional command to execute.".into(),
        ));
    };
    let format = global.output()?;
    let sig = signals();
    let c = global.connect().await?;
    let session = Session::new(&c, args.ttl).await?;
    let m = tokio::select! {
        m = Mutex::lock(&session, &name) => m?,
        _ = signalled(sig.clone()) => {
            let _ = session.close().await;
            return Err(KvError::Interrupted("interrupted while waiting for the lock".into()));
        }
    };
    if let Some((prog, rest)) = args.command.split_first() {
        let status = tokio::process::Command::new(prog)
            .args(rest)
            .env("ETCD_LOCK_KEY", &m.key)
            .env("ETCD_LOCK_REV", m.rev.to_string())
            .status()
            .await;
        let unlocked = m.unlock(&session).await;
        let _ = session.close().await;
        let status = status.map_err(|e| KvError::Failed(format!("{prog}: {e}")))?;
        unlocked?;
        if status.success() {
            return Ok(());
        }
        return Err(KvError::Failed(format!(
            "exit status {}",
            status.code().unwrap_or(1)
        )));
    }
    let r = c
        .timed(async {
            c.kv()
                .range(pb::RangeRequest {
                    key: m.key.as_bytes().to_vec(),
                    ..Default::default()
                })
                .await
        })
        .await?
        .into_inner();
    if r.kvs.is_empty() {
        return Err(KvError::Failed("lock lost on init".into()));
    }
    print_range(&r, format, global.hex, false);
    tokio::select! {
        _ = signalled(sig.clone()) => {
            m.unlock(&session).await?;
            session.close().await
        }
        _ = session.expired() => Err(KvError::Failed("session expired".into())),
    }
}
