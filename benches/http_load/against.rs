//! This build against an earlier one, side by side in one run, so that a
//! change that adds per-request cost shows as a ratio below 1:
//!
//! ```sh
//! scripts/bench-against.sh <commit>          # builds <commit>, then runs this
//! cargo bench --bench http_load -- --against path/to/earlier/sessiond
//! ```
//!
//! `--against` (or `HTTP_LOAD_AGAINST`) names the earlier `sessiond`
//! binary. Both serve their own SQLite database with the cache on, the same
//! users created and warmed on each. Then, in closed-loop rounds alternating
//! their order (`--rounds`, `--secs`, `--connections` as for the default
//! mode): `GET /healthz`, a cached `GET /api/auth/session` rotating through
//! every user's token, and the same with one user's token only, on each
//! build. The report gives each figure of this build over the earlier
//! one's, the session route over `/healthz`, their p99 latencies (at
//! saturation, `--connections` in flight), and many users over one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cpu::loadavg;
use crate::database::Database;
use crate::load::{compare, Stats, Target};
use crate::server::Server;
use crate::settings::Settings;
use crate::users::{tokens_for_users, warm_and_check};

/// The earlier binary, when this mode is asked for.
pub(crate) fn requested() -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--against")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("HTTP_LOAD_AGAINST").ok())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// One build's server, database and users' tokens.
struct Build {
    name: String,
    server: Server,
    _db: Database,
    tokens: Vec<String>,
}

async fn build(name: &str, binary: &Path, s: &Settings) -> Build {
    let db = Database::create("sqlite")
        .await
        .unwrap_or_else(|e| panic!("a SQLite database for {name}: {e}"));
    let server = Server::start_binary(binary, db.url(), "5m");
    let tokens = tokens_for_users(server.addr, s.users).await;
    warm_and_check(server.addr, &tokens, true).await;
    Build {
        name: name.to_string(),
        server,
        _db: db,
        tokens,
    }
}

/// What one build measured.
struct Figures {
    healthz: Stats,
    session: Stats,
    one_user: Stats,
}

pub(crate) async fn run(s: Settings, earlier: PathBuf) {
    let started = Instant::now();
    println!("# sessiond HTTP load: this build against an earlier one\n");
    println!(
        "command: `cargo bench --bench http_load -- --against {} --secs {} --rounds {} --connections {} --users {} --threads {}`",
        earlier.display(),
        s.secs,
        s.rounds,
        s.connections,
        s.users,
        s.threads
    );
    println!(
        "machine: {} cores, shared by both servers and this load generator; load average at start: {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let builds = [
        build("earlier", &earlier, &s).await,
        build("this", Path::new(env!("CARGO_BIN_EXE_sessiond")), &s).await,
    ];
    eprintln!(
        "both builds up, {} users each, warmed in {:.1} s",
        s.users,
        started.elapsed().as_secs_f64()
    );
    let targets: Vec<[Target; 3]> = builds
        .iter()
        .map(|b| {
            [
                Target::new(&b.server, "/healthz", &[]),
                Target::new(&b.server, "/api/auth/session", &b.tokens),
                Target::new(&b.server, "/api/auth/session", &b.tokens[..1]),
            ]
        })
        .collect();
    // Every target of both builds in the same alternating rounds.
    let all: Vec<&Target> = targets.iter().flatten().collect();
    let mut stats = compare(&all, &s).await.into_iter();
    let mut figures = Vec::new();
    for _ in &builds {
        let (Some(healthz), Some(session), Some(one_user)) =
            (stats.next(), stats.next(), stats.next())
        else {
            panic!("three figures per build");
        };
        figures.push(Figures {
            healthz,
            session,
            one_user,
        });
    }

    println!(
        "closed loop, {} keep-alive connections; {} round(s) of {} s per figure, order alternating; SQLite, cache on\n",
        s.connections, s.rounds, s.secs
    );
    println!("| build | healthz req/s | session req/s | one user req/s | session ÷ healthz | {} users ÷ one | p99 ms healthz / session | p99 session ÷ healthz | errors |", s.users);
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (b, f) in builds.iter().zip(&figures) {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} | {} |",
            b.name,
            f.healthz.rate(),
            f.session.rate(),
            f.one_user.rate(),
            f.session.rate() / f.healthz.rate(),
            f.session.rate() / f.one_user.rate(),
            f.healthz.quantile_ms(0.99),
            f.session.quantile_ms(0.99),
            f.session.quantile_ms(0.99) / f.healthz.quantile_ms(0.99),
            f.healthz.errors + f.session.errors + f.one_user.errors,
        );
    }
    if let [earlier, this] = &figures[..] {
        println!(
            "\nthis ÷ earlier: healthz **{:.2}×**, cached session **{:.2}×**, one user **{:.2}×**",
            this.healthz.rate() / earlier.healthz.rate(),
            this.session.rate() / earlier.session.rate(),
            this.one_user.rate() / earlier.one_user.rate(),
        );
    }
    println!(
        "\nload average at the end: {}; total {:.0} s",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
}
