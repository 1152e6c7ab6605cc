//! Network namespaces a test makes, so it can cut members off from each other.
//!
//! Every host gets its own namespace with one address on `10.201.<k>.0/24`; a bridge in a
//! further "hub" namespace joins them, and the test's own namespace is attached to the same
//! bridge at `10.201.<k>.254`, so the test reaches every host no matter what. A partition is a
//! set of blackhole routes inside the hosts' namespaces: packets between the two sides are
//! dropped in both directions, while the test still talks to both sides. The hub namespace
//! holds no firewall rules of the machine's, so bridged traffic is never filtered by them.
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip` from iproute2. Everything is deleted
//! on drop, also when the test panics.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip <args>`, panicking with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Like [`ip`], ignoring failure (for cleaning up what may not exist).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this process may make network namespaces (root, with `ip`), checked by making
/// and deleting one.
pub fn available() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let name = format!("ktprobe{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ip_quiet(&["netns", "del", &name]);
    made
}

/// `n` hosts on one bridge; see the module docs.
pub struct Net {
    k: u32,
    hosts: Vec<String>,
    /// (namespace, destination) of every blackhole route in place.
    cuts: Vec<(String, String)>,
}

impl Net {
    pub fn new(n: usize) -> Net {
        assert!(n < 250, "at most 249 hosts");
        // Unique among this process' nets and, via the PID, among concurrent test binaries.
        let k = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::SeqCst)) % 250;
        let hub = format!("kt{k}hub");
        let mut net = Net {
            k,
            hosts: (0..n).map(|i| format!("kt{k}h{i}")).collect(),
            cuts: Vec::new(),
        };
        net.remove(); // leftovers of a run that died before its drop
        let bridge = format!("kb{k}");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", &bridge, "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", &bridge, "up"]);
        let attach = |ns: Option<&str>, tag: &str, addr: &str| {
            let (outer, inner) = (format!("kv{k}{tag}a"), format!("kv{k}{tag}b"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &outer, "netns", &hub]);
            ip(&["-n", &hub, "link", "set", &outer, "master", &bridge, "up"]);
            match ns {
                Some(ns) => {
                    ip(&["link", "set", &inner, "netns", ns]);
                    ip(&["-n", ns, "addr", "add", addr, "dev", &inner]);
                    ip(&["-n", ns, "link", "set", &inner, "up"]);
                    ip(&["-n", ns, "link", "set", "lo", "up"]);
                }
                None => {
                    ip(&["addr", "add", addr, "dev", &inner]);
                    ip(&["link", "set", &inner, "up"]);
                }
            }
        };
        for (i, ns) in net.hosts.clone().iter().enumerate() {
            ip(&["netns", "add", ns]);
            attach(
                Some(ns),
                &format!("h{i}"),
                &format!("10.201.{k}.{}/24", i + 1),
            );
        }
        attach(None, "t", &format!("10.201.{k}.254/24"));
        net.k = k;
        net
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.201.{}.{}", self.k, i + 1)
    }

    /// A command that runs `program` inside host `i`'s namespace (`ip netns exec` execs it,
    /// so the child's PID is the program's).
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i]]).arg(program);
        c
    }

    /// Cuts the hosts in `side` off from every other host, in both directions. The test's
    /// own namespace still reaches all of them.
    pub fn partition(&mut self, side: &[usize]) {
        for a in 0..self.hosts.len() {
            for b in 0..self.hosts.len() {
                if side.contains(&a) != side.contains(&b) {
                    let ns = self.hosts[a].clone();
                    let dst = format!("{}/32", self.addr(b));
                    ip(&["-n", &ns, "route", "add", "blackhole", &dst]);
                    self.cuts.push((ns, dst));
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for (ns, dst) in std::mem::take(&mut self.cuts) {
            ip(&["-n", &ns, "route", "del", "blackhole", &dst]);
        }
    }

    fn remove(&self) {
        let k = self.k;
        // Deleting a namespace deletes the veth ends in it, and with them their peers.
        for ns in &self.hosts {
            ip_quiet(&["netns", "del", ns]);
        }
        ip_quiet(&["netns", "del", &format!("kt{k}hub")]);
        ip_quiet(&["link", "del", &format!("kv{k}tb")]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}
