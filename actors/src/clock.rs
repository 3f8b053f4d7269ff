//! The clock that bounds a lease across a stop of the whole machine.
//!
//! A lease is counted on the monotonic clock (tokio's `Instant`), which
//! keeps running while the process alone is stopped (SIGSTOP, a stall),
//! but on Linux not while the machine is suspended: a guest suspended to
//! RAM, a laptop put to sleep. A lease counted on it alone would come back
//! from such a stop still running, however long the stop. CLOCK_BOOTTIME
//! counts the same seconds and the time suspended too, so a lease is also
//! held on it ([`crate::Lease`]), and ends at whichever clock reaches its
//! end first.
//!
//! Not covered: a hypervisor that stops a guest without telling it (a
//! paused or live-migrated VM) stops every clock the guest can read, this
//! one included, unless the hypervisor advances them on resume; see
//! `docs/freshness.md`.

use std::time::Duration;

/// The time on a clock that keeps counting while the machine is
/// suspended: CLOCK_BOOTTIME on Linux (read through libc's `clock_gettime`,
/// like the monotonic clock). Elsewhere, the monotonic clock (the process's
/// `Instant`), which adds nothing to it.
pub fn since_boot() -> Duration {
    imp::since_boot()
}

/// [`since_boot`] in whole milliseconds, rounded down.
pub fn since_boot_ms() -> u64 {
    u64::try_from(since_boot().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::time::Duration;

    use rustix::time::{clock_gettime, ClockId};

    pub(super) fn since_boot() -> Duration {
        let t = clock_gettime(ClockId::Boottime);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    pub(super) fn since_boot() -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}
