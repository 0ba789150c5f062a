//! The forecasts of `tracer doctor --duration`, kept up to date while collecting (`tracer run`
//! for its control socket and metrics, `tracer top`): every [`WINDOW`], the lifetimes and rates
//! measured since the last snapshot of this network namespace and a new snapshot give the same
//! findings as doctor's forecasts (TIME_WAIT buckets, local ports per destination).
use std::{path::Path, time::Duration};

use serde::Serialize;

use super::{
    counters::Counters,
    findings::{Finding, Inputs, Period},
    forecasts, ports,
    sysctl::Sysctls,
};
use crate::{
    model::Step,
    source::{
        cgroups::names_of_pid,
        snapshot::{self, Snapshot},
    },
    stats::turnover::Turnover,
};

/// How long each measurement lasts: long enough to see TIME_WAITs of steady traffic end.
pub const WINDOW: Duration = Duration::from_secs(30);

/// The latest forecasts, as the control socket answers them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Forecasts {
    /// The namespace measured (this process's).
    pub netns: u32,
    /// Boot-time ns of the measurement's end (0: none finished yet).
    pub measured_ns: u64,
    pub window_secs: Option<f64>,
    /// The forecast findings, most severe first.
    pub findings: Vec<Finding>,
}

/// Measures window after window.
pub struct LiveForecasts {
    window: Duration,
    turnover: Turnover,
    first: Option<Snapshot>,
    latest: Forecasts,
}

impl LiveForecasts {
    /// Takes the first snapshot now; forecasts come after `window`.
    pub fn start(window: Duration) -> LiveForecasts {
        let first = match snapshot::take() {
            Ok(snap) => Some(snap),
            Err(e) => {
                log::warn!("no forecasts: no snapshot of this namespace's sockets ({e:#})");
                None
            }
        };
        LiveForecasts {
            window,
            turnover: Turnover::default(),
            first,
            latest: Forecasts::default(),
        }
    }

    pub fn record(&mut self, step: &Step) {
        self.turnover.record(step);
    }

    /// `n` TIME_WAITs of this namespace that lasted `ns` and `early` killed early, counted
    /// by kernel aggregation ([`Turnover::time_waits_counted`]).
    pub fn record_time_waits(&mut self, ns: u64, n: u64, early: u64) {
        if let Some(first) = &self.first {
            self.turnover.time_waits_counted(first.netns, ns, n, early);
        }
    }

    pub fn latest(&self) -> &Forecasts {
        &self.latest
    }

    /// At `now_ns` (boot time), once the window has passed: a new snapshot, and forecasts from
    /// what was measured since the last one. Returns whether they were renewed.
    pub fn tick(&mut self, now_ns: u64) -> bool {
        let Some(first) = &self.first else {
            return false;
        };
        if now_ns.saturating_sub(first.taken_ns) < self.window.as_nanos() as u64 {
            return false;
        }
        let last = match snapshot::take() {
            Ok(snap) => snap,
            Err(e) => {
                log::warn!("forecasts not renewed: no snapshot ({e:#})");
                return false;
            }
        };
        let turnover = self.turnover.next_window();
        self.latest = forecast(
            first,
            &last,
            &turnover,
            &Sysctls::read(Path::new("/proc/sys")),
        );
        super::name_processes(&mut self.latest.findings, names_of_pid);
        self.first = Some(last);
        true
    }
}

/// The forecasts of a window from `first` to `last` with `turnover` measured in between.
pub fn forecast(
    first: &Snapshot,
    last: &Snapshot,
    turnover: &Turnover,
    sysctls: &Sysctls,
) -> Forecasts {
    let ms = last.taken_ns.saturating_sub(first.taken_ns) / 1_000_000;
    let secs = ms as f64 / 1e3;
    let counters = Counters::default();
    let inputs = Inputs {
        sysctls,
        counters: &counters,
        snapshot: last,
        stuck: &[],
        stuck_threshold: Duration::ZERO,
        window: Some(Period {
            secs,
            deltas: &[],
            closes: &[],
            first,
            turnover,
        }),
    };
    let in_use = ports::port_use(&inputs);
    let mut findings: Vec<Finding> = forecasts::buckets(&inputs).into_iter().collect();
    findings.extend(forecasts::ports(&inputs, &in_use));
    findings.sort_by_key(|f| f.severity);
    Forecasts {
        netns: last.netns,
        measured_ns: last.taken_ns,
        window_secs: Some(secs),
        findings,
    }
}

impl Forecasts {
    /// One short line per forecast for `tracer top`, most urgent first: what runs out and when,
    /// or that there is not enough data to say.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<(f64, String)> = self
            .findings
            .iter()
            .filter_map(|f| {
                let e = |k: &str| f.evidence.get(k).and_then(serde_json::Value::as_f64);
                let text = |k: &str| f.evidence.get(k).and_then(serde_json::Value::as_str);
                let (what, need, size) = match f.id {
                    "timewait-forecast" => (
                        "TIME_WAIT buckets".to_string(),
                        e("steady_timewaits"),
                        e(super::sysctl::MAX_TW_BUCKETS),
                    ),
                    "ports-forecast" => (
                        format!(
                            "local ports to {} ({}{}{})",
                            text("destination").unwrap_or("-"),
                            text("process").unwrap_or("-"),
                            text("unit").map_or(String::new(), |u| format!(" {u}")),
                            text("container").map_or(String::new(), |c| format!(" container {c}")),
                        ),
                        e("steady_ports"),
                        e("range_size"),
                    ),
                    _ => return None,
                };
                let (Some(need), Some(size)) = (need, size) else {
                    return Some((f64::MAX, format!("{what}: not enough data yet")));
                };
                let when = match (text("outlook"), e("runs_out_in_secs")) {
                    (Some("reached"), _) => "run out now".to_string(),
                    (_, Some(secs)) => {
                        format!(
                            "run out in {}",
                            crate::time::duration::human((secs * 1e9) as u64)
                        )
                    }
                    (Some("not_growing"), _) => "will run out".to_string(),
                    _ => "fit".to_string(),
                };
                let order = e("runs_out_in_secs").unwrap_or(f64::MAX / 2.0);
                Some((
                    order,
                    format!("{what}: {when} (need {need:.0} of {size:.0})"),
                ))
            })
            .collect();
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.into_iter().map(|(_, l)| l).collect()
    }
}
