//! CPU time from /proc (Linux; `None` elsewhere): of a server, of this
//! load generator, of PostgreSQL and of the whole machine, so each figure
//! can be read as a cost per request as well as a rate.

use std::time::Duration;

/// utime + stime of a `/proc/…/stat` file (Linux; `None` elsewhere).
pub(crate) fn proc_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of this process (the load generator).
pub(crate) fn self_cpu() -> Option<Duration> {
    proc_cpu("/proc/self/stat")
}

/// CPU time of every running PostgreSQL process on this machine (backends
/// of other clients included; pooled backends live as long as the servers).
pub(crate) fn postgres_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = format!("/proc/{name}/stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        if stat.contains("(postgres)") {
            total += proc_cpu(&path).unwrap_or_default();
        }
    }
    Some(total)
}

/// Busy CPU time of the whole machine (every core, every process), from
/// the first line of /proc/stat.
pub(crate) fn machine_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_millis(busy * 10))
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}
