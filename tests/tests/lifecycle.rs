//! Real programs, real loopback TCP: every transition of a connection is seen, none invented,
//! and durations match the time the test held each state.
use std::{net::TcpListener, time::Duration};

use tracer::model::{Note, TcpState::*};
use tracer_tests::{Trace, client_closes_first, free_port, transitions_at};

async fn held_connection(ip: &str) {
    let port = free_port(ip);
    let mut trace = Trace::attach(&[port]);
    let server = TcpListener::bind((ip, port)).expect("listen");
    let client = client_closes_first(&server, Duration::from_millis(300));
    drop(server);
    let cport = client.port();
    let done = trace
        .collect_until(Duration::from_secs(5), |steps| {
            transitions_at(steps, port).contains(&(Listen, Close))
                && transitions_at(steps, cport).contains(&(FinWait2, TimeWait))
        })
        .await;
    assert!(done, "steps seen: {:#?}", trace.steps);

    // The client's ESTABLISHED lasted the 300 ms the test held it.
    let established = trace
        .steps
        .iter()
        .find(|s| s.tuple.local_port == cport && s.from == Established)
        .expect("client left ESTABLISHED");
    let ms = established.dwell_ns.expect("dwell known") / 1_000_000;
    assert!((300..600).contains(&ms), "ESTABLISHED lasted {ms} ms");

    // Exactly the transitions TCP goes through: none missing, none invented.
    let client_side = transitions_at(&trace.steps, cport);
    assert_eq!(
        client_side,
        vec![
            (SynSent, Established),
            (Established, FinWait1),
            (FinWait1, FinWait2),
            (FinWait2, Close),
            (FinWait2, TimeWait),
        ],
        "client side"
    );
    let server_side: Vec<_> = trace
        .steps
        .iter()
        .filter(|s| s.tuple.local_port == port && s.tuple.remote_port == cport)
        .map(|s| (s.from, s.to))
        .collect();
    assert_eq!(
        server_side,
        vec![
            (Listen, SynRecv),
            (SynRecv, Established),
            (Established, CloseWait),
            (CloseWait, LastAck),
            (LastAck, Close),
        ],
        "server side"
    );
    let count = |from, to, pred: &dyn Fn(&tracer::model::Step) -> bool| {
        trace
            .steps
            .iter()
            .filter(|s| s.from == from && s.to == to && pred(s))
            .count()
    };
    // connect() reports CLOSE -> SYN_SENT before the local port is chosen (port 0).
    assert_eq!(count(Close, SynSent, &|s| s.tuple.remote_port == port), 1);
    assert_eq!(count(Close, Listen, &|s| s.tuple.local_port == port), 1);
    let handover = trace
        .steps
        .iter()
        .find(|s| s.tuple.local_port == cport && s.to == Close)
        .unwrap();
    assert_eq!(handover.note, Some(Note::TimewaitTakesOver));
    // The connecting and accepting process is this test, not swapper (pid 0).
    let me = std::process::id();
    assert!(
        trace.steps.iter().all(|s| s.owner.pid == me),
        "owners: {:?}",
        trace.steps.iter().map(|s| s.owner.pid).collect::<Vec<_>>()
    );
    assert_eq!(trace.lost(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn ipv4_connection_is_traced_exactly() {
    held_connection("127.0.0.1").await;
}

#[tokio::test(flavor = "current_thread")]
async fn ipv6_connection_is_traced_exactly() {
    held_connection("::1").await;
}
