//! A member's configuration, with etcd's flag names and meanings.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::error::{Result, StoreError};
use crate::tls::TlsFiles;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    /// Keep history for this long (etcd's `periodic` mode).
    Periodic(Duration),
    /// Keep this many revisions (etcd's `revision` mode).
    Revision(i64),
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<Url>,
    /// (name, peer URLs) of every founding member.
    pub initial_cluster: Vec<(String, Vec<Url>)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Entries kept in the log after a snapshot, so a slightly lagging follower catches up
    /// from the log rather than a snapshot (etcd keeps 5000).
    pub snapshot_catchup_entries: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub quota_backend_bytes: u64,
    pub max_request_bytes: usize,
    pub auto_compaction: AutoCompaction,
    /// How often revision-mode auto-compaction checks (etcd: every 5 minutes).
    pub revision_compaction_interval: Duration,
    /// How often watchers that asked for progress notifications get one.
    pub watch_progress_interval: Duration,
    /// How long an `Authenticate` token lasts (etcd's `--auth-token-ttl`).
    pub auth_token_ttl: Duration,
    /// Watchers one Watch stream may hold at once (0: no limit); a create past it is
    /// canceled with a reason. etcd has no such limit; a client can otherwise grow the
    /// server's memory without end on one stream.
    pub max_watchers_per_stream: usize,
    /// TLS of the `https` client URLs (`--cert-file`, `--key-file`, `--trusted-ca-file`,
    /// `--client-cert-auth`).
    pub client_tls: Option<TlsFiles>,
    /// TLS of the `https` peer URLs, and this member's certificate towards the others
    /// (`--peer-cert-file`, …).
    pub peer_tls: Option<TlsFiles>,
}

pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 << 30;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
pub const DEFAULT_MAX_WATCHERS_PER_STREAM: usize = 10_000;
/// Extra bytes the gRPC layer accepts beyond `--max-request-bytes`, so an oversize request gets
/// etcd's "request is too large" rather than a transport error (etcd allows 512 KiB).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

impl StoreConfig {
    /// etcd's defaults: one member named `default` on 127.0.0.1:2379/2380.
    pub fn default_for(name: &str) -> Self {
        let client = Url::parse("http://127.0.0.1:2379").expect("static URL");
        let peer = Url::parse("http://127.0.0.1:2380").expect("static URL");
        StoreConfig {
            name: name.to_string(),
            data_dir: PathBuf::from(format!("{name}.keelson")),
            listen_client_urls: vec![client.clone()],
            advertise_client_urls: vec![client],
            listen_peer_urls: vec![peer.clone()],
            initial_advertise_peer_urls: vec![peer.clone()],
            initial_cluster: vec![(name.to_string(), vec![peer])],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".to_string(),
            snapshot_count: 100_000,
            snapshot_catchup_entries: 5000,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            auto_compaction: AutoCompaction::Off,
            revision_compaction_interval: Duration::from_secs(300),
            watch_progress_interval: Duration::from_secs(600),
            auth_token_ttl: Duration::from_secs(300),
            max_watchers_per_stream: DEFAULT_MAX_WATCHERS_PER_STREAM,
            client_tls: None,
            peer_tls: None,
        }
    }

    /// Checks the flags against each other, etcd style, before anything touches the disk.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(StoreError::config("--name must not be empty"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(StoreError::config("--heartbeat-interval must be positive"));
        }
        if self.election_timeout < self.heartbeat_interval * 5 {
            return Err(StoreError::config(format!(
                "--election-timeout[{}ms] should be at least 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout.as_millis(),
                self.heartbeat_interval.as_millis()
            )));
        }
        if self.max_request_bytes == 0 {
            return Err(StoreError::config("--max-request-bytes must be positive"));
        }
        if self.snapshot_count == 0 {
            return Err(StoreError::config("--snapshot-count must be positive"));
        }
        for (what, urls) in [
            ("--listen-client-urls", &self.listen_client_urls),
            ("--advertise-client-urls", &self.advertise_client_urls),
            ("--listen-peer-urls", &self.listen_peer_urls),
            (
                "--initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
        ] {
            if urls.is_empty() {
                return Err(StoreError::config(format!("{what} must not be empty")));
            }
            for u in urls {
                check_url(what, u)?;
            }
        }
        for (urls, tls, flags, what) in [
            (
                &self.listen_client_urls,
                &self.client_tls,
                "--cert-file, --key-file",
                "client",
            ),
            (
                &self.listen_peer_urls,
                &self.peer_tls,
                "--peer-cert-file, --peer-key-file",
                "peer",
            ),
        ] {
            if let Some(u) = urls.iter().find(|u| u.scheme() == "https") {
                if tls.is_none() {
                    return Err(StoreError::config(format!(
                        "TLS key/cert ({flags}) must be provided for {what} url {}",
                        url_string(u)
                    )));
                }
            }
            if let Some(t) = tls {
                if t.client_cert_auth && t.trusted_ca_file.is_none() {
                    return Err(StoreError::config(format!(
                        "{what} certificate authentication needs a trusted CA \
                         (--{}trusted-ca-file)",
                        if what == "peer" { "peer-" } else { "" }
                    )));
                }
            }
        }
        if self.initial_cluster_state == ClusterState::New {
            let Some((_, mine)) = self.initial_cluster.iter().find(|(n, _)| n == &self.name) else {
                return Err(StoreError::config(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    self.name
                )));
            };
            let mut a: Vec<String> = mine.iter().map(|u| u.to_string()).collect();
            let mut b: Vec<String> = self
                .initial_advertise_peer_urls
                .iter()
                .map(|u| u.to_string())
                .collect();
            a.sort();
            b.sort();
            if a != b {
                return Err(StoreError::config(format!(
                    "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} \
                     (the member's peer URLs must match)",
                    self.name,
                    a.join(","),
                    b.join(",")
                )));
            }
            let mut seen = std::collections::HashSet::new();
            for (n, urls) in &self.initial_cluster {
                for u in urls {
                    check_url("--initial-cluster", u)?;
                    if !seen.insert(u.to_string()) {
                        return Err(StoreError::config(format!(
                            "--initial-cluster has duplicate peer URL {u} (member {n})"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn advertise_client_strings(&self) -> Vec<String> {
        self.advertise_client_urls.iter().map(url_string).collect()
    }

    pub fn advertise_peer_strings(&self) -> Vec<String> {
        self.initial_advertise_peer_urls
            .iter()
            .map(url_string)
            .collect()
    }
}

/// A URL as etcd prints it: no trailing slash for a bare host.
pub fn url_string(u: &Url) -> String {
    let s = u.to_string();
    match s.strip_suffix('/') {
        Some(t) if u.path() == "/" => t.to_string(),
        _ => s,
    }
}

fn check_url(what: &str, u: &Url) -> Result<()> {
    match u.scheme() {
        "http" | "https" => {}
        s => {
            return Err(StoreError::config(format!(
                "{what}: URL scheme must be http or https, got {s:?} in {u}"
            )))
        }
    }
    if u.host_str().is_none() || u.port_or_known_default().is_none() {
        return Err(StoreError::config(format!(
            "{what}: {u} needs a host and a port"
        )));
    }
    if u.path() != "/" && !u.path().is_empty() {
        return Err(StoreError::config(format!(
            "{what}: {u} must not have a path"
        )));
    }
    Ok(())
}

/// Parses a comma-separated URL list (an etcd flag value).
pub fn parse_urls(what: &str, s: &str) -> Result<Vec<Url>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let u = Url::parse(p.trim())
                .map_err(|e| StoreError::config(format!("{what}: cannot parse URL {p:?}: {e}")))?;
            check_url(what, &u)?;
            Ok(u)
        })
        .collect()
}

/// Parses `--initial-cluster`: `name=url,name=url2,other=url3`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<Url>)>> {
    let mut out: Vec<(String, Vec<Url>)> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            StoreError::config(format!(
                "--initial-cluster: {part:?} is not of the form name=peer-url"
            ))
        })?;
        let u = parse_urls("--initial-cluster", url)?;
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.extend(u),
            None => out.push((name.to_string(), u)),
        }
    }
    if out.is_empty() {
        return Err(StoreError::config("--initial-cluster must not be empty"));
    }
    Ok(out)
}

/// Parses etcd's `--auto-compaction-mode` / `--auto-compaction-retention` pair.
pub fn parse_auto_compaction(mode: &str, retention: &str) -> Result<AutoCompaction> {
    let retention = retention.trim();
    if retention.is_empty() || retention == "0" {
        return Ok(AutoCompaction::Off);
    }
    match mode {
        "periodic" => {
            // A bare number is hours, like etcd.
            let d = if let Ok(h) = retention.parse::<u64>() {
                Duration::from_secs(h * 3600)
            } else {
                parse_duration(retention).ok_or_else(|| {
                    StoreError::config(format!(
                        "--auto-compaction-retention: cannot parse {retention:?} as a duration"
                    ))
                })?
            };
            if d.is_zero() {
                Ok(AutoCompaction::Off)
            } else {
                Ok(AutoCompaction::Periodic(d))
            }
        }
        "revision" => {
            let n: i64 = retention.parse().map_err(|_| {
                StoreError::config(format!(
                    "--auto-compaction-retention: {retention:?} is not a revision count"
                ))
            })?;
            Ok(if n <= 0 {
                AutoCompaction::Off
            } else {
                AutoCompaction::Revision(n)
            })
        }
        other => Err(StoreError::config(format!(
            "--auto-compaction-mode must be 'periodic' or 'revision', got {other:?}"
        ))),
    }
}

/// Parses Go-style durations: `90s`, `5m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_groups_urls() {
        let c =
            parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2,a=http://127.0.0.1:3")
                .expect("valid");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1.len(), 2);
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("a=notaurl").is_err());
        assert!(parse_initial_cluster("a=unix://x:1").is_err());
    }

    #[test]
    fn validation_catches_bad_combinations() {
        let mut c = StoreConfig::default_for("n1");
        assert!(c.validate().is_ok());
        c.initial_cluster = parse_initial_cluster("other=http://127.0.0.1:2380").expect("valid");
        let e = c.validate().expect_err("unknown name").to_string();
        assert!(e.contains("couldn't find local name"), "{e}");
        let mut c = StoreConfig::default_for("n1");
        c.election_timeout = Duration::from_millis(200);
        assert!(c.validate().is_err());
        let mut c = StoreConfig::default_for("n1");
        c.initial_advertise_peer_urls = parse_urls("x", "http://127.0.0.1:9999").expect("valid");
        assert!(
            c.validate().is_err(),
            "advertised peer URL not in --initial-cluster"
        );
    }

    #[test]
    fn durations_and_compaction_modes() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(
            parse_auto_compaction("periodic", "1").expect("ok"),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_auto_compaction("revision", "1000").expect("ok"),
            AutoCompaction::Revision(1000)
        );
        assert_eq!(
            parse_auto_compaction("periodic", "0").expect("ok"),
            AutoCompaction::Off
        );
        assert!(parse_auto_compaction("weekly", "1").is_err());
    }
}
