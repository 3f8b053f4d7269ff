//! Durations as people write them in flags and variables: `300ms`, `5s`,
//! `5m`, `30d`, `1h 30m`, and a bare `0`.
//!
//! Here because both command lines read the cache policy's durations (the
//! service's `--cache-ttl`, `--idle-timeout`, …; the simulation's `--ttl`,
//! `--duration`, …) and this crate is the one both depend on: one rule for
//! what a duration flag accepts.

use std::time::Duration;

/// Parses a duration flag. A bare number other than 0 is refused: `5` could
/// mean seconds or minutes, and guessing wrong here changes cache policy.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        return Err(format!(
            "`{t}` has no unit; write e.g. `{t}s`, `{t}m` or `{t}ms`"
        ));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{t}` is not a duration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse("5").is_err());
        assert!(parse("").is_err());
        assert!(parse("five minutes").is_err());
        assert!(parse("-5s").is_err());
    }
}
