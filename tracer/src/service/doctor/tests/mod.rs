//! Unit tests of `tracer doctor` from synthetic inputs: the /proc parsers, every finding rule
//! (including "nothing wrong found"), stuck sockets across two snapshots, text and JSON.
use std::time::Duration;

use super::{
    Measured, Report,
    counters::Counters,
    diagnose,
    findings::{Finding, Inputs, Period},
    stuck::{self, Stuck},
    sysctl::{self, Sysctls},
};
use crate::{
    model::{Owner, TcpState},
    source::snapshot::{DEFAULT_EPHEMERAL_PORTS, SnapSocket, Snapshot},
    stats::{closes::CloseRow, turnover::Turnover},
};

mod output;
mod parsers;
mod rules;
mod rules_forecast;
mod rules_stuck;
mod rules_timewait;

pub const S: u64 = 1_000_000_000;

/// The sysctls of a stock 6.x kernel: nothing here is a finding by itself.
pub fn stock() -> Sysctls {
    Sysctls::with(&[
        (sysctl::FIN_TIMEOUT, "60"),
        (sysctl::TW_REUSE, "2"),
        (sysctl::TW_REUSE_DELAY, "1000"),
        (sysctl::MAX_TW_BUCKETS, "131072"),
        (sysctl::PORT_RANGE, "32768\t60999"),
        (sysctl::SYNCOOKIES, "1"),
        (sysctl::SOMAXCONN, "4096"),
        (sysctl::MAX_SYN_BACKLOG, "2048"),
        (sysctl::TIMESTAMPS, "1"),
    ])
}

/// `stock()` with some values changed (or added).
pub fn stock_with(changes: &[(&'static str, &str)]) -> Sysctls {
    let mut pairs: Vec<(&'static str, String)> = stock()
        .iter()
        .filter_map(|(n, v)| Some((n, v?.to_string())))
        .collect();
    for &(name, value) in changes {
        pairs.retain(|(n, _)| *n != name);
        pairs.push((name, value.to_string()));
    }
    let refs: Vec<(&'static str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Sysctls::with(&refs)
}

/// Counters with the given TcpExt values, every other watched one 0.
pub fn counters(values: &[(&str, i64)]) -> Counters {
    let mut names = Vec::new();
    let mut nums = Vec::new();
    for (section, name) in super::counters::WATCHED {
        if section == "TcpExt" {
            let v = values.iter().find(|(n, _)| *n == name).map_or(0, |v| v.1);
            names.push(name.to_string());
            nums.push(v.to_string());
        }
    }
    let mut c = Counters::default();
    c.add(&format!(
        "TcpExt: {}\nTcpExt: {}\n",
        names.join(" "),
        nums.join(" ")
    ))
    .unwrap();
    c
}

/// The snapshot tests' socket maker: the doctor reads the same snapshots.
pub use crate::source::snapshot::tests::sock;

/// `s` held by process `pid` (a file, so an inode).
pub fn owned(mut s: SnapSocket, pid: u32, comm: &str) -> SnapSocket {
    s.inode = u64::from(pid) * 100_000 + u64::from(s.tuple.local_port);
    s.owner = Some(Owner {
        pid,
        comm: comm.into(),
        cgroup_id: 0,
    });
    s
}

pub fn snapshot(taken_ns: u64, sockets: Vec<SnapSocket>) -> Snapshot {
    Snapshot {
        taken_ns,
        netns: 7,
        sockets,
        unreadable_processes: 0,
        ephemeral_ports: DEFAULT_EPHEMERAL_PORTS,
    }
}

/// A healthy web server: a listener, some established connections both ways, a few TIME_WAITs.
pub fn healthy() -> Snapshot {
    use TcpState::*;
    let mut socks = vec![owned(
        sock(Listen, "0.0.0.0", 80, "0.0.0.0", 0),
        100,
        "nginx",
    )];
    for p in 0..20 {
        socks.push(owned(
            sock(Established, "10.0.0.1", 80, "10.0.0.9", 40000 + p),
            100,
            "nginx",
        ));
        socks.push(sock(TimeWait, "10.0.0.1", 50000 + p, "10.0.0.5", 5432));
    }
    snapshot(S, socks)
}

/// `n` CLOSE_WAIT sockets of `pid` on a server port.
pub fn close_waits(n: u16, pid: u32, comm: &str) -> Vec<SnapSocket> {
    (0..n)
        .map(|p| {
            owned(
                sock(TcpState::CloseWait, "10.0.0.1", 8080, "10.0.0.9", 41000 + p),
                pid,
                comm,
            )
        })
        .collect()
}

/// The findings of one snapshot (no window) with these sysctls and counters.
pub fn instant(sysctls: &Sysctls, counters: &Counters, snap: &Snapshot) -> Vec<Finding> {
    let stuck = stuck::candidates(snap);
    diagnose(&Inputs {
        sysctls,
        counters,
        snapshot: snap,
        stuck: &stuck,
        stuck_threshold: Duration::from_secs(30),
        window: None,
    })
}

/// The findings of a window of `secs` ending in `snap`, with `stuck` sockets and close rows.
pub fn windowed(
    sysctls: &Sysctls,
    start: &Counters,
    end: &Counters,
    snap: &Snapshot,
    stuck: &[Stuck],
    closes: &[CloseRow],
    secs: f64,
) -> Vec<Finding> {
    let turnover = Turnover::default();
    measured_window(
        sysctls,
        (start, end),
        (snap, snap),
        &turnover,
        secs,
        stuck,
        closes,
    )
}

/// The findings of a window of `secs` from snapshot `first` to `last`, with `turnover` measured
/// in between.
pub fn measured_window(
    sysctls: &Sysctls,
    (start, end): (&Counters, &Counters),
    (first, last): (&Snapshot, &Snapshot),
    turnover: &Turnover,
    secs: f64,
    stuck: &[Stuck],
    closes: &[CloseRow],
) -> Vec<Finding> {
    let deltas = super::counters::deltas(start, end, secs);
    diagnose(&Inputs {
        sysctls,
        counters: end,
        snapshot: last,
        stuck,
        stuck_threshold: Duration::from_secs(30),
        window: Some(Period {
            secs,
            deltas: &deltas,
            closes,
            first,
            turnover,
        }),
    })
}

pub fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.id).collect()
}

pub fn only<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    let matching: Vec<&Finding> = findings.iter().filter(|f| f.id == id).collect();
    assert_eq!(matching.len(), 1, "one {id} in {:?}", ids(findings));
    matching[0]
}

pub fn measured(first: Snapshot, start: Counters, closes: Vec<CloseRow>) -> Measured {
    Measured {
        first,
        start,
        closes,
        turnover: Turnover::default(),
        events: 10,
        lost: 0,
    }
}

pub fn report(snap: Snapshot, measured: Option<Measured>) -> Report {
    Report::build(
        stock(),
        counters(&[]),
        snap,
        measured,
        Duration::from_secs(30),
    )
}
