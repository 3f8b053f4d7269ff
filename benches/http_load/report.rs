//! The report on stdout: Markdown tables of what the run measured.

use crate::cpu::loadavg;
use crate::load::Stats;
use crate::settings::Settings;

/// Part (a): `/healthz` and the cached session route on one server, at
/// their maximum rate and paced at half of it.
pub(crate) struct PartA {
    pub(crate) healthz: Stats,
    pub(crate) session: Stats,
    pub(crate) healthz_half: Stats,
    pub(crate) session_half: Stats,
}

/// Part (b), one store: the session route with the cache on and off.
pub(crate) struct StoreRow {
    pub(crate) store: String,
    pub(crate) on: Stats,
    pub(crate) off: Stats,
}

/// What the run is, before it starts.
pub(crate) fn header(s: &Settings) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# sessiond HTTP load\n");
    println!("command: `{}`", s.command());
    println!(
        "machine: {cores} cores, shared by the servers and this load generator ({} tokio workers); load average at start: {}",
        s.threads,
        loadavg()
    );
    println!(
        "load: {} keep-alive connections, one request in flight each; {} round(s) of {} s per figure, order alternating; {} users' tokens rotated\n",
        s.connections, s.rounds, s.secs, s.users
    );
}

/// The tables, once every store is measured.
pub(crate) fn tables(s: &Settings, part_a: Option<&PartA>, rows: &[StoreRow], skipped: &[String]) {
    if let Some(PartA {
        healthz: h,
        session: c,
        healthz_half: h_half,
        session_half: c_half,
    }) = part_a
    {
        println!(
            "## (a) cached session vs /healthz (same server, {})\n",
            s.stores[0]
        );
        println!("| route | max req/s | CPU µs/req: server / load generator | cores busy: ours / others | paced at req/s | p50 ms | p99 ms | achieved req/s | errors |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, max, half) in [
            ("GET /healthz", h, h_half),
            ("GET /api/auth/session (cached)", c, c_half),
        ] {
            println!(
                "| {name} | {} | {} / {} | {} | {} | {:.3} | {:.3} | {} | {} |",
                rate(max.rate()),
                cpu(max, 0),
                cpu(max, 1),
                max.cores_busy(false),
                rate(max.rate() / 2.0),
                half.quantile_ms(0.50),
                half.quantile_ms(0.99),
                rate(half.rate()),
                max.errors + half.errors,
            );
        }
        let cpu_ratio = match (h.total_cpu_us(false), c.total_cpu_us(false)) {
            (Some(h), Some(c)) => format!("{:.2}", h / c),
            _ => "n/a".into(),
        };
        println!(
            "\nsession ÷ healthz throughput: **{:.2}** (target ≥ 0.7; from CPU µs per request, server + load generator: {cpu_ratio}); p99 of a cached session at half its max: **{:.3} ms** (target ≤ 1 ms)\n",
            c.rate() / h.rate(),
            c_half.quantile_ms(0.99)
        );
    }

    if !rows.is_empty() {
        println!("## (b) session route, cache on vs `--cache-ttl 0`\n");
        println!("| store | cache | req/s | on ÷ off | ÷ from CPU cost | p50 / p99 ms | CPU µs/req: server / load gen / PostgreSQL | cores busy: ours / others | errors |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let with_db = r.store == "postgres";
            let cpu_ratio = match (r.on.total_cpu_us(with_db), r.off.total_cpu_us(with_db)) {
                (Some(on), Some(off)) => format!("{:.2}×", off / on),
                _ => "n/a".into(),
            };
            for (cache, st) in [("on (5m)", &r.on), ("off (0)", &r.off)] {
                let (ratio, by_cpu) = if std::ptr::eq(st, &r.on) {
                    (
                        format!("**{:.2}×**", r.on.rate() / r.off.rate()),
                        cpu_ratio.clone(),
                    )
                } else {
                    (String::new(), String::new())
                };
                let pg = if with_db {
                    cpu(st, 2)
                } else {
                    "–".to_string()
                };
                println!(
                    "| {} | {cache} | {} | {ratio} | {by_cpu} | {:.2} / {:.2} | {} / {} / {pg} | {} | {} |",
                    r.store,
                    rate(st.rate()),
                    st.quantile_ms(0.5),
                    st.quantile_ms(0.99),
                    cpu(st, 0),
                    cpu(st, 1),
                    st.cores_busy(with_db),
                    st.errors,
                );
            }
        }
        println!(
            "\n(closed loop at {} connections: latencies there are at saturation, not at a paced rate)",
            s.connections
        );
    }
    for s in skipped {
        println!("\nskipped: {s}");
    }
    println!("\nload average at the end: {}", loadavg());
}

fn rate(r: f64) -> String {
    format!("{:.0}", r)
}

fn cpu(s: &Stats, which: usize) -> String {
    s.cpu_us_per_request(which)
        .map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "n/a".into())
}
