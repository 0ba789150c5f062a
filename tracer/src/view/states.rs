//! `tracer states`'s text table and JSON object.
use serde_json::{Map, Value, json};

use crate::{
    model::TcpState,
    source::snapshot::{
        Age,
        summary::{Row, StateCounts, StatesBy, Summary},
    },
    time::{clock::WallClock, duration::human},
};

/// Rows a person reads: the biggest first, the rest summed in one line.
const TEXT_ROWS: usize = 40;

/// `59.2s` for an exact age, `≥ 3.00s` for a lower bound, `unknown` when nothing is known.
pub fn age_text(age: Option<Age>) -> String {
    match age {
        None => "-".into(),
        Some(Age::Exact(ns)) => human(ns),
        Some(Age::AtLeast(0)) => "unknown".into(),
        Some(Age::AtLeast(ns)) => format!("≥ {}", human(ns)),
    }
}

fn partial_note(summary: &Summary) -> Option<String> {
    (summary.unreadable_processes > 0).then(|| {
        format!(
            "owners are partial: the open files of {} processes could not be read (run as root \
             to see every owner)",
            summary.unreadable_processes
        )
    })
}

/// The per-state table, then (unless `--by state`) one row per service or process with a
/// column per state present and the oldest TIME_WAIT of the row.
pub fn text(summary: &Summary, by: StatesBy, clock: &WallClock) -> String {
    let totals = &summary.totals;
    let mut out = format!(
        "TCP sockets at {} (network namespace {}): {}\n",
        clock.at(summary.taken_ns).format("%H:%M:%S"),
        summary.netns,
        totals.total()
    );
    out.push_str(&format!("{:<12} {:>8}  {}\n", "STATE", "COUNT", "OLDEST"));
    for (state, n) in totals.present() {
        let oldest = age_text(totals.oldest(state));
        out.push_str(&format!("{:<12} {n:>8}  {oldest}\n", state.name()));
    }
    if totals.total() == 0 {
        out.push_str("(no TCP sockets)\n");
    }
    let states: Vec<TcpState> = totals.present().map(|(s, _)| s).collect();
    if by != StatesBy::State && !summary.rows.is_empty() {
        out.push_str(&format!(
            "\n{:<28} {:<8} {:<24} {:>7}",
            match by {
                StatesBy::Service => "SERVICE",
                StatesBy::Unit => "UNIT",
                StatesBy::Container => "CONTAINER",
                _ => "PROCESS",
            },
            "ROLE",
            if by == StatesBy::Process {
                "PID"
            } else {
                "PROCESS"
            },
            "TOTAL"
        ));
        for s in &states {
            out.push_str(&format!(" {:>w$}", s.name(), w = s.name().len().max(6)));
        }
        out.push_str(&format!(" {:>10}\n", "OLDEST-TW"));
        for row in summary.rows.iter().take(TEXT_ROWS) {
            out.push_str(&text_row(row, by, &states));
        }
        let rest = &summary.rows[summary.rows.len().min(TEXT_ROWS)..];
        if !rest.is_empty() {
            let sockets: u64 = rest.iter().map(|r| r.states.total()).sum();
            out.push_str(&format!(
                "... {} more rows with {sockets} sockets (--json lists every row)\n",
                rest.len()
            ));
        }
    }
    let no_process = summary.rows.iter().any(|r| r.pid == 0);
    if by == StatesBy::Process && no_process {
        out.push_str(
            "process '-': TIME_WAIT and SYN_RECV sockets belong to no process (the kernel keeps \
             them after close() or before accept()); orphans and unreadable owners show there too\n",
        );
    }
    if totals.present().any(|(s, _)| s != TcpState::TimeWait) {
        out.push_str(
            "ages: TIME_WAIT is dated by its 60 s timer; other states started before the \
             snapshot at an unknown time\n",
        );
    }
    if let Some(note) = partial_note(summary) {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

fn text_row(row: &Row, by: StatesBy, states: &[TcpState]) -> String {
    let (first, third) = match by {
        StatesBy::Process if row.pid == 0 => ("-".to_string(), "-".to_string()),
        StatesBy::Process => match row.names.label() {
            label if label.is_empty() => (row.comm.clone(), row.pid.to_string()),
            label => (row.comm.clone(), format!("{} {label}", row.pid)),
        },
        _ => (row.service.clone(), row.process()),
    };
    let mut line = format!(
        "{first:<28} {:<8} {third:<24} {:>7}",
        row.role.to_string(),
        row.states.total()
    );
    for s in states {
        let n = row.states.count(*s);
        line.push_str(&format!(" {n:>w$}", w = s.name().len().max(6)));
    }
    let tw = row.states.oldest(TcpState::TimeWait);
    line.push_str(&format!(" {:>10}\n", age_text(tw)));
    line
}

/// `{"TIME_WAIT": n, ...}` for the states present, in kernel order.
fn counts_json(states: &StateCounts) -> Value {
    let map: Map<String, Value> = states
        .present()
        .map(|(s, n)| (s.name().to_string(), json!(n)))
        .collect();
    Value::Object(map)
}

/// `{"TIME_WAIT": {"age_ns": n, "exact": true}, "CLOSE_WAIT": {"age_ns": 0, "exact": false}}`:
/// the oldest socket per state; `exact: false` means "at least", never a duration sample.
fn oldest_json(states: &StateCounts) -> Value {
    let map: Map<String, Value> = states
        .present()
        .filter_map(|(s, _)| {
            let age = states.oldest(s)?;
            Some((
                s.name().to_string(),
                json!({"age_ns": age.ns(), "exact": age.is_exact()}),
            ))
        })
        .collect();
    Value::Object(map)
}

/// One JSON object: totals per state, oldest ages, and the rows (empty for `--by state`).
pub fn json(summary: &Summary, by: StatesBy, clock: &WallClock) -> Value {
    let rows: Vec<Value> = summary
        .rows
        .iter()
        .map(|r| {
            let mut row = json!({
                "service": r.service,
                "process": r.process(),
                "role": r.role,
                "pid": r.pid,
                "comm": r.comm,
                "processes": r.processes,
                "total": r.states.total(),
                "states": counts_json(&r.states),
                "oldest": oldest_json(&r.states),
            });
            // `unit`, `container`, `pod`: each only when the owner's cgroup has one.
            if let (Value::Object(row), Ok(Value::Object(names))) =
                (&mut row, serde_json::to_value(&r.names))
            {
                row.extend(names);
            }
            row
        })
        .collect();
    json!({
        "taken_at": clock.at(summary.taken_ns).to_rfc3339(),
        "taken_ns": summary.taken_ns,
        "netns": summary.netns,
        "by": by.name(),
        "total": summary.totals.total(),
        "states": counts_json(&summary.totals),
        "oldest": oldest_json(&summary.totals),
        "owners_partial": summary.unreadable_processes > 0,
        "unreadable_processes": summary.unreadable_processes,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
