//! The close-initiator table: per service (or process), how connections ended, and one plain
//! sentence per row saying what the numbers mean.
use crate::{model::CloseKind, stats::closes::CloseRow};

fn percent(n: u64, of: u64) -> u64 {
    (n * 100 + of / 2).checked_div(of).unwrap_or(0)
}

/// The way most of the row's connections ended.
fn dominant(row: &CloseRow) -> CloseKind {
    CloseKind::ALL
        .into_iter()
        .max_by_key(|&k| row.count(k))
        .unwrap_or(CloseKind::LocalFirst)
}

/// One sentence naming what the row means for TIME_WAIT / CLOSE_WAIT.
pub fn explain(row: &CloseRow) -> String {
    let kind = dominant(row);
    let p = percent(row.count(kind), row.ended);
    let svc = &row.service;
    let server = row.role == "server";
    match kind {
        CloseKind::LocalFirst if server => format!(
            "this host closes {p} % of its connections from clients of {svc} itself, so it \
             holds their TIME_WAIT; HTTP keep-alive or pooling on the clients would remove them"
        ),
        CloseKind::LocalFirst => format!(
            "this host closes {p} % of its connections to {svc} first, so it holds their \
             TIME_WAIT (and a local port each for 60 s); keep-alive or a connection pool would \
             remove them"
        ),
        CloseKind::PeerFirst if server => format!(
            "clients of {svc} close {p} % of connections first, so the TIME_WAIT stays on their \
             side; here they pass through CLOSE_WAIT, which lasts as long as this application \
             takes to call close()"
        ),
        CloseKind::PeerFirst => format!(
            "{svc} closes {p} % of connections first, so it holds the TIME_WAIT; this host \
             passes through CLOSE_WAIT until the application calls close()"
        ),
        CloseKind::Simultaneous => {
            format!("both sides close {p} % of connections at once, so both hold a TIME_WAIT")
        }
        CloseKind::RstSent => format!(
            "this host aborts {p} % of connections with RST (SO_LINGER 0, or close() with \
             unread data): no TIME_WAIT, but the peer sees connection resets"
        ),
        CloseKind::RstReceived => format!(
            "the peer aborts {p} % of connections with RST: look at the peer's logs, timeouts \
             or load balancer"
        ),
        CloseKind::ConnectFailed => format!(
            "{p} % of connects to {svc} failed (refused or timed out): is it running and \
             reachable?"
        ),
        CloseKind::HandshakeIncomplete if row.syn_ack_unanswered > 0 => format!(
            "{p} % of handshakes never completed (SYN_RECV ended), {} of them dropped with \
             their SYN-ACKs unanswered: clients that do not answer (a SYN flood, lost ACKs); \
             `tracer doctor` tells a full SYN or accept queue apart",
            row.syn_ack_unanswered
        ),
        CloseKind::HandshakeIncomplete => format!(
            "{p} % of handshakes never completed (SYN_RECV ended): look at the accept backlog, \
             SYN floods or clients giving up"
        ),
        CloseKind::Aborted => format!(
            "{p} % ended with neither FIN nor RST (retransmission timeout or a local error)"
        ),
    }
}

fn cell(n: u64, of: u64) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{n} ({}%)", percent(n, of))
    }
}

pub fn text(rows: &[CloseRow], title: &str) -> String {
    let mut out = format!(
        "{title}\n{:<24} {:<7} {:<20} {:>6} {:>11} {:>11} {:>9} {:>11} {:>11} {:>11} {:>9}\n",
        "SERVICE",
        "ROLE",
        "PROCESS",
        "ENDED",
        "LOCAL-1ST",
        "PEER-1ST",
        "BOTH",
        "RST-SENT",
        "RST-RECV",
        "CONN-FAIL",
        "TIME_WAIT"
    );
    if rows.is_empty() {
        out.push_str("(no connection ended while tracing)\n");
    }
    for r in rows {
        // The unit, container or pod beside the process, when its cgroup says so.
        let process = match r.names.label() {
            names if names.is_empty() => r.process.clone(),
            names => format!("{} {names}", r.process),
        };
        out.push_str(&format!(
            "{:<24} {:<7} {:<20} {:>6} {:>11} {:>11} {:>9} {:>11} {:>11} {:>11} {:>9}\n",
            r.service,
            r.role,
            process,
            r.ended,
            cell(r.local_first, r.ended),
            cell(r.peer_first, r.ended),
            cell(r.simultaneous, r.ended),
            cell(r.rst_sent, r.ended),
            cell(r.rst_received, r.ended),
            cell(r.connect_failed, r.ended),
            r.timewait,
        ));
        out.push_str(&format!("  -> {}\n", explain(r)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, local_first: u64, peer_first: u64) -> CloseRow {
        CloseRow {
            service: "127.0.0.1:8080".into(),
            role: role.into(),
            ended: local_first + peer_first,
            local_first,
            peer_first,
            ..Default::default()
        }
    }

    #[test]
    fn a_server_that_closes_first_is_told_it_holds_time_wait() {
        let s = explain(&row("server", 98, 2));
        assert!(
            s.contains("closes 98 %") && s.contains("holds their TIME_WAIT"),
            "{s}"
        );
        assert!(s.contains("keep-alive"), "{s}");
    }

    #[test]
    fn a_client_whose_server_closes_first_is_told_where_time_wait_is() {
        let s = explain(&row("client", 0, 30));
        assert!(s.starts_with("127.0.0.1:8080 closes 100 %"), "{s}");
    }

    #[test]
    fn unanswered_half_opens_are_named_in_the_sentence() {
        let mut r = row("server", 0, 0);
        (r.ended, r.handshake_incomplete, r.syn_ack_unanswered) = (10, 10, 7);
        let s = explain(&r);
        assert!(s.starts_with("100 % of handshakes never completed"), "{s}");
        assert!(
            s.contains("7 of them dropped with their SYN-ACKs unanswered"),
            "{s}"
        );
        r.syn_ack_unanswered = 0;
        assert!(explain(&r).contains("look at the accept backlog"));
    }

    #[test]
    fn cells_show_count_and_share() {
        assert_eq!(cell(0, 10), "0");
        assert_eq!(cell(5, 10), "5 (50%)");
    }
}
