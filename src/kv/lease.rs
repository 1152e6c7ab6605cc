//! `keelson kv lease grant|revoke|timetolive|list|keep-alive`.

use clap::{Args, Subcommand};
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{base64, fields_header, hex_id, json_str, out, out_bytes, Obj, OutputFormat};

#[derive(Args, Debug)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    Grant {
        /// <ttl>
        args: Vec<String>,
    },
    /// Revokes leases
    Revoke {
        /// <leaseID>
        args: Vec<String>,
    },
    /// Get lease information
    Timetolive {
        /// Get keys attached to this lease
        #[arg(long)]
        keys: bool,
        /// <leaseID>
        args: Vec<String>,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive {
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long)]
        once: bool,
        /// <leaseID>
        args: Vec<String>,
    },
}

fn lease_arg(args: &[String], what: &str) -> Result<i64, KvError> {
    if args.len() != 1 {
        return Err(KvError::BadArgs(format!("{what} command needs 1 argument")));
    }
    super::put::parse_lease_hex(&args[0])
        .map_err(|e| KvError::BadArgs(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

fn with_header(h: Option<&pb::ResponseHeader>) -> Obj {
    Obj::new().header_fields(h)
}

pub async fn run(global: &GlobalFlags, args: LeaseArgs) -> Result<(), KvError> {
    let format = global.output()?;
    match args.command {
        LeaseCommand::Grant { args } => {
            if args.len() != 1 {
                return Err(KvError::BadArgs(
                    "lease grant command needs TTL argument".into(),
                ));
            }
            let ttl: i64 = args[0].parse().map_err(|_| {
                KvError::BadArgs(format!(
                    "bad TTL (strconv.ParseInt: parsing {:?}: invalid syntax)",
                    args[0]
                ))
            })?;
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.lease()
                        .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
                        .await
                })
                .await
                .map_err(|e| KvError::Failed(format!("failed to grant lease ({e})")))?
                .into_inner();
            match format {
                OutputFormat::Json => out(&format!(
                    "{}\n",
                    with_header(r.header.as_ref())
                        .int_always("ID", r.id)
                        .int_always("TTL", r.ttl)
                        .string_always("Error", &r.error)
                        .build()
                )),
                OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                OutputFormat::Fields => out(&format!(
                    "{}\"ID\" : {}\n\"TTL\" : {}\n",
                    fields_header(r.header.as_ref()),
                    r.id,
                    r.ttl
                )),
                _ => out(&format!(
                    "lease {} granted with TTL({}s)\n",
                    hex_id(r.id),
                    r.ttl
                )),
            }
        }
        LeaseCommand::Revoke { args } => {
            let id = lease_arg(&args, "lease revoke")?;
            let c = global.connect().await?;
            let r = c
                .timed(async { c.lease().lease_revoke(pb::LeaseRevokeRequest { id }).await })
                .await
                .map_err(|e| KvError::Failed(format!("failed to revoke lease ({e})")))?
                .into_inner();
            match format {
                OutputFormat::Json => out(&format!(
                    "{}\n",
                    Obj::new().header(r.header.as_ref()).build()
                )),
                OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                OutputFormat::Fields => out(&fields_header(r.header.as_ref())),
                _ => out(&format!("lease {} revoked\n", hex_id(id))),
            }
        }
        LeaseCommand::Timetolive { keys, args } => {
            let id = lease_arg(&args, "lease timetolive")?;
            let c = global.connect().await?;
            let r = c
                .timed(async {
                    c.lease()
                        .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys })
                        .await
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => {
                    let ks = if r.keys.is_empty() {
                        "null".to_string()
                    } else {
                        format!(
                            "[{}]",
                            r.keys
                                .iter()
                                .map(|k| json_str(&base64(k)))
                                .collect::<Vec<_>>()
                                .join(",")
                        )
                    };
                    out(&format!(
                        "{}\n",
                        with_header(r.header.as_ref())
                            .int_always("id", r.id)
                            .int_always("ttl", r.ttl)
                            .int_always("granted-ttl", r.granted_ttl)
                            .raw("keys", &ks)
                            .build()
                    ))
                }
                OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                _ => {
                    if r.granted_ttl == 0 && r.ttl == -1 {
                        out(&format!("lease {} already expired\n", hex_id(r.id)));
                    } else {
                        let mut s = format!(
                            "lease {} granted with TTL({}s), remaining({}s)",
                            hex_id(r.id),
                            r.granted_ttl,
                            r.ttl
                        );
                        if keys {
                            let ks: Vec<String> = r
                                .keys
                                .iter()
                                .map(|k| String::from_utf8_lossy(k).into_owned())
                                .collect();
                            s.push_str(&format!(", attached keys([{}])", ks.join(" ")));
                        }
                        out(&format!("{s}\n"));
                    }
                }
            }
        }
        LeaseCommand::List => {
            let c = global.connect().await?;
            let r = c
                .timed(async { c.lease().lease_leases(pb::LeaseLeasesRequest {}).await })
                .await
                .map_err(|e| KvError::Failed(format!("failed to list leases ({e})")))?
                .into_inner();
            match format {
                OutputFormat::Json => {
                    let ls: Vec<String> = r
                        .leases
                        .iter()
                        .map(|l| format!("{{\"id\":{}}}", l.id))
                        .collect();
                    out(&format!(
                        "{}\n",
                        with_header(r.header.as_ref())
                            .raw("leases", &format!("[{}]", ls.join(",")))
                            .build()
                    ))
                }
                OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                _ => {
                    let mut s = format!("found {} leases\n", r.leases.len());
                    for l in &r.leases {
                        s.push_str(&format!("{}\n", hex_id(l.id)));
                    }
                    out(&s);
                }
            }
        }
        LeaseCommand::KeepAlive { once, args } => {
            let id = lease_arg(&args, "lease keep-alive")?;
            let c = global.connect().await?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            // grpc-go servers send response headers with the first response, so the first
            // request must be queued before waiting for the call to open.
            tx.send(pb::LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| KvError::Failed("keep-alive stream closed".into()))?;
            let mut first = true;
            let mut stream = c
                .lease()
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map_err(|e| KvError::BadConnection(super::error::grpc_text(&e)))?
                .into_inner();
            let not_found =
                || KvError::BadConnection("etcdserver: requested lease not found".into());
            loop {
                if !first && tx.send(pb::LeaseKeepAliveRequest { id }).await.is_err() {
                    break;
                }
                first = false;
                let r = match stream.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => return Err(KvError::BadConnection(super::error::grpc_text(&e))),
                };
                if r.ttl <= 0 {
                    if once {
                        return Err(not_found());
                    }
                    break;
                }
                match format {
                    OutputFormat::Json => out(&format!(
                        "{}\n",
                        with_header(r.header.as_ref())
                            .int_always("ID", r.id)
                            .int_always("TTL", r.ttl)
                            .build()
                    )),
                    OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
                    _ => out(&format!(
                        "lease {} keepalived with TTL({})\n",
                        hex_id(r.id),
                        r.ttl
                    )),
                }
                if once {
                    return Ok(());
                }
                // Renew at a third of the TTL, as the Go client does.
                let wait = std::time::Duration::from_millis((r.ttl as u64 * 1000 / 3).max(500));
                tokio::time::sleep(wait).await;
            }
            if format == OutputFormat::Simple {
                out(&format!("lease {} expired or revoked.\n", hex_id(id)));
            }
        }
    }
    Ok(())
}
