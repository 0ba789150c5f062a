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
    /// On a LIFE record whose life a timewait socket took over: the kernel follows that
    /// timewait to its end ([`TimewaitSlot`]); no event of it comes to userspace.
    pub const TIMEWAIT_KERNEL: u8 = 128;
}

/// Indexes of the per-CPU `LIFE_COUNTS` map.
pub mod counts {
    /// Lives followed in the kernel.
    pub const FOLLOWED: u32 = 0;
    /// Life starts sent one at a time because their slot was taken.
    pub const SLOT_TAKEN: u32 = 1;
    /// Timewaits that took a slot: the kernel follows them to their end.
    pub const TIMEWAITS_TAKEN: u32 = 2;
    /// Timewaits sent one event at a time because their bucket was full.
    pub const TIMEWAIT_BUCKET_FULL: u32 = 3;
    /// TIME_WAITs of the tracer's own network namespace killed before their timer ran out.
    pub const HOME_EARLY: u32 = 4;
    /// Timewaits whose end was never seen, their slot taken back by a new one of their tuple.
    pub const TIMEWAIT_END_NOT_SEEN: u32 = 5;
    /// Entries.
    pub const ALL: u32 = 6;
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

/// A timewait socket followed to its end in the kernel: the timewait that takes over the life
/// of a listener's child followed in the kernel. Its substate changes and its end add their
/// durations to the dwell-time histograms. 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimewaitSlot {
    /// The timewait's cookie (its full socket's, never reused); 0: the slot is free.
    pub cookie: u64,
    /// Kernel address of the timewait socket.
    pub tw: u64,
    /// [`tuple_key`] of its namespace, addresses and ports.
    pub key: u64,
    /// When its timer first started.
    pub start_ns: u64,
    /// When `substate` began (FIN_WAIT2: when the full socket entered it).
    pub since_ns: u64,
    /// On the timer hooks, a cancel of its timer not yet known to be a kill, an expiry or a
    /// re-arm (0: none), and the substate it reported.
    pub cancel_ns: u64,
    pub netns: u32,
    pub substate: u8,
    pub cancel_substate: u8,
    pub _pad: [u8; 2],
}

/// Slots of a [`TimewaitSlot`] bucket: a timewait takes the first free one of its key's
/// bucket, else goes one event at a time.
pub const TIMEWAIT_WAYS: u32 = 8;

/// A timewait's bucket key: its namespace, local address and port, remote address and port
/// (addresses as `SockTuple` words), mixed into 64 bits. The peer of a connection on the same
/// host finds the key from its own tuple reversed.
#[inline(always)]
pub fn tuple_key(netns: u32, local: &[u32; 4], lport: u16, remote: &[u32; 4], rport: u16) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (netns as u64) << 32 | (lport as u64) << 16 | rport as u64;
    let mut i = 0;
    while i < 4 {
        h = (h ^ local[i] as u64).wrapping_mul(K).rotate_left(29);
        h = (h ^ remote[i] as u64).wrapping_mul(K).rotate_left(29);
        i += 1;
    }
    h ^ h >> 31
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
/// LISTEN. The histogram of `DWELL_STATES[i]` is the `i`th.
pub const DWELL_STATES: [u8; 9] = [
    crate::tcp_state::ESTABLISHED,
    crate::tcp_state::SYN_SENT,
    crate::tcp_state::SYN_RECV,
    crate::tcp_state::FIN_WAIT1,
    crate::tcp_state::FIN_WAIT2,
    crate::tcp_state::CLOSE_WAIT,
    crate::tcp_state::LAST_ACK,
    crate::tcp_state::CLOSING,
    crate::tcp_state::TIME_WAIT,
];
/// The histogram after the states': the TIME_WAITs of the tracer's own network namespace
/// again, for that namespace's forecasts.
pub const HOME_TIME_WAIT: u32 = DWELL_STATES.len() as u32;
/// Histograms in the `DWELL` map.
pub const DWELL_HISTOGRAMS: u32 = HOME_TIME_WAIT + 1;
/// Entries of the `DWELL` map.
pub const DWELL_ENTRIES: u32 = DWELL_HISTOGRAMS * DWELL_CHUNKS;

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
        crate::tcp_state::TIME_WAIT => 8,
        _ => return None,
    };
    Some(histogram_entry(s, bucket))
}

/// The `DWELL` map entry and the index in it of histogram `histogram`'s bucket `bucket`.
#[inline(always)]
pub fn histogram_entry(histogram: u32, bucket: u32) -> (u32, u32) {
    let bucket = if bucket < DWELL_BUCKETS {
        bucket
    } else {
        DWELL_BUCKETS - 1
    };
    (
        histogram * DWELL_CHUNKS + bucket / DWELL_CHUNK,
        bucket % DWELL_CHUNK,
    )
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
        let (entry, _) = histogram_entry(HOME_TIME_WAIT, DWELL_BUCKETS - 1);
        assert_eq!(entry, DWELL_ENTRIES - 1);
        for untimed in [0, 7, 10, 12] {
            assert_eq!(dwell_entry(untimed, 0), None);
        }
        for (i, &state) in DWELL_STATES.iter().enumerate() {
            assert_eq!(dwell_entry(state, 0), Some((i as u32 * DWELL_CHUNKS, 0)));
        }
    }

    #[test]
    fn every_part_of_a_tuple_changes_its_key() {
        let (a, b) = ([0x0100_007f, 0, 0, 0], [0x0200_007f, 0, 0, 0]);
        let key = tuple_key(7, &a, 80, &b, 40000);
        assert_eq!(key, tuple_key(7, &a, 80, &b, 40000));
        for other in [
            tuple_key(8, &a, 80, &b, 40000),
            tuple_key(7, &b, 40000, &a, 80),
            tuple_key(7, &a, 80, &b, 40001),
            tuple_key(7, &a, 81, &b, 40000),
            tuple_key(7, &b, 80, &a, 40000),
        ] {
            assert_ne!(key, other);
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
