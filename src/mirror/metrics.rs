//! What a running mirror shows an operator ([`MirrorMetrics`]): events
//! and bytes received, where the mirror stands, and how old its newest
//! event is. The mirror updates it per event; the metrics endpoint
//! ([`crate::metrics::serve`]) renders it on each scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::metrics::Exposition;

/// A running mirror's figures; see the module doc.
#[derive(Debug)]
pub struct MirrorMetrics {
    started: Instant,
    events: AtomicU64,
    bytes: AtomicU64,
    reconnects: AtomicU64,
    /// Header timestamp of the newest event (the primary's clock).
    last_timestamp: AtomicU64,
    /// The mirror's end: file and offset.
    position: Mutex<(String, u64)>,
    /// This host's time for the event age (step-proof).
    clock: crate::metrics::LagClock,
}

impl Default for MirrorMetrics {
    fn default() -> Self {
        MirrorMetrics::new()
    }
}

impl MirrorMetrics {
    /// Empty figures.
    pub fn new() -> Self {
        MirrorMetrics {
            started: Instant::now(),
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_timestamp: AtomicU64::new(0),
            position: Mutex::new((String::new(), 0)),
            clock: crate::metrics::LagClock::default(),
        }
    }

    /// An event of `ev` (whole, header first) was written; the mirror now
    /// ends at `file`:`end`.
    pub(crate) fn event(&self, ev: &[u8], file: &str, end: u64) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(ev.len() as u64, Ordering::Relaxed);
        if let Some(ts) = ev.get(..4) {
            let ts = u32::from_le_bytes([ts[0], ts[1], ts[2], ts[3]]);
            if ts != 0 {
                self.last_timestamp.store(u64::from(ts), Ordering::Relaxed);
            }
        }
        if let Ok(mut p) = self.position.lock() {
            if p.0 != file {
                p.0 = file.to_string();
            }
            p.1 = end;
        }
    }

    /// Bytes of events written since the start.
    pub fn bytes_total(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The connection to the primary was opened again.
    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus page.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        e.counter(
            "parapply_mirror_events_total",
            "Binlog events received from the primary and written.",
            &[],
            n(&self.events),
        );
        e.counter(
            "parapply_mirror_bytes_total",
            "Bytes of binlog events received from the primary and written.",
            &[],
            n(&self.bytes),
        );
        e.counter(
            "parapply_mirror_reconnects_total",
            "Connections to the primary opened again after one was lost.",
            &[],
            n(&self.reconnects),
        );
        if let Ok(p) = self.position.lock() {
            if !p.0.is_empty() {
                e.gauge(
                    "parapply_mirror_position_bytes",
                    "End of the mirror: offset in its newest file.",
                    &[("file", &p.0)],
                    p.1 as f64,
                );
            }
        }
        let ts = self.last_timestamp.load(Ordering::Relaxed);
        e.gauge(
            "parapply_mirror_last_event_timestamp_seconds",
            "The primary's timestamp of the newest event mirrored (0: none yet).",
            &[],
            ts as f64,
        );
        let now = self.clock.now_secs();
        e.gauge(
            "parapply_mirror_last_event_age_seconds",
            "This host's time minus the newest event's timestamp (heartbeats do not count; \
             a quiet primary makes it grow).",
            &[],
            if ts == 0 {
                0.0
            } else {
                (now - ts as f64).max(0.0)
            },
        );
        e.gauge(
            "parapply_mirror_uptime_seconds",
            "Seconds since this mirror started.",
            &[],
            self.started.elapsed().as_secs_f64(),
        );
        e.finish()
    }
}
