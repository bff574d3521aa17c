//! The contenders: which applier replays the primary's binlog, and how.

use std::fmt;
use std::str::FromStr;

use crate::sandbox::SlaveParallelMode;

/// Which applier replays the primary's binlog, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchConfig {
    /// The replica's own replication; `threads == 0` is the single SQL thread.
    Native {
        /// `slave_parallel_threads`.
        threads: u32,
        /// `slave_parallel_mode` (ignored with 0 threads).
        mode: SlaveParallelMode,
    },
    /// `mariadb-binlog FILES | mariadb`: the replay a DBA does by hand, one
    /// client connection, statements in binlog order.
    BinlogPipe,
    /// `parapply apply` into the replica.
    Parapply {
        /// `--workers`.
        workers: u16,
        /// `--batch`; `None` is the command's default.
        batch: Option<u16>,
        /// `--shard-by key` (the default bucket count).
        keys: bool,
    },
}

impl BenchConfig {
    /// Whether this is MariaDB's own replication (SQL thread(s)).
    pub fn is_native(&self) -> bool {
        matches!(self, BenchConfig::Native { .. })
    }

    /// Whether this is the single SQL thread.
    pub fn is_single(&self) -> bool {
        matches!(self, BenchConfig::Native { threads: 0, .. })
    }

    /// Threads or workers, for the charts' x axis; `None` for the
    /// single-connection contenders.
    pub fn threads(&self) -> Option<u32> {
        match *self {
            BenchConfig::Native { threads: 0, .. } | BenchConfig::BinlogPipe => None,
            BenchConfig::Native { threads, .. } => Some(threads),
            BenchConfig::Parapply { workers, .. } => Some(u32::from(workers)),
        }
    }

    /// The contender's name without its thread count: the line of a chart
    /// (`native-optimistic`, `parapply`, `parapply-batch-1`, …).
    pub fn family(&self) -> String {
        match *self {
            BenchConfig::Native { threads: 0, .. } => "native-single".into(),
            BenchConfig::Native { mode, .. } => format!("native-{}", mode_name(mode)),
            BenchConfig::BinlogPipe => "mariadb-binlog".into(),
            BenchConfig::Parapply { batch, keys, .. } => {
                let batch = batch.map_or_else(String::new, |b| format!("-batch-{b}"));
                let keys = if keys { "-key" } else { "" };
                format!("parapply{batch}{keys}")
            }
        }
    }
}

/// The full matrix of issue 14: the single SQL thread; conservative,
/// optimistic and aggressive parallel replication with 4, 8, 16 and 32
/// threads; `mariadb-binlog | mariadb`; parapply with 4, 8, 16 and 32
/// workers at default batching and with `--batch 1`.
pub fn full_matrix() -> Vec<BenchConfig> {
    const THREADS: [u16; 4] = [4, 8, 16, 32];
    let mut v = vec![BenchConfig::Native {
        threads: 0,
        mode: SlaveParallelMode::Optimistic,
    }];
    for mode in [
        SlaveParallelMode::Conservative,
        SlaveParallelMode::Optimistic,
        SlaveParallelMode::Aggressive,
    ] {
        v.extend(THREADS.map(|t| BenchConfig::Native {
            threads: u32::from(t),
            mode,
        }));
    }
    v.push(BenchConfig::BinlogPipe);
    for batch in [None, Some(1)] {
        v.extend(THREADS.map(|workers| BenchConfig::Parapply {
            workers,
            batch,
            keys: false,
        }));
    }
    v
}

fn mode_name(mode: SlaveParallelMode) -> &'static str {
    match mode {
        SlaveParallelMode::None => "none",
        SlaveParallelMode::Minimal => "minimal",
        SlaveParallelMode::Conservative => "conservative",
        SlaveParallelMode::Optimistic => "optimistic",
        SlaveParallelMode::Aggressive => "aggressive",
    }
}

impl fmt::Display for BenchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BenchConfig::Native { threads: 0, .. } => write!(f, "native-single"),
            BenchConfig::Native { threads, mode } => {
                write!(f, "native-{}-{threads}", mode_name(mode))
            }
            BenchConfig::BinlogPipe => write!(f, "mariadb-binlog"),
            BenchConfig::Parapply {
                workers,
                batch,
                keys,
            } => {
                write!(f, "parapply-{workers}")?;
                if let Some(b) = batch {
                    write!(f, "-batch-{b}")?;
                }
                if keys {
                    write!(f, "-key")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for BenchConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a configuration: use native-single, native-optimistic-N, \
                 native-conservative-N, native-aggressive-N, mariadb-binlog, parapply-N or \
                 parapply-N-batch-K (either with -key: --shard-by key)"
            )
        };
        if let Some(base) = s.trim().strip_suffix("-key") {
            return match base.parse()? {
                BenchConfig::Parapply {
                    workers,
                    batch,
                    keys: false,
                } => Ok(BenchConfig::Parapply {
                    workers,
                    batch,
                    keys: true,
                }),
                _ => Err(bad()),
            };
        }
        let positive = |n: &str| n.parse::<u16>().ok().filter(|&n| n > 0);
        let parts: Vec<&str> = s.trim().split('-').collect();
        match parts.as_slice() {
            ["native", "single"] => Ok(BenchConfig::Native {
                threads: 0,
                mode: SlaveParallelMode::Optimistic,
            }),
            ["native", mode, n] => {
                let mode = match *mode {
                    "optimistic" => SlaveParallelMode::Optimistic,
                    "conservative" => SlaveParallelMode::Conservative,
                    "aggressive" => SlaveParallelMode::Aggressive,
                    _ => return Err(bad()),
                };
                let threads = positive(n).ok_or_else(bad)?;
                Ok(BenchConfig::Native {
                    threads: u32::from(threads),
                    mode,
                })
            }
            ["mariadb", "binlog"] => Ok(BenchConfig::BinlogPipe),
            ["parapply", n] => Ok(BenchConfig::Parapply {
                workers: positive(n).ok_or_else(bad)?,
                batch: None,
                keys: false,
            }),
            ["parapply", n, "batch", k] => Ok(BenchConfig::Parapply {
                workers: positive(n).ok_or_else(bad)?,
                batch: Some(positive(k).ok_or_else(bad)?),
                keys: false,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_and_print_back() {
        let all: Vec<String> = full_matrix().iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 22);
        assert_eq!(all[0], "native-single");
        assert!(all.contains(&"native-aggressive-32".to_owned()));
        assert!(all.contains(&"mariadb-binlog".to_owned()));
        assert!(all.contains(&"parapply-4-batch-1".to_owned()));
        for name in all.iter().chain(&[
            "parapply-16-key".to_owned(),
            "parapply-8-batch-1-key".to_owned(),
        ]) {
            let c: BenchConfig = name.parse().unwrap();
            assert_eq!(&c.to_string(), name);
        }
        assert_eq!(
            "parapply-16-batch-1".parse::<BenchConfig>(),
            Ok(BenchConfig::Parapply {
                workers: 16,
                batch: Some(1),
                keys: false,
            })
        );
        for bad in [
            "native",
            "native-optimistic",
            "native-optimistic-0",
            "native-fast-4",
            "mariadb",
            "parapply",
            "parapply-x",
            "parapply-4-batch",
            "parapply-4-batch-0",
            "native-single-key",
            "mariadb-binlog-key",
            "parapply-4-key-key",
        ] {
            assert!(bad.parse::<BenchConfig>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn families_and_threads_make_the_chart_lines() {
        let c = |s: &str| s.parse::<BenchConfig>().unwrap();
        assert_eq!(c("native-optimistic-16").family(), "native-optimistic");
        assert_eq!(c("native-optimistic-16").threads(), Some(16));
        assert_eq!(c("parapply-8-batch-1").family(), "parapply-batch-1");
        assert_eq!(c("parapply-8-batch-1-key").family(), "parapply-batch-1-key");
        assert_eq!(c("parapply-8").threads(), Some(8));
        assert_eq!(c("native-single").threads(), None);
        assert_eq!(c("mariadb-binlog").threads(), None);
    }
}
