//! The TIME_WAITs of qemu-timewait.sh counted under kernel aggregation (`run --quiet`, chosen
//! path and timer path) against the `run` that sends every transition: the server-side one is
//! followed to its end in the kernel where aggregation works (5.12+).
use anyhow::{Context, Result};
use serde_json::Value;

use super::scenario::between;

/// TIME_WAITs that end during the scenario: the client's two on port 8090 and the server's on
/// 8092 (the namespace's exit kills the last ones).
const MIN_TIME_WAIT_ENDS: u64 = 3;
/// The states whose counts must agree.
const STATES: [&str; 2] = ["TIME_WAIT", "FIN_WAIT2"];
/// Two tracers on one hook read the clock apart (milliseconds under emulation), and the
/// kernel's histograms give a bucket's midpoint (0.4 %).
const MEDIAN_TOLERANCE: f64 = 0.05;
const MEDIAN_SLACK_NS: f64 = 5_000_000.0;

/// What one aggregating `run --quiet` said and counted.
#[derive(Debug, Default)]
pub struct Aggregated {
    /// Its stderr lines about its paths, and its count of timewaits followed in the kernel.
    said: Vec<String>,
    summary: Value,
}

impl Aggregated {
    /// Section BEGIN-TWA-{name}: `SAID: ` lines, then the final summary.
    pub fn parse(out: &str, name: &str) -> Result<Aggregated> {
        let section = between(
            out,
            &format!("BEGIN-TWA-{name}"),
            &format!("END-TWA-{name}"),
        )?;
        let mut a = Aggregated::default();
        for line in section.lines().map(str::trim) {
            match line.strip_prefix("SAID: ") {
                Some(said) => a.said.push(said.to_string()),
                None => {
                    if let Ok(v) = serde_json::from_str::<Value>(line) {
                        a.summary = v;
                    }
                }
            }
        }
        Ok(a)
    }

    /// Timewaits the kernel followed to their end, from its debug line at exit.
    fn followed_in_kernel(&self) -> Option<u64> {
        self.said.iter().find_map(|l| {
            let rest = l.split("kernel aggregation: ").nth(1)?;
            let (n, what) = rest.split_once(' ')?;
            what.starts_with("timewaits followed in the kernel")
                .then(|| n.parse().ok())
                .flatten()
        })
    }

    /// Agrees with `each` (the per-transition run's final summary) on the TIME_WAIT and
    /// FIN_WAIT2 counts, ended and in progress, and medians (within [`MEDIAN_TOLERANCE`] or
    /// [`MEDIAN_SLACK_NS`]), with at least [`MIN_TIME_WAIT_ENDS`] ended, nothing lost, the
    /// TIME_WAIT path its stderr line names starting with `path`, and (when `aggregation` is
    /// expected) a timewait followed in the kernel.
    pub fn ok(&self, each: &Value, aggregation: bool, path: &str) -> bool {
        let same = STATES
            .iter()
            .all(|s| counts(&self.summary, s) == counts(each, s));
        let medians = STATES.iter().all(|s| {
            let (got, want) = (median(&self.summary, s), median(each, s));
            got.abs_diff(want) as f64 <= (want as f64 * MEDIAN_TOLERANCE).max(MEDIAN_SLACK_NS)
        });
        let ended = counts(&self.summary, "TIME_WAIT").0;
        let in_kernel = self.followed_in_kernel().unwrap_or(0) >= 1;
        let on_path = self.said.iter().any(|l| l.starts_with(path));
        same && medians
            && ended >= MIN_TIME_WAIT_ENDS
            && self.summary["lost"] == 0
            && (!aggregation || in_kernel)
            && on_path
    }

    pub fn describe(&self, each: &Value) -> String {
        let show = |v: &Value| {
            STATES
                .iter()
                .map(|s| {
                    let (ended, open) = counts(v, s);
                    format!("{s} {ended} ended, {open} in progress")
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        format!(
            "\"{}\"; {} (lost {}), followed in the kernel to their end: {:?}; one transition at a \
             time: {} (expected the same, at least {MIN_TIME_WAIT_ENDS} TIME_WAITs ended)",
            self.said.first().map_or("", String::as_str),
            show(&self.summary),
            self.summary["lost"],
            self.followed_in_kernel(),
            show(each)
        )
    }
}

/// The per-transition run's final summary, from section BEGIN-TW-{name}.
pub fn each_summary(out: &str, name: &str) -> Result<Value> {
    let section = between(out, &format!("BEGIN-TW-{name}"), &format!("END-TW-{name}"))?;
    section
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v["type"] == "summary" && v["final"] == true)
        .context("no final summary of the per-transition run")
}

/// The median duration of `state` in a summary (0 when none ended).
fn median(summary: &Value, state: &str) -> u64 {
    summary["states"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["state"] == state)
        .and_then(|s| s["p50_ns"].as_u64())
        .unwrap_or(0)
}

/// (ended, in progress) of `state` in a summary.
fn counts(summary: &Value, state: &str) -> (u64, u64) {
    summary["states"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["state"] == state)
        .map_or((0, 0), |s| {
            (
                s["count"].as_u64().unwrap_or(0),
                s["in_progress"].as_u64().unwrap_or(0),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const FENTRY: &str = "TIME_WAIT followed with fentry";
    const FOLLOWED: &str = "debug: kernel aggregation: 1 timewaits followed in the kernel, 0 sent \
                            one event at a time because their bucket was full, 0 whose end was \
                            never seen";

    fn summary(tw: (u64, u64), tw_p50: u64) -> String {
        format!(
            r#"{{"type":"summary","final":true,"lost":0,"states":[{{"state":"FIN_WAIT2","count":4,"in_progress":0,"p50_ns":2000}},{{"state":"TIME_WAIT","count":{},"in_progress":{},"p50_ns":{tw_p50}}}]}}"#,
            tw.0, tw.1
        )
    }

    fn section(said: &str, tw: (u64, u64), tw_p50: u64) -> String {
        format!(
            "BEGIN-TWA-auto\nSAID: TIME_WAIT followed with fentry on x\nSAID: {said}\n{}\nEND-TWA-auto",
            summary(tw, tw_p50)
        )
    }

    #[test]
    fn the_same_counts_with_one_timewait_in_the_kernel_pass() {
        let each: Value = serde_json::from_str(&summary((3, 0), 10 * S)).unwrap();
        let a = Aggregated::parse(&section(FOLLOWED, (3, 0), 10 * S + 1_000), "auto").unwrap();
        assert_eq!(a.followed_in_kernel(), Some(1));
        assert!(a.ok(&each, true, FENTRY), "{}", a.describe(&each));
        let timer = "TIME_WAIT followed through the timer";
        assert!(!a.ok(&each, true, timer), "not on the timer path");
        let fewer = Aggregated::parse(&section(FOLLOWED, (2, 1), 10 * S), "auto").unwrap();
        assert!(!fewer.ok(&each, true, FENTRY));
        let longer = Aggregated::parse(&section(FOLLOWED, (3, 0), 11 * S), "auto").unwrap();
        assert!(!longer.ok(&each, true, FENTRY), "a median 10 % off");
    }

    #[test]
    fn no_timewait_in_the_kernel_fails_only_where_aggregation_is_expected() {
        let each: Value = serde_json::from_str(&summary((3, 0), S)).unwrap();
        let said = "kernel aggregation unavailable";
        let a = Aggregated::parse(&section(said, (3, 0), S), "auto").unwrap();
        assert!(!a.ok(&each, true, FENTRY));
        assert!(a.ok(&each, false, FENTRY));
    }
}
