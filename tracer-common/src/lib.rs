//! Records that cross the kernel/userspace boundary. `#[repr(C)]`, fixed size, no pointers, so the
//! eBPF programs and the daemon agree on every byte.
#![no_std]

pub mod life;

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
    /// A socket life followed in the kernel ([`crate::life`]): its states in `path`, what the
    /// close rules need in `life_flags`, its owner in `pid_tgid`, `cgroup_id` and `comm`;
    /// `old_state -> new_state` is its last transition, at `ts_ns`. `new_state` CLOSE: the life
    /// ended, and the start of the timewait socket that took it over (`timewait_sk`) came right
    /// before that CLOSE; else (a transition the kernel could not follow) the life so far, and
    /// its next events come one by one.
    pub const LIFE: u8 = 7;
    /// A request socket (a half-open connection: SYN received, SYN-ACK sent) ended. The
    /// record's `ts_ns` is the end, [`super::RawEvent::start_ns`] its first SYN-ACK (0 when
    /// unknown), [`super::RawEvent::retransmits`] its SYN-ACK retransmits and
    /// [`super::RawEvent::end`] how it ended ([`super::req_end`]). At most one record per
    /// request socket; under kernel aggregation none for a request a child completes (its
    /// start goes into the child's life instead).
    pub const REQ_END: u8 = 8;
}

/// How a request socket ended ([`RawEvent::end`] of a [`kind::REQ_END`] record).
pub mod req_end {
    /// Taken out of the SYN queue before its timer ran out: by the final ACK (a child socket
    /// takes over: it went `LISTEN -> SYN_RECV` just before), an RST, or a netns exit.
    pub const UNLINKED: u8 = 1;
    /// Its timer ran out and was not re-armed: dropped after its SYN-ACK retransmits (or
    /// earlier, when the SYN queue was more than half full of old requests, or its listener
    /// closed).
    pub const EXPIRED: u8 = 2;
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
    /// A request socket (a connection before its full socket exists): kernel-internal, never
    /// a state change, but the state a reset hook can find.
    pub const NEW_SYN_RECV: u8 = 12;
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
    /// [`life::flags`] of a [`kind::LIFE`] record; 0 otherwise.
    pub life_flags: u8,
    /// [`kind::REQ_END`] only: SYN-ACKs retransmitted (`request_sock.num_retrans`); 0 otherwise.
    pub retransmits: u8,
    /// [`kind::REQ_END`] only: how the request socket ended ([`req_end`]); 0 otherwise.
    pub end: u8,
    pub comm: [u8; 16],
    /// The states of a [`kind::LIFE`] record ([`life::path_state`]); 0 otherwise.
    pub path: u64,
    /// When a [`kind::LIFE`] record's life made its first transition; when a
    /// [`kind::REQ_END`] record's request socket sent its first SYN-ACK (microseconds after
    /// the SYN came; 0 when unknown); 0 otherwise.
    pub start_ns: u64,
    /// When a [`kind::LIFE`] record's life entered `old_state`; 0 otherwise.
    pub entered_ns: u64,
    /// The timewait socket that took a [`kind::LIFE`] record's life over, started at
    /// `timewait_ns` in the substate [`life::flags::TIMEWAIT_FIN_WAIT2`] tells; 0 if none.
    pub timewait_sk: u64,
    pub timewait_ns: u64,
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
    /// `timer_list.entry.pprev`: NULL unless the timer is pending (`timer_pending()`).
    pub timer_pprev: u32,
    /// `sock_common.skc_cookie` (an `atomic64_t`, copied into the timewait socket).
    pub skc_cookie: u32,
    /// `request_sock.rsk_timer` and `num_retrans` (u8).
    pub rsk_timer: u32,
    pub num_retrans: u32,
    /// `sock_common.skc_nulls_node.pprev`: NULL once a socket is out of the established hash
    /// (a request socket unlinked from its listener's SYN queue).
    pub skc_nulls_pprev: u32,
    /// `tcp_request_sock.snt_synack` (u64): when the first SYN-ACK went out, CLOCK_MONOTONIC
    /// microseconds (`tcp_clock_us`).
    pub snt_synack: u32,
    /// `tcp_sock.fastopen_rsk`: set while a Fast Open child (made at the SYN) is in SYN_RECV.
    pub fastopen_rsk: u32,
}

/// What the kernel side keeps. Filtering in the kernel keeps excluded traffic off the ring buffer.
/// Criteria of different kinds must all hold; several values of one kind (ports, addresses) are
/// alternatives. Read field by field on the kernel side: it is larger than the 512-byte BPF stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// 0 = both families, else only `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Number of valid entries in `ports`; 0 = every port.
    pub port_count: u16,
    /// An event is kept when its local or remote port is one of these.
    pub ports: [u16; MAX_PORTS],
    /// Number of valid entries in `addrs`; 0 = every address.
    pub addr_count: u16,
    /// Which owner criteria are set ([`owner_match`] bits); 0 = no owner filter.
    pub owner_match: u16,
    /// Network namespace inode; 0 = every namespace.
    pub netns: u32,
    /// Process id (tgid) of the owner, with [`owner_match::PID`].
    pub pid: u32,
    /// cgroup (v2) id of the owner's cgroup or one of its ancestors, with [`owner_match::CGROUP`].
    pub cgroup_id: u64,
    /// Command name of the owner (NUL-padded, at most 15 bytes), with [`owner_match::COMM`].
    pub comm: [u8; 16],
    /// An event is kept when its local or remote address is in one of these networks.
    pub addrs: [AddrRule; MAX_ADDR_RULES],
}

pub const MAX_PORTS: usize = 16;
/// `--addr` values accepted; each IPv4 one takes two rules (itself and its IPv4-mapped IPv6 form).
pub const MAX_ADDRS: usize = 8;
pub const MAX_ADDR_RULES: usize = 2 * MAX_ADDRS;
/// The deepest cgroup level the kernel side looks at when matching `cgroup_id` (root = 0).
pub const MAX_CGROUP_DEPTH: u32 = 32;

/// Bits of [`FilterConfig::owner_match`]. An owner filter follows sockets: a socket is kept from
/// the moment a matching task makes one of its system-call transitions (connect, listen, close,
/// shutdown), or when it is a child of a kept listener; softirq events never decide.
pub mod owner_match {
    pub const CGROUP: u16 = 1;
    pub const PID: u16 = 2;
    pub const COMM: u16 = 4;
}

/// One network: an address matches when `address & mask == addr`, word by word. Words hold the
/// address bytes in network order as the kernel stores them (see [`addr_words`]); an IPv4 rule
/// uses the first word only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrRule {
    /// `AF_INET` or `AF_INET6`: only events of this family can match.
    pub family: u16,
    pub _pad: u16,
    pub addr: [u32; 4],
    pub mask: [u32; 4],
}

impl AddrRule {
    #[inline(always)]
    pub fn matches(&self, family: u16, addr: &[u32; 4]) -> bool {
        if self.family != family {
            return false;
        }
        let mut i = 0;
        while i < 4 {
            if addr[i] & self.mask[i] != self.addr[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// An address as stored in [`RawEvent`] (16 bytes, network order) as the four words the kernel
/// side compares.
#[inline(always)]
pub fn addr_words(bytes: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// A socket's connection as the kernel side keys it: a full socket and the timewait socket that
/// takes it over share it. Addresses as [`addr_words`]; IPv4 in the first word.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockTuple {
    pub netns: u32,
    pub family: u16,
    /// Local and remote port, host order.
    pub sport: u16,
    pub dport: u16,
    pub _pad: u16,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
}

/// A listening socket as its children find it: namespace and local port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    pub netns: u32,
    pub port: u16,
    pub _pad: u16,
}

/// Names of the kernel side's maps for owner filters, and their sizes when an owner filter is
/// set (LRU: the least recently used entry goes when full). Without one the loader shrinks them.
pub mod follow_maps {
    /// Full sockets (by kernel address) owned by a matching task.
    pub const SOCKETS: &str = "FOLLOWED";
    pub const SOCKETS_ENTRIES: u32 = 65536;
    /// Connections (by [`super::SockTuple`]) whose timewait socket is followed, and sockets
    /// that predate the trace whose owner matched in the attach-time snapshot.
    pub const TUPLES: &str = "FOLLOWED_TUPLES";
    pub const TUPLES_ENTRIES: u32 = 65536;
    /// Listeners (by [`super::ListenerKey`]) of matching owners: their children are followed.
    pub const LISTENERS: &str = "FOLLOWED_LISTENERS";
    pub const LISTENERS_ENTRIES: u32 = 4096;
    /// Entries when no owner filter is set (the maps exist but are never touched).
    pub const UNUSED_ENTRIES: u32 = 8;
}

const _: () = {
    assert!(core::mem::size_of::<AddrRule>() == 36);
    assert!(core::mem::size_of::<SockTuple>() == 44);
    assert!(core::mem::offset_of!(FilterConfig, addr_count) == 36);
    assert!(core::mem::offset_of!(FilterConfig, cgroup_id) == 48);
    assert!(core::mem::offset_of!(FilterConfig, addrs) == 72);
    assert!(core::mem::size_of::<FilterConfig>() == 72 + 36 * MAX_ADDR_RULES);
    // The kernel side writes RawEvent field by field into the ring buffer: no implicit
    // padding may be left uninitialised, and the addresses are written as aligned u32 words.
    assert!(core::mem::size_of::<RawEvent>() == 136);
    assert!(core::mem::size_of::<life::LifeSlot>() == 104);
    assert!(core::mem::offset_of!(RawEvent, saddr) % 4 == 0);
    assert!(core::mem::offset_of!(RawEvent, daddr) % 4 == 0);
    assert!(core::mem::offset_of!(RawEvent, comm) == 80);
};

/// The kernel side wakes the reader once this many bytes are queued (about 1,800 events);
/// below that the reader drains every [`DRAIN_INTERVAL_MS`].
pub const WAKEUP_BYTES: u64 = 256 * 1024;
pub const DRAIN_INTERVAL_MS: u64 = 50;

/// Ring buffers in the object (`EVENTS0` ...): CPU n writes ring `n & (rings in use - 1)`, the
/// loader uses a power of two of them up to this, one per CPU on small hosts. Separate rings
/// keep each ring's lock and positions on one CPU (BENCHMARKS.md has the cost of sharing one).
pub const MAX_RINGS: usize = 8;

impl FilterConfig {
    /// Keeps everything (a `const` [`Default`], for the kernel side's global).
    pub const ALL: FilterConfig = FilterConfig {
        family: 0,
        port_count: 0,
        ports: [0; MAX_PORTS],
        addr_count: 0,
        owner_match: 0,
        netns: 0,
        pid: 0,
        cgroup_id: 0,
        comm: [0; 16],
        addrs: [AddrRule {
            family: 0,
            _pad: 0,
            addr: [0; 4],
            mask: [0; 4],
        }; MAX_ADDR_RULES],
    };

    /// True when an event with these family and ports passes the filter.
    #[inline(always)]
    pub fn accepts(&self, family: u16, sport: u16, dport: u16) -> bool {
        accepts_ports(
            self.family,
            self.port_count,
            &self.ports,
            family,
            sport,
            dport,
        )
    }

    /// True when the namespace passes the filter.
    #[inline(always)]
    pub fn accepts_netns(&self, netns: u32) -> bool {
        self.netns == 0 || self.netns == netns
    }

    /// True when the local or the remote address is in one of the filter's networks.
    pub fn accepts_addrs(&self, family: u16, saddr: &[u32; 4], daddr: &[u32; 4]) -> bool {
        let count = usize::from(self.addr_count).min(MAX_ADDR_RULES);
        count == 0
            || self.addrs[..count]
                .iter()
                .any(|r| r.matches(family, saddr) || r.matches(family, daddr))
    }

    /// Everything an event carries decides (family, ports, addresses, namespace); owner
    /// filters need the kernel side's per-socket state and are not applied here.
    pub fn accepts_event(&self, ev: &RawEvent) -> bool {
        let saddr = addr_words(&ev.saddr);
        self.accepts(ev.family, ev.sport, ev.dport)
            && self.accepts_netns(ev.netns)
            && (self.accepts_addrs(ev.family, &saddr, &addr_words(&ev.daddr))
                || is_wildcard_listener_change(ev.kind, ev.old_state, ev.new_state, &saddr))
    }
}

/// A listener on every address (0.0.0.0 or ::) starts or ends. Any address filter keeps it:
/// it accepts connections on the addresses asked for, and its children's owner comes from it.
#[inline(always)]
pub fn is_wildcard_listener_change(event_kind: u8, old: u8, new: u8, saddr: &[u32; 4]) -> bool {
    event_kind == kind::STATE_CHANGE
        && (new == tcp_state::LISTEN || old == tcp_state::LISTEN && new == tcp_state::CLOSE)
        && saddr[0] == 0
        && saddr[1] == 0
        && saddr[2] == 0
        && saddr[3] == 0
}

/// The family and port test of [`FilterConfig::accepts`], on values the kernel side read.
#[inline(always)]
pub fn accepts_ports(
    want_family: u16,
    port_count: u16,
    ports: &[u16; MAX_PORTS],
    family: u16,
    sport: u16,
    dport: u16,
) -> bool {
    if want_family != 0 && want_family != family {
        return false;
    }
    if port_count == 0 {
        return true;
    }
    let mut i = 0;
    while i < MAX_PORTS {
        if i >= port_count as usize {
            break;
        }
        let p = ports[i];
        if p == sport || p == dport {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data records: `#[repr(C)]`, integers and byte arrays, every bit pattern valid.
    unsafe impl aya::Pod for super::RawEvent {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::SockTuple {}
    unsafe impl aya::Pod for super::ListenerKey {}
    unsafe impl aya::Pod for super::life::LifeSlot {}
}
