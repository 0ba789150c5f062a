//! The TIME_WAIT rules from synthetic inputs: the table overflowing or near its limit, a service
//! filling it by closing first, client ports running out (and when tw_reuse helps), tw_recycle.
use serde_json::json;

use super::*;
use crate::service::doctor::findings::{FIN_TIMEOUT_MYTH, Severity};

pub(super) fn time_waits(n: u16) -> Vec<SnapSocket> {
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
    // No TIME_WAIT lifetime measured: no steady number made up.
    assert_eq!(f.evidence.get("steady_time_wait"), Some(&json!(null)));
    assert_eq!(f.evidence.get("time_wait_ends_measured"), Some(&json!(0)));
    assert_eq!(f.severity, Severity::Notice);
    assert!(f.advice.contains("keep-alive") && f.advice.contains(FIN_TIMEOUT_MYTH));
    // 20 TIME_WAITs of this namespace ended after 42 s: 95/s x 42 s at once.
    let mut t = Turnover::default();
    for k in 0..20 {
        t.record(&crate::model::Step {
            ts_ns: k,
            sk: k,
            tuple: snap.sockets[1].tuple,
            netns: 7,
            owner: Default::default(),
            from: TcpState::TimeWait,
            to: TcpState::Close,
            dwell_ns: Some(42 * S),
            note: Some(crate::model::Note::Expired),
            end: None,
        });
    }
    let measured = |sysctls: &Sysctls| {
        measured_window(sysctls, (&c, &c), (&snap, &snap), &t, 10.0, &[], &rows)
    };
    let found = measured(&stock());
    let f = only(&found, "timewait-local-close");
    assert_eq!(f.evidence.get("steady_time_wait"), Some(&json!(3990.0)));
    assert_eq!(
        f.evidence.get("time_wait_secs_measured"),
        Some(&json!(42.0))
    );
    assert_eq!(f.severity, Severity::Notice);
    // At a rate that would fill half of tcp_max_tw_buckets, a warning.
    let small = stock_with(&[(sysctl::MAX_TW_BUCKETS, "7000")]);
    assert_eq!(
        only(&measured(&small), "timewait-local-close").severity,
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
fn tw_recycle_still_on_an_old_kernel_is_critical() {
    let on = stock_with(&[(sysctl::TW_RECYCLE, "1")]);
    let found = instant(&on, &counters(&[]), &healthy());
    let f = only(&found, "tw-recycle");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.advice.contains("4.12") && f.advice.contains("NAT"));
    let off = stock_with(&[(sysctl::TW_RECYCLE, "0")]);
    assert_eq!(instant(&off, &counters(&[]), &healthy()), vec![]);
}
