//! The control socket's protocol, version 1: the client writes one JSON request on one line, the
//! daemon answers with one JSON response on one line. A connection may carry several requests in
//! turn; the daemon closes it after an error response.
//!
//! Requests (`v` is required, unknown fields are ignored):
//!
//! ```text
//! {"v":1,"query":"ping"}
//! {"v":1,"query":"summary"}                        per-state rows, as `tracer run --json` prints
//! {"v":1,"query":"histogram","state":"TIME_WAIT"}  the object `tracer histogram --json` prints
//! {"v":1,"query":"closes","by":"process"}          the rows `tracer closes --json` prints
//!                                                  (by: service, the default, process,
//!                                                  unit or container)
//! {"v":1,"query":"forecasts"}                      the latest forecasts of this namespace:
//!                                                  TIME_WAIT buckets, local ports per
//!                                                  destination (`tracer doctor`'s findings)
//! ```
//!
//! An optional `"filter_id"` ([`filter_id`] of the client's kernel filter) asks for an answer only
//! from a daemon tracing with exactly that filter; another daemon answers `other_filter`. An
//! optional `"last_ns"` (what ended in the last N ns) or `"start"` (what ended since an RFC 3339
//! time) asks for an interval ([`window`](super::window)); its answer has an `"interval"`.
//!
//! Responses: `{"v":1,"ok":true,"pid":P,"since":"<RFC 3339>","window":"since_start",
//! "collected_ns":N,"events":N,"lost":N,"undecodable":N,"filter":"all TCP traffic","answer":...}`
//! or `{"v":1,"ok":false,"pid":P,"code":"bad_request","error":"<one sentence>"}`. Answers cover
//! the whole collection, since `since` (`"window":"since_start"`), unless the request asked for
//! an interval (`"window":"interval"` and an `"interval"` object, or `since_start` with an
//! `"interval"` when the interval began before the daemon did).
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracer_common::{AF_INET, AF_INET6, FilterConfig};

use super::window::{Interval, Window};
use crate::{model::TcpState, stats::closes::GroupBy};

pub const VERSION: u32 = 1;
/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;
/// `window` of an answer covering everything since the daemon started.
pub const SINCE_START: &str = "since_start";
/// `window` of an answer covering a part of it (see its `interval`).
pub const INTERVAL: &str = "interval";
/// [`describe`] of a filter that keeps everything.
pub const ALL_TRAFFIC: &str = "all TCP traffic";

/// A checked request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub query: Query,
    /// The client's kernel filter ([`filter_id`]); `None` takes the daemon's, whatever it is.
    pub filter_id: Option<String>,
    /// Only what ended in this interval; `None`: everything since the daemon started.
    pub window: Option<Window>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Query {
    Ping,
    Summary,
    Histogram(TcpState),
    Closes(GroupBy),
    Forecasts,
}

const QUERIES: &str = "ping, summary, histogram, closes, forecasts";

/// A request as it is on the wire, before it is checked.
#[derive(Default, Serialize, Deserialize)]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<String>,
}

/// Why a request gets no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, a field of the wrong type or a missing one.
    BadRequest,
    TooLong,
    UnsupportedVersion,
    UnknownQuery,
    /// The daemon traces with another kernel filter than the client asked for.
    OtherFilter,
    /// Too many connections, or the daemon did not answer in time.
    Busy,
    Stopping,
    Internal,
    /// A code this build does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

/// A refused request: its code and one sentence for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl Request {
    pub fn new(query: Query) -> Request {
        Request {
            query,
            filter_id: None,
            window: None,
        }
    }

    /// One request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Request, Refusal> {
        let bad = |m: String| Refusal::new(ErrorCode::BadRequest, m);
        if line.len() > MAX_REQUEST {
            return Err(Refusal::new(
                ErrorCode::TooLong,
                format!("request longer than {MAX_REQUEST} bytes"),
            ));
        }
        let wire: Wire =
            serde_json::from_slice(line).map_err(|e| bad(format!("malformed request: {e}")))?;
        match wire.v {
            None => return Err(bad("no protocol version (\"v\":1)".into())),
            Some(v) if v != u64::from(VERSION) => {
                return Err(Refusal::new(
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {v} is not supported (this daemon speaks {VERSION})"),
                ));
            }
            Some(_) => {}
        }
        let Some(name) = wire.query else {
            return Err(bad(format!("no \"query\" ({QUERIES})")));
        };
        let query = match name.as_str() {
            "ping" => Query::Ping,
            "summary" => Query::Summary,
            "histogram" => {
                let state = wire
                    .state
                    .ok_or_else(|| bad("a histogram query needs a \"state\"".into()))?;
                Query::Histogram(state.parse().map_err(|e| bad(format!("{e}")))?)
            }
            "closes" => Query::Closes(match wire.by {
                None => GroupBy::Service,
                Some(by) => by.parse().map_err(bad)?,
            }),
            "forecasts" => Query::Forecasts,
            other => {
                return Err(Refusal::new(
                    ErrorCode::UnknownQuery,
                    format!("unknown query '{other}' ({QUERIES})"),
                ));
            }
        };
        let window = Window::from_wire(wire.last_ns, wire.start.as_deref()).map_err(bad)?;
        Ok(Request {
            query,
            filter_id: wire.filter_id,
            window,
        })
    }

    /// The request line, newline included.
    pub fn to_line(&self) -> String {
        let (last_ns, start) = self.window.map(Window::to_wire).unwrap_or_default();
        let mut wire = Wire {
            v: Some(VERSION.into()),
            filter_id: self.filter_id.clone(),
            last_ns,
            start,
            ..Wire::default()
        };
        wire.query = Some(
            match self.query {
                Query::Ping => "ping",
                Query::Summary => "summary",
                Query::Histogram(state) => {
                    wire.state = Some(state.name().into());
                    "histogram"
                }
                Query::Closes(by) => {
                    wire.by = Some(by.name().to_string());
                    "closes"
                }
                Query::Forecasts => "forecasts",
            }
            .into(),
        );
        line(&wire)
    }
}

/// What the answer covers, from the daemon's collector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// When collection started (RFC 3339, the daemon's local time).
    pub since: String,
    /// The span the answer covers: [`SINCE_START`] or [`INTERVAL`].
    pub window: String,
    /// How long the answer covers: since the start, or the interval's duration.
    pub collected_ns: u64,
    /// Events read in that time.
    pub events: u64,
    /// Since the start, whatever the window (the kernel counts them without a time).
    pub lost: u64,
    pub undecodable: u64,
    /// Transitions inferred to have happened but never seen, since the start (README:
    /// Reliability); absent from older daemons.
    #[serde(default)]
    pub gaps: u64,
    /// The daemon's kernel filter in words ([`describe`]).
    pub filter: String,
    /// Present when the request asked for an interval: exactly what the answer covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    /// The daemon's process id.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The query's result (`"pong"` for ping); absent in an error response.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub answer: Value,
}

impl Response {
    pub fn success(pid: u32, status: Status, answer: Value) -> Response {
        Response {
            v: VERSION,
            ok: true,
            pid,
            code: None,
            error: None,
            status: Some(status),
            answer,
        }
    }

    pub fn failure(pid: u32, refusal: Refusal) -> Response {
        Response {
            v: VERSION,
            ok: false,
            pid,
            code: Some(refusal.code),
            error: Some(refusal.message),
            status: None,
            answer: Value::Null,
        }
    }

    /// The response line, newline included.
    pub fn to_line(&self) -> String {
        line(self)
    }

    pub fn parse(line: &[u8]) -> Result<Response, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// `value` as one JSON line. These types always serialize (string keys, no custom code); the
/// fallback only keeps this total.
fn line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_else(|e| {
        format!(
            r#"{{"v":{VERSION},"ok":false,"pid":{},"code":"internal","error":{}}}"#,
            std::process::id(),
            Value::String(e.to_string())
        )
    });
    s.push('\n');
    s
}

/// The kernel filter, exactly, as this build prints it: a client's answer comes from a daemon
/// only when both are equal (a daemon of another version just differs, and the client traces).
pub fn filter_id(filter: &FilterConfig) -> String {
    format!("{filter:?}")
}

/// The kernel filter in words: `all TCP traffic`, `IPv4, ports 80, 443`.
pub fn describe(filter: &FilterConfig) -> String {
    let mut parts = Vec::new();
    match filter.family {
        AF_INET => parts.push("IPv4".to_string()),
        AF_INET6 => parts.push("IPv6".to_string()),
        _ => {}
    }
    let ports = &filter.ports[..usize::from(filter.port_count).min(filter.ports.len())];
    if !ports.is_empty() {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let noun = if ports.len() == 1 { "port" } else { "ports" };
        parts.push(format!("{noun} {}", list.join(", ")));
    }
    // Criteria this description does not spell out (addresses, owners, ...) are still named.
    let described = FilterConfig {
        family: filter.family,
        port_count: filter.port_count,
        ports: filter.ports,
        ..FilterConfig::default()
    };
    if described != *filter {
        parts.push("further criteria".to_string());
    }
    if parts.is_empty() {
        ALL_TRAFFIC.into()
    } else {
        parts.join(", ")
    }
}
