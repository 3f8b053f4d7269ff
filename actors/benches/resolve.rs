//! In-process resolve throughput and the cold stampede.
//!
//! ```sh
//! cargo bench -p sessiond-actors --bench resolve
//! ```
//!
//! 1. Resolves per second through `Router::resolve` (router → registry
//!    snapshot, or supervisor → session actor on a miss) with 1, 8 and 64
//!    concurrent callers over 1k and 100k warmed users, beside the same
//!    lookups on a `moka` cache in the same run, measured in alternating
//!    rounds so that the machine's noise hits both alike.
//! 2. The cold stampede: 10,000 concurrent lookups of one uncached user →
//!    how many store queries (must be 1) and the latency those callers see.
//!
//! 3. With `RESOLVE_IDS=int,text`, instead of 1 and 2: resolves per second
//!    by integer ids against 32-character text ids (as Better Auth makes
//!    them), each lookup parsing the id from its text form as a request
//!    parses its token's `sub`, both routers in the same alternating
//!    rounds; the ratio text ÷ int.
//!
//! Knobs (environment): `RESOLVE_SECS` (seconds per measured cell, default
//! 0.5), `RESOLVE_ROUNDS` (default 3, the median is reported),
//! `RESOLVE_USERS` (default `1000,100000`), `RESOLVE_CALLERS` (default
//! `1,8,64`), `RESOLVE_THREADS` (runtime workers, default: the cores),
//! `STAMPEDE_CALLERS` (default 10000), `STAMPEDE_LATENCY_MS` (the store's
//! latency during the stampede, default 2).
//!
//! Kept whole: a bench target is one file, and both measurements share its
//! set-up (stores, warmed caches, the runtime) and its report.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_actors::memory::{text_id, MemoryStore};
use sessiond_actors::stats;
use sessiond_actors::{
    CacheConfig, Fetched, LeaseKeeper, Lookup, NoopObserver, Router, UserId, UserStore,
};

/// Lookups each caller makes between two yields to the scheduler: callers
/// are tasks that interleave, as requests of a server do.
const BATCH: u64 = 8;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn config(users: usize) -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        hibernate_after: None,
        max_sessions: users * 2,
        call_timeout: Duration::from_secs(30),
        // As in production: every hit checks the node's freshness lease,
        // held here for the whole run (one renewal, below).
        lease: Some(Duration::from_secs(3600)),
        near: true,
    }
}

fn store_with(users: usize) -> MemoryStore {
    let store = MemoryStore::new();
    for id in 1..=users as i64 {
        store.put(id, "user");
    }
    store
}

/// A small, fast, per-caller pseudo-random user picker (xorshift64*).
struct Picker(u64);

impl Picker {
    fn next(&mut self, users: u64) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % users) as i64 + 1
    }
}

/// The two caches under test, behind one shape.
#[derive(Clone)]
enum Cache {
    Actors(Router),
    MokaFuture(moka::future::Cache<i64, Fetched>, Arc<MemoryStore>),
    MokaSync(moka::sync::Cache<i64, Fetched>),
    /// The router, user `n` named by `spelled[n - 1]` and parsed on
    /// every lookup.
    ActorsSpelled(Router, Arc<Vec<String>>),
}

impl Cache {
    async fn lookup(&self, id: i64) -> Fetched {
        match self {
            Cache::Actors(router) => {
                let served = router.resolve(id, Lookup::Resolve).await.expect("resolves");
                debug_assert!(served.hit);
                served.fetched
            }
            Cache::MokaFuture(cache, store) => {
                cache
                    .get_with(id, async {
                        store
                            .fetch(&id.into())
                            .await
                            .expect("the memory store answers")
                    })
                    .await
            }
            // The floor: a plain synchronous hit (every user was loaded
            // beforehand), what a lookup costs with no loader at all.
            Cache::MokaSync(cache) => cache.get(&id).expect("warmed"),
            Cache::ActorsSpelled(router, spelled) => {
                let uid = UserId::parse(&spelled[id as usize - 1]).expect("a valid id");
                let served = router
                    .resolve(uid, Lookup::Resolve)
                    .await
                    .expect("resolves");
                debug_assert!(served.hit);
                served.fetched
            }
        }
    }
}

async fn build(kind: &str, users: usize) -> Cache {
    let store = store_with(users);
    match kind {
        "actors" => {
            let router = Router::start(
                config(users),
                Arc::new(store.clone()),
                Arc::new(NoopObserver),
                "bench",
            )
            .await
            .expect("the router starts");
            let mut keeper =
                LeaseKeeper::new(router.clone(), Arc::new(store)).expect("the router has a lease");
            assert!(keeper.renew().await.expect("granted"), "the lease is held");
            Cache::Actors(router)
        }
        "moka-future" => Cache::MokaFuture(
            moka::future::Cache::builder()
                .max_capacity(users as u64 * 2)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            Arc::new(store),
        ),
        _ => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(users as u64 * 2)
                .time_to_live(Duration::from_secs(3600))
                .build();
            for id in 1..=users as i64 {
                cache.insert(id, store.fetch(&id.into()).await.expect("answers"));
            }
            Cache::MokaSync(cache)
        }
    }
}

/// A router over `users` users named by integer ids (`text` false) or
/// 32-character text ids, looked up by their text form.
async fn build_spelled(users: usize, text: bool) -> Cache {
    let spelled: Vec<String> = (1..=users as u64)
        .map(|n| {
            if text {
                text_id(n).to_string()
            } else {
                n.to_string()
            }
        })
        .collect();
    let store = MemoryStore::new();
    for s in &spelled {
        store.put(UserId::parse(s).expect("a valid id"), "user");
    }
    let router = Router::start(
        config(users),
        Arc::new(store.clone()),
        Arc::new(NoopObserver),
        "bench",
    )
    .await
    .expect("the router starts");
    let mut keeper =
        LeaseKeeper::new(router.clone(), Arc::new(store)).expect("the router has a lease");
    assert!(keeper.renew().await.expect("granted"), "the lease is held");
    Cache::ActorsSpelled(router, Arc::new(spelled))
}

/// Section 3: integer against text ids, side by side.
async fn run_ids(user_sizes: &[usize], caller_counts: &[usize], rounds: usize, secs: f64) {
    println!(
        "## Resolves per second by id kind, the id parsed per lookup (median of {rounds} rounds of {secs} s, alternating)\n"
    );
    println!("| users | callers | integer ids | text ids (32 chars) | text ÷ integer |");
    println!("|---:|---:|---:|---:|---:|");
    let mut worst = f64::INFINITY;
    for &users in user_sizes {
        let caches = [
            build_spelled(users, false).await,
            build_spelled(users, true).await,
        ];
        for c in &caches {
            warm(c, users).await;
        }
        for &callers in caller_counts {
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 2];
            for round in 0..rounds {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    rates[i].push(throughput(&caches[i], users, callers, secs).await.0);
                }
            }
            let m: Vec<f64> = rates.into_iter().map(median).collect();
            worst = worst.min(m[1] / m[0]);
            println!(
                "| {users} | {callers} | {} | {} | {:.2} |",
                fmt_rate(m[0]),
                fmt_rate(m[1]),
                m[1] / m[0]
            );
        }
        for c in &caches {
            if let Cache::ActorsSpelled(r, _) = c {
                r.stop().await;
            }
        }
    }
    println!(
        "\n- text ÷ integer, lowest: {worst:.2} (target ≥ 0.90): {}",
        if worst >= 0.9 { "met" } else { "MISSED" }
    );
}

/// Every user looked up once, 64 at a time, so every later lookup is a hit.
async fn warm(cache: &Cache, users: usize) {
    let next = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let cache = cache.clone();
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id > users as i64 {
                    break;
                }
                cache.lookup(id).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("warm-up task");
    }
}

/// CPU time (user + system) of this process so far, from /proc (Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// Lookups per second with `callers` concurrent tasks for `secs` seconds,
/// and lookups per CPU-second this process used meanwhile (which other
/// people's work on a shared machine does not change).
async fn throughput(cache: &Cache, users: usize, callers: usize, secs: f64) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let cache = cache.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut pick = Picker(0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1) * 0x1000_0001));
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..BATCH {
                    let f = cache.lookup(pick.next(users as u64)).await;
                    std::hint::black_box(&f);
                }
                done += BATCH;
                tokio::task::yield_now().await;
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for t in tasks {
        total += t.await.expect("caller task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_cpu = match (cpu_before, process_cpu()) {
        (Some(a), Some(b)) if b > a => total as f64 / (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    (total as f64 / elapsed, per_cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    stats::quantile(sorted, q).unwrap_or(Duration::ZERO)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `callers` concurrent first lookups of one user, all arriving at once;
/// returns the sorted latencies, each from the burst's start to that
/// caller's answer (waiting for a worker thread counts: the requests of a
/// real burst wait for one too).
async fn stampede<F, Fut>(callers: usize, lookup: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Every caller is created before any runs: the tasks start together
    // when the gate opens.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (started_tx, started_rx) = tokio::sync::watch::channel(Instant::now());
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let gate = Arc::clone(&gate);
        let started = started_rx.clone();
        let fut = lookup();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("gate");
            fut.await;
            let t0 = *started.borrow();
            t0.elapsed()
        }));
    }
    tokio::task::yield_now().await;
    started_tx.send_replace(Instant::now());
    gate.add_permits(callers);
    let mut lat = Vec::with_capacity(callers);
    for t in tasks {
        lat.push(t.await.expect("stampede task"));
    }
    lat.sort();
    lat
}

/// The cold stampede, on a fresh router and a fresh moka cache; returns
/// the store queries the actors made.
async fn run_stampede(stampede_callers: usize, stampede_latency: u64) -> u64 {
    println!("## Cold stampede: {stampede_callers} concurrent lookups of one uncached user (store latency {stampede_latency} ms)\n");
    println!("| cache | store queries | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    // The actors.
    let store = store_with(1);
    store.set_latency(Duration::from_millis(stampede_latency));
    let router = Router::start(
        config(1),
        Arc::new(store.clone()),
        Arc::new(NoopObserver),
        "bench",
    )
    .await
    .expect("the router starts");
    let mut keeper =
        LeaseKeeper::new(router.clone(), Arc::new(store.clone())).expect("the router has a lease");
    assert!(keeper.renew().await.expect("granted"), "the lease is held");
    let lat = stampede(stampede_callers, || {
        let router = router.clone();
        async move {
            let served = router.resolve(1, Lookup::Resolve).await.expect("resolves");
            std::hint::black_box(served);
        }
    })
    .await;
    let actor_queries = store.queries();
    println!(
        "| actors (Router::resolve) | {} | {} | {} | {} |",
        actor_queries,
        ms(quantile(&lat, 0.50)),
        ms(quantile(&lat, 0.99)),
        ms(quantile(&lat, 1.0)),
    );
    router.stop().await;
    // The same on moka::future (get_with also coalesces concurrent loads).
    let store = Arc::new(store_with(1));
    store.set_latency(Duration::from_millis(stampede_latency));
    let cache: moka::future::Cache<i64, Fetched> = moka::future::Cache::builder()
        .max_capacity(16)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let lat = stampede(stampede_callers, || {
        let cache = cache.clone();
        let store = Arc::clone(&store);
        async move {
            let f = cache
                .get_with(1, async { store.fetch(&1.into()).await.expect("answers") })
                .await;
            std::hint::black_box(f);
        }
    })
    .await;
    println!(
        "| moka::future get_with | {} | {} | {} | {} |",
        store.queries(),
        ms(quantile(&lat, 0.50)),
        ms(quantile(&lat, 0.99)),
        ms(quantile(&lat, 1.0)),
    );

    println!();
    actor_queries
}

async fn run() {
    let secs: f64 = env_or("RESOLVE_SECS", 0.5);
    let rounds: usize = env_or("RESOLVE_ROUNDS", 3).max(1);
    let user_sizes = env_list("RESOLVE_USERS", &[1_000, 100_000]);
    let caller_counts = env_list("RESOLVE_CALLERS", &[1, 8, 64]);
    let stampede_callers: usize = env_or("STAMPEDE_CALLERS", 10_000);
    let stampede_latency: u64 = env_or("STAMPEDE_LATENCY_MS", 2);
    if std::env::var("RESOLVE_IDS").is_ok_and(|v| v.contains("text")) {
        run_ids(&user_sizes, &caller_counts, rounds, secs).await;
        return;
    }

    // First, while nothing else has run on this runtime.
    let actor_queries = run_stampede(stampede_callers, stampede_latency).await;

    println!(
        "## In-process resolves per second (median of {rounds} rounds of {secs} s, alternating)\n"
    );
    println!("| users | callers | actors (Router::resolve) | moka::future get_with | moka::sync get | actors ÷ moka::future | actors ÷ moka::sync | actors per CPU-second | moka::future per CPU-second |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for &users in &user_sizes {
        let t = Instant::now();
        let caches = [
            build("actors", users).await,
            build("moka-future", users).await,
            build("moka-sync", users).await,
        ];
        for c in &caches {
            warm(c, users).await;
        }
        eprintln!(
            "{users} users: built and warmed in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for &callers in &caller_counts {
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); caches.len()];
            let mut per_cpu: Vec<Vec<f64>> = vec![Vec::new(); caches.len()];
            for round in 0..rounds {
                // Alternate the order so neither side always goes first.
                let order: Vec<usize> = if round % 2 == 0 {
                    (0..caches.len()).collect()
                } else {
                    (0..caches.len()).rev().collect()
                };
                for i in order {
                    let (rate, cpu) = throughput(&caches[i], users, callers, secs).await;
                    rates[i].push(rate);
                    per_cpu[i].push(cpu);
                }
            }
            let m: Vec<f64> = rates.into_iter().map(median).collect();
            let c: Vec<f64> = per_cpu.into_iter().map(median).collect();
            println!(
                "| {users} | {callers} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
                fmt_rate(m[0]),
                fmt_rate(m[1]),
                fmt_rate(m[2]),
                m[0] / m[1],
                m[0] / m[2],
                fmt_rate(c[0]),
                fmt_rate(c[1]),
            );
            summary.push((users, callers, m[0], c[0]));
        }
        for c in &caches {
            if let Cache::Actors(r) = c {
                eprintln!("{users} users: {} live session actors", r.session_actors());
                r.stop().await;
            }
        }
    }

    println!("\n## Targets\n");
    for (users, callers, rate, per_cpu) in &summary {
        if *callers == 64 {
            println!(
                "- {users} users, 64 callers: {} (target ≥ 1 M/s): {}; {} per CPU-second",
                fmt_rate(*rate),
                if *rate >= 1e6 { "met" } else { "MISSED" },
                fmt_rate(*per_cpu),
            );
        }
    }
    println!(
        "- stampede: {actor_queries} store quer{} (target exactly 1): {}",
        if actor_queries == 1 { "y" } else { "ies" },
        if actor_queries == 1 { "met" } else { "MISSED" }
    );
}

fn main() {
    let threads: usize = env_or(
        "RESOLVE_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    println!(
        "sessiond-actors resolve bench: tokio multi-thread runtime, {threads} workers, {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run());
}
