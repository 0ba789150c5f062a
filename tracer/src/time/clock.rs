//! Turns the kernel's boot-time nanoseconds into wall-clock time for display.
use chrono::{DateTime, Local, TimeZone};

/// CLOCK_BOOTTIME now, in nanoseconds: the clock of `bpf_ktime_get_boot_ns()`.
pub fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Offset between wall-clock and boot time, taken once.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    realtime_minus_boot_ns: i128,
}

impl WallClock {
    pub fn now() -> Self {
        let boot = boot_ns() as i128;
        let real = clock_ns(libc::CLOCK_REALTIME) as i128;
        WallClock {
            realtime_minus_boot_ns: real - boot,
        }
    }

    /// The clock of another moment or host: boot time `boot_ns` was realtime `realtime_ns`
    /// (a recording's start).
    pub fn from_pair(boot_ns: u64, realtime_ns: i64) -> Self {
        WallClock {
            realtime_minus_boot_ns: realtime_ns as i128 - boot_ns as i128,
        }
    }

    /// Realtime (ns since the Unix epoch) at boot time `boot_ns`.
    pub fn realtime_ns(&self, boot_ns: u64) -> i64 {
        (boot_ns as i128 + self.realtime_minus_boot_ns).clamp(i64::MIN.into(), i64::MAX.into())
            as i64
    }

    /// Realtime at boot time `boot_ns` as seconds since the Unix epoch and nanoseconds into
    /// that second.
    pub fn split(&self, boot_ns: u64) -> (i64, u32) {
        let ns = boot_ns as i128 + self.realtime_minus_boot_ns;
        (
            ns.div_euclid(1_000_000_000) as i64,
            ns.rem_euclid(1_000_000_000) as u32,
        )
    }

    pub fn at(&self, boot_ts_ns: u64) -> DateTime<Local> {
        let (secs, nanos) = self.split(boot_ts_ns);
        Local
            .timestamp_opt(secs, nanos)
            .single()
            .unwrap_or_else(Local::now)
    }
}
