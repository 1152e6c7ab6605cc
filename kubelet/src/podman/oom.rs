//! Which containers the kernel's OOM killer hit, from the kernel log (`/dev/kmsg`).
//!
//! Podman 4 never sets `State.OOMKilled` (podman#13102: conmon writes its `oom` file into
//! its working directory, where Podman does not look), so the runtime reads the kernel's
//! own record of each kill, as cAdvisor does: a line like
//! `oom-kill:constraint=CONSTRAINT_MEMCG,…,task_memcg=/libpod_parent/<pod>/libpod-<id>,…`.
//! The line is logged before the task dies, so by the time Podman reports the container
//! exited the record is there to read.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Container ids remembered (OOM kills are rare; this bounds a pathological node).
const REMEMBERED: usize = 4096;

struct State {
    /// `None` once opening failed (not root, no /dev/kmsg): then nothing is known.
    file: Option<File>,
    opened: bool,
    killed: HashSet<String>,
    order: VecDeque<String>,
}

/// The process-wide reader of the kernel log.
pub struct KernelOomLog {
    state: Mutex<State>,
}

/// The one reader of this process (several runtimes may share it).
pub fn kernel_oom_log() -> &'static KernelOomLog {
    static LOG: OnceLock<KernelOomLog> = OnceLock::new();
    LOG.get_or_init(|| KernelOomLog {
        state: Mutex::new(State {
            file: None,
            opened: false,
            killed: HashSet::new(),
            order: VecDeque::new(),
        }),
    })
}

/// The 64-hex container id in a cgroup path such as `/libpod_parent/<pod>/libpod-<id>` or
/// `/machine.slice/libpod-<id>.scope`.
fn container_of_cgroup(path: &str) -> Option<&str> {
    let at = path.rfind("libpod-")? + "libpod-".len();
    let id = path.get(at..at + 64)?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some(id)
}

/// The container whose task an `oom-kill:` kernel message is about.
pub fn oom_kill_container(message: &str) -> Option<&str> {
    let rest = &message[message.find("oom-kill:")?..];
    let memcg = rest
        .split(',')
        .find_map(|field| field.strip_prefix("task_memcg="))?;
    container_of_cgroup(memcg)
}

impl KernelOomLog {
    /// Whether a task of container `id` was OOM-killed, per the kernel log so far.
    pub fn killed(&self, id: &str) -> bool {
        let mut state = self.state.lock();
        self.drain(&mut state);
        state.killed.contains(id)
    }

    /// Reads the records logged since the last call (all of them the first time).
    fn drain(&self, state: &mut State) {
        if !state.opened {
            state.opened = true;
            match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("/dev/kmsg")
            {
                Ok(f) => state.file = Some(f),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot read /dev/kmsg: containers killed by the OOM killer are reported as Error"
                ),
            }
        }
        let Some(file) = state.file.as_mut() else {
            return;
        };
        // One read returns one record; 8 KiB is the kernel's record limit.
        let mut buf = vec![0u8; 8192];
        let mut found = Vec::new();
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    // `prio,seq,usec,flags;message\n` then ` KEY=value` lines.
                    let message = record.split_once(';').map_or(&*record, |(_, m)| m);
                    let first = message.lines().next().unwrap_or_default();
                    if let Some(id) = oom_kill_container(first) {
                        found.push(id.to_string());
                    }
                }
                // Records overwritten before we read them: carry on with the next.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading /dev/kmsg; OOM kills no longer detected");
                    state.file = None;
                    break;
                }
            }
        }
        for id in found {
            if state.killed.insert(id.clone()) {
                tracing::debug!(container = %id, "OOM kill in the kernel log");
                state.order.push_back(id);
                if state.order.len() > REMEMBERED {
                    if let Some(old) = state.order.pop_front() {
                        state.killed.remove(&old);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_killed_tasks_container() {
        let id = "da97939cd08eb13407637b8435bed1f6e2c0a00964e30b9a610c7b5b0a095f76";
        let line = format!(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=libpod-{id},\
             mems_allowed=0,oom_memcg=/libpod_parent/d4e5/libpod-{id},\
             task_memcg=/libpod_parent/d4e5/libpod-{id},task=sh,pid=9561,uid=0"
        );
        assert_eq!(oom_kill_container(&line), Some(id));
        let v2 = format!("oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/machine.slice/libpod-{id}.scope/container,task=x");
        assert_eq!(oom_kill_container(&v2), Some(id));
        assert_eq!(
            oom_kill_container("Memory cgroup out of memory: Killed process 9561 (sh)"),
            None
        );
        assert_eq!(
            oom_kill_container("oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/user.slice,task=x"),
            None
        );
    }
}
