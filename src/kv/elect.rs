//! `keelson kv elect <election-name> [proposal]`: campaigns with the proposal and, once
//! elected, prints the leader key and value and leads until SIGINT/SIGTERM (then resigns).
//! With `-l/--listen` it only observes: it prints the leader's key and value on every change.

use clap::Args;
use keelson_proto::etcdserverpb as pb;

use super::client::GlobalFlags;
use super::concurrency::{observe, Election, Session};
use super::error::KvError;
use super::get::print_range;
use super::lock::{signalled, signals};
use super::output::{out, simple_kv};

#[derive(Args, Debug)]
pub struct ElectArgs {
    /// observation mode
    #[arg(short = 'l', long)]
    pub listen: bool,
    /// session lease TTL in seconds (keelson only; etcdctl always uses 60)
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
    /// <election-name> [proposal]
    pub args: Vec<String>,
}

pub async fn run(global: &GlobalFlags, args: ElectArgs) -> Result<(), KvError> {
    let usage = || {
        KvError::BadArgs(
            "elect takes one election name argument and an optional proposal argument.".into(),
        )
    };
    let name = args.args.first().ok_or_else(usage)?.clone();
    let format = global.output()?;
    let sig = signals();
    let c = global.connect().await?;
    if args.listen {
        if args.args.len() != 1 {
            return Err(usage());
        }
        let hex = global.hex;
        return tokio::select! {
            r = observe(&c, &name, |kv| out(&simple_kv(kv, hex, false))) => {
                r.and(Err(KvError::Failed("elect: observer lost".into())))
            }
            _ = signalled(sig.clone()) => Ok(()),
        };
    }
    if args.args.len() != 2 {
        return Err(usage());
    }
    let proposal = args.args[1].clone();
    let session = Session::new(&c, args.ttl).await?;
    let e = tokio::select! {
        e = Election::campaign(&session, &name, proposal.as_bytes()) => e?,
        _ = signalled(sig.clone()) => {
            let _ = session.close().await;
            return Err(KvError::Interrupted("interrupted while campaigning".into()));
        }
    };
    let r = c
        .timed(async {
            c.kv()
                .range(pb::RangeRequest {
                    key: e.key.as_bytes().to_vec(),
                    ..Default::default()
                })
                .await
        })
        .await?
        .into_inner();
    print_range(&r, format, global.hex, false);
    tokio::select! {
        _ = signalled(sig.clone()) => {
            e.resign(&session).await?;
            session.close().await
        }
        _ = session.expired() => Err(KvError::Failed("elect: session expired".into())),
    }
}
