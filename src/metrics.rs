//! Metrics an operator can scrape: the Prometheus text format
//! ([`Exposition`]), latency histograms ([`Histogram`], hdrhistogram,
//! exported as quantiles) and a minimal HTTP endpoint ([`serve`]) that
//! answers `GET /metrics`.
//!
//! The stages keep their own figures (`apply::ApplyMetrics`,
//! `mirror::MirrorMetrics`) in atomics and locks that their threads update
//! and that rendering only reads; this module knows none of them.
//!
//! Names follow Prometheus conventions: `parapply_` prefix, base units
//! (seconds, bytes), `_total` for counters; label values are escaped.
//!
//! Lags compare the primary's commit timestamps with this host's time as
//! [`LagClock`] tells it: the wall clock read once, carried forward by the
//! monotonic clock, so that a step of the host's clock (an operator's
//! `date -s`, a VM resumed) does not jump or zero every lag figure.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// This host's time for lag figures: the wall clock at an anchor plus the
/// monotonic time since. The wall clock is read again on each call; when it
/// agrees with the carried time to within [`LagClock::MAX_DRIFT`] (NTP's
/// slewing) the anchor moves to it, otherwise it stepped: the carried time
/// is kept and the step is logged once per anchor.
#[derive(Debug)]
pub struct LagClock {
    wall: fn() -> f64,
    anchor: Mutex<(f64, Instant, bool)>,
}

fn system_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Default for LagClock {
    fn default() -> Self {
        LagClock::with_wall(system_secs)
    }
}

impl LagClock {
    /// Largest disagreement taken as drift rather than a step.
    pub const MAX_DRIFT: f64 = 2.0;

    /// A clock over `wall` (seconds since the epoch; tests shift it).
    pub fn with_wall(wall: fn() -> f64) -> Self {
        LagClock {
            wall,
            anchor: Mutex::new((wall(), Instant::now(), false)),
        }
    }

    /// Seconds since the epoch, step-proof (see the type's doc).
    pub fn now_secs(&self) -> f64 {
        let wall = (self.wall)();
        let mut a = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let carried = a.0 + a.1.elapsed().as_secs_f64();
        if (wall - carried).abs() <= Self::MAX_DRIFT {
            *a = (wall, Instant::now(), false);
            return wall;
        }
        if !a.2 {
            a.2 = true;
            tracing::warn!(
                step_s = wall - carried,
                "this host's clock stepped; lag figures keep the time carried by the \
                 monotonic clock"
            );
        }
        carried
    }

    /// `now - timestamp` (a commit time in seconds since the epoch), never
    /// negative.
    pub fn lag_since(&self, timestamp: u32) -> Duration {
        Duration::try_from_secs_f64(self.now_secs() - f64::from(timestamp))
            .unwrap_or(Duration::ZERO)
    }
}

/// A metrics page being written in the Prometheus text format (0.0.4).
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    /// The metric whose `# HELP`/`# TYPE` lines were written last.
    current: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Exposition::default()
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        if self.current != name {
            let _ = writeln!(self.text, "# HELP {name} {help}");
            let _ = writeln!(self.text, "# TYPE {name} {kind}");
            self.current = name.to_string();
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A counter sample (`name` ends with `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.header(name, "counter", help);
        self.sample(name, labels, value);
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, labels, value);
    }

    /// A summary: the quantiles 0.5, 0.9, 0.99, 0.999 and max of `h` (in
    /// seconds), then `_sum` and `_count`.
    pub fn summary(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "summary", help);
        let Ok(h) = h.inner.lock() else {
            return;
        };
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let v = h.value_at_quantile(q) as f64 / 1e6;
            self.sample(name, &[("quantile", &q.to_string())], v);
        }
        let sum: f64 = h
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
            .sum();
        self.sample(&format!("{name}_sum"), &[], sum / 1e6);
        self.sample(&format!("{name}_count"), &[], h.len() as f64);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value with `\`, `"` and newlines escaped as the format asks.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Durations recorded with microsecond resolution (up to an hour, 3
/// significant digits; longer ones count as an hour).
#[derive(Debug)]
pub struct Histogram {
    inner: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// The longest duration recorded as itself, in microseconds.
    const MAX_MICROS: u64 = 3_600_000_000;

    /// An empty histogram.
    pub fn new() -> Self {
        let h = hdrhistogram::Histogram::new_with_bounds(1, Self::MAX_MICROS, 3)
            .expect("valid histogram bounds");
        Histogram {
            inner: Mutex::new(h),
        }
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, Self::MAX_MICROS);
        if let Ok(mut h) = self.inner.lock() {
            let _ = h.record(us);
        }
    }

    /// The value at quantile `q` (0..=1), `None` while empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let h = self.inner.lock().ok()?;
        (!h.is_empty()).then(|| Duration::from_micros(h.value_at_quantile(q)))
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.inner.lock().map(|h| h.len()).unwrap_or(0)
    }
}

/// What renders the page, called for each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `render()` as `GET /metrics` on `addr` until `stop` is set;
/// returns the address bound (a port 0 is chosen by the system) and the
/// thread. One request per connection, answered in turn (scrapes are
/// rare and small).
pub fn serve(
    addr: &str,
    render: Render,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Err(e) = answer(s, &render) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })?;
    tracing::info!(addr = %local, "serving metrics at http://{local}/metrics");
    Ok((local, handle))
}

/// Reads one request and answers it.
fn answer(s: TcpStream, render: &Render) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    // Skip the headers.
    let mut h = String::new();
    while r.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => ("200 OK", render()),
        ("GET", _) => ("404 Not Found", "only /metrics is served\n".to_string()),
        _ => ("405 Method Not Allowed", "GET only\n".to_string()),
    };
    let mut s = s;
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

/// Reads a metrics page over HTTP from `addr` (`HOST:PORT`), for
/// `parapply status` and the tests.
pub fn scrape(addr: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    io::Read::read_to_string(&mut s, &mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        let first = head.lines().next().unwrap_or("");
        return Err(io::Error::other(format!("{addr} answered {first}")));
    }
    Ok(body.to_string())
}

/// The value of the sample `name` (with exactly `labels`) in a page.
pub fn sample_value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut key = name.to_string();
    if !labels.is_empty() {
        key.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            let _ = write!(key, "{k}=\"{}\"", escape_label(v));
        }
        key.push('}');
    }
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&key)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    /// A wall clock the test steps: the system's plus an offset.
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    fn shifted() -> f64 {
        system_secs() + OFFSET.load(Ordering::SeqCst) as f64
    }

    #[test]
    fn a_clock_step_does_not_move_the_lag() {
        let c = LagClock::with_wall(shifted);
        let ts = (system_secs() - 30.0) as u32;
        let before = c.lag_since(ts).as_secs_f64();
        assert!((29.0..=32.0).contains(&before), "{before}");
        // The host's clock jumps an hour forward, then a day back: the lag
        // goes on from where it was.
        for step in [3600, -86_400] {
            OFFSET.store(step, Ordering::SeqCst);
            let lag = c.lag_since(ts).as_secs_f64();
            assert!((before..=before + 2.0).contains(&lag), "step {step}: {lag}");
        }
        // Back to the true time: agreed again, anchored again.
        OFFSET.store(0, Ordering::SeqCst);
        let lag = c.lag_since(ts).as_secs_f64();
        assert!((before..=before + 2.0).contains(&lag), "{lag}");
        // A timestamp from the future is lag 0, not negative.
        assert_eq!(c.lag_since(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn pages_follow_the_text_format() {
        let h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let mut e = Exposition::new();
        e.counter("parapply_x_total", "X.", &[], 3.0);
        e.gauge("parapply_w", "W.", &[("shard", "a\"b\\c\nd")], 7.0);
        e.gauge("parapply_w", "W.", &[("shard", "e")], 8.0);
        e.summary("parapply_lat_seconds", "Latency.", &h);
        let page = e.finish();
        assert!(
            page.starts_with(
                "# HELP parapply_x_total X.\n# TYPE parapply_x_total counter\nparapply_x_total 3\n"
            ),
            "{page}"
        );
        assert_eq!(page.matches("# TYPE parapply_w gauge").count(), 1, "{page}");
        assert!(
            page.contains("parapply_w{shard=\"a\\\"b\\\\c\\nd\"} 7\n"),
            "{page}"
        );
        assert_eq!(
            sample_value(&page, "parapply_w", &[("shard", "e")]),
            Some(8.0)
        );
        let p99 = sample_value(&page, "parapply_lat_seconds", &[("quantile", "0.99")]).unwrap();
        assert!((0.098..=0.1).contains(&p99), "{p99}");
        assert_eq!(
            sample_value(&page, "parapply_lat_seconds_count", &[]),
            Some(100.0)
        );
        let sum = sample_value(&page, "parapply_lat_seconds_sum", &[]).unwrap();
        assert!((5.0..5.1).contains(&sum), "{sum}");
    }

    #[test]
    fn the_endpoint_answers_scrapes() {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, h) = serve(
            "127.0.0.1:0",
            Arc::new(|| "parapply_up 1\n".to_string()),
            stop.clone(),
        )
        .unwrap();
        assert_eq!(scrape(&addr.to_string()).unwrap(), "parapply_up 1\n");
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
