//! `tracer record` and `--from`: one recording made while live `closes` and `histogram` watch the
//! same 10 loopback connections replays to the same answers; a replay needs no root; a cut copy
//! still reports what it holds, then fails naming the byte offset.
use std::{
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer::source::recording::Reader;
use tracer_tests::{Running, client_closes_first, free_port, tools::tracer_as_nobody, tracer_bin};

const CONNECTIONS: u64 = 10;
/// Each tracer's --duration. Three debug builds parsing BTF at once take 1-3 s to start on a
/// busy 2-CPU machine: 6 s leaves room, and the test checks it.
const WINDOW: &str = "6";
const WINDOW_SECS: f64 = 6.0;

/// The recording and what the live tracers printed, made once for every test here.
struct Session {
    recording: PathBuf,
    closes: Value,
    histogram: Value,
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(record_and_watch)
}

/// The tests that use the session; the last to pass removes the recording (a failure keeps it).
const SESSION_USERS: usize = 3;

fn done_with(s: &Session) {
    static DONE: AtomicUsize = AtomicUsize::new(0);
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == SESSION_USERS {
        let _ = std::fs::remove_file(&s.recording);
    }
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()))
}

fn record_and_watch() -> Session {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let recording = tmp("live.trc");
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let began = Instant::now();
    let rec = recording.to_str().unwrap();
    // Started together, so the three windows nearly coincide.
    let (record, closes, histogram) = std::thread::scope(|scope| {
        let record = scope
            .spawn(|| Running::start(&["record", "-o", rec, "--duration", WINDOW, "--port", &p]));
        let closes = scope
            .spawn(|| Running::start(&["closes", "--json", "--duration", WINDOW, "--port", &p]));
        let histogram = scope.spawn(|| {
            Running::start(&[
                "histogram",
                "--state",
                "established",
                "--json",
                "--duration",
                WINDOW,
                "--port",
                &p,
            ])
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Running>| h.join().expect("tracer start");
        (join(record), join(closes), join(histogram))
    });
    for _ in 0..CONNECTIONS {
        client_closes_first(&server, Duration::from_millis(30));
    }
    let took = began.elapsed();
    assert!(
        took.as_secs_f64() < WINDOW_SECS - 0.5,
        "start-up and traffic took {took:?}: the first tracer may have stopped during it"
    );
    let json = |running: Running| {
        let (code, out) = running.finish(Duration::from_secs(10));
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<Value>(out.trim()).expect("JSON output")
    };
    let (code, _) = record.finish(Duration::from_secs(10));
    assert_eq!(code, 0);
    let session = Session {
        closes: json(closes),
        histogram: json(histogram),
        recording,
    };
    drop(server);
    session
}

fn tracer(args: &[&str]) -> Output {
    Command::new(tracer_bin())
        .args(args)
        .output()
        .expect("run tracer")
}

fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Compares a replayed histogram with a live one: counts exactly; durations within 1 % plus
/// 10 µs. The live `histogram` keeps durations in the kernel's log-linear buckets (a bucket's
/// midpoint is within 0.4 % of its values, and a CI run saw 0.27 %), the replay in hdrhistogram
/// from exact timestamps; and each live tracer's programs read the clock themselves, some
/// nanoseconds apart. The replay of the recorder's own timestamps is exact (the unit tests).
fn assert_same_histogram(replayed: &Value, live: &Value) {
    for key in ["state", "count", "in_progress", "start_not_seen", "lost"] {
        assert_eq!(replayed[key], live[key], "{key}: {replayed} vs {live}");
    }
    for key in ["min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"] {
        let (r, l) = (replayed[key].as_u64().unwrap(), live[key].as_u64().unwrap());
        assert!(
            r.abs_diff(l) <= l / 100 + 10_000,
            "{key}: replayed {r}, live {l}"
        );
    }
    let total = |v: &Value| -> u64 {
        let buckets = v["buckets"].as_array().expect("buckets");
        buckets.iter().map(|b| b[1].as_u64().unwrap()).sum()
    };
    assert_eq!(total(replayed), total(live));
}

#[test]
fn a_replay_gives_the_live_answers() {
    let s = session();
    let mode = std::fs::metadata(&s.recording)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the recording is private");
    let rec = s.recording.to_str().unwrap();

    let rows = s.closes.as_array().expect("an array of rows");
    let count = |role: &str, key: &str| {
        rows.iter()
            .filter(|r| r["role"] == role)
            .map(|r| r[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count("client", "local_first"), CONNECTIONS, "{rows:?}");
    assert_eq!(count("server", "peer_first"), CONNECTIONS, "{rows:?}");
    assert_eq!(count("client", "timewait"), CONNECTIONS, "{rows:?}");
    let out = tracer(&["closes", "--json", "--from", rec]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_json(&out), s.closes, "closes: replay vs live");

    assert_eq!(s.histogram["count"], 2 * CONNECTIONS, "{}", s.histogram);
    let out = tracer(&[
        "histogram",
        "--state",
        "established",
        "--json",
        "--from",
        rec,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let replayed = stdout_json(&out);
    assert_same_histogram(&replayed, &s.histogram);
    let collected_s = replayed["collected_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        (WINDOW_SECS - 0.1..WINDOW_SECS + 0.5).contains(&collected_s),
        "{collected_s} s"
    );
    done_with(s);
}

#[test]
fn a_replay_needs_no_root() {
    let s = session();
    let copy = std::env::temp_dir().join(format!("tracer-replay-{}.trc", std::process::id()));
    std::fs::copy(&s.recording, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tracer_as_nobody(&[])
        .args(["closes", "--json", "--from", copy.to_str().unwrap()])
        .output()
        .expect("setpriv");
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_json(&out), s.closes);
    done_with(s);
}

#[test]
fn a_cut_recording_reports_what_it_holds_then_names_the_offset() {
    let s = session();
    let bytes = std::fs::read(&s.recording).unwrap();
    let cut = &bytes[..bytes.len() * 2 / 3];
    let path = tmp("cut.trc");
    std::fs::write(&path, cut).unwrap();
    // Where the library's reader stops: the offset the command must name.
    let mut reader = Reader::new(cut).expect("the header is intact");
    let offset = loop {
        match reader.next_record() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a cut recording read to its end"),
            Err(e) => break e.offset,
        }
    };
    assert!(offset <= cut.len() as u64);
    let p = path.to_str().unwrap();
    for args in [
        &["closes", "--json", "--from", p][..],
        &["histogram", "--state", "established", "--json", "--from", p],
        &["run", "--quiet", "--from", p],
    ] {
        let out = tracer(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("error: {p}: truncated"))
                && last.contains(&format!("at byte {offset}")),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match args[0] {
            "closes" => {
                let rows = stdout_json(&out);
                let ended: u64 = rows
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["ended"].as_u64().unwrap())
                    .sum();
                assert!((1..=2 * CONNECTIONS).contains(&ended), "{rows}");
            }
            "histogram" => {
                let count = stdout_json(&out)["count"].as_u64().unwrap();
                assert!((1..=2 * CONNECTIONS).contains(&count), "{count}");
            }
            _ => assert!(
                stdout.contains("final"),
                "the final summary is printed: {stdout}"
            ),
        }
    }
    std::fs::remove_file(&path).unwrap();
    done_with(s);
}

#[test]
fn a_file_that_is_no_recording_is_named_as_such() {
    let path = tmp("not-a-recording.trc");
    std::fs::write(&path, "STATE COUNT\nESTABLISHED 3\n").unwrap();
    let out = tracer(&["closes", "--from", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a tracer recording"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}
