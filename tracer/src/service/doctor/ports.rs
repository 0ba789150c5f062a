//! Ephemeral port pressure per destination, and whether tcp_tw_reuse would help with it.
use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::{
    findings::{Evidence, Finding, Inputs, PORTS_PCT, Severity, TOP, pct, process},
    sysctl,
};
use crate::{
    model::{Service, TcpState},
    source::snapshot::Snapshot,
};

/// Local ephemeral ports in use towards one destination.
pub struct PortUse {
    pub dest: Service,
    pub ports: u64,
    pub time_wait: u64,
    pub pid: u32,
    pub comm: String,
}

/// The ephemeral range from the sysctl, else the snapshot's.
pub fn range(i: &Inputs) -> (u16, u16) {
    i.sysctls.port_range().unwrap_or(i.snapshot.ephemeral_ports)
}

/// Client sockets (local port in the ephemeral range and not listened on) per destination,
/// most ports first. A local port can serve several destinations at once: the limit is per
/// destination address:port.
pub fn port_use(i: &Inputs) -> Vec<PortUse> {
    port_use_in(i.snapshot, range(i))
}

/// [`port_use`] in any snapshot, for the range `(lo, hi)`.
pub fn port_use_in(snapshot: &Snapshot, (lo, hi): (u16, u16)) -> Vec<PortUse> {
    let socks = &snapshot.sockets;
    let listening: HashSet<u16> = socks
        .iter()
        .filter(|s| s.state == TcpState::Listen)
        .map(|s| s.tuple.local_port)
        .collect();
    #[derive(Default)]
    struct Acc {
        ports: HashSet<u16>,
        tw: HashSet<u16>,
        owners: HashMap<(u32, String), u64>,
    }
    let mut by_dest: HashMap<Service, Acc> = HashMap::new();
    for s in socks {
        let t = &s.tuple;
        if s.state == TcpState::Listen
            || !(lo..=hi).contains(&t.local_port)
            || listening.contains(&t.local_port)
        {
            continue;
        }
        let dest = Service {
            addr: t.remote.to_canonical(),
            port: t.remote_port,
        };
        let acc = by_dest.entry(dest).or_default();
        acc.ports.insert(t.local_port);
        if s.state == TcpState::TimeWait {
            acc.tw.insert(t.local_port);
        }
        if let Some(o) = &s.owner {
            *acc.owners.entry((o.pid, o.comm.to_string())).or_default() += 1;
        }
    }
    let mut out: Vec<PortUse> = by_dest
        .into_iter()
        .map(|(dest, acc)| {
            let (pid, comm) = acc
                .owners
                .into_iter()
                .max_by(|(a, n), (b, m)| n.cmp(m).then(b.0.cmp(&a.0)))
                .map(|(o, _)| o)
                .unwrap_or_default();
            PortUse {
                dest,
                ports: acc.ports.len() as u64,
                time_wait: acc.tw.len() as u64,
                pid,
                comm,
            }
        })
        .collect();
    out.sort_by(|a, b| b.ports.cmp(&a.ports).then(a.dest.cmp(&b.dest)));
    out
}

fn pressured<'p>(i: &Inputs, ports: &'p [PortUse]) -> impl Iterator<Item = &'p PortUse> {
    let (lo, hi) = range(i);
    let size = u64::from(hi - lo) + 1;
    ports
        .iter()
        .filter(move |p| p.ports * 100 > size * PORTS_PCT)
}

pub fn port_pressure(i: &Inputs, ports: &[PortUse]) -> Vec<Finding> {
    let (lo, hi) = range(i);
    let size = u64::from(hi - lo) + 1;
    pressured(i, ports)
        .take(TOP)
        .map(|p| Finding {
            id: "ephemeral-ports",
            severity: if p.ports * 10 >= size * 9 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            title: format!(
                "{} local ports of {} ({}%) are in use towards {}",
                p.ports,
                size,
                pct(p.ports, size),
                p.dest
            ),
            evidence: Evidence::default()
                .with("destination", p.dest.to_string())
                .with("local_ports", p.ports)
                .with("of_them_time_wait", p.time_wait)
                .with(sysctl::PORT_RANGE, format!("{lo} {hi}"))
                .with("range_size", size)
                .with("used_pct", pct(p.ports, size))
                .with("process", process(p.pid, &p.comm))
                .with("pid", p.pid),
            advice: format!(
                "When the range is used up, connect() to {} fails with EADDRNOTAVAIL (\"Cannot \
                 assign requested address\"). Reuse connections (pooling, keep-alive) first; a \
                 wider ip_local_port_range, or more destination addresses or source addresses, \
                 multiply the usable 4-tuples.",
                p.dest
            ),
        })
        .collect()
}

/// tcp_tw_reuse off (or loopback-only for a remote destination) while TIME_WAIT holds most of
/// the ports of a pressured destination.
pub fn tw_reuse(i: &Inputs, ports: &[PortUse]) -> Option<Finding> {
    let reuse = i.sysctls.int(sysctl::TW_REUSE)?;
    let dests: Vec<&PortUse> = pressured(i, ports)
        .filter(|p| p.time_wait * 2 >= p.ports)
        .filter(|p| reuse == 0 || (reuse == 2 && !p.dest.addr.is_loopback()))
        .collect();
    let first = dests.first()?;
    let timestamps = i.sysctls.int(sysctl::TIMESTAMPS);
    let suggestion = if reuse == 0 && dests.iter().all(|p| p.dest.addr.is_loopback()) {
        "tcp_tw_reuse = 2 (the kernel default: loopback destinations only) lets connect() take \
         over a TIME_WAIT of the same 4-tuple"
    } else {
        "tcp_tw_reuse = 1 lets connect() take over a TIME_WAIT of the same 4-tuple for every \
         destination (2, the default, only does it for loopback)"
    };
    let stamps = match timestamps {
        Some(0) => " tcp_timestamps is 0 here: tcp_tw_reuse does nothing until it is 1.",
        _ => "",
    };
    Some(Finding {
        id: "tw-reuse",
        severity: Severity::Warning,
        title: format!(
            "tcp_tw_reuse = {reuse} while TIME_WAIT holds {} of the {} local ports in use towards \
             {}",
            first.time_wait, first.ports, first.dest
        ),
        evidence: Evidence::default()
            .with(sysctl::TW_REUSE, reuse)
            .with(sysctl::TIMESTAMPS, json!(timestamps))
            .with("TWRecycled", i.counters.value("TcpExt", "TWRecycled"))
            .with(
                "destinations",
                dests
                    .iter()
                    .map(|p| {
                        json!({"destination": p.dest.to_string(), "local_ports": p.ports,
                        "time_wait": p.time_wait})
                    })
                    .collect::<Vec<_>>(),
            ),
        advice: format!(
            "Prefer reusing connections. If that is not possible, {suggestion}, once it is at \
             least tcp_tw_reuse_delay (1 s) old. It is safe thanks to TCP timestamps (PAWS), \
             which both ends must have on, and only helps outgoing connections, never a \
             server's TIME_WAIT.{stamps} Do not look for tcp_tw_recycle: {}.",
            sysctl::TW_RECYCLE_HISTORY
        ),
    })
}
