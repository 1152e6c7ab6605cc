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
}
