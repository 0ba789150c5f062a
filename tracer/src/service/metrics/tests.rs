//! Synthetic steps in, Prometheus text out: the exposition line by line.
use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use hyper::{Method, StatusCode, body::Body, header::CONTENT_TYPE};
use prometheus_client::registry::Registry;

use super::{server, *};
use crate::model::{End, InProgress, Owner, Service, Tuple};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn step(from: TcpState, to: TcpState, dwell_ns: Option<u64>) -> Step {
    Step {
        ts_ns: 1,
        sk: 0xffff_0001,
        tuple: Tuple::new(LO, 8080, LO, 40000),
        netns: 1,
        owner: Owner::default(),
        from,
        to,
        dwell_ns,
        note: None,
        end: None,
    }
}

fn ended(port: u16, role: Role, kind: CloseKind) -> Step {
    let mut s = step(TcpState::LastAck, TcpState::Close, Some(30_000));
    s.end = Some(End {
        kind,
        role,
        service: Service { addr: LO, port },
        timewait: false,
    });
    s
}

fn exposition(record: impl FnOnce(&mut Metrics)) -> String {
    let mut registry = Registry::default();
    let mut metrics = Metrics::new(&mut registry);
    record(&mut metrics);
    server::encode(&registry).unwrap()
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line:?} in:\n{text}"
    );
}

/// The value of the one sample line starting with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> f64 {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .collect();
    assert_eq!(found.len(), 1, "{prefix} in:\n{text}");
    found[0][prefix.len()..].trim().parse().unwrap()
}

#[test]
fn steps_become_transitions_durations_and_ends() {
    let text = exposition(|m| {
        m.record(&step(TcpState::SynRecv, TcpState::Established, Some(4_920)));
        m.record(&step(
            TcpState::Established,
            TcpState::CloseWait,
            Some(229_000),
        ));
        m.record(&step(
            TcpState::Established,
            TcpState::CloseWait,
            Some(3_000_000),
        ));
        // Start not seen: a transition, but no duration.
        m.record(&step(TcpState::Established, TcpState::FinWait1, None));
        m.record(&ended(8080, Role::Server, CloseKind::PeerFirst));
        m.record(&ended(8080, Role::Server, CloseKind::PeerFirst));
        m.record(&ended(8080, Role::Server, CloseKind::RstReceived));
        m.record(&ended(5432, Role::Client, CloseKind::LocalFirst));
    });
    has(&text, "# TYPE tracer_transitions_total counter");
    has(
        &text,
        r#"tracer_transitions_total{from="ESTABLISHED",to="CLOSE_WAIT"} 2"#,
    );
    has(
        &text,
        r#"tracer_transitions_total{from="ESTABLISHED",to="FIN_WAIT1"} 1"#,
    );
    has(
        &text,
        r#"tracer_transitions_total{from="LAST_ACK",to="CLOSE"} 4"#,
    );

    has(&text, "# TYPE tracer_state_duration_seconds histogram");
    let est = r#"tracer_state_duration_seconds_count{state="ESTABLISHED"}"#;
    assert_eq!(
        value(&text, est),
        2.0,
        "the step without a duration is not observed"
    );
    let sum = value(
        &text,
        r#"tracer_state_duration_seconds_sum{state="ESTABLISHED"}"#,
    );
    assert!((sum - 0.003229).abs() < 1e-12, "{sum}");
    // 229 µs is under 500 µs, 3 ms is not.
    let bucket = |state: &str, le: &str| {
        value(
            &text,
            &format!(r#"tracer_state_duration_seconds_bucket{{state="{state}",le="{le}"}}"#),
        )
    };
    assert_eq!(bucket("ESTABLISHED", "0.0002"), 0.0);
    assert_eq!(bucket("ESTABLISHED", "0.0005"), 1.0);
    assert_eq!(bucket("ESTABLISHED", "0.005"), 2.0);
    assert_eq!(bucket("ESTABLISHED", "+Inf"), 2.0);
    assert_eq!(bucket("SYN_RECV", "5e-06"), 1.0);
    assert_eq!(bucket("SYN_RECV", "2e-06"), 0.0);
    assert_eq!(bucket("LAST_ACK", "120"), 4.0);

    has(&text, "# TYPE tracer_connection_ends_total counter");
    has(
        &text,
        r#"tracer_connection_ends_total{service="127.0.0.1:8080",role="server",initiator="peer_first"} 2"#,
    );
    has(
        &text,
        r#"tracer_connection_ends_total{service="127.0.0.1:8080",role="server",initiator="rst_received"} 1"#,
    );
    has(
        &text,
        r#"tracer_connection_ends_total{service="127.0.0.1:5432",role="client",initiator="local_first"} 1"#,
    );
}

#[test]
fn buckets_span_a_microsecond_to_two_minutes_log_spaced() {
    assert_eq!(DURATION_BUCKETS[0], 1e-6);
    assert_eq!(*DURATION_BUCKETS.last().unwrap(), 120.0);
    for pair in DURATION_BUCKETS.windows(2) {
        let ratio = pair[1] / pair[0];
        assert!((1.19..=2.51).contains(&ratio), "{pair:?}");
    }
    let text = exposition(|m| m.record(&step(TcpState::TimeWait, TcpState::Close, Some(1))));
    let buckets = text
        .lines()
        .filter(|l| l.starts_with("tracer_state_duration_seconds_bucket{"))
        .count();
    assert_eq!(buckets, DURATION_BUCKETS.len() + 1, "and +Inf");
}

#[test]
fn services_past_the_limit_are_counted_as_other() {
    let text = exposition(|m| {
        for port in 1..=(MAX_SERVICES as u16 + 30) {
            m.record(&ended(port, Role::Server, CloseKind::LocalFirst));
        }
        // An admitted service keeps its own series after the limit is reached.
        m.record(&ended(1, Role::Server, CloseKind::LocalFirst));
        assert_eq!(m.services().folded(), 30);
    });
    let ends: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tracer_connection_ends_total{"))
        .collect();
    assert_eq!(ends.len(), MAX_SERVICES + 1, "{text}");
    has(
        &text,
        r#"tracer_connection_ends_total{service="other",role="server",initiator="local_first"} 30"#,
    );
    has(
        &text,
        r#"tracer_connection_ends_total{service="127.0.0.1:1",role="server",initiator="local_first"} 2"#,
    );
    let total: f64 = ends
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, MAX_SERVICES as f64 + 31.0, "nothing is dropped");
}

#[test]
fn gauges_and_event_counters_follow_refreshes() {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let before = server::encode(&registry).unwrap();
    has(&before, r#"tracer_sockets_in_state{state="TIME_WAIT"} 0"#);
    has(&before, r#"tracer_sockets_in_state{state="CLOSE_WAIT"} 0"#);
    has(&before, "tracer_tracked_sockets 0");
    has(&before, "tracer_events_received_total 0");
    has(&before, "tracer_sockets_evicted_total 0");

    let open = |state, age_ns| InProgress {
        state,
        age_ns,
        tuple: Tuple::new(LO, 1, LO, 2),
        exact: true,
        role: crate::model::Role::Unknown,
        owner: crate::model::Owner::default(),
    };
    let in_progress = [
        open(TcpState::TimeWait, 5),
        open(TcpState::TimeWait, 7),
        open(TcpState::TimeWait, 9),
        open(TcpState::CloseWait, 1),
        open(TcpState::Established, 1),
    ];
    let counters = |events, lost| EventCounts {
        events,
        lost,
        undecodable: 1,
        evicted: 12,
        max_sockets: 1_000_000,
        gaps: 2,
    };
    metrics.refresh(&in_progress, &counters(120, 3));
    metrics.refresh(&in_progress, &counters(250, 3));
    let text = server::encode(&registry).unwrap();
    has(&text, "# TYPE tracer_sockets_in_state gauge");
    has(&text, r#"tracer_sockets_in_state{state="TIME_WAIT"} 3"#);
    has(&text, r#"tracer_sockets_in_state{state="CLOSE_WAIT"} 1"#);
    has(&text, r#"tracer_sockets_in_state{state="ESTABLISHED"} 1"#);
    has(&text, r#"tracer_sockets_in_state{state="LISTEN"} 0"#);
    assert!(!text.contains(r#"state="CLOSE"}"#), "{text}");
    has(&text, "tracer_tracked_sockets 5");
    has(&text, "# TYPE tracer_events_received_total counter");
    has(&text, "tracer_events_received_total 250");
    has(&text, "tracer_events_lost_total 3");
    has(&text, "tracer_events_undecodable_total 1");
    has(&text, "# TYPE tracer_sockets_evicted_total counter");
    has(&text, "tracer_sockets_evicted_total 12");
    has(&text, "# TYPE tracer_transitions_not_seen_total counter");
    has(&text, "tracer_transitions_not_seen_total 2");

    metrics.refresh(&[], &counters(250, 3));
    let text = server::encode(&registry).unwrap();
    has(&text, r#"tracer_sockets_in_state{state="TIME_WAIT"} 0"#);
    has(&text, "tracer_tracked_sockets 0");

    // The same from sockets counted in place.
    let mut open = [crate::model::Open::default(); TcpState::ALL.len()];
    open[TcpState::TimeWait.index()].count = 2;
    metrics.refresh_open(&open, &counters(260, 3));
    let text = server::encode(&registry).unwrap();
    has(&text, r#"tracer_sockets_in_state{state="TIME_WAIT"} 2"#);
    has(&text, "tracer_tracked_sockets 2");
    has(&text, "tracer_events_received_total 260");
}

#[test]
fn http_routes() {
    let mut registry = Registry::default();
    let mut metrics = Metrics::new(&mut registry);
    metrics.record(&ended(80, Role::Server, CloseKind::LocalFirst));
    let ok = server::route(&Method::GET, "/metrics", &registry);
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(ok.body().size_hint().exact().unwrap() > 100);
    assert_eq!(
        server::route(&Method::HEAD, "/metrics", &registry).status(),
        StatusCode::OK
    );
    assert_eq!(
        server::route(&Method::GET, "/", &registry).status(),
        StatusCode::OK
    );
    assert_eq!(
        server::route(&Method::GET, "/nope", &registry).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server::route(&Method::POST, "/metrics", &registry).status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[test]
fn refresh_tick_divides_the_interval() {
    let s = Duration::from_secs;
    assert_eq!(refresh_tick(s(10)), (s(1), 10));
    assert_eq!(refresh_tick(s(1)), (s(1), 1));
    assert_eq!(
        refresh_tick(Duration::from_millis(300)),
        (Duration::from_millis(300), 1)
    );
    assert_eq!(
        refresh_tick(Duration::from_millis(1500)),
        (Duration::from_millis(750), 2)
    );
    for interval in [s(2), s(7), Duration::from_millis(2345), s(3600)] {
        let (tick, per) = refresh_tick(interval);
        assert!(tick <= REFRESH, "{interval:?}");
        let drift = interval - tick * per;
        assert!(drift < Duration::from_nanos(per.into()), "{interval:?}");
    }
}

#[test]
fn forecasts_become_bounded_gauges_replaced_on_each_renewal() {
    use crate::service::doctor::{
        findings::{Evidence, Finding, Severity},
        live::Forecasts,
    };
    use serde_json::json;
    let finding = |id, evidence: Evidence| Finding {
        id,
        severity: Severity::Critical,
        title: String::new(),
        evidence,
        advice: String::new(),
    };
    let ports = finding(
        "ports-forecast",
        Evidence::default()
            .with("destination", "10.0.0.5:5432")
            .with("process", "app (300)")
            .with("unit", "app.service")
            .with("steady_ports", 430.0)
            .with("range_size", 300)
            .with("runs_out_in_secs", 14.3),
    );
    let unsure = finding(
        "timewait-forecast",
        Evidence::default()
            .with("steady_timewaits", json!(null))
            .with("net.ipv4.tcp_max_tw_buckets", 300)
            .with("runs_out_in_secs", json!(null)),
    );
    let forecasts = Forecasts {
        findings: vec![ports, unsure],
        ..Forecasts::default()
    };
    let labels = r#"{limit="local_ports",destination="10.0.0.5:5432",process="app",unit="app.service",container=""}"#;
    let text = exposition(|m| m.refresh_forecasts(&forecasts));
    assert_eq!(
        value(&text, &format!("tracer_forecast_steady_need{labels}")),
        430.0
    );
    assert_eq!(
        value(&text, &format!("tracer_forecast_limit{labels}")),
        300.0
    );
    assert_eq!(
        value(
            &text,
            &format!("tracer_forecast_runs_out_in_seconds{labels}")
        ),
        14.3
    );
    // Not enough data: the limit, but no need and no time made up.
    let tw = r#"{limit="timewait_buckets",destination="",process="",unit="",container=""}"#;
    assert_eq!(value(&text, &format!("tracer_forecast_limit{tw}")), 300.0);
    assert!(
        !text.contains(&format!("tracer_forecast_steady_need{tw}")),
        "{text}"
    );
    // A renewal without them removes their series.
    let text = exposition(|m| {
        m.refresh_forecasts(&forecasts);
        m.refresh_forecasts(&Forecasts::default());
    });
    assert!(!text.contains("tracer_forecast_steady_need{"), "{text}");
}
