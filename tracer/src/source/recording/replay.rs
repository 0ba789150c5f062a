//! A recording file opened as an event source for the collector: the reader, the user's extra
//! filter, the replay clock, the lost counter, and the error that cut the replay short.
use std::{
    fs::File,
    io::BufReader,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context, Result, anyhow};
use tracer_common::{
    AF_INET, AF_INET6, AddrRule, FilterConfig, MAX_ADDR_RULES, MAX_PORTS, RawEvent, owner_match,
};

use super::{
    format::{Header, Record},
    reader::Reader,
};
use crate::time::clock::WallClock;

pub struct Replay {
    reader: Reader<BufReader<File>>,
    /// The path as the user wrote it, for messages.
    name: String,
    /// `--port`/`-4`/`-6` given with `--from`: narrows what was recorded.
    filter: FilterConfig,
    /// The replay's "now": the latest time read so far, the end time once the end is read.
    pub now_ns: u64,
    /// The lost-events counter as of the last tick or end record.
    pub lost: u64,
    error: Option<anyhow::Error>,
}

impl Replay {
    /// Opens `path` and checks its header (magic, version, checksum).
    pub fn open(path: &Path, filter: FilterConfig) -> Result<Replay> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("opening {name}"))?;
        let reader = Reader::new(BufReader::with_capacity(256 * 1024, file))
            .map_err(|e| anyhow!("{name}: {e}"))?;
        let now_ns = reader.header().start_boot_ns;
        Ok(Replay {
            reader,
            name,
            filter,
            now_ns,
            lost: 0,
            error: None,
        })
    }

    pub fn header(&self) -> &Header {
        self.reader.header()
    }

    /// Wall-clock time of the recording host, so replays print the original times.
    pub fn clock(&self) -> WallClock {
        let h = self.header();
        WallClock::from_pair(h.start_boot_ns, h.start_realtime_ns)
    }

    /// The next record, or `None` at the end or at the first unreadable byte (the error is kept
    /// for [`Replay::take_error`]).
    pub fn next_record(&mut self) -> Option<Record> {
        match self.reader.next_record() {
            Ok(record) => record,
            Err(e) => {
                let events = self.reader.events();
                self.error = Some(anyhow!(
                    "{}: {e} (the results above come from the {events} events before it)",
                    self.name
                ));
                None
            }
        }
    }

    /// Whether the user's filter keeps this event (the recording's own filter already did).
    pub fn accepts(&self, raw: &RawEvent) -> bool {
        self.filter.accepts_event(raw)
    }

    pub fn take_error(&mut self) -> Option<anyhow::Error> {
        self.error.take()
    }

    /// One line for stderr: what is being replayed.
    pub fn banner(&self) -> String {
        let h = self.header();
        let started = self.clock().at(h.start_boot_ns);
        let mut line = format!(
            "replaying {}: recorded on {} from {} by tracer {} ({})",
            self.name,
            if h.hostname.is_empty() {
                "?"
            } else {
                &h.hostname
            },
            started.format("%Y-%m-%d %H:%M:%S %:z"),
            h.tracer_version,
            describe_filter(&h.filter)
                + if h.flags & super::format::FLAG_FILTER_NARROWER != 0 {
                    ", and criteria this format does not store"
                } else {
                    ""
                },
        );
        if self.filter != FilterConfig::default() {
            line.push_str(&format!("; keeping {}", describe_filter(&self.filter)));
        }
        line
    }
}

/// "IPv4 and IPv6, every port", "IPv4, port 80 443, address 10.0.0.0/8, netns 4026531840,
/// pid 42": a filter in words, as the replay banner shows it.
pub fn describe_filter(filter: &FilterConfig) -> String {
    let family = match filter.family {
        AF_INET => "IPv4",
        AF_INET6 => "IPv6",
        _ => "IPv4 and IPv6",
    };
    let count = usize::from(filter.port_count).min(MAX_PORTS);
    let mut text = if count == 0 {
        format!("{family}, every port")
    } else {
        let ports: Vec<String> = filter.ports[..count].iter().map(u16::to_string).collect();
        format!("{family}, port {}", ports.join(" "))
    };
    let rules = usize::from(filter.addr_count).min(MAX_ADDR_RULES);
    // Each IPv4 rule is followed by its IPv4-mapped IPv6 twin: shown once.
    let networks: Vec<String> = (0..rules)
        .filter(|&i| i == 0 || filter.addrs[i - 1].family != AF_INET)
        .map(|i| describe_rule(&filter.addrs[i]))
        .collect();
    if !networks.is_empty() {
        text.push_str(&format!(", address {}", networks.join(" ")));
    }
    if filter.netns != 0 {
        text.push_str(&format!(", netns {}", filter.netns));
    }
    if filter.owner_match & owner_match::CGROUP != 0 {
        text.push_str(&format!(", cgroup {}", filter.cgroup_id));
    }
    if filter.owner_match & owner_match::PID != 0 {
        text.push_str(&format!(", pid {}", filter.pid));
    }
    if filter.owner_match & owner_match::COMM != 0 {
        let len = filter.comm.iter().position(|&b| b == 0).unwrap_or(16);
        let comm = String::from_utf8_lossy(&filter.comm[..len]);
        text.push_str(&format!(", command {comm}"));
    }
    text
}

/// `10.0.0.0/8`, `fd00::/8`.
fn describe_rule(rule: &AddrRule) -> String {
    let mut addr = [0u8; 16];
    let mut prefix = 0;
    for i in 0..4 {
        addr[4 * i..4 * i + 4].copy_from_slice(&rule.addr[i].to_ne_bytes());
        prefix += rule.mask[i].count_ones();
    }
    match rule.family {
        AF_INET => format!(
            "{}/{prefix}",
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])
        ),
        _ => format!("{}/{prefix}", Ipv6Addr::from(addr)),
    }
}
