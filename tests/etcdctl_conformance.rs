//! Side-by-side etcdctl conformance: the scripted etcdctl 3.4 session in
//! `tests/conformance/etcdctl_session.sh` is run against the real etcd and
//! against the server under test, and the normalised outputs must be
//! identical.
//!
//! Environment:
//! - `KEELSON_CONFORMANCE_TARGET`: `keelson` (default; runs
//!   `keelson store <etcd flags>`) or `etcd` (etcd against itself, to check
//!   that the script and the normaliser are deterministic).
//! - `KEELSON_SKIP_ETCD_CONFORMANCE=1`: skip (loudly) instead of failing when
//!   etcd/etcdctl are missing. Without it a missing etcd is a test failure.
//! - `KEELSON_CONFORMANCE_WRITE_REFERENCE=1`: also write the normalised etcd
//!   output to `tests/conformance/etcd-3.4-reference.txt` (documentation
//!   only; the test never reads it).
//! - `KEELSON_CONFORMANCE_KEEP_OUTPUT=<dir>`: copy both raw and normalised
//!   outputs there, for debugging.
//!
//! Normalisation only touches IDs (cluster, member, lease, client UUIDs),
//! raft terms and indexes, timestamps and durations, the remaining TTL of a
//! lease, sizes, the temp paths and ports, and the server version string.
//! Everything else is compared verbatim.

mod common;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{which, ChildGuard, EtcdLikeConfig};

/// `--max-request-bytes` given to both servers; the session sends a value a
/// little larger than this.
const MAX_REQUEST_BYTES: u64 = 65536;
/// Same `--name` and `--initial-cluster-token` for both servers.
const MEMBER_NAME: &str = "conformance";
const CLUSTER_TOKEN: &str = "keelson-conformance";
/// Hard bound for one run of the script (each etcdctl call inside it is
/// bounded by `timeout 20`; against etcd the whole script takes a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Etcd,
    Keelson,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Etcd => "etcd",
            Target::Keelson => "keelson",
        }
    }

    fn config(self) -> EtcdLikeConfig {
        let config = match self {
            Target::Etcd => EtcdLikeConfig::etcd(),
            Target::Keelson => EtcdLikeConfig::keelson(env!("CARGO_BIN_EXE_keelson")),
        };
        config.name(MEMBER_NAME).cluster_token(CLUSTER_TOKEN).args([
            "--max-request-bytes".to_string(),
            MAX_REQUEST_BYTES.to_string(),
        ])
    }
}

/// The client the script drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// The real etcdctl 3.4.
    Etcdctl,
    /// `keelson kv`, the binary under test.
    KeelsonKv,
}

impl Client {
    fn command(self) -> String {
        match self {
            Client::Etcdctl => "etcdctl".to_string(),
            Client::KeelsonKv => format!("{} kv", env!("CARGO_BIN_EXE_keelson")),
        }
    }
}

/// One run of the script: its raw output and what is needed to normalise it.
struct Session {
    label: &'static str,
    output: String,
    context: NormalizeContext,
    server_logs: String,
}

#[test]
fn etcdctl_session_matches_etcd() {
    let started = Instant::now();
    if std::env::var("KEELSON_SKIP_ETCD_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!("SKIPPED etcdctl conformance: KEELSON_SKIP_ETCD_CONFORMANCE=1");
        return;
    }
    check_tools();
    let target = match std::env::var("KEELSON_CONFORMANCE_TARGET").as_deref() {
        Err(_) | Ok("") | Ok("keelson") => Target::Keelson,
        Ok("etcd") => Target::Etcd,
        Ok(other) => {
            panic!("KEELSON_CONFORMANCE_TARGET must be `keelson` or `etcd`, not {other:?}")
        }
    };

    let reference = run_session(Target::Etcd, Client::Etcdctl);
    let candidate = run_session(target, Client::Etcdctl);

    assert_same(&reference, &candidate, true);
    eprintln!(
        "etcdctl conformance: etcd and {} agree ({:.1?})",
        candidate.label,
        started.elapsed()
    );
}

/// The same script driven by `keelson kv` instead of etcdctl: against etcd 3.4 and against
/// keelson the normalised outputs must be identical. It must also print what etcdctl prints:
/// compared with etcdctl's own run against etcd, only etcdctl's client-side log lines and its
/// cobra usage texts (see `drop_client_noise`) may differ.
#[test]
fn keelson_kv_session_matches_etcd() {
    let started = Instant::now();
    if std::env::var("KEELSON_SKIP_ETCD_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!("SKIPPED keelson kv conformance: KEELSON_SKIP_ETCD_CONFORMANCE=1");
        return;
    }
    check_tools();
    let on_etcd = run_session(Target::Etcd, Client::KeelsonKv);
    let on_keelson = run_session(Target::Keelson, Client::KeelsonKv);
    assert_same(&on_etcd, &on_keelson, false);

    let etcdctl = run_session(Target::Etcd, Client::Etcdctl);
    let theirs = drop_client_noise(&normalize(&etcdctl.output, &etcdctl.context));
    let ours = drop_client_noise(&normalize(&on_etcd.output, &on_etcd.context));
    if theirs != ours {
        panic!(
            "keelson kv prints something else than etcdctl (-) against the same etcd (+):\n{}",
            line_diff(&theirs, &ours, 3)
        );
    }
    eprintln!(
        "keelson kv conformance: etcd, keelson and etcdctl agree ({:.1?})",
        started.elapsed()
    );
}

/// Removes what only etcdctl prints: its zap log lines (`{"level":...}`) and the cobra usage
/// text after "unknown flag" errors (from `NAME:` up to the blank line after the global options),
/// including the second copy of the error line cobra prints after the usage.
fn drop_client_noise(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_usage = false;
    let mut last_error: Option<String> = None;
    for line in text.split('\n') {
        if in_usage {
            if line.starts_with("Error: ") && last_error.as_deref() == Some(line) {
                in_usage = false;
            }
            continue;
        }
        if line.starts_with("{\"level\":") {
            continue;
        }
        if line == "NAME:" {
            in_usage = true;
            continue;
        }
        if line.starts_with("Error: ") {
            last_error = Some(line.to_string());
        }
        out.push(line);
    }
    out.join("\n")
}

/// Asserts two sessions print the same after normalisation.
fn assert_same(reference: &Session, candidate: &Session, write_reference: bool) {
    let reference_norm = normalize(&reference.output, &reference.context);
    let candidate_norm = normalize(&candidate.output, &candidate.context);

    if write_reference && std::env::var("KEELSON_CONFORMANCE_WRITE_REFERENCE").as_deref() == Ok("1")
    {
        let path = manifest_path("tests/conformance/etcd-3.4-reference.txt");
        fs::write(&path, &reference_norm).expect("write reference file");
        eprintln!("wrote {}", path.display());
    }
    if let Ok(dir) = std::env::var("KEELSON_CONFORMANCE_KEEP_OUTPUT") {
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).expect("create output dir");
        for (name, text) in [
            ("reference-raw.txt", &reference.output),
            ("reference-normalized.txt", &reference_norm),
            ("candidate-raw.txt", &candidate.output),
            ("candidate-normalized.txt", &candidate_norm),
        ] {
            fs::write(dir.join(name), text).expect("write output");
        }
    }

    if reference_norm != candidate_norm {
        let mut diff = line_diff(&reference_norm, &candidate_norm, 3);
        const MAX_DIFF_LINES: usize = 600;
        if diff.lines().count() > MAX_DIFF_LINES {
            let total = diff.lines().count();
            diff = diff
                .lines()
                .take(MAX_DIFF_LINES)
                .collect::<Vec<_>>()
                .join("\n");
            diff.push_str(&format!(
                "\n... diff truncated ({total} lines); set KEELSON_CONFORMANCE_KEEP_OUTPUT=<dir> \
                 to get both outputs\n"
            ));
        }
        panic!(
            "etcdctl session output differs between etcd (-) and {} (+) after normalisation:\n{diff}\n\
             {} server logs:\n{}\n",
            candidate.label, candidate.label, candidate.server_logs
        );
    }
}

/// Fails (never skips silently) when the tools the test needs are missing, or
/// are not the 3.4 series the script is written for.
fn check_tools() {
    let hint = "the etcdctl conformance test needs etcd and etcdctl 3.4 on PATH (Debian: \
                `apt-get install etcd-server etcd-client`); set KEELSON_SKIP_ETCD_CONFORMANCE=1 \
                to skip it explicitly";
    for tool in ["etcd", "etcdctl", "bash", "timeout"] {
        if which(tool).is_none() {
            panic!("`{tool}` is not on PATH: {hint}");
        }
    }
    for (tool, args, prefix) in [
        ("etcd", &["--version"][..], "etcd Version: 3.4."),
        ("etcdctl", &["version"][..], "etcdctl version: 3.4."),
    ] {
        let out = Command::new(tool)
            .args(args)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{tool}`: {e}; {hint}"));
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.lines().any(|l| l.starts_with(prefix)) {
            panic!(
                "`{tool} {}` does not report 3.4.x:\n{text}\n{hint}",
                args.join(" ")
            );
        }
    }
}

fn run_session(target: Target, client: Client) -> Session {
    let mut server = target.config().start();
    let workdir = tempfile::Builder::new()
        .prefix("keelson-conformance-")
        .tempdir()
        .expect("create work dir");
    let output_path = workdir.path().join("session-output.txt");
    let output = File::create(&output_path).expect("create session output");
    let output_err = output.try_clone().expect("clone output file");
    let script = manifest_path("tests/conformance/etcdctl_session.sh");

    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("ENDPOINT", server.client_url())
        .env("WORKDIR", workdir.path())
        .env("MAX_REQUEST_BYTES", MAX_REQUEST_BYTES.to_string())
        .env("CTL_CMD", client.command())
        .env("LC_ALL", "C")
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err);
    let mut script_process = ChildGuard::spawn_group(
        &format!("session script ({} via {:?})", target.label(), client),
        &mut cmd,
    )
    .expect("spawn bash");
    let status = script_process
        .wait_timeout(SCRIPT_TIMEOUT)
        .expect("wait for script");
    // Reap the script and anything it left behind in its process group.
    script_process.kill();
    let raw =
        String::from_utf8_lossy(&fs::read(&output_path).expect("read session output")).into_owned();
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "the session script failed against {} ({status}); output:\n{raw}\n{}",
            target.label(),
            server.log_tail(40)
        ),
        None => panic!(
            "the session script did not finish within {SCRIPT_TIMEOUT:?} against {}; output so far:\n{raw}\n{}",
            target.label(),
            server.log_tail(40)
        ),
    }
    if let Some(status) = server.try_wait() {
        panic!(
            "{} exited during the session ({status}); output:\n{raw}\n{}",
            target.label(),
            server.log_tail(60)
        );
    }
    let context = NormalizeContext {
        client_url: server.client_url(),
        peer_url: server.peer_url(),
        client_port: server.client_port(),
        peer_port: server.peer_port(),
        paths: vec![
            (workdir.path().to_string_lossy().into_owned(), "<WORKDIR>"),
            (server.dir().to_string_lossy().into_owned(), "<SERVERDIR>"),
        ],
    };
    let server_logs = server.log_tail(80);
    server.kill();
    Session {
        label: target.label(),
        output: raw,
        context,
        server_logs,
    }
}

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

/// Values of one run that differ between runs for legitimate reasons.
struct NormalizeContext {
    client_url: String,
    peer_url: String,
    client_port: u16,
    peer_port: u16,
    /// Temp paths and their placeholders.
    paths: Vec<(String, &'static str)>,
}

/// Normalises one session output; see the module docs for what may change.
///
/// 1. Exact strings of this run: temp paths, client/peer URLs and ports.
/// 2. Targeted fields: raft term/index fields, db sizes, the server version
///    string, timestamps, durations, the remaining TTL of a lease, the random
///    client UUID in etcdctl's log lines; the positional fields of
///    `endpoint status`'s simple output.
/// 3. IDs: cluster, member and lease IDs are collected from the fields that
///    define them, then every occurrence (decimal, hex, zero-padded hex) is
///    replaced by `<CLUSTER1>`, `<MEMBER1>`, `<LEASE1>`, `<LEASE2>`, ...
///    numbered in order of first appearance, so that consistent use of the
///    same ID is still checked.
fn normalize(raw: &str, ctx: &NormalizeContext) -> String {
    let mut text = raw.to_string();
    for (path, placeholder) in &ctx.paths {
        text = text.replace(path.as_str(), placeholder);
    }
    text = text.replace(&ctx.client_url, "<CLIENT_URL>");
    text = text.replace(&ctx.peer_url, "<PEER_URL>");
    text = text.replace(&format!("127.0.0.1:{}", ctx.client_port), "<CLIENT_ADDR>");
    text = text.replace(&format!("127.0.0.1:{}", ctx.peer_port), "<PEER_ADDR>");

    let mut lines: Vec<String> = text.split('\n').map(normalize_line).collect();
    let ids = IdRegistry::collect(&lines);
    let mut numbering = IdNumbering::default();
    for line in &mut lines {
        *line = ids.replace(line, &mut numbering);
    }
    lines.join("\n")
}

/// Line-local normalisations (everything but IDs).
fn normalize_line(line: &str) -> String {
    let mut line = line.to_string();

    // raft terms and indexes (JSON and `-w fields`)
    for key in ["\"raft_term\":", "\"raftTerm\":"] {
        line = replace_after(&line, key, Token::Integer, "<TERM>");
    }
    for key in ["\"raftIndex\":", "\"raftAppliedIndex\":"] {
        line = replace_after(&line, key, Token::Integer, "<INDEX>");
    }
    line = replace_after(&line, "\"RaftTerm\" : ", Token::Integer, "<TERM>");
    for key in ["\"RaftIndex\" : ", "\"RaftAppliedIndex\" : "] {
        line = replace_after(&line, key, Token::Integer, "<INDEX>");
    }
    // sizes
    for key in ["\"dbSize\":", "\"dbSizeInUse\":"] {
        line = replace_after(&line, key, Token::Integer, "<SIZE>");
    }
    line = replace_after(&line, "\"DBSize\" : ", Token::Integer, "<SIZE>");
    line = replace_after(&line, "\"size\":", Token::JsonString, "\"<SIZE>\"");
    // the server version string (only string-valued: `"version":N` is a key's version)
    line = replace_after(
        &line,
        "\"version\":",
        Token::JsonString,
        "\"<SERVER_VERSION>\"",
    );
    line = replace_after(
        &line,
        "\"Version\" : ",
        Token::JsonString,
        "\"<SERVER_VERSION>\"",
    );
    // timestamps and durations (etcdctl's zap log lines, endpoint health, snapshot)
    line = replace_after(&line, "\"ts\":", Token::JsonScalar, "<TS>");
    line = replace_after(&line, "\"took\":", Token::JsonScalar, "<DURATION>");
    line = replace_after(&line, "took = ", Token::Word, "<DURATION>");
    // the random client UUID in etcdctl's retry log lines
    line = replace_after(&line, "endpoint://client-", Token::Uuid, "<UUID>");
    // remaining TTL of a lease: time dependent, but must be within [0, granted]
    line = normalize_remaining_ttl(&line);
    // `endpoint status` simple output:
    // endpoint, member ID (hex), version, db size, leader?, learner?, raft term, raft index, applied index, errors
    if line.starts_with("<CLIENT_URL>, ") {
        let mut fields: Vec<String> = line.split(", ").map(str::to_string).collect();
        if fields.len() == 10 {
            fields[2] = "<SERVER_VERSION>".to_string();
            fields[3] = "<SIZE>".to_string();
            fields[6] = "<TERM>".to_string();
            fields[7] = "<INDEX>".to_string();
            fields[8] = "<INDEX>".to_string();
            line = fields.join(", ");
        }
    }
    line
}

/// `granted with TTL(600s), remaining(599s)` and
/// `"ttl":599,"granted-ttl":600`: the remaining TTL is replaced when it lies
/// in `[0, granted]`; anything else is left alone (and shows up in the diff).
fn normalize_remaining_ttl(line: &str) -> String {
    let mut line = line.to_string();
    if let (Some(granted), Some(remaining)) = (
        number_after(&line, "granted with TTL("),
        number_after(&line, "remaining("),
    ) {
        if (0..=granted).contains(&remaining) {
            line = line.replacen(&format!("remaining({remaining}s)"), "remaining(<TTL>s)", 1);
        }
    }
    if let (Some(granted), Some(remaining)) = (
        number_after(&line, "\"granted-ttl\":"),
        number_after(&line, "\"ttl\":"),
    ) {
        if (0..=granted).contains(&remaining) {
            line = line.replacen(
                &format!("\"ttl\":{remaining},\"granted-ttl\""),
                "\"ttl\":<TTL>,\"granted-ttl\"",
                1,
            );
        }
    }
    line
}

fn number_after(line: &str, key: &str) -> Option<i64> {
    let start = line.find(key)? + key.len();
    let len = Token::Integer.len(&line[start..]);
    line[start..start + len].parse().ok()
}

#[derive(Clone, Copy)]
enum Token {
    /// `-?[0-9]+`
    Integer,
    /// a JSON string literal, quotes included
    JsonString,
    /// a JSON string or number
    JsonScalar,
    /// up to the next whitespace, `,` or end of line
    Word,
    /// `[0-9a-fA-F-]+`
    Uuid,
}

impl Token {
    /// Length of the token at the start of `s` (0 if there is none).
    fn len(self, s: &str) -> usize {
        let b = s.as_bytes();
        match self {
            Token::Integer => {
                let sign = usize::from(b.first() == Some(&b'-'));
                let digits = b[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    0
                } else {
                    sign + digits
                }
            }
            Token::JsonString => {
                if b.first() != Some(&b'"') {
                    return 0;
                }
                let mut i = 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => return i + 1,
                        _ => i += 1,
                    }
                }
                0
            }
            Token::JsonScalar => {
                if b.first() == Some(&b'"') {
                    Token::JsonString.len(s)
                } else {
                    b.iter()
                        .take_while(|c| {
                            c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                        })
                        .count()
                }
            }
            Token::Word => b
                .iter()
                .take_while(|c| !c.is_ascii_whitespace() && **c != b',')
                .count(),
            Token::Uuid => b
                .iter()
                .take_while(|c| c.is_ascii_hexdigit() || **c == b'-')
                .count(),
        }
    }
}

/// Replaces the token that follows every occurrence of `key` by `placeholder`.
fn replace_after(line: &str, key: &str, token: Token, placeholder: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(key) {
        let value_start = pos + key.len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let len = token.len(value);
        if len > 0 {
            // A JSON string stays a string: only its contents are replaced.
            if matches!(token, Token::JsonScalar) && value.starts_with('"') {
                out.push('"');
                out.push_str(placeholder);
                out.push('"');
            } else {
                out.push_str(placeholder);
            }
        }
        rest = &rest[value_start + len..];
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum IdKind {
    Cluster,
    Member,
    Lease,
}

impl IdKind {
    fn placeholder(self, n: usize) -> String {
        match self {
            IdKind::Cluster => format!("<CLUSTER{n}>"),
            IdKind::Member => format!("<MEMBER{n}>"),
            IdKind::Lease => format!("<LEASE{n}>"),
        }
    }
}

/// IDs found in one output, by kind.
struct IdRegistry {
    ids: HashMap<u64, IdKind>,
}

/// Below this an ID is only replaced where a JSON/fields key announces it, not
/// wherever its digits appear (a small number could be anything).
const MIN_FREE_STANDING_ID: u64 = 1 << 24;

/// Keys whose (decimal) value is an ID.
const ID_KEYS: [&str; 11] = [
    "\"cluster_id\":",
    "\"member_id\":",
    "\"leader\":",
    "\"ID\":",
    "\"id\":",
    "\"lease\":",
    "\"ClusterID\" : ",
    "\"MemberID\" : ",
    "\"Leader\" : ",
    "\"ID\" : ",
    "\"Lease\" : ",
];

#[derive(Default)]
struct IdNumbering {
    assigned: HashMap<u64, String>,
    counters: HashMap<IdKind, usize>,
}

impl IdNumbering {
    fn placeholder(&mut self, id: u64, kind: IdKind) -> String {
        if let Some(p) = self.assigned.get(&id) {
            return p.clone();
        }
        let n = self.counters.entry(kind).or_insert(0);
        *n += 1;
        let p = kind.placeholder(*n);
        self.assigned.insert(id, p.clone());
        p
    }
}

impl IdRegistry {
    /// Collects IDs from the fields that define them: `cluster_id`,
    /// `member_id` (and their `-w fields` forms), and the lease IDs printed by
    /// `lease grant` (`lease <hex> granted with ...`, `"ID":N,"TTL":...`).
    fn collect(lines: &[String]) -> IdRegistry {
        let mut ids = HashMap::new();
        for line in lines {
            for (key, kind) in [
                ("\"cluster_id\":", IdKind::Cluster),
                ("\"ClusterID\" : ", IdKind::Cluster),
                ("\"member_id\":", IdKind::Member),
                ("\"MemberID\" : ", IdKind::Member),
            ] {
                for value in values_after(line, key) {
                    ids.entry(value).or_insert(kind);
                }
            }
            if let Some(rest) = line.strip_prefix("lease ") {
                if let Some((hex, tail)) = rest.split_once(' ') {
                    if tail.starts_with("granted with TTL(") {
                        if let Ok(id) = u64::from_str_radix(hex, 16) {
                            ids.entry(id).or_insert(IdKind::Lease);
                        }
                    }
                }
            }
            if line.contains(",\"TTL\":") {
                for value in values_after(line, "\"ID\":") {
                    ids.entry(value).or_insert(IdKind::Lease);
                }
            }
        }
        ids.remove(&0);
        IdRegistry { ids }
    }

    /// Replaces the known IDs in `line`: after an ID key always; elsewhere
    /// (hex or decimal words) only IDs of at least [`MIN_FREE_STANDING_ID`].
    fn replace(&self, line: &str, numbering: &mut IdNumbering) -> String {
        let mut out = String::with_capacity(line.len());
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphanumeric() {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                out.push_str(&line[start..i]);
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &line[start..i];
            let after_key = ID_KEYS.iter().any(|k| line[..start].ends_with(k));
            match self.lookup(word, after_key) {
                Some((id, kind)) => out.push_str(&numbering.placeholder(id, kind)),
                None => out.push_str(word),
            }
        }
        out
    }

    fn lookup(&self, word: &str, after_key: bool) -> Option<(u64, IdKind)> {
        let mut candidates = Vec::with_capacity(2);
        if word.bytes().all(|c| c.is_ascii_digit()) {
            candidates.extend(word.parse::<u64>().ok());
        }
        // Hex forms: etcdctl prints member IDs with %x and lease IDs with %016x.
        if !after_key && word.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            candidates.extend(
                u64::from_str_radix(word, 16)
                    .ok()
                    .filter(|id| *word == format!("{id:x}") || *word == format!("{id:016x}")),
            );
        }
        candidates.into_iter().find_map(|id| {
            let kind = *self.ids.get(&id)?;
            (after_key || id >= MIN_FREE_STANDING_ID).then_some((id, kind))
        })
    }
}

/// All integers that follow `key` in `line`.
fn values_after(line: &str, key: &str) -> Vec<u64> {
    let mut values = Vec::new();
    let mut rest = line;
    while let Some(pos) = rest.find(key) {
        rest = &rest[pos + key.len()..];
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(v) = rest[..len].parse() {
            values.push(v);
        }
    }
    values
}

// ---------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------

enum Edit<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// A unified-style line diff (`-` expected, `+` actual) with `context` lines
/// around each change and `@@ -a +b @@` hunk headers (1-based line numbers).
fn line_diff(expected: &str, actual: &str, context: usize) -> String {
    let a: Vec<&str> = expected.split('\n').collect();
    let b: Vec<&str> = actual.split('\n').collect();
    // Longest common subsequence table, suffix form: lcs[i][j] for a[i..], b[j..].
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let mut edits = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            edits.push(Edit::Same(a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            edits.push(Edit::Removed(a[i]));
            i += 1;
        } else {
            edits.push(Edit::Added(b[j]));
            j += 1;
        }
    }

    // Group changes into hunks with context.
    let changed: Vec<usize> = edits
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Edit::Same(_)))
        .map(|(k, _)| k)
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * context + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + context + 1).min(edits.len());
        k += 1;
        // Line numbers at the start of the hunk.
        let (mut line_a, mut line_b) = (1, 1);
        for e in &edits[..start] {
            match e {
                Edit::Same(_) => {
                    line_a += 1;
                    line_b += 1;
                }
                Edit::Removed(_) => line_a += 1,
                Edit::Added(_) => line_b += 1,
            }
        }
        out.push_str(&format!("@@ -{line_a} +{line_b} @@\n"));
        for e in &edits[start..end] {
            match e {
                Edit::Same(l) => out.push_str(&format!("  {l}\n")),
                Edit::Removed(l) => out.push_str(&format!("- {l}\n")),
                Edit::Added(l) => out.push_str(&format!("+ {l}\n")),
            }
        }
    }
    out
}

#[cfg(test)]
mod normalizer_tests {
    use super::*;

    fn ctx() -> NormalizeContext {
        NormalizeContext {
            client_url: "http://127.0.0.1:41000".to_string(),
            peer_url: "http://127.0.0.1:41001".to_string(),
            client_port: 41000,
            peer_port: 41001,
            paths: vec![("/tmp/keelson-conformance-abc".to_string(), "<WORKDIR>")],
        }
    }

    #[test]
    fn ids_terms_and_sizes() {
        let raw = concat!(
            "{\"header\":{\"cluster_id\":17448609010643035951,\"member_id\":15101859335780327642,\"revision\":12,\"raft_term\":2},\"kvs\":[{\"key\":\"Zm9v\",\"version\":3,\"lease\":6979068702717229349}],\"count\":1}\n",
            "http://127.0.0.1:41000, d194950d851a60da, 3.4.23, 20 kB, true, false, 2, 17, 17, \n",
            "lease 60daa2022881b925 granted with TTL(100s)\n",
            "lease 60daa2022881b925 granted with TTL(100s), remaining(99s), attached keys([lk1 lk2])\n",
            "{\"cluster_id\":1,\"member_id\":2,\"revision\":16,\"raft_term\":2,\"id\":6979068702717229349,\"ttl\":99,\"granted-ttl\":100,\"keys\":null}\n",
            "d194950d851a60da, started, n1, http://127.0.0.1:41001, http://127.0.0.1:41000, false\n",
            "{\"level\":\"warn\",\"ts\":\"2026-11-22T07:29:00.924Z\",\"target\":\"endpoint://client-75b58ee5-101d-4a86-ad7e-6ce9edf5138a/127.0.0.1:41000\",\"attempt\":0}\n",
            "http://127.0.0.1:41000 is healthy: successfully committed proposal: took = 1.586169ms\n",
            "{\"level\":\"info\",\"ts\":1795332666.4779077,\"size\":\"20 kB\",\"took\":0.002457327,\"path\":\"/tmp/keelson-conformance-abc/snapshot.db\"}",
        );
        let got = normalize(raw, &ctx());
        let want = concat!(
            "{\"header\":{\"cluster_id\":<CLUSTER1>,\"member_id\":<MEMBER1>,\"revision\":12,\"raft_term\":<TERM>},\"kvs\":[{\"key\":\"Zm9v\",\"version\":3,\"lease\":<LEASE1>}],\"count\":1}\n",
            "<CLIENT_URL>, <MEMBER1>, <SERVER_VERSION>, <SIZE>, true, false, <TERM>, <INDEX>, <INDEX>, \n",
            "lease <LEASE1> granted with TTL(100s)\n",
            "lease <LEASE1> granted with TTL(100s), remaining(<TTL>s), attached keys([lk1 lk2])\n",
            "{\"cluster_id\":<CLUSTER2>,\"member_id\":<MEMBER2>,\"revision\":16,\"raft_term\":<TERM>,\"id\":<LEASE1>,\"ttl\":<TTL>,\"granted-ttl\":100,\"keys\":null}\n",
            "<MEMBER1>, started, n1, <PEER_URL>, <CLIENT_URL>, false\n",
            "{\"level\":\"warn\",\"ts\":\"<TS>\",\"target\":\"endpoint://client-<UUID>/<CLIENT_ADDR>\",\"attempt\":0}\n",
            "<CLIENT_URL> is healthy: successfully committed proposal: took = <DURATION>\n",
            "{\"level\":\"info\",\"ts\":<TS>,\"size\":\"<SIZE>\",\"took\":<DURATION>,\"path\":\"<WORKDIR>/snapshot.db\"}",
        );
        assert_eq!(got, want, "\n{}", line_diff(want, &got, 1));
    }

    #[test]
    fn small_ids_only_replaced_after_keys() {
        let raw = "{\"cluster_id\":7,\"member_id\":9,\"revision\":9}\n9, started\n{\"leader\":9}";
        let got = normalize(raw, &ctx());
        assert_eq!(
            got,
            "{\"cluster_id\":<CLUSTER1>,\"member_id\":<MEMBER1>,\"revision\":9}\n9, started\n{\"leader\":<MEMBER1>}"
        );
    }

    #[test]
    fn implausible_remaining_ttl_is_kept() {
        let raw = "lease 60daa2022881b925 granted with TTL(100s), remaining(101s)";
        assert_eq!(
            normalize(raw, &ctx()),
            "lease <LEASE1> granted with TTL(100s), remaining(101s)"
        );
        let raw = "{\"id\":5,\"ttl\":-1,\"granted-ttl\":0,\"keys\":null}";
        assert_eq!(normalize(raw, &ctx()), raw);
    }

    #[test]
    fn everything_else_is_verbatim() {
        let raw = concat!(
            "{\"header\":{\"revision\":57,\"raft_term\":2},\"hash\":899069260,\"compact_revision\":-1,\"count\":5,\"version\":3}\n",
            "http://127.0.0.1:41000, 899069260\n",
            "Error: etcdserver: mvcc: required revision is a future revision\n",
            "exit=1",
        );
        let want = concat!(
            "{\"header\":{\"revision\":57,\"raft_term\":<TERM>},\"hash\":899069260,\"compact_revision\":-1,\"count\":5,\"version\":3}\n",
            "<CLIENT_URL>, 899069260\n",
            "Error: etcdserver: mvcc: required revision is a future revision\n",
            "exit=1",
        );
        assert_eq!(normalize(raw, &ctx()), want);
    }

    #[test]
    fn diff_marks_changes() {
        let d = line_diff("a\nb\nc\nd", "a\nB\nc\nd\ne", 1);
        assert_eq!(d, "@@ -1 +1 @@\n  a\n- b\n+ B\n  c\n  d\n+ e\n");
        let d = line_diff("1\n2\n3\n4\n5\n6\n7", "1\nx\n3\n4\n5\n6\ny", 1);
        assert_eq!(
            d,
            "@@ -1 +1 @@\n  1\n- 2\n+ x\n  3\n@@ -6 +6 @@\n  6\n- 7\n+ y\n"
        );
    }
}
