//! What a flag's value is made of, for the values clap shows as defaults:
//! each type's `Display` prints a value the way its parser reads it back,
//! so a default is written once, as a typed constant.

use std::fmt;
use std::time::Duration;

use crate::duration;

/// A duration flag's value: read by [`duration::parse`], and shown (as
/// `--help`'s defaults) in the largest unit that states it exactly, which
/// the parser reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0");
        }
        const UNITS: [(&str, u128); 6] = [
            ("d", 86_400_000_000_000),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ];
        for (unit, size) in UNITS {
            if ns % size == 0 {
                return write!(f, "{}{unit}", ns / size);
            }
        }
        write!(f, "{ns}ns")
    }
}

/// A size flag's value: read by `parse_bytes`, shown in the largest binary
/// unit that states it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if self.0 != 0 && self.0 % (1 << shift) == 0 {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// An `on|off` flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl fmt::Display for OnOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "on" } else { "off" })
    }
}

pub(super) fn parse_on_off(s: &str) -> Result<OnOff, String> {
    match s {
        "on" => Ok(OnOff(true)),
        "off" => Ok(OnOff(false)),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

pub(super) fn parse_duration(s: &str) -> Result<HumanDuration, String> {
    duration::parse(s).map(HumanDuration)
}

/// A size in bytes: `1048576`, `512KiB`, `16MiB`, `1GiB`; at least 64 KiB.
pub(super) fn parse_bytes(s: &str) -> Result<Bytes, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB or GiB")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 16MiB"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 64 << 10 {
        return Err(format!("{s:?} is less than 64KiB"));
    }
    Ok(Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units_and_refuse_nonsense() {
        assert_eq!(parse_bytes("16MiB"), Ok(Bytes(16 << 20)));
        assert_eq!(parse_bytes("512KiB"), Ok(Bytes(512 << 10)));
        assert_eq!(parse_bytes("1048576"), Ok(Bytes(1 << 20)));
        assert!(parse_bytes("16MB").is_err());
        assert!(parse_bytes("1KiB").is_err(), "below the floor");
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn shown_values_parse_back() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(300),
            Duration::from_secs(60),
            Duration::from_secs(90),
            Duration::from_secs(5400),
            Duration::from_secs(30 * 86_400),
            Duration::from_micros(1500),
            Duration::from_nanos(7),
        ] {
            let shown = HumanDuration(d).to_string();
            assert_eq!(parse_duration(&shown), Ok(HumanDuration(d)), "{shown}");
        }
        assert_eq!(HumanDuration(Duration::from_secs(300)).to_string(), "5m");
        assert_eq!(
            HumanDuration(Duration::from_secs(30 * 86_400)).to_string(),
            "30d"
        );
        for b in [64 << 10, 16 << 20, 1 << 30, (1 << 20) + 1] {
            assert_eq!(parse_bytes(&Bytes(b).to_string()), Ok(Bytes(b)));
        }
        assert_eq!(Bytes(16 << 20).to_string(), "16MiB");
        for on in [true, false] {
            assert_eq!(parse_on_off(&OnOff(on).to_string()), Ok(OnOff(on)));
        }
    }
}

/// A setting that holds a secret (a signing secret, a password, the
/// cluster cookie): read as the string it wraps, and never shown by
/// `Debug`, so that printing settings prints no secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
