//! `--window DURATION` and `--since TIME` of `tracer histogram` / `tracer closes`: they ask the
//! running `tracer run` about a part of its history, so they only make sense where the command
//! would ask it (not with --duration, --from or --no-daemon, which collect anew).
use chrono::{DateTime, Local, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

use super::DaemonArgs;
use crate::service::daemon::{client::Asked, window::Window};

/// A `--since` time, resolved when the command line was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since {
    pub at: DateTime<Local>,
}

const FORMS: &str = "14:00, 14:00:30, 2026-11-28 14:00 or 2026-11-28T14:00:00Z";

/// Today's (or the given date's) local time, the earlier one when a clock change repeats it.
fn local(naive: NaiveDateTime, s: &str) -> Result<DateTime<Local>, String> {
    match Local.from_local_datetime(&naive) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Ok(at),
        LocalResult::None => Err(format!(
            "'{s}' does not exist in the local time zone (the clock skipped it)"
        )),
    }
}

/// Reads `s` as of `now`: RFC 3339, a local date and time, or a local time of today.
pub fn since_at(s: &str, now: DateTime<Local>) -> Result<Since, String> {
    let s = s.trim();
    let at = if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        at.with_timezone(&Local)
    } else if let Some(naive) = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    {
        local(naive, s)?
    } else if let Some(time) = ["%H:%M:%S", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
    {
        let today: NaiveDate = now.date_naive();
        let at = local(today.and_time(time), s)?;
        if at > now {
            return Err(format!(
                "'{s}' today is still to come (it is {} now); for yesterday give the date, \
                 e.g. {} {s}",
                now.format("%H:%M:%S"),
                today.pred_opt().unwrap_or(today)
            ));
        }
        at
    } else {
        return Err(format!("'{s}' is not a time like {FORMS}"));
    };
    if at > now {
        return Err(format!(
            "'{s}' is in the future (it is {} now): --since wants a past time",
            now.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    Ok(Since { at })
}

pub(super) fn parse_since(s: &str) -> Result<Since, String> {
    since_at(s, Local::now())
}

impl DaemonArgs {
    /// The interval asked for, if any, and how it was put (`last 5m`, `since 14:00:00`).
    pub fn asked(&self) -> Option<Asked> {
        if let Some(d) = self.window {
            return Some(Asked {
                window: Window::Last(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                said: format!("last {}", humantime::format_duration(d)),
            });
        }
        let at = self.since?.at;
        let shown = if at.date_naive() == Local::now().date_naive() {
            at.format("%H:%M:%S")
        } else {
            at.format("%Y-%m-%d %H:%M:%S")
        };
        Some(Asked {
            window: Window::Since(at.timestamp_nanos_opt().unwrap_or(0)),
            said: format!("since {shown}"),
        })
    }

    /// `--window`/`--since` next to an option that collects anew: the reason it cannot be.
    pub fn check(&self, duration: bool, from: bool) -> Result<(), String> {
        let asked = match (self.window.is_some(), self.since.is_some()) {
            (true, _) => "--window",
            (_, true) => "--since",
            _ => return Ok(()),
        };
        let other = if duration {
            "--duration"
        } else if from {
            "--from"
        } else if self.no_daemon {
            "--no-daemon"
        } else {
            return Ok(());
        };
        Err(format!(
            "{asked} asks the running `tracer run` (its control socket) about what it has \
             collected, while {other} collects anew: give one or the other"
        ))
    }
}
