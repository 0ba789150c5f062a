//! The server's connections and the client over real Unix sockets.
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    time::Duration,
};

use serde_json::Value;
use tracer_common::FilterConfig;

use super::fixtures::{CONNECTIONS, S, TempDir, collector, runtime};
use crate::{
    commands::histogram::HistogramJson,
    daemon::{
        client::{Reply, ask},
        protocol::{ALL_TRAFFIC, ErrorCode, Query, Request, Response, SINCE_START, filter_id},
        server::{Context, Server},
        socket::bind,
    },
    model::TcpState,
    output::chart,
    stats::closes::{CloseStats, GroupBy},
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

fn answered(path: &Path, request: &Request) -> crate::daemon::client::Answer {
    match ask(path, request).unwrap() {
        Reply::Answered(answer) => answer,
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

    let mut ports = FilterConfig {
        port_count: 1,
        ..FilterConfig::default()
    };
    ports.ports[0] = 80;
    let other = Request {
        query: Query::Ping,
        filter_id: Some(filter_id(&ports)),
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

#[test]
fn the_server_answers_from_the_collector_and_outlives_bad_requests() {
    let dir = TempDir::new("server");
    let path = dir.0.join("t.sock");
    let collector = collector(&dir.0);
    let closes = CloseStats::default();
    let rt = runtime();
    let context = Context::new(&FilterConfig::default());
    let server = rt.block_on(async { Server::start(bind(&path).unwrap(), context).unwrap() });
    let client = {
        let path = path.clone();
        std::thread::spawn(move || client_side(&path))
    };
    // The collect loop's part: answer whenever woken, until the client is done.
    rt.block_on(async {
        let wakeup = server.wakeup();
        for _ in 0..1000 {
            if client.is_finished() {
                break;
            }
            tokio::select! {
                _ = wakeup.notified() => server.answer(&collector, &closes),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    });
    client.join().expect("client side checks");
    drop(server);
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
