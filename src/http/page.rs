//! `GET /`: a small status page; it reloads itself every few seconds.

use std::sync::atomic::Ordering;

use crate::app::Ctx;

pub fn render(ctx: &Ctx) -> String {
    let t = &ctx.telemetry;
    let hits = t.hits.load(Ordering::Relaxed);
    let misses = t.misses.load(Ordering::Relaxed);
    let rate = if hits + misses == 0 {
        0.0
    } else {
        100.0 * hits as f64 / (hits + misses) as f64
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>sessiond — {node}</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem;color:#222}}td{{padding:.2rem 1rem}}</style>
</head><body>
<h1>sessiond</h1>
<table>
<tr><td>node</td><td id="node">{node}</td></tr>
<tr><td>uptime</td><td id="uptime">{uptime} s</td></tr>
<tr><td>requests</td><td id="requests">{requests}</td></tr>
<tr><td>cache hit rate</td><td id="hit-rate">{rate:.1}%</td></tr>
<tr><td>hit latency p50 / p99</td><td>{hp50} / {hp99} ms</td></tr>
<tr><td>miss latency p50 / p99</td><td>{mp50} / {mp99} ms</td></tr>
<tr><td>database queries</td><td id="db-queries">{db}</td></tr>
<tr><td>live session actors</td><td id="actors">{actors}</td></tr>
<tr><td>invalidations</td><td id="invalidations">{inv}</td></tr>
</table>
<p>Machine-readable: <a href="/api/perf">/api/perf</a>, <a href="/metrics">/metrics</a>.</p>
</body></html>
"#,
        node = ctx.router.node(),
        uptime = t.uptime().as_secs(),
        requests = t.requests.load(Ordering::Relaxed),
        hp50 = t.hit_latency.quantile_ms(0.5),
        hp99 = t.hit_latency.quantile_ms(0.99),
        mp50 = t.miss_latency.quantile_ms(0.5),
        mp99 = t.miss_latency.quantile_ms(0.99),
        db = t.db_queries.load(Ordering::Relaxed),
        actors = ctx.router.session_actors(),
        inv = t.invalidations.load(Ordering::Relaxed),
    )
}
