//! The protocol without a socket (round trips, malformed input), the socket file and the
//! server's connections over real Unix sockets in a temporary directory (no root needed).
use serde_json::Value;
use tracer_common::{AF_INET, FilterConfig};

use super::protocol::*;
use crate::{model::TcpState, stats::closes::GroupBy};

fn refusal(line: &str) -> Refusal {
    Request::parse(line.as_bytes()).unwrap_err()
}

#[test]
fn requests_round_trip() {
    for query in [
        Query::Ping,
        Query::Summary,
        Query::Histogram(TcpState::TimeWait),
        Query::Closes(GroupBy::Service),
        Query::Closes(GroupBy::Process),
    ] {
        for filter_id in [None, Some(filter_id(&FilterConfig::default()))] {
            let request = Request { query, filter_id };
            let line = request.to_line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(Request::parse(line.trim_end().as_bytes()), Ok(request));
        }
    }
    assert_eq!(
        Request::new(Query::Histogram(TcpState::CloseWait)).to_line(),
        "{\"v\":1,\"query\":\"histogram\",\"state\":\"CLOSE_WAIT\"}\n"
    );
}

#[test]
fn requests_are_read_leniently_where_it_is_harmless() {
    let parse = |s: &str| Request::parse(s.as_bytes()).map(|r| r.query);
    assert_eq!(
        parse(r#"{"v":1,"query":"histogram","state":"time-wait","extra":[1]}"#),
        Ok(Query::Histogram(TcpState::TimeWait))
    );
    assert_eq!(
        parse(r#"{"v":1,"query":"closes"}"#),
        Ok(Query::Closes(GroupBy::Service))
    );
    assert_eq!(
        parse(r#"{"v":1,"query":"closes","by":"PROCESS"}"#),
        Ok(Query::Closes(GroupBy::Process))
    );
    assert_eq!(parse(" {\"query\":\"ping\",\"v\":1} "), Ok(Query::Ping));
}

#[test]
fn malformed_requests_are_refused_with_a_reason() {
    for (line, code, says) in [
        ("", ErrorCode::BadRequest, "malformed"),
        ("garbage", ErrorCode::BadRequest, "malformed"),
        ("[1,2]", ErrorCode::BadRequest, "malformed"),
        ("{\"v\":1,\"query\":", ErrorCode::BadRequest, "malformed"),
        (r#"{"query":"ping"}"#, ErrorCode::BadRequest, "version"),
        (
            r#"{"v":"1","query":"ping"}"#,
            ErrorCode::BadRequest,
            "string",
        ),
        (r#"{"v":-1,"query":"ping"}"#, ErrorCode::BadRequest, "-1"),
        (
            r#"{"v":2,"query":"ping"}"#,
            ErrorCode::UnsupportedVersion,
            "2",
        ),
        (r#"{"v":1}"#, ErrorCode::BadRequest, "ping, summary"),
        (
            r#"{"v":1,"query":"drop"}"#,
            ErrorCode::UnknownQuery,
            "'drop'",
        ),
        (r#"{"v":1,"query":7}"#, ErrorCode::BadRequest, "malformed"),
        (
            r#"{"v":1,"query":"histogram"}"#,
            ErrorCode::BadRequest,
            "state",
        ),
        (
            r#"{"v":1,"query":"histogram","state":"BUSY"}"#,
            ErrorCode::BadRequest,
            "'BUSY'",
        ),
        (
            r#"{"v":1,"query":"closes","by":"port"}"#,
            ErrorCode::BadRequest,
            "'port'",
        ),
    ] {
        let r = refusal(line);
        assert_eq!(r.code, code, "{line}: {r:?}");
        assert!(r.message.contains(says), "{line}: {}", r.message);
        assert!(!r.message.contains('\n'), "{}", r.message);
    }
    let long = format!(
        "{{\"v\":1,\"query\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    );
    assert_eq!(refusal(&long).code, ErrorCode::TooLong);
    // Invalid UTF-8 and NUL bytes are refused, not a panic.
    assert_eq!(
        Request::parse(b"{\"v\":1,\"query\":\"\xff\"}")
            .unwrap_err()
            .code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        Request::parse(&[0; 16]).unwrap_err().code,
        ErrorCode::BadRequest
    );
}

#[test]
fn responses_round_trip() {
    let status = Status {
        since: "2026-01-02T03:04:05+00:00".into(),
        window: SINCE_START.into(),
        collected_ns: 5,
        events: 6,
        lost: 0,
        undecodable: 0,
        filter: "all TCP traffic".into(),
    };
    let ok = Response::success(42, status, serde_json::json!([{"count": 1}]));
    let line = ok.to_line();
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["window"], "since_start");
    assert_eq!(v["since"], "2026-01-02T03:04:05+00:00");
    assert!(v.get("code").is_none() && v.get("error").is_none());
    assert_eq!(Response::parse(line.as_bytes()).unwrap(), ok);

    let err = Response::failure(42, Refusal::new(ErrorCode::UnknownQuery, "no"));
    let line = err.to_line();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["code"], "unknown_query");
    assert!(v.get("answer").is_none() && v.get("since").is_none());
    assert_eq!(Response::parse(line.as_bytes()).unwrap(), err);

    let newer = br#"{"v":1,"ok":false,"pid":1,"code":"too_tired","error":"later"}"#;
    assert_eq!(
        Response::parse(newer).unwrap().code,
        Some(ErrorCode::Unknown)
    );
}

#[test]
fn filters_are_described_and_identified() {
    let mut f = FilterConfig::default();
    assert_eq!(describe(&f), "all TCP traffic");
    f.family = AF_INET;
    f.port_count = 2;
    f.ports[..2].copy_from_slice(&[80, 443]);
    assert_eq!(describe(&f), "IPv4, ports 80, 443");
    f.family = 0;
    f.port_count = 1;
    assert_eq!(describe(&f), "port 80");
    assert_ne!(filter_id(&f), filter_id(&FilterConfig::default()));
    assert_eq!(filter_id(&f), filter_id(&f.clone()));
}

mod sockets {
    use std::{
        fs,
        io::{BufRead, BufReader, Read, Write},
        os::unix::{
            fs::{FileTypeExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
        path::{Path, PathBuf},
        time::Duration,
    };

    use anyhow::Result;
    use serde_json::Value;
    use tracer_common::{FilterConfig, RawEvent, kind, tcp_state};

    use crate::{
        commands::{
            collect::{Collector, Sink},
            histogram::HistogramJson,
        },
        daemon::{
            client::{Reply, ask},
            protocol::{ALL_TRAFFIC, ErrorCode, Query, Request, Response, SINCE_START, filter_id},
            server::{Context, Server},
            socket::bind,
        },
        model::{Step, TcpState},
        output::chart,
        recording::{Header, Record},
        stats::closes::{CloseStats, GroupBy},
    };

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("tracer-daemon-unit-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_socket_file_is_private_and_only_a_live_daemon_keeps_it() {
        let dir = TempDir::new("file");
        let path = dir.0.join("run").join("t.sock");
        let bound = bind(&path).unwrap();
        assert!(fs::metadata(&path).unwrap().file_type().is_socket());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        let err = bind(&path).unwrap_err().to_string();
        let pid = std::process::id();
        let expected = format!(
            "another tracer daemon (pid {pid}) already serves {}",
            path.display()
        );
        assert!(err.contains(&expected), "{err}");
        drop(bound);
        assert!(!path.exists(), "removed with its daemon");

        // A dead daemon's file, nobody accepting on it, is replaced.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let bound = bind(&path).unwrap();
        // A file that replaced ours is not removed with ours.
        fs::remove_file(&path).unwrap();
        let other = bind(&path).unwrap();
        drop(bound);
        assert!(path.exists());
        drop(other);
        assert!(!path.exists());

        fs::write(&path, "data").unwrap();
        let err = bind(&path).unwrap_err().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
    }

    const S: u64 = 1_000_000_000;
    const START: u64 = 1_000 * S;
    const CONNECTIONS: u64 = 30;

    fn change(ts_ns: u64, sk: u64, old: u8, new: u8) -> Record {
        let mut raw = RawEvent {
            ts_ns,
            sk,
            kind: kind::STATE_CHANGE,
            old_state: old,
            new_state: new,
            family: tracer_common::AF_INET,
            sport: 5000 + sk as u16,
            dport: 80,
            ..Default::default()
        };
        raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        Record::Event(raw)
    }

    struct Nothing;

    impl Sink for Nothing {
        fn step(&mut self, _: &Step) -> Result<()> {
            Ok(())
        }
        fn tick(&mut self, _: &Collector) -> Result<()> {
            Ok(())
        }
    }

    /// A replayed collector (no root): 30 connections established for 1 ms .. 3 s, and one
    /// still established at the end.
    fn collector(dir: &Path) -> Collector {
        let header = Header {
            flags: crate::recording::format::FLAG_TIMEWAIT_FOLLOWED,
            start_boot_ns: START,
            start_realtime_ns: 1_780_000_000 * S as i64,
            filter: FilterConfig::default(),
            tracer_version: "test".into(),
            hostname: "h".into(),
        };
        let mut bytes = header.encode();
        let mut events = 0;
        for sk in 1..=CONNECTIONS + 1 {
            change(START + sk, sk, tcp_state::SYN_SENT, tcp_state::ESTABLISHED).encode(&mut bytes);
            events += 1;
            if sk <= CONNECTIONS {
                let dwell = S / 1000 * sk * sk * 3;
                change(
                    START + sk + dwell,
                    sk,
                    tcp_state::ESTABLISHED,
                    tcp_state::CLOSE,
                )
                .encode(&mut bytes);
                events += 1;
            }
        }
        let end = Record::End {
            end_ns: START + 4 * S,
            lost: 0,
            events,
        };
        end.encode(&mut bytes);
        let path = dir.join("rec.trc");
        fs::write(&path, bytes).unwrap();
        let mut collector = Collector::replay(&path, &FilterConfig::default()).unwrap();
        let rt = runtime();
        rt.block_on(collector.run(None, Duration::from_secs(1), &mut Nothing))
            .unwrap();
        collector
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

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
}
