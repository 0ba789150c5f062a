//! The client side: `tracer histogram` and `tracer closes`, given neither `--duration` nor
//! `--from` (nor `--no-daemon`), ask a running `tracer run` first and answer at once; with no
//! daemon (no socket file, or a stale one nobody accepts on) they trace as before, except for
//! `--window`/`--since`, which only a daemon can answer.
use std::{
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Local};
use serde_json::Value;
use tracer_common::FilterConfig;

use super::{
    protocol::{ALL_TRAFFIC, ErrorCode, Query, Request, Response, Status, filter_id},
    socket::DEFAULT_PATH,
    window::{Interval, Window},
};
use crate::{error::UsageError, time::duration::human};

/// How long the daemon has to answer (it takes milliseconds).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest response read (a closes answer grows with the services seen).
const MAX_RESPONSE: u64 = 256 << 20;

/// A daemon's answer to one query.
#[derive(Debug)]
pub struct Answer {
    pub pid: u32,
    pub status: Status,
    pub answer: Value,
}

#[derive(Debug)]
pub enum Reply {
    /// Boxed: an answer (and its interval) is much larger than the other replies.
    Answered(Box<Answer>),
    /// Nobody serves the socket: no file, or a stale one.
    NoDaemon,
    /// The daemon traces with another kernel filter; the message says which.
    OtherFilter { pid: u32, message: String },
}

/// Sends `request` to the daemon at `path` and reads its response.
pub fn ask(path: &Path, request: &Request) -> Result<Reply> {
    let shown = path.display();
    let mut stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e) => {
            return match e.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::NotADirectory => {
                    Ok(Reply::NoDaemon)
                }
                ErrorKind::PermissionDenied => Err(anyhow!(
                    "the daemon's socket {shown} is only open to root: run with sudo"
                )),
                _ => Err(anyhow!(
                    "cannot reach the tracer daemon at {shown}: {e} (--no-daemon traces directly)"
                )),
            };
        }
    };
    let closed = |e: Option<std::io::Error>| match e {
        Some(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => anyhow!(
            "the tracer daemon at {shown} did not answer within {}s (--no-daemon traces directly)",
            TIMEOUT.as_secs()
        ),
        e => anyhow!(
            "the tracer daemon at {shown} closed the connection before answering{}",
            e.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream
        .write_all(request.to_line().as_bytes())
        .map_err(|e| closed(Some(e)))?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .take(MAX_RESPONSE)
        .read_until(b'\n', &mut line)
        .map_err(|e| closed(Some(e)))?;
    if line.pop() != Some(b'\n') {
        return Err(closed(None));
    }
    let response = Response::parse(&line)
        .map_err(|e| anyhow!("the tracer daemon at {shown} sent an unreadable response: {e}"))?;
    match response {
        Response {
            ok: true,
            pid,
            status: Some(status),
            answer,
            ..
        } => Ok(Reply::Answered(Box::new(Answer {
            pid,
            status,
            answer,
        }))),
        Response {
            code: Some(ErrorCode::OtherFilter),
            pid,
            error,
            ..
        } => Ok(Reply::OtherFilter {
            pid,
            message: error.unwrap_or_default(),
        }),
        Response { pid, error, .. } => bail!(
            "the tracer daemon (pid {pid}) refused the query: {}",
            error.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// An RFC 3339 time as `HH:MM:SS`, with the date when it is not today.
pub fn clock_time(rfc3339: &str) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(at) => {
            let at = at.with_timezone(&Local);
            if at.date_naive() == Local::now().date_naive() {
                at.format("%H:%M:%S").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M:%S").to_string()
            }
        }
        Err(_) => rfc3339.to_string(),
    }
}

/// `14:00:00–14:05:03`: an interval as the outputs show it.
pub fn span(interval: &Interval) -> String {
    format!(
        "{}–{}",
        clock_time(&interval.start),
        clock_time(&interval.end)
    )
}

/// `14:00:00–14:05:03 (5m03s; ` + `rest` + `)`.
pub fn span_and(interval: &Interval, rest: &str) -> String {
    format!(
        "{} ({}; {rest})",
        span(interval),
        human(interval.duration_ns)
    )
}

/// An interval asked for: the request's window, and how the user put it (`last 5m`).
pub struct Asked {
    pub window: Window,
    pub said: String,
}

/// For a command that would trace until Ctrl-C: the daemon's answer to `query` if one serves
/// `socket` (default [`DEFAULT_PATH`]), saying on stderr where it comes from; `None` to trace
/// directly. Given `--port`/`-4`/`-6`, only a daemon tracing exactly that filter answers. With
/// `asked` (`--window`/`--since`), no daemon that can answer is a usage error (exit 2).
pub fn consult(
    socket: Option<&Path>,
    query: Query,
    filter: &FilterConfig,
    asked: Option<&Asked>,
) -> Result<Option<Answer>> {
    let path = socket.unwrap_or(Path::new(DEFAULT_PATH));
    let mut request = Request::new(query);
    if *filter != FilterConfig::default() {
        request.filter_id = Some(filter_id(filter));
    }
    request.window = asked.map(|a| a.window);
    let option = match asked.map(|a| a.window) {
        Some(Window::Last(_)) => "--window",
        _ => "--since",
    };
    match ask(path, &request)? {
        Reply::NoDaemon if asked.is_some() => Err(UsageError(format!(
            "{option} asks a running `tracer run` about its history, and none serves {}: start \
             one (it keeps 1 hour in 10 s slots and 24 hours in 15 min slots), or collect anew \
             with --duration",
            path.display()
        ))
        .into()),
        Reply::NoDaemon => Ok(None),
        Reply::OtherFilter { pid, message } if asked.is_some() => Err(UsageError(format!(
            "the tracer daemon (pid {pid}) cannot answer {option}: {message}, and only a \
             daemon tracing exactly this filter can (ask without the filter options, or \
             collect anew with --duration)"
        ))
        .into()),
        Reply::OtherFilter { pid, message } => {
            log::info!("the tracer daemon (pid {pid}) cannot answer: {message}; tracing directly");
            Ok(None)
        }
        Reply::Answered(answer) => {
            let filter = match answer.status.filter.as_str() {
                ALL_TRAFFIC => String::new(),
                f => format!(", tracing {f}"),
            };
            let pid = answer.pid;
            match (asked, &answer.status.interval) {
                (None, _) => log::info!(
                    "from the tracer daemon (pid {pid}{filter}), collecting since {}",
                    clock_time(&answer.status.since)
                ),
                (Some(_), None) => bail!(
                    "the tracer daemon (pid {pid}) predates {option} and answered for \
                     everything since it started: restart it with this version of tracer"
                ),
                (Some(asked), Some(interval)) => {
                    let slots = match interval.slot_ns {
                        0 => String::new(),
                        ns => format!(
                            ", in {} slots",
                            humantime::format_duration(Duration::from_nanos(ns))
                        ),
                    };
                    log::info!(
                        "from the tracer daemon (pid {pid}{filter}), {} ({}{slots}); sockets \
                         still in a state as of {}",
                        span(interval),
                        asked.said,
                        clock_time(&interval.end)
                    );
                    if let Some(note) = &interval.note {
                        log::info!("note: {note}");
                    }
                }
            }
            Ok(Some(*answer))
        }
    }
}
