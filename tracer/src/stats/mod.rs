//! Per-state dwell-time histograms (hdrhistogram, nanoseconds, 3 significant digits).
pub mod closes;
pub mod forecast;
pub mod turnover;
pub mod window;

#[cfg(test)]
mod tests;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::model::{InProgress, Note, Open, Step, TcpState};

/// Longest dwell a histogram can hold exactly: 30 days. Longer values are clamped, not dropped.
pub(crate) const MAX_TRACKABLE_NS: u64 = 30 * 24 * 3600 * 1_000_000_000;

/// Time spent in each state, one histogram per state.
pub struct StateStats {
    histograms: Vec<Histogram<u64>>,
    start_not_seen: [u64; 11],
}

impl Default for StateStats {
    fn default() -> Self {
        Self::new()
    }
}

/// One state's numbers, as the summary table and `--json` show them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateSummary {
    pub state: TcpState,
    /// Sockets that left the state (with a known entry time) — the histogram's count.
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// Sockets still in the state at the time of the summary, and the oldest one's age so far.
    pub in_progress: u64,
    pub oldest_in_progress_ns: u64,
    /// False when the oldest socket predates the trace: its age is then "at least".
    pub oldest_in_progress_exact: bool,
    /// Sockets that left the state but whose entry was not seen: no duration for them.
    pub start_not_seen: u64,
}

impl StateStats {
    pub fn new() -> Self {
        let histograms = TcpState::ALL
            .iter()
            .map(|_| {
                Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
                    .expect("constant histogram bounds are valid")
            })
            .collect();
        StateStats {
            histograms,
            start_not_seen: [0; 11],
        }
    }

    /// Statistics made elsewhere (merged from time slots): one histogram per state, in
    /// [`TcpState::ALL`] order, and the states' `start_not_seen` counts.
    pub fn from_parts(histograms: Vec<Histogram<u64>>, start_not_seen: [u64; 11]) -> Self {
        debug_assert_eq!(histograms.len(), TcpState::ALL.len());
        StateStats {
            histograms,
            start_not_seen,
        }
    }

    pub fn record(&mut self, step: &Step) {
        let i = step.from.index();
        match step.dwell_ns {
            Some(ns) => self.histograms[i].saturating_record(ns.clamp(1, MAX_TRACKABLE_NS)),
            None if step.note == Some(Note::StartNotSeen) => self.start_not_seen[i] += 1,
            None => {}
        }
    }

    /// Counts `n` sockets that spent `ns` in `state`.
    pub fn record_dwell(&mut self, state: TcpState, ns: u64, n: u64) {
        self.histograms[state.index()].saturating_record_n(ns.clamp(1, MAX_TRACKABLE_NS), n);
    }

    pub fn histogram(&self, state: TcpState) -> &Histogram<u64> {
        &self.histograms[state.index()]
    }

    /// One summary per state that saw any activity, in the kernel's state order.
    pub fn summaries(&self, in_progress: &[InProgress]) -> Vec<StateSummary> {
        TcpState::ALL
            .into_iter()
            .map(|state| self.summary(state, in_progress))
            .filter(|s| s.count + s.in_progress + s.start_not_seen > 0)
            .collect()
    }

    pub fn summary(&self, state: TcpState, in_progress: &[InProgress]) -> StateSummary {
        let h = self.histogram(state);
        let open: Vec<&InProgress> = in_progress.iter().filter(|p| p.state == state).collect();
        let oldest = open.iter().max_by_key(|p| (p.age_ns, !p.exact));
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        StateSummary {
            state,
            count: h.len(),
            min_ns: if h.is_empty() { 0 } else { h.min() },
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            max_ns: if h.is_empty() { 0 } else { h.max() },
            in_progress: open.len() as u64,
            oldest_in_progress_ns: oldest.map_or(0, |p| p.age_ns),
            oldest_in_progress_exact: oldest.is_none_or(|p| p.exact),
            start_not_seen: self.start_not_seen[state.index()],
        }
    }
}

/// One summary per state that saw any activity, in the kernel's state order, with the sockets
/// still in each state counted in the model's tables ([`crate::model::Model::open_by_state`])
/// rather than copied out of them: a million open sockets would take 130 MiB for a moment.
pub fn summaries(stats: &StateStats, open: &[Open]) -> Vec<StateSummary> {
    TcpState::ALL
        .into_iter()
        .map(|state| summary(stats, state, open))
        .filter(|s| s.count + s.in_progress + s.start_not_seen > 0)
        .collect()
}

/// `state`'s summary in `stats`, with the sockets still in it counted in `open`.
pub fn summary(stats: &StateStats, state: TcpState, open: &[Open]) -> StateSummary {
    let mut summary = stats.summary(state, &[]);
    if let Some(o) = open.get(state.index()) {
        summary.in_progress = o.count;
        summary.oldest_in_progress_ns = o.oldest_ns;
        summary.oldest_in_progress_exact = o.oldest_exact;
    }
    summary
}
