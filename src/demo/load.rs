//! The demo's workload: an order ledger in each of [`DATABASES`]
//! databases. Each transaction inserts one ledger row (a unique id) and
//! adds it to its database's `totals` row, so a replica's ledger rows
//! count the transactions it holds and `totals` proves each counted once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::DemoError;
use crate::sandbox::Server;

/// Databases of the workload.
pub(super) const DATABASES: usize = 8;

/// The name of database `i` (0-based).
pub(super) fn db(i: usize) -> String {
    format!("shop{}", i + 1)
}

/// Every database's name.
pub(super) fn databases() -> Vec<String> {
    (0..DATABASES).map(db).collect()
}

/// Creates the databases and their tables on `primary`.
pub(super) fn create_schema(primary: &Server) -> Result<(), DemoError> {
    for d in databases() {
        primary.exec(&format!(
            "CREATE DATABASE {d}; \
             CREATE TABLE {d}.ledger (id BIGINT PRIMARY KEY, client INT NOT NULL, \
               amount INT NOT NULL, note VARCHAR(64) NOT NULL) ENGINE=InnoDB; \
             CREATE TABLE {d}.totals (id INT PRIMARY KEY, orders BIGINT NOT NULL, \
               amount BIGINT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO {d}.totals VALUES (1, 0, 0)"
        ))?;
    }
    Ok(())
}

/// One transaction of the workload: order `id` of `client`.
pub(super) fn order_sql(id: u64, client: u64) -> String {
    // A cheap, fixed spread over the databases and amounts.
    let mix = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    let d = db((mix % DATABASES as u64) as usize);
    let amount = 1 + mix % 1000;
    format!(
        "BEGIN; INSERT INTO {d}.ledger VALUES ({id}, {client}, {amount}, 'order {id}'); \
         UPDATE {d}.totals SET orders = orders + 1, amount = amount + {amount} WHERE id = 1; \
         COMMIT"
    )
}

/// Client connections writing orders to the primary.
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<(), String>>>,
}

/// How many orders, how fast.
pub(super) struct LoadSpec {
    /// Client connections.
    pub clients: u64,
    /// Orders in all (`None`: until stopped).
    pub orders: Option<u64>,
    /// Orders per second in all (`None`: as fast as the primary takes them).
    pub rate: Option<f64>,
    /// The first order id.
    pub first_id: u64,
}

impl Load {
    /// Starts the clients.
    pub fn start(primary: &Server, spec: &LoadSpec) -> Result<Load, DemoError> {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let tickets = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        let pause = spec
            .rate
            .map(|r| Duration::from_secs_f64(spec.clients as f64 / r.max(1.0)));
        for client in 0..spec.clients {
            let mut conn = primary.conn()?;
            let (stop, committed, tickets) = (stop.clone(), committed.clone(), tickets.clone());
            let (orders, first_id) = (spec.orders, spec.first_id);
            let t = std::thread::Builder::new()
                .name(format!("load-{client}"))
                .spawn(move || {
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let n = tickets.fetch_add(1, Ordering::Relaxed);
                        if orders.is_some_and(|o| n >= o) {
                            break;
                        }
                        crate::sandbox::exec_all(&mut conn, &order_sql(first_id + n, client))
                            .map_err(|e| format!("client {client}, order {}: {e}", first_id + n))?;
                        committed.fetch_add(1, Ordering::Relaxed);
                        if let Some(p) = pause {
                            next += p;
                            std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        }
                    }
                    Ok(())
                })
                .map_err(|e| DemoError::io("starting a load client", e))?;
            threads.push(t);
        }
        Ok(Load {
            stop,
            committed,
            threads,
        })
    }

    /// Orders the primary acknowledged so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Whether every client has ended (its orders done, or an error).
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Whether a client has ended (an unbounded load's clients end only on
    /// an error).
    pub fn any_ended(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// Waits until every order is written (a bounded load), then stops.
    pub fn stop_when_done(self) -> Result<u64, DemoError> {
        while !self.finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop(false)
    }

    /// Stops the clients and waits for them. `expect_errors`: the primary
    /// was killed, so clients ending on a lost connection are expected.
    /// Returns the orders acknowledged.
    pub fn stop(mut self, expect_errors: bool) -> Result<u64, DemoError> {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = None;
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(_) => return Err(DemoError::Panicked("a load client".into())),
            }
        }
        match first {
            Some(e) if !expect_errors => Err(DemoError::Load(e)),
            _ => Ok(self.committed()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
