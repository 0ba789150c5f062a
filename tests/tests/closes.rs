//! Who closed first, on two hosts (network namespaces joined by veth), each seen from its own
//! side by one tracer. Counts are exact.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use socket2::SockRef;
use tracer::model::{CloseKind, Role, Step};
use tracer_tests::{
    Trace,
    netns::{CLIENT_IP, HostPair, SERVER_IP},
};

const PORT: u16 = 18080;
const CLOSED_PORT: u16 = 18081;

#[derive(Clone, Copy)]
enum Phase {
    /// HTTP/1.0 style: the server answers and closes first.
    ServerCloses,
    /// The client closes first; the server closes when it reads EOF.
    ClientCloses,
    /// The client aborts with SO_LINGER {1, 0}: an RST instead of a FIN.
    ClientAborts,
}

fn serve(listener: &TcpListener, phase: Phase, n: usize) {
    for _ in 0..n {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        match phase {
            Phase::ServerCloses => {
                let _ = conn.read(&mut buf);
                conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").unwrap();
            }
            Phase::ClientCloses | Phase::ClientAborts => {
                // Wait for the client's FIN (EOF) or RST (error) before closing.
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            }
        }
    }
}

fn request(phase: Phase, n: usize) {
    let server = SocketAddr::from((SERVER_IP, PORT));
    for _ in 0..n {
        let mut conn =
            TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match phase {
            Phase::ServerCloses => {
                conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut body = Vec::new();
                conn.read_to_end(&mut body).unwrap();
            }
            Phase::ClientCloses => {}
            Phase::ClientAborts => {
                SockRef::from(&conn)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(conn);
    }
}

fn count(steps: &[Step], role: Role, kind: CloseKind) -> usize {
    steps
        .iter()
        .filter_map(|s| s.end)
        .filter(|e| e.role == role && e.kind == kind)
        .count()
}

#[tokio::test(flavor = "current_thread")]
async fn close_initiators_are_exact_on_two_hosts() {
    let hosts = HostPair::create(&format!("{}", std::process::id() % 100_000));
    let mut trace = Trace::attach(&[PORT, CLOSED_PORT]);
    let phases = [
        (Phase::ServerCloses, 50),
        (Phase::ClientCloses, 30),
        (Phase::ClientAborts, 10),
    ];
    let server = HostPair::spawn_in(&hosts.server_ns, "srv-thread", move || {
        let listener = TcpListener::bind(SocketAddr::from((SERVER_IP, PORT))).unwrap();
        for (phase, n) in phases {
            serve(&listener, phase, n);
        }
    });
    let client = HostPair::spawn_in(&hosts.client_ns, "cli-thread", move || {
        std::thread::sleep(Duration::from_millis(100)); // let the server listen
        for (phase, n) in phases {
            request(phase, n);
        }
        for _ in 0..5 {
            let refused = SocketAddr::from((SERVER_IP, CLOSED_PORT));
            assert!(TcpStream::connect_timeout(&refused, Duration::from_secs(5)).is_err());
        }
    });
    client.join().expect("client thread");
    server.join().expect("server thread");

    let expected_ends = 2 * (50 + 30 + 10) + 5;
    let all_ended = trace
        .collect_until(Duration::from_secs(10), |steps| {
            steps.iter().filter(|s| s.end.is_some()).count() >= expected_ends
        })
        .await;
    let steps = &trace.steps;
    assert!(
        all_ended,
        "only {} ends",
        steps.iter().filter(|s| s.end.is_some()).count()
    );
    assert_eq!(
        steps.iter().filter(|s| s.end.is_some()).count(),
        expected_ends
    );

    use CloseKind::*;
    assert_eq!(count(steps, Role::Server, LocalFirst), 50);
    assert_eq!(count(steps, Role::Client, PeerFirst), 50);
    assert_eq!(count(steps, Role::Client, LocalFirst), 30);
    assert_eq!(count(steps, Role::Server, PeerFirst), 30);
    assert_eq!(count(steps, Role::Client, RstSent), 10);
    assert_eq!(count(steps, Role::Server, RstReceived), 10);
    assert_eq!(count(steps, Role::Client, ConnectFailed), 5);

    // The TIME_WAIT lands on the side that closed first.
    let timewaits = |role, kind| {
        steps
            .iter()
            .filter_map(|s| s.end)
            .filter(|e| e.role == role && e.kind == kind && e.timewait)
            .count()
    };
    assert_eq!(timewaits(Role::Server, LocalFirst), 50);
    assert_eq!(timewaits(Role::Client, PeerFirst), 0);
    assert_eq!(timewaits(Role::Client, LocalFirst), 30);

    // Services: the server's own address for both roles; each side in its own namespace.
    for s in steps.iter().filter(|s| s.end.is_some()) {
        let end = s.end.unwrap();
        assert_eq!(end.service.addr.to_string(), "10.231.7.1");
        let local = s.tuple.local.to_string();
        match end.role {
            Role::Server => assert_eq!((local.as_str(), end.service.port), ("10.231.7.1", PORT)),
            Role::Client => assert_eq!(local, std::net::Ipv4Addr::from(CLIENT_IP).to_string()),
            other => panic!("unexpected role {other:?}"),
        }
    }

    // The owner is the thread that listened / connected, never pid 0 or swapper.
    let me = std::process::id();
    for s in steps.iter().filter(|s| s.end.is_some()) {
        let role = s.end.unwrap().role;
        let comm = if role == Role::Server {
            "srv-thread"
        } else {
            "cli-thread"
        };
        assert_eq!((s.owner.pid, s.owner.comm.as_str()), (me, comm), "{s:?}");
        assert_ne!(s.owner.cgroup_id, 0);
    }
    assert_eq!(trace.lost(), 0);
}

/// The acceptance scenario: nginx with `keepalive_timeout 0` and a churning client;
/// `tracer closes` says nginx closes first and holds the TIME_WAIT, with exact counts.
#[test]
fn nginx_without_keepalive_is_shown_closing_first() {
    use tracer_tests::{Running, free_port, nginx::Nginx};
    let port = free_port("127.0.0.1");
    let nginx = Nginx::start(port);
    let p = port.to_string();
    let tracer = Running::start(&["closes", "--duration", "4", "--json", "--port", &p]);
    const REQUESTS: u64 = 200;
    for _ in 0..REQUESTS {
        nginx.get();
    }
    let (code, out) = tracer.finish(Duration::from_secs(15));
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).expect("JSON array");
    let row = |role: &str| {
        rows.iter()
            .find(|r| r["role"] == role && r["service"] == format!("127.0.0.1:{port}"))
            .unwrap_or_else(|| panic!("no {role} row in {rows:#?}"))
    };
    let server = row("server");
    assert_eq!(server["ended"], REQUESTS);
    assert_eq!(server["local_first"], REQUESTS);
    assert_eq!(server["timewait"], REQUESTS);
    assert!(
        server["process"].as_str().unwrap().starts_with("nginx ("),
        "{server}"
    );
    let client = row("client");
    assert_eq!(client["ended"], REQUESTS);
    assert_eq!(client["peer_first"], REQUESTS);
    assert_eq!(client["timewait"], 0);
    for key in ["rst_sent", "rst_received", "connect_failed", "simultaneous"] {
        assert_eq!(server[key], 0, "{key}");
        assert_eq!(client[key], 0, "{key}");
    }
}
