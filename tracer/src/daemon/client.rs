//! The client side: `tracer histogram` and `tracer closes`, given neither `--duration` nor
//! `--from` (nor `--no-daemon`), ask a running `tracer run` first and answer at once; with no
//! daemon (no socket file, or a stale one nobody accepts on) they trace as before.
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
};

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
    Answered(Answer),
    /// Nobody serves the socket: no file, or a stale one.
    NoDaemon,
    /// The daemon traces with another kernel filter; the message says which.
    OtherFilter {
        pid: u32,
        message: String,
    },
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
        } => Ok(Reply::Answered(Answer {
            pid,
            status,
            answer,
        })),
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

/// `HH:MM:SS`, with the date when it is not today.
fn since(status: &Status) -> String {
    match DateTime::parse_from_rfc3339(&status.since) {
        Ok(at) => {
            let at = at.with_timezone(&Local);
            if at.date_naive() == Local::now().date_naive() {
                at.format("%H:%M:%S").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M:%S").to_string()
            }
        }
        Err(_) => status.since.clone(),
    }
}

/// For a command that would trace until Ctrl-C: the daemon's answer to `query` if one serves
/// `socket` (default [`DEFAULT_PATH`]), saying on stderr where it comes from; `None` to trace
/// directly. Given `--port`/`-4`/`-6`, only a daemon tracing exactly that filter answers.
pub fn consult(
    socket: Option<&Path>,
    query: Query,
    filter: &FilterConfig,
) -> Result<Option<Answer>> {
    let path = socket.unwrap_or(Path::new(DEFAULT_PATH));
    let mut request = Request::new(query);
    if *filter != FilterConfig::default() {
        request.filter_id = Some(filter_id(filter));
    }
    match ask(path, &request)? {
        Reply::NoDaemon => Ok(None),
        Reply::OtherFilter { pid, message } => {
            eprintln!("the tracer daemon (pid {pid}) cannot answer: {message}; tracing directly");
            Ok(None)
        }
        Reply::Answered(answer) => {
            let filter = match answer.status.filter.as_str() {
                ALL_TRAFFIC => String::new(),
                f => format!(", tracing {f}"),
            };
            eprintln!(
                "from the tracer daemon (pid {}{filter}), collecting since {}",
                answer.pid,
                since(&answer.status)
            );
            Ok(Some(answer))
        }
    }
}
