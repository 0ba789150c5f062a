//! `--max-sockets`: a bad value is a usage error; a table too small for the traffic evicts,
//! says so under the summary, and the evicted sockets' later transitions give no duration.
use std::{
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use tracer_tests::{Running, free_port, tracer_bin};

#[test]
fn a_bad_max_sockets_is_a_usage_error() {
    for value in ["0", "1.5", "many", "2000000000"] {
        let out = Command::new(tracer_bin())
            .args(["run", "--max-sockets", value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--max-sockets {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a number of sockets"), "{err}");
    }
}

#[test]
fn a_full_table_is_reported_under_the_summary() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let args = [
        "run",
        "--quiet",
        "--no-socket",
        "--duration",
        "3",
        "--max-sockets",
        "4",
        "--port",
        &p,
    ];
    let tracer = Running::start(&args);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    // 10 connections held at once: 20 ends and a listener for a table of 4.
    let pairs: Vec<_> = (0..10)
        .map(|_| {
            let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            (client, listener.accept().unwrap().0)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    drop(pairs);
    let (code, out) = tracer.finish(Duration::from_secs(15));
    assert_eq!(code, 0);
    let footer = out
        .lines()
        .rfind(|l| l.starts_with("events:"))
        .unwrap_or_default();
    assert!(
        footer.contains("sockets evicted (table full at 4; see --max-sockets)"),
        "{out}"
    );
    // The evicted ends closed later without a start: counted under NO-START, not as durations.
    let established = out
        .lines()
        .rfind(|l| l.starts_with("ESTABLISHED "))
        .expect("an ESTABLISHED row");
    let columns: Vec<&str> = established.split_whitespace().collect();
    let (count, no_start) = (columns[1], columns[columns.len() - 1]);
    let (count, no_start): (u64, u64) = (count.parse().unwrap(), no_start.parse().unwrap());
    assert!(no_start > 0 && count + no_start <= 20, "{established}");
}
