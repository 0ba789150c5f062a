//! The control socket under hostile clients (a property test): arbitrary bytes, invalid UTF-8,
//! lines over the limit, JSON of the wrong shape, half lines then a hang-up, and crowds of idle
//! connections, each thrown at a real server over its Unix socket. Whatever comes back must be
//! protocol lines, and after every case the server must still answer a valid query correctly.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{
    fixtures::{CONNECTIONS, TempDir},
    serving::Serving,
};
use crate::{
    model::TcpState,
    service::daemon::{
        client::{Reply, ask},
        protocol::{ErrorCode, MAX_REQUEST, Query, Request, Response},
        server::MAX_CONNECTIONS,
    },
    view::histogram::HistogramJson,
};

#[derive(Clone, Debug)]
enum Attack {
    /// Any bytes (invalid UTF-8, NULs, newlines), our side closed after them.
    Bytes(Vec<u8>),
    /// One line longer than the limit, with or without its newline.
    Huge {
        extra: usize,
        byte: u8,
        newline: bool,
    },
    /// A JSON object of arbitrary fields and types, as one line.
    Json(String),
    /// Part of a line, then a hang-up without reading.
    HalfLine(Vec<u8>),
    /// Connections that say nothing (or half a line) and stay open meanwhile.
    Idle { connections: usize, partial: bool },
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "ping",
            "summary",
            "histogram",
            "closes",
            "time-wait",
            "process",
            "1",
            "2026-11-28T14:00:00Z",
            "3000-01-01T00:00:00Z",
        ])
        .prop_map(Value::from),
        Just(Value::from(1)),
    ]
}

fn json() -> impl Strategy<Value = String> {
    let value = scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    let key = prop_oneof![
        prop::sample::select(vec![
            "v",
            "query",
            "state",
            "by",
            "filter_id",
            "last_ns",
            "start",
        ])
        .prop_map(String::from),
        "[a-z_]{1,8}",
    ];
    prop::collection::vec((key, value), 0..7).prop_map(|fields| {
        let object: Map<String, Value> = fields.into_iter().collect();
        Value::Object(object).to_string()
    })
}

fn attack() -> impl Strategy<Value = Attack> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(Attack::Bytes),
        (1..100_000usize, any::<u8>(), any::<bool>()).prop_map(|(extra, byte, newline)| {
            Attack::Huge {
                extra,
                byte,
                newline,
            }
        }),
        json().prop_map(Attack::Json),
        prop::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            1..512
        )
        .prop_map(Attack::HalfLine),
        (1..=MAX_CONNECTIONS + 16, any::<bool>()).prop_map(|(connections, partial)| Attack::Idle {
            connections,
            partial
        }),
    ]
}

fn connect(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Writes `bytes` (the server may close first: write errors are fine), ends our side, and
/// checks every line that comes back is a protocol response.
fn send(path: &Path, bytes: &[u8]) {
    let mut stream = connect(path);
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    for line in BufReader::new(&stream).split(b'\n').take(10_000) {
        let Ok(line) = line else { break };
        let response = Response::parse(&line)
            .unwrap_or_else(|e| panic!("not a response ({e}): {}", String::from_utf8_lossy(&line)));
        assert_eq!(response.v, 1);
        assert_eq!(response.ok, response.code.is_none(), "{response:?}");
        assert_eq!(response.ok, response.status.is_some(), "{response:?}");
    }
}

/// A ping over a fresh connection: `Ok` with its answer, or the refusal's code.
fn ping(path: &Path) -> Result<Value, Option<ErrorCode>> {
    let mut stream = connect(path);
    stream
        .write_all(Request::new(Query::Ping).to_line().as_bytes())
        .map_err(|_| None)?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut line)
        .map_err(|_| None)?;
    let response = Response::parse(line.trim_ascii_end()).map_err(|_| None)?;
    if response.ok {
        Ok(response.answer)
    } else {
        Err(response.code)
    }
}

/// The server still answers, and correctly (within 5 s: idle connections just closed may
/// still count for a moment).
fn still_serves(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ping(path) {
            Ok(pong) => {
                assert_eq!(pong, "pong");
                break;
            }
            Err(code) if Instant::now() < deadline => {
                assert!(matches!(code, Some(ErrorCode::Busy) | None), "{code:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(code) => panic!("the server stopped answering: {code:?}"),
        }
    }
    let query = Request::new(Query::Histogram(TcpState::Established));
    let Ok(Reply::Answered(answer)) = ask(path, &query) else {
        panic!("no histogram answer");
    };
    let h: HistogramJson = serde_json::from_value(answer.answer).unwrap();
    assert_eq!((h.summary.count, h.summary.in_progress), (CONNECTIONS, 1));
}

fn throw(path: &Path, attack: &Attack) {
    match attack {
        Attack::Bytes(bytes) => send(path, bytes),
        Attack::Json(line) => send(path, format!("{line}\n").as_bytes()),
        Attack::Huge {
            extra,
            byte,
            newline,
        } => {
            let byte = if *byte == b'\n' { b'x' } else { *byte };
            let mut line = vec![byte; MAX_REQUEST + extra];
            if *newline {
                line.push(b'\n');
            }
            send(path, &line);
        }
        Attack::HalfLine(bytes) => {
            let mut stream = connect(path);
            let _ = stream.write_all(bytes);
        }
        Attack::Idle {
            connections,
            partial,
        } => {
            let idle: Vec<UnixStream> = (0..*connections)
                .map(|_| {
                    let mut stream = connect(path);
                    if *partial {
                        let _ = stream.write_all(b"{\"v\":1,\"qu");
                    }
                    stream
                })
                .collect();
            // Below the limit a newcomer is served at once; above it, refused as busy.
            match ping(path) {
                Ok(pong) => assert_eq!(pong, "pong"),
                Err(code) => assert!(
                    *connections >= MAX_CONNECTIONS - 1 && code == Some(ErrorCode::Busy),
                    "{connections} idle: {code:?}"
                ),
            }
            drop(idle);
        }
    }
}

#[test]
fn hostile_clients_never_stop_the_server() {
    let dir = TempDir::new("fuzz");
    let serving = Serving::start(&dir.0);
    let path = serving.path.clone();
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let began = Instant::now();
    proptest!(config, |(attack in attack())| {
        throw(&path, &attack);
        still_serves(&path);
    });
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "{:?}",
        began.elapsed()
    );
}
