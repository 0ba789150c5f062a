//! Records that cross the kernel/userspace boundary. `#[repr(C)]`, fixed size, no pointers, so the
//! eBPF programs and the daemon agree on every byte.
#![no_std]

/// What a [`RawEvent`] reports.
pub mod kind {
    /// `sock:inet_sock_set_state` for a TCP socket: `old_state` -> `new_state`.
    pub const STATE_CHANGE: u8 = 1;
    /// The timer of a timewait socket was armed: its TIME_WAIT (or FIN_WAIT2 substate) begins,
    /// or a substate change re-armed it. `new_state` holds the substate.
    pub const TW_START: u8 = 2;
    /// The timewait timer fired: the normal end of TIME_WAIT.
    pub const TW_EXPIRE: u8 = 3;
    /// The timewait timer was detached: an early end (reuse, RST, netns exit) unless an expiry or a
    /// re-arm of the same timer follows at once.
    pub const TW_CANCEL: u8 = 4;
    /// `tcp:tcp_send_reset`: this host sent an RST (socket address 0 when no socket owned it).
    pub const RESET_SENT: u8 = 5;
    /// `tcp:tcp_receive_reset`: a socket of this host received an RST.
    pub const RESET_RECEIVED: u8 = 6;
}

/// Linux TCP state numbers (include/net/tcp_states.h).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// One event from the kernel. Addresses are in network byte order as the kernel stores them
/// (IPv4 in the first 4 bytes); ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawEvent {
    /// `bpf_ktime_get_boot_ns()`: monotonic, counts suspend, comparable across CPUs.
    pub ts_ns: u64,
    /// Kernel address of the socket (full or timewait); the key of a socket life.
    pub sk: u64,
    /// `bpf_get_current_pid_tgid()`: tgid in the high half. 0 in softirq on the idle task.
    pub pid_tgid: u64,
    /// `bpf_get_current_cgroup_id()`: the container of the current task (cgroup v2).
    pub cgroup_id: u64,
    /// Inode number of the socket's network namespace (0 if unknown).
    pub netns: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub kind: u8,
    pub old_state: u8,
    pub new_state: u8,
    pub _pad: [u8; 3],
    pub comm: [u8; 16],
}

/// Kernel struct member offsets (bytes), read from the running kernel's BTF at load time and
/// written into the programs' read-only globals, so nothing is hard-coded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `sock_common.skc_daddr`, `skc_rcv_saddr`, `skc_dport`, `skc_family`.
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_family: u32,
    /// `sock_common.skc_num`: local port in host order (request sockets have no `inet_sport`).
    pub skc_num: u32,
    /// `sock_common.skc_state` (u8): tells a full socket from a timewait or request socket.
    pub skc_state: u32,
    /// `sock_common.skc_v6_daddr`, `skc_v6_rcv_saddr`.
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// `sock_common.skc_net` (a `possible_net_t` whose first member is `struct net *`).
    pub skc_net: u32,
    /// `net.ns` + `ns_common.inum`: the netns inode number.
    pub net_ns_inum: u32,
    /// `sock.sk_protocol` and its size in bytes (u8 on old kernels, u16 on new ones).
    pub sk_protocol: u32,
    pub sk_protocol_size: u32,
    /// `inet_sock.inet_sport`.
    pub inet_sport: u32,
    /// `inet_timewait_sock.tw_substate`, `tw_sport`, `tw_timer`.
    pub tw_substate: u32,
    pub tw_sport: u32,
    pub tw_timer: u32,
    /// `timer_list.function`.
    pub timer_function: u32,
}

/// What the kernel side keeps. Filtering in the kernel keeps excluded traffic off the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// 0 = both families, else only `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Number of valid entries in `ports`; 0 = every port.
    pub port_count: u16,
    /// An event is kept when its local or remote port is one of these.
    pub ports: [u16; MAX_PORTS],
}

pub const MAX_PORTS: usize = 16;

/// The kernel side wakes the reader once this many bytes are queued (about 2,900 events);
/// below that the reader drains every [`DRAIN_INTERVAL_MS`].
pub const WAKEUP_BYTES: u64 = 256 * 1024;
pub const DRAIN_INTERVAL_MS: u64 = 50;

impl FilterConfig {
    /// True when an event with these family and ports passes the filter.
    #[inline(always)]
    pub fn accepts(&self, family: u16, sport: u16, dport: u16) -> bool {
        if self.family != 0 && self.family != family {
            return false;
        }
        if self.port_count == 0 {
            return true;
        }
        let mut i = 0;
        while i < MAX_PORTS {
            if i >= self.port_count as usize {
                break;
            }
            let p = self.ports[i];
            if p == sport || p == dport {
                return true;
            }
            i += 1;
        }
        false
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data records: `#[repr(C)]`, integers and byte arrays, every bit pattern valid.
    unsafe impl aya::Pod for super::RawEvent {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FilterConfig {}
}
