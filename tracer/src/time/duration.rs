//! Short human durations: `812ns`, `3.40µs`, `12.5ms`, `60.2s`, `4m05s`, `2h13m`.

use std::{
    fmt::{self, Write},
    time::Duration,
};

/// Formats nanoseconds with three significant digits in the largest fitting unit.
pub fn human(ns: u64) -> String {
    let mut out = String::new();
    let _ = write_human(&mut out, ns);
    out
}

/// [`human`] into an existing buffer: the per-event line path formats without allocating.
pub fn write_human(out: &mut impl Write, ns: u64) -> fmt::Result {
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    let f = ns as f64;
    match ns {
        0..US => write!(out, "{ns}ns"),
        US..MS => sig3(out, f / US as f64, "µs"),
        MS..S => sig3(out, f / MS as f64, "ms"),
        _ if ns < 100 * S => sig3(out, f / S as f64, "s"),
        _ if ns < 3600 * S => {
            let secs = ns / S;
            write!(out, "{}m{:02}s", secs / 60, secs % 60)
        }
        _ => {
            let mins = ns / S / 60;
            write!(out, "{}h{:02}m", mins / 60, mins % 60)
        }
    }
}

fn sig3(out: &mut impl Write, v: f64, unit: &str) -> fmt::Result {
    if v < 10.0 {
        write!(out, "{v:.2}{unit}")
    } else if v < 100.0 {
        write!(out, "{v:.1}{unit}")
    } else {
        write!(out, "{v:.0}{unit}")
    }
}

/// `30`, `30s`, `1500ms`, `2m`, `1h30m`. Zero is refused: it would end before starting.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let parsed = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("'{s}' is not a duration like 30s, 2m or 1h ({e})"))?,
    };
    if parsed.is_zero() {
        return Err("a duration must be longer than zero".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn picks_the_unit_a_person_reads() {
        assert_eq!(human(812), "812ns");
        assert_eq!(human(3_400), "3.40µs");
        assert_eq!(human(12_500_000), "12.5ms");
        assert_eq!(human(60_200_000_000), "60.2s");
        assert_eq!(human(245_000_000_000), "4m05s");
        assert_eq!(
            human(2 * 3600 * 1_000_000_000 + 13 * 60 * 1_000_000_000),
            "2h13m"
        );
    }
}
