//! `keelson kv member list|add|remove|update|promote`.

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{go_quote, json_str, out, out_bytes, table, Obj, OutputFormat};

#[derive(Args, Debug)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Adds a member into the cluster
    Add {
        /// comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long)]
        learner: bool,
        /// <memberName>
        args: Vec<String>,
    },
    /// Removes a member from the cluster
    Remove {
        /// <memberID>
        args: Vec<String>,
    },
    /// Updates a member in the cluster
    Update {
        /// comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// <memberID>
        args: Vec<String>,
    },
    /// Lists all members in the cluster
    List,
    /// Promotes a non-voting member in the cluster
    Promote {
        /// <memberID>
        args: Vec<String>,
    },
}

fn member_id(args: &[String]) -> Result<u64, KvError> {
    if args.len() != 1 {
        return Err(KvError::BadArgs("member ID is not provided".into()));
    }
    u64::from_str_radix(&args[0], 16).map_err(|_| {
        KvError::BadArgs(format!(
            "bad member ID arg (strconv.ParseUint: parsing {:?}: invalid syntax), expecting ID in Hex",
            args[0]
        ))
    })
}

fn urls(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

fn cluster_id(h: Option<&pb::ResponseHeader>) -> u64 {
    h.map(|h| h.cluster_id).unwrap_or(0)
}

pub fn member_json(m: &pb::Member) -> String {
    let strs = |v: &[String]| v.iter().map(|s| json_str(s)).collect::<Vec<_>>();
    Obj::new()
        .int("ID", m.id)
        .string("name", &m.name)
        .array("peerURLs", strs(&m.peer_ur_ls))
        .array("clientURLs", strs(&m.client_ur_ls))
        .flag("isLearner", m.is_learner)
        .build()
}

pub async fn run(global: &GlobalFlags, args: MemberArgs) -> Result<(), KvError> {
    let format = global.output()?;
    match args.command {
        MemberCommand::List => {
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
            print_list(&r, format);
        }
        MemberCommand::Add {
            peer_urls,
            learner,
            args,
        } => {
            if args.len() != 1 {
                return Err(KvError::BadArgs("member name not provided".into()));
            }
            if args.len() > 1 {
                return Err(KvError::BadArgs("too many arguments".into()));
            }
            let name = &args[0];
            if peer_urls.is_empty() {
                return Err(KvError::BadArgs("member peer urls not provided".into()));
            }
            let peers = urls(&peer_urls);
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.cluster()
                        .member_add(pb::MemberAddRequest {
                            peer_ur_ls: peers.clone(),
                            is_learner: learner,
                        })
                        .await
                })
                .await?
                .into_inner();
            let new_id = r.member.as_ref().map(|m| m.id).unwrap_or(0);
            match format {
                OutputFormat::Json => out(&format!(
                    "{}\n",
                    Obj::new()
                        .header(r.header.as_ref())
                        .raw_opt("member", r.member.as_ref().map(member_json))
                        .array("members", r.members.iter().map(member_json).collect())
                        .build()
                )),
                OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                _ => {
                    let mut s = format!(
                        "Member {:>16x} added to cluster {:>16x}\n",
                        new_id,
                        cluster_id(r.header.as_ref())
                    );
                    let mut conf = Vec::new();
                    for m in &r.members {
                        for u in &m.peer_ur_ls {
                            let n = if m.id == new_id {
                                name.as_str()
                            } else {
                                m.name.as_str()
                            };
                            conf.push(format!("{n}={u}"));
                        }
                    }
                    s.push_str(&format!(
                        "\nETCD_NAME=\"{name}\"\nETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
                        conf.join(","),
                        peers.join(",")
                    ));
                    out(&s);
                }
            }
        }
        MemberCommand::Remove { args } => {
            let id = member_id(&args)?;
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.cluster()
                        .member_remove(pb::MemberRemoveRequest { id })
                        .await
                })
                .await?
                .into_inner();
            out(&format!(
                "Member {:>16x} removed from cluster {:>16x}\n",
                id,
                cluster_id(r.header.as_ref())
            ));
        }
        MemberCommand::Update { peer_urls, args } => {
            let id = member_id(&args)?;
            if peer_urls.is_empty() {
                return Err(KvError::BadArgs("member peer urls not provided".into()));
            }
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.cluster()
                        .member_update(pb::MemberUpdateRequest {
                            id,
                            peer_ur_ls: urls(&peer_urls),
                        })
                        .await
                })
                .await?
                .into_inner();
            out(&format!(
                "Member {:>16x} updated in cluster {:>16x}\n",
                id,
                cluster_id(r.header.as_ref())
            ));
        }
        MemberCommand::Promote { args } => {
            let id = member_id(&args)?;
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.cluster()
                        .member_promote(pb::MemberPromoteRequest { id })
                        .await
                })
                .await?
                .into_inner();
            out(&format!(
                "Member {:>16x} promoted in cluster {:>16x}\n",
                id,
                cluster_id(r.header.as_ref())
            ));
        }
    }
    Ok(())
}

fn status(m: &pb::Member) -> &'static str {
    if m.name.is_empty() {
        "unstarted"
    } else {
        "started"
    }
}

pub fn print_list(r: &pb::MemberListResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => out(&format!(
            "{}\n",
            Obj::new()
                .header(r.header.as_ref())
                .array("members", r.members.iter().map(member_json).collect())
                .build()
        )),
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
        OutputFormat::Fields => {
            let mut s = super::output::fields_header(r.header.as_ref());
            for m in &r.members {
                s.push_str(&format!(
                    "\"ID\" : {}\n\"Name\" : {}\n",
                    m.id,
                    go_quote(m.name.as_bytes())
                ));
                for u in &m.peer_ur_ls {
                    s.push_str(&format!("\"PeerURL\" : {}\n", go_quote(u.as_bytes())));
                }
                for u in &m.client_ur_ls {
                    s.push_str(&format!("\"ClientURL\" : {}\n", go_quote(u.as_bytes())));
                }
                s.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
            }
            out(&s);
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = r
                .members
                .iter()
                .map(|m| {
                    vec![
                        format!("{:x}", m.id),
                        status(m).into(),
                        m.name.clone(),
                        m.peer_ur_ls.join(","),
                        m.client_ur_ls.join(","),
                        m.is_learner.to_string(),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER",
                ],
                &rows,
            ));
        }
        OutputFormat::Simple => {
            let mut s = String::new();
            for m in &r.members {
                s.push_str(&format!(
                    "{:x}, {}, {}, {}, {}, {}\n",
                    m.id,
                    status(m),
                    m.name,
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner
                ));
            }
            out(&s);
        }
    }
}
