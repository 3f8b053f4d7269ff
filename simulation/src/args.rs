//! `sessiond simulate`'s flags (the `sessiond-sim` executable's) and the
//! value types they parse into.
//!
//! Kept whole: every flag of the simulator is one clap struct, beside
//! the value types it parses into.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::rng::Rng;

/// Flags of `sessiond simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Seed of every random stream; the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub users: u64,
    /// Mean session lookups per second, all users together (Poisson arrivals).
    #[arg(long, default_value = "200", value_parser = parse_positive)]
    pub rps: f64,
    /// Simulated time per run (virtual: a day takes seconds).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub duration: Duration,
    /// TTLs to sweep, comma-separated (`none` ignores them).
    #[arg(long, value_delimiter = ',', default_value = "1m,5m,15m", value_parser = parse_duration)]
    pub ttl: Vec<Duration>,
    /// Policies to run, comma-separated: none (no cache), ttl (TTL only,
    /// changes noticed at expiry), push (TTL + invalidation at the change),
    /// lease (push, plus freshness leases: a write is acknowledged once no
    /// node can still answer the old record, checked on every answer).
    #[arg(long, value_delimiter = ',', default_value = "none,ttl,push")]
    pub policy: Vec<Policy>,
    /// Zipf exponent of user popularity; 0 is uniform.
    #[arg(long, default_value = "0", value_parser = parse_non_negative)]
    pub zipf: f64,
    /// Amplitude of a daily ramp of the request rate, 0 (flat) to <1: the
    /// rate is rps·(1 − A·cos(2πt/1d)), lowest at t = 0.
    #[arg(long, default_value = "0", value_parser = parse_amplitude)]
    pub diurnal: f64,
    /// Role changes, all users together: `30/h`, `0.01/s` or a bare number per second.
    #[arg(long, default_value = "30/h", value_parser = parse_rate)]
    pub role_change_rate: f64,
    /// Status changes (deactivation of an active user, reactivation of a
    /// deactivated one), all users together.
    #[arg(long, default_value = "5/h", value_parser = parse_rate)]
    pub deactivation_rate: f64,
    /// Admin forced refreshes of a user's record, all users together.
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub force_refresh_rate: f64,
    /// Store read latency: `2ms` (fixed), `uniform:1ms:5ms` or
    /// `lognormal:2ms:0.5` (median, sigma).
    #[arg(long, default_value = "2ms")]
    pub store_latency: LatencyModel,
    /// Number of nodes; users are placed on them by the production ownership
    /// function and requests enter at a uniformly chosen live node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub nodes: u32,
    /// One-way delay of the link between nodes (same forms as --store-latency).
    #[arg(long, default_value = "1ms")]
    pub link_delay: LatencyModel,
    /// Probability that a message between nodes is lost (its sender times out).
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub link_loss: f64,
    /// Cut a node off from the others: `[NODE@]AT+FOR`, e.g. `n2@2h+10m`
    /// (default node: the last). Repeatable.
    #[arg(long)]
    pub partition: Vec<Disruption>,
    /// Crash a node and restart it with an empty cache: `[NODE@]AT+FOR`. Repeatable.
    #[arg(long)]
    pub crash: Vec<Disruption>,
    /// Cut a node off from the others and from the database: `[NODE@]AT+FOR`.
    /// Repeatable.
    #[arg(long)]
    pub cut_off: Vec<Disruption>,
    /// Pause a node (as SIGSTOP would): `[NODE@]AT+FOR`. Its peers cannot
    /// reach it; its calls to the database, and the requests that reach it,
    /// wait until it resumes. Repeatable.
    #[arg(long)]
    pub pause: Vec<Disruption>,
    /// The freshness lease of the `lease` policy's nodes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lease: Duration,
    /// How long the membership takes to notice a crash, partition or return.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub detect: Duration,
    /// Forget a session after this long without a lookup.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Hibernate a session actor (stop it, keep its record) after this long
    /// without a message; production does after a tenth of the idle timeout
    /// (at most 1m). Default: the idle timeout. Hibernation saves memory and
    /// changes no answer; attaching actors again costs the simulation wall
    /// time.
    #[arg(long, value_parser = parse_duration)]
    pub hibernate_after: Option<Duration>,
    /// Read from a replica this far behind the primary. Deliberately breaks
    /// the freshness invariants: a way to see the harness catch it.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub replica_lag: Duration,
    /// Under `lease`, acknowledge a write as soon as its invalidation was
    /// sent, without waiting for the other lease holders (as `push` does).
    /// Deliberately breaks "no stale answer after an acknowledgement" under
    /// faults: a way to see the check catch it.
    #[arg(long)]
    pub ack_unconfirmed: bool,
    /// Near copies (`on`, as the service's default): a node that forwards a
    /// lookup to the owner keeps the answer under the same fences and
    /// answers the next lookups itself; `off`: every such lookup is
    /// forwarded.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off,
          action = clap::ArgAction::Set)]
    pub near_cache: bool,
    /// The users' ids: `int` (1, 2, 3…, as sessiond's own table numbers
    /// them) or `text` (32-character strings, as Better Auth makes them).
    /// Placement, hashing and every message then carry ids of that kind.
    #[arg(long, value_enum, default_value = "int")]
    pub id_kind: IdKind,
    /// Write runs.csv, runs.json and simulation.svg into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs played at once, each on a thread of its own and with its own
    /// cache in memory (default: one per core). The results do not depend
    /// on it; lower it when many users would not fit in memory N times.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

/// The kind of id the simulated users have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdKind {
    Int,
    Text,
}

/// A cache policy under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Policy {
    /// No cache: every lookup reads the store (ttl = 0).
    None,
    /// TTL only: changes are written to the store and noticed at expiry.
    Ttl,
    /// TTL plus an invalidation sent at the change.
    Push,
    /// `push`, with freshness leases: each node answers from its cache only
    /// while it holds a lease, and a write is acknowledged once every
    /// holder confirmed it or its lease ran out.
    Lease,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Ttl => "ttl",
            Policy::Push => "push",
            Policy::Lease => "lease",
        }
    }
}

/// A scheduled disruption of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disruption {
    /// The node's name (`n1`…); `None` means the last node.
    pub node: Option<String>,
    pub at: Duration,
    pub length: Duration,
}

impl FromStr for Disruption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (node, rest) = match s.split_once('@') {
            Some((n, rest)) => (Some(n.trim().to_string()), rest),
            None => (None, s),
        };
        let (at, length) = rest
            .split_once('+')
            .ok_or_else(|| format!("`{s}`: expected [NODE@]AT+FOR, e.g. n2@2h+10m"))?;
        Ok(Disruption {
            node,
            at: parse_duration(at)?,
            length: parse_duration(length)?,
        })
    }
}

/// A distribution of delays.
#[derive(Clone, Debug, PartialEq)]
pub enum LatencyModel {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// exp(N(ln median, sigma²)).
    LogNormal {
        median: Duration,
        sigma: f64,
    },
}

impl LatencyModel {
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match self {
            LatencyModel::Fixed(d) => *d,
            LatencyModel::Uniform(lo, hi) => {
                let span = hi.saturating_sub(*lo).as_nanos() as u64;
                *lo + Duration::from_nanos(rng.below(span.saturating_add(1)))
            }
            LatencyModel::LogNormal { median, sigma } => {
                let x = median.as_secs_f64() * (sigma * rng.normal()).exp();
                Duration::from_secs_f64(x.clamp(0.0, 3600.0))
            }
        }
    }

    /// True when no delay is ever drawn.
    pub fn is_zero(&self) -> bool {
        matches!(self, LatencyModel::Fixed(d) if d.is_zero())
    }
}

impl fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyModel::Fixed(d) => f.write_str(&show_duration(*d)),
            LatencyModel::Uniform(lo, hi) => {
                write!(f, "uniform:{}:{}", show_duration(*lo), show_duration(*hi))
            }
            LatencyModel::LogNormal { median, sigma } => {
                write!(f, "lognormal:{}:{sigma}", show_duration(*median))
            }
        }
    }
}

impl FromStr for LatencyModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [d] => Ok(LatencyModel::Fixed(parse_duration(d)?)),
            ["uniform", lo, hi] => {
                let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
                if hi < lo {
                    return Err(format!("`{s}`: the upper bound is below the lower"));
                }
                Ok(LatencyModel::Uniform(lo, hi))
            }
            ["lognormal", median, sigma] => {
                let sigma: f64 = sigma
                    .parse()
                    .map_err(|_| format!("`{s}`: sigma `{sigma}` is not a number"))?;
                if !(0.0..=4.0).contains(&sigma) {
                    return Err(format!("`{s}`: sigma must be within 0..=4"));
                }
                Ok(LatencyModel::LogNormal {
                    median: parse_duration(median)?,
                    sigma,
                })
            }
            _ => Err(format!(
                "`{s}`: expected a duration (2ms), uniform:LO:HI or lognormal:MEDIAN:SIGMA"
            )),
        }
    }
}

/// Parses `300ms`, `5s`, `5m`, `1d`, `1h 30m` and a bare `0`: the
/// service's own rule for duration flags (a bare number other than 0 is
/// refused), from the crate both command lines share.
pub use sessiond_actors::duration::parse as parse_duration;

/// The compact form of a duration in the report: `300ms`, `5s`, `5m`,
/// `1h30m`, `1.5ms`.
pub fn show_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0".into();
    }
    if ns < 1_000_000 {
        return format!("{}us", trim_float(ns as f64 / 1e3, 1));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_float(ns as f64 / 1e6, 1));
    }
    if ns < 60_000_000_000 {
        return format!("{}s", trim_float(d.as_secs_f64(), 2));
    }
    let secs = d.as_secs();
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (v, unit) in [(days, "d"), (h, "h"), (m, "m")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    let frac = d.subsec_nanos();
    if frac > 0 {
        let secs = s as f64 + f64::from(frac) / 1e9;
        out.push_str(&format!("{}s", trim_float(secs, 3)));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `x` with at most `decimals` decimals, without trailing zeros.
fn trim_float(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A rate per second: `30/h`, `2/m`, `0.5/s`, `10/d` or a bare number per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                u => return Err(format!("`{t}`: unknown unit `{u}` (s, m, h or d)")),
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a rate (e.g. 30/h)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{t}`: a rate is a non-negative number"));
    }
    Ok(n / per)
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

fn parse_number(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    let n = parse_number(s)?;
    if n > 0.0 {
        Ok(n)
    } else {
        Err(format!("`{s}` must be above 0"))
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    let n = parse_number(s)?;
    if n >= 0.0 {
        Ok(n)
    } else {
        Err(format!("`{s}` must not be negative"))
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let n = parse_number(s)?;
    if (0.0..=1.0).contains(&n) {
        Ok(n)
    } else {
        Err(format!("`{s}` must be within 0..=1"))
    }
}

fn parse_amplitude(s: &str) -> Result<f64, String> {
    let n = parse_number(s)?;
    if (0.0..1.0).contains(&n) {
        Ok(n)
    } else {
        Err(format!("`{s}` must be within 0..1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_rate("30/h"), Ok(30.0 / 3600.0));
        assert_eq!(parse_rate("2"), Ok(2.0));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("3/y").is_err());
        assert_eq!(
            "uniform:1ms:5ms".parse::<LatencyModel>(),
            Ok(LatencyModel::Uniform(
                Duration::from_millis(1),
                Duration::from_millis(5)
            ))
        );
        assert!("lognormal:2ms:x".parse::<LatencyModel>().is_err());
        assert_eq!(
            "n2@2h+10m".parse::<Disruption>(),
            Ok(Disruption {
                node: Some("n2".into()),
                at: Duration::from_secs(7200),
                length: Duration::from_secs(600)
            })
        );
        assert!("2h".parse::<Disruption>().is_err());
    }

    #[test]
    fn shows_durations_compactly() {
        let cases = [
            (Duration::ZERO, "0"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(2500), "2.5s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(300_002), "5m0.002s"),
            (Duration::from_millis(301_500), "5m1.5s"),
            (Duration::from_millis(7_132_685), "1h58m52.685s"),
            (Duration::from_millis(86_400_002), "1d0.002s"),
        ];
        for (d, s) in cases {
            assert_eq!(show_duration(d), s);
        }
    }
}
