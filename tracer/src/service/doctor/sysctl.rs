//! The sysctls that decide how TIME_WAIT, CLOSE_WAIT, ephemeral ports and listen queues behave,
//! read from /proc/sys. `net.*` sysctls are per network namespace: /proc/sys/net shows the
//! namespace of the process that reads it, so `ip netns exec NS tracer doctor` reads NS's.
//!
//! A sysctl the running kernel does not have is reported as absent, never guessed: the folklore
//! in old blog posts sets `tcp_tw_recycle`, which no kernel since 4.12 has.
use std::path::{Path, PathBuf};

pub const FIN_TIMEOUT: &str = "net.ipv4.tcp_fin_timeout";
pub const TW_REUSE: &str = "net.ipv4.tcp_tw_reuse";
pub const TW_REUSE_DELAY: &str = "net.ipv4.tcp_tw_reuse_delay";
pub const TW_RECYCLE: &str = "net.ipv4.tcp_tw_recycle";
pub const MAX_TW_BUCKETS: &str = "net.ipv4.tcp_max_tw_buckets";
pub const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
pub const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
pub const SOMAXCONN: &str = "net.core.somaxconn";
pub const MAX_SYN_BACKLOG: &str = "net.ipv4.tcp_max_syn_backlog";
pub const TIMESTAMPS: &str = "net.ipv4.tcp_timestamps";

/// Every sysctl `tracer doctor` reads, in the order it shows them.
pub const WATCHED: [&str; 10] = [
    FIN_TIMEOUT,
    TW_REUSE,
    TW_REUSE_DELAY,
    TW_RECYCLE,
    MAX_TW_BUCKETS,
    PORT_RANGE,
    SYNCOOKIES,
    SOMAXCONN,
    MAX_SYN_BACKLOG,
    TIMESTAMPS,
];

/// The text every mention of tcp_tw_recycle carries.
pub const TW_RECYCLE_HISTORY: &str = "removed in Linux 4.12: it broke clients behind NAT \
(their SYNs were dropped, as timestamps from hosts sharing one address do not increase together)";

/// Values of the watched sysctls; `None` for one this kernel does not have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sysctls {
    values: Vec<(&'static str, Option<String>)>,
}

impl Sysctls {
    /// Reads the watched sysctls under `root` (normally `/proc/sys`).
    pub fn read(root: &Path) -> Sysctls {
        let values = WATCHED
            .iter()
            .map(|&name| {
                let value = std::fs::read_to_string(path_of(root, name))
                    .ok()
                    .map(|v| normalize(&v));
                (name, value)
            })
            .collect();
        Sysctls { values }
    }

    /// Sysctls with the given values (tests); every other watched one is absent.
    pub fn with(pairs: &[(&'static str, &str)]) -> Sysctls {
        let values = WATCHED
            .iter()
            .map(|&name| {
                let value = pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| normalize(v));
                (name, value)
            })
            .collect();
        Sysctls { values }
    }

    /// Every watched sysctl with its value, absent ones included, in display order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> + '_ {
        self.values.iter().map(|(n, v)| (*n, v.as_deref()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A single-integer sysctl's value.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.parse().ok()
    }

    /// `ip_local_port_range` as (low, high); `None` when absent or malformed.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        let mut it = self.get(PORT_RANGE)?.split(' ').map(|p| p.parse::<u16>());
        let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
        (lo <= hi).then_some((lo, hi))
    }
}

/// `net.ipv4.tcp_fin_timeout` -> `ROOT/net/ipv4/tcp_fin_timeout`.
pub fn path_of(root: &Path, name: &str) -> PathBuf {
    name.split('.')
        .fold(root.to_path_buf(), |p, part| p.join(part))
}

/// `32768\t60999\n` -> `32768 60999`.
fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a sysctl really does today, one line for the report (several correct the folklore).
pub fn meaning(name: &str, value: Option<&str>) -> &'static str {
    if value.is_none() {
        return match name {
            TW_RECYCLE => TW_RECYCLE_HISTORY,
            TW_REUSE_DELAY => "absent: this kernel waits a fixed 1 s before tcp_tw_reuse",
            _ => "absent on this kernel",
        };
    }
    match name {
        FIN_TIMEOUT => {
            "how long an orphaned FIN_WAIT2 waits for the peer's FIN; it does not shorten \
             TIME_WAIT (always 60 s)"
        }
        TW_REUSE => {
            "0 off, 1 all, 2 loopback only: connect() may take over a TIME_WAIT of the same \
             4-tuple (outgoing connections only, needs timestamps)"
        }
        TW_REUSE_DELAY => "ms a TIME_WAIT must have lasted before tcp_tw_reuse may take it over",
        TW_RECYCLE => TW_RECYCLE_HISTORY,
        MAX_TW_BUCKETS => {
            "timewait sockets (TIME_WAIT, orphaned FIN_WAIT2) allowed in this namespace; beyond \
             it connections skip TIME_WAIT (TCPTimeWaitOverflow)"
        }
        PORT_RANGE => "ephemeral ports connect() picks from, per destination address:port",
        SYNCOOKIES => "1: SYN cookies once a listener's SYN queue is full; 2: always; 0: never",
        SOMAXCONN => "upper limit of a listen() backlog (the accept queue)",
        MAX_SYN_BACKLOG => {
            "with syncookies off, SYNs from unknown peers are dropped once a listener's SYN \
             queue is 3/4 of this"
        }
        TIMESTAMPS => "TCP timestamps; tcp_tw_reuse does nothing without them",
        _ => "",
    }
}
