//! The protocol without a socket: round trips, lenient reading, malformed input, filters.
use serde_json::Value;
use tracer_common::{AF_INET, FilterConfig};

use crate::service::daemon::{protocol::*, window::Window};
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
        Query::Forecasts,
    ] {
        for (filter_id, window) in [
            (None, None),
            (Some(filter_id(&FilterConfig::default())), None),
            (None, Some(Window::Last(300_000_000_000))),
            (None, Some(Window::Since(1_780_000_000_123_456_789))),
        ] {
            let request = Request {
                query,
                filter_id,
                window,
            };
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
        (
            r#"{"v":1,"query":"ping","last_ns":5,"start":"2026-11-28T14:00:00Z"}"#,
            ErrorCode::BadRequest,
            "not both",
        ),
        (
            r#"{"v":1,"query":"ping","last_ns":0}"#,
            ErrorCode::BadRequest,
            "more than 0",
        ),
        (
            r#"{"v":1,"query":"ping","last_ns":"5m"}"#,
            ErrorCode::BadRequest,
            "malformed",
        ),
        (
            r#"{"v":1,"query":"ping","last_ns":-1}"#,
            ErrorCode::BadRequest,
            "malformed",
        ),
        (
            r#"{"v":1,"query":"ping","start":"14:00"}"#,
            ErrorCode::BadRequest,
            "RFC 3339",
        ),
        (
            r#"{"v":1,"query":"ping","start":"9999-12-31T23:59:59Z"}"#,
            ErrorCode::BadRequest,
            "out of range",
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
        gaps: 1,
        filter: "all TCP traffic".into(),
        interval: None,
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
