//! `tracer doctor`: reads the sysctls and kernel counters that matter for TCP connection ends,
//! takes a snapshot of every socket (two, `--duration` apart, with the live close-initiator
//! collector in between) and turns what it sees into findings, each with its numbers.
//!
//! Everything here is pure except [`sysctl::Sysctls::read`] and [`counters::Counters::read`]:
//! the rules run on synthetic inputs in the tests.
pub mod counters;
pub mod findings;
pub mod forecasts;
pub mod live;
pub mod ports;
pub mod report;
pub mod sockets;
pub mod stuck;
pub mod sysctl;

#[cfg(test)]
mod tests;

use std::time::Duration;

use counters::{Counters, Delta};
use findings::{Finding, Inputs, Period};
use stuck::Stuck;
use sysctl::Sysctls;

use crate::{
    model::cgroup_names::CgroupNames,
    source::snapshot::Snapshot,
    stats::{closes::CloseRow, turnover::Turnover},
};

/// What was measured over `--duration`.
pub struct Measured {
    /// The first snapshot (the report's snapshot is the last one).
    pub first: Snapshot,
    pub start: Counters,
    /// Connection ends per service seen by the live collector, every namespace.
    pub closes: Vec<CloseRow>,
    /// Lifetimes and rates for the forecasts, every namespace.
    pub turnover: Turnover,
    /// Events the collector received and lost.
    pub events: u64,
    pub lost: u64,
}

/// Everything `tracer doctor` shows.
pub struct Report {
    pub sysctls: Sysctls,
    pub counters: Counters,
    pub snapshot: Snapshot,
    /// Seconds between the two snapshots, with `--duration`.
    pub window_secs: Option<f64>,
    pub deltas: Vec<Delta>,
    pub events: Option<(u64, u64)>,
    /// Stuck-prone sockets: every one of the snapshot (age unknown) without a window, those in
    /// both snapshots with one.
    pub stuck: Vec<Stuck>,
    pub stuck_threshold: Duration,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Runs every rule on what was read. `measured` is `None` for one instant snapshot.
    pub fn build(
        sysctls: Sysctls,
        counters: Counters,
        snapshot: Snapshot,
        measured: Option<Measured>,
        stuck_threshold: Duration,
    ) -> Report {
        let (window_secs, deltas, stuck, closes, events) = match &measured {
            None => (
                None,
                Vec::new(),
                stuck::candidates(&snapshot),
                Vec::new(),
                None,
            ),
            Some(m) => {
                // To the millisecond: what people read and what rates are divided by.
                let ms = snapshot.taken_ns.saturating_sub(m.first.taken_ns) / 1_000_000;
                let secs = ms as f64 / 1e3;
                let deltas = counters::deltas(&m.start, &counters, secs);
                // The probe sees every namespace; the snapshot only this one.
                let closes = m
                    .closes
                    .iter()
                    .filter(|r| snapshot.netns == 0 || r.netns == snapshot.netns)
                    .cloned()
                    .collect();
                let stuck = stuck::persisting(&m.first, &snapshot);
                (Some(secs), deltas, stuck, closes, Some((m.events, m.lost)))
            }
        };
        let inputs = Inputs {
            sysctls: &sysctls,
            counters: &counters,
            snapshot: &snapshot,
            stuck: &stuck,
            stuck_threshold,
            window: match (window_secs, &measured) {
                (Some(secs), Some(m)) => Some(Period {
                    secs,
                    deltas: &deltas,
                    closes: &closes,
                    first: &m.first,
                    turnover: &m.turnover,
                }),
                _ => None,
            },
        };
        let findings = diagnose(&inputs);
        Report {
            sysctls,
            counters,
            snapshot,
            window_secs,
            deltas,
            events,
            stuck,
            stuck_threshold,
            findings,
        }
    }
}

/// Adds the systemd unit, container and pod of each finding's process (its `pid` evidence),
/// as `names(pid)` reads them, right after its `process`: the names operators use.
pub fn name_processes(findings: &mut [Finding], mut names: impl FnMut(u32) -> CgroupNames) {
    for f in findings {
        let Some(pid) = f.evidence.get("pid").and_then(serde_json::Value::as_u64) else {
            continue;
        };
        let Ok(serde_json::Value::Object(found)) = serde_json::to_value(names(pid as u32)) else {
            continue;
        };
        let e = &mut f.evidence.0;
        let at = e
            .iter()
            .position(|(k, _)| k == "process")
            .map_or(e.len(), |i| i + 1);
        let named: Vec<(String, serde_json::Value)> = found.into_iter().collect();
        e.splice(at..at, named);
    }
}

/// Every finding, most severe first (rule order within a severity).
pub fn diagnose(i: &Inputs) -> Vec<Finding> {
    let ports = ports::port_use(i);
    let mut all = findings::time_wait(i);
    all.extend(forecasts::buckets(i));
    all.extend(forecasts::ports(i, &ports));
    all.extend(ports::port_pressure(i, &ports));
    all.extend(ports::tw_reuse(i, &ports));
    all.extend(sockets::findings(i));
    all.sort_by_key(|f| f.severity);
    all
}
