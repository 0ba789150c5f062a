//! Memory of the userspace model with many tracked sockets: feeds N synthetic IPv4 connections
//! (`CLOSE -> SYN_SENT` from one of a few thousand owners, then `SYN_SENT -> ESTABLISHED`, kept
//! open) through the real model and the per-state histograms, then prints the process's VmRSS
//! and VmHWM from /proc/self/status. `--summary` then also builds the per-state summaries
//! (what the daemon does every interval) and prints them again; `--in-progress` copies every
//! open socket out as `InProgress` (what `--metrics` and `tracer top` did every second before
//! they counted in the tables in place).
//!
//! ```text
//! trc-model-rss [--sockets N] [--owners N] [--max-sockets N] [--summary] [--in-progress]
//! ```
//! Output: `tracked N`, `evicted N`, `VmRSS KIB`, `VmHWM KIB` after the load, then the same
//! two prefixed `summary` or `in_progress` after each.
use std::net::{IpAddr, Ipv4Addr};

use tracer::{
    model::{Comm, Event, EventKind, Model, TcpState, Tuple},
    stats::{self, StateStats},
};

struct Opts {
    sockets: u64,
    owners: u64,
    max_sockets: Option<usize>,
    summary: bool,
    in_progress: bool,
}

fn parse() -> Result<Opts, String> {
    let mut opts = Opts {
        sockets: 1_000_000,
        owners: 3_000,
        max_sockets: None,
        summary: false,
        in_progress: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> Result<u64, String> {
            let v = args.next().ok_or(format!("{arg} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{arg}: '{v}' is not a number"))
        };
        match arg.as_str() {
            "--sockets" => opts.sockets = number()?,
            "--owners" => opts.owners = number()?.max(1),
            "--max-sockets" => opts.max_sockets = Some(number()? as usize),
            "--summary" => opts.summary = true,
            "--in-progress" => opts.in_progress = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(opts)
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Connection `i`: a client socket at a slab-like address, from 10.x.y.z to 10.0.0.1:443.
fn event(i: u64, ts_ns: u64, owners: u64, old: TcpState, new: TcpState) -> Event {
    let host = u32::try_from(i / 50_000).unwrap_or(0);
    let local = Ipv4Addr::from(0x0a01_0000 + host);
    let port = 10_000 + (i % 50_000) as u16;
    let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let owner = i % owners;
    Event {
        ts_ns,
        sk: 0xffff_8880_0000_0000 + i * 2_304,
        kind: EventKind::StateChange { old, new },
        tuple: Tuple::new(IpAddr::V4(local), port, remote, 443),
        pid: 1_000 + owner as u32,
        comm: Comm::from(format!("worker-{owner}").as_str()),
        cgroup_id: 5_000 + owner % 40,
        netns: 4_026_531_840,
    }
}

fn main() {
    let opts = match parse() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("trc-model-rss: {e}");
            std::process::exit(2);
        }
    };
    let mut model = match opts.max_sockets {
        Some(cap) => Model::with_max_sockets(cap),
        None => Model::new(),
    };
    let mut stats = StateStats::new();
    let mut ts = 1_000_000_000u64;
    for i in 0..opts.sockets {
        for (old, new) in [
            (TcpState::Close, TcpState::SynSent),
            (TcpState::SynSent, TcpState::Established),
        ] {
            ts += 1_000;
            let ev = event(i, ts, opts.owners, old, new);
            for step in model.apply(&ev) {
                stats.record(&step);
            }
        }
    }
    println!("tracked {}", model.tracked());
    println!("evicted {}", model.evictions().total());
    let (rss, hwm) = memory();
    println!("VmRSS {rss}");
    println!("VmHWM {hwm}");
    if opts.summary {
        let rows = stats::summaries(&stats, &model.open_by_state(ts));
        let open: u64 = rows.iter().map(|r| r.in_progress).sum();
        let (rss, hwm) = memory();
        println!("summary open {open}");
        println!("summary VmRSS {rss}");
        println!("summary VmHWM {hwm}");
    }
    if opts.in_progress {
        let open = model.in_progress(ts).len();
        let (rss, hwm) = memory();
        println!("in_progress open {open}");
        println!("in_progress VmRSS {rss}");
        println!("in_progress VmHWM {hwm}");
    }
}
