//! Latency recording (hdrhistogram, microseconds) and etcd-benchmark-style reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// Highest trackable latency: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, plus error counts by message.
#[derive(Clone, Debug)]
pub struct Stats {
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .expect("constant histogram bounds are valid");
        Stats {
            hist,
            errors: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        // Clamped into the histogram's range, so recording cannot fail.
        let _ = self.hist.record(micros);
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.error_n(message, 1);
    }

    pub fn error_n(&mut self, message: impl Into<String>, n: u64) {
        if n > 0 {
            *self.errors.entry(message.into()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        for (message, n) in &other.errors {
            self.error_n(message.clone(), *n);
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A tonic status as a short, stable error key.
pub fn status_key(status: &tonic::Status) -> String {
    let mut message = status.message().to_string();
    if message.len() > 120 {
        let mut cut = 120;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    format!("{:?}: {message}", status.code())
}

/// The result of one workload (or one part of it, e.g. the reads of txn-mixed).
#[derive(Clone, Debug)]
pub struct Report {
    pub name: String,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    pub stats: Stats,
    /// Counts of successful operations by kind (e.g. txn successes and conflicts).
    pub kinds: BTreeMap<String, u64>,
    /// Workload-specific figures, shown in both outputs.
    pub extra: Map<String, Value>,
    /// Sub-reports (e.g. the reads and the writes of txn-mixed).
    pub parts: Vec<Report>,
}

const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

fn secs(micros: u64) -> f64 {
    micros as f64 / 1e6
}

fn ms(micros: f64) -> f64 {
    micros / 1e3
}

impl Report {
    pub fn new(name: impl Into<String>, elapsed: Duration, stats: Stats) -> Self {
        Report {
            name: name.into(),
            elapsed,
            stats,
            kinds: BTreeMap::new(),
            extra: Map::new(),
            parts: Vec::new(),
        }
    }

    /// Successful operations.
    pub fn ok(&self) -> u64 {
        self.stats.hist.len()
    }

    pub fn errors(&self) -> u64 {
        self.stats.error_count()
    }

    /// Successful operations per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// A latency percentile in milliseconds (0 when nothing was recorded).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.ok() == 0 {
            return 0.0;
        }
        ms(self.stats.hist.value_at_percentile(p) as f64)
    }

    pub fn max_ms(&self) -> f64 {
        if self.ok() == 0 {
            return 0.0;
        }
        ms(self.stats.hist.max() as f64)
    }

    /// etcd's `tools/benchmark` report layout.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let h = &self.stats.hist;
        let _ = writeln!(out, "\n{}:", self.name);
        let _ = writeln!(out, "\nSummary:");
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        if self.ok() > 0 {
            let _ = writeln!(out, "  Slowest:\t{:.4} secs.", secs(h.max()));
            let _ = writeln!(out, "  Fastest:\t{:.4} secs.", secs(h.min()));
            let _ = writeln!(out, "  Average:\t{:.4} secs.", h.mean() / 1e6);
            let _ = writeln!(out, "  Stddev:\t{:.4} secs.", h.stdev() / 1e6);
        }
        let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.throughput());
        if self.ok() > 0 {
            let _ = writeln!(out, "\nResponse time histogram:");
            out.push_str(&self.histogram_text());
            let _ = writeln!(out, "\nLatency distribution:");
            for p in PERCENTILES {
                let _ = writeln!(out, "  {p}% in {:.4} secs.", secs(h.value_at_percentile(p)));
            }
            let _ = writeln!(out, "  max in {:.4} secs.", secs(h.max()));
        }
        if !self.kinds.is_empty() {
            let _ = writeln!(out, "\nOperations by kind:");
            for (kind, n) in &self.kinds {
                let _ = writeln!(out, "  [{n}]\t{kind}");
            }
        }
        if !self.extra.is_empty() {
            let _ = writeln!(out, "\nDetails:");
            for (k, v) in &self.extra {
                let _ = writeln!(out, "  {k}:\t{v}");
            }
        }
        if !self.stats.errors.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (message, n) in &self.stats.errors {
                let _ = writeln!(out, "  [{n}]\t{message}");
            }
        }
        for part in &self.parts {
            out.push_str(&part.to_text());
        }
        out
    }

    /// Ten linear buckets between the fastest and the slowest request, as etcd prints them.
    fn histogram_text(&self) -> String {
        const BUCKETS: usize = 10;
        const BAR: u64 = 40;
        let h = &self.stats.hist;
        let (min, max) = (h.min(), h.max());
        let step = ((max - min) as f64 / BUCKETS as f64).max(1.0);
        let marks: Vec<u64> = (0..=BUCKETS)
            .map(|i| min + (step * i as f64) as u64)
            .collect();
        let mut counts = vec![0u64; BUCKETS + 1];
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let idx = marks.iter().position(|m| value <= *m).unwrap_or(BUCKETS);
            counts[idx] += v.count_at_value();
        }
        let biggest = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut out = String::new();
        for (mark, count) in marks.iter().zip(&counts) {
            let bar = "∎".repeat((count * BAR / biggest) as usize);
            let _ = writeln!(out, "  {:.4} [{count}]\t|{bar}", secs(*mark));
        }
        out
    }

    /// One machine-readable object.
    pub fn to_json(&self) -> Value {
        let h = &self.stats.hist;
        let mut latency = Map::new();
        if self.ok() > 0 {
            latency.insert("min".into(), json!(ms(h.min() as f64)));
            latency.insert("avg".into(), json!(ms(h.mean())));
            latency.insert("stddev".into(), json!(ms(h.stdev())));
            for p in PERCENTILES {
                latency.insert(format!("p{p}"), json!(ms(h.value_at_percentile(p) as f64)));
            }
            latency.insert("max".into(), json!(ms(h.max() as f64)));
        }
        let mut obj = Map::new();
        obj.insert("name".into(), json!(self.name));
        obj.insert("total_secs".into(), json!(self.elapsed.as_secs_f64()));
        obj.insert("requests".into(), json!(self.ok()));
        obj.insert("errors".into(), json!(self.errors()));
        obj.insert("error_distribution".into(), json!(self.stats.errors));
        obj.insert("throughput".into(), json!(self.throughput()));
        obj.insert("p50_ms".into(), json!(self.percentile_ms(50.0)));
        obj.insert("p90_ms".into(), json!(self.percentile_ms(90.0)));
        obj.insert("p99_ms".into(), json!(self.percentile_ms(99.0)));
        obj.insert("p99_9_ms".into(), json!(self.percentile_ms(99.9)));
        obj.insert("max_ms".into(), json!(self.max_ms()));
        obj.insert("latency_ms".into(), Value::Object(latency));
        if !self.kinds.is_empty() {
            obj.insert("kinds".into(), json!(self.kinds));
        }
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        if !self.parts.is_empty() {
            let parts: Map<String, Value> = self
                .parts
                .iter()
                .map(|p| (p.name.clone(), p.to_json()))
                .collect();
            obj.insert("parts".into(), Value::Object(parts));
        }
        Value::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_fields_and_errors() {
        let mut stats = Stats::new();
        for ms in 1..=100u64 {
            stats.record(Duration::from_millis(ms));
        }
        stats.error("Unavailable: boom");
        let report = Report::new("put", Duration::from_secs(2), stats);
        assert_eq!(report.ok(), 100);
        assert_eq!(report.errors(), 1);
        assert!((report.throughput() - 50.0).abs() < 1e-9);
        let json = report.to_json();
        for field in [
            "throughput",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p99_9_ms",
            "max_ms",
            "errors",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["errors"], 1);
        let p50 = json["p50_ms"].as_f64().unwrap_or_default();
        assert!((49.0..=51.0).contains(&p50), "p50 {p50}");
        let text = report.to_text();
        assert!(text.contains("Requests/sec:"));
        assert!(text.contains("99.9% in"));
        assert!(text.contains("Error distribution:"));
    }

    #[test]
    fn empty_report_does_not_panic() {
        let report = Report::new("empty", Duration::ZERO, Stats::new());
        assert_eq!(report.throughput(), 0.0);
        assert!(report.to_text().contains("Summary"));
        assert_eq!(report.to_json()["requests"], 0);
    }
}
