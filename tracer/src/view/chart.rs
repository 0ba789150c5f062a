//! A bar chart of one state's dwell-time distribution, readable at a glance.
use hdrhistogram::Histogram;

use crate::stats::StateSummary;
use crate::time::duration::human;

const MAX_ROWS: usize = 16;
const BAR_WIDTH: f64 = 40.0;

/// Bucket edges from `lo` to `hi`: linear when the spread is narrow (TIME_WAIT's ~60 s),
/// logarithmic when it spans orders of magnitude.
fn edges(lo: u64, hi: u64) -> Vec<u64> {
    if hi <= lo {
        return vec![lo, lo + 1];
    }
    let ratio = hi as f64 / lo.max(1) as f64;
    let rows = if ratio < 4.0 {
        MAX_ROWS.min((hi - lo) as usize).max(1)
    } else {
        (ratio.log2().ceil() as usize).clamp(2, MAX_ROWS)
    };
    let mut edges: Vec<u64> = (0..=rows)
        .map(|i| {
            let t = i as f64 / rows as f64;
            if ratio < 4.0 {
                lo + ((hi - lo) as f64 * t) as u64
            } else {
                (lo.max(1) as f64 * ratio.powf(t)) as u64
            }
        })
        .collect();
    edges.dedup();
    if let Some(last) = edges.last_mut() {
        *last = hi + 1; // the top bucket includes the maximum
    }
    edges
}

pub fn text(summary: &StateSummary, hist: &Histogram<u64>) -> String {
    let state = summary.state.name();
    let mut out = String::new();
    if summary.count == 0 {
        out.push_str(&format!(
            "No socket left {state} while tracing, so there is no completed duration.\n"
        ));
    } else {
        out.push_str(&format!(
            "{state}: {} sockets left the state   min {}  p50 {}  p90 {}  p99 {}  max {}\n\n",
            summary.count,
            human(summary.min_ns),
            human(summary.p50_ns),
            human(summary.p90_ns),
            human(summary.p99_ns),
            human(summary.max_ns),
        ));
        let edges = edges(hist.min(), hist.max());
        let mut counts = vec![0u64; edges.len() - 1];
        for v in hist.iter_recorded() {
            let value = hist
                .highest_equivalent(v.value_iterated_to())
                .min(hist.max());
            let i = edges.partition_point(|&e| e <= value).saturating_sub(1);
            let last = counts.len() - 1;
            counts[i.min(last)] += v.count_at_value();
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        for (i, &n) in counts.iter().enumerate() {
            let bar = "█".repeat(((n as f64 / top as f64) * BAR_WIDTH).round() as usize);
            out.push_str(&format!(
                "  {:>8} .. {:<8} |{:<40}| {n}\n",
                human(edges[i]),
                human(edges[i + 1].saturating_sub(1)),
                bar
            ));
        }
    }
    if summary.in_progress > 0 {
        out.push_str(&format!(
            "\nStill in {state} at the end: {} sockets (oldest {}{} so far), not counted above.\n",
            summary.in_progress,
            if summary.oldest_in_progress_exact {
                ""
            } else {
                "≥ "
            },
            human(summary.oldest_in_progress_ns)
        ));
    }
    if summary.start_not_seen > 0 {
        out.push_str(&format!(
            "{} sockets left {state} whose entry predates the trace: no duration for them.\n",
            summary.start_not_seen
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_spread_uses_linear_buckets_covering_the_range() {
        let e = edges(60_000_000_000, 61_000_000_000);
        assert_eq!(e.first(), Some(&60_000_000_000));
        assert_eq!(e.last(), Some(&61_000_000_001));
        assert_eq!(e.len(), MAX_ROWS + 1);
    }

    #[test]
    fn wide_spread_uses_log_buckets() {
        let e = edges(1_000, 1_000_000_000);
        assert!(e.len() <= MAX_ROWS + 1);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(e.last(), Some(&1_000_000_001));
    }

    #[test]
    fn every_value_lands_in_a_bar() {
        let mut h = Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 3).unwrap();
        for v in [5_000u64, 9_000, 1_000_000, 3_000_000_000] {
            h.record(v).unwrap();
        }
        let stats = crate::stats::StateStats::new();
        let mut summary = stats.summary(crate::model::TcpState::Established, &[]);
        summary.count = 4;
        let chart = text(&summary, &h);
        let total: u64 = chart
            .lines()
            .filter(|l| l.contains('|'))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 4);
    }
}
