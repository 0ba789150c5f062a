//! Kernel aggregation: a socket life followed in the kernel (a slot indexed by its cookie), its
//! dwell times counted in per-CPU log-linear histograms, and one [`crate::kind::LIFE`] record
//! when it ends (carrying the start of the timewait socket that takes it over) instead of a
//! record per transition.

/// [`crate::RawEvent::life_flags`] bits of a `LIFE` record.
pub mod flags {
    /// `tcp_receive_reset` on this socket during the life.
    pub const RST_RECEIVED: u8 = 1;
    /// `tcp_send_reset` on this socket during the life (an RST sent after its CLOSE comes as
    /// its own event).
    pub const RST_SENT: u8 = 2;
    /// The life went through more states than [`PATH_STATES`]: the path holds the first ones,
    /// the record's old -> new state the last.
    pub const PATH_FULL: u8 = 4;
    /// On a state change record: from this change on the kernel follows the socket's life,
    /// whose next transitions come in a LIFE record. A listener's child is followed from
    /// `SYN_RECV -> ESTABLISHED`: before it, some kernels (6.1, 6.12) still change its cookie.
    pub const KERNEL_FOLLOWS: u8 = 8;
    /// The timewait socket that took the life over started in FIN_WAIT2 substate (an orphaned
    /// socket's FIN_WAIT2 goes on in it); else in TIME_WAIT.
    pub const TIMEWAIT_FIN_WAIT2: u8 = 16;
    /// On a timewait's timer event: its start has not been sent yet; it comes in the LIFE
    /// record of the life it took over, whose CLOSE another CPU has not reached.
    pub const TIMEWAIT_AHEAD: u8 = 32;
    /// On a `SYN_RECV -> CLOSE` state change record: a listener's child that never took its
    /// request socket over. Two CPUs that each take a segment completing the same handshake
    /// (the final ACK, the first data) each make a child; the one whose child is hashed second
    /// closes it at once (`inet_ehash_nolisten`), as does a child that fails before it is
    /// hashed. It was no connection: nothing ended, no SYN_RECV was timed.
    pub const CHILD_LOST: u8 = 64;
}

/// States a path holds: 4 bits each in a u64, the first state in the low bits.
pub const PATH_STATES: u32 = 16;

/// The `i`th state of a path (0 past its end).
#[inline(always)]
pub fn path_state(path: u64, i: u32) -> u8 {
    if i >= PATH_STATES {
        0
    } else {
        ((path >> (4 * i)) & 0xf) as u8
    }
}

/// One socket life followed in the kernel: what the close rules and the owner need, and when
/// it entered its current state. 104 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifeSlot {
    /// `bpf_get_socket_cookie`, never reused; 0: the slot is free.
    pub cookie: u64,
    /// Kernel address of the socket (the userspace model's key of a life).
    pub sk: u64,
    /// When the socket entered `state` (`bpf_ktime_get_boot_ns`).
    pub since_ns: u64,
    /// When the life made its first transition here (a listener's child: `LISTEN -> SYN_RECV`).
    pub start_ns: u64,
    /// The states so far ([`path_state`]), `len` of them.
    pub path: u64,
    /// The owner, as of the last transition made inside its system call (connect, listen,
    /// close, shutdown); 0 until then.
    pub pid_tgid: u64,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    pub state: u8,
    /// The state before `state`: the life's last transition is `prev -> state`.
    pub prev: u8,
    pub len: u8,
    /// [`flags`] bits.
    pub flags: u8,
    /// Local and remote port (host order): a timewait socket, found by its cookie alone, must
    /// also have these.
    pub ports: [u16; 2],
    /// When the socket entered `prev`.
    pub entered_ns: u64,
    /// The timewait socket that took the life over (0: none yet), and when it started.
    pub timewait_sk: u64,
    pub timewait_ns: u64,
}

/// Buckets of one state's dwell-time histogram: exact below 256 ns, then 128 per power of
/// two up to 2^52 ns (52 days; longer values count in the last bucket). A bucket is at most
/// 1/128 of its value wide, so its midpoint is within 0.4 % of every value in it.
pub const DWELL_BUCKETS: u32 = 256 + (52 - 8) * 128;
/// Buckets per map entry (4 KiB: a per-CPU map value is at most 32 KiB).
pub const DWELL_CHUNK: u32 = 512;
/// Map entries per state.
pub const DWELL_CHUNKS: u32 = DWELL_BUCKETS.div_ceil(DWELL_CHUNK);
/// The states the kernel times, by TCP state number: a life's slot is taken after CLOSE and
/// LISTEN, and TIME_WAIT goes one event at a time. The histogram of `DWELL_STATES[i]` is the
/// `i`th.
pub const DWELL_STATES: [u8; 8] = [
    crate::tcp_state::ESTABLISHED,
    crate::tcp_state::SYN_SENT,
    crate::tcp_state::SYN_RECV,
    crate::tcp_state::FIN_WAIT1,
    crate::tcp_state::FIN_WAIT2,
    crate::tcp_state::CLOSE_WAIT,
    crate::tcp_state::LAST_ACK,
    crate::tcp_state::CLOSING,
];
/// Entries of the `DWELL` map.
pub const DWELL_ENTRIES: u32 = DWELL_STATES.len() as u32 * DWELL_CHUNKS;

/// The histogram bucket of a duration in nanoseconds.
#[inline(always)]
pub fn dwell_bucket(ns: u64) -> u32 {
    if ns < 256 {
        return ns as u32;
    }
    let ns = if ns >= 1 << 52 { (1 << 52) - 1 } else { ns };
    let msb = 63 - ns.leading_zeros();
    256 + (msb - 8) * 128 + ((ns >> (msb - 7)) & 127) as u32
}

/// The `DWELL` map entry and the index in it of `state`'s bucket `bucket`; `None` for a
/// state the kernel does not time.
#[inline(always)]
pub fn dwell_entry(state: u8, bucket: u32) -> Option<(u32, u32)> {
    let s = match state {
        crate::tcp_state::ESTABLISHED => 0,
        crate::tcp_state::SYN_SENT => 1,
        crate::tcp_state::SYN_RECV => 2,
        crate::tcp_state::FIN_WAIT1 => 3,
        crate::tcp_state::FIN_WAIT2 => 4,
        crate::tcp_state::CLOSE_WAIT => 5,
        crate::tcp_state::LAST_ACK => 6,
        crate::tcp_state::CLOSING => 7,
        _ => return None,
    };
    let bucket = if bucket < DWELL_BUCKETS {
        bucket
    } else {
        DWELL_BUCKETS - 1
    };
    Some((
        s * DWELL_CHUNKS + bucket / DWELL_CHUNK,
        bucket % DWELL_CHUNK,
    ))
}

/// The value a bucket stands for: its midpoint (exact below 256 ns).
pub fn dwell_bucket_value(bucket: u32) -> u64 {
    if bucket < 256 {
        return bucket as u64;
    }
    let i = bucket - 256;
    let (msb, sub) = (8 + i / 128, (i % 128) as u64);
    let width = 1u64 << (msb - 7);
    ((128 + sub) << (msb - 7)) + width / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_within_half_a_percent() {
        let mut v = 1u64;
        while v < 1 << 52 {
            for x in [v, v + v / 3, v * 2 - 1] {
                let b = dwell_bucket(x);
                assert!(b < DWELL_BUCKETS, "{x} -> {b}");
                let mid = dwell_bucket_value(b);
                let err = (mid as f64 - x as f64).abs() / x as f64;
                assert!(err <= 0.004, "{x}: bucket {b} stands for {mid}");
            }
            v *= 2;
        }
        assert_eq!(dwell_bucket(u64::MAX), DWELL_BUCKETS - 1);
    }

    #[test]
    fn buckets_grow_with_the_value() {
        let mut last = 0;
        for x in (0..40_000u64).chain((1..2000).map(|i| i * 1_000_003)) {
            let b = dwell_bucket(x);
            assert!(b >= last, "{x}");
            last = b;
        }
    }

    #[test]
    fn entries_split_the_timed_states_into_chunks() {
        assert_eq!(dwell_entry(1, 0), Some((0, 0)));
        assert_eq!(dwell_entry(1, 513), Some((1, 1)));
        assert_eq!(dwell_entry(2, 0), Some((DWELL_CHUNKS, 0)));
        let (entry, _) = dwell_entry(crate::tcp_state::CLOSING, DWELL_BUCKETS - 1).unwrap();
        assert_eq!(entry, DWELL_ENTRIES - 1);
        for untimed in [0, 6, 7, 10, 12] {
            assert_eq!(dwell_entry(untimed, 0), None);
        }
        for (i, &state) in DWELL_STATES.iter().enumerate() {
            assert_eq!(dwell_entry(state, 0), Some((i as u32 * DWELL_CHUNKS, 0)));
        }
    }

    #[test]
    fn path_states_read_back() {
        let path = 7 | (2 << 4) | (1 << 8);
        assert_eq!(
            [
                path_state(path, 0),
                path_state(path, 1),
                path_state(path, 2)
            ],
            [7, 2, 1]
        );
        assert_eq!(path_state(path, 3), 0);
        assert_eq!(path_state(u64::MAX, 16), 0);
    }
}
