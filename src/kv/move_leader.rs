//! `keelson kv move-leader`.

use clap::Args;
use keelson_proto::etcdserverpb as pb;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::out;

#[derive(Args, Debug)]
pub struct MoveLeaderArgs {
    /// <transferee-member-id> (hex)
    pub args: Vec<String>,
}

pub async fn run(global: &GlobalFlags, args: MoveLeaderArgs) -> Result<(), KvError> {
    if args.args.len() != 1 {
        return Err(KvError::BadArgs(
            "move-leader command needs 1 argument".into(),
        ));
    }
    let target = u64::from_str_radix(&args.args[0], 16).map_err(|_| {
        KvError::BadArgs(format!(
            "strconv.ParseUint: parsing {:?}: invalid syntax",
            args.args[0]
        ))
    })?;
    let eps = global.endpoint_list();
    let mut leader = None;
    for ep in &eps {
        let c = global.connect_one(ep).await?;
        let s = c
            .timed(async { c.maintenance().status(pb::StatusRequest {}).await })
            .await?
            .into_inner();
        let me = s.header.as_ref().map(|h| h.member_id).unwrap_or(0);
        if me == s.leader {
            leader = Some((c, s.leader));
            break;
        }
    }
    let Some((c, leader_id)) = leader else {
        return Err(KvError::BadArgs(format!(
            "no leader endpoint given at [{}]",
            eps.join(" ")
        )));
    };
    c.timed(async {
        c.maintenance()
            .move_leader(pb::MoveLeaderRequest { target_id: target })
            .await
    })
    .await?;
    out(&format!(
        "Leadership transferred from {leader_id:x} to {target:x}\n"
    ));
    Ok(())
}
