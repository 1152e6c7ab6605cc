//! The audit log: `--audit-policy-file` in Kubernetes' audit Policy format
//! (`audit.k8s.io/v1`), events as JSON lines in `--audit-log-path`, rotated at
//! `--audit-log-maxsize` megabytes keeping `--audit-log-maxbackup` old files.
//!
//! Each request a rule's level (`None`, `Metadata`, `Request`, `RequestResponse`) covers gives
//! a `RequestReceived` event and a `ResponseComplete` one (`ResponseStarted` for watches and
//! streams, whose end is not waited for), unless the policy or the rule omits the stage.
//! `Request` adds the request body, `RequestResponse` also the response body (of responses
//! that are not streams).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::auth::RequestInfo;
use crate::error::{ApiError, Result};
use crate::rest::User;

/// How much a request is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

#[derive(Debug, Default)]
struct GroupResources {
    group: String,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

#[derive(Debug)]
struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    omit_stages: Vec<String>,
}

use crate::meta::string_list as strings;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("--audit-policy-file: {}", msg.into()))
}

impl Rule {
    fn matches(&self, user: &User, info: &RequestInfo) -> bool {
        if !self.users.is_empty() && !self.users.contains(&user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| self.user_groups.contains(g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&info.verb) {
            return false;
        }
        if !info.resource_request {
            // A rule about resources or namespaces says nothing of non-resource URLs.
            if !self.resources.is_empty() || !self.namespaces.is_empty() {
                return false;
            }
            return self.non_resource_urls.is_empty()
                || self.non_resource_urls.iter().any(|u| {
                    *u == info.path
                        || u.strip_suffix('*')
                            .is_some_and(|p| info.path.starts_with(p))
                });
        }
        if !self.non_resource_urls.is_empty() {
            return false;
        }
        if !self.namespaces.is_empty() && !self.namespaces.contains(&info.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = info.combined_resource();
        self.resources.iter().any(|g| {
            g.group == info.api_group
                && (g.resources.is_empty()
                    || g.resources.iter().any(|r| {
                        *r == "*"
                            || *r == combined
                            || (info.subresource.is_empty() && *r == info.resource)
                            || r.strip_prefix("*/") == Some(info.subresource.as_str())
                            || r.strip_suffix("/*") == Some(info.resource.as_str())
                    }))
                && (g.resource_names.is_empty() || g.resource_names.contains(&info.name))
        })
    }
}

/// The policy: the first rule that matches sets the level; none matching is `None`.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<String>,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy> {
        let v = crate::codec::yaml_to_json(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if v.get("kind").and_then(Value::as_str) != Some("Policy")
            || v.get("apiVersion").and_then(Value::as_str) != Some("audit.k8s.io/v1")
        {
            return Err(bad("want kind Policy of audit.k8s.io/v1"));
        }
        let mut rules = Vec::new();
        for (i, r) in v
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let level = r
                .get("level")
                .and_then(Value::as_str)
                .and_then(Level::parse)
                .ok_or_else(|| {
                    bad(format!(
                        "rules[{i}].level: one of None, Metadata, Request, RequestResponse"
                    ))
                })?;
            let resources = r
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|g| GroupResources {
                    group: g
                        .get("group")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    resources: strings(g, "resources"),
                    resource_names: strings(g, "resourceNames"),
                })
                .collect();
            let rule = Rule {
                level,
                users: strings(r, "users"),
                user_groups: strings(r, "userGroups"),
                verbs: strings(r, "verbs"),
                resources,
                namespaces: strings(r, "namespaces"),
                non_resource_urls: strings(r, "nonResourceURLs"),
                omit_stages: strings(r, "omitStages"),
            };
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                return Err(bad(format!(
                    "rules[{i}]: nonResourceURLs cannot be mixed with resources or namespaces"
                )));
            }
            rules.push(rule);
        }
        Ok(Policy {
            rules,
            omit_stages: strings(&v, "omitStages"),
        })
    }

    /// The level of a request and the stages its rule omits.
    fn decide(&self, user: &User, info: &RequestInfo) -> (Level, Vec<String>) {
        match self.rules.iter().find(|r| r.matches(user, info)) {
            Some(r) => {
                let mut omit = self.omit_stages.clone();
                omit.extend(r.omit_stages.iter().cloned());
                (r.level, omit)
            }
            None => (Level::None, Vec::new()),
        }
    }
}

/// Writes events to a file, rotating it.
struct Sink {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_backups: usize,
}

impl Sink {
    fn open(path: &Path, max_bytes: u64, max_backups: usize) -> Result<Sink> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| bad(format!("creating {}: {e}", dir.display())))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| bad(format!("opening {}: {e}", path.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Sink {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_backups,
        })
    }

    /// `audit.log` → `audit-2026-12-04T02-35-00.123.log` (lumberjack's names, which
    /// Kubernetes uses), then drops the oldest beyond the backups kept.
    fn rotate(&mut self) -> std::io::Result<()> {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "audit".into());
        let ext = self
            .path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        // A millisecond later while the name is taken, so names sort by age.
        let mut t = jiff::Timestamp::now();
        let target = loop {
            let stamp = t.strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string();
            let p = dir.join(format!("{stem}-{stamp}{ext}"));
            if !p.exists() {
                break p;
            }
            t = t
                .checked_add(jiff::SignedDuration::from_millis(1))
                .unwrap_or(t);
        };
        fs::rename(&self.path, target)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        let prefix = format!("{stem}-");
        let mut old: Vec<PathBuf> = fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&ext))
        })
        .collect();
        old.sort();
        if self.max_backups > 0 {
            while old.len() > self.max_backups {
                fs::remove_file(old.remove(0))?;
            }
        }
        Ok(())
    }

    fn write(&mut self, line: &[u8]) {
        if self.max_bytes > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            if let Err(e) = self.rotate() {
                tracing::error!(error = %e, path = %self.path.display(), "rotating the audit log");
            }
        }
        match self.file.write_all(line) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "writing the audit log")
            }
        }
    }
}

/// The audit logger of one apiserver.
pub struct Auditor {
    policy: Policy,
    sink: Mutex<Sink>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auditor({} rules)", self.policy.rules.len())
    }
}

/// One request being audited.
pub struct Record {
    level: Level,
    omit: Vec<String>,
    base: Value,
}

/// Microseconds, as audit events stamp time.
fn now() -> String {
    crate::meta::now_micro()
}

impl Auditor {
    pub fn new(
        policy: Policy,
        path: &Path,
        max_megabytes: u64,
        max_backups: usize,
    ) -> Result<Auditor> {
        Ok(Auditor {
            policy,
            sink: Mutex::new(Sink::open(path, max_megabytes * 1024 * 1024, max_backups)?),
        })
    }

    fn emit(&self, ev: &Value) {
        let mut line = serde_json::to_vec(ev).unwrap_or_default();
        line.push(b'\n');
        self.sink.lock().write(&line);
    }

    /// Starts auditing a request (`None` at level None): writes `RequestReceived`.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &self,
        user: &User,
        impersonated: Option<&User>,
        info: &RequestInfo,
        uri: &str,
        source_ip: Option<String>,
        user_agent: Option<&str>,
        audit_id: &str,
    ) -> Option<Record> {
        let acting = impersonated.unwrap_or(user);
        let (level, omit) = self.policy.decide(acting, info);
        if level == Level::None {
            return None;
        }
        let user_info = |u: &User| {
            let mut v = json!({"username": u.name, "groups": u.groups});
            if !u.uid.is_empty() {
                v["uid"] = json!(u.uid);
            }
            v
        };
        let mut base = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level.name(),
            "auditID": audit_id,
            "requestURI": uri,
            "verb": info.verb,
            "user": user_info(user),
            "sourceIPs": source_ip.into_iter().collect::<Vec<_>>(),
            "requestReceivedTimestamp": now(),
        });
        if let Some(i) = impersonated {
            base["impersonatedUser"] = user_info(i);
        }
        if let Some(ua) = user_agent {
            base["userAgent"] = json!(ua);
        }
        if info.resource_request {
            let mut r = json!({"resource": info.resource, "apiVersion": info.api_version});
            for (k, v) in [
                ("namespace", &info.namespace),
                ("name", &info.name),
                ("apiGroup", &info.api_group),
                ("subresource", &info.subresource),
            ] {
                if !v.is_empty() {
                    r[k] = json!(v);
                }
            }
            base["objectRef"] = r;
        }
        let rec = Record { level, omit, base };
        self.stage(&rec, "RequestReceived", None);
        Some(rec)
    }

    fn stage(&self, rec: &Record, stage: &str, extra: Option<Value>) {
        if rec.omit.iter().any(|s| s == stage) {
            return;
        }
        let mut ev = rec.base.clone();
        ev["stage"] = json!(stage);
        ev["stageTimestamp"] = json!(now());
        if let Some(Value::Object(m)) = extra {
            for (k, v) in m {
                ev[k] = v;
            }
        }
        self.emit(&ev);
    }

    /// Whether the response body is wanted (`RequestResponse`).
    pub fn wants_response(rec: &Record) -> bool {
        rec.level >= Level::RequestResponse
    }

    /// Ends a request: `ResponseComplete` (or `ResponseStarted` for a stream), with its code,
    /// and the bodies the level asks for (JSON ones).
    pub fn end(
        &self,
        rec: &Record,
        code: u16,
        streaming: bool,
        request: Option<(&[u8], Option<&str>)>,
        response: Option<&[u8]>,
    ) {
        let mut extra = json!({"responseStatus": {"metadata": {}, "code": code}});
        let as_json = |b: &[u8]| {
            serde_json::from_slice::<Value>(b)
                .ok()
                .filter(Value::is_object)
        };
        if rec.level >= Level::Request {
            // As the request was decoded: JSON, YAML or protobuf (kubectl's creates).
            let body = request
                .filter(|(b, _)| !b.is_empty())
                .and_then(|(b, ct)| crate::codec::decode_object(ct, b).ok());
            if let Some(body) = body {
                extra["requestObject"] = body;
            }
        }
        if rec.level >= Level::RequestResponse {
            if let Some(body) = response.and_then(as_json) {
                extra["responseObject"] = body;
            }
        }
        let stage = if streaming {
            "ResponseStarted"
        } else {
            "ResponseComplete"
        };
        self.stage(rec, stage, Some(extra));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    const POLICY: &str = "
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-scheduler]
- level: None
  nonResourceURLs: [/healthz*, /version]
- level: Metadata
  resources: [{group: '', resources: [secrets, configmaps]}]
- level: RequestResponse
  verbs: [create, delete]
  resources: [{group: apps, resources: ['deployments', 'deployments/scale']}]
- level: Request
  namespaces: [team]
- level: Metadata
";

    #[test]
    fn the_first_matching_rule_sets_the_level() {
        let p = Policy::parse(POLICY).unwrap();
        let r = RequestInfo::resource;
        let alice = user("alice", &["system:authenticated"]);
        let cases = [
            (
                user("system:kube-scheduler", &[]),
                r("get", "", "team", "pods", "", "p"),
                Level::None,
            ),
            (
                alice.clone(),
                RequestInfo::non_resource("get", "/healthz/etcd"),
                Level::None,
            ),
            (
                alice.clone(),
                RequestInfo::non_resource("get", "/metrics"),
                Level::Metadata,
            ),
            (
                alice.clone(),
                r("get", "", "team", "secrets", "", "s"),
                Level::Metadata,
            ),
            (
                alice.clone(),
                r("create", "apps", "x", "deployments", "", ""),
                Level::RequestResponse,
            ),
            (
                alice.clone(),
                r("update", "apps", "x", "deployments", "scale", "d"),
                Level::Metadata,
            ),
            (
                alice.clone(),
                r("delete", "apps", "x", "deployments", "scale", "d"),
                Level::RequestResponse,
            ),
            (
                alice.clone(),
                r("list", "", "team", "pods", "", ""),
                Level::Request,
            ),
            (
                alice,
                r("list", "", "other", "pods", "", ""),
                Level::Metadata,
            ),
        ];
        for (u, info, want) in cases {
            assert_eq!(p.decide(&u, &info).0, want, "{} {info:?}", u.name);
        }
        assert_eq!(
            p.decide(&user("a", &[]), &r("get", "", "", "nodes", "", ""))
                .1,
            vec!["RequestReceived"]
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        for text in [
            "apiVersion: audit.k8s.io/v1\nkind: Other\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: [/x], namespaces: [a]}]\n",
        ] {
            assert!(Policy::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_log_rotates_and_keeps_its_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            sink.write(format!("{{\"line\":{i:040}}}\n").as_bytes());
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"audit.log".to_string()));
        assert!(
            names
                .iter()
                .all(|n| n == "audit.log" || (n.starts_with("audit-") && n.ends_with(".log"))),
            "{names:?}"
        );
        assert!(fs::metadata(&path).unwrap().len() <= 100);
    }
}
