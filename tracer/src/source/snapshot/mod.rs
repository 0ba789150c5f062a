//! The attach-time snapshot: every TCP socket that already exists, read once through netlink
//! sock_diag, with its owner from /proc.
//!
//! `tracer` is attached during incidents, when thousands of TIME_WAIT / CLOSE_WAIT sockets are
//! already there and the eBPF programs will never see them enter their state. The snapshot says
//! what they are, who holds them and, where the kernel lets us know it, how old they are:
//! a TIME_WAIT's remaining timer dates it exactly; every other state's entry time is unknown,
//! so its age is only a lower bound and must never be mixed into exact duration histograms.
mod diag;
mod owners;
mod seeds;
pub mod summary;

pub use seeds::seeds;

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::model::{Owner, TcpState, Tuple};

pub use diag::Entry;
pub use owners::{netns_inode, socket_inode};

/// TCP_TIMEWAIT_LEN: a TIME_WAIT's timer starts at 60 s when the state is entered (and restarts
/// at 60 s if a retransmitted FIN arrives, which makes such a socket look younger).
pub const TIME_WAIT_NS: u64 = 60_000_000_000;

/// How long a socket had been in its state when the snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Age {
    /// Known to the kernel's timer precision (TIME_WAIT).
    Exact(u64),
    /// Entry not seen: at least this old (censored data, never a duration sample).
    AtLeast(u64),
}

impl Age {
    pub fn ns(self) -> u64 {
        match self {
            Age::Exact(ns) | Age::AtLeast(ns) => ns,
        }
    }

    pub fn is_exact(self) -> bool {
        matches!(self, Age::Exact(_))
    }

    /// The oldest of two ages: the larger value, exact only if both are (the oldest of an
    /// exact 5 s and an unknown "at least 3 s" is only known to be at least 5 s).
    pub fn oldest(self, other: Age) -> Age {
        let ns = self.ns().max(other.ns());
        if self.is_exact() && other.is_exact() {
            Age::Exact(ns)
        } else {
            Age::AtLeast(ns)
        }
    }
}

/// A socket's age from what sock_diag reported. Only a TIME_WAIT (the timewait socket's timer,
/// `idiag_timer` 3) is datable: 60 s minus what is left. A FIN_WAIT2 timewait socket also runs
/// that timer, but from tcp_fin_timeout or TCP_LINGER2, started when orphaned, not when
/// FIN_WAIT2 began, so it stays undated like every other state.
pub fn age_of(state: TcpState, timer: u8, expires_ms: u32) -> Age {
    if state == TcpState::TimeWait && timer == diag::TIMER_TIMEWAIT {
        let left = u64::from(expires_ms) * 1_000_000;
        Age::Exact(TIME_WAIT_NS.saturating_sub(left))
    } else {
        Age::AtLeast(0)
    }
}

/// `idiag_timer` of a socket whose retransmit timer runs; a request socket's SYN-ACK timer
/// reports as one.
const TIMER_RETRANSMIT: u8 = 1;

/// The age of a request socket (a half-open connection: SYN_RECV, no file) from its SYN-ACK
/// retransmits. Every retransmit, by its timer or for a retransmitted SYN, comes at least
/// 1 s, 3 s, 7 s ... after the SYN (both sides' timers start at 1 s and double up to
/// `TCP_RTO_MAX`, 120 s), at most two at each: n retransmits mean at least the first
/// ceil(n/2) of those waits. Before the first, its timer still runs its first second
/// (`TCP_TIMEOUT_INIT`, unless a BPF program changed it).
pub fn request_age(retransmits: u8, expires_ms: u32) -> Age {
    const S: u64 = 1_000_000_000;
    if retransmits == 0 {
        return Age::AtLeast(1_000u64.saturating_sub(u64::from(expires_ms)) * 1_000_000);
    }
    let waits = (0..u32::from(retransmits).div_ceil(2)).map(|j| (1u64 << j.min(7)).min(120));
    Age::AtLeast(waits.sum::<u64>() * S)
}

/// One socket at snapshot time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapSocket {
    pub state: TcpState,
    pub tuple: Tuple,
    /// sockfs inode (`socket:[N]` in /proc/PID/fd); 0 for timewait and request sockets.
    pub inode: u64,
    pub uid: u32,
    /// The process holding the socket; `None` for timewait and request sockets (no file), for
    /// orphans (closed, still finishing) and for processes this user may not inspect.
    pub owner: Option<Owner>,
    pub age: Age,
}

/// Every TCP socket of one network namespace at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// CLOCK_BOOTTIME ns when the dump was asked for: the clock of the eBPF events.
    pub taken_ns: u64,
    /// Inode of the network namespace read (`/proc/thread-self/ns/net`); sockets of other
    /// namespaces are not in the snapshot.
    pub netns: u32,
    pub sockets: Vec<SnapSocket>,
    /// Processes whose fds could not be read: when non-zero, owners are partial.
    pub unreadable_processes: u32,
    /// The namespace's ip_local_port_range: a port in it is most likely a client's.
    pub ephemeral_ports: (u16, u16),
}

impl Snapshot {
    /// Builds a snapshot from a sock_diag dump and the inode-to-owner map (pure: tests feed it
    /// synthetic entries).
    pub fn assemble(
        taken_ns: u64,
        netns: u32,
        entries: Vec<Entry>,
        owners: &std::collections::HashMap<u64, Owner>,
        unreadable_processes: u32,
    ) -> Snapshot {
        let sockets = entries
            .into_iter()
            .map(|e| {
                let owner = (e.inode != 0)
                    .then(|| owners.get(&e.inode))
                    .flatten()
                    .map(|o| Owner {
                        cgroup_id: e.cgroup_id,
                        ..*o
                    });
                SnapSocket {
                    state: e.state,
                    tuple: e.tuple,
                    inode: e.inode,
                    uid: e.uid,
                    owner,
                    age: if e.state == TcpState::SynRecv
                        && e.inode == 0
                        && e.timer == TIMER_RETRANSMIT
                    {
                        request_age(e.retrans, e.expires_ms)
                    } else {
                        age_of(e.state, e.timer, e.expires_ms)
                    },
                }
            })
            .collect();
        Snapshot {
            taken_ns,
            netns,
            sockets,
            unreadable_processes,
            ephemeral_ports: DEFAULT_EPHEMERAL_PORTS,
        }
    }
}

/// Reads every TCP socket of the calling thread's network namespace, with owners.
pub fn take() -> Result<Snapshot> {
    let taken_ns = crate::time::clock::boot_ns();
    // The /proc scan and the netlink dump are independent: run them on both cores at once.
    let scan = std::thread::spawn(|| owners::scan(Path::new("/proc"), None));
    let entries = diag::dump_all()?;
    let owners = scan
        .join()
        .map_err(|_| anyhow::anyhow!("the /proc owner scan panicked"))?;
    let mut snap = Snapshot::assemble(
        taken_ns,
        current_netns(),
        entries,
        &owners.by_inode,
        owners.unreadable,
    );
    snap.ephemeral_ports = ephemeral_ports();
    log::debug!(
        "snapshot: {} sockets in {:?}, owners of {} processes unreadable",
        snap.sockets.len(),
        std::time::Duration::from_nanos(crate::time::clock::boot_ns().saturating_sub(taken_ns)),
        owners.unreadable
    );
    Ok(snap)
}

/// Linux's default `net.ipv4.ip_local_port_range`.
pub const DEFAULT_EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

/// This thread's network namespace's ephemeral port range (the sysctl is per namespace and
/// /proc/sys/net follows the reading thread's namespace); the default if unreadable.
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or(DEFAULT_EPHEMERAL_PORTS)
}

/// The network namespace of the calling thread (the one a netlink socket opened here dumps);
/// `thread-self` because a thread may have moved with setns; 0 if /proc cannot say.
pub fn current_netns() -> u32 {
    ["/proc/thread-self/ns/net", "/proc/self/ns/net"]
        .iter()
        .find_map(|p| std::fs::read_link(p).ok())
        .and_then(|l| l.to_str().and_then(netns_inode))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;
