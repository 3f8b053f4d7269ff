//! HTTP load benchmark of the real `sessiond` binary, every figure a ratio
//! measured side by side in one run.
//!
//! ```sh
//! cargo bench --bench http_load
//! cargo bench --bench http_load -- --secs 4 --connections 32 --stores sqlite,postgres
//! ```
//!
//! It starts `sessiond serve` as child processes on loopback and drives them
//! with an HTTP/1.1 keep-alive load generator (the testkit's raw `Conn`, one
//! request in flight per connection), which runs on the same cores as the
//! servers. It measures:
//!
//! - (a) `GET /healthz` vs a cached `GET /api/auth/session` (many users'
//!   tokens, warmed) on one server: the most requests per second of each
//!   (closed loop) and their ratio, then p50/p99 latency at half of each
//!   one's maximum rate (open loop, paced);
//! - (b) the session route with the cache on vs `--cache-ttl 0`, on SQLite
//!   and on PostgreSQL: two servers per store on the same database, measured
//!   in alternating rounds.
//!
//! Flags (after `--`) or environment: `--secs` / `HTTP_LOAD_SECS` (seconds
//! per measured round, default 2), `--rounds` / `HTTP_LOAD_ROUNDS` (default
//! 4), `--connections` / `HTTP_LOAD_CONNECTIONS` (default 32), `--users` /
//! `HTTP_LOAD_USERS` (default 200), `--threads` / `HTTP_LOAD_THREADS` (load
//! generator workers, default 2), `--stores` / `HTTP_LOAD_STORES` (default
//! `sqlite,postgres`). PostgreSQL: `SESSIOND_BENCH_POSTGRES_URL`, else
//! `SESSIOND_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`;
//! a fresh database is created for the run and dropped afterwards. If the
//! server cannot be reached the PostgreSQL rows say so and are skipped.
//!
//! `--against <earlier sessiond binary>` measures this build against an
//! earlier one instead (see `against.rs` and `scripts/bench-against.sh`).

mod against;
mod cpu;
mod database;
mod load;
mod report;
mod server;
mod settings;
mod users;

use std::time::Instant;

use database::Database;
use load::{compare, drive, Target};
use report::{PartA, StoreRow};
use server::Server;
use settings::Settings;
use users::{tokens_for_users, warm_and_check};

const ADMIN_PASSWORD: &str = "bench-admin-password";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret!";

async fn run(s: Settings) {
    report::header(&s);

    let mut rows: Vec<StoreRow> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut part_a: Option<PartA> = None;

    for store in &s.stores {
        let db = match Database::create(store).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("skipping {store}: {e}");
                skipped.push(format!("{store}: {e}"));
                continue;
            }
        };
        let setup = Instant::now();
        let on = Server::start(db.url(), "5m");
        let tokens = tokens_for_users(on.addr, s.users).await;
        let off = Server::start(db.url(), "0");
        warm_and_check(on.addr, &tokens, true).await;
        warm_and_check(off.addr, &tokens, false).await;
        eprintln!(
            "{store}: {} users created and logged in, both servers warmed in {:.1} s",
            tokens.len(),
            setup.elapsed().as_secs_f64()
        );
        let session_on = Target::new(&on, "/api/auth/session", &tokens);
        let session_off = Target::new(&off, "/api/auth/session", &tokens);

        if part_a.is_none() {
            let healthz = Target::new(&on, "/healthz", &[]);
            let max = compare(&[&healthz, &session_on], &s).await;
            let mut max = max.into_iter();
            let (h, c) = (max.next().expect("healthz"), max.next().expect("session"));
            eprintln!(
                "(a) max: healthz {:.0}/s, session {:.0}/s",
                h.rate(),
                c.rate()
            );
            let h_half = drive(&healthz, s.connections, s.secs, Some(h.rate() / 2.0)).await;
            let c_half = drive(&session_on, s.connections, s.secs, Some(c.rate() / 2.0)).await;
            part_a = Some(PartA {
                healthz: h,
                session: c,
                healthz_half: h_half,
                session_half: c_half,
            });
        }

        let both = compare(&[&session_on, &session_off], &s).await;
        let mut both = both.into_iter();
        let row = StoreRow {
            store: store.clone(),
            on: both.next().expect("cache on"),
            off: both.next().expect("cache off"),
        };
        eprintln!(
            "(b) {store}: cache on {:.0}/s, off {:.0}/s",
            row.on.rate(),
            row.off.rate()
        );
        rows.push(row);
        drop(on);
        drop(off);
        db.remove().await;
    }

    report::tables(&s, part_a.as_ref(), &rows, &skipped);
}

fn main() {
    let settings = Settings::load();
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async {
            match against::requested() {
                Some(earlier) => against::run(settings, earlier).await,
                None => run(settings).await,
            }
        });
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
}
