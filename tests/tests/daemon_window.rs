//! `--window` and `--since` for real: a daemon with 1 s history slots (the hidden `--slot`)
//! traces loopback connections made in two bursts 5 s apart, and `tracer closes --window 3s` /
//! `tracer histogram --window 3s` count exactly the second burst, while the answers since the
//! start count both. The margins: the window starts 3 s before the query, rounded down to a
//! 1 s slot edge, so at least 1 s after the first burst ended (5 s before the second) and at
//! most at the second burst's start as long as the query comes within 3 s of it (it takes
//! well under one). The errors without a daemon, in the future, or next to --duration exit 2.
use std::{net::TcpListener, process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::{
    client_closes_first,
    daemon::{Output, TempDir, client, daemon_with, signal, text},
    free_port,
};

const FIRST: u64 = 6;
const SECOND: u64 = 4;

/// Connection ends of `service` in closes rows, per role (server, client).
fn ends(rows: &Value, service: &str) -> (u64, u64) {
    let of = |role: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["service"] == service && r["role"] == role)
            .map(|r| r["ended"].as_u64().unwrap())
            .sum()
    };
    (of("server"), of("client"))
}

/// `date -u` `offset` from now (e.g. `-1 hour`), RFC 3339.
fn utc(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn usage_error(out: &Output, says: &str) {
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains(says), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn a_window_counts_only_what_ended_in_it() {
    let dir = TempDir::new("daemon-window");
    let socket = dir.socket();
    let s = text(&socket);
    let port = free_port("127.0.0.1");
    let tracer = daemon_with(port, &socket, &["--slot", "1s"]);
    let pid = tracer.child.id();
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let service = format!("127.0.0.1:{port}");

    for _ in 0..FIRST {
        client_closes_first(&server, Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(5));
    for _ in 0..SECOND {
        client_closes_first(&server, Duration::from_millis(5));
    }

    let windowed = client(&["closes", "--json", "--window", "3s", "--socket", s]);
    assert_eq!(windowed.code, Some(0), "{}", windowed.stderr);
    let v: Value = serde_json::from_str(windowed.stdout.trim()).expect("one JSON object");
    let interval = &v["interval"];
    assert_eq!(
        ends(&v["rows"], &service),
        (SECOND, SECOND),
        "{v}\n{}",
        windowed.stderr
    );
    assert_eq!(interval["slot_ns"], 1_000_000_000u64, "{v}");
    let duration = interval["duration_ns"].as_u64().unwrap();
    assert!((3_000_000_000..4_000_000_000).contains(&duration), "{v}");
    assert!(interval.get("note").is_none(), "{v}");

    let histogram = client(&[
        "histogram",
        "--state",
        "established",
        "--json",
        "--window",
        "3s",
        "--socket",
        s,
    ]);
    assert_eq!(histogram.code, Some(0), "{}", histogram.stderr);
    let h: Value = serde_json::from_str(histogram.stdout.trim()).expect("one JSON object");
    assert_eq!(h["count"], 2 * SECOND, "both ends of each: {h}");
    assert_eq!(h["interval"]["slot_ns"], 1_000_000_000u64, "{h}");

    let all = client(&["closes", "--json", "--socket", s]);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    let rows: Value = serde_json::from_str(all.stdout.trim()).expect("a JSON array");
    let both = FIRST + SECOND;
    assert_eq!(ends(&rows, &service), (both, both), "{rows}");

    // For people: where it comes from, the interval, and how it was asked.
    let table = client(&["closes", "--window", "3s", "--socket", s]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let from = format!("from the tracer daemon (pid {pid}, tracing port {port}), ");
    assert!(table.stderr.contains(&from), "{}", table.stderr);
    assert!(
        table
            .stderr
            .contains("(last 3s, in 1s slots); sockets still in a state as of "),
        "{}",
        table.stderr
    );
    assert!(
        table.stdout.starts_with("Connection ends by service, "),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("lost since the daemon started):"),
        "{}",
        table.stdout
    );

    // Since before the daemon started: everything since its start, and a note saying so.
    let hour_ago = utc("-1 hour");
    let since = client(&["closes", "--json", "--since", &hour_ago, "--socket", s]);
    assert_eq!(since.code, Some(0), "{}", since.stderr);
    let v: Value = serde_json::from_str(since.stdout.trim()).expect("one JSON object");
    assert_eq!(ends(&v["rows"], &service), (both, both), "{v}");
    assert_eq!(v["interval"]["slot_ns"], 0, "{v}");
    assert!(
        since.stderr.contains("note: the daemon started at"),
        "{}",
        since.stderr
    );

    // What cannot be answered is a usage error, saying why.
    let future = client(&["closes", "--since", &utc("+1 hour"), "--socket", s]);
    usage_error(&future, "is in the future");
    let absent = dir.0.join("absent.sock");
    let none = client(&["closes", "--window", "5m", "--socket", text(&absent)]);
    usage_error(&none, "none serves");
    let anew = client(&[
        "histogram",
        "--state",
        "established",
        "--window",
        "5m",
        "--duration",
        "5s",
    ]);
    usage_error(&anew, "while --duration collects anew");
    let other = free_port("127.0.0.1").to_string();
    let filtered = client(&["closes", "--window", "5m", "--socket", s, "--port", &other]);
    usage_error(&filtered, "cannot answer --window");

    signal(&tracer, libc::SIGTERM);
    assert_eq!(tracer.finish(Duration::from_secs(10)).0, 0);
}
