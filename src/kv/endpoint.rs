//! `keelson kv endpoint health|status|hashkv` (each with `--cluster`).

use std::time::Instant;

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;

use super::client::{Clients, GlobalFlags};
use super::error::KvError;
use super::output::{
    fields_header, go_duration, go_quote, human_bytes, json_str, out, table, Obj, OutputFormat,
};

#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true)]
    pub cluster: bool,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// the revision to hash
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

/// The endpoints to visit: the given ones, or every member's client URLs with `--cluster`.
pub async fn endpoints(global: &GlobalFlags, cluster: bool) -> Result<Vec<String>, KvError> {
    if !cluster {
        return Ok(global.endpoint_list());
    }
    let c = global.connect().await?;
    let r = c
        .timed(async {
            c.cluster()
                .member_list(pb::MemberListRequest {
                    linearizable: false,
                })
                .await
        })
        .await?
        .into_inner();
    let mut eps: Vec<String> = Vec::new();
    for m in r.members {
        for u in m.client_ur_ls {
            if !eps.contains(&u) {
                eps.push(u);
            }
        }
    }
    Ok(eps)
}

/// The URL etcdctl shows for an endpoint: as given.
fn shown(ep: &str) -> String {
    ep.to_string()
}

pub async fn run(global: &GlobalFlags, args: EndpointArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let eps = endpoints(global, args.cluster).await?;
    match args.command {
        EndpointCommand::Health => health(global, &eps, format).await,
        EndpointCommand::Status => status(global, &eps, format).await,
        EndpointCommand::Hashkv { rev } => hashkv(global, &eps, rev, format).await,
    }
}

struct Health {
    ep: String,
    healthy: bool,
    took: String,
    error: String,
}

async fn check_one(c: &Clients) -> Result<(), String> {
    let req = pb::RangeRequest {
        key: b"health".to_vec(),
        ..Default::default()
    };
    match c.timed(async { c.kv().range(req).await }).await {
        Ok(_) => {}
        Err(KvError::Grpc(s)) if s.code() == tonic::Code::PermissionDenied => {}
        Err(e) => return Err(e.to_string()),
    }
    let alarms = c
        .timed(async {
            c.maintenance()
                .alarm(pb::AlarmRequest {
                    action: pb::alarm_request::AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: pb::AlarmType::None as i32,
                })
                .await
        })
        .await;
    if let Ok(a) = alarms {
        let a = a.into_inner();
        if !a.alarms.is_empty() {
            let names: Vec<String> = a
                .alarms
                .iter()
                .map(|x| {
                    pb::AlarmType::try_from(x.alarm)
                        .map(|t| t.as_str_name().to_string())
                        .unwrap_or_default()
                })
                .collect();
            return Err(format!("Active Alarm(s): {}", names.join(" ")));
        }
    }
    Ok(())
}

async fn health(global: &GlobalFlags, eps: &[String], format: OutputFormat) -> Result<(), KvError> {
    let checks = eps.iter().map(|ep| async move {
        let start = Instant::now();
        let r = match global.connect_one(ep).await {
            Ok(c) => check_one(&c).await,
            Err(e) => Err(e.to_string()),
        };
        Health {
            ep: shown(ep),
            healthy: r.is_ok(),
            took: go_duration(start.elapsed()),
            error: r.err().unwrap_or_default(),
        }
    });
    let results = futures::future::join_all(checks).await;
    match format {
        OutputFormat::Json => {
            let items: Vec<String> = results
                .iter()
                .map(|h| {
                    Obj::new()
                        .string_always("endpoint", &h.ep)
                        .bool_always("health", h.healthy)
                        .string_always("took", &h.took)
                        .string("error", &h.error)
                        .build()
                })
                .collect();
            out(&format!("[{}]\n", items.join(",")));
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|h| {
                    vec![
                        h.ep.clone(),
                        h.healthy.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            out(&table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows));
        }
        _ => {
            for h in &results {
                if h.healthy {
                    out(&format!(
                        "{} is healthy: successfully committed proposal: took = {}\n",
                        h.ep, h.took
                    ));
                } else {
                    eprintln!(
                        "{} is unhealthy: failed to commit proposal: {}",
                        h.ep, h.error
                    );
                }
            }
        }
    }
    if results.iter().all(|h| h.healthy) {
        Ok(())
    } else {
        Err(KvError::Failed("unhealthy cluster".into()))
    }
}

async fn status(global: &GlobalFlags, eps: &[String], format: OutputFormat) -> Result<(), KvError> {
    let mut rows = Vec::new();
    for ep in eps {
        let r = match global.connect_one(ep).await {
            Ok(c) => {
                c.timed(async { c.maintenance().status(pb::StatusRequest {}).await })
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(s) => rows.push((shown(ep), s.into_inner())),
            Err(e) => eprintln!("Failed to get the status of endpoint {ep} ({e})"),
        }
    }
    match format {
        OutputFormat::Json => {
            let items: Vec<String> = rows
                .iter()
                .map(|(ep, s)| {
                    let st = Obj::new()
                        .header(s.header.as_ref())
                        .string("version", &s.version)
                        .int("dbSize", s.db_size)
                        .int("leader", s.leader)
                        .int("raftIndex", s.raft_index)
                        .int("raftTerm", s.raft_term)
                        .int("raftAppliedIndex", s.raft_applied_index)
                        .array("errors", s.errors.iter().map(|e| json_str(e)).collect())
                        .int("dbSizeInUse", s.db_size_in_use)
                        .flag("isLearner", s.is_learner)
                        .build();
                    Obj::new()
                        .string_always("Endpoint", ep)
                        .raw("Status", &st)
                        .build()
                })
                .collect();
            out(&format!("[{}]\n", items.join(",")));
        }
        OutputFormat::Fields => {
            let mut o = String::new();
            for (ep, s) in &rows {
                o.push_str(&fields_header(s.header.as_ref()));
                o.push_str(&format!(
                    "\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : [{}]\n\"Endpoint\" : {}\n\n",
                    go_quote(s.version.as_bytes()),
                    s.db_size,
                    s.leader,
                    s.is_learner,
                    s.raft_index,
                    s.raft_term,
                    s.raft_applied_index,
                    s.errors.join(" "),
                    go_quote(ep.as_bytes())
                ));
            }
            out(&o);
        }
        OutputFormat::Table => {
            let t: Vec<Vec<String>> = rows.iter().map(|(ep, s)| status_row(ep, s)).collect();
            out(&table(
                &[
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ],
                &t,
            ));
        }
        _ => {
            let mut o = String::new();
            for (ep, s) in &rows {
                o.push_str(&status_row(ep, s).join(", "));
                o.push('\n');
            }
            out(&o);
        }
    }
    if rows.len() == eps.len() {
        Ok(())
    } else {
        Err(KvError::Failed(
            "failed to get the status of every endpoint".into(),
        ))
    }
}

fn status_row(ep: &str, s: &pb::StatusResponse) -> Vec<String> {
    let id = s.header.as_ref().map(|h| h.member_id).unwrap_or(0);
    vec![
        ep.to_string(),
        format!("{id:x}"),
        s.version.clone(),
        human_bytes(s.db_size.max(0) as u64),
        (s.leader == id).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

async fn hashkv(
    global: &GlobalFlags,
    eps: &[String],
    rev: i64,
    format: OutputFormat,
) -> Result<(), KvError> {
    let mut rows = Vec::new();
    for ep in eps {
        let r = match global.connect_one(ep).await {
            Ok(c) => {
                c.timed(async {
                    c.maintenance()
                        .hash_kv(pb::HashKvRequest { revision: rev })
                        .await
                })
                .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(h) => rows.push((shown(ep), h.into_inner())),
            Err(e) => eprintln!("Failed to get the hash of endpoint {ep} ({e})"),
        }
    }
    match format {
        OutputFormat::Json => {
            let items: Vec<String> = rows
                .iter()
                .map(|(ep, h)| {
                    let hk = Obj::new()
                        .header(h.header.as_ref())
                        .int("hash", h.hash)
                        .int("compact_revision", h.compact_revision)
                        .build();
                    Obj::new()
                        .string_always("Endpoint", ep)
                        .raw("HashKV", &hk)
                        .build()
                })
                .collect();
            out(&format!("[{}]\n", items.join(",")));
        }
        OutputFormat::Table => {
            let t: Vec<Vec<String>> = rows
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            out(&table(&["ENDPOINT", "HASH"], &t));
        }
        _ => {
            let mut o = String::new();
            for (ep, h) in &rows {
                o.push_str(&format!("{ep}, {}\n", h.hash));
            }
            out(&o);
        }
    }
    if rows.len() == eps.len() {
        Ok(())
    } else {
        Err(KvError::Failed(
            "failed to get the hash of every endpoint".into(),
        ))
    }
}
