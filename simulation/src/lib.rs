//! # sessiond-sim
//!
//! A deterministic, virtual-time simulation of sessiond's cache. It runs the
//! real `sessiond-actors` code (router, supervisor, session actors) on a
//! current-thread tokio runtime with paused time, against an in-memory store
//! with a latency model, to predict hit rate, database load, latency and
//! stale-role windows for a traffic shape and a policy, and checks the
//! freshness invariants on every run. `sessiond simulate` is its command
//! line; the README's "Simulation" is the outline.
//!
//! ## Layout
//!
//! - [`args`]: the `sessiond simulate` flags ([`SimArgs`]) and their value
//!   types (durations, rates, latency models, disruptions).
//! - [`rng`]: xoshiro256** seeded through splitmix64, one stream per source
//!   of randomness, so every policy replays the same traffic.
//! - [`workload`]: seeded Poisson streams of lookups (uniform or Zipf
//!   popularity, optional daily ramp), role and status changes, forced
//!   refreshes, merged in time order.
//! - [`store`]: the simulated database: `memory::MemoryStore` behind a
//!   latency model (fixed, uniform, log-normal), optionally read through a
//!   lagging replica; its change log and lease table (the `lease` policy);
//!   each node's way to it, which `--cut-off` fails and `--pause` holds up.
//! - [`net`]: the network between simulated nodes: the actors crate's
//!   in-memory network (`memory::MemoryNet`: partitions, crashed nodes),
//!   its delay and loss drawn from the run's seeded link model.
//! - [`harness`]: one run (a policy and a TTL). `harness/cluster.rs`: the
//!   nodes' real routers, the crash/partition schedule and the membership,
//!   which applies the production policy (`Router::apply_view`,
//!   `Router::flush`); `harness/drive.rs`: the single driver task that
//!   issues events in time order (a cache hit is answered on its first
//!   poll, without a task or a timer).
//! - [`measure`]: what a run records: answers, latency histogram, changes and
//!   their stale answers, acknowledgements and the answers stale after one
//!   (`measure::stale_after_ack`, the history checker), the observer's
//!   counters.
//! - [`report`]: summaries, the closed form and the invariant checks
//!   (`report/mod.rs`); the table (`report/table.rs`), CSV and JSON
//!   (`report/files.rs`) and SVG (`report/svg.rs`) outputs.

pub mod args;
pub mod harness;
pub mod measure;
pub mod net;
pub mod report;
pub mod rng;
pub mod store;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use sessiond_actors::sync::MutexExt;

pub use args::{Policy, SimArgs};
use harness::{Fault, Scenario, Scheduled};
use report::RunSummary;
use workload::{Popularity, WorkloadSpec};

/// Why `sessiond simulate` failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Invalid(String),
    #[error("simulation runtime: {0}")]
    Runtime(String),
    #[error("writing {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{count} stale-window invariant violation(s); first: {first}")]
    Invariant { count: u64, first: String },
}

/// The bound on how long a lookup waits for an actor or another node, as in
/// production's default `CacheConfig`.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses `sessiond simulate` flags (without the program and subcommand
/// names' help): for tests and embedding.
pub fn parse_args<I, T>(flags: I) -> Result<SimArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(Parser)]
    #[command(name = "simulate")]
    struct Wrapper {
        #[command(flatten)]
        args: SimArgs,
    }
    let argv = std::iter::once(std::ffi::OsString::from("simulate"))
        .chain(flags.into_iter().map(Into::into));
    Wrapper::try_parse_from(argv).map(|w| w.args)
}

/// Resolves the flags into a scenario.
pub fn scenario(args: &SimArgs) -> Result<Scenario, SimError> {
    let nodes = args.nodes as usize;
    let mut disruptions = Vec::new();
    let lists = [
        (&args.partition, Fault::Partition),
        (&args.crash, Fault::Crash),
        (&args.cut_off, Fault::CutOff),
        (&args.pause, Fault::Pause),
    ];
    for (list, kind) in lists {
        for d in list {
            if nodes < 2 {
                return Err(SimError::Invalid(
                    "--partition, --crash, --cut-off and --pause need --nodes 2 or more".into(),
                ));
            }
            let node = match &d.node {
                None => nodes - 1,
                Some(name) => (0..nodes)
                    .find(|i| Scenario::node_name(*i) == *name)
                    .ok_or_else(|| {
                        SimError::Invalid(format!("no node `{name}` (they are n1..n{nodes})"))
                    })?,
            };
            disruptions.push(Scheduled {
                node,
                kind,
                at: d.at,
                length: d.length,
            });
        }
    }
    if args.lease.is_zero() {
        return Err(SimError::Invalid("--lease must be above 0".into()));
    }
    let duration_ns = u64::try_from(args.duration.as_nanos())
        .map_err(|_| SimError::Invalid("--duration is too long".into()))?;
    if duration_ns == 0 {
        return Err(SimError::Invalid("--duration must be above 0".into()));
    }
    let workload = WorkloadSpec {
        seed: args.seed,
        users: args.users,
        rps: args.rps,
        zipf: args.zipf,
        diurnal: args.diurnal,
        role_change_rate: args.role_change_rate,
        status_change_rate: args.deactivation_rate,
        force_refresh_rate: args.force_refresh_rate,
        duration_ns,
    };
    Ok(Scenario {
        popularity: Arc::new(Popularity::new(args.users, args.zipf)),
        workload,
        store_latency: args.store_latency.clone(),
        nodes,
        link_delay: args.link_delay.clone(),
        link_loss: args.link_loss,
        disruptions,
        detect: args.detect,
        idle_timeout: args.idle_timeout,
        hibernate_after: args.hibernate_after.unwrap_or(args.idle_timeout),
        replica_lag: args.replica_lag,
        call_timeout: CALL_TIMEOUT,
        lease: args.lease,
        ack_unconfirmed: args.ack_unconfirmed,
        near: args.near_cache,
        max_sessions: 1_000_000,
        timer_per_event: false,
        id_kind: args.id_kind,
    })
}

/// The runs of a sweep: `none` once, then `ttl`, `push` and `lease` at
/// each TTL.
pub fn plan(args: &SimArgs) -> Vec<(Policy, Duration)> {
    let mut policies = args.policy.clone();
    policies.sort();
    policies.dedup();
    let mut ttls = args.ttl.clone();
    ttls.sort();
    ttls.dedup();
    let mut runs = Vec::new();
    if policies.contains(&Policy::None) {
        runs.push((Policy::None, Duration::ZERO));
    }
    for ttl in ttls {
        for p in [Policy::Ttl, Policy::Push, Policy::Lease] {
            if policies.contains(&p) {
                runs.push((p, ttl));
            }
        }
    }
    runs
}

/// What a sweep produced.
pub struct Report {
    pub seed: u64,
    pub scenario: Scenario,
    pub runs: Vec<RunSummary>,
}

impl Report {
    pub fn table(&self) -> String {
        report::table(self.seed, &self.scenario, &self.runs)
    }

    pub fn violations(&self) -> u64 {
        self.runs.iter().map(|r| r.violation_count).sum()
    }

    /// Writes runs.csv, runs.json and simulation.svg into `dir`.
    pub fn write_files(&self, dir: &Path) -> Result<(), SimError> {
        let io = |path: &Path, error| SimError::Io {
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let files = [
            ("runs.csv", report::csv(&self.runs)),
            (
                "runs.json",
                report::json(self.seed, &self.scenario, &self.runs),
            ),
            (
                "simulation.svg",
                report::svg(self.seed, &self.scenario, &self.runs),
            ),
        ];
        for (name, body) in files {
            let path = dir.join(name);
            std::fs::write(&path, body).map_err(|e| io(&path, e))?;
        }
        Ok(())
    }
}

/// Runs every policy × TTL of the flags. `progress` draws a bar on stderr.
pub fn simulate(args: &SimArgs, progress: bool) -> Result<Report, SimError> {
    let scenario = scenario(args)?;
    let plan = plan(args);
    let jobs = args.jobs.map(usize::from).unwrap_or_else(default_jobs);
    let runs = run_plan(&scenario, &plan, progress, jobs)?;
    Ok(Report {
        seed: args.seed,
        scenario,
        runs,
    })
}

/// One run per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the given policy × TTL pairs of a scenario, up to `jobs` at once,
/// and returns their summaries in the plan's order. Each run has its own
/// runtime and its own random streams, so the results do not depend on
/// `jobs`. The first failed run stops the others from starting.
pub fn run_plan(
    scenario: &Scenario,
    plan: &[(Policy, Duration)],
    progress: bool,
    jobs: usize,
) -> Result<Vec<RunSummary>, SimError> {
    if plan.is_empty() {
        return Err(SimError::Invalid("no run: give --policy and --ttl".into()));
    }
    let total = plan.len();
    let jobs = jobs.clamp(1, total);
    let next = AtomicUsize::new(0);
    let shares = Mutex::new(vec![0.0f64; total]);
    let results: Mutex<Vec<Option<Result<RunSummary, SimError>>>> =
        Mutex::new((0..total).map(|_| None).collect());
    let work = || {
        // Lost messages and unreachable nodes are what the simulation is
        // for: keep the actors' warnings about them out of the output.
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(policy, ttl)) = plan.get(k) else {
                break;
            };
            let mut bar = |done: f64| {
                if progress {
                    let mut shares = lock(&shares);
                    shares[k] = done;
                    let finished = shares.iter().filter(|d| **d >= 1.0).count();
                    let share = shares.iter().sum::<f64>() / total as f64;
                    drop(shares);
                    draw_progress(&format!("{finished}/{total} runs done"), share);
                }
            };
            let result = harness::run(scenario, policy, ttl, &mut bar)
                .map(|raw| report::summarise(scenario, policy, ttl, raw));
            let failed = result.is_err();
            lock(&results)[k] = Some(result);
            if failed {
                next.store(total, Ordering::Relaxed);
                break;
            }
        })
    };
    if jobs == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(work);
            }
        });
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    // A run is left unstarted only after an earlier one failed, whose
    // error comes first in plan order.
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Locks a mutex of the simulation; a panic in another holder does not
/// poison it for the rest of the run.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.locked()
}

fn draw_progress(label: &str, done: f64) {
    const WIDTH: usize = 30;
    let filled = ((done.clamp(0.0, 1.0)) * WIDTH as f64) as usize;
    eprint!(
        "\r\x1b[2K[{}{}] {:3.0}%  {label}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        done * 100.0
    );
    let _ = std::io::stderr().flush();
}

/// Runs the sweep, prints the table to `out` and, with `--out`, writes the
/// files. An invariant violation is an error (after the table is printed).
pub fn execute(args: &SimArgs, out: &mut dyn Write, progress: bool) -> Result<Report, SimError> {
    let report = simulate(args, progress)?;
    let stdout_err = |error| SimError::Io {
        path: "stdout".into(),
        error,
    };
    out.write_all(report.table().as_bytes())
        .map_err(stdout_err)?;
    out.flush().map_err(stdout_err)?;
    if let Some(dir) = &args.out {
        report.write_files(dir)?;
    }
    let count = report.violations();
    if count > 0 {
        let first = report
            .runs
            .iter()
            .flat_map(|r| r.violations.first())
            .next()
            .map(|v| v.text.clone())
            .unwrap_or_default();
        return Err(SimError::Invariant { count, first });
    }
    Ok(report)
}

/// `sessiond simulate`: the table on stdout, a progress bar on stderr when
/// it is a terminal, the wall time spent on stderr.
pub fn run(args: SimArgs) -> Result<(), SimError> {
    let started = std::time::Instant::now();
    let progress = std::io::stderr().is_terminal();
    let stdout = std::io::stdout();
    let result = execute(&args, &mut stdout.lock(), progress);
    let runs = plan(&args).len();
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(default_jobs)
        .clamp(1, runs.max(1));
    eprintln!(
        "simulated {} of traffic in each of {runs} run{} ({jobs} at a time) in {:.1} s of wall time",
        args::show_duration(args.duration),
        if runs == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    result.map(|_| ())
}
