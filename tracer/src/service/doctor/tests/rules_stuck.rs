//! The rules on sockets that stay, from synthetic inputs: CLOSE_WAIT (one snapshot or proven
//! over two), FIN_WAIT2 held or orphaned, listen-queue overflows and SYN_RECV pile-ups.
use serde_json::json;

use super::*;
use crate::service::doctor::findings::Severity;
use crate::source::snapshot::Age;

#[test]
fn close_wait_from_one_snapshot_names_the_process() {
    let mut socks = healthy().sockets;
    socks.extend(close_waits(5, 4242, "app"));
    let found = instant(&stock(), &counters(&[]), &snapshot(S, socks.clone()));
    let f = only(&found, "close-wait");
    assert_eq!(f.severity, Severity::Notice);
    assert_eq!(f.evidence.get("pid"), Some(&json!(4242)));
    assert_eq!(f.evidence.get("process"), Some(&json!("app")));
    assert_eq!(f.evidence.get("close_wait"), Some(&json!(5)));
    assert_eq!(
        f.evidence.get("age"),
        Some(&json!("unknown (one snapshot)"))
    );
    assert!(
        f.title.contains("app (4242)") && f.title.contains("close()"),
        "{}",
        f.title
    );
    assert!(f.advice.contains("--duration 30"), "{}", f.advice);
    assert!(!f.advice.contains("lower"), "{}", f.advice);
    // Many, and two processes: one finding each, the bigger first.
    socks.extend(close_waits(12, 77, "worker"));
    let found = instant(&stock(), &counters(&[]), &snapshot(S, socks));
    let cw: Vec<&Finding> = found.iter().filter(|f| f.id == "close-wait").collect();
    assert_eq!(cw.len(), 2);
    assert_eq!(cw[0].evidence.get("pid"), Some(&json!(77)));
    assert_eq!(cw[0].severity, Severity::Warning);
}

#[test]
fn close_wait_in_both_snapshots_is_proven_stuck() {
    let first = snapshot(S, close_waits(3, 4242, "app"));
    let mut socks = close_waits(3, 4242, "app");
    // New since the first snapshot: not proven, not listed.
    socks.push(owned(
        sock(TcpState::CloseWait, "10.0.0.1", 8080, "10.0.0.9", 50000),
        4242,
        "app",
    ));
    let last = snapshot(41 * S, socks);
    let stuck = stuck::persisting(&first, &last);
    assert_eq!(stuck.len(), 3);
    assert!(stuck.iter().all(|s| s.at_least_ns == 40 * S));
    let c = counters(&[]);
    let found = windowed(&stock(), &c, &c, &last, &stuck, &[], 40.0);
    let f = only(&found, "close-wait");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("close_wait"), Some(&json!(3)));
    assert_eq!(f.evidence.get("at_least_ns"), Some(&json!(40 * S)));
    assert!(f.title.contains("at least 40.0s"), "{}", f.title);
    // Proven, but younger than --stuck (30 s): a notice.
    let last = snapshot(6 * S, close_waits(3, 4242, "app"));
    let stuck = stuck::persisting(&first, &last);
    let found = windowed(&stock(), &c, &c, &last, &stuck, &[], 5.0);
    assert_eq!(only(&found, "close-wait").severity, Severity::Notice);
}

#[test]
fn fin_wait2_held_by_a_process_or_orphaned_in_numbers() {
    let fw2 = |p: u16| {
        owned(
            sock(TcpState::FinWait2, "10.0.0.1", 42000 + p, "10.0.0.7", 9000),
            55,
            "client",
        )
    };
    let first = snapshot(S, vec![fw2(0), fw2(1)]);
    let last = snapshot(40 * S, vec![fw2(0), fw2(1)]);
    let stuck = stuck::persisting(&first, &last);
    let c = counters(&[]);
    let found = windowed(&stock(), &c, &c, &last, &stuck, &[], 39.0);
    let f = only(&found, "fin-wait2");
    assert_eq!(f.evidence.get("fin_wait2"), Some(&json!(2)));
    assert_eq!(f.evidence.get("pid"), Some(&json!(55)));
    // From one snapshot their age is unknown: no finding.
    assert!(!ids(&instant(&stock(), &c, &last)).contains(&"fin-wait2"));
    // Orphaned FIN_WAIT2 in numbers: the one place tcp_fin_timeout matters.
    let orphans: Vec<SnapSocket> = (0..1000)
        .map(|p| sock(TcpState::FinWait2, "10.0.0.1", 20000 + p, "10.0.0.7", 9000))
        .collect();
    let found = instant(
        &stock_with(&[(sysctl::FIN_TIMEOUT, "30")]),
        &c,
        &snapshot(S, orphans),
    );
    let f = only(&found, "orphaned-fin-wait2");
    assert_eq!(f.evidence.get(sysctl::FIN_TIMEOUT), Some(&json!(30)));
    assert!(f.advice.contains("does not touch TIME_WAIT"));
}

#[test]
fn listen_queue_overflows_and_syn_recv_pile_up() {
    let snap = healthy();
    // Counters since boot only: a notice that says so.
    let c = counters(&[("ListenOverflows", 12), ("ListenDrops", 14)]);
    let found = instant(&stock(), &c, &snap);
    let f = only(&found, "listen-queue");
    assert_eq!(f.severity, Severity::Notice);
    assert_eq!(f.evidence.get("ListenOverflows"), Some(&json!(12)));
    assert_eq!(f.evidence.get("ListenDrops"), Some(&json!(14)));
    assert_eq!(f.evidence.get(sysctl::SOMAXCONN), Some(&json!(4096)));
    assert!(
        f.title.contains("since the namespace started"),
        "{}",
        f.title
    );
    assert!(f.advice.contains("somaxconn (4096)"), "{}", f.advice);
    // Growing during the run: a warning.
    let before = counters(&[("ListenOverflows", 2), ("ListenDrops", 4)]);
    let found = windowed(&stock(), &before, &c, &snap, &[], &[], 10.0);
    let f = only(&found, "listen-queue");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("ListenOverflows_delta"), Some(&json!(10)));
    // A SYN_RECV pile-up with syncookies off.
    let mut socks = snap.sockets.clone();
    socks.extend((0..300).map(|p| sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.1", 1000 + p)));
    let off = stock_with(&[(sysctl::SYNCOOKIES, "0")]);
    let found = instant(
        &off,
        &counters(&[("TCPReqQFullDrop", 40)]),
        &snapshot(S, socks),
    );
    let f = only(&found, "listen-queue");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("syn_recv"), Some(&json!(300)));
    assert_eq!(f.evidence.get("busiest_port"), Some(&json!(80)));
    assert_eq!(f.evidence.get("TCPReqQFullDrop"), Some(&json!(40)));
    assert!(f.advice.contains("tcp_syncookies is 0"), "{}", f.advice);
    assert!(
        f.advice
            .contains("What is happening: the SYN queue is full"),
        "{}",
        f.advice
    );
    assert!(!f.advice.contains("clients do not answer"), "{}", f.advice);
}

#[test]
fn half_opens_past_their_first_retransmit_say_clients_do_not_answer() {
    let aged = |p| {
        let mut s = sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.3", p);
        s.age = Age::AtLeast(3 * S);
        s
    };
    let mut socks: Vec<_> = (0..300)
        .map(|p| sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.1", 1000 + p))
        .collect();
    socks.extend((0..3).map(aged));
    let found = instant(
        &stock(),
        &counters(&[("ListenOverflows", 5)]),
        &snapshot(S, socks),
    );
    let f = only(&found, "listen-queue");
    assert_eq!(f.evidence.get("half_open_unanswered"), Some(&json!(3)));
    assert!(
        f.advice.contains(
            "What is happening: the accept queue is full (ListenOverflows); clients do not \
             answer the SYN-ACK (3 half-open connections past their first SYN-ACK retransmit)."
        ),
        "{}",
        f.advice
    );
}
