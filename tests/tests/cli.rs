//! The real `tracer` binary: exit codes, error messages, JSON output over real traffic.
use std::{net::TcpListener, process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::{
    Running, churn::stop, client_closes_first, free_port, tools::tracer_as_nobody, tracer_bin,
};

fn churn(port: u16, connections: usize, hold: Duration) {
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..connections {
        client_closes_first(&server, hold);
    }
}

#[test]
fn wrong_state_name_is_a_usage_error_listing_valid_names() {
    let out = Command::new(tracer_bin())
        .args(["histogram", "--state", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'bogus'"), "{err}");
    for name in ["TIME_WAIT", "CLOSE_WAIT", "SYN_RECV", "LISTEN", "CLOSING"] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
}

#[test]
fn bad_durations_and_ports_are_usage_errors() {
    for args in [
        &["run", "--duration", "soon"][..],
        &["run", "--port", "0"],
        &["run", "--port", "70000"],
        &["run", "--interval", "0"],
    ] {
        let out = Command::new(tracer_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn without_privileges_it_says_to_use_sudo() {
    let out = tracer_as_nobody(&[])
        .args(["run", "--duration", "1"])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sudo"), "{err}");
    assert!(
        !err.contains("panicked") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn run_json_reports_every_transition_and_no_loss() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let tracer = Running::start(&[
        "run",
        "--json",
        "--no-socket",
        "--duration",
        "3",
        "--port",
        &p,
    ]);
    churn(port, 5, Duration::from_millis(50));
    let (code, out) = tracer.finish(Duration::from_secs(10));
    assert_eq!(code, 0);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let count = |from: &str, to: &str| {
        lines
            .iter()
            .filter(|l| l["type"] == "transition" && l["from"] == from && l["to"] == to)
            .count()
    };
    assert_eq!(count("CLOSE", "LISTEN"), 1);
    assert_eq!(count("CLOSE", "SYN_SENT"), 5);
    assert_eq!(count("SYN_SENT", "ESTABLISHED"), 5);
    assert_eq!(count("LISTEN", "SYN_RECV"), 5);
    assert_eq!(count("ESTABLISHED", "FIN_WAIT1"), 5);
    assert_eq!(count("ESTABLISHED", "CLOSE_WAIT"), 5);
    assert_eq!(count("LAST_ACK", "CLOSE"), 5);
    assert_eq!(count("FIN_WAIT2", "TIME_WAIT"), 5);
    let summary = lines.last().expect("a final summary");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["final"], true);
    assert_eq!(summary["lost"], 0);
    let established = summary["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "ESTABLISHED")
        .expect("ESTABLISHED row");
    assert_eq!(established["count"], 10, "both ends of 5 connections");
    let p50_ms = established["p50_ns"].as_u64().unwrap() / 1_000_000;
    assert!((50..300).contains(&p50_ms), "p50 {p50_ms} ms");
}

#[test]
fn histogram_json_counts_finished_and_in_progress_sockets() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    // Stopped by SIGTERM once the churn is over, not by --duration: starting the second
    // tracer can take seconds on a loaded machine, which a short --duration would eat.
    let established = Running::start(&[
        "histogram",
        "--state",
        "established",
        "--duration",
        "60",
        "--json",
        "--port",
        &p,
    ]);
    let time_wait = Running::start(&[
        "histogram",
        "--state",
        "time-wait",
        "--duration",
        "60",
        "--json",
        "--port",
        &p,
    ]);
    churn(port, 4, Duration::from_millis(100));
    let (code, out) = stop(established);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["state"], "ESTABLISHED");
    assert_eq!(v["count"], 8);
    for key in ["min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"] {
        // Held 100 ms; kernel aggregation's buckets stand for their values within 0.4 %.
        let ms = v[key].as_u64().unwrap() / 1_000_000;
        assert!((99..400).contains(&ms), "{key} = {ms} ms");
    }
    assert_eq!(v["in_progress"], 0);
    let (code, out) = stop(time_wait);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["state"], "TIME_WAIT");
    assert_eq!(v["count"], 0, "no TIME_WAIT ends within seconds");
    assert_eq!(
        v["in_progress"], 4,
        "the 4 client TIME_WAITs are still going"
    );
    assert_eq!(v["lost"], 0);
}

#[test]
fn sigterm_prints_the_final_summary_and_exits_0() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let tracer = Running::start(&["run", "--quiet", "--no-socket", "--port", &p]);
    churn(port, 2, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(tracer.child.id() as i32, libc::SIGTERM) };
    let (code, out) = tracer.finish(Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(out.contains("final"), "{out}");
    assert!(
        out.contains("ESTABLISHED") && out.contains("0 lost"),
        "{out}"
    );
}
