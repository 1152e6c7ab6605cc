//! `keelson kv alarm list|disarm`.

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{out, out_bytes, Obj, OutputFormat};

#[derive(Args, Debug)]
pub struct AlarmArgs {
    #[command(subcommand)]
    pub command: AlarmCommand,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Disarms all alarms
    Disarm,
    /// Lists all alarms
    List,
}

pub async fn run(global: &GlobalFlags, args: AlarmArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let action = match args.command {
        AlarmCommand::List => pb::alarm_request::AlarmAction::Get,
        AlarmCommand::Disarm => pb::alarm_request::AlarmAction::Deactivate,
    };
    let c = global.connect().await?;
    let mut r = c
        .timed(async {
            c.maintenance()
                .alarm(pb::AlarmRequest {
                    action: pb::alarm_request::AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: pb::AlarmType::None as i32,
                })
                .await
        })
        .await?
        .into_inner();
    if action == pb::alarm_request::AlarmAction::Deactivate {
        // Disarm every raised alarm, as clientv3's AlarmDisarm with an empty alarm does.
        let mut disarmed = pb::AlarmResponse {
            header: r.header,
            alarms: Vec::new(),
        };
        for a in &r.alarms {
            let d = c
                .timed(async {
                    c.maintenance()
                        .alarm(pb::AlarmRequest {
                            action: action as i32,
                            member_id: a.member_id,
                            alarm: a.alarm,
                        })
                        .await
                })
                .await?
                .into_inner();
            disarmed.header = d.header;
            disarmed.alarms.extend(d.alarms);
        }
        r = disarmed;
    }
    match format {
        OutputFormat::Json => {
            let alarms: Vec<String> = r
                .alarms
                .iter()
                .map(|a| {
                    Obj::new()
                        .int("memberID", a.member_id)
                        .int("alarm", a.alarm)
                        .build()
                })
                .collect();
            out(&format!(
                "{}\n",
                Obj::new()
                    .header(r.header.as_ref())
                    .array("alarms", alarms)
                    .build()
            ));
        }
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
        _ => {
            let mut s = String::new();
            for a in &r.alarms {
                let name = pb::AlarmType::try_from(a.alarm)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_else(|_| a.alarm.to_string());
                s.push_str(&format!("memberID:{} alarm:{}\n", a.member_id, name));
            }
            out(&s);
        }
    }
    Ok(())
}
