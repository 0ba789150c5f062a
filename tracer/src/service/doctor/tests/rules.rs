//! All the finding rules together: nothing on a healthy host, the most severe first. The rules
//! one by one are in rules_timewait.rs (TIME_WAIT and the ports it holds) and rules_stuck.rs
//! (sockets that stay: CLOSE_WAIT, FIN_WAIT2, the listen queue).
use super::{rules_timewait::time_waits, *};
use crate::service::doctor::findings::Severity;

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
