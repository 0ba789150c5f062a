//! `tracer run` as a daemon for real: the real binary traces real loopback connections and
//! answers `tracer closes` / `tracer histogram` run as other processes on its control socket, at
//! once and with exact counts; the socket is root's alone, one daemon per path, garbage on it
//! gets an error and changes nothing, and SIGTERM removes it. Every wait is bounded; every
//! process started is stopped.
use std::{
    net::TcpListener,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    Running, client_closes_first,
    daemon::{TempDir, bounded, client, daemon, raw_exchange, signal, text},
    free_port,
    tools::tracer_as_nobody,
};

const CONNECTIONS: usize = 10;

#[test]
fn queries_are_answered_at_once_with_exact_counts() {
    let dir = TempDir::new("daemon-answers");
    let socket = dir.socket();
    let port = free_port("127.0.0.1");
    let tracer = daemon(port, &socket);
    let pid = tracer.child.id();

    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists once tracing");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0);

    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..CONNECTIONS {
        client_closes_first(&server, Duration::from_millis(5));
    }

    let closes = client(&["closes", "--json", "--socket", text(&socket)]);
    assert_eq!(closes.code, Some(0), "{}", closes.stderr);
    assert!(closes.took < Duration::from_secs(1), "{:?}", closes.took);
    assert!(
        closes.stderr.contains(&format!(
            "from the tracer daemon (pid {pid}, tracing port {port}), collecting since "
        )),
        "{}",
        closes.stderr
    );
    let rows: Value = serde_json::from_str(closes.stdout.trim()).expect("a JSON array");
    let service = format!("127.0.0.1:{port}");
    let server_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == service.as_str() && r["role"] == "server")
        .unwrap_or_else(|| panic!("no server row in {rows}"));
    assert_eq!(server_row["ended"], CONNECTIONS, "{server_row}");
    assert_eq!(server_row["peer_first"], CONNECTIONS, "{server_row}");

    let histogram = client(&[
        "histogram",
        "--state",
        "established",
        "--json",
        "--socket",
        text(&socket),
    ]);
    assert_eq!(histogram.code, Some(0), "{}", histogram.stderr);
    assert!(
        histogram.took < Duration::from_secs(1),
        "{:?}",
        histogram.took
    );
    let v: Value = serde_json::from_str(histogram.stdout.trim()).expect("one JSON object");
    assert_eq!(v["state"], "ESTABLISHED");
    assert_eq!(
        v["count"],
        2 * CONNECTIONS,
        "both ends of each connection: {v}"
    );
    assert_eq!(v["in_progress"], 0);
    assert_eq!(v["lost"], 0);
    let in_buckets: u64 = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(in_buckets, 2 * CONNECTIONS as u64);

    let chart = client(&[
        "histogram",
        "--state",
        "established",
        "--socket",
        text(&socket),
    ]);
    assert_eq!(chart.code, Some(0), "{}", chart.stderr);
    assert!(
        chart
            .stdout
            .contains("ESTABLISHED: 20 sockets left the state"),
        "{}",
        chart.stdout
    );

    signal(&tracer, libc::SIGTERM);
    let (code, out) = tracer.finish(Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(out.contains("final"), "{out}");
    assert!(!socket.exists(), "the socket file is removed at exit");
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let dir = TempDir::new("daemon-second");
    let socket = dir.socket();
    let first = daemon(free_port("127.0.0.1"), &socket);

    let p = free_port("127.0.0.1").to_string();
    let second = client(&[
        "run",
        "--quiet",
        "--duration",
        "5",
        "--port",
        &p,
        "--socket",
        text(&socket),
    ]);
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.stderr);
    let expected = format!(
        "another tracer daemon (pid {}) already serves {}",
        first.child.id(),
        socket.display()
    );
    assert!(second.stderr.contains(&expected), "{}", second.stderr);
    assert!(second.took < Duration::from_secs(5), "{:?}", second.took);

    // The first one still serves, unharmed.
    let pong = raw_exchange(&socket, b"{\"v\":1,\"query\":\"ping\"}\n", true);
    assert_eq!(pong.len(), 1);
    assert_eq!(pong[0]["ok"], true, "{pong:?}");
    assert_eq!(pong[0]["pid"], first.child.id());

    // A daemon that dies without cleaning up leaves a stale file; the next one replaces it.
    signal(&first, libc::SIGKILL);
    let _ = first.finish(Duration::from_secs(10));
    assert!(socket.exists(), "SIGKILL leaves the file behind");
    let next = daemon(free_port("127.0.0.1"), &socket);
    let pong = raw_exchange(&socket, b"{\"v\":1,\"query\":\"ping\"}\n", true);
    assert_eq!(pong[0]["pid"], next.child.id(), "{pong:?}");
    signal(&next, libc::SIGINT);
    assert_eq!(next.finish(Duration::from_secs(10)).0, 0);
    assert!(!socket.exists());
}

#[test]
fn a_bad_request_gets_an_error_and_the_daemon_keeps_serving() {
    let dir = TempDir::new("daemon-garbage");
    let socket = dir.socket();
    let tracer = daemon(free_port("127.0.0.1"), &socket);

    // An error response, then the daemon closes the connection (without our closing it).
    let bad = raw_exchange(&socket, b"\x00\xffnot json at all\n", false);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["ok"], false);
    assert_eq!(bad[0]["code"], "bad_request");
    assert!(
        bad[0]["error"].as_str().unwrap().contains("malformed"),
        "{bad:?}"
    );
    let unknown = raw_exchange(&socket, b"{\"v\":1,\"query\":\"shutdown\"}\n", false);
    assert_eq!(unknown[0]["code"], "unknown_query", "{unknown:?}");
    let version = raw_exchange(&socket, b"{\"v\":9,\"query\":\"ping\"}\n", false);
    assert_eq!(version[0]["code"], "unsupported_version", "{version:?}");
    // A line over 64 KiB: refused once the limit is passed, whatever follows.
    let huge = vec![b'{'; 200 * 1024];
    let long = raw_exchange(&socket, &huge, false);
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0]["code"], "too_long");

    // Valid requests after all that, two on one connection.
    let ok = raw_exchange(
        &socket,
        b"{\"v\":1,\"query\":\"ping\"}\n{\"v\":1,\"query\":\"summary\"}\n",
        true,
    );
    assert_eq!(ok.len(), 2, "{ok:?}");
    assert_eq!(ok[0]["answer"], "pong");
    assert_eq!(ok[1]["window"], "since_start");
    assert!(ok[1]["answer"].is_array(), "{ok:?}");
    let closes = client(&["closes", "--json", "--socket", text(&socket)]);
    assert_eq!(closes.code, Some(0), "{}", closes.stderr);

    signal(&tracer, libc::SIGTERM);
    assert_eq!(tracer.finish(Duration::from_secs(10)).0, 0);
}

#[test]
fn a_non_root_client_is_refused_with_a_clear_message() {
    let dir = TempDir::new("daemon-nobody");
    let socket = dir.socket();
    let tracer = daemon(free_port("127.0.0.1"), &socket);
    let out = bounded(
        tracer_as_nobody(&[]).args(["closes", "--json", "--socket", text(&socket)]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let expected = format!(
        "the daemon's socket {} is only open to root: run with sudo",
        socket.display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    signal(&tracer, libc::SIGTERM);
    assert_eq!(tracer.finish(Duration::from_secs(10)).0, 0);
}

#[test]
fn without_a_daemon_that_can_answer_the_clients_trace_directly() {
    let dir = TempDir::new("daemon-none");
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let absent = dir.0.join("absent.sock");
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();

    // No socket file: trace as before, until Ctrl-C.
    let direct = Running::start(&["closes", "--json", "--socket", text(&absent), "--port", &p]);
    client_closes_first(&server, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(300));
    signal(&direct, libc::SIGINT);
    let (code, out) = direct.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    let rows: Value = serde_json::from_str(out.trim()).expect("a JSON array");
    // Only this service's rows: a TIME_WAIT left on this port number by an earlier test's
    // client may end while tracing too.
    let service = format!("127.0.0.1:{port}");
    let ended: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == service.as_str())
        .map(|r| r["ended"].as_u64().unwrap())
        .sum();
    assert_eq!(ended, 2, "both ends of one connection: {rows}");

    // A daemon tracing another port cannot answer for this one: trace directly.
    let socket = dir.socket();
    let other = daemon(free_port("127.0.0.1"), &socket);
    let direct = Running::start(&[
        "histogram",
        "--state",
        "established",
        "--json",
        "--socket",
        text(&socket),
        "--port",
        &p,
    ]);
    client_closes_first(&server, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(300));
    signal(&direct, libc::SIGINT);
    let (code, out) = direct.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["count"], 2, "{v}");
    signal(&other, libc::SIGTERM);
    assert_eq!(other.finish(Duration::from_secs(10)).0, 0);
}
