//! `keelson kv get`.

use clap::Args;
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::error::KvError;
use super::output::{self, fields_header, fields_kv, out, out_bytes, range_json, OutputFormat};

#[derive(Args, Debug, Clone, Default)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long = "sort-by", default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long = "keys-only")]
    pub keys_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long = "print-value-only")]
    pub print_value_only: bool,
    /// <key> [range_end]
    pub args: Vec<String>,
}

/// The end of the range holding every key that starts with `key` (clientv3's GetPrefixRangeEnd).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Builds the RangeRequest etcdctl's `getGetOp` builds.
pub fn get_request(a: &GetArgs) -> Result<pb::RangeRequest, KvError> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(KvError::BadArgs(
            "get command needs one argument as key and an optional argument as range_end".into(),
        ));
    }
    if a.prefix && a.from_key {
        return Err(KvError::BadArgs(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one".into(),
        ));
    }
    let serializable = match a.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(KvError::Unsupported(format!(
                "unknown consistency flag {other:?}"
            )))
        }
    };
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
    let mut sort_order = match a.order.to_uppercase().as_str() {
        "ASCEND" => pb::range_request::SortOrder::Ascend,
        "DESCEND" => pb::range_request::SortOrder::Descend,
        "" => pb::range_request::SortOrder::None,
        _ => return Err(KvError::Unsupported(format!("bad sort order {}", a.order))),
    };
    let sort_target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => pb::range_request::SortTarget::Create,
        "KEY" | "" => pb::range_request::SortTarget::Key,
        "MODIFY" => pb::range_request::SortTarget::Mod,
        "VALUE" => pb::range_request::SortTarget::Value,
        "VERSION" => pb::range_request::SortTarget::Version,
        _ => {
            return Err(KvError::Unsupported(format!(
                "bad sort target {}",
                a.sort_by
            )))
        }
    };
    // The server returns keys in ascending order anyway (clientv3's WithSort).
    if sort_target == pb::range_request::SortTarget::Key
        && sort_order == pb::range_request::SortOrder::Ascend
    {
        sort_order = pb::range_request::SortOrder::None;
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
    Ok(pb::RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: a.rev.max(0),
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable,
        keys_only: a.keys_only,
        ..Default::default()
    })
}

pub async fn run(global: &GlobalFlags, args: GetArgs) -> Result<(), KvError> {
    let format = global.output()?;
    let req = get_request(&args)?;
    let c = global.connect().await?;
    let resp = c
        .timed(async { c.kv().range(req).await })
        .await?
        .into_inner();
    print_range(&resp, format, global.hex, args.print_value_only);
    Ok(())
}

pub fn simple_range(r: &pb::RangeResponse, hex: bool, value_only: bool) -> String {
    r.kvs
        .iter()
        .map(|kv| output::simple_kv(kv, hex, value_only))
        .collect()
}

pub fn fields_range(r: &pb::RangeResponse, hex: bool) -> String {
    let mut s = fields_header(r.header.as_ref());
    for kv in &r.kvs {
        s.push_str(&fields_kv(kv, hex));
    }
    s.push_str(&format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count));
    s
}

pub fn print_range(r: &pb::RangeResponse, format: OutputFormat, hex: bool, value_only: bool) {
    match format {
        OutputFormat::Simple | OutputFormat::Table => out(&simple_range(r, hex, value_only)),
        OutputFormat::Json => out(&format!("{}\n", range_json(r))),
        OutputFormat::Fields => out(&fields_range(r, hex)),
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> GetArgs {
        GetArgs {
            consistency: "l".into(),
            args: v.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_and_from_key_ranges() {
        assert_eq!(prefix_end(b"k"), b"l");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        let mut a = args(&["k"]);
        a.prefix = true;
        let r = get_request(&a).expect("request");
        assert_eq!((r.key, r.range_end), (b"k".to_vec(), b"l".to_vec()));
        let mut a = args(&[""]);
        a.from_key = true;
        let r = get_request(&a).expect("request");
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn argument_errors_match_etcdctl() {
        let e = get_request(&args(&[])).expect_err("no key");
        assert_eq!(e.exit_code(), 128);
        let mut a = args(&["k"]);
        a.sort_by = "FOO".into();
        let e = get_request(&a).expect_err("bad target");
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("bad sort target FOO", 4)
        );
        let mut a = args(&["k"]);
        a.prefix = true;
        a.from_key = true;
        assert_eq!(get_request(&a).expect_err("both").exit_code(), 128);
    }
}
