//! Memory per cached user: caches N users through the real router, then
//! reports the resident set growth per user with every session live, and
//! again once their actors have hibernated (records kept, actors gone).
//!
//! ```text
//! cargo run --release -p sessiond-actors --example memory -- 100000 1000000
//! cargo run --release -p sessiond-actors --example memory -- --near 1000000
//! cargo run --release -p sessiond-actors --example memory -- --ids int,text 1000000
//! ```
//!
//! With `--near`, it measures near copies instead: a second node on the
//! in-memory network asks for users the first owns (cached there, hibernated)
//! and keeps the answers; the figure is the heap growth per near copy.
//!
//! Users are cached in batches of 25,000 (`SESSIOND_MEMORY_BATCH`), each
//! batch's actors hibernating before the next arrives, as they would over
//! a day of traffic; the allocator then reuses the memory of stopped
//! actors, so the resident set reflects the steady state.
//!
//! `--ids int` (the default) gives users integer ids; `--ids text`
//! 32-character text ids, as Better Auth makes them
//! (`memory::text_id`), each lookup parsing its id afresh as a request's
//! token does; `--ids int,text` measures both, each in a process of its
//! own (so neither reuses memory the other freed), side by side.
//!
//! The in-memory store's own copy of the users is allocated before the
//! first measurement, so it is not counted. Two figures per stage: the
//! growth of the resident set (what the OS sees; the allocator does not
//! always hand freed memory back, so it barely drops after hibernation) and
//! the growth of live heap bytes, counted by a wrapping global allocator
//! (what the cache really holds). The resident set per hibernated user is
//! given twice: the whole growth divided by N, which carries the memory
//! the allocator keeps from the last batch's stopped actors (~175 MB, a
//! pool the next live actors reuse, whatever N), and the growth from the
//! first batch past N/2 to the end divided by the users added since: what
//! each further hibernated user costs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn heap() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

use sessiond_actors::memory::{text_id, MemoryStore};
use sessiond_actors::{CacheConfig, Lookup, NoopObserver, Router, UserId};

/// The id of user number `n`: the integer itself, or a 32-character text
/// id parsed afresh (as a token's `sub` is, on every request).
fn id_of(n: i64, text: bool) -> UserId {
    if text {
        let spelled = text_id(n as u64).to_string();
        UserId::parse(&spelled).unwrap_or_else(|_| UserId::from(n))
    } else {
        UserId::from(n)
    }
}

/// Resident set size in bytes, from /proc (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let near = args.iter().any(|a| a == "--near");
    let kinds: Vec<String> = args
        .iter()
        .position(|a| a == "--ids")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || vec!["int".to_string()],
            |k| k.split(',').map(str::to_string).collect(),
        );
    if kinds.iter().any(|k| k != "int" && k != "text") {
        eprintln!("--ids takes int, text or int,text");
        std::process::exit(2);
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000]
    } else {
        sizes
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if near {
        println!(
            "| near copies | RSS / copy | heap / copy | near node: sessions, actors | seconds |"
        );
        println!("|---:|---:|---:|---:|---:|");
        for n in sizes {
            runtime.block_on(measure_near(n));
        }
        return;
    }
    let child = std::env::var_os("SESSIOND_MEMORY_CHILD").is_some();
    if !child {
        println!("| ids | cached users | all live: RSS / user | all live: heap / user | hibernated: RSS / user | hibernated: RSS / user added in the second half | hibernated: heap / user | seconds |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    for n in sizes {
        if kinds.len() == 1 {
            runtime.block_on(measure(n, kinds[0] == "text"));
            continue;
        }
        // Each kind in a fresh process: memory one run freed would
        // otherwise be reused by the next, and its growth not counted.
        for kind in &kinds {
            let status = std::env::current_exe().and_then(|exe| {
                std::process::Command::new(exe)
                    .args(["--ids", kind, &n.to_string()])
                    .env("SESSIOND_MEMORY_CHILD", "1")
                    .status()
            });
            if !status.is_ok_and(|s| s.success()) {
                eprintln!("the {kind} run failed");
            }
        }
    }
}

/// Near copies of `n` users: node `o` owns them all (the other node is
/// told so by its view until it asks), caches them and hibernates; then
/// node `m` asks for each and keeps the answer.
async fn measure_near(n: usize) {
    use sessiond_actors::memory::MemoryNet;
    let started = Instant::now();
    let store = MemoryStore::new();
    // Twice as many users as near copies wanted: the near node owns about
    // half of them itself (see below).
    for id in 1..=2 * n as i64 + 1_000 {
        store.put(id, "user");
    }
    let config = CacheConfig {
        ttl: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        hibernate_after: Some(Duration::from_millis(200)),
        max_sessions: n + 1,
        call_timeout: Duration::from_secs(60),
        lease: None,
        near: true,
    };
    let net = MemoryNet::new(vec![Arc::from("o"), Arc::from("m")]);
    let routers = match net.start_routers(&store, config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a router: {e}");
            return;
        }
    };
    let (owner, near) = (&routers[0], &routers[1]);
    // The owner alone in its view caches everyone asked for; the near
    // node's view holds both (a node is always in its own view), and the
    // users measured are the first `n` it sees the owner own.
    owner.apply_view(&["o"]);
    near.apply_view(&["m", "o"]);
    let ids: Vec<i64> = (1..=2 * n as i64 + 1_000)
        .filter(|&id| &*near.owner_of(id) == "o")
        .take(n)
        .collect();
    if ids.len() < n {
        eprintln!("only {} of {n} users are the owner's", ids.len());
        return;
    }
    for &id in &ids {
        let _ = owner.resolve(id, Lookup::Resolve).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while owner.session_actors() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rss();
    let heap_before = heap();
    let mut kept_remote = 0usize;
    for &id in &ids {
        if let Ok(served) = near.resolve(id, Lookup::Resolve).await {
            kept_remote += usize::from(served.node.as_deref() == Some("o"));
        }
    }
    let grown = rss().saturating_sub(before);
    let heap_grown = heap() - heap_before;
    if kept_remote != n {
        eprintln!(
            "{} of {n} lookups were not answered by the owner",
            n - kept_remote
        );
    }
    println!(
        "| {n} | {} B | {} B | {}, {} | {:.0} |",
        grown / n as u64,
        heap_grown / n as i64,
        near.sessions(),
        near.session_actors(),
        started.elapsed().as_secs_f64()
    );
    for r in &routers {
        r.stop().await;
    }
}

async fn measure(n: usize, text: bool) {
    let started = Instant::now();
    let store = MemoryStore::new();
    for id in 1..=n as i64 {
        store.put(id_of(id, text), "user");
    }
    // Actors hibernate after a tenth of this (2 s).
    let idle = Duration::from_secs(20);
    let config = CacheConfig {
        ttl: Duration::from_secs(3600),
        idle_timeout: idle,
        hibernate_after: None,
        max_sessions: n + 1,
        call_timeout: Duration::from_secs(60),
        lease: None,
        near: true,
    };
    let router =
        match Router::start(config, Arc::new(store.clone()), Arc::new(NoopObserver), "m").await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cannot start the router: {e}");
                return;
            }
        };
    let before = rss();
    let heap_before = heap();
    let batch: usize = std::env::var("SESSIOND_MEMORY_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(25_000)
        .max(1);
    let (mut live, mut live_heap, mut live_actors) = (0, 0, 0);
    // The resident set once half the users are cached and hibernated: the
    // second half's growth is what each further hibernated user costs,
    // without the fixed pool the allocator keeps for live actors.
    let mut half: Option<(usize, u64)> = None;
    let mut filled = 0;
    while filled < n {
        let upto = (filled + batch).min(n);
        fill(&router, filled + 1, upto, text).await;
        filled = upto;
        if live_actors == 0 {
            // The first batch, all live: what an actor per user costs.
            live = rss().saturating_sub(before) / filled as u64;
            live_heap = (heap() - heap_before) / filled as i64;
            live_actors = router.session_actors();
        }
        // Keep every cached user warm with hits (which never reach an
        // actor) until this batch's actors hibernate.
        let deadline = Instant::now() + Duration::from_secs(30);
        while router.session_actors() > 0 && Instant::now() < deadline {
            for id in 1..=filled as i64 {
                let _ = router.resolve(id_of(id, text), Lookup::Resolve).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if half.is_none() && filled >= n / 2 && filled < n {
            half = Some((filled, rss()));
        }
    }
    let hibernated = rss().saturating_sub(before);
    let added = half.map_or_else(
        || "-".to_string(),
        |(at, rss_then)| format!("{} B", rss().saturating_sub(rss_then) / (n - at) as u64),
    );
    let hibernated_heap = heap() - heap_before;
    println!(
        "| {} | {n} | {} B | {} B ({live_actors} actors) | {} B | {added} | {} B ({} sessions, {} actors) | {:.0} |",
        if text { "text (32)" } else { "int" },
        live,
        live_heap,
        hibernated / n as u64,
        hibernated_heap / n as i64,
        router.sessions(),
        router.session_actors(),
        started.elapsed().as_secs_f64()
    );
    router.stop().await;
}

/// Resolves users `from..=to` from 64 concurrent callers.
async fn fill(router: &Router, from: usize, to: usize, text: bool) {
    let per = (to + 1 - from).div_ceil(64);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let r = router.clone();
        let a = (from + t * per) as i64;
        let b = ((from + (t + 1) * per - 1).min(to)) as i64;
        tasks.push(tokio::spawn(async move {
            for id in a..=b {
                let _ = r.resolve(id_of(id, text), Lookup::Resolve).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
