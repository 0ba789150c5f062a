//! `tracer doctor` against real sockets in fresh network namespaces: a TIME_WAIT table that
//! overflows (tcp_max_tw_buckets is per namespace), CLOSE_WAIT sockets this test holds, and, with
//! `--duration`, CLOSE_WAITs proven old and a server that closes first.
use std::{
    io::{BufRead, BufReader, Read},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer::service::doctor::counters;
use tracer_tests::{
    sockets::{Netns, close_waits, time_waits},
    take_fin, tracer_bin,
};

const TW_PORT: u16 = 7401;
const CW_PORT: u16 = 7402;
const CHURN_PORT: u16 = 7411;
const HELD_PORT: u16 = 7412;

fn doctor_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "tracer doctor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn findings<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// TcpExt.TCPTimeWaitOverflow as the namespace's own /proc/net/netstat says.
fn overflow_in(ns: &Netns) -> i64 {
    let out = ns.exec("cat", &["/proc/net/netstat"]);
    assert!(out.status.success(), "cat /proc/net/netstat: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let sections = counters::parse(&text).expect("netstat parses");
    let tcp_ext = &sections
        .iter()
        .find(|(s, _)| s == "TcpExt")
        .expect("TcpExt")
        .1;
    tcp_ext["TCPTimeWaitOverflow"]
}

fn comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn doctor_finds_timewait_overflow_and_names_the_close_wait_holder() {
    let ns = Netns::create("trcdoctor");
    let set = ns.exec("sysctl", &["-w", "net.ipv4.tcp_max_tw_buckets=16"]);
    assert!(set.status.success(), "sysctl -w: {set:?}");
    let (made_tx, made_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = ns.spawn("doctor-socks", move || {
        let tw = TcpListener::bind(("127.0.0.1", TW_PORT)).expect("bind");
        let cw = TcpListener::bind(("127.0.0.1", CW_PORT)).expect("bind");
        // 100 connections the client closes first: at most 16 TIME_WAITs fit, the rest overflow.
        let churned = time_waits(&tw, 100);
        let held = close_waits(&cw, 5);
        made_tx.send(churned.len()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(60));
        drop((held, tw, cw));
    });
    assert_eq!(
        made_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("sockets made"),
        100
    );

    // The last closes may still be turning into TIME_WAIT: wait (bounded) until the counter
    // has settled, so "before" is the value doctor will read.
    let mut before = overflow_in(&ns);
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(200));
        let now = overflow_in(&ns);
        if now == before {
            break;
        }
        before = now;
    }
    let v = doctor_json(&ns.exec(tracer_bin().to_str().unwrap(), &["doctor", "--json"]));
    let after = overflow_in(&ns);
    assert_eq!(before, after, "no traffic while doctor ran");
    assert!(after > 0, "the TIME_WAIT table must have overflowed");

    // The namespace's own sysctls and counters were read.
    assert_eq!(v["sysctls"]["net.ipv4.tcp_max_tw_buckets"], 16);
    assert!(v["sysctls"]["net.ipv4.tcp_tw_recycle"].is_null());
    assert_eq!(v["counters"]["TcpExt"]["TCPTimeWaitOverflow"], after);

    let tw = findings(&v, "timewait-overflow");
    assert_eq!(tw.len(), 1, "{v:#}");
    let f = tw[0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["evidence"]["TCPTimeWaitOverflow"], after);
    assert_eq!(f["evidence"]["net.ipv4.tcp_max_tw_buckets"], 16);
    let used = f["evidence"]["time_wait"].as_u64().unwrap()
        + f["evidence"]["orphaned_fin_wait2"].as_u64().unwrap();
    assert!((13..=16).contains(&used), "{f:#}");
    assert!(
        f["advice"].as_str().unwrap().contains("would not help"),
        "tcp_fin_timeout is refuted, not suggested: {f:#}"
    );

    let cw = findings(&v, "close-wait");
    assert_eq!(cw.len(), 1, "{v:#}");
    let f = cw[0];
    assert_eq!(f["evidence"]["pid"], std::process::id());
    assert_eq!(f["evidence"]["process"], comm());
    assert_eq!(f["evidence"]["close_wait"], 5);
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains(&format!("({})", std::process::id()))
    );
    // The same sockets listed as possibly stuck, age unknown from one snapshot.
    assert_eq!(v["stuck"]["age_known"], false);
    let listed = v["stuck"]["sockets"].as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|s| s["state"] == "CLOSE_WAIT" && s["pid"] == std::process::id())
            .count(),
        5
    );

    // The text report says the same for people.
    let text = ns.exec(tracer_bin().to_str().unwrap(), &["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("[CRITICAL] TIME_WAIT table overflowed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("({})", std::process::id())),
        "{text}"
    );
    assert!(text.contains("removed in Linux 4.12"), "{text}");

    // `tracer states --stuck 0` lists them with age ≥ 0 s.
    let states = ns.exec(tracer_bin().to_str().unwrap(), &["states", "--stuck", "0"]);
    let states = String::from_utf8_lossy(&states.stdout);
    let rows = states
        .lines()
        .filter(|l| l.starts_with("CLOSE_WAIT") && l.contains("≥ 0s"))
        .count();
    assert_eq!(rows, 5, "{states}");

    drop(done_tx);
    holder.join().expect("holder thread");
}

/// `n` connections the server closes first: the server end holds the TIME_WAIT.
fn server_closes_first(server: &TcpListener, n: usize) {
    for _ in 0..n {
        let mut client = TcpStream::connect(server.local_addr().unwrap()).expect("connect");
        let (accepted, _) = server.accept().expect("accept");
        drop(accepted);
        take_fin(&mut client);
        drop(client);
    }
}

#[test]
fn doctor_over_a_window_proves_stuck_close_wait_and_who_closes_first() {
    let ns = Netns::create("trcdoctor2");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = ns.spawn("doctor-window", move || {
        let held_on = TcpListener::bind(("127.0.0.1", HELD_PORT)).expect("bind");
        let churn = TcpListener::bind(("127.0.0.1", CHURN_PORT)).expect("bind");
        let held = close_waits(&held_on, 3);
        ready_tx.send(()).unwrap();
        // Churn once doctor has taken its first snapshot and attached its probes.
        if go_rx.recv_timeout(Duration::from_secs(30)).is_ok() {
            server_closes_first(&churn, 100);
        }
        let _ = done_rx.recv_timeout(Duration::from_secs(60));
        drop((held, held_on, churn));
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("CLOSE_WAITs made");

    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(tracer_bin())
        .args(["doctor", "--duration", "3", "--stuck", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracer doctor");
    let stderr = child.stderr.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match line_rx.recv_timeout(left) {
            Ok(line) if line.contains("Ctrl-C") => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("tracer doctor did not start measuring: {e}; stderr: {seen:?}");
            }
        }
    }
    go_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tracer doctor --duration 3 did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "tracer doctor: {status}, stderr {seen:?}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");

    let secs = v["window_secs"].as_f64().unwrap();
    assert!((3.0..10.0).contains(&secs), "{secs}");
    assert_eq!(v["events"]["lost"], 0);
    assert_eq!(v["stuck"]["age_known"], true);

    // Held across both snapshots: proven at least the window old, above --stuck 2.
    let cw = findings(&v, "close-wait");
    assert_eq!(cw.len(), 1, "{v:#}");
    let f = cw[0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["evidence"]["pid"], std::process::id());
    assert_eq!(f["evidence"]["close_wait"], 3);
    let at_least = f["evidence"]["at_least_ns"].as_u64().unwrap();
    assert!(at_least >= 3_000_000_000, "{f:#}");
    // Listed with their peers: the client ends, orphaned in FIN_WAIT2 (no process).
    let stuck = v["stuck"]["sockets"].as_array().unwrap();
    let count = |state: &str, pid: u32| {
        stuck
            .iter()
            .filter(|s| s["state"] == state && s["pid"] == pid)
            .count()
    };
    assert_eq!(count("CLOSE_WAIT", std::process::id()), 3, "{stuck:?}");
    assert_eq!(count("FIN_WAIT2", 0), 3, "{stuck:?}");
    assert_eq!(stuck.len(), 6, "{stuck:?}");
    assert!(stuck.iter().all(|s| s["at_least_ns"] == at_least));

    // The churn's TIME_WAITs: this host's server closed first.
    let local = findings(&v, "timewait-local-close");
    assert_eq!(local.len(), 1, "{v:#}");
    let e = &local[0]["evidence"];
    assert_eq!(e["service"], format!("127.0.0.1:{CHURN_PORT}"));
    assert_eq!(e["role"], "server");
    assert_eq!(e["ended"], 100);
    assert_eq!(e["local_first"], 100);
    assert_eq!(e["timewait"], 100);
    assert_eq!(e["pid"], std::process::id());
    // The counters moved by the churn.
    assert!(
        v["deltas"]["Tcp"]["PassiveOpens"]["delta"]
            .as_i64()
            .unwrap()
            >= 100
    );

    drop(done_tx);
    holder.join().expect("holder thread");
}
