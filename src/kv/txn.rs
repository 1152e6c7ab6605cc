//! `keelson kv txn`: compares, success requests and failure requests read from stdin, each
//! section ended by an empty line, in etcdctl's syntax:
//!
//! ```text
//! mod("key1") > "0"
//! value("key2") = "x"
//!
//! put key1 "new value"
//! get key2 --prefix
//!
//! del key1
//!
//! ```

use std::io::BufRead;

use clap::{Args, Parser};
use keelson_proto::etcdserverpb as pb;
use prost::Message;

use super::client::GlobalFlags;
use super::del::{self, DelArgs};
use super::error::KvError;
use super::get::{self, GetArgs};
use super::output::{fields_header, out, out_bytes, txn_json, OutputFormat};
use super::put::{self, PutArgs};

#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// txn takes no arguments
    #[arg(hide = true)]
    pub args: Vec<String>,
}

/// etcdctl's `argify`: whitespace-separated words, "double quoted" (Go escapes) or 'single
/// quoted' words kept whole.
pub fn argify(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        match c {
            '"' => {
                chars.next();
                let mut raw = String::from("\"");
                let mut escaped = false;
                for ch in chars.by_ref() {
                    raw.push(ch);
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' {
                        escaped = true;
                    } else if ch == '"' {
                        break;
                    }
                }
                word = go_unquote(&raw).unwrap_or_default();
            }
            '\'' => {
                chars.next();
                for ch in chars.by_ref() {
                    if ch == '\'' {
                        break;
                    }
                    word.push(ch);
                }
            }
            _ => {
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
            }
        }
        out.push(word);
    }
    out
}

/// Go's `strconv.Unquote` for a double-quoted string.
pub fn go_unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut bytes = Vec::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            if c == '"' {
                return None;
            }
            out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
            out.push(c);
            continue;
        }
        let e = it.next()?;
        let ch = match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'x' => {
                let h: String = it.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(&h, 16).ok()?);
                continue;
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = it.by_ref().take(n).collect();
                char::from_u32(u32::from_str_radix(&h, 16).ok()?)?
            }
            _ => return None,
        };
        out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
        out.push(ch);
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    Some(out)
}

/// Reads one Go `%q` token (a double-quoted string) at the start of `s`; returns it and the rest.
fn scan_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if !s.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((go_unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    None
}

/// Parses one compare line: `target("key") op "value"`.
pub fn parse_compare(line: &str) -> Result<pb::Compare, KvError> {
    let malformed = || KvError::InvalidInput(format!("malformed comparison: {line}"));
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = scan_quoted(rest).ok_or_else(malformed)?;
    let rest = rest.strip_prefix(')').ok_or_else(malformed)?;
    let rest = rest.trim_start();
    let op_end = rest.find(char::is_whitespace).ok_or_else(malformed)?;
    let (op, rest) = rest.split_at(op_end);
    let (val, _) = scan_quoted(rest).ok_or_else(malformed)?;
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match op {
        "=" | "==" => R::Equal,
        "!=" => R::NotEqual,
        "<" => R::Less,
        ">" => R::Greater,
        _ => {
            return Err(KvError::InvalidInput(format!(
                "malformed comparison: {line} (unknown op {op})"
            )))
        }
    };
    let invalid = || KvError::InvalidInput(format!("invalid txn compare request: {line}"));
    let int = |v: &str| v.parse::<i64>().map_err(|_| invalid());
    let (target, union) = match target {
        "ver" | "version" => (T::Version, U::Version(int(&val)?)),
        "c" | "create" => (T::Create, U::CreateRevision(int(&val)?)),
        "m" | "mod" => (T::Mod, U::ModRevision(int(&val)?)),
        "val" | "value" => (T::Value, U::Value(val.into_bytes())),
        "lease" => (
            T::Lease,
            U::Lease(put::parse_lease_hex(&val).map_err(|_| invalid())?),
        ),
        other => {
            return Err(KvError::InvalidInput(format!(
                "malformed comparison: {line} (unknown target {other})"
            )))
        }
    };
    Ok(pb::Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
enum TxnOp {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// Parses one request line: `put k v`, `get k --prefix`, `del k`.
pub fn parse_op(line: &str) -> Result<pb::RequestOp, KvError> {
    let invalid = || KvError::InvalidInput(format!("invalid txn request: {line}"));
    let args = argify(line);
    if args.len() < 2 {
        return Err(KvError::InvalidInput(format!(
            "invalid txn compare request: {line}"
        )));
    }
    use pb::request_op::Request as Q;
    let req = match TxnOp::try_parse_from(args).map_err(|_| invalid())? {
        TxnOp::Put(a) => Q::RequestPut(put::put_request(&a, &mut std::io::empty())?),
        TxnOp::Get(a) => Q::RequestRange(get::get_request(&a)?),
        TxnOp::Del(a) => Q::RequestDeleteRange(del::del_request(&a)?),
    };
    Ok(pb::RequestOp { request: Some(req) })
}

/// Reads lines up to an empty one. End of input before it is an error, as in etcdctl.
fn read_section(r: &mut dyn BufRead) -> Result<Vec<String>, KvError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| KvError::InvalidInput(e.to_string()))?;
        if n == 0 {
            return Err(KvError::InvalidInput("EOF".into()));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

/// Reads a whole transaction in etcdctl's format.
pub fn read_txn(r: &mut dyn BufRead, interactive: bool) -> Result<pb::TxnRequest, KvError> {
    let prompt = |p: &str| {
        if interactive {
            out(&format!("{p}\n"));
        }
    };
    prompt("compares:");
    let compare = read_section(r)?
        .iter()
        .map(|l| parse_compare(l))
        .collect::<Result<Vec<_>, _>>()?;
    prompt("success requests (get, put, del):");
    let success = read_section(r)?
        .iter()
        .map(|l| parse_op(l))
        .collect::<Result<Vec<_>, _>>()?;
    prompt("failure requests (get, put, del):");
    let failure = read_section(r)?
        .iter()
        .map(|l| parse_op(l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::TxnRequest {
        compare,
        success,
        failure,
    })
}

pub async fn run(global: &GlobalFlags, args: TxnArgs) -> Result<(), KvError> {
    if !args.args.is_empty() {
        return Err(KvError::BadArgs(
            "txn command does not accept argument".into(),
        ));
    }
    let format = global.output()?;
    let req = read_txn(&mut std::io::stdin().lock(), args.interactive)?;
    let c = global.connect().await?;
    // etcdctl commits a txn without the command timeout.
    let resp = c.kv().txn(req).await?.into_inner();
    print_txn(&resp, format, global.hex);
    Ok(())
}

pub fn simple_txn(r: &pb::TxnResponse, hex: bool) -> String {
    use pb::response_op::Response as R;
    let mut s = String::from(if r.succeeded {
        "SUCCESS\n"
    } else {
        "FAILURE\n"
    });
    for op in &r.responses {
        s.push('\n');
        match &op.response {
            Some(R::ResponseRange(x)) => s.push_str(&get::simple_range(x, hex, false)),
            Some(R::ResponsePut(x)) => s.push_str(&put::simple_put(x, hex)),
            Some(R::ResponseDeleteRange(x)) => s.push_str(&del::simple_del(x, hex)),
            Some(R::ResponseTxn(x)) => s.push_str(&simple_txn(x, hex)),
            None => {}
        }
    }
    s
}

pub fn fields_txn(r: &pb::TxnResponse, hex: bool) -> String {
    use pb::response_op::Response as R;
    let mut s = fields_header(r.header.as_ref());
    s.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
    for op in &r.responses {
        match &op.response {
            Some(R::ResponseRange(x)) => s.push_str(&get::fields_range(x, hex)),
            Some(R::ResponsePut(x)) => s.push_str(&put::fields_put(x, hex)),
            Some(R::ResponseDeleteRange(x)) => s.push_str(&del::fields_del(x, hex)),
            Some(R::ResponseTxn(x)) => s.push_str(&fields_txn(x, hex)),
            None => {}
        }
    }
    s
}

pub fn print_txn(r: &pb::TxnResponse, format: OutputFormat, hex: bool) {
    match format {
        OutputFormat::Simple | OutputFormat::Table => out(&simple_txn(r, hex)),
        OutputFormat::Json => out(&format!("{}\n", txn_json(r))),
        OutputFormat::Fields => out(&fields_txn(r, hex)),
        OutputFormat::Protobuf => out_bytes(&r.encode_to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_like_etcdctl() {
        assert_eq!(
            argify(r#"put k "a \"b\" c" 'x y' --prev-kv"#),
            vec!["put", "k", "a \"b\" c", "x y", "--prev-kv"]
        );
    }

    #[test]
    fn parses_a_whole_txn() {
        let input = "value(\"k3\") = \"cherry5\"\nversion(\"k3\") > \"5\"\nmod(\"k1\") < \"14\"\n\nput t/1 one\nget t/ --prefix\ndel t/1\n\nput t/2 two\n\n";
        let t = read_txn(&mut input.as_bytes(), false).expect("parses");
        assert_eq!(t.compare.len(), 3);
        assert_eq!(
            t.compare[1].result,
            pb::compare::CompareResult::Greater as i32
        );
        assert_eq!(
            t.compare[1].target_union,
            Some(pb::compare::TargetUnion::Version(5))
        );
        assert_eq!(t.success.len(), 3);
        match &t.success[1].request {
            Some(pb::request_op::Request::RequestRange(r)) => {
                assert_eq!(
                    (r.key.as_slice(), r.range_end.as_slice()),
                    (&b"t/"[..], &b"t0"[..])
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(t.failure.len(), 1);
    }

    #[test]
    fn empty_sections_and_errors() {
        let t = read_txn(&mut "\nput a 1\n\n\n".as_bytes(), false).expect("parses");
        assert!(t.compare.is_empty() && t.failure.is_empty());
        assert_eq!(t.success.len(), 1);
        let e = read_txn(&mut "\nput a 1\n".as_bytes(), false).expect_err("eof");
        assert_eq!((e.to_string().as_str(), e.exit_code()), ("EOF", 3));
        let e = parse_compare("bogus(\"k\") = \"1\"").expect_err("target");
        assert_eq!(e.exit_code(), 3);
        assert!(parse_op("frob a b").is_err());
    }
}
