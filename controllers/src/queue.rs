//! A deduplicating work queue with per-key exponential back-off (client-go's rate-limited
//! work queue): a key is never handled by two workers at once, a key added while it is being
//! handled is handled again afterwards, and a key added many times before a worker gets to it
//! is handled once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

/// First retry delay after a failure; doubles per consecutive failure of the same key.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys waiting in `queue` or to be re-queued when their worker finishes.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// The queue (cheap to clone).
#[derive(Clone, Default)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    /// Adds a key (no-op if it is already waiting).
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut st = self.state.lock();
        if !st.dirty.insert(key.clone()) {
            return;
        }
        if st.processing.contains(&key) {
            return; // re-queued by `done`
        }
        st.queue.push_back(key);
        drop(st);
        self.notify.notify_one();
    }

    /// Adds a key after a delay.
    pub fn add_after(&self, key: impl Into<String>, after: Duration) {
        let key = key.into();
        if after.is_zero() {
            self.add(key);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            q.add(key);
        });
    }

    /// Adds a key after its back-off (it failed).
    pub fn add_rate_limited(&self, key: &str) {
        let n = {
            let mut st = self.state.lock();
            let n = st.failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = BASE_DELAY
            .checked_mul(1u32 << (n - 1).min(20))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY);
        self.add_after(key.to_string(), delay);
    }

    /// Forgets a key's failures (it succeeded).
    pub fn forget(&self, key: &str) {
        self.state.lock().failures.remove(key);
    }

    /// The next key to handle; the caller must call [`Queue::done`] with it.
    pub async fn get(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.state.lock();
                if let Some(key) = st.queue.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    if !st.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks a key handled; it goes back in the queue if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut st = self.state.lock();
        st.processing.remove(key);
        if st.dirty.contains(key) {
            st.queue.push_back(key.to_string());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Keys waiting (not counting those being handled).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a reconcile asks for after it ran.
pub enum Next {
    /// Nothing until something changes.
    Done,
    /// Look again after this long even if nothing changes.
    After(Duration),
}

/// A controller the worker pool drives: one reconcile per key.
pub trait Reconcile: Send + Sync + 'static {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Next, kube::Error>> + Send + 'a;
}

/// Calls `f` every `every` until `stop` turns true: a controller's periodic resync (it
/// queues every key again) and whatever housekeeping goes with it.
pub fn spawn_resync(
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut f: impl FnMut() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            f();
        }
    })
}

/// Queues `initial` keys, then runs `workers` tasks that take keys from `queue` and call
/// `controller.reconcile` until `stop` turns true. A failed reconcile is retried with
/// back-off.
pub async fn run_workers<R: Reconcile>(
    name: &'static str,
    controller: Arc<R>,
    queue: Queue,
    workers: usize,
    initial: Vec<String>,
    stop: watch::Receiver<bool>,
) {
    for k in initial {
        queue.add(k);
    }
    let stats = crate::metrics::register(name, &queue);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let controller = Arc::clone(&controller);
        let stats = Arc::clone(&stats);
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let key = tokio::select! {
                    k = queue.get() => k,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let started = std::time::Instant::now();
                let result = controller.reconcile(&key).await;
                stats.reconciled(started.elapsed(), result.is_err());
                match result {
                    Ok(next) => {
                        queue.forget(&key);
                        if let Next::After(d) = next {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, key, error = %e, "reconcile failed; retrying");
                        queue.add_rate_limited(&key);
                    }
                }
                queue.done(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_added_twice_is_handled_once() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, "a");
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_handled_comes_back_after_done() {
        let q = Queue::new();
        q.add("a");
        let k = q.get().await;
        q.add("a");
        // Not handed out again while still being handled.
        assert!(q.is_empty());
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
        q.done("a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_forget_resets() {
        let q = Queue::new();
        q.add_rate_limited("a"); // 5 ms
        q.add_rate_limited("a"); // 10 ms
        q.add_rate_limited("a"); // 20 ms
        assert_eq!(q.state.lock().failures.get("a"), Some(&3));
        tokio::time::sleep(Duration::from_millis(6)).await;
        assert_eq!(q.len(), 1);
        q.forget("a");
        assert!(!q.state.lock().failures.contains_key("a"));
    }
}
