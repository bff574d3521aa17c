//! What a running applier shows an operator ([`ApplyMetrics`]): the
//! engine updates it as groups complete and the low-watermark moves; the
//! metrics endpoint ([`crate::metrics::serve`]) renders it on each scrape.
//!
//! Lags are differences of the primary's commit timestamps (whole
//! seconds, from the events) and this host's time at apply time, as
//! [`LagClock`] tells it: a step of this host's clock does not move them
//! (the monotonic clock carries the time), and they are never negative.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::group::Group;
use crate::metrics::{Exposition, Histogram, LagClock};
use crate::progress::Watermark;

/// One shard's last applied group.
#[derive(Debug, Clone, Default)]
struct ShardFigures {
    seq_no: u64,
    /// The primary's commit time of that group (seconds since the epoch).
    timestamp: u32,
    /// Its commit-to-apply lag.
    lag: Duration,
}

/// A running applier's figures; see the module doc.
#[derive(Debug)]
pub struct ApplyMetrics {
    started: Instant,
    groups: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    in_flight: AtomicU64,
    /// Shared with the workers (the engine hands them these counters).
    pub(crate) retries: Arc<AtomicU64>,
    /// Shared with the workers.
    pub(crate) reconnects: Arc<AtomicU64>,
    /// Commit time of the oldest group read and not yet applied (0: none).
    oldest_pending: AtomicU64,
    low: Mutex<BTreeMap<u32, (u64, u32)>>,
    shards: Mutex<BTreeMap<(u32, String), ShardFigures>>,
    /// Dispatch to reported commit, per group.
    latency: Histogram,
    /// The primary's commit to this commit, per group.
    lag: Histogram,
    /// (time, groups applied) samples of the last minute, for the rate.
    rate: Mutex<std::collections::VecDeque<(Instant, u64)>>,
    /// This host's time for the lags.
    clock: LagClock,
}

impl Default for ApplyMetrics {
    fn default() -> Self {
        ApplyMetrics::new()
    }
}

impl ApplyMetrics {
    /// Empty figures.
    pub fn new() -> Self {
        ApplyMetrics {
            started: Instant::now(),
            groups: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            retries: Arc::default(),
            reconnects: Arc::default(),
            oldest_pending: AtomicU64::new(0),
            low: Mutex::default(),
            shards: Mutex::default(),
            latency: Histogram::new(),
            lag: Histogram::new(),
            rate: Mutex::default(),
            clock: LagClock::default(),
        }
    }

    /// A group the workers committed, of `shards`, `latency` after it was
    /// dispatched.
    pub(crate) fn applied(&self, g: &Group, shards: &[Arc<str>], latency: Duration) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(g.bytes.len() as u64, Ordering::Relaxed);
        self.latency.record(latency);
        let lag = self.clock.lag_since(g.timestamp);
        self.lag.record(lag);
        let Some(gtid) = g.maria_gtid() else {
            return;
        };
        if let Ok(mut m) = self.shards.lock() {
            for s in shards {
                m.insert(
                    (gtid.domain, s.to_string()),
                    ShardFigures {
                        seq_no: gtid.seq,
                        timestamp: g.timestamp,
                        lag,
                    },
                );
            }
        }
    }

    /// A group found applied already.
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Groups in flight, and the commit time of the oldest group not yet
    /// applied (`None`: nothing is waiting).
    pub(crate) fn backlog(&self, in_flight: usize, oldest: Option<u32>) {
        self.in_flight.store(in_flight as u64, Ordering::Relaxed);
        self.oldest_pending
            .store(oldest.map_or(0, u64::from), Ordering::Relaxed);
    }

    /// The low-watermark of `domain` moved.
    pub(crate) fn low_watermark(&self, domain: u32, w: &Watermark, timestamp: u32) {
        if let Ok(mut m) = self.low.lock() {
            m.insert(domain, (w.seq_no, timestamp));
        }
    }

    /// Groups applied since the start.
    pub fn groups_total(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }

    /// Groups read and not yet applied.
    pub fn groups_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Groups applied per second over the last minute (since the start
    /// when shorter). Sampled on each call.
    pub fn groups_per_second(&self) -> f64 {
        let now = Instant::now();
        let groups = self.groups.load(Ordering::Relaxed);
        let Ok(mut r) = self.rate.lock() else {
            return 0.0;
        };
        r.push_back((now, groups));
        while r
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
            && r.len() > 2
        {
            r.pop_front();
        }
        let (t0, g0) = match r.front() {
            Some(&(t, g)) if r.len() > 1 => (t, g),
            _ => (self.started, 0),
        };
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        (groups - g0) as f64 / secs
    }

    /// How far the applier is behind: the age of the oldest group read and
    /// not yet applied; zero when nothing waits (as the SQL thread's
    /// `Seconds_Behind_Master`).
    pub fn lag(&self) -> Duration {
        match self.oldest_pending.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            ts => self.clock.lag_since(u32::try_from(ts).unwrap_or(u32::MAX)),
        }
    }

    /// Quantile `q` of the apply latency (dispatch to commit).
    pub fn latency(&self, q: f64) -> Option<Duration> {
        self.latency.quantile(q)
    }

    /// The Prometheus page.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        e.counter(
            "parapply_apply_groups_total",
            "Transaction groups applied (committed on the target) by this process.",
            &[],
            n(&self.groups),
        );
        e.counter(
            "parapply_apply_bytes_total",
            "Bytes of binlog events applied by this process.",
            &[],
            n(&self.bytes),
        );
        e.counter(
            "parapply_apply_groups_skipped_total",
            "Groups found applied already and skipped.",
            &[],
            n(&self.skipped),
        );
        e.counter(
            "parapply_apply_retries_total",
            "Attempts repeated after a deadlock or lock-wait timeout.",
            &[],
            n(&self.retries),
        );
        e.counter(
            "parapply_apply_reconnects_total",
            "Worker connections to the target opened again after they were lost.",
            &[],
            n(&self.reconnects),
        );
        e.gauge(
            "parapply_apply_groups_in_flight",
            "Groups read and handed to the scheduler, not yet applied.",
            &[],
            n(&self.in_flight),
        );
        e.gauge(
            "parapply_apply_groups_per_second",
            "Groups applied per second over the last minute.",
            &[],
            self.groups_per_second(),
        );
        e.gauge(
            "parapply_apply_lag_seconds",
            "Age of the oldest group read and not yet applied (0 when caught up).",
            &[],
            self.lag().as_secs_f64(),
        );
        if let Ok(low) = self.low.lock() {
            for (d, (seq, _)) in low.iter() {
                e.gauge(
                    "parapply_apply_low_watermark_seq_no",
                    "Every group of the domain up to this seq_no is applied.",
                    &[("domain", &d.to_string())],
                    *seq as f64,
                );
            }
            for (d, (_, ts)) in low.iter() {
                e.gauge(
                    "parapply_apply_low_watermark_timestamp_seconds",
                    "The primary's commit time of the low-watermark's group.",
                    &[("domain", &d.to_string())],
                    f64::from(*ts),
                );
            }
        }
        if let Ok(shards) = self.shards.lock() {
            for ((d, s), f) in shards.iter() {
                e.gauge(
                    "parapply_apply_shard_watermark_seq_no",
                    "seq_no of the shard's last applied group.",
                    &[("domain", &d.to_string()), ("shard", s)],
                    f.seq_no as f64,
                );
            }
            for ((d, s), f) in shards.iter() {
                e.gauge(
                    "parapply_apply_shard_lag_seconds",
                    "Commit-to-apply lag of the shard's last applied group.",
                    &[("domain", &d.to_string()), ("shard", s)],
                    f.lag.as_secs_f64(),
                );
            }
            for ((d, s), f) in shards.iter() {
                e.gauge(
                    "parapply_apply_shard_timestamp_seconds",
                    "The primary's commit time of the shard's last applied group.",
                    &[("domain", &d.to_string()), ("shard", s)],
                    f64::from(f.timestamp),
                );
            }
        }
        e.summary(
            "parapply_apply_latency_seconds",
            "Time from dispatch to a worker until the group's commit was reported.",
            &self.latency,
        );
        e.summary(
            "parapply_apply_commit_lag_seconds",
            "Time from the primary's commit to the target's commit, per group.",
            &self.lag,
        );
        e.gauge(
            "parapply_apply_uptime_seconds",
            "Seconds since this applier started.",
            &[],
            self.started.elapsed().as_secs_f64(),
        );
        e.finish()
    }
}
