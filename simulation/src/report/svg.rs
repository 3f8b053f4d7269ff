//! The SVG chart: hit rate and p99 stale window against TTL, one line per
//! policy, written by hand (no plotting dependency) so that its bytes
//! depend on the runs alone.

use std::fmt::Write as _;
use std::time::Duration;

use super::{describe, RunSummary};
use crate::args::{show_duration, Policy};
use crate::harness::Scenario;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis step for a range up to `max` in about five steps.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Step sizes for a time axis in seconds, so that ticks read 30s, 1m, 5m….
fn time_step(max_s: f64) -> f64 {
    let steps = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 21_600.0, 43_200.0,
        86_400.0,
    ];
    steps
        .iter()
        .copied()
        .find(|s| max_s / s <= 6.0)
        .unwrap_or_else(|| nice_step(max_s))
}

/// A duration rounded for a chart label: `2.5ms`, `24.6s`, `4m45s`.
fn short_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        show_duration(d)
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        show_duration(Duration::from_secs(d.as_secs_f64().round() as u64))
    }
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

/// Colour, dash pattern and width of each policy's line; `push` is drawn
/// first and wider, so that `ttl` on top of it stays visible where the two
/// coincide.
const POLICY_STYLE: [(Policy, &str, &str, f64); 4] = [
    (Policy::Push, "#1b7837", "", 5.0),
    (Policy::None, "#7f7f7f", "6 4", 2.0),
    (Policy::Ttl, "#d95f02", "", 2.0),
    (Policy::Lease, "#2166ac", "2 3", 2.0),
];

/// The chart: hit rate and p99 stale window against TTL, one line per
/// policy (`none` has no TTL: it is drawn flat across).
pub fn svg(seed: u64, scenario: &Scenario, runs: &[RunSummary]) -> String {
    let mut ttls: Vec<Duration> = runs
        .iter()
        .filter(|r| r.policy != Policy::None)
        .map(|r| r.ttl)
        .collect();
    ttls.sort();
    ttls.dedup();
    let (lo, hi) = match (ttls.first(), ttls.last()) {
        (Some(a), Some(b)) => (a.as_secs_f64().max(1e-3), b.as_secs_f64().max(1e-3)),
        _ => (1.0, 1.0),
    };
    let log = hi / lo >= 4.0;
    let xpos = |p: &Panel, ttl: f64| -> f64 {
        let f = if hi <= lo {
            0.5
        } else if log {
            (ttl.max(1e-3).ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (ttl - lo) / (hi - lo)
        };
        p.x0 + 20.0 + f * (p.w - 40.0)
    };
    let (width, height) = (980.0, 430.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"20\" y=\"24\" font-size=\"15\" font-weight=\"bold\">sessiond simulate (seed {seed}): hit rate and p99 stale window against TTL</text>"
    );
    for (i, line) in describe(scenario).iter().take(3).enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"20\" y=\"{}\" fill=\"#444\">{}</text>",
            44 + 16 * i,
            xml(line)
        );
    }
    let panels = [
        Panel {
            x0: 70.0,
            y0: 110.0,
            w: 380.0,
            h: 250.0,
        },
        Panel {
            x0: 560.0,
            y0: 110.0,
            w: 380.0,
            h: 250.0,
        },
    ];
    let stale_max = runs
        .iter()
        .map(|r| r.stale.p99.as_secs_f64())
        .fold(0.0, f64::max);
    let stale_step = time_step(stale_max.max(0.001));
    let stale_top = (stale_max / stale_step).ceil().max(1.0) * stale_step;
    for (k, p) in panels.iter().enumerate() {
        let (title, top, step) = if k == 0 {
            ("hit rate (%)", 100.0, 20.0)
        } else {
            ("p99 stale window", stale_top, stale_step)
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{title}</text>",
            p.x0,
            p.y0 - 12.0
        );
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
            p.x0, p.y0, p.w, p.h
        );
        let ticks = (top / step).round() as usize;
        for t in 0..=ticks {
            let v = step * t as f64;
            let y = p.y0 + p.h - v / top * p.h;
            let label = if k == 0 {
                format!("{v:.0}")
            } else {
                show_duration(Duration::from_secs_f64(v))
            };
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                p.x0,
                p.x0 + p.w,
                p.x0 - 6.0,
                y + 4.0
            );
        }
        for ttl in &ttls {
            let x = xpos(p, ttl.as_secs_f64());
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                p.y0,
                p.y0 + p.h,
                p.y0 + p.h + 16.0,
                show_duration(*ttl)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">TTL{}</text>",
            p.x0 + p.w / 2.0,
            p.y0 + p.h + 34.0,
            if log { " (log scale)" } else { "" }
        );
        for (policy, color, dash, stroke) in POLICY_STYLE {
            let value = |r: &RunSummary| {
                if k == 0 {
                    r.hit_rate * 100.0
                } else {
                    r.stale.p99.as_secs_f64()
                }
            };
            let pts: Vec<(f64, f64)> = if policy == Policy::None {
                match runs.iter().find(|r| r.policy == Policy::None) {
                    Some(r) if !ttls.is_empty() => {
                        let v = value(r);
                        vec![(p.x0 + 20.0, v), (p.x0 + p.w - 20.0, v)]
                    }
                    _ => Vec::new(),
                }
            } else {
                runs.iter()
                    .filter(|r| r.policy == policy)
                    .map(|r| (xpos(p, r.ttl.as_secs_f64()), value(r)))
                    .collect()
            };
            if pts.is_empty() {
                continue;
            }
            let coords: Vec<(f64, f64)> = pts
                .iter()
                .map(|(x, v)| (*x, p.y0 + p.h - v.min(top) / top * p.h))
                .collect();
            let dash_attr = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            let points: Vec<String> = coords
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{stroke}\"{dash_attr}/>",
                points.join(" ")
            );
            if policy == Policy::None {
                continue;
            }
            let of_policy = runs.iter().filter(|r| r.policy == policy);
            for ((x, y), r) in coords.iter().zip(of_policy) {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"{color}\"/>",
                    stroke / 2.0 + 1.5
                );
                if k == 1 {
                    // The windows themselves: push's are too short to see.
                    let (dx, anchor) = if policy == Policy::Push {
                        (4.0, "start")
                    } else {
                        (-4.0, "end")
                    };
                    let _ = writeln!(
                        out,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\" text-anchor=\"{anchor}\">{}</text>",
                        x + dx,
                        y - 8.0,
                        short_duration(r.stale.p99)
                    );
                }
            }
        }
    }
    let mut lx = 70.0;
    for policy in [Policy::None, Policy::Ttl, Policy::Push, Policy::Lease] {
        let Some((_, color, dash, _)) = POLICY_STYLE.iter().find(|s| s.0 == policy) else {
            continue;
        };
        if !runs.iter().any(|r| r.policy == policy) {
            continue;
        }
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let label = match policy {
            Policy::None => "none (no cache)",
            Policy::Ttl => "ttl (TTL only)",
            Policy::Push => "push (TTL + invalidation)",
            Policy::Lease => "lease (push + freshness leases)",
        };
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"412\" x2=\"{}\" y2=\"412\" stroke=\"{color}\" stroke-width=\"2\"{dash_attr}/><text x=\"{}\" y=\"416\">{label}</text>",
            lx + 24.0,
            lx + 30.0
        );
        lx += 230.0;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps() {
        assert_eq!(time_step(300.0), 60.0);
        assert_eq!(time_step(0.004), 0.001);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(xml("a<b&c"), "a&lt;b&amp;c");
    }
}
