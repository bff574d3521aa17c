//! Medians, ratios and the Markdown tables of a bench.

use super::contender::RunStats;
use super::BenchConfig;

/// One configuration's measurements on one workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigResult {
    /// Its name (`native-optimistic-16`, `parapply-16-batch-1`, …).
    pub config: String,
    /// Whether it is MariaDB's own replication.
    pub native: bool,
    /// Threads or workers (`None`: single SQL thread, `mariadb-binlog`).
    pub threads: Option<u32>,
    /// The chart line it belongs to (`native-optimistic`, `parapply`, …).
    pub family: String,
    /// Seconds of each run, in run order.
    pub seconds: Vec<f64>,
    /// The median of `seconds`.
    pub median_seconds: f64,
    /// The binlog's transactions (GTIDs) per second at the median.
    pub transactions_per_second: f64,
    /// Best native median divided by this median (above 1: faster than the
    /// best native configuration); `None` without a native configuration.
    pub vs_best_native: Option<f64>,
    /// The single SQL thread's median divided by this median; `None` when
    /// `native-single` did not run.
    pub vs_single: Option<f64>,
    /// Resource use of each run's timed part, in run order.
    pub runs: Vec<RunStats>,
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians, rates and ratios to the best (fastest) native configuration
/// and to the single SQL thread.
pub fn summarize(transactions: u64, runs: Vec<(BenchConfig, Vec<RunStats>)>) -> Vec<ConfigResult> {
    let mut results: Vec<ConfigResult> = runs
        .into_iter()
        .map(|(config, runs)| {
            let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            let m = median(&seconds);
            ConfigResult {
                config: config.to_string(),
                native: config.is_native(),
                threads: config.threads(),
                family: config.family(),
                median_seconds: m,
                transactions_per_second: if m > 0.0 {
                    transactions as f64 / m
                } else {
                    0.0
                },
                seconds,
                vs_best_native: None,
                vs_single: None,
                runs,
            }
        })
        .collect();
    let best = best_native(&results).map(|r| r.median_seconds);
    let single = results
        .iter()
        .find(|r| r.config == "native-single" && r.median_seconds > 0.0)
        .map(|r| r.median_seconds);
    for r in &mut results {
        if r.median_seconds > 0.0 {
            r.vs_best_native = best.map(|b| b / r.median_seconds);
            r.vs_single = single.map(|s| s / r.median_seconds);
        }
    }
    results
}

/// The fastest native configuration.
pub fn best_native(results: &[ConfigResult]) -> Option<&ConfigResult> {
    results
        .iter()
        .filter(|r| r.native && r.median_seconds > 0.0)
        .min_by(|a, b| a.median_seconds.total_cmp(&b.median_seconds))
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×"))
}

fn counter(s: &RunStats, name: &str) -> f64 {
    s.counters.get(name).copied().unwrap_or(0) as f64
}

/// The two Markdown tables of one workload: times and ratios, then where
/// the time went (medians over the runs).
pub fn render_results(results: &[ConfigResult], transactions: u64) -> String {
    let best = best_native(results).map_or("-", |r| r.config.as_str());
    let mut out = format!(
        "| configuration | median s | transactions/s | vs best native ({best}) | vs single SQL \
         thread | runs (s) |\n|---|---:|---:|---:|---:|---|\n"
    );
    for r in results {
        let runs = r
            .seconds
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | {:.2} | {:.0} | {} | {} | {runs} |\n",
            r.config,
            r.median_seconds,
            r.transactions_per_second,
            ratio(r.vs_best_native),
            ratio(r.vs_single),
        ));
    }
    out.push_str(
        "\n| configuration | replica CPU s | applier CPU s | applier peak RSS MiB | \
         statements/transaction | binlog commits | group commits | commits per group commit | \
         InnoDB fsyncs | row lock waits | retries + rollbacks |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let m = |f: &dyn Fn(&RunStats) -> f64| median(&r.runs.iter().map(f).collect::<Vec<_>>());
        let c = |name: &'static str| move |s: &RunStats| counter(s, name);
        let commits = m(&c("Binlog_commits"));
        let groups = m(&c("Binlog_group_commits"));
        let rss = if r.family.starts_with("parapply") {
            let v: Vec<f64> = r
                .runs
                .iter()
                .filter_map(|s| s.peak_rss_bytes)
                .map(|b| b as f64 / (1 << 20) as f64)
                .collect();
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(&v))
            }
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {rss} | {:.2} | {commits:.0} | {groups:.0} | {:.1} | {:.0} | \
             {:.0} | {:.0} |\n",
            r.config,
            m(&|s| s.replica_cpu_seconds),
            m(&|s| s.applier_cpu_seconds),
            m(&c("Questions")) / transactions.max(1) as f64,
            if groups > 0.0 { commits / groups } else { 0.0 },
            m(&c("Innodb_data_fsyncs")),
            m(&c("Innodb_row_lock_waits")),
            m(&|s| counter(s, "Slave_retried_transactions") + counter(s, "Handler_rollback")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ratios_are_against_the_fastest_native_configuration_and_the_single_thread() {
        let c = |s: &str| s.parse::<BenchConfig>().unwrap();
        let runs = |secs: [f64; 3]| -> Vec<RunStats> {
            secs.iter()
                .map(|&seconds| RunStats {
                    seconds,
                    replica_cpu_seconds: seconds / 2.0,
                    applier_cpu_seconds: 0.5,
                    peak_rss_bytes: Some(3 << 20),
                    counters: [
                        ("Questions".to_owned(), 40_000),
                        ("Binlog_commits".to_owned(), 20_000),
                        ("Binlog_group_commits".to_owned(), 5_000),
                    ]
                    .into(),
                })
                .collect()
        };
        let results = summarize(
            20_000,
            vec![
                (c("native-single"), runs([8.0, 7.0, 7.5])),
                (c("native-optimistic-32"), runs([2.5, 2.6, 2.4])),
                (c("parapply-16"), runs([1.0, 1.25, 1.5])),
            ],
        );
        assert_eq!(results[1].median_seconds, 2.5);
        assert_eq!(results[1].vs_best_native, Some(1.0));
        assert_eq!(results[2].median_seconds, 1.25);
        assert_eq!(results[2].vs_best_native, Some(2.0));
        assert_eq!(results[2].vs_single, Some(6.0));
        assert_eq!(results[2].transactions_per_second, 16_000.0);
        assert_eq!(results[0].vs_best_native, Some(2.5 / 7.5));
        assert_eq!(results[0].vs_single, Some(1.0));

        let table = render_results(&results, 20_000);
        assert!(table.contains("| vs best native (native-optimistic-32) |"));
        assert!(
            table.contains("| parapply-16 | 1.25 | 16000 | 2.00× | 6.00× | 1.00, 1.25, 1.50 |"),
            "{table}"
        );
        assert!(
            table.contains("| native-single | 7.50 | 2667 | 0.33× | 1.00× | 8.00, 7.00, 7.50 |")
        );
        assert!(
            table.contains(
                "| parapply-16 | 0.62 | 0.50 | 3 | 2.00 | 20000 | 5000 | 4.0 | 0 | 0 | 0 |"
            ),
            "{table}"
        );
        assert!(table.contains("| native-single | 3.75 | 0.50 | - |"));
    }
}
