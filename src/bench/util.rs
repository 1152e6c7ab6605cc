//! Small helpers: a fast PRNG, etcd-style keys and values, a rate limiter, connections.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keelson_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use keelson_proto::etcdserverpb::StatusRequest;
use tonic::transport::{Channel, Endpoint};

use super::error::{BenchError, Result};

/// SplitMix64: plenty for choosing keys, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(stream: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(now ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Printable random bytes, like etcd's `mustRandBytes` values.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// Bytes Go's `binary.PutVarint` needs for `n` (zig-zag, then LEB128).
fn varint_len(n: u64) -> usize {
    let mut z = n << 1;
    let mut len = 1;
    while z >= 0x80 {
        z >>= 7;
        len += 1;
    }
    len
}

/// Checks that `key_size` bytes can hold every key index below `key_space`.
pub fn check_key_size(key_size: usize, key_space: u64) -> Result<()> {
    let needed = varint_len(key_space.saturating_sub(1));
    if key_size < needed {
        return Err(BenchError::InvalidArgs(format!(
            "--key-size {key_size} is too small for --key-space-size {key_space} (needs {needed} bytes)"
        )));
    }
    Ok(())
}

/// etcd's benchmark key: `key_size` zero bytes with `binary.PutVarint(index)` at the front.
pub fn make_key(index: u64, key_size: usize) -> Vec<u8> {
    let mut key = vec![0u8; key_size.max(varint_len(index))];
    let mut z = index << 1;
    let mut i = 0;
    while z >= 0x80 {
        key[i] = (z as u8) | 0x80;
        z >>= 7;
        i += 1;
    }
    key[i] = z as u8;
    key
}

pub use crate::kv::get::prefix_end;

/// A Go-style duration (`30s`, `500ms`, `1m30s`; a bare number is seconds).
pub use crate::kv::client::parse_go_duration as parse_duration;

/// Spaces requests evenly at `rate` per second across all clients (0 = unlimited).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(rate: u64) -> Option<Self> {
        (rate > 0).then(|| RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate as f64),
            next: Mutex::new(None),
        })
    }

    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// `host:port` → `http://host:port`; URLs are kept.
pub fn normalize_endpoint(endpoint: &str) -> String {
    let e = endpoint.trim();
    if e.contains("://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

/// Opens one HTTP/2 connection to `endpoint`, bounded by `timeout`.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel> {
    let url = normalize_endpoint(endpoint);
    let ep = Endpoint::from_shared(url.clone())
        .map_err(|source| BenchError::Endpoint {
            endpoint: url.clone(),
            source,
        })?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    match tokio::time::timeout(timeout, ep.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(source)) => Err(BenchError::Connect {
            endpoint: url,
            source,
        }),
        Err(_) => Err(BenchError::ConnectTimeout { endpoint: url }),
    }
}

/// `conns` connections, spread round-robin over `endpoints`.
pub async fn connect_all(
    endpoints: &[String],
    conns: usize,
    timeout: Duration,
) -> Result<Vec<Channel>> {
    if endpoints.is_empty() {
        return Err(BenchError::InvalidArgs("no --endpoints".into()));
    }
    let futures = (0..conns.max(1)).map(|i| connect(&endpoints[i % endpoints.len()], timeout));
    futures::future::try_join_all(futures).await
}

/// The endpoint of the current leader, asked via Maintenance.Status of each endpoint.
pub async fn find_leader(endpoints: &[String], timeout: Duration) -> Result<String> {
    let mut last_error = None;
    let mut statuses = Vec::new();
    for endpoint in endpoints {
        let channel = match connect(endpoint, timeout).await {
            Ok(c) => c,
            Err(e) => {
                last_error = Some(e.to_string());
                continue;
            }
        };
        let mut client = MaintenanceClient::new(channel);
        let mut request = tonic::Request::new(StatusRequest {});
        request.set_timeout(timeout);
        match client.status(request).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                let member = resp.header.map(|h| h.member_id).unwrap_or(0);
                statuses.push((endpoint.clone(), member, resp.leader));
            }
            Err(status) => last_error = Some(status.to_string()),
        }
    }
    for (endpoint, member, _) in &statuses {
        if statuses
            .iter()
            .any(|(_, _, leader)| *leader != 0 && leader == member)
        {
            return Ok(endpoint.clone());
        }
    }
    Err(BenchError::NoLeader(format!(
        "{}{}",
        endpoints.join(","),
        last_error
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_go_put_varint() {
        assert_eq!(make_key(0, 4), vec![0, 0, 0, 0]);
        assert_eq!(make_key(1, 2), vec![2, 0]);
        assert_eq!(make_key(64, 3), vec![0x80, 0x01, 0]);
        assert!(check_key_size(8, 100_000).is_ok());
        assert!(check_key_size(1, 1000).is_err());
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
        assert_eq!(rng.bytes(16).len(), 16);
    }
}
