//! The kubelet's restart and image-pull back-off: none before the first retry, then 10 s
//! doubling to 5 minutes; forgotten once the thing ran well for 10 minutes.

use std::time::Duration;

use jiff::Timestamp;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before it ended starts its back-off afresh.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// The back-off still to wait out, counted from `since` (when the container ended or the
    /// pull failed), if any.
    pub fn remaining(&self, since: Timestamp, now: Timestamp) -> Option<Duration> {
        let delay = self.delay?;
        let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
        delay.checked_sub(elapsed).filter(|d| !d.is_zero())
    }

    /// The current delay (what the CrashLoopBackOff message names).
    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or(Duration::ZERO)
    }

    /// Records a retry: the next one waits twice as long (10 s after the first).
    pub fn next(&mut self) {
        self.delay = Some(match self.delay {
            None => INITIAL,
            Some(d) => (d * 2).min(MAX),
        });
    }

    pub fn reset(&mut self) {
        self.delay = None;
    }
}

/// `10s`, `2m40s`, `5m0s`: Go's duration format, as the kubelet's messages show it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let t0 = Timestamp::UNIX_EPOCH;
        let at = |s: i64| Timestamp::from_second(s).expect("time");
        let mut b = Backoff::default();
        assert_eq!(b.remaining(t0, t0), None, "the first restart is at once");
        b.next();
        assert_eq!(b.remaining(t0, at(4)), Some(Duration::from_secs(6)));
        assert_eq!(b.remaining(t0, at(10)), None);
        let mut delays = Vec::new();
        for _ in 0..7 {
            b.next();
            delays.push(b.delay().as_secs());
        }
        assert_eq!(delays, [20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(go_duration(b.delay()), "5m0s");
        assert_eq!(go_duration(INITIAL), "10s");
        b.reset();
        assert_eq!(b.remaining(t0, t0), None);
    }
}
