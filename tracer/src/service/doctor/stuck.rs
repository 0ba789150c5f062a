//! Stuck sockets: CLOSE_WAIT (the application has not called close()), long FIN_WAIT2 (the peer
//! has not closed) and SYN_RECV (half-open handshakes).
//!
//! One snapshot cannot date them: only a TIME_WAIT carries a timer that says when it began. Two
//! snapshots D apart can: a socket in the same state with the same 4-tuple and inode in both has
//! been in that state for at least D (same inode: not a new socket on a reused tuple).
use std::{collections::HashSet, time::Duration};

use serde::Serialize;
use serde_json::{Value, json};

use crate::view::wrap::wrap;
use crate::{
    model::{TcpState, Tuple},
    source::snapshot::Snapshot,
    time::duration::human,
    view::line::endpoint,
};

/// The states a socket can stay in forever (or for minutes) because of someone else.
pub const STATES: [TcpState; 3] = [TcpState::CloseWait, TcpState::FinWait2, TcpState::SynRecv];

/// Default `--stuck` threshold of `tracer doctor`.
pub const DEFAULT_SECS: u64 = 30;

/// Rows a person reads; the rest are counted.
const TEXT_ROWS: usize = 50;

/// One socket that may be (or is proven) stuck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stuck {
    pub state: TcpState,
    pub local: String,
    pub remote: String,
    #[serde(skip)]
    pub tuple: Tuple,
    pub inode: u64,
    /// Holder of the socket; 0 / empty when none (orphans, request sockets, unreadable).
    pub pid: u32,
    pub comm: String,
    /// In this state for at least this long (0: unknown, from one snapshot).
    pub at_least_ns: u64,
}

fn of(s: &crate::source::snapshot::SnapSocket, at_least_ns: u64) -> Stuck {
    let t = &s.tuple;
    let (pid, comm) = s
        .owner
        .as_ref()
        .map_or((0, String::new()), |o| (o.pid, o.comm.to_string()));
    Stuck {
        state: s.state,
        local: endpoint(t.local.to_canonical(), t.local_port),
        remote: endpoint(t.remote.to_canonical(), t.remote_port),
        tuple: *t,
        inode: s.inode,
        pid,
        comm,
        at_least_ns,
    }
}

/// CLOSE_WAIT first (the application's own bug), then by process and address.
fn order(list: &mut [Stuck]) {
    let rank = |s: &Stuck| STATES.iter().position(|&st| st == s.state);
    list.sort_by(|a, b| {
        (rank(a), a.pid, &a.local, &a.remote).cmp(&(rank(b), b.pid, &b.local, &b.remote))
    });
}

/// Every socket of one snapshot in a stuck-prone state, age unknown (at least 0).
pub fn candidates(snap: &Snapshot) -> Vec<Stuck> {
    let mut list: Vec<Stuck> = snap
        .sockets
        .iter()
        .filter(|s| STATES.contains(&s.state))
        .map(|s| of(s, 0))
        .collect();
    order(&mut list);
    list
}

/// Sockets of `last` in a stuck-prone state that were already in it, with the same tuple and
/// inode, in `first`: at least the time between the two snapshots old.
pub fn persisting(first: &Snapshot, last: &Snapshot) -> Vec<Stuck> {
    let before: HashSet<(TcpState, Tuple, u64)> = first
        .sockets
        .iter()
        .filter(|s| STATES.contains(&s.state))
        .map(|s| (s.state, s.tuple, s.inode))
        .collect();
    let elapsed = last.taken_ns.saturating_sub(first.taken_ns);
    let mut list: Vec<Stuck> = last
        .sockets
        .iter()
        .filter(|s| before.contains(&(s.state, s.tuple, s.inode)))
        .map(|s| of(s, elapsed))
        .collect();
    order(&mut list);
    list
}

/// `--stuck` accepts what `--duration` does, and also 0 ("every candidate, however young").
pub fn parse_threshold(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        other => crate::time::duration::parse_duration(other),
    }
}

/// What staying in `state` means, for the person reading.
pub fn meaning(state: TcpState, owned: bool) -> &'static str {
    match (state, owned) {
        (TcpState::CloseWait, _) => "the peer closed; the application has not called close()",
        (TcpState::FinWait2, true) => {
            "this side shut down writing; the peer has not closed its side"
        }
        (TcpState::FinWait2, false) => {
            "orphaned after close(); waits for the peer's FIN at most tcp_fin_timeout"
        }
        (TcpState::SynRecv, _) => "half-open: the client never completed the handshake",
        _ => "",
    }
}

/// A table of stuck sockets: state, process, pid, local, remote, age.
pub fn table(list: &[Stuck]) -> String {
    let mut out = format!(
        "{:<11} {:<16} {:>8} {:<24} {:<24} {:>9}  {}\n",
        "STATE", "PROCESS", "PID", "LOCAL", "REMOTE", "AGE", "MEANING"
    );
    for s in list.iter().take(TEXT_ROWS) {
        let (comm, pid) = if s.pid == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (s.comm.clone(), s.pid.to_string())
        };
        out.push_str(&format!(
            "{:<11} {comm:<16} {pid:>8} {:<24} {:<24} {:>9}  {}\n",
            s.state.name(),
            s.local,
            s.remote,
            format!("≥ {}", age(s.at_least_ns)),
            meaning(s.state, s.pid != 0)
        ));
    }
    if list.len() > TEXT_ROWS {
        out.push_str(&format!(
            "... {} more (--json lists them all)\n",
            list.len() - TEXT_ROWS
        ));
    }
    out
}

/// `0s`, `2.00s`, `1m05s`.
pub fn age(ns: u64) -> String {
    if ns == 0 { "0s".into() } else { human(ns) }
}

/// Counts per state, in [`STATES`] order, of the states present: `3 CLOSE_WAIT, 1 SYN_RECV`.
pub fn counts(list: &[Stuck]) -> String {
    STATES
        .iter()
        .map(|&st| (st, list.iter().filter(|s| s.state == st).count()))
        .filter(|&(_, n)| n > 0)
        .map(|(st, n)| format!("{n} {}", st.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `--stuck` section of `tracer states` (one snapshot): every candidate when the threshold
/// is 0, else only counts and how to prove an age.
pub fn instant_text(snap: &Snapshot, threshold: Duration) -> String {
    let list = candidates(snap);
    if list.is_empty() {
        return "\nstuck sockets: none (no CLOSE_WAIT, FIN_WAIT2 or SYN_RECV socket now)\n".into();
    }
    if threshold.is_zero() {
        let heading = format!(
            "Sockets that may be stuck ({}); one snapshot cannot date them, so each is only \
             known to be ≥ 0s old:",
            counts(&list)
        );
        return format!("\n{}{}", wrap(&heading, ""), table(&list));
    }
    let secs = threshold.as_secs().max(1);
    let text = format!(
        "stuck sockets: {} now, of unknown age: one snapshot only dates TIME_WAIT. `tracer \
         doctor --duration {secs}` lists those still there {secs} s later (so at least that \
         old); `--stuck 0` lists them all now.",
        counts(&list)
    );
    format!("\n{}", wrap(&text, ""))
}

/// The `stuck` member of `tracer states --json`.
pub fn instant_json(snap: &Snapshot, threshold: Duration) -> Value {
    let list = candidates(snap);
    let sockets = if threshold.is_zero() {
        json!(list)
    } else {
        Value::Null
    };
    json!({
        "threshold_secs": threshold.as_secs_f64(),
        "age_known": false,
        "counts": STATES.iter().map(|&st| (st.name().to_string(),
            json!(list.iter().filter(|s| s.state == st).count()))).collect::<serde_json::Map<_, _>>(),
        "sockets": sockets,
    })
}
