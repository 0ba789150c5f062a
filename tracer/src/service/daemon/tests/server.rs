//! The server's connections and the client over real Unix sockets.
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    time::Duration,
};

use serde_json::Value;
use tracer_common::FilterConfig;

use super::{
    fixtures::{CONNECTIONS, S, SLOT, TempDir, collector},
    serving::Serving,
};
use crate::{
    model::TcpState,
    service::daemon::{
        client::{Reply, ask},
        protocol::{
            ALL_TRAFFIC, ErrorCode, INTERVAL, Query, Request, Response, SINCE_START, filter_id,
        },
        window::Window,
    },
    stats::{closes::GroupBy, window::sparse::FULL_BITS},
    view::chart,
    view::histogram::HistogramJson,
};

/// One raw exchange: writes `bytes` and ends its side, returns every line read until the
/// daemon closes.
fn exchange(path: &Path, bytes: &[u8]) -> Vec<Value> {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let lines: Vec<Value> = BufReader::new(&stream)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("a line before the close")).unwrap())
        .collect();
    lines
}

fn answered(path: &Path, request: &Request) -> crate::service::daemon::client::Answer {
    match ask(path, request).unwrap() {
        Reply::Answered(answer) => *answer,
        other => panic!("{other:?}"),
    }
}

/// What a client sees, run on its own thread against the server on the test's runtime.
fn client_side(path: &Path) {
    let ping = Request::new(Query::Ping);
    let pong = answered(path, &ping);
    assert_eq!(pong.pid, std::process::id());
    assert_eq!(pong.answer, "pong");
    assert_eq!(pong.status.window, SINCE_START);
    assert_eq!(pong.status.filter, ALL_TRAFFIC);
    assert_eq!(pong.status.events, 2 * CONNECTIONS + 1);
    assert_eq!(pong.status.collected_ns, 4 * S);
    assert!(chrono::DateTime::parse_from_rfc3339(&pong.status.since).is_ok());

    let h = answered(path, &Request::new(Query::Histogram(TcpState::Established)));
    let h: HistogramJson = serde_json::from_value(h.answer).unwrap();
    assert_eq!(h.summary.count, CONNECTIONS);
    assert_eq!(h.summary.in_progress, 1);
    let rows = answered(path, &Request::new(Query::Summary)).answer;
    assert_eq!(rows[0]["state"], "ESTABLISHED");
    let rows = answered(path, &Request::new(Query::Closes(GroupBy::Process))).answer;
    assert!(rows.is_array(), "{rows}");
    // No forecast window has ended (a replay has none): said, not made up.
    let f = answered(path, &Request::new(Query::Forecasts)).answer;
    assert_eq!(f["findings"], serde_json::json!([]), "{f}");
    assert_eq!(f["measured_at"], Value::Null, "{f}");
    assert_eq!(f["window_secs"], Value::Null, "{f}");

    let mut ports = FilterConfig {
        port_count: 1,
        ..FilterConfig::default()
    };
    ports.ports[0] = 80;
    let other = Request {
        filter_id: Some(filter_id(&ports)),
        ..Request::new(Query::Ping)
    };
    match ask(path, &other).unwrap() {
        Reply::OtherFilter { message, .. } => assert!(message.contains(ALL_TRAFFIC)),
        other => panic!("{other:?}"),
    }

    // Several requests on one connection, each answered.
    let two = exchange(path, ping.to_line().repeat(2).as_bytes());
    assert!(
        two.len() == 2 && two.iter().all(|r| r["ok"] == true),
        "{two:?}"
    );
    // An error response, then the connection closes: the request after it is not read.
    let line = format!("garbage\n{}", ping.to_line());
    let bad = exchange(path, line.as_bytes());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["ok"], false);
    assert_eq!(bad[0]["code"], "bad_request");
    let unknown = exchange(path, b"{\"v\":1,\"query\":\"reboot\"}\n");
    assert_eq!(unknown[0]["code"], "unknown_query");
    let long = exchange(path, &[b'x'; 70_000]);
    assert_eq!(long[0]["code"], "too_long");
    let refused = Response::parse(&serde_json::to_vec(&long[0]).unwrap()).unwrap();
    assert_eq!(refused.code, Some(ErrorCode::TooLong));
    // ... and the daemon still serves.
    assert_eq!(answered(path, &ping).answer, "pong");
}

/// `query` over the last `last` (or since a wall-clock time), answered.
fn windowed(path: &Path, query: Query, window: Window) -> crate::service::daemon::client::Answer {
    answered(
        path,
        &Request {
            window: Some(window),
            ..Request::new(query)
        },
    )
}

/// Intervals: the fixture's connections end 3 ms × n² after they start, the recording lasts
/// 4 s, and the history has 1 s slots on whole seconds of it.
fn windows(path: &Path) {
    let slot_ns = u64::try_from(SLOT.as_nanos()).unwrap();
    // The last 2 s: from the slot edge at 2 s, where connections 26..=30 ended.
    let query = Query::Histogram(TcpState::Established);
    let last = windowed(path, query, Window::Last(2 * S));
    assert_eq!(last.status.window, INTERVAL);
    let interval = last.status.interval.clone().expect("an interval");
    assert_eq!(interval.slot_ns, slot_ns);
    assert_eq!(interval.duration_ns, 2 * S);
    assert_eq!(interval.significant_bits, FULL_BITS);
    assert!(interval.note.is_none(), "{interval:?}");
    assert_eq!(last.status.collected_ns, 2 * S);
    let h: HistogramJson = serde_json::from_value(last.answer).unwrap();
    assert_eq!(h.summary.count, 5, "{h:?}");
    let equivalent = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    assert_eq!(
        h.summary.min_ns,
        equivalent.lowest_equivalent(3_000_000 * 26 * 26)
    );
    assert_eq!(h.summary.in_progress, 1, "sockets still in it, as of now");
    let whole = answered(path, &Request::new(query));
    let whole: HistogramJson = serde_json::from_value(whole.answer).unwrap();
    assert_eq!(h.summary.max_ns, whole.summary.max_ns);
    let rows = windowed(path, Query::Closes(GroupBy::Service), Window::Last(2 * S)).answer;
    let ended: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ended"].as_u64().unwrap())
        .sum();
    assert_eq!(ended, 5, "{rows}");
    // The last 1.5 s start at 2.5 s: rounded down to the slot edge at 2 s.
    let half = windowed(path, query, Window::Last(S + S / 2));
    let half = half.status.interval.unwrap();
    assert_eq!(
        half.duration_ns,
        2 * S,
        "the start goes back to a slot edge"
    );
    assert_ne!(half.requested, half.start);

    // Before the daemon started: everything since its start, and a note saying so.
    let all = windowed(path, query, Window::Last(60 * S));
    assert_eq!(all.status.window, SINCE_START);
    let interval = all.status.interval.expect("an interval");
    assert_eq!(interval.slot_ns, 0);
    assert_eq!(interval.duration_ns, 4 * S);
    assert!(interval.note.unwrap().contains("the daemon started at"));
    let h: HistogramJson = serde_json::from_value(all.answer).unwrap();
    assert_eq!(h.summary.count, CONNECTIONS);

    // A start in the future is refused, and says why.
    let future = Request {
        window: Some(Window::Since(i64::MAX / 2)),
        ..Request::new(Query::Ping)
    };
    let reply = exchange(path, future.to_line().as_bytes());
    assert_eq!(reply[0]["code"], "bad_request", "{reply:?}");
    assert!(
        reply[0]["error"]
            .as_str()
            .unwrap()
            .contains("in the future")
    );
}

#[test]
fn the_server_answers_from_the_collector_and_outlives_bad_requests() {
    let dir = TempDir::new("server");
    let serving = Serving::start(&dir.0);
    let path = serving.path.clone();
    client_side(&path);
    windows(&path);
    drop(serving);
    assert!(!path.exists(), "removed when the server ends");
    assert!(matches!(
        ask(&path, &Request::new(Query::Ping)),
        Ok(Reply::NoDaemon)
    ));
}

#[test]
fn a_daemon_hanging_up_is_an_error_and_a_dead_one_is_no_daemon() {
    let dir = TempDir::new("client");
    let path = dir.0.join("t.sock");
    let ping = Request::new(Query::Ping);
    assert!(matches!(ask(&path, &ping), Ok(Reply::NoDaemon)));
    drop(UnixListener::bind(&path).unwrap());
    assert!(matches!(ask(&path, &ping), Ok(Reply::NoDaemon)), "stale");

    let path = dir.0.join("hangs-up.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut byte = [0; 1];
        let _ = stream.read(&mut byte);
    });
    let err = ask(&path, &ping).unwrap_err().to_string();
    assert!(
        err.contains("closed the connection before answering"),
        "{err}"
    );
    peer.join().unwrap();
}

#[test]
fn a_chart_from_the_daemons_buckets_is_the_chart_of_the_histogram() {
    let dir = TempDir::new("chart");
    let collector = collector(&dir.0);
    let data = HistogramJson::of(&collector, TcpState::Established);
    let json = serde_json::to_string(&data).unwrap();
    let back: HistogramJson = serde_json::from_str(&json).unwrap();
    assert_eq!(back.summary, data.summary);
    let direct = chart::text(
        &data.summary,
        collector.stats.histogram(TcpState::Established),
    );
    assert_eq!(chart::text(&back.summary, &back.histogram()), direct);
    assert!(direct.contains("30 sockets left the state"), "{direct}");
}
