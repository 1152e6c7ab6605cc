//! `keelson kv put`.

use std::io::Read;

use clap::Args;
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{self, fields_header, fields_kv, out, out_bytes, put_json, OutputFormat};

#[derive(Args, Debug, Clone, Default)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long = "prev-kv")]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long = "ignore-value")]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long = "ignore-lease")]
    pub ignore_lease: bool,
    /// <key> <value>
    pub args: Vec<String>,
}

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

/// Builds the PutRequest etcdctl's `getPutOp` builds; `stdin` supplies the value when only
/// the key is given.
pub fn put_request(a: &PutArgs, stdin: &mut dyn Read) -> Result<pb::PutRequest, KvError> {
    let Some(key) = a.args.first() else {
        return Err(KvError::BadArgs(NEEDS_ARGS.into()));
    };
    if a.ignore_value && a.args.len() > 1 {
        return Err(KvError::BadArgs(
            "put command needs only 1 argument when 'ignore-value' is set".into(),
        ));
    }
    let mut value = Vec::new();
    if !a.ignore_value {
        match a.args.get(1) {
            Some(v) => value = v.clone().into_bytes(),
            None => {
                stdin
                    .read_to_end(&mut value)
                    .map_err(|_| KvError::BadArgs(NEEDS_ARGS.into()))?;
                if value.is_empty() {
                    return Err(KvError::BadArgs(NEEDS_ARGS.into()));
                }
            }
        }
    }
    let lease = parse_lease_hex(&a.lease)
        .map_err(|e| KvError::BadArgs(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(pb::PutRequest {
        key: key.clone().into_bytes(),
        value,
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// Parses a lease ID written in hex like Go's `strconv.ParseInt(s, 16, 64)`, with its error text.
pub fn parse_lease_hex(s: &str) -> Result<i64, String> {
    i64::from_str_radix(s, 16).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {s:?}: {why}")
    })
}

pub async fn run(global: &GlobalFlags, args: PutArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let req = put_request(&args, &mut std::io::stdin().lock())?;
    let c = global.connect().await?;
    let resp = c.timed(async { c.kv().put(req).await }).await?.into_inner();
    print_put(&resp, format, global.hex);
    Ok(())
}

pub fn simple_put(r: &pb::PutResponse, hex: bool) -> String {
    let mut s = String::from("OK\n");
    if let Some(kv) = &r.prev_kv {
        s.push_str(&output::simple_kv(kv, hex, false));
    }
    s
}

pub fn fields_put(r: &pb::PutResponse, hex: bool) -> String {
    let mut s = fields_header(r.header.as_ref());
    if let Some(kv) = &r.prev_kv {
        s.push_str(&prefixed(&fields_kv(kv, hex), "Prev"));
    }
    s
}

/// etcdctl's fields printer names previous key-values `"PrevKey"`, `"PrevValue"`, ...
pub fn prefixed(fields: &str, pfx: &str) -> String {
    fields
        .lines()
        .map(|l| format!("\"{pfx}{}\n", l.trim_start_matches('"')))
        .collect()
}

pub fn print_put(r: &pb::PutResponse, format: OutputFormat, hex: bool) {
    match format {
        OutputFormat::Simple | OutputFormat::Table => out(&simple_put(r, hex)),
        OutputFormat::Json => out(&format!("{}\n", put_json(r))),
        OutputFormat::Fields => out(&fields_put(r, hex)),
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_from_args_or_stdin() {
        let a = PutArgs {
            lease: "0".into(),
            args: vec!["k".into()],
            ..Default::default()
        };
        let r = put_request(&a, &mut &b"from stdin"[..]).expect("request");
        assert_eq!(r.value, b"from stdin");
        let e = put_request(&a, &mut &b""[..]).expect_err("empty stdin");
        assert_eq!((e.to_string().as_str(), e.exit_code()), (NEEDS_ARGS, 128));
        let a = PutArgs {
            lease: "zz".into(),
            args: vec!["k".into(), "v".into()],
            ..Default::default()
        };
        assert_eq!(
            put_request(&a, &mut &b""[..])
                .expect_err("bad lease")
                .to_string(),
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
    }

    #[test]
    fn prev_kv_fields_are_prefixed() {
        assert_eq!(
            prefixed("\"Key\" : \"k\"\n", "Prev"),
            "\"PrevKey\" : \"k\"\n"
        );
    }
}
