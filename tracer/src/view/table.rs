//! The per-state summary table printed every interval and at exit.
use crate::{engine::EventCounts, stats::StateSummary, time::duration::human};

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

pub fn text(rows: &[StateSummary], counters: &EventCounts, title: &str) -> String {
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
        "events: {} received, {} lost{}{}{}\n",
        counters.events,
        counters.lost,
        if counters.undecodable > 0 {
            format!(", {} undecodable", counters.undecodable)
        } else {
            String::new()
        },
        evicted(counters),
        gaps(counters.gaps),
    ));
    out
}

/// Said only when it happened: some durations are missing and the footer says why.
fn gaps(n: u64) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 transition not seen (inferred; README: Reliability)".into(),
        n => format!(", {n} transitions not seen (inferred; README: Reliability)"),
    }
}

/// Said only when it happened, like undecodable events; then it must not be missed: those
/// sockets' durations are missing (NO-START counts them when they next change).
fn evicted(counters: &EventCounts) -> String {
    match counters.evicted {
        0 => String::new(),
        n => format!(
            ", {n} sockets evicted (table full at {}; see --max-sockets)",
            counters.max_sockets
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footer_says_how_many_sockets_were_evicted_only_when_some_were() {
        let mut counters = EventCounts {
            events: 35,
            max_sockets: 1_000_000,
            ..EventCounts::default()
        };
        let last = |c: &EventCounts| text(&[], c, "t").lines().last().map(str::to_owned);
        assert_eq!(
            last(&counters).as_deref(),
            Some("events: 35 received, 0 lost")
        );
        counters.evicted = 12;
        let expected = "events: 35 received, 0 lost, 12 sockets evicted (table full at 1000000; \
                        see --max-sockets)";
        assert_eq!(last(&counters).as_deref(), Some(expected));
    }

    #[test]
    fn the_footer_says_how_many_transitions_were_not_seen_only_when_some_were() {
        let mut counters = EventCounts {
            events: 35,
            ..EventCounts::default()
        };
        let last = |c: &EventCounts| text(&[], c, "t").lines().last().map(str::to_owned);
        assert!(!last(&counters).unwrap().contains("not seen"));
        counters.gaps = 1;
        let one =
            "events: 35 received, 0 lost, 1 transition not seen (inferred; README: Reliability)";
        assert_eq!(last(&counters).as_deref(), Some(one));
        counters.gaps = 3;
        assert!(
            last(&counters)
                .unwrap()
                .ends_with(", 3 transitions not seen (inferred; README: Reliability)")
        );
    }
}
