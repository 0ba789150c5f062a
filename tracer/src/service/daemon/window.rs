//! Queries for an interval (`tracer closes --window 5m`, `--since 14:00`): the request's
//! `"last_ns"` or `"start"`, and the `"interval"` object of the answer that says exactly what
//! it covers. The daemon answers from its history of time slots ([`crate::stats::window`]): the
//! start is rounded down to a slot edge, the end is the daemon's "now", and sockets still in a
//! state are counted as of that end.
use chrono::{DateTime, Local, TimeZone, Utc};

use crate::time::{clock::WallClock, duration::human};
pub use crate::view::interval::Interval;

/// What a request asks for, when not everything since the daemon started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// What ended in the last this many ns (`"last_ns"`).
    Last(u64),
    /// What ended since this wall-clock time, ns since the Unix epoch (`"start"`, RFC 3339).
    Since(i64),
}

/// RFC 3339 in the local time zone, for ns since the Unix epoch.
pub fn rfc3339(realtime_ns: i64) -> String {
    Utc.timestamp_nanos(realtime_ns)
        .with_timezone(&Local)
        .to_rfc3339()
}

impl Window {
    /// From the request's fields; `Err` says why they do not make a window.
    pub fn from_wire(last_ns: Option<u64>, start: Option<&str>) -> Result<Option<Window>, String> {
        match (last_ns, start) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err("give \"last_ns\" or \"start\", not both".into()),
            (Some(0), None) => Err("\"last_ns\" must be more than 0".into()),
            (Some(ns), None) => Ok(Some(Window::Last(ns))),
            (None, Some(text)) => {
                let at = DateTime::parse_from_rfc3339(text).map_err(|e| {
                    format!(
                        "\"start\" '{text}' is not an RFC 3339 time like 2026-11-28T14:00:00Z ({e})"
                    )
                })?;
                let ns = at
                    .timestamp_nanos_opt()
                    .ok_or_else(|| format!("\"start\" '{text}' is out of range"))?;
                Ok(Some(Window::Since(ns)))
            }
        }
    }

    /// The request's fields: `(last_ns, start)`.
    pub fn to_wire(self) -> (Option<u64>, Option<String>) {
        match self {
            Window::Last(ns) => (Some(ns), None),
            Window::Since(ns) => (None, Some(rfc3339(ns))),
        }
    }

    /// The wall-clock time (ns since the epoch) the window starts at, at boot time `now_ns`.
    pub fn realtime_ns(self, clock: &WallClock, now_ns: u64) -> i64 {
        match self {
            Window::Last(ns) => clock
                .realtime_ns(now_ns)
                .saturating_sub(i64::try_from(ns).unwrap_or(i64::MAX)),
            Window::Since(real) => real,
        }
    }

    /// The boot-time ns the window starts at, on a host whose clock is `clock`, at `now_ns`
    /// (0 for a time before boot); `Err` for a start in the future.
    pub fn start_ns(self, clock: &WallClock, now_ns: u64) -> Result<u64, String> {
        match self {
            Window::Last(ns) => Ok(now_ns.saturating_sub(ns)),
            Window::Since(real) => {
                let boot = i128::from(real) - i128::from(clock.realtime_ns(0));
                let boot = u64::try_from(boot.max(0)).unwrap_or(u64::MAX);
                if boot > now_ns {
                    return Err(format!(
                        "the start {} is in the future (the daemon's clock says {})",
                        rfc3339(real),
                        clock.at(now_ns).to_rfc3339()
                    ));
                }
                Ok(boot)
            }
        }
    }
}

/// How long a history of `slots` slots of `slot_ns` reaches back, for notes: "24h00m".
pub fn reach(slot_ns: u64, slots: u64) -> String {
    human(slot_ns.saturating_mul(slots))
}
