//! Rules about sockets that wait on someone: CLOSE_WAIT (an application that does not call
//! close()), FIN_WAIT2 (a peer that does not close), half-open SYN_RECV and full listen queues.
use std::collections::BTreeMap;

use serde_json::json;

use super::{
    counters::delta_of,
    findings::{Evidence, Finding, Inputs, Severity, process},
    stuck::{Stuck, age},
    sysctl,
};
use crate::model::TcpState;

/// CLOSE_WAIT sockets of one process seen in one snapshot from which the finding is a warning
/// (fewer may be momentary: the peer's FIN just arrived).
pub const CLOSE_WAIT_MANY: usize = 10;
/// Orphaned FIN_WAIT2 sockets worth a word about tcp_fin_timeout.
pub const ORPHAN_FIN_WAIT2_MANY: u64 = 1000;
/// SYN_RECV sockets in one snapshot that make a pile-up.
pub const SYN_RECV_MANY: u64 = 256;
/// Processes named per rule.
const TOP: usize = 5;

pub fn findings(i: &Inputs) -> Vec<Finding> {
    let mut all = close_wait(i);
    all.extend(fin_wait2(i));
    all.extend(listen_queue(i));
    all
}

/// Stuck sockets in `state` grouped by holder, most sockets first.
fn by_process(list: &[Stuck], state: TcpState) -> Vec<((u32, String), Vec<&Stuck>)> {
    let mut groups: BTreeMap<(u32, String), Vec<&Stuck>> = BTreeMap::new();
    for s in list.iter().filter(|s| s.state == state) {
        groups.entry((s.pid, s.comm.clone())).or_default().push(s);
    }
    let mut out: Vec<_> = groups.into_iter().collect();
    out.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    out
}

fn examples(list: &[&Stuck]) -> Vec<String> {
    list.iter()
        .take(3)
        .map(|s| format!("{} -> {}", s.local, s.remote))
        .collect()
}

/// CLOSE_WAIT: one finding per holding process. From one snapshot the age is unknown; with a
/// window, only sockets present at both ends count and their age is proven.
fn close_wait(i: &Inputs) -> Vec<Finding> {
    let threshold = i.stuck_threshold.as_nanos() as u64;
    let proven = i.window.is_some();
    by_process(i.stuck, TcpState::CloseWait)
        .into_iter()
        .take(TOP)
        .map(|((pid, comm), socks)| {
            let n = socks.len();
            let at_least = socks.iter().map(|s| s.at_least_ns).min().unwrap_or(0);
            let who = if pid == 0 {
                "a process this user cannot see".to_string()
            } else {
                process(pid, &comm)
            };
            let (severity, title, age_text) = if proven {
                let severity = if at_least >= threshold {
                    Severity::Warning
                } else {
                    Severity::Notice
                };
                let title = format!(
                    "{n} sockets stuck in CLOSE_WAIT for at least {} in {who}: the application \
                     has not called close()",
                    age(at_least)
                );
                (severity, title, format!("≥ {}", age(at_least)))
            } else {
                let severity = if n >= CLOSE_WAIT_MANY {
                    Severity::Warning
                } else {
                    Severity::Notice
                };
                let title = format!(
                    "{n} sockets in CLOSE_WAIT in {who}: the peer closed, the application has \
                     not called close() (yet)"
                );
                (severity, title, "unknown (one snapshot)".to_string())
            };
            let check = if proven {
                String::new()
            } else {
                format!(
                    " One snapshot cannot tell a stuck socket from one whose FIN just arrived: \
                     `tracer doctor --duration {}` lists those still there that much later.",
                    i.stuck_threshold.as_secs().max(1)
                )
            };
            Finding {
                id: "close-wait",
                severity,
                title,
                evidence: Evidence::default()
                    .with("close_wait", n)
                    .with("pid", pid)
                    .with("process", comm.as_str())
                    .with("age", age_text)
                    .with("at_least_ns", at_least)
                    .with("examples", examples(&socks)),
                advice: format!(
                    "The peer sent its FIN and {who} has not called close() on these sockets; \
                     CLOSE_WAIT never times out, so each one leaks a file descriptor and memory \
                     until the process closes it or exits. Look for a path that does not close \
                     after read() returns 0 (EOF) or after an error, or a pool that keeps dead \
                     connections. No sysctl shortens CLOSE_WAIT (tcp_fin_timeout is for \
                     FIN_WAIT2).{check}"
                ),
            }
        })
        .collect()
}

/// Owned FIN_WAIT2 sockets proven old (the peer does not close), and a pile of orphaned ones
/// (the one case tcp_fin_timeout is about).
fn fin_wait2(i: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    let threshold = i.stuck_threshold.as_nanos() as u64;
    if i.window.is_some() {
        for ((pid, comm), socks) in by_process(i.stuck, TcpState::FinWait2)
            .into_iter()
            .filter(|((pid, _), _)| *pid != 0)
            .take(TOP)
        {
            let at_least = socks.iter().map(|s| s.at_least_ns).min().unwrap_or(0);
            if at_least < threshold {
                continue;
            }
            out.push(Finding {
                id: "fin-wait2",
                severity: Severity::Warning,
                title: format!(
                    "{} sockets of {} waited at least {} in FIN_WAIT2 for the peer to close",
                    socks.len(),
                    process(pid, &comm),
                    age(at_least)
                ),
                evidence: Evidence::default()
                    .with("fin_wait2", socks.len())
                    .with("pid", pid)
                    .with("process", comm.as_str())
                    .with("at_least_ns", at_least)
                    .with("examples", examples(&socks)),
                advice: "This side shut down writing and the peer acknowledged it but never \
                         closes its side: the peer application likely leaks CLOSE_WAIT sockets \
                         (run `tracer doctor` there). A FIN_WAIT2 socket still open in a process \
                         has no timeout; tcp_fin_timeout applies only after close()."
                    .into(),
            });
        }
    }
    let orphans = i
        .snapshot
        .sockets
        .iter()
        .filter(|s| s.state == TcpState::FinWait2 && s.inode == 0)
        .count() as u64;
    if orphans >= ORPHAN_FIN_WAIT2_MANY {
        let fin_timeout = i.sysctls.int(sysctl::FIN_TIMEOUT);
        out.push(Finding {
            id: "orphaned-fin-wait2",
            severity: Severity::Notice,
            title: format!("{orphans} orphaned FIN_WAIT2 sockets wait for their peers' FIN"),
            evidence: Evidence::default()
                .with("orphaned_fin_wait2", orphans)
                .with(sysctl::FIN_TIMEOUT, json!(fin_timeout)),
            advice: "These connections were closed here; their peers acknowledged the FIN but \
                     have not sent theirs. tcp_fin_timeout bounds how long each waits (this is \
                     what it does; it does not touch TIME_WAIT), and they count against \
                     tcp_max_tw_buckets. Many of them point at peers that leak CLOSE_WAIT."
                .into(),
        });
    }
    out
}

/// SYN_RECV pile-up, listen queue overflows and drops, half-open sockets proven old.
fn listen_queue(i: &Inputs) -> Option<Finding> {
    let socks = &i.snapshot.sockets;
    let syn_recv = socks
        .iter()
        .filter(|s| s.state == TcpState::SynRecv)
        .count() as u64;
    let mut per_port: BTreeMap<u16, u64> = BTreeMap::new();
    for s in socks.iter().filter(|s| s.state == TcpState::SynRecv) {
        *per_port.entry(s.tuple.local_port).or_default() += 1;
    }
    let top = per_port
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    let c = |name| i.counters.value("TcpExt", name);
    let (overflows, drops) = (c("ListenOverflows"), c("ListenDrops"));
    let d = |name| {
        i.window
            .as_ref()
            .and_then(|w| delta_of(w.deltas, "TcpExt", name))
    };
    let (d_overflows, d_drops) = (d("ListenOverflows"), d("ListenDrops"));
    let half_open_old = i
        .stuck
        .iter()
        .filter(|s| s.state == TcpState::SynRecv && s.at_least_ns > 0)
        .count() as u64;
    // Half-opens past their first SYN-ACK timeout (the snapshot dates a request socket from
    // its retransmits): their clients do not answer the SYN-ACK.
    let unanswered = socks
        .iter()
        .filter(|s| s.state == TcpState::SynRecv && s.age.ns() >= 1_000_000_000)
        .count() as u64;
    let pile = syn_recv >= SYN_RECV_MANY;
    let past = overflows > 0 || drops > 0;
    let now = d_overflows.unwrap_or(0) > 0 || d_drops.unwrap_or(0) > 0;
    if !pile && !past && half_open_old == 0 {
        return None;
    }
    let severity = if pile || now {
        Severity::Warning
    } else {
        Severity::Notice
    };
    let syncookies = i.sysctls.int(sysctl::SYNCOOKIES);
    let somaxconn = i.sysctls.int(sysctl::SOMAXCONN);
    let mut evidence = Evidence::default()
        .with("syn_recv", syn_recv)
        .with("busiest_port", json!(top.map(|t| t.0)))
        .with("busiest_port_syn_recv", json!(top.map(|t| t.1)))
        .with("half_open_in_both_snapshots", half_open_old)
        .with("half_open_unanswered", unanswered)
        .with("ListenOverflows", overflows)
        .with("ListenDrops", drops);
    if i.window.is_some() {
        evidence = evidence
            .with("ListenOverflows_delta", json!(d_overflows))
            .with("ListenDrops_delta", json!(d_drops));
    }
    for name in ["TCPReqQFullDrop", "TCPReqQFullDoCookies", "SyncookiesSent"] {
        evidence = evidence.with(name, c(name));
    }
    let evidence = evidence
        .with(sysctl::SOMAXCONN, json!(somaxconn))
        .with(
            sysctl::MAX_SYN_BACKLOG,
            json!(i.sysctls.int(sysctl::MAX_SYN_BACKLOG)),
        )
        .with(sysctl::SYNCOOKIES, json!(syncookies));
    let title = match (pile, past) {
        (true, _) => format!(
            "{syn_recv} half-open connections (SYN_RECV){}",
            top.map_or(String::new(), |(p, n)| format!(", {n} on port {p}"))
        ),
        (false, true) => format!(
            "listen queues overflowed: ListenOverflows {overflows}, ListenDrops {drops}{}",
            match (d_overflows, d_drops) {
                (Some(a), Some(b)) => format!(" (+{a}, +{b} during this run)"),
                _ => " (since the namespace started)".into(),
            }
        ),
        (false, false) => format!("{half_open_old} half-open connections lasted the whole run"),
    };
    let mut advice = Vec::new();
    let grew = |name| d(name).unwrap_or_else(|| c(name));
    let syn_queue_full = grew("TCPReqQFullDrop") + grew("TCPReqQFullDoCookies") > 0;
    let accept_queue_full = d_overflows.unwrap_or(overflows) > 0;
    let happening: Vec<String> = [
        syn_queue_full
            .then(|| "the SYN queue is full (TCPReqQFullDrop, TCPReqQFullDoCookies)".into()),
        accept_queue_full.then(|| "the accept queue is full (ListenOverflows)".into()),
        (unanswered > 0).then(|| {
            format!(
                "clients do not answer the SYN-ACK ({unanswered} half-open connections past \
                 their first SYN-ACK retransmit)"
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !happening.is_empty() {
        advice.push(format!("What is happening: {}.", happening.join("; ")));
    }
    if past {
        advice.push(format!(
            "ListenOverflows counts connections dropped because a listener's accept queue was \
             full (ListenDrops counts those and other drops): the application does not accept() \
             fast enough, or asked listen() for a small backlog. The backlog is capped by \
             net.core.somaxconn ({}): raise the application's backlog (e.g. nginx `listen ... \
             backlog=N`) and somaxconn together, and find why accept() lags.",
            somaxconn.map_or("absent".into(), |v| v.to_string())
        ));
    }
    if pile || half_open_old > 0 || c("TCPReqQFullDrop") > 0 {
        advice.push(
            "SYN_RECV sockets are handshakes whose final ACK has not arrived: a SYN flood, or \
             clients whose ACKs are lost. Once a listener's SYN queue (its backlog) is full the \
             kernel answers with SYN cookies if tcp_syncookies is 1 (SyncookiesSent, \
             TCPReqQFullDoCookies) and drops SYNs otherwise (TCPReqQFullDrop)."
                .to_string(),
        );
    }
    if syncookies == Some(0) {
        advice.push(
            "tcp_syncookies is 0: set it to 1 so a full SYN queue sends cookies instead of \
             dropping; tcp_max_syn_backlog matters only while cookies are off."
                .into(),
        );
    }
    if i.window.is_none() && past && !pile {
        advice.push(
            "These counters add up since the namespace started: `tracer doctor --duration 60` \
             shows whether they still grow."
                .into(),
        );
    }
    Some(Finding {
        id: "listen-queue",
        severity,
        title,
        evidence,
        advice: advice.join(" "),
    })
}
