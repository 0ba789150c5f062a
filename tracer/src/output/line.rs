//! One line (text or JSON) per state transition.
use std::net::IpAddr;

use serde::Serialize;

use super::{clock::WallClock, duration::human};
use crate::model::{End, Note, Step, TcpState};

/// `127.0.0.1:80`, `[::1]:80`.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn note_text(note: Note) -> &'static str {
    match note {
        Note::TimewaitTakesOver => "timewait socket takes over",
        Note::Expired => "timer expired",
        Note::EndedEarly => "ended early",
        Note::StartNotSeen => "start not seen",
    }
}

/// Column header matching [`text`].
pub fn header() -> String {
    format!(
        "{:<12} {:>7} {:<15} {:<47} {:<26} {}",
        "TIME", "PID", "COMM", "LOCAL -> REMOTE", "OLD -> NEW", "TIME IN OLD"
    )
}

/// `14:03:22.123  4242 nginx  127.0.0.1:8080 -> 127.0.0.1:51234  ESTABLISHED -> FIN_WAIT1  1.23ms`
pub fn text(step: &Step, clock: &WallClock) -> String {
    let when = clock.at(step.ts_ns).format("%H:%M:%S%.3f");
    let comm = if step.owner.pid == 0 {
        "-"
    } else {
        step.owner.comm.as_str()
    };
    let conn = format!(
        "{} -> {}",
        endpoint(step.tuple.local, step.tuple.local_port),
        endpoint(step.tuple.remote, step.tuple.remote_port)
    );
    let change = format!("{} -> {}", step.from, step.to);
    let dwell = step.dwell_ns.map_or_else(|| "-".to_string(), human);
    let mut line = format!(
        "{when:<12} {:>7} {comm:<15} {conn:<47} {change:<26} {dwell}",
        step.owner.pid
    );
    if let Some(note) = step.note {
        line.push_str(&format!(" ({})", note_text(note)));
    }
    if let Some(end) = step.end {
        line.push_str(&format!(" [{}]", end.kind.describe()));
    }
    line
}

#[derive(Serialize)]
struct JsonTransition<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    ts_ns: u64,
    pid: u32,
    comm: &'a str,
    local: String,
    remote: String,
    from: TcpState,
    to: TcpState,
    dwell_ns: Option<u64>,
    note: Option<Note>,
    netns: u32,
    cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<End>,
}

/// One JSON object (no trailing newline) for a transition.
pub fn json(step: &Step, clock: &WallClock) -> String {
    let line = JsonTransition {
        kind: "transition",
        time: clock.at(step.ts_ns).to_rfc3339(),
        ts_ns: step.ts_ns,
        pid: step.owner.pid,
        comm: &step.owner.comm,
        local: endpoint(step.tuple.local, step.tuple.local_port),
        remote: endpoint(step.tuple.remote, step.tuple.remote_port),
        from: step.from,
        to: step.to,
        dwell_ns: step.dwell_ns,
        note: step.note,
        netns: step.netns,
        cgroup_id: step.owner.cgroup_id,
        end: step.end,
    };
    serde_json::to_string(&line).unwrap_or_default()
}
