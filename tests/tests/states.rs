//! `tracer states` and the attach-time snapshot against real sockets: TIME_WAIT, CLOSE_WAIT and
//! ESTABLISHED connections made on loopback inside a fresh network namespace, so every count is
//! exact and can be compared with what `ss` sees in the same namespace.
use std::{
    collections::{BTreeMap, HashMap},
    net::{SocketAddr, TcpListener},
    process::Output,
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tracer::{
    model::TcpState,
    source::snapshot::{Age, Snapshot},
};
use tracer_tests::{
    sockets::{Netns, close_waits, established, time_waits},
    tools::as_nobody,
    tracer_bin,
};

const NS: &str = "trcstates";
const TW_PORT: u16 = 7001;
const CW_PORT: u16 = 7002;
const EST_PORT: u16 = 7003;
const SECOND: u64 = 1_000_000_000;

/// What the thread inside the namespace made, and the library's own snapshot of it.
struct Made {
    /// TIME_WAIT client addresses and when each began (boot ns).
    time_waits: Vec<(SocketAddr, u64)>,
    snapshot: Snapshot,
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "tracer states failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn states_of(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .expect("a states object")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("a count")))
        .collect()
}

fn rows_with<'a>(v: &'a Value, state: &str) -> Vec<&'a Value> {
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["states"].get(state).is_some())
        .collect()
}

#[test]
fn states_match_ss_name_owners_and_date_time_waits() {
    let ns = Netns::create(NS);
    let (made_tx, made_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = ns.spawn("sock-holder", move || {
        let v4 = |port| TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let (tw, cw, est) = (v4(TW_PORT), v4(CW_PORT), v4(EST_PORT));
        let tw6 = TcpListener::bind(("::1", TW_PORT)).expect("bind [::1]");
        // Two batches 2 s apart, so the ages to check differ by far more than their tolerance.
        let mut tws = time_waits(&tw, 95);
        tws.extend(time_waits(&tw6, 5));
        std::thread::sleep(Duration::from_secs(2));
        tws.extend(time_waits(&tw, 95));
        tws.extend(time_waits(&tw6, 5));
        let held_cw = close_waits(&cw, 50);
        let held_est = established(&est, 5);
        let snapshot = tracer::source::snapshot::take().expect("snapshot inside the namespace");
        made_tx
            .send(Made {
                time_waits: tws,
                snapshot,
            })
            .unwrap();
        // Keep every socket until the test is done (or gone: a panic drops the sender).
        let _ = done_rx.recv_timeout(Duration::from_secs(120));
        drop((held_cw, held_est, tw, cw, est, tw6));
    });
    let made = made_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("sockets made");

    // What ss sees: exactly what was made.
    let ss = ns.ss_counts();
    let want: BTreeMap<String, u64> = [
        ("TIME_WAIT", 200),
        ("CLOSE_WAIT", 50),
        // The orphaned client ends of the CLOSE_WAITs, in their FIN_WAIT2 timewait socket.
        ("FIN_WAIT2", 50),
        ("ESTABLISHED", 10),
        ("LISTEN", 4),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_string(), n))
    .collect();
    assert_eq!(ss, want, "ss -tan in the namespace");

    // `tracer states --json` run in the namespace counts the same.
    let by_service = json_of(&ns.exec(
        tracer_bin().to_str().unwrap(),
        &["states", "--json", "--by", "service"],
    ));
    assert_eq!(states_of(&by_service["states"]), ss);
    assert_eq!(by_service["total"], 314);
    assert_eq!(by_service["netns"], ns.inode());
    // Root reads every process's fds, unless the host refuses even root (this VM's pid 1).
    let refused = tracer_tests::deploy::processes_with_unreadable_links(&[]);
    assert_eq!(
        by_service["owners_partial"],
        refused > 0,
        "{refused} refused"
    );

    // The CLOSE_WAITs are held by this process: /proc/PID/comm is the thread group's name (the
    // test binary's), not that of the thread holding the sockets.
    let pid = std::process::id();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let comm = comm.trim_end();
    assert_ne!(comm, "sock-holder");
    let cw_rows = rows_with(&by_service, "CLOSE_WAIT");
    assert_eq!(cw_rows.len(), 1, "{cw_rows:?}");
    let row = cw_rows[0];
    assert_eq!(row["service"], format!("127.0.0.1:{CW_PORT}"));
    assert_eq!(row["role"], "server");
    assert_eq!(row["pid"], pid);
    assert_eq!(row["comm"], comm);
    assert_eq!(row["states"]["CLOSE_WAIT"], 50);
    // The TIME_WAITs are the clients' (they closed first), of both address families.
    let mut tw_services: Vec<(String, String, u64)> = rows_with(&by_service, "TIME_WAIT")
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            let n = r["states"]["TIME_WAIT"].as_u64().unwrap();
            (text("service"), text("role"), n)
        })
        .collect();
    tw_services.sort();
    let client = |service: String, n| (service, "client".to_string(), n);
    assert_eq!(
        tw_services,
        vec![
            client(format!("127.0.0.1:{TW_PORT}"), 190),
            client(format!("[::1]:{TW_PORT}"), 10),
        ]
    );

    // By process: ours holds the CLOSE_WAITs; the TIME_WAITs belong to no process.
    let by_process = json_of(&ns.exec(
        tracer_bin().to_str().unwrap(),
        &["states", "--json", "--by", "process"],
    ));
    let cw_rows = rows_with(&by_process, "CLOSE_WAIT");
    assert_eq!(cw_rows.len(), 1, "{cw_rows:?}");
    assert_eq!(
        (&cw_rows[0]["pid"], &cw_rows[0]["comm"]),
        (&pid.into(), &comm.into())
    );
    let tw_rows = rows_with(&by_process, "TIME_WAIT");
    assert!(tw_rows.iter().all(|r| r["pid"] == 0), "{tw_rows:?}");

    // The oldest TIME_WAIT in the JSON is the first one made, dated by its timer.
    let oldest = &by_service["oldest"]["TIME_WAIT"];
    assert_eq!(oldest["exact"], true);
    let taken = by_service["taken_ns"].as_u64().unwrap();
    let first = made.time_waits.iter().map(|(_, t)| *t).min().unwrap();
    let expected = taken - first;
    let got = oldest["age_ns"].as_u64().unwrap();
    assert!(
        got.abs_diff(expected) < SECOND,
        "oldest TIME_WAIT {got} ns, made {expected} ns before"
    );

    // Every TIME_WAIT in the library's snapshot is dated within 1 s of when it was made.
    let snap = &made.snapshot;
    assert_eq!(snap.netns, ns.inode());
    let made_at: HashMap<SocketAddr, u64> = made.time_waits.iter().copied().collect();
    let mut dated = 0;
    for s in snap
        .sockets
        .iter()
        .filter(|s| s.state == TcpState::TimeWait)
    {
        let addr = SocketAddr::new(s.tuple.local, s.tuple.local_port);
        let at = made_at[&addr];
        let Age::Exact(age) = s.age else {
            panic!("TIME_WAIT {addr} not dated: {:?}", s.age)
        };
        let expected = snap.taken_ns - at;
        assert!(
            age.abs_diff(expected) < SECOND,
            "{addr}: age {age} ns, made {expected} ns before the snapshot"
        );
        dated += 1;
    }
    assert_eq!(dated, 200);
    let cw_owned = snap
        .sockets
        .iter()
        .filter(|s| s.state == TcpState::CloseWait)
        .filter(|s| s.owner.as_ref().is_some_and(|o| o.pid == pid))
        .count();
    assert_eq!(cw_owned, 50);
    assert!(
        snap.sockets
            .iter()
            .filter(|s| s.state != TcpState::TimeWait)
            .all(|s| s.age == Age::AtLeast(0))
    );

    // Without root: the same counts, but it says the owners are partial.
    let tracer_as_nobody = |args: &[&str]| {
        let setpriv = as_nobody(&[]);
        let tracer = tracer_bin();
        let mut rest: Vec<&str> = setpriv[1..].iter().map(String::as_str).collect();
        rest.push(tracer.to_str().unwrap());
        rest.extend(args);
        ns.exec(&setpriv[0], &rest)
    };
    let unprivileged = json_of(&tracer_as_nobody(&["states", "--json"]));
    assert_eq!(states_of(&unprivileged["states"]), ss);
    assert_eq!(unprivileged["owners_partial"], true);
    assert!(
        rows_with(&unprivileged, "CLOSE_WAIT")
            .iter()
            .all(|r| r["pid"] == 0)
    );
    let text = tracer_as_nobody(&["states"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("owners are partial"), "{text}");

    // Nothing changed while the snapshots were taken.
    assert_eq!(ns.ss_counts(), want);
    drop(done_tx);
    holder.join().expect("holder thread");
}
