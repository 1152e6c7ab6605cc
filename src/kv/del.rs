//! `keelson kv del`.

use clap::Args;
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::get::prefix_end;
use super::output::{self, del_json, fields_header, fields_kv, out, out_bytes, OutputFormat};
use super::put::prefixed;

#[derive(Args, Debug, Clone, Default)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// <key> [range_end]
    pub args: Vec<String>,
}

/// Builds the DeleteRangeRequest etcdctl's `getDelOp` builds.
pub fn del_request(a: &DelArgs) -> Result<pb::DeleteRangeRequest, KvError> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(KvError::BadArgs(
            "del command needs one argument as key and an optional argument as range_end".into(),
        ));
    }
    if a.prefix && a.from_key {
        return Err(KvError::BadArgs(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one".into(),
        ));
    }
    let mut key = a.args[0].clone().into_bytes();
    let mut range_end = Vec::new();
    if let Some(end) = a.args.get(1) {
        if a.prefix || a.from_key {
            return Err(KvError::BadArgs(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set."
                    .into(),
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
    if a.from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    Ok(pb::DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    })
}

pub async fn run(global: &GlobalFlags, args: DelArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let req = del_request(&args)?;
    let c = global.connect().await?;
    let resp = c
        .timed(async { c.kv().delete_range(req).await })
        .await?
        .into_inner();
    print_del(&resp, format, global.hex);
    Ok(())
}

pub fn simple_del(r: &pb::DeleteRangeResponse, hex: bool) -> String {
    let mut s = format!("{}\n", r.deleted);
    for kv in &r.prev_kvs {
        s.push_str(&output::simple_kv(kv, hex, false));
    }
    s
}

pub fn fields_del(r: &pb::DeleteRangeResponse, hex: bool) -> String {
    let mut s = fields_header(r.header.as_ref());
    s.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
    for kv in &r.prev_kvs {
        s.push_str(&prefixed(&fields_kv(kv, hex), "Prev"));
    }
    s
}

pub fn print_del(r: &pb::DeleteRangeResponse, format: OutputFormat, hex: bool) {
    match format {
        OutputFormat::Simple | OutputFormat::Table => out(&simple_del(r, hex)),
        OutputFormat::Json => out(&format!("{}\n", del_json(r))),
        OutputFormat::Fields => out(&fields_del(r, hex)),
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
    }
}
