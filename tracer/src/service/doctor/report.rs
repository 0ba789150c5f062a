//! The `tracer doctor` report as text for people and as one JSON object.
use serde_json::{Map, Value, json};

use super::{
    Report,
    counters::WATCHED,
    findings::Severity,
    stuck::{counts, table},
    sysctl::meaning,
};
use crate::{
    source::snapshot::summary::{StatesBy, summarize},
    time::clock::WallClock,
    view::wrap::wrap,
};

/// `60` -> 60, `32768 60999` -> "32768 60999", absent -> null.
fn sysctl_value(v: Option<&str>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
    }
}

fn evidence_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(evidence_text)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) => v.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn stuck_heading(r: &Report) -> String {
    match r.window_secs {
        Some(secs) => format!(
            "Stuck sockets: in CLOSE_WAIT, FIN_WAIT2 or SYN_RECV in both snapshots {secs:.1}s \
             apart (so at least that old; --stuck {}s)",
            r.stuck_threshold.as_secs()
        ),
        None => "Sockets that may be stuck (CLOSE_WAIT, FIN_WAIT2, SYN_RECV): one snapshot cannot \
                 date them; `--duration N` lists those still there N seconds later"
            .into(),
    }
}

pub fn text(r: &Report, clock: &WallClock) -> String {
    let totals = summarize(&r.snapshot, StatesBy::State).totals;
    let mut out = format!(
        "tracer doctor: network namespace {} at {}{}\n",
        r.snapshot.netns,
        clock.at(r.snapshot.taken_ns).format("%H:%M:%S"),
        r.window_secs
            .map_or(String::new(), |s| format!(", measured over {s:.1}s"))
    );
    let states: Vec<String> = totals
        .present()
        .map(|(s, n)| format!("{} {n}", s.name()))
        .collect();
    out.push_str(&format!(
        "TCP sockets: {}{}\n",
        totals.total(),
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        }
    ));
    if let Some((events, lost)) = r.events {
        out.push_str(&format!("connection ends: {events} events, {lost} lost\n"));
    }

    out.push_str("\nFindings, most severe first:\n");
    if r.findings.is_empty() {
        out.push_str(
            "  Nothing wrong found: no rule had evidence in the sockets, counters and sysctls \
             below.\n",
        );
    }
    for f in &r.findings {
        let tag = match f.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        };
        out.push_str(&wrap(&format!("[{tag}] {}", f.title), "  "));
        let evidence: Vec<String> = f
            .evidence
            .0
            .iter()
            .map(|(k, v)| format!("{k}={}", evidence_text(v)))
            .collect();
        out.push_str(&wrap(
            &format!("evidence: {}", evidence.join("; ")),
            "      ",
        ));
        out.push_str(&wrap(&format!("advice: {}", f.advice), "      "));
    }

    out.push('\n');
    out.push_str(&wrap(&stuck_heading(r), ""));
    if r.stuck.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&format!("  {}\n", counts(&r.stuck)));
        out.push_str(&table(&r.stuck));
    }

    out.push_str("\nSysctls (this network namespace):\n");
    for (name, value) in r.sysctls.iter() {
        let head = format!("  {name:<30} {:<12} ", value.unwrap_or("absent"));
        let text = wrap(meaning(name, value), &" ".repeat(head.chars().count()));
        out.push_str(&head);
        out.push_str(text.trim_start());
    }
    out.push_str("\nCounters (this network namespace, since it started");
    out.push_str(if r.window_secs.is_some() {
        "; change during the run):\n"
    } else {
        "):\n"
    });
    for (section, name, value) in r.counters.watched() {
        let value = value.map_or("absent".to_string(), |v| v.to_string());
        let moved = r
            .deltas
            .iter()
            .find(|d| d.section == section && d.name == name)
            .map_or(String::new(), |d| match d.per_sec {
                Some(rate) => format!("  +{} ({rate:.1}/s)", d.delta),
                None => format!("  {:+}", d.delta),
            });
        out.push_str(&format!(
            "  {:<30} {value:>12}{moved}\n",
            format!("{section}.{name}")
        ));
    }
    out
}

pub fn json(r: &Report, clock: &WallClock) -> Value {
    let totals = summarize(&r.snapshot, StatesBy::State).totals;
    let sysctls: Map<String, Value> = r
        .sysctls
        .iter()
        .map(|(n, v)| (n.to_string(), sysctl_value(v)))
        .collect();
    let absent: Map<String, Value> = r
        .sysctls
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, v)| (n.to_string(), json!(meaning(n, v))))
        .collect();
    let mut counters = Map::new();
    let mut deltas = Map::new();
    for &(section, name) in &WATCHED {
        let section_map = counters
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        section_map[name] = json!(r.counters.get(section, name));
        if let Some(d) = r
            .deltas
            .iter()
            .find(|d| d.section == section && d.name == name)
        {
            let section_map = deltas
                .entry(section)
                .or_insert_with(|| Value::Object(Map::new()));
            section_map[name] = json!({"delta": d.delta, "per_sec": d.per_sec});
        }
    }
    let states: Map<String, Value> = totals
        .present()
        .map(|(s, n)| (s.name().to_string(), json!(n)))
        .collect();
    json!({
        "taken_at": clock.at(r.snapshot.taken_ns).to_rfc3339(),
        "netns": r.snapshot.netns,
        "window_secs": r.window_secs,
        "sysctls": sysctls,
        "absent_sysctls": absent,
        "counters": counters,
        "deltas": r.window_secs.map(|_| Value::Object(deltas)),
        "events": r.events.map(|(events, lost)| json!({"received": events, "lost": lost})),
        "states": states,
        "stuck": {
            "threshold_secs": r.stuck_threshold.as_secs_f64(),
            "age_known": r.window_secs.is_some(),
            "sockets": r.stuck,
        },
        "findings": r.findings,
    })
}
