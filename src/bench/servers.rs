//! Starting `keelson server` clusters on loopback for the API benchmarks, and connecting to
//! them.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::error::{BenchError, Result};

pub struct Member {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    client_url: String,
}

/// A `keelson server` cluster on loopback, SIGKILLed by PID on drop.
pub struct ServerCluster {
    binary: PathBuf,
    members: Vec<Member>,
}

pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| BenchError::io("binding a loopback port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| BenchError::io("reading a loopback port", e))
}

impl ServerCluster {
    /// Starts `members` servers named `<prefix>-<i>` under `root`, each with `extra` flags.
    pub fn start(
        binary: &Path,
        root: &Path,
        prefix: &str,
        members: usize,
        extra: &[&str],
    ) -> Result<ServerCluster> {
        let ports = free_ports(3 * members)?;
        let names: Vec<String> = (0..members).map(|i| format!("{prefix}-{i}")).collect();
        let initial = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}=https://127.0.0.1:{}", ports[3 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let dir = root.join(name);
            fs::create_dir_all(&dir)
                .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
            let client_url = format!("http://127.0.0.1:{}", ports[3 * i]);
            let args: Vec<String> = [
                "server".to_string(),
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.join("data").display().to_string(),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--etcd-insecure-loopback".into(),
                "--listen-peer-urls".into(),
                format!("https://127.0.0.1:{}", ports[3 * i + 1]),
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                format!("bench-{prefix}-{}", std::process::id()),
                "--bind-address".into(),
                "127.0.0.1".into(),
                "--secure-port".into(),
                ports[3 * i + 2].to_string(),
                "--log-level".into(),
                "warn".into(),
                "--disable-agent".into(),
            ]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
            members.push(Member {
                name: name.clone(),
                dir,
                args,
                child: None,
                client_url,
            });
        }
        share_cas(&members)?;
        let mut c = ServerCluster {
            binary: binary.to_path_buf(),
            members,
        };
        for m in &mut c.members {
            let log_path = m.dir.join("server.log");
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| BenchError::io(format!("opening {}", log_path.display()), e))?;
            let log2 = log
                .try_clone()
                .map_err(|e| BenchError::io("duplicating a log handle", e))?;
            let child = Command::new(&c.binary)
                .args(&m.args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|source| BenchError::Spawn {
                    binary: c.binary.clone(),
                    source,
                })?;
            m.child = Some(child);
        }
        Ok(c)
    }

    /// The members' etcd client URLs.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn kubeconfigs(&self) -> Vec<PathBuf> {
        self.members
            .iter()
            .map(|m| m.dir.join("data/admin.kubeconfig"))
            .collect()
    }

    pub fn check_alive(&mut self) -> Result<()> {
        for m in &mut self.members {
            if let Some(child) = &mut m.child {
                if let Ok(Some(status)) = child.try_wait() {
                    m.child = None;
                    let log = fs::read_to_string(m.dir.join("server.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    return Err(BenchError::MemberExited {
                        member: m.name.clone(),
                        status: status.to_string(),
                        log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    });
                }
            }
        }
        Ok(())
    }

    /// User plus system CPU seconds each running member has used.
    pub fn cpu_seconds(&self) -> Vec<f64> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref())
            .filter_map(|c| {
                let stat = fs::read_to_string(format!("/proc/{}/stat", c.id())).ok()?;
                // Fields after the parenthesised command name; utime and stime are the 14th
                // and 15th of the whole line.
                let rest = stat.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let utime: f64 = f.get(11)?.parse().ok()?;
                let stime: f64 = f.get(12)?.parse().ok()?;
                Some((utime + stime) / ticks)
            })
            .collect()
    }

    pub fn rss_bytes(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref())
            .filter_map(|c| {
                let status = fs::read_to_string(format!("/proc/{}/status", c.id())).ok()?;
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .collect()
    }
}

impl Drop for ServerCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| BenchError::Failed(format!("reading {}: {e}", kubeconfig.display())))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| BenchError::Failed(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
    config.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(config).map_err(|e| BenchError::Failed(format!("API client: {e}")))
}

/// Waits until every kubeconfig's apiserver answers (failing early if a member exits).
pub async fn wait_serving(
    cluster: &mut Option<ServerCluster>,
    kubeconfigs: &[PathBuf],
    timeout: Duration,
) -> Result<Vec<Client>> {
    let deadline = Instant::now() + timeout;
    let mut clients = Vec::new();
    for kc in kubeconfigs {
        loop {
            if let Some(c) = cluster.as_mut() {
                c.check_alive()?;
            }
            if kc.exists() {
                if let Ok(client) = client_for(kc).await {
                    let ns: Api<Namespace> = Api::all(client.clone());
                    if ns.get("default").await.is_ok() {
                        clients.push(client);
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("the API at {} answering", kc.display()),
                    secs: timeout.as_secs_f64(),
                    detail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(clients)
}

/// Creates namespace `name` (an existing one is fine).
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(BenchError::Failed(format!(
            "creating namespace {name}: {e}"
        ))),
    }
}

/// The binary to run as `keelson server`: the given one, or this executable.
pub fn server_binary(given: &Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(b) => Ok(b.clone()),
        None => std::env::current_exe().map_err(|e| BenchError::io("locating this executable", e)),
    }
}

/// Gives the members of a statically bootstrapped cluster one set of CAs (the store's peer
/// port takes only certificates of its CA): the first data dir's, copied to the others.
fn share_cas(members: &[Member]) -> Result<()> {
    let Some((first, rest)) = members.split_first() else {
        return Ok(());
    };
    let first_data = first.dir.join("data");
    let sans = keelson_apiserver::pki::default_sans(&[]);
    let pki_err = |e: keelson_apiserver::ApiError| {
        BenchError::io(
            "creating the cluster's CAs",
            std::io::Error::other(e.to_string()),
        )
    };
    keelson_apiserver::pki::Pki::ensure(&first_data, &sans).map_err(pki_err)?;
    keelson_apiserver::pki::EtcdPki::ensure(&first_data, &sans).map_err(pki_err)?;
    for m in rest {
        for f in keelson_apiserver::pki::SHARED_FILES {
            let from = first_data.join("pki").join(f);
            let to = m.dir.join("data").join("pki").join(f);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
            }
            fs::copy(&from, &to)
                .map_err(|e| BenchError::io(format!("copying {}", from.display()), e))?;
        }
    }
    Ok(())
}
