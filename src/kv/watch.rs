//! `keelson kv watch`: prints events as they come; `-i` reads `watch ...` lines from stdin;
//! `watch key -- CMD ARGS` runs CMD for every event with `ETCD_WATCH_*` in its environment.

use std::io::BufRead;

use clap::{Args, Parser};
use keelson_proto::etcdserverpb as pb;
use keelson_proto::mvccpb;
use prost::Message;

use super::client::{Clients, GlobalFlags};
use super::error::KvError;
use super::get::prefix_end;
use super::output::{event_json, header_json, out, out_bytes, simple_kv, OutputFormat};
use super::txn::argify;

#[derive(Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long = "progress-notify")]
    pub progress_notify: bool,
    /// <key> [range_end]
    pub args: Vec<String>,
    /// [-- <exec-command> arg1 arg2 ...]
    #[arg(last = true)]
    pub exec: Vec<String>,
}

#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
enum Interactive {
    Watch(WatchArgs),
}

fn create_request(a: &WatchArgs) -> Result<pb::WatchCreateRequest, KvError> {
    let Some(key) = a.args.first() else {
        return Err(KvError::BadArgs("bad number of arguments".into()));
    };
    if a.args.len() > 2 {
        return Err(KvError::BadArgs("bad number of arguments".into()));
    }
    let mut key = key.clone().into_bytes();
    let mut range_end = Vec::new();
    if let Some(end) = a.args.get(1) {
        if a.prefix {
            return Err(KvError::BadArgs(
                "`range_end` and `--prefix` are mutually exclusive".into(),
            ));
        }
        range_end = end.clone().into_bytes();
    }
    if a.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    Ok(pb::WatchCreateRequest {
        key,
        range_end,
        start_revision: a.rev,
        progress_notify: a.progress_notify,
        prev_kv: a.prev_kv,
        ..Default::default()
    })
}

pub async fn run(global: &GlobalFlags, args: WatchArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let c = global.connect().await?;
    if args.interactive {
        return interactive(global, &c, format).await;
    }
    let req = create_request(&args)?;
    watch_until_canceled(&c, req, format, global.hex, &args.exec).await?;
    Err(KvError::Interrupted(
        "watch is canceled by the server".into(),
    ))
}

async fn interactive(
    global: &GlobalFlags,
    c: &Clients,
    format: OutputFormat,
) -> Result<(), KvError> {
    // Each line starts its watch as soon as it is read.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut tasks = Vec::new();
    while let Some(line) = rx.recv().await {
        let words = argify(&line);
        if words.is_empty() {
            continue;
        }
        let args = match Interactive::try_parse_from(words) {
            Ok(Interactive::Watch(a)) => a,
            Err(_) => {
                eprintln!("Invalid command {line} (only support watch)");
                continue;
            }
        };
        let req = match create_request(&args) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Invalid command {line} ({e})");
                continue;
            }
        };
        let c = c.clone();
        let hex = global.hex;
        tasks.push(tokio::spawn(async move {
            let _ = watch_until_canceled(&c, req, format, hex, &args.exec).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Err(KvError::Interrupted(
        "watch is canceled by the server".into(),
    ))
}

/// Watches until the server cancels the watch (or the stream ends), printing every response.
async fn watch_until_canceled(
    c: &Clients,
    req: pb::WatchCreateRequest,
    format: OutputFormat,
    hex: bool,
    exec: &[String],
) -> Result<(), KvError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(req)),
    });
    let mut request = tonic::Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
    request.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    let mut stream = c.watch().watch(request).await?.into_inner();
    while let Some(resp) = stream.message().await? {
        if resp.created && resp.events.is_empty() && !resp.canceled {
            continue;
        }
        if resp.canceled {
            let why = if resp.compact_revision != 0 {
                "etcdserver: mvcc: required revision has been compacted".to_string()
            } else if !resp.cancel_reason.is_empty() {
                resp.cancel_reason.clone()
            } else {
                "context canceled".to_string()
            };
            out(&format!("watch was canceled ({why})\n"));
        }
        let progress = resp.events.is_empty() && !resp.canceled && resp.compact_revision == 0;
        if progress {
            if let Some(h) = &resp.header {
                out(&format!("progress notify: {}\n", h.revision));
            }
        }
        print_watch(&resp, format, hex);
        if !exec.is_empty() {
            run_exec(exec, &resp).await?;
        }
        if resp.canceled {
            break;
        }
    }
    drop(tx);
    Ok(())
}

fn event_type(e: &mvccpb::Event) -> &'static str {
    if e.r#type == mvccpb::event::EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

pub fn print_watch(r: &pb::WatchResponse, format: OutputFormat, hex: bool) {
    match format {
        OutputFormat::Json => {
            let events: Vec<String> = r.events.iter().map(event_json).collect();
            out(&format!(
                "{{\"Header\":{},\"Events\":{},\"CompactRevision\":{},\"Canceled\":{},\"Created\":{}}}\n",
                r.header.as_ref().map(header_json).unwrap_or_else(|| "{}".into()),
                if events.is_empty() { "null".to_string() } else { format!("[{}]", events.join(",")) },
                r.compact_revision,
                r.canceled,
                r.created
            ));
        }
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
        _ => {
            let mut s = String::new();
            for e in &r.events {
                s.push_str(event_type(e));
                s.push('\n');
                if let Some(p) = &e.prev_kv {
                    s.push_str(&simple_kv(p, hex, false));
                }
                if let Some(kv) = &e.kv {
                    s.push_str(&simple_kv(kv, hex, false));
                }
            }
            out(&s);
        }
    }
}

/// Go's `%q` of a byte string, for the `ETCD_WATCH_*` variables.
fn q(b: &[u8]) -> String {
    super::output::go_quote(b)
}

async fn run_exec(exec: &[String], r: &pb::WatchResponse) -> Result<(), KvError> {
    let rev = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = tokio::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", rev.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", format!("\"{}\"", event_type(e)))
            .env("ETCD_WATCH_KEY", q(&kv.key))
            .env("ETCD_WATCH_VALUE", q(&kv.value))
            .status()
            .await;
        let failed = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("exit status {}", s.code().unwrap_or(-1))),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            eprintln!("command {exec:?} error ({why})");
            return Err(KvError::Failed(format!("command {exec:?} failed")));
        }
    }
    Ok(())
}
