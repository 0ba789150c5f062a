//! Half-open connections (request sockets) in network namespaces: SYNs nobody completes are
//! counted exactly, each living as long as the SYN-ACK retransmit schedule of the server
//! namespace's `tcp_synack_retries`; an RST removes one early; a handshake completed a known
//! time after the SYN shows that time in SYN_RECV.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tracer::{
    model::{EventKind, Note, RequestEnd, Step, TcpState},
    source::snapshot::Age,
};
use tracer_tests::{
    Running, Trace,
    churn::{stop, transitions},
    free_port,
    half_open::{RST, SYN, send},
    netns::{HostPair, SERVER_IP},
};

const MS: u64 = 1_000_000;

/// A listener on `port` in the server namespace for `secs`, with TCP_DEFER_ACCEPT `defer`
/// seconds if given; accepts one connection when `accept_one`, and returns what it read.
fn listen(
    pair: &HostPair,
    port: u16,
    secs: u64,
    defer: Option<i32>,
    accept_one: bool,
) -> std::thread::JoinHandle<Vec<u8>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = HostPair::spawn_in(&pair.server_ns, "listener", move || {
        let listener = TcpListener::bind(SocketAddr::from((SERVER_IP, port))).expect("listen");
        if let Some(secs) = defer {
            // SAFETY: setsockopt on a live socket with an int option value.
            let rc = unsafe {
                libc::setsockopt(
                    listener.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    (&raw const secs).cast(),
                    size_of::<i32>() as u32,
                )
            };
            assert_eq!(rc, 0, "TCP_DEFER_ACCEPT");
        }
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        if accept_one {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).expect("read");
            got.extend_from_slice(&buf[..n]);
        }
        std::thread::sleep(Duration::from_secs(secs));
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server listening");
    server
}

fn half_open_ends(steps: &[Step], port: u16) -> Vec<&Step> {
    steps
        .iter()
        .filter(|s| {
            s.tuple.local_port == port && (s.from, s.to) == (TcpState::SynRecv, TcpState::Close)
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn unanswered_half_opens_are_counted_and_live_by_the_synack_schedule() {
    const N: u16 = 10;
    let tag = format!("{}h", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    pair.route_phantom(&tag);
    pair.server_sysctl("tcp_synack_retries", "1");
    let port = free_port("127.0.0.1");
    let mut trace = Trace::attach(&[port]);
    let server = listen(&pair, port, 6, None, false);
    HostPair::spawn_in(&pair.client_ns, "syns", move || {
        for i in 0..N {
            send(SERVER_IP, port, 42000 + i, 1000 * u32::from(i), SYN);
        }
    })
    .join()
    .expect("send SYNs");
    // The attach-time snapshot's view of them: ages from their timer and retransmits.
    let snapshots = HostPair::spawn_in(&pair.server_ns, "snapshots", || {
        let ages = || {
            let snap = tracer::source::snapshot::take().expect("sock_diag snapshot");
            let syn_recv = snap.sockets.iter().filter(|s| s.state == TcpState::SynRecv);
            syn_recv.map(|s| s.age).collect::<Vec<Age>>()
        };
        std::thread::sleep(Duration::from_millis(300));
        let first = ages();
        std::thread::sleep(Duration::from_millis(1300));
        (first, ages())
    });
    // SYN-ACK at 0, retransmitted at 1 s (the only retry), dropped 2 s later: 3 s in all.
    let all = |steps: &[Step]| half_open_ends(steps, port).len() >= usize::from(N);
    assert!(
        trace.collect_until(Duration::from_secs(8), all).await,
        "{:?}",
        half_open_ends(&trace.steps, port)
    );
    // Nothing more comes for them.
    trace
        .collect_until(Duration::from_millis(500), |_| false)
        .await;
    let ends = half_open_ends(&trace.steps, port);
    assert_eq!(ends.len(), usize::from(N), "{ends:?}");
    for s in &ends {
        assert_eq!(s.note, Some(Note::SynAckUnanswered), "{s:?}");
        let dwell = s.dwell_ns.expect("a half-open time");
        assert!((3000 * MS..3400 * MS).contains(&dwell), "{dwell} ns: {s:?}");
    }
    let retransmits: Vec<u8> = trace
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RequestEnd {
                retransmits, how, ..
            } if e.tuple.local_port == port => {
                assert_eq!(how, RequestEnd::Expired);
                Some(retransmits)
            }
            _ => None,
        })
        .collect();
    assert_eq!(retransmits, vec![1; usize::from(N)]);
    let (first, second) = snapshots.join().expect("snapshots");
    assert_eq!(first.len(), usize::from(N), "{first:?}");
    for age in first {
        // No retransmit yet: dated by what is left of the first 1 s timer.
        assert!(
            !age.is_exact() && (200 * MS..600 * MS).contains(&age.ns()),
            "{age:?}"
        );
    }
    // One retransmit each: at least 1 s old.
    assert_eq!(second, vec![Age::AtLeast(1000 * MS); usize::from(N)]);
    assert_eq!(trace.lost(), 0);
    server.join().expect("listener");
}

#[tokio::test(flavor = "current_thread")]
async fn an_rst_removes_a_half_open_early() {
    let tag = format!("{}r", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    pair.route_phantom(&tag);
    let port = free_port("127.0.0.1");
    let mut trace = Trace::attach(&[port]);
    let server = listen(&pair, port, 2, None, false);
    HostPair::spawn_in(&pair.client_ns, "syn-rst", move || {
        send(SERVER_IP, port, 43000, 5000, SYN);
        std::thread::sleep(Duration::from_millis(200));
        // In window: the request socket expects 5001 next.
        send(SERVER_IP, port, 43000, 5001, RST);
    })
    .join()
    .expect("send SYN and RST");
    let one = |steps: &[Step]| !half_open_ends(steps, port).is_empty();
    assert!(trace.collect_until(Duration::from_secs(3), one).await);
    trace
        .collect_until(Duration::from_millis(300), |_| false)
        .await;
    let ends = half_open_ends(&trace.steps, port);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].note, Some(Note::RequestRemoved));
    let dwell = ends[0].dwell_ns.expect("a half-open time");
    assert!((200 * MS..300 * MS).contains(&dwell), "{dwell} ns");
    server.join().expect("listener");
}

/// A client in the pair's namespace that connects, sends its first byte 300 ms later and
/// closes 100 ms after that.
fn late_client(pair: &HostPair, port: u16) {
    HostPair::spawn_in(&pair.client_ns, "late client", move || {
        let addr = SocketAddr::from((SERVER_IP, port));
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        std::thread::sleep(Duration::from_millis(300));
        c.write_all(b"x").expect("write");
        std::thread::sleep(Duration::from_millis(100));
    })
    .join()
    .expect("client");
}

#[tokio::test(flavor = "current_thread")]
async fn a_handshake_completed_late_shows_its_wait_in_syn_recv() {
    let tag = format!("{}d", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    let port = free_port("127.0.0.1");
    let mut trace = Trace::attach(&[port]);
    // With TCP_DEFER_ACCEPT the server keeps the request socket past the bare final ACK and
    // completes it with the client's first data: 300 ms after the SYN.
    let server = listen(&pair, port, 0, Some(5), true);
    late_client(&pair, port);
    assert_eq!(server.join().expect("listener"), b"x");
    let completed = |steps: &[Step]| {
        steps.iter().any(|s| {
            s.tuple.local_port == port
                && (s.from, s.to) == (TcpState::SynRecv, TcpState::Established)
        })
    };
    assert!(trace.collect_until(Duration::from_secs(3), completed).await);
    let syn_recv: Vec<&Step> = trace
        .steps
        .iter()
        .filter(|s| s.tuple.local_port == port && s.from == TcpState::SynRecv)
        .collect();
    assert_eq!(syn_recv.len(), 1, "{syn_recv:?}");
    assert_eq!(syn_recv[0].to, TcpState::Established);
    let dwell = syn_recv[0].dwell_ns.expect("the handshake wait");
    assert!((300 * MS..400 * MS).contains(&dwell), "{dwell} ns");
}

/// Under kernel aggregation (`histogram` on 5.12+) the same late handshake is timed in the
/// kernel from the SYN: its request socket hands its start to the child, and nothing of the
/// handshake crosses one event at a time (`-vv` logs every record).
#[test]
fn a_handshake_completed_late_is_timed_from_the_syn_in_the_kernel_too() {
    let tag = format!("{}k", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let args = ["histogram", "--state", "syn-recv", "--json", "-vv"];
    let histogram = Running::start(&[&args[..], &["--duration", "4", "--port", &p]].concat());
    let aggregating = histogram
        .stderr
        .iter()
        .any(|l| l.contains("kernel aggregation: "));
    let server = listen(&pair, port, 0, Some(5), true);
    late_client(&pair, port);
    assert_eq!(server.join().expect("listener"), b"x");
    let (code, out, stderr) = histogram.finish_with_stderr(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["count"], 1, "{v}");
    let p50_ms = v["p50_ns"].as_u64().expect("p50") / MS;
    assert!((300..400).contains(&p50_ms), "p50 {p50_ms} ms");
    if aggregating {
        let one_by_one = |l: &&String| {
            l.contains("RequestEnd") || l.contains("StateChange { old: Listen, new: SynRecv }")
        };
        let sent: Vec<&String> = stderr.iter().filter(one_by_one).collect();
        assert!(sent.is_empty(), "{sent:?}");
    }
}

/// The issue's complaint, end to end: `tracer run`, `tracer histogram --state SYN_RECV` and
/// `tracer closes` over unanswered half-opens show each of them, with its half-open time.
#[test]
fn run_histogram_and_closes_show_unanswered_half_opens() {
    const N: u16 = 5;
    let tag = format!("{}b", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    pair.route_phantom(&tag);
    pair.server_sysctl("tcp_synack_retries", "1");
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let run = Running::start(&[
        "run",
        "--json",
        "--no-socket",
        "--duration",
        "60",
        "--port",
        &p,
    ]);
    let closes = Running::start(&["closes", "--json", "--duration", "60", "--port", &p]);
    let histogram = Running::start(&[
        "histogram",
        "--state",
        "syn-recv",
        "--json",
        "--duration",
        "60",
        "--port",
        &p,
    ]);
    let server = listen(&pair, port, 5, None, false);
    HostPair::spawn_in(&pair.client_ns, "syns", move || {
        for i in 0..N {
            send(SERVER_IP, port, 44000 + i, 7, SYN);
        }
    })
    .join()
    .expect("send SYNs");
    server.join().expect("listener");
    let (code, out) = stop(run);
    assert_eq!(code, 0, "{out}");
    let ends: Vec<Value> = transitions(&out)
        .into_iter()
        .filter(|t| t["from"] == "SYN_RECV" && t["to"] == "CLOSE")
        .collect();
    assert_eq!(ends.len(), usize::from(N), "{out}");
    for t in &ends {
        assert_eq!(t["note"], "syn_ack_unanswered", "{t}");
        let ms = t["dwell_ns"].as_u64().expect("a duration") / MS;
        assert!((3000..3400).contains(&ms), "{ms} ms: {t}");
    }
    let (code, out) = stop(histogram);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["state"], "SYN_RECV");
    assert_eq!(v["count"], N, "{v}");
    let p50_ms = v["p50_ns"].as_u64().expect("p50") / MS;
    assert!((3000..3400).contains(&p50_ms), "p50 {p50_ms} ms");
    assert_eq!(v["lost"], 0);
    let (code, out) = stop(closes);
    assert_eq!(code, 0, "{out}");
    let rows: Value = serde_json::from_str(out.trim()).expect("a JSON array");
    let server = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["role"] == "server")
        .unwrap_or_else(|| panic!("a server row: {rows}"));
    assert_eq!(server["service"], format!("10.231.7.1:{port}"), "{server}");
    assert_eq!(server["handshake_incomplete"], N, "{server}");
    assert_eq!(server["syn_ack_unanswered"], N, "{server}");
}

/// The kernel keeps a request socket's first SYN-ACK time: one made before the trace still
/// gets its whole half-open time, not "start not seen". Two retransmits (dropped at 7 s): with
/// one (3 s) this failed 2 runs in 4 on a loaded host, with and without the CHILD_LOST change,
/// and passed alone: the drop can come before the trace has attached while the other tests of
/// this file load their programs.
#[tokio::test(flavor = "current_thread")]
async fn a_half_open_older_than_the_trace_gets_its_whole_time() {
    const N: u16 = 3;
    let tag = format!("{}o", std::process::id() % 10000);
    let pair = HostPair::create(&tag);
    pair.route_phantom(&tag);
    pair.server_sysctl("tcp_synack_retries", "2");
    let port = free_port("127.0.0.1");
    let server = listen(&pair, port, 5, None, false);
    HostPair::spawn_in(&pair.client_ns, "syns", move || {
        for i in 0..N {
            send(SERVER_IP, port, 45000 + i, 9, SYN);
        }
    })
    .join()
    .expect("send SYNs");
    std::thread::sleep(Duration::from_millis(500));
    let mut trace = Trace::attach(&[port]);
    let all = |steps: &[Step]| half_open_ends(steps, port).len() >= usize::from(N);
    assert!(trace.collect_until(Duration::from_secs(10), all).await);
    let ends = half_open_ends(&trace.steps, port);
    assert_eq!(ends.len(), usize::from(N), "{ends:?}");
    for s in &ends {
        let dwell = s.dwell_ns.expect("a half-open time");
        assert!((7000 * MS..7600 * MS).contains(&dwell), "{dwell} ns: {s:?}");
    }
    server.join().expect("listener");
}
