//! The per-state summary table printed every interval and at exit.
use super::duration::human;
use crate::stats::StateSummary;

/// Counters shown under every table so no loss is silent.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Counters {
    pub events: u64,
    pub lost: u64,
    pub undecodable: u64,
}

fn opt(count: u64, ns: u64) -> String {
    if count == 0 { "-".into() } else { human(ns) }
}

/// The oldest age in the state; `≥` marks a socket that predates the trace.
fn oldest(r: &StateSummary) -> String {
    match (r.in_progress, r.oldest_in_progress_exact) {
        (0, _) => "-".into(),
        (_, true) => human(r.oldest_in_progress_ns),
        (_, false) => format!("≥{}", human(r.oldest_in_progress_ns)),
    }
}

pub fn text(rows: &[StateSummary], counters: &Counters, title: &str) -> String {
    let mut out = format!(
        "{title}\n{:<12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}\n",
        "STATE", "COUNT", "P50", "P90", "P99", "MAX", "IN-STATE", "OLDEST", "NO-START"
    );
    if rows.is_empty() {
        out.push_str("(no TCP state changes seen)\n");
    }
    for r in rows {
        out.push_str(&format!(
            "{:<12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}\n",
            r.state.name(),
            r.count,
            opt(r.count, r.p50_ns),
            opt(r.count, r.p90_ns),
            opt(r.count, r.p99_ns),
            opt(r.count, r.max_ns),
            r.in_progress,
            oldest(r),
            r.start_not_seen,
        ));
    }
    out.push_str(&format!(
        "events: {} received, {} lost{}\n",
        counters.events,
        counters.lost,
        if counters.undecodable > 0 {
            format!(", {} undecodable", counters.undecodable)
        } else {
            String::new()
        }
    ));
    out
}
