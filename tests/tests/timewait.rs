//! TIME_WAIT followed through the timewait socket's timer: its start, an early end by
//! tcp_tw_reuse, and (slow) the kernel's own 60 s expiry, IPv4 and IPv6.
use std::{net::TcpListener, time::Duration};

use socket2::{Domain, SockAddr, Socket, Type};
use tracer::model::{Note, Step, TcpState::*};
use tracer_tests::{Trace, client_closes_first, free_port, take_fin};

/// Waits (at most `timeout`) for the step with `note` of the socket on local port `port`.
async fn noted_step(trace: &mut Trace, port: u16, note: Note, timeout: Duration) -> Step {
    let find = |steps: &[Step]| {
        steps
            .iter()
            .find(|s| s.tuple.local_port == port && s.note == Some(note))
            .cloned()
    };
    let seen = trace.collect_until(timeout, |s| find(s).is_some()).await;
    assert!(seen, "no {note:?} step in {:#?}", trace.steps);
    find(&trace.steps).unwrap()
}

/// A client socket bound to a fixed local port, so a second connection reuses the 4-tuple.
fn connect_from(local: u16, server: &TcpListener) -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SockAddr::from(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        local,
    ))))
    .unwrap();
    s.connect(&SockAddr::from(server.local_addr().unwrap()))
        .expect("connect");
    s
}

#[tokio::test(flavor = "current_thread")]
async fn reusing_the_tuple_ends_time_wait_early() {
    let (sport, cport) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut trace = Trace::attach(&[sport]);
    let server = TcpListener::bind(("127.0.0.1", sport)).unwrap();
    for round in 0..2 {
        let client = connect_from(cport, &server);
        let (mut accepted, _) = server.accept().unwrap();
        drop(client);
        take_fin(&mut accepted);
        std::thread::sleep(Duration::from_millis(20));
        drop(accepted);
        if round == 0 {
            // tcp_tw_reuse (default 2: loopback) lets a connect reuse a TIME_WAIT older than 1 s.
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    let step = noted_step(&mut trace, cport, Note::EndedEarly, Duration::from_secs(5)).await;
    assert_eq!((step.from, step.to), (TimeWait, Close));
    let ms = step.dwell_ns.unwrap() / 1_000_000;
    assert!((1400..2000).contains(&ms), "TIME_WAIT lasted {ms} ms");
    // The second connection's TIME_WAIT is a new life, still going.
    let starts = trace
        .steps
        .iter()
        .filter(|s| s.tuple.local_port == cport && s.to == TimeWait)
        .count();
    assert_eq!(starts, 2, "{:#?}", trace.steps);
}

async fn expires_after_60s(ip: &str) {
    let port = free_port(ip);
    let mut trace = Trace::attach(&[port]);
    let server = TcpListener::bind((ip, port)).unwrap();
    let cport = client_closes_first(&server, Duration::from_millis(10)).port();
    let step = noted_step(&mut trace, cport, Note::Expired, Duration::from_secs(70)).await;
    assert_eq!((step.from, step.to), (TimeWait, Close));
    let secs = step.dwell_ns.unwrap() as f64 / 1e9;
    // 60 s (TCP_TIMEWAIT_LEN) rounded up to the timer wheel's bucket: at 60 s and HZ=250 the
    // bucket is 512 jiffies (2.048 s) wide, so the kernel itself ends TIME_WAIT 60-62.05 s
    // after it began (plus softirq latency).
    assert!((59.5..=62.5).contains(&secs), "TIME_WAIT lasted {secs} s");
}

/// Slow: waits for the kernel's 60 s TIME_WAIT (both families run in parallel).
#[tokio::test(flavor = "current_thread")]
async fn ipv4_time_wait_expires_after_60s() {
    expires_after_60s("127.0.0.1").await;
}

#[tokio::test(flavor = "current_thread")]
async fn ipv6_time_wait_expires_after_60s() {
    expires_after_60s("::1").await;
}

/// A TIME_WAIT that existed before the tracer attached is dated by its timer (from the
/// sock_diag snapshot) and gets an exact duration when the live stream sees it end.
#[tokio::test(flavor = "current_thread")]
async fn a_time_wait_from_before_attach_gets_an_exact_duration() {
    let (sport, cport) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let server = TcpListener::bind(("127.0.0.1", sport)).unwrap();
    let client = connect_from(cport, &server);
    let (accepted, _) = server.accept().unwrap();
    drop(client);
    std::thread::sleep(Duration::from_millis(20));
    drop(accepted);
    let began = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let mut trace = Trace::attach(&[sport]);
    trace.seed_existing(&[sport]);
    std::thread::sleep(Duration::from_millis(900));
    // Reconnecting from the same port (tcp_tw_reuse) kills the old TIME_WAIT about 1.6 s
    // after it began (more when attaching is slow on a loaded machine: measured).
    let again = connect_from(cport, &server);
    let lasted_ms = began.elapsed().as_millis() as u64;
    let step = noted_step(&mut trace, cport, Note::EndedEarly, Duration::from_secs(5)).await;
    drop(again);
    let ms = step.dwell_ns.unwrap() / 1_000_000;
    // The snapshot dates a TIME_WAIT to within its timer's resolution (1 s at worst).
    assert!(
        ms.abs_diff(lasted_ms) < 1_000,
        "TIME_WAIT lasted {ms} ms, expected about {lasted_ms}"
    );
}
