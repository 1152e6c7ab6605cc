//! The `-w/--write-out` writers (simple, json, fields, table, protobuf) and the formatting
//! helpers they share, reproducing what etcdctl 3.4 prints: JSON is Go's `encoding/json` of
//! etcd's gogo-protobuf structs (snake_case names, `omitempty`, bytes as base64, 64-bit
//! integers as numbers); fields is etcdctl's `"Name" : value` listing with Go `%q` strings;
//! table is etcdctl's tablewriter layout.

use std::io::Write;

use keelson_proto::etcdserverpb as pb;
use keelson_proto::mvccpb;

use super::error::KvError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self, KvError> {
        match s {
            "simple" => Ok(OutputFormat::Simple),
            "json" => Ok(OutputFormat::Json),
            "fields" => Ok(OutputFormat::Fields),
            "table" => Ok(OutputFormat::Table),
            "protobuf" => Ok(OutputFormat::Protobuf),
            _ => Err(KvError::Unsupported("unsupported output format".into())),
        }
    }
}

/// Writes `s` to stdout; a closed pipe is not an error worth a panic.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Writes raw bytes (the protobuf writer) to stdout.
pub fn out_bytes(b: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b);
    let _ = o.flush();
}

// ------------------------------------------------------------------------------------ json

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// A JSON string literal escaped like Go's `encoding/json` (including its HTML escaping).
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Builds one JSON object field by field, in the order Go declares them.
#[derive(Default)]
pub struct Obj {
    body: String,
}

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }
    /// Any pre-rendered JSON value.
    pub fn raw(mut self, name: &str, json: &str) -> Self {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&json_str(name));
        self.body.push(':');
        self.body.push_str(json);
        self
    }
    pub fn raw_opt(self, name: &str, json: Option<String>) -> Self {
        match json {
            Some(j) => self.raw(name, &j),
            None => self,
        }
    }
    /// An integer, left out when zero (`omitempty`).
    pub fn int<T: Into<i128>>(self, name: &str, v: T) -> Self {
        let v = v.into();
        if v == 0 {
            self
        } else {
            self.raw(name, &v.to_string())
        }
    }
    /// An integer that is always written.
    pub fn int_always<T: Into<i128>>(self, name: &str, v: T) -> Self {
        self.raw(name, &v.into().to_string())
    }
    /// Bytes as base64, left out when empty.
    pub fn bytes(self, name: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(name, &json_str(&base64(v)))
        }
    }
    /// A bool, left out when false.
    pub fn flag(self, name: &str, v: bool) -> Self {
        if v {
            self.raw(name, "true")
        } else {
            self
        }
    }
    pub fn bool_always(self, name: &str, v: bool) -> Self {
        self.raw(name, if v { "true" } else { "false" })
    }
    /// A string, left out when empty.
    pub fn string(self, name: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(name, &json_str(v))
        }
    }
    pub fn string_always(self, name: &str, v: &str) -> Self {
        self.raw(name, &json_str(v))
    }
    /// An array of pre-rendered values, left out when empty.
    pub fn array(self, name: &str, items: Vec<String>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.raw(name, &format!("[{}]", items.join(",")))
        }
    }
    /// The header's fields inline (Go struct embedding of `*pb.ResponseHeader`).
    pub fn header_fields(self, h: Option<&pb::ResponseHeader>) -> Self {
        match h {
            Some(h) => self
                .int("cluster_id", h.cluster_id)
                .int("member_id", h.member_id)
                .int("revision", h.revision)
                .int("raft_term", h.raft_term),
            None => self,
        }
    }
    pub fn header(self, h: Option<&pb::ResponseHeader>) -> Self {
        self.raw_opt("header", h.map(header_json))
    }
    pub fn build(self) -> String {
        format!("{{{}}}", self.body)
    }
}

pub fn header_json(h: &pb::ResponseHeader) -> String {
    Obj::new().header_fields(Some(h)).build()
}

pub fn kv_json(kv: &mvccpb::KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .build()
}

fn kvs_json(kvs: &[mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter().map(kv_json).collect()
}

pub fn range_json(r: &pb::RangeResponse) -> String {
    Obj::new()
        .header(r.header.as_ref())
        .array("kvs", kvs_json(&r.kvs))
        .flag("more", r.more)
        .int("count", r.count)
        .build()
}

pub fn put_json(r: &pb::PutResponse) -> String {
    Obj::new()
        .header(r.header.as_ref())
        .raw_opt("prev_kv", r.prev_kv.as_ref().map(kv_json))
        .build()
}

pub fn del_json(r: &pb::DeleteRangeResponse) -> String {
    Obj::new()
        .header(r.header.as_ref())
        .int("deleted", r.deleted)
        .array("prev_kvs", kvs_json(&r.prev_kvs))
        .build()
}

pub fn txn_json(r: &pb::TxnResponse) -> String {
    use pb::response_op::Response as R;
    let ops = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(R::ResponseRange(x)) => format!("{{\"ResponseRange\":{}}}", range_json(x)),
                Some(R::ResponsePut(x)) => format!("{{\"ResponsePut\":{}}}", put_json(x)),
                Some(R::ResponseDeleteRange(x)) => {
                    format!("{{\"ResponseDeleteRange\":{}}}", del_json(x))
                }
                Some(R::ResponseTxn(x)) => format!("{{\"ResponseTxn\":{}}}", txn_json(x)),
                None => return "{}".to_string(),
            };
            format!("{{\"Response\":{inner}}}")
        })
        .collect();
    Obj::new()
        .header(r.header.as_ref())
        .flag("succeeded", r.succeeded)
        .array("responses", ops)
        .build()
}

pub fn event_json(e: &mvccpb::Event) -> String {
    Obj::new()
        .int("type", e.r#type)
        .raw_opt("kv", e.kv.as_ref().map(kv_json))
        .raw_opt("prev_kv", e.prev_kv.as_ref().map(kv_json))
        .build()
}

// ---------------------------------------------------------------------------------- simple

/// A byte string as etcdctl prints it: raw, or `\xNN` for every byte with `--hex`.
pub fn bytes_str(b: &[u8], hex: bool) -> String {
    if hex {
        b.iter().map(|c| format!("\\x{c:02x}")).collect()
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// etcdctl's `printKV`: key and value lines, or only the value with `--print-value-only`.
pub fn simple_kv(kv: &mvccpb::KeyValue, hex: bool, value_only: bool) -> String {
    let mut s = String::new();
    if !value_only {
        s.push_str(&bytes_str(&kv.key, hex));
        s.push('\n');
    }
    s.push_str(&bytes_str(&kv.value, hex));
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------------- fields

/// Go's `%q` of a byte string: printable UTF-8 kept, everything else escaped.
pub fn go_quote(b: &[u8]) -> String {
    let mut o = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (v, r) = rest.split_at(e.valid_up_to());
                (std::str::from_utf8(v).unwrap_or(""), r)
            }
        };
        for c in valid.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\t' => o.push_str("\\t"),
                '\u{7}' => o.push_str("\\a"),
                '\u{8}' => o.push_str("\\b"),
                '\u{c}' => o.push_str("\\f"),
                '\u{b}' => o.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    o.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => {
                    if (c as u32) < 0x10000 {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    } else {
                        o.push_str(&format!("\\U{:08x}", c as u32))
                    }
                }
                c => o.push(c),
            }
        }
        rest = bad;
        if let Some((&first, tail)) = rest.split_first() {
            o.push_str(&format!("\\x{first:02x}"));
            rest = tail;
        }
    }
    o.push('"');
    o
}

pub fn fields_header(h: Option<&pb::ResponseHeader>) -> String {
    let h = h.cloned().unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

pub fn fields_kv(kv: &mvccpb::KeyValue, hex: bool) -> String {
    let q = |b: &[u8]| {
        if hex {
            format!("\"{}\"", bytes_str(b, true))
        } else {
            go_quote(b)
        }
    };
    format!(
        "\"Key\" : {}\n\"CreateRevision\" : {}\n\"ModRevision\" : {}\n\"Version\" : {}\n\"Value\" : {}\n\"Lease\" : {}\n",
        q(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        q(&kv.value),
        kv.lease
    )
}

// ----------------------------------------------------------------------------------- table

/// etcdctl's tablewriter layout: a centred header, right-aligned cells, `+---+` rules.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let rule = {
        let mut s = String::from("+");
        for w in &width {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = rule.clone();
    out.push('|');
    for (i, h) in header.iter().enumerate() {
        let gap = width[i] - h.chars().count();
        let left = gap / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(gap - left)
        ));
    }
    out.push('\n');
    out.push_str(&rule);
    for r in rows {
        out.push('|');
        for (i, w) in width.iter().enumerate() {
            let c = r.get(i).map(String::as_str).unwrap_or("");
            out.push_str(&format!(" {}{} |", " ".repeat(w - c.chars().count()), c));
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out
}

/// go-humanize's `Bytes` (SI units), as etcdctl prints database sizes.
pub fn human_bytes(s: u64) -> String {
    if s < 10 {
        return format!("{s} B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((s as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(SIZES.len() - 1);
    let val = ((s as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", SIZES[e])
    } else {
        format!("{val:.0} {}", SIZES[e])
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    };
    if ns < 1_000_000 {
        return trim(ns as f64 / 1e3, "µs");
    }
    if ns < 1_000_000_000 {
        return trim(ns as f64 / 1e6, "ms");
    }
    let total = d.as_secs_f64();
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let s = total - h * 3600.0 - m * 60.0;
    let mut o = String::new();
    if h > 0.0 {
        o.push_str(&format!("{h}h"));
    }
    if h > 0.0 || m > 0.0 {
        o.push_str(&format!("{m}m"));
    }
    o.push_str(&trim(s, "s"));
    o
}

/// A lease or member ID as etcdctl prints it: 16 hex digits.
pub fn hex_id(id: i64) -> String {
    format!("{:016x}", id as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b"k1"), "azE=");
        assert_eq!(base64(b"elder3"), "ZWxkZXIz");
        assert_eq!(base64(b"cherry5"), "Y2hlcnJ5NQ==");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn range_json_matches_etcdctl() {
        let r = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 20,
                raft_term: 3,
            }),
            kvs: vec![mvccpb::KeyValue {
                key: b"empty".to_vec(),
                create_revision: 19,
                mod_revision: 19,
                version: 1,
                ..Default::default()
            }],
            count: 1,
            more: false,
        };
        assert_eq!(
            range_json(&r),
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":20,"raft_term":3},"kvs":[{"key":"ZW1wdHk=","create_revision":19,"mod_revision":19,"version":1}],"count":1}"#
        );
    }

    #[test]
    fn txn_json_nests_oneofs_like_gogo() {
        let r = pb::TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseDeleteRange(
                    pb::DeleteRangeResponse {
                        header: Some(pb::ResponseHeader {
                            revision: 48,
                            ..Default::default()
                        }),
                        deleted: 1,
                        prev_kvs: vec![],
                    },
                )),
            }],
        };
        assert_eq!(
            txn_json(&r),
            r#"{"succeeded":true,"responses":[{"Response":{"ResponseDeleteRange":{"header":{"revision":48},"deleted":1}}}]}"#
        );
    }

    #[test]
    fn go_quote_and_fields() {
        assert_eq!(go_quote("ключ".as_bytes()), "\"ключ\"");
        assert_eq!(go_quote(b"a\"b\n\x01\xff"), "\"a\\\"b\\n\\x01\\xff\"");
        let kv = mvccpb::KeyValue {
            key: b"k1".to_vec(),
            create_revision: 3,
            mod_revision: 13,
            version: 3,
            value: b"elder3".to_vec(),
            lease: 0,
        };
        assert_eq!(
            fields_kv(&kv, false),
            "\"Key\" : \"k1\"\n\"CreateRevision\" : 3\n\"ModRevision\" : 13\n\"Version\" : 3\n\"Value\" : \"elder3\"\n\"Lease\" : 0\n"
        );
    }

    #[test]
    fn table_layout_matches_tablewriter() {
        let t = table(
            &["ENDPOINT", "HEALTH"],
            &[vec!["127.0.0.1:2379".into(), "true".into()]],
        );
        assert_eq!(
            t,
            "+----------------+--------+\n\
             |    ENDPOINT    | HEALTH |\n\
             +----------------+--------+\n\
             | 127.0.0.1:2379 |   true |\n\
             +----------------+--------+\n"
        );
    }

    #[test]
    fn humanize_and_durations() {
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(1_081_344), "1.1 MB");
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(go_duration(std::time::Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(std::time::Duration::from_secs(90)), "1m30s");
        assert_eq!(hex_id(0x1234), "0000000000001234");
    }
}
