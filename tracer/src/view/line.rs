//! One line (text or JSON) per state transition.
use std::{fmt::Write, net::IpAddr};

use serde::Serialize;

use crate::model::{End, Note, Step, TcpState};
use crate::time::{clock::WallClock, duration::write_human};

/// `127.0.0.1:80`, `[::1]:80`.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    let mut out = String::new();
    let _ = write_endpoint(&mut out, addr, port);
    out
}

fn write_endpoint(out: &mut String, addr: IpAddr, port: u16) -> std::fmt::Result {
    match addr {
        IpAddr::V4(a) => write!(out, "{a}:{port}"),
        IpAddr::V6(a) => write!(out, "[{a}]:{port}"),
    }
}

fn note_text(note: Note) -> &'static str {
    match note {
        Note::TimewaitTakesOver => "timewait socket takes over",
        Note::Expired => "timer expired",
        Note::EndedEarly => "ended early",
        Note::StartNotSeen => "start not seen",
        Note::SynAckUnanswered => "SYN-ACK unanswered: dropped",
        Note::RequestRemoved => "removed before the final ACK",
        Note::ChildLost => "a second child of a completed handshake: no connection",
    }
}

/// Column header matching [`text`].
pub fn header() -> String {
    format!(
        "{:<12} {:>7} {:<15} {:<47} {:<26} {}",
        "TIME", "PID", "COMM", "LOCAL -> REMOTE", "OLD -> NEW", "TIME IN OLD"
    )
}

/// Formats text lines (`14:03:22.123  4242 nginx  127.0.0.1:8080 -> 127.0.0.1:51234
/// ESTABLISHED -> FIN_WAIT1  1.23ms`) into one reused buffer. With a line per event this is
/// the hot path: no allocation per line, and the local time of day is worked out once per
/// second instead of through chrono's formatter per event.
pub struct TextLines {
    clock: WallClock,
    buf: String,
    second: i64,
    hms: String,
}

impl TextLines {
    pub fn new(clock: WallClock) -> TextLines {
        TextLines {
            clock,
            buf: String::with_capacity(160),
            second: i64::MIN,
            hms: String::new(),
        }
    }

    /// The line for `step`, valid until the next call.
    pub fn format(&mut self, step: &Step) -> &str {
        let (second, nanos) = self.clock.split(step.ts_ns);
        let millis = nanos / 1_000_000;
        if second != self.second {
            self.second = second;
            self.hms = self.clock.at(step.ts_ns).format("%H:%M:%S").to_string();
        }
        let comm = if step.owner.pid == 0 {
            "-"
        } else {
            step.owner.comm.as_str()
        };
        let b = &mut self.buf;
        b.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            b,
            "{}.{millis:03} {:>7} {comm:<15} ",
            self.hms, step.owner.pid
        );
        let column = b.len();
        let _ = write_endpoint(b, step.tuple.local, step.tuple.local_port);
        b.push_str(" -> ");
        let _ = write_endpoint(b, step.tuple.remote, step.tuple.remote_port);
        pad(b, column, 47);
        let column = b.len();
        let _ = write!(b, "{} -> {}", step.from, step.to);
        pad(b, column, 26);
        match step.dwell_ns {
            Some(ns) => {
                let _ = write_human(b, ns);
            }
            None => b.push('-'),
        }
        if let Some(note) = step.note {
            let _ = write!(b, " ({})", note_text(note));
        }
        if let Some(end) = step.end {
            let _ = write!(b, " [{}]", end.kind.describe());
        }
        &self.buf
    }
}

/// Left-aligns what was written since `from` in a column of `width` characters, plus the
/// separating space.
fn pad(b: &mut String, from: usize, width: usize) {
    let written = b[from..].chars().count();
    for _ in written..width {
        b.push(' ');
    }
    b.push(' ');
}

#[derive(Serialize)]
struct JsonTransition<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: &'a str,
    ts_ns: u64,
    pid: u32,
    comm: &'a str,
    local: &'a str,
    remote: &'a str,
    from: TcpState,
    to: TcpState,
    dwell_ns: Option<u64>,
    note: Option<Note>,
    netns: u32,
    cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<End>,
}

/// Formats JSON lines (one object per transition, no trailing newline) into reused buffers,
/// with the RFC 3339 date, time of day and zone worked out once per second.
pub struct JsonLines {
    clock: WallClock,
    second: i64,
    /// `2026-11-28T14:03:22` and `+00:00` of the current second.
    date_time: String,
    zone: String,
    time: String,
    local: String,
    remote: String,
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn new(clock: WallClock) -> JsonLines {
        JsonLines {
            clock,
            second: i64::MIN,
            date_time: String::new(),
            zone: String::new(),
            time: String::new(),
            local: String::new(),
            remote: String::new(),
            buf: Vec::with_capacity(400),
        }
    }

    /// The JSON object for `step`, valid until the next call.
    pub fn format(&mut self, step: &Step) -> &[u8] {
        let (second, nanos) = self.clock.split(step.ts_ns);
        if second != self.second {
            self.second = second;
            let at = self.clock.at(step.ts_ns);
            self.date_time = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            self.zone = at.format("%:z").to_string();
        }
        self.time.clear();
        let _ = write!(self.time, "{}.{nanos:09}{}", self.date_time, self.zone);
        self.local.clear();
        let _ = write_endpoint(&mut self.local, step.tuple.local, step.tuple.local_port);
        self.remote.clear();
        let _ = write_endpoint(&mut self.remote, step.tuple.remote, step.tuple.remote_port);
        let line = JsonTransition {
            kind: "transition",
            time: &self.time,
            ts_ns: step.ts_ns,
            pid: step.owner.pid,
            comm: step.owner.comm.as_str(),
            local: &self.local,
            remote: &self.remote,
            from: step.from,
            to: step.to,
            dwell_ns: step.dwell_ns,
            note: step.note,
            netns: step.netns,
            cgroup_id: step.owner.cgroup_id,
            end: step.end,
        };
        self.buf.clear();
        // Serialising plain fields into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &line);
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{JsonLines, TextLines, WallClock};
    use crate::model::{Owner, Step, TcpState, Tuple};

    fn step(local: IpAddr, remote: IpAddr, dwell_ns: Option<u64>) -> Step {
        Step {
            ts_ns: 1_500_000_000,
            from: TcpState::Established,
            to: TcpState::FinWait1,
            dwell_ns,
            tuple: Tuple {
                local,
                local_port: 8080,
                remote,
                remote_port: 51234,
            },
            sk: 0,
            netns: 0,
            owner: Owner::default(),
            note: None,
            end: None,
        }
    }

    #[test]
    fn columns_line_up_for_both_families() {
        let clock = WallClock::from_pair(0, 0);
        let mut lines = TextLines::new(clock);
        let v4 = lines
            .format(&step(
                Ipv4Addr::LOCALHOST.into(),
                Ipv4Addr::LOCALHOST.into(),
                Some(1_230_000),
            ))
            .to_string();
        assert!(v4.ends_with("1.23ms"), "{v4}");
        assert!(
            v4.contains(".500       0 -               127.0.0.1:8080 -> 127.0.0.1:51234"),
            "{v4}"
        );
        let v6 = lines
            .format(&step(
                Ipv6Addr::LOCALHOST.into(),
                Ipv6Addr::LOCALHOST.into(),
                None,
            ))
            .to_string();
        assert!(v6.ends_with(" -"), "{v6}");
        // The state column starts at the same place whatever the address length.
        assert_eq!(v4.find("ESTABLISHED"), v6.find("ESTABLISHED"));
        assert_eq!(
            v4.find("ESTABLISHED"),
            Some(12 + 1 + 7 + 1 + 15 + 1 + 47 + 1)
        );
    }

    #[test]
    fn json_lines_are_objects_with_an_rfc3339_time() {
        let mut lines = JsonLines::new(WallClock::from_pair(0, 1_700_000_000_000_000_000));
        let v4 = Ipv4Addr::LOCALHOST.into();
        let text = lines.format(&step(v4, v4, Some(5))).to_vec();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["type"], "transition");
        assert_eq!(value["local"], "127.0.0.1:8080");
        assert_eq!(value["from"], "ESTABLISHED");
        assert_eq!(value["dwell_ns"], 5);
        let time = value["time"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert_eq!(
            parsed.timestamp_nanos_opt(),
            Some(1_700_000_001_500_000_000)
        );
    }
}
