//! The JSON of `tracer histogram --json`, which is also the daemon's answer to a histogram query.
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::{
    engine::Collector,
    model::TcpState,
    stats::{StateStats, StateSummary},
    view::interval::Interval,
};

/// What `tracer histogram --json` prints (and the daemon answers to a histogram query).
#[derive(Debug, Serialize, Deserialize)]
pub struct HistogramJson {
    #[serde(flatten)]
    pub summary: StateSummary,
    pub collected_ns: u64,
    pub lost: u64,
    /// Sockets dropped from full tables (`--max-sockets`); absent in older daemons' answers.
    #[serde(default)]
    pub evicted: u64,
    /// Transitions inferred to have happened but never seen (README: Reliability); absent in
    /// older daemons' answers.
    #[serde(default)]
    pub gaps: u64,
    /// What a `--window`/`--since` answer covers (only then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// `(highest value of the bucket, count)` for every bucket with a count.
    pub buckets: Vec<(u64, u64)>,
}

impl HistogramJson {
    /// `state`'s durations as collected so far.
    pub fn of(collector: &Collector, state: TcpState) -> HistogramJson {
        HistogramJson::from_stats(
            collector,
            &collector.stats,
            state,
            collector.now_ns().saturating_sub(collector.started_ns),
        )
    }

    /// `state`'s durations in `stats` (collected over `collected_ns`: all of `collector`'s, or
    /// the daemon's over an interval), with the sockets still in it now.
    pub fn from_stats(
        collector: &Collector,
        stats: &StateStats,
        state: TcpState,
        collected_ns: u64,
    ) -> HistogramJson {
        let hist = stats.histogram(state);
        // Once: the lost count is read from the kernel (a syscall per program).
        let counters = collector.counters();
        HistogramJson {
            summary: collector.summary_of(stats, state),
            collected_ns,
            lost: counters.lost,
            evicted: counters.evicted,
            gaps: counters.gaps,
            interval: None,
            buckets: hist
                .iter_recorded()
                .map(|v| {
                    (
                        hist.highest_equivalent(v.value_iterated_to()),
                        v.count_at_value(),
                    )
                })
                .collect(),
        }
    }

    /// The histogram again from its buckets: the same buckets, minimum and maximum, so the same
    /// chart (values within a bucket are equivalent at 3 significant digits).
    pub fn histogram(&self) -> Histogram<u64> {
        let mut hist = Histogram::new(3).expect("3 significant digits are valid");
        for &(value, count) in &self.buckets {
            // Grows to fit; the fallback only clamps a value beyond what any histogram holds.
            if hist.record_n(value.max(1), count).is_err() {
                hist.saturating_record_n(value.max(1), count);
            }
        }
        hist
    }
}
