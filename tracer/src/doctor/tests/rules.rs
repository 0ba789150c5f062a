//! Every finding rule from synthetic inputs: when it fires, with which numbers, and when not.
use serde_json::json;

use super::*;
use crate::doctor::findings::{FIN_TIMEOUT_MYTH, Severity};

#[test]
fn nothing_wrong_found_on_a_healthy_host() {
    let snap = healthy();
    assert_eq!(instant(&stock(), &counters(&[]), &snap), vec![]);
    // Nor over a window in which nothing moved and no socket stayed.
    let c = counters(&[("TW", 500)]);
    let quiet = vec![CloseRow {
        service: "10.0.0.5:5432".into(),
        role: "client".into(),
        ended: 20,
        local_first: 20,
        timewait: 20,
        ..Default::default()
    }];
    assert_eq!(windowed(&stock(), &c, &c, &snap, &[], &quiet, 30.0), vec![]);
    // An empty namespace.
    assert_eq!(instant(&stock(), &c, &snapshot(S, vec![])), vec![]);
}

fn time_waits(n: u16) -> Vec<SnapSocket> {
    (0..n)
        .map(|p| {
            sock(
                TcpState::TimeWait,
                "127.0.0.1",
                40000 + p,
                "127.0.0.1",
                7100,
            )
        })
        .collect()
}

#[test]
fn timewait_overflow_counter_is_critical_with_its_value() {
    let sysctls = stock_with(&[(sysctl::MAX_TW_BUCKETS, "16")]);
    let snap = snapshot(S, time_waits(16));
    let found = instant(&sysctls, &counters(&[("TCPTimeWaitOverflow", 84)]), &snap);
    let f = only(&found, "timewait-overflow");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.evidence.get("TCPTimeWaitOverflow"), Some(&json!(84)));
    assert_eq!(f.evidence.get("time_wait"), Some(&json!(16)));
    assert_eq!(f.evidence.get(sysctl::MAX_TW_BUCKETS), Some(&json!(16)));
    assert_eq!(f.evidence.get("used_pct"), Some(&json!(100.0)));
    assert!(f.title.contains("84"), "{}", f.title);
    // The folklore fix is refuted, never suggested.
    assert!(f.advice.contains(FIN_TIMEOUT_MYTH));
    // A past overflow alone (TIME_WAIT well under the limit) is still reported, less urgently.
    let found = instant(&stock(), &counters(&[("TCPTimeWaitOverflow", 3)]), &snap);
    assert_eq!(
        only(&found, "timewait-overflow").severity,
        Severity::Warning
    );
}

#[test]
fn timewait_near_the_limit_without_overflow() {
    let sysctls = stock_with(&[(sysctl::MAX_TW_BUCKETS, "100")]);
    let mut socks = time_waits(70);
    // Orphaned FIN_WAIT2s (no inode) share the limit; an owned one does not.
    for p in 0..10 {
        socks.push(sock(
            TcpState::FinWait2,
            "127.0.0.1",
            45000 + p,
            "127.0.0.1",
            7100,
        ));
    }
    socks.push(owned(
        sock(TcpState::FinWait2, "127.0.0.1", 46000, "127.0.0.1", 7100),
        5,
        "app",
    ));
    let f = instant(&sysctls, &counters(&[]), &snapshot(S, socks.clone()));
    let f = only(&f, "timewait-overflow");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("orphaned_fin_wait2"), Some(&json!(10)));
    assert_eq!(f.evidence.get("used_pct"), Some(&json!(80.0)));
    // 79 %: nothing.
    socks.remove(0);
    assert_eq!(
        ids(&instant(&sysctls, &counters(&[]), &snapshot(S, socks))),
        Vec::<&str>::new()
    );
}

#[test]
fn timewait_overflow_over_a_window_tells_now_from_before() {
    let snap = snapshot(S, time_waits(10));
    let before = counters(&[("TCPTimeWaitOverflow", 50)]);
    let after = counters(&[("TCPTimeWaitOverflow", 80)]);
    let f = windowed(&stock(), &before, &after, &snap, &[], &[], 10.0);
    let f = only(&f, "timewait-overflow");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        f.evidence.get("TCPTimeWaitOverflow_delta"),
        Some(&json!(30))
    );
    assert!(f.title.contains("30 during this run"), "{}", f.title);
    let f = windowed(&stock(), &after, &after, &snap, &[], &[], 10.0);
    assert_eq!(only(&f, "timewait-overflow").severity, Severity::Notice);
}

fn server_row(local_first: u64, peer_first: u64, timewait: u64) -> CloseRow {
    CloseRow {
        service: "10.0.0.1:80".into(),
        role: "server".into(),
        process: "nginx (100)".into(),
        pid: 100,
        netns: 7,
        ended: local_first + peer_first,
        local_first,
        peer_first,
        timewait,
        ..Default::default()
    }
}

#[test]
fn a_service_whose_timewait_this_host_causes_by_closing_first() {
    let snap = healthy();
    let c = counters(&[]);
    let rows = vec![
        server_row(950, 50, 950),
        // Peer closes first: its TIME_WAITs are elsewhere.
        CloseRow {
            service: "10.0.0.5:5432".into(),
            role: "client".into(),
            ended: 800,
            peer_first: 800,
            ..Default::default()
        },
    ];
    let found = windowed(&stock(), &c, &c, &snap, &[], &rows, 10.0);
    let f = only(&found, "timewait-local-close");
    assert_eq!(f.evidence.get("service"), Some(&json!("10.0.0.1:80")));
    assert_eq!(f.evidence.get("local_first_pct"), Some(&json!(95.0)));
    assert_eq!(f.evidence.get("timewait"), Some(&json!(950)));
    assert_eq!(f.evidence.get("timewait_per_sec"), Some(&json!(95.0)));
    assert_eq!(f.evidence.get("steady_time_wait"), Some(&json!(5700.0)));
    assert_eq!(f.severity, Severity::Notice);
    assert!(f.advice.contains("keep-alive") && f.advice.contains(FIN_TIMEOUT_MYTH));
    // At a rate that would fill half of tcp_max_tw_buckets, a warning.
    let small = stock_with(&[(sysctl::MAX_TW_BUCKETS, "8000")]);
    let found = windowed(&small, &c, &c, &snap, &[], &rows, 10.0);
    assert_eq!(
        only(&found, "timewait-local-close").severity,
        Severity::Warning
    );
    // Too few TIME_WAITs, or mostly peer-first: nothing. Without a window: nothing.
    for row in [server_row(40, 0, 40), server_row(300, 700, 300)] {
        let f = windowed(&stock(), &c, &c, &snap, &[], &[row], 10.0);
        assert!(!ids(&f).contains(&"timewait-local-close"));
    }
    assert!(!ids(&instant(&stock(), &c, &snap)).contains(&"timewait-local-close"));
}

#[test]
fn connection_ends_of_other_namespaces_are_left_out() {
    let mut other = server_row(950, 50, 950);
    other.netns = 8;
    let m = measured(healthy(), counters(&[]), vec![other]);
    assert_eq!(report(healthy(), Some(m)).findings, vec![]);
    let m = measured(healthy(), counters(&[]), vec![server_row(950, 50, 950)]);
    assert_eq!(
        ids(&report(healthy(), Some(m)).findings),
        ["timewait-local-close"]
    );
}

/// `n` client sockets to `dest:5432`, `tw` of them in TIME_WAIT, from ports 40000.. .
fn clients(n: u16, tw: u16, dest: &str) -> Vec<SnapSocket> {
    (0..n)
        .map(|p| {
            let state = if p < tw {
                TcpState::TimeWait
            } else {
                TcpState::Established
            };
            let s = sock(state, "10.0.0.1", 40000 + p, dest, 5432);
            if p < tw { s } else { owned(s, 300, "app") }
        })
        .collect()
}

#[test]
fn ephemeral_port_pressure_per_destination() {
    let range = stock_with(&[(sysctl::PORT_RANGE, "40000 40099")]);
    let c = counters(&[]);
    let mut socks = clients(60, 10, "10.0.0.5");
    // Another destination can reuse the same local ports: counted apart.
    socks.extend(clients(30, 0, "10.0.0.6"));
    let found = instant(&range, &c, &snapshot(S, socks));
    let f = only(&found, "ephemeral-ports");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("destination"), Some(&json!("10.0.0.5:5432")));
    assert_eq!(f.evidence.get("local_ports"), Some(&json!(60)));
    assert_eq!(f.evidence.get("of_them_time_wait"), Some(&json!(10)));
    assert_eq!(f.evidence.get("range_size"), Some(&json!(100)));
    assert_eq!(f.evidence.get("pid"), Some(&json!(300)));
    // 90 % or more: critical. 50 % or less: nothing.
    let f = instant(&range, &c, &snapshot(S, clients(95, 0, "10.0.0.5")));
    assert_eq!(only(&f, "ephemeral-ports").severity, Severity::Critical);
    assert_eq!(
        ids(&instant(
            &range,
            &c,
            &snapshot(S, clients(50, 0, "10.0.0.5"))
        )),
        Vec::<&str>::new()
    );
    // A server's connections (its port is listened on) are no client port pressure.
    let mut server = vec![sock(TcpState::Listen, "10.0.0.1", 40001, "0.0.0.0", 0)];
    server
        .extend((0..80).map(|p| sock(TcpState::TimeWait, "10.0.0.1", 40001, "10.0.0.9", 1000 + p)));
    assert_eq!(
        ids(&instant(&range, &c, &snapshot(S, server))),
        Vec::<&str>::new()
    );
}

#[test]
fn tw_reuse_is_suggested_carefully_only_when_it_would_help() {
    let c = counters(&[("TWRecycled", 0)]);
    let remote = snapshot(S, clients(80, 70, "10.0.0.5"));
    let local = snapshot(S, clients(80, 70, "127.0.0.1"));
    let with = |reuse: &'static str| {
        stock_with(&[
            (sysctl::PORT_RANGE, "40000 40099"),
            (sysctl::TW_REUSE, reuse),
        ])
    };

    let f = instant(&with("0"), &c, &local);
    let f = only(&f, "tw-reuse");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.advice.contains("tcp_tw_reuse = 2"), "{}", f.advice);
    assert!(
        f.advice.contains("4.12") && f.advice.contains("NAT"),
        "{}",
        f.advice
    );
    assert!(f.advice.starts_with("Prefer reusing connections"));

    let f = instant(&with("0"), &c, &remote);
    assert!(only(&f, "tw-reuse").advice.contains("tcp_tw_reuse = 1"));
    let f = instant(&with("2"), &c, &remote);
    assert!(only(&f, "tw-reuse").advice.contains("tcp_tw_reuse = 1"));
    // Already on for that destination: nothing to suggest.
    assert!(!ids(&instant(&with("2"), &c, &local)).contains(&"tw-reuse"));
    assert!(!ids(&instant(&with("1"), &c, &remote)).contains(&"tw-reuse"));
    // Pressure from ESTABLISHED connections: reuse cannot help.
    let busy = snapshot(S, clients(80, 10, "10.0.0.5"));
    assert!(!ids(&instant(&with("0"), &c, &busy)).contains(&"tw-reuse"));
    // Timestamps off: said, since reuse would do nothing.
    let off = stock_with(&[
        (sysctl::PORT_RANGE, "40000 40099"),
        (sysctl::TW_REUSE, "0"),
        (sysctl::TIMESTAMPS, "0"),
    ]);
    assert!(
        only(&instant(&off, &c, &remote), "tw-reuse")
            .advice
            .contains("tcp_timestamps is 0")
    );
}

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
}

#[test]
fn tw_recycle_still_on_an_old_kernel_is_critical() {
    let on = stock_with(&[(sysctl::TW_RECYCLE, "1")]);
    let found = instant(&on, &counters(&[]), &healthy());
    let f = only(&found, "tw-recycle");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.advice.contains("4.12") && f.advice.contains("NAT"));
    let off = stock_with(&[(sysctl::TW_RECYCLE, "0")]);
    assert_eq!(instant(&off, &counters(&[]), &healthy()), vec![]);
}

#[test]
fn findings_come_most_severe_first() {
    let sysctls = stock_with(&[(sysctl::MAX_TW_BUCKETS, "16"), (sysctl::TW_RECYCLE, "1")]);
    let mut socks = time_waits(16);
    socks.extend(close_waits(3, 9, "app"));
    let c = counters(&[("TCPTimeWaitOverflow", 5), ("ListenOverflows", 1)]);
    let found = instant(&sysctls, &c, &snapshot(S, socks));
    let severities: Vec<Severity> = found.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    assert_eq!(
        ids(&found),
        [
            "tw-recycle",
            "timewait-overflow",
            "close-wait",
            "listen-queue"
        ]
    );
    // No finding anywhere suggests lowering tcp_fin_timeout.
    for f in &found {
        assert!(!f.advice.contains("lower tcp_fin_timeout"), "{}", f.advice);
    }
}
