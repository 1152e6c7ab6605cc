//! Kubernetes' max-in-flight filter: at most `--max-requests-inflight` read-only and
//! `--max-mutating-requests-inflight` mutating requests are served at once; the next gets
//! `429 TooManyRequests` with `Retry-After: 1`. Long-running requests (watches, exec,
//! attach, port-forward, proxy, followed logs) and the `system:masters` group are not
//! counted, as in Kubernetes.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Requests being served now, read-only and mutating.
#[derive(Debug, Default)]
pub struct Inflight {
    readonly: AtomicUsize,
    mutating: AtomicUsize,
}

/// A request's place among those in flight, given back when dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a method changes something.
pub fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Inflight {
    /// A slot, unless `limit` (0: no limit) requests of the kind are in flight already.
    pub fn acquire(&self, mutating: bool, limit: usize) -> Option<Slot<'_>> {
        let counter = if mutating {
            &self.mutating
        } else {
            &self.readonly
        };
        let now = counter.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(counter);
        if limit > 0 && now > limit {
            return None;
        }
        Some(slot)
    }

    /// Read-only and mutating requests in flight now.
    pub fn current(&self) -> (usize, usize) {
        (
            self.readonly.load(Ordering::Acquire),
            self.mutating.load(Ordering::Acquire),
        )
    }
}

/// Watches open now, by user: `--max-watches-per-user` bounds how many one client
/// identity may hold, so that a single client (a buggy controller, a hostile token) cannot
/// tie up the server's memory and the watch cache's fan-out with endless streams. Kubernetes
/// leaves this to API priority and fairness, which keelson does not have.
#[derive(Debug, Default)]
pub struct Watches {
    by_user: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open watch of a user, given back when dropped (with the response body).
pub struct WatchSlot {
    watches: std::sync::Arc<Watches>,
    user: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut m = self.watches.by_user.lock();
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl Watches {
    /// A slot for one more watch of `user`, unless they hold `limit` (0: no limit) already.
    pub fn acquire(self: &std::sync::Arc<Self>, user: &str, limit: usize) -> Option<WatchSlot> {
        let mut m = self.by_user.lock();
        let n = m.entry(user.to_string()).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(WatchSlot {
            watches: std::sync::Arc::clone(self),
            user: user.to_string(),
        })
    }

    /// The watches `user` holds now.
    pub fn of(&self, user: &str) -> usize {
        self.by_user.lock().get(user).copied().unwrap_or(0)
    }
}

/// The `429` a watch over its user's limit gets.
pub fn too_many_watches(user: &str, limit: usize) -> Response {
    let mut r = ApiError::TooManyRequests(format!(
        "too many watches: {user} has {limit} open (--max-watches-per-user), close one or \
         try again later"
    ))
    .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

/// The `429` a request over the limit gets.
pub fn too_many() -> Response {
    let mut r = ApiError::TooManyRequests("Too many requests, please try again later.".into())
        .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_kind_and_given_back() {
        let f = Inflight::default();
        let a = f.acquire(false, 2).expect("first");
        let b = f.acquire(false, 2).expect("second");
        assert!(f.acquire(false, 2).is_none());
        assert_eq!(f.current(), (2, 0), "a refused request holds no slot");
        let m = f.acquire(true, 1).expect("mutating has its own limit");
        drop(a);
        assert!(f.acquire(false, 2).is_some());
        drop((b, m));
        assert_eq!(f.current(), (0, 0));
        let many: Vec<_> = (0..1000)
            .map(|_| f.acquire(false, 0).expect("no limit"))
            .collect();
        assert_eq!(f.current().0, 1000);
        drop(many);
    }

    #[test]
    fn watches_are_counted_per_user_and_given_back() {
        let w = std::sync::Arc::new(Watches::default());
        let a = w.acquire("alice", 2).expect("first");
        let b = w.acquire("alice", 2).expect("second");
        assert!(w.acquire("alice", 2).is_none(), "over alice's limit");
        assert_eq!(w.of("alice"), 2, "a refused watch holds no slot");
        let c = w.acquire("bob", 2).expect("bob has his own count");
        drop(a);
        let d = w
            .acquire("alice", 2)
            .expect("a slot given back is free again");
        drop((b, c, d));
        assert_eq!((w.of("alice"), w.of("bob")), (0, 0));
        assert!(
            w.by_user.lock().is_empty(),
            "users without watches are forgotten"
        );
        let many: Vec<_> = (0..100)
            .map(|_| w.acquire("carol", 0).expect("no limit"))
            .collect();
        assert_eq!(w.of("carol"), 100);
        drop(many);
    }
}
