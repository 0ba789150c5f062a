//! The forecasts from synthetic steps: TIME_WAIT buckets and a destination's local ports, each
//! with its numbers, "not enough data" when too few lifetimes ended, and what reuse or pooling
//! would need.
use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::{
    model::{CloseKind, End, Note, Role, Service, Step, Tuple},
    service::doctor::findings::Severity,
};

const DEST: &str = "10.0.0.5";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn step(sk: u64, ts_ns: u64, lport: u16, (from, to): (TcpState, TcpState)) -> Step {
    Step {
        ts_ns,
        sk,
        tuple: Tuple::new(ip("10.0.0.1"), lport, ip(DEST), 5432),
        netns: 7,
        owner: Owner {
            pid: 300,
            comm: "app".into(),
            cgroup_id: 0,
        },
        from,
        to,
        dwell_ns: None,
        note: None,
        end: None,
    }
}

/// Records `n` connections towards DEST:5432, one every `every_ns` from `t0`, each living
/// `life_ns`, closed first by this side; `tw_ends` earlier TIME_WAITs of `tw_ns` end meanwhile.
fn churn(t: &mut Turnover, n: u64, every_ns: u64, life_ns: u64, (tw_ends, tw_ns): (u64, u64)) {
    use TcpState::*;
    for k in 0..n {
        let (at, port) = (k * every_ns, 40000 + k as u16);
        t.record(&step(k, at, port, (Close, SynSent)));
        t.record(&closed_first(k, at + life_ns, port));
    }
    for k in 0..tw_ends {
        let mut end = step(1000 + k, k * every_ns, 41000 + k as u16, (TimeWait, Close));
        end.dwell_ns = Some(tw_ns);
        end.note = Some(Note::Expired);
        t.record(&end);
    }
}

/// The end of connection `sk` at `ts_ns`: this side closed first and keeps a TIME_WAIT.
fn closed_first(sk: u64, ts_ns: u64, lport: u16) -> Step {
    let mut end = step(sk, ts_ns, lport, (TcpState::FinWait2, TcpState::Close));
    end.end = Some(End {
        kind: CloseKind::LocalFirst,
        role: Role::Client,
        service: Service {
            addr: ip(DEST),
            port: 5432,
        },
        timewait: true,
    });
    end
}

/// `n` client sockets towards DEST:5432 from ports 40000.., all in TIME_WAIT.
fn ports_in_use(n: u16) -> Snapshot {
    let socks = (0..n)
        .map(|p| sock(TcpState::TimeWait, "10.0.0.1", 40000 + p, DEST, 5432))
        .collect();
    snapshot(S, socks)
}

fn forecast(sysctls: &Sysctls, t: &Turnover, before: u16, now: u16) -> Vec<Finding> {
    let c = counters(&[]);
    let (first, last) = (ports_in_use(before), ports_in_use(now));
    measured_window(sysctls, (&c, &c), (&first, &last), t, 10.0, &[], &[])
}

#[test]
fn a_destination_that_runs_out_of_local_ports_is_critical_with_its_time() {
    let sysctls = stock_with(&[(sysctl::PORT_RANGE, "40000 40099"), (sysctl::TW_REUSE, "0")]);
    // 5 connects/s of 10 ms, each port then 60 s in TIME_WAIT: 300 ports needed of 100.
    let mut t = Turnover::default();
    churn(&mut t, 50, S / 5, S / 100, (30, 60 * S));
    // From 30 to 50 ports in 10 s: 2/s, so the other 50 go in 25 s.
    let found = forecast(&sysctls, &t, 30, 50);
    let f = only(&found, "ports-forecast");
    assert_eq!(f.severity, Severity::Critical);
    let e = |k| f.evidence.get(k).cloned().unwrap();
    assert_eq!(e("destination"), json!("10.0.0.5:5432"));
    assert_eq!(e("process"), json!("app (300)"));
    assert_eq!(e("connects_per_sec"), json!(5.0));
    assert_eq!(e("connection_life_secs"), json!(0.01));
    assert_eq!(e("time_wait_share"), json!(1.0));
    assert_eq!(e("time_wait_secs"), json!(60.0));
    assert_eq!(e("time_wait_measured_for"), json!("destination"));
    assert_eq!(e("steady_ports"), json!(300.0));
    assert_eq!(e("range_size"), json!(100));
    assert_eq!(e("outlook"), json!("in"));
    assert_eq!(e("runs_out_in_secs"), json!(25.0));
    // tcp_tw_reuse would hold a port about 1 s: 5 ports. Pooling: one connection.
    assert_eq!(e("steady_with_tw_reuse"), json!(5.0));
    assert_eq!(e("steady_with_pooling"), json!(1.0));
    assert!(
        f.title.contains("runs out of local ports in about 25"),
        "{}",
        f.title
    );
    assert!(
        f.advice.contains("about 5 ports, within the range"),
        "{}",
        f.advice
    );

    // Reuse already on for it (loopback-only 2 does not cover 10.0.0.5; 1 does).
    let on = stock_with(&[(sysctl::PORT_RANGE, "40000 40099"), (sysctl::TW_REUSE, "1")]);
    let found = forecast(&on, &t, 30, 50);
    let f = only(&found, "ports-forecast");
    assert_eq!(f.evidence.get("steady_with_tw_reuse"), Some(&json!(null)));
    assert!(f.advice.contains("already on"), "{}", f.advice);

    // The range already used up: now.
    let found = forecast(&sysctls, &t, 90, 100);
    let f = only(&found, "ports-forecast");
    assert_eq!(f.evidence.get("runs_out_in_secs"), Some(&json!(0.0)));
}

#[test]
fn a_port_forecast_needs_measured_lifetimes() {
    let sysctls = stock_with(&[(sysctl::PORT_RANGE, "40000 40099")]);
    // Only 5 TIME_WAITs ended: no lifetime, no forecast, and it says so.
    let mut t = Turnover::default();
    churn(&mut t, 50, S / 5, S / 100, (5, 60 * S));
    let found = forecast(&sysctls, &t, 30, 50);
    let f = only(&found, "ports-forecast");
    assert_eq!(f.severity, Severity::Notice);
    assert!(f.title.contains("not enough data"), "{}", f.title);
    assert!(
        f.title.contains("50 connection lives and 5 TIME_WAIT"),
        "{}",
        f.title
    );
    assert_eq!(f.evidence.get("steady_ports"), Some(&json!(null)));
    assert_eq!(f.evidence.get("runs_out_in_secs"), Some(&json!(null)));
    // Few connects to few ports: not even that.
    let mut t = Turnover::default();
    churn(&mut t, 10, S, S / 100, (5, 60 * S));
    assert!(!ids(&forecast(&sysctls, &t, 1, 5)).contains(&"ports-forecast"));
}

#[test]
fn a_destination_whose_steady_need_fits_is_a_warning_above_half_the_range() {
    let sysctls = stock_with(&[(sysctl::PORT_RANGE, "40000 40099")]);
    // 2 connects/s x 30 s: 60 ports of 100 at most.
    let mut t = Turnover::default();
    churn(&mut t, 20, S / 2, S / 100, (30, 30 * S));
    let found = forecast(&sysctls, &t, 30, 40);
    let f = only(&found, "ports-forecast");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence.get("outlook"), Some(&json!("fits")));
    assert_eq!(f.evidence.get("steady_ports"), Some(&json!(60.0)));
    assert!(f.title.contains("fit"), "{}", f.title);
}

#[test]
fn the_timewait_table_overflow_is_forecast_from_the_measured_lifetime() {
    let sysctls = stock_with(&[(sysctl::MAX_TW_BUCKETS, "300")]);
    // 80 timewaits in 10 s (8/s); 30 TIME_WAITs ended after 60 s: 480 at once, over 300.
    let mut t = Turnover::default();
    churn(&mut t, 80, S / 8, S / 100, (30, 60 * S));
    let c = counters(&[]);
    let (first, last) = (ports_in_use(180), ports_in_use(230));
    let found = measured_window(&sysctls, (&c, &c), (&first, &last), &t, 10.0, &[], &[]);
    let f = only(&found, "timewait-forecast");
    assert_eq!(f.severity, Severity::Critical);
    let e = |k| f.evidence.get(k).cloned().unwrap();
    assert_eq!(e("timewaits_per_sec"), json!(8.0));
    assert_eq!(e("mean_time_wait_secs"), json!(60.0));
    assert_eq!(e("p50_time_wait_secs"), json!(60.0));
    assert_eq!(e("steady_timewaits"), json!(480.0));
    assert_eq!(e("growth_per_sec"), json!(5.0));
    // (300 - 230) / 5 per second.
    assert_eq!(e("runs_out_in_secs"), json!(14.0));
    // Full, 300 / 60 s = 5 slots free a second: 3 of the 8 skip TIME_WAIT.
    assert_eq!(e("overflow_per_sec"), json!(3.0));
    assert!(f.title.contains("overflows in about 14"), "{}", f.title);
    assert!(
        f.advice.contains("about 3.0 connections a second skip"),
        "{}",
        f.advice
    );

    // Too few lifetimes: said, with the rate, no number made up.
    let mut t = Turnover::default();
    churn(&mut t, 80, S / 8, S / 100, (3, 60 * S));
    let found = measured_window(&sysctls, (&c, &c), (&first, &last), &t, 10.0, &[], &[]);
    let f = only(&found, "timewait-forecast");
    assert_eq!(f.severity, Severity::Notice);
    assert!(
        f.title.contains("not enough data (3 TIME_WAIT"),
        "{}",
        f.title
    );
    assert_eq!(f.evidence.get("steady_timewaits"), Some(&json!(null)));

    // Early ends (tcp_tw_reuse) shorten the lifetime: 30 x 1 s, 8/s -> 8 at once: fits.
    let mut t = Turnover::default();
    churn(&mut t, 80, S / 8, S / 100, (30, S));
    let found = measured_window(&sysctls, (&c, &c), (&first, &last), &t, 10.0, &[], &[]);
    assert!(
        !ids(&found).contains(&"timewait-forecast"),
        "{:?}",
        ids(&found)
    );
}

#[test]
fn live_forecasts_give_the_same_findings_and_short_lines_for_top() {
    use crate::service::doctor::live;
    let sysctls = stock_with(&[(sysctl::PORT_RANGE, "40000 40099"), (sysctl::TW_REUSE, "0")]);
    let mut t = Turnover::default();
    churn(&mut t, 50, S / 5, S / 100, (30, 60 * S));
    let (first, mut last) = (ports_in_use(30), ports_in_use(50));
    last.taken_ns = first.taken_ns + 10 * S;
    let f = live::forecast(&first, &last, &t, &sysctls);
    assert_eq!(
        (f.netns, f.measured_ns, f.window_secs),
        (7, 11 * S, Some(10.0))
    );
    assert_eq!(ids(&f.findings), ["ports-forecast"]);
    assert_eq!(
        f.findings[0].evidence.get("runs_out_in_secs"),
        Some(&json!(25.0))
    );
    assert_eq!(
        f.lines(),
        ["local ports to 10.0.0.5:5432 (app (300)): run out in 25.0s (need 300 of 100)"]
    );
    // Not enough data: said so, no number.
    let mut t = Turnover::default();
    churn(&mut t, 50, S / 5, S / 100, (5, 60 * S));
    let f = live::forecast(&first, &last, &t, &sysctls);
    assert_eq!(
        f.lines(),
        [
            "TIME_WAIT buckets: not enough data yet",
            "local ports to 10.0.0.5:5432 (app (300)): not enough data yet"
        ]
    );
    // The window's next measurement starts afresh but keeps connections awaiting their end.
    let mut t = Turnover::default();
    churn(&mut t, 1, S, S, (0, 0));
    t.record(&step(99, 0, 40999, (TcpState::Close, TcpState::SynSent)));
    let done = t.next_window();
    assert_eq!(done.destinations(7)[0].1.connects, 2);
    assert!(t.destinations(7).is_empty());
    let end = closed_first(99, 3 * S, 40999);
    t.record(&step(
        98,
        2 * S,
        40998,
        (TcpState::Close, TcpState::SynSent),
    ));
    t.record(&end);
    assert_eq!(t.destinations(7)[0].1.life.count, 1);
    assert_eq!(t.destinations(7)[0].1.life.sum_ns, 3 * u128::from(S));
}

#[test]
fn findings_name_the_unit_and_container_of_their_process() {
    use crate::{model::cgroup_names::names_of, service::doctor::name_processes};
    let sysctls = stock_with(&[(sysctl::PORT_RANGE, "40000 40099")]);
    let mut t = Turnover::default();
    churn(&mut t, 50, S / 5, S / 100, (30, 60 * S));
    let mut found = forecast(&sysctls, &t, 30, 50);
    name_processes(&mut found, |pid| {
        assert_eq!(pid, 300);
        names_of("/system.slice/app.service")
    });
    let f = only(&found, "ports-forecast");
    let keys: Vec<&str> = f.evidence.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[..4], ["destination", "process", "unit", "pid"]);
    assert_eq!(f.evidence.get("unit"), Some(&json!("app.service")));
    assert_eq!(f.evidence.get("container"), None);
    let lines = crate::service::doctor::live::Forecasts {
        findings: found.clone(),
        ..Default::default()
    }
    .lines();
    assert!(
        lines[0].starts_with("local ports to 10.0.0.5:5432 (app (300) app.service)"),
        "{lines:?}"
    );
}
