//! `parapply catchup --from A --to B [--mirror DIR|URL] [--json] [--apply]`:
//! how two replicas' states compare, the groups each lacks of the other
//! (both directions), and with `--apply` the A→B set applied to B.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use parapply::apply::engine::ApplyOptions;
use parapply::binlog::Source;
use parapply::catchup::{self, remote, Between, CatchupError, CatchupSet, Loaded};
use parapply::progress::{compare, Lead, ProgressTables, StateOrder};
use parapply::replica::{Replica, ReplicaOptions};
use parapply::schedule::{ShardBy, ShardMap};
use parapply::wire::{ClientTls, ConnectOptions};
use serde_json::json;

use super::args::{parse_progress_schema, ShardingArgs};
use super::output::Output;
use super::secrets::{connect_options, TARGET_PASSWORD_ENV};
use super::signals;

/// Environment variable holding replica A's password (else
/// `PARAPPLY_TARGET_PASSWORD`).
pub const FROM_PASSWORD_ENV: &str = "PARAPPLY_FROM_PASSWORD";
/// Environment variable holding replica B's password (else
/// `PARAPPLY_TARGET_PASSWORD`).
pub const TO_PASSWORD_ENV: &str = "PARAPPLY_TO_PASSWORD";
/// Environment variable holding the mirror server's password.
pub const MIRROR_PASSWORD_ENV: &str = "PARAPPLY_MIRROR_PASSWORD";

/// `parapply catchup`.
#[derive(Debug, clap::Args)]
pub struct CatchupArgs {
    /// Replica A: mysql://USER@HOST:PORT/ (password: PARAPPLY_FROM_PASSWORD,
    /// else PARAPPLY_TARGET_PASSWORD, or --from-password-file).
    #[arg(long)]
    pub from: String,
    /// A file holding A's password (first line).
    #[arg(long)]
    pub from_password_file: Option<PathBuf>,
    /// Replica B: mysql://USER@HOST:PORT/ (password: PARAPPLY_TO_PASSWORD,
    /// else PARAPPLY_TARGET_PASSWORD, or --to-password-file).
    #[arg(long)]
    pub to: String,
    /// A file holding B's password (first line).
    #[arg(long)]
    pub to_password_file: Option<PathBuf>,
    /// The mirror holding the groups: a directory (or index file), or a
    /// mirror server mysql://USER@HOST:PORT/ (`parapply serve`; password:
    /// PARAPPLY_MIRROR_PASSWORD or --mirror-password-file). Without it only
    /// the states are compared.
    #[arg(long)]
    pub mirror: Option<String>,
    /// A file holding the mirror server's password (first line).
    #[arg(long)]
    pub mirror_password_file: Option<PathBuf>,
    /// Apply the A→B set to B (the apply engine, stopping at A's end).
    #[arg(long)]
    pub apply: bool,
    /// Print every group of both sets (text output).
    #[arg(long)]
    pub list: bool,
    /// Worker threads of --apply.
    #[arg(long, default_value_t = ApplyOptions::DEFAULT_WORKERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=512))]
    pub workers: usize,
    /// Schema of parapply's progress tables on both replicas.
    #[arg(long, default_value = ApplyOptions::DEFAULT_PROGRESS_SCHEMA,
          value_parser = parse_progress_schema)]
    pub progress_schema: String,
    /// How databases map to shards (as given to their appliers).
    #[command(flatten)]
    pub sharding: ShardingArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The password variable to read: `own` if set, else the targets' one.
fn env_of(own: &'static str) -> &'static str {
    if std::env::var_os(own).is_some() {
        own
    } else {
        TARGET_PASSWORD_ENV
    }
}

/// Where the groups come from.
enum Mirror {
    None,
    Dir(PathBuf),
    Server(ConnectOptions),
}

/// `parapply catchup`.
pub fn run(a: CatchupArgs, tls: &ClientTls, out: &mut Output) -> anyhow::Result<()> {
    let progress = ProgressTables::new(&a.progress_schema)
        .map_err(|e| anyhow::anyhow!("--progress-schema: {e}"))?;
    let mut map = a.sharding.map().map_err(anyhow::Error::msg)?;
    let from = connect_options(
        "from",
        &a.from,
        a.from_password_file.as_deref(),
        env_of(FROM_PASSWORD_ENV),
        tls,
    )?;
    let to = connect_options(
        "to",
        &a.to,
        a.to_password_file.as_deref(),
        env_of(TO_PASSWORD_ENV),
        tls,
    )?;
    let mirror = match &a.mirror {
        None => Mirror::None,
        Some(m) if m.starts_with("mysql://") => Mirror::Server(connect_options(
            "mirror",
            m,
            a.mirror_password_file.as_deref(),
            MIRROR_PASSWORD_ENV,
            tls,
        )?),
        Some(m) => {
            let p = PathBuf::from(m);
            anyhow::ensure!(p.exists(), "--mirror {m} does not exist");
            Mirror::Dir(p)
        }
    };
    if a.apply && matches!(mirror, Mirror::None) {
        anyhow::bail!("--apply needs --mirror (the groups to apply come from it)");
    }
    let replica = |target: &ConnectOptions| {
        Replica::connect(ReplicaOptions {
            target: target.clone(),
            progress: progress.clone(),
            reconnect_timeout: Duration::ZERO,
        })
    };
    let mut ra = replica(&from)?;
    let mut rb = replica(&to)?;
    if matches!(map.by(), ShardBy::Key(_)) {
        // Key shards place groups by the keys of the tables: those of the
        // replica the set goes to (both have the primary's schema).
        map.set_catalog(std::sync::Arc::new(rb.key_catalog()?));
    }
    // A mirror server is copied into a temporary directory; a replica's
    // gtid_slave_pos may need it whole to be placed.
    let mut tmp: Option<remote::CopyDir> = None;
    let (la, lb, dir) = match &mirror {
        Mirror::None => (
            catchup::load(&mut ra, None)?,
            catchup::load(&mut rb, None)?,
            None,
        ),
        Mirror::Dir(d) => (
            catchup::load(&mut ra, Some(d))?,
            catchup::load(&mut rb, Some(d))?,
            Some(d.clone()),
        ),
        Mirror::Server(server) => {
            let t = tmp
                .insert(remote::CopyDir::new("catchup")?)
                .path()
                .to_path_buf();
            let loaded = (catchup::load(&mut ra, None), catchup::load(&mut rb, None));
            let (la, lb) = match loaded {
                (Ok(la), Ok(lb)) => {
                    let start = catchup::scan_start([&la.applied.state, &lb.applied.state]);
                    remote::fetch(server, remote::copy_server_id(), start.as_ref(), &t)?;
                    (la, lb)
                }
                (Err(CatchupError::NeedsMirror { .. }), _)
                | (_, Err(CatchupError::NeedsMirror { .. })) => {
                    remote::fetch(server, remote::copy_server_id(), None, &t)?;
                    (
                        catchup::load(&mut ra, Some(&t))?,
                        catchup::load(&mut rb, Some(&t))?,
                    )
                }
                (Err(e), _) | (_, Err(e)) => return Err(e.into()),
            };
            (la, lb, Some(t))
        }
    };
    drop((ra, rb));
    la.check_shard_map(&map)?;
    lb.check_shard_map(&map)?;
    let between = match &dir {
        Some(d) => Some(catchup::between(&la.applied, &lb.applied, d, &map)?),
        None => None,
    };
    let order = between.as_ref().map_or_else(
        || compare(&la.applied.state, &lb.applied.state),
        |b| b.order.clone(),
    );
    let mut report = json!({
        "from": side(&la),
        "to": side(&lb),
        "order": order_json(&order),
    });
    if let Some(b) = &between {
        report["a_to_b"] = serde_json::to_value(&b.a_to_b)?;
        report["b_to_a"] = serde_json::to_value(&b.b_to_a)?;
    }
    if !a.json {
        print_text(out, &la, &lb, &order, between.as_ref(), a.list)?;
    }
    if let (true, Some(d), Some(b)) = (a.apply, &dir, &between) {
        let applied = apply(&a, d, to, &map, &progress, &lb, &la, &b.a_to_b, out)?;
        report["applied"] = serde_json::to_value(&applied)?;
    }
    if a.json {
        writeln!(out, "{report}")?;
    }
    drop(tmp);
    Ok(())
}

/// Applies `set` (what B lacks of A) to B.
#[allow(clippy::too_many_arguments)]
fn apply(
    a: &CatchupArgs,
    mirror: &std::path::Path,
    to: ConnectOptions,
    map: &ShardMap,
    progress: &ProgressTables,
    lb: &Loaded,
    la: &Loaded,
    set: &CatchupSet,
    out: &mut Output,
) -> anyhow::Result<catchup::Applied> {
    let (stop, abort) = signals::install()?;
    let mut opts = ApplyOptions::new(Source::from_paths(&[mirror.to_path_buf()])?, to);
    opts.workers = a.workers;
    opts.shard_map = map.clone();
    opts.progress = progress.clone();
    opts.stop = stop;
    opts.abort = abort;
    opts.status_line = !a.json;
    let applied = catchup::apply(lb, &la.applied, opts)?;
    if !a.json {
        let r = &applied.report;
        writeln!(
            out,
            "applied to {}: {} groups ({} bytes; {} in the set) in {:.2} s; B now holds everything A holds",
            lb.addr, r.applied, r.bytes, set.len(), r.seconds
        )?;
        if applied.seeded {
            writeln!(
                out,
                "  (its progress tables were first brought up to its gtid_slave_pos)"
            )?;
        }
    }
    Ok(applied)
}

fn side(l: &Loaded) -> serde_json::Value {
    let mut v = l.applied.state.to_json();
    v["addr"] = l.addr.clone().into();
    v["applier"] = serde_json::to_value(l.applier).unwrap_or_default();
    v["gtid_slave_pos"] = l
        .gtid_slave_pos
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into();
    v
}

fn order_json(o: &StateOrder) -> serde_json::Value {
    let leads = |v: &[Lead]| serde_json::to_value(v).unwrap_or_default();
    match o {
        StateOrder::Equal => json!({"relation": "equal", "a_leads": [], "b_leads": []}),
        StateOrder::AAhead(v) => json!({"relation": "a_ahead", "a_leads": leads(v), "b_leads": []}),
        StateOrder::BAhead(v) => json!({"relation": "b_ahead", "a_leads": [], "b_leads": leads(v)}),
        StateOrder::Incomparable { a_leads, b_leads } => json!({
            "relation": "incomparable", "a_leads": leads(a_leads), "b_leads": leads(b_leads)
        }),
    }
}

fn print_text(
    out: &mut Output,
    la: &Loaded,
    lb: &Loaded,
    order: &StateOrder,
    between: Option<&Between>,
    list: bool,
) -> anyhow::Result<()> {
    let who = |l: &Loaded| format!("{} ({:?})", l.addr, l.applier).to_lowercase();
    writeln!(out, "A = {}, B = {}", who(la), who(lb))?;
    let leads = |v: &[Lead]| {
        v.iter()
            .map(|l| format!("{} ({} vs {})", l.key, l.a, l.b))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match order {
        StateOrder::Equal => writeln!(out, "states: equal")?,
        StateOrder::AAhead(v) => writeln!(out, "states: A is ahead in {}", leads(v))?,
        StateOrder::BAhead(v) => writeln!(out, "states: B is ahead in {}", leads(v))?,
        StateOrder::Incomparable { a_leads, b_leads } => writeln!(
            out,
            "states: incomparable; A leads in {}; B leads in {}",
            leads(a_leads),
            leads(b_leads)
        )?,
    }
    let Some(b) = between else {
        return Ok(());
    };
    for (name, set) in [("A→B (B lacks)", &b.a_to_b), ("B→A (A lacks)", &b.b_to_a)] {
        let span = match (set.groups.first(), set.groups.last()) {
            (Some(f), Some(l)) => format!(", {} … {}", f.start_pos(), l.end_pos()),
            _ => String::new(),
        };
        writeln!(
            out,
            "{name}: {} groups, {} bytes{span}",
            set.len(),
            set.bytes
        )?;
        if list {
            for g in &set.groups {
                let shards = g
                    .shards
                    .as_ref()
                    .map_or_else(|| "(barrier)".into(), |s| s.join(","));
                writeln!(
                    out,
                    "  {} {}:{}-{} {shards}",
                    g.gtid, g.file, g.start, g.end
                )?;
            }
        }
    }
    Ok(())
}
