//! Timewait sockets followed to their end in the kernel: the timewait that takes over the life
//! of a listener's child followed here takes a [`TimewaitSlot`] in the bucket of its tuple's
//! key ([`life::tuple_key`]). Its substate change and its end add to the dwell-time
//! histograms, and nothing of it crosses to userspace; a timewait that finds its bucket full
//! goes one event at a time. The rules are the userspace model's (tracer/src/model/timewait.rs):
//! - a FIN_WAIT2 substate counts from the full socket's FIN_WAIT2 until a re-arm shows
//!   TIME_WAIT or, on the same host, the peer's `CLOSE_WAIT -> LAST_ACK` (its FIN leaving); a
//!   re-arm within the timer wheel's granularity is invisible, so a timewait that ends in
//!   TIME_WAIT without one counts TIME_WAIT from its start;
//! - on the timer hooks, the expiry or re-arm a cancel belongs to follows it at once on the
//!   same CPU; a cancel nothing follows is a kill (tcp_tw_reuse, RST, netns exit), settled at
//!   the next timewait or request socket timer event or state change on that CPU, and by
//!   userspace at exit. On fentry a kill is an event of its own. (A PREEMPT_RT kernel runs
//!   timers in a thread that could be preempted between the two: not supported there.)
//!
//! Two timewaits never share a tuple in one namespace at once, so a slot of its key that is
//! still taken when a new timewait starts belongs to one whose kill is not settled yet, or
//! whose end was never seen (counted). Two CPUs could take the same free slot in the same
//! instant (no compare-and-swap before BPF v3, which the object is built without), as for the
//! lives' slots. The entries here that search a bucket or end a timewait are BPF
//! subprograms: the verifier then checks their paths once per caller's path, not multiplied by
//! the caller's own (6.1 gave up on the fentry programs at a million instructions).
use aya_ebpf::{
    Global,
    helpers::bpf_ktime_get_boot_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use tracer_common::{
    SockTuple, kind,
    life::{
        self, TIMEWAIT_WAYS, TimewaitSlot,
        counts::{HOME_EARLY, TIMEWAIT_BUCKET_FULL, TIMEWAIT_END_NOT_SEEN, TIMEWAITS_TAKEN},
    },
    tcp_state::{FIN_WAIT2, TIME_WAIT},
};

use super::{BPF_F_MMAPABLE, count, record_dwell as record_dwell_inline, record_histogram};

/// Buckets of [`TIMEWAITS`] minus one (a power of two minus one), written by the loader.
#[unsafe(no_mangle)]
static TW_BUCKET_MASK: Global<u32> = Global::new(0);

/// The tracer's own network namespace (its inode number): its TIME_WAITs are counted again
/// for its forecasts.
#[unsafe(no_mangle)]
static HOME_NETNS: Global<u32> = Global::new(0);

/// Timewaits followed in the kernel. Sized by the loader; userspace maps it to count them.
#[map]
static TIMEWAITS: Array<TimewaitSlot> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Per CPU: the followed timewait whose timer's cancel nothing has followed yet (its address,
/// its slot, its cookie).
#[map]
static TW_PENDING: PerCpuArray<[u64; 3]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn key_of(t: &SockTuple) -> u64 {
    life::tuple_key(t.netns, &t.saddr, t.sport, &t.daddr, t.dport)
}

#[inline(always)]
fn first_of(key: u64) -> u32 {
    ((key >> 32) as u32 & TW_BUCKET_MASK.load()) * TIMEWAIT_WAYS
}

#[inline(always)]
fn slot_at(i: u32) -> Option<&'static mut TimewaitSlot> {
    // SAFETY: a map value that lives as long as the map. A slot is written by the events of
    // its own timewait, which its timer and hash locks serialise, or taken when free.
    TIMEWAITS.get_ptr_mut(i).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// The slot of timewait `tw` with `cookie` and tuple `t`.
#[inline(always)]
fn find(t: &SockTuple, cookie: u64, tw: u64) -> Option<(u32, &'static mut TimewaitSlot)> {
    let key = key_of(t);
    let first = first_of(key);
    for i in 0..TIMEWAIT_WAYS {
        let s = slot_at(first + i)?;
        if s.cookie == cookie && s.tw == tw && s.key == key && cookie != 0 {
            return Some((first + i, s));
        }
    }
    None
}

/// Timewait `tw` (`cookie`, tuple `t`, `substate`) takes over, now, the life of a listener's
/// child that has been in `life_state` since `life_since`: `true` when it took a slot. A
/// subprogram, as are the other entries here: the verifier then checks its paths once per
/// caller's path, not multiplied by the caller's own.
#[inline(never)]
pub fn take(id: &Id, t: &SockTuple, life_state: u8, life_since: u64) -> bool {
    let key = key_of(t);
    let first = first_of(key);
    let (mut free, mut stale) = (u32::MAX, u32::MAX);
    for i in 0..TIMEWAIT_WAYS {
        let Some(s) = slot_at(first + i) else {
            return false;
        };
        if s.cookie == 0 {
            if free == u32::MAX {
                free = first + i;
            }
        } else if s.key == key {
            stale = first + i;
        }
    }
    if let Some(s) = slot_at(stale) {
        // An earlier timewait of this tuple (two never share one at once): killed with its
        // kill not settled yet, or ended unseen.
        match s.cancel_ns {
            0 => {
                count(TIMEWAIT_END_NOT_SEEN);
                s.cookie = 0;
            }
            at => end(s, at, s.cancel_substate, true),
        }
        if free == u32::MAX {
            free = stale;
        }
    }
    let Some(s) = slot_at(free) else {
        count(TIMEWAIT_BUCKET_FULL);
        return false;
    };
    let now = now();
    s.tw = id.tw;
    s.key = key;
    s.start_ns = now;
    s.since_ns = match (id.substate, life_state) {
        (FIN_WAIT2, FIN_WAIT2) => life_since,
        _ => now,
    };
    s.cancel_ns = 0;
    s.netns = t.netns;
    s.substate = id.substate;
    s.cancel_substate = 0;
    s.cookie = id.cookie;
    count(TIMEWAITS_TAKEN);
    true
}

/// A timewait socket and what one of its timer events reports.
#[repr(C)]
pub struct Id {
    pub tw: u64,
    pub cookie: u64,
    pub substate: u8,
    /// As in timewait.rs.
    pub event_kind: u8,
    /// A cancel that is surely a kill (fentry).
    pub certain: bool,
}

/// A timer event of timewait `id` with tuple `t`: `true` when its slot is here and nothing
/// is sent.
#[inline(never)]
pub fn event(id: &Id, t: &SockTuple) -> bool {
    let pending = settle_except(id.tw, id.cookie);
    let Some((at, s)) = find(t, id.cookie, id.tw) else {
        return false;
    };
    let now = now();
    match id.event_kind {
        kind::TW_START => {
            // A re-arm: a substate change or a refreshed timeout.
            s.cancel_ns = 0;
            if pending {
                clear_pending();
            }
            if id.substate != s.substate {
                record_dwell(s.substate, now.saturating_sub(s.since_ns));
                s.substate = id.substate;
                s.since_ns = now;
            }
        }
        kind::TW_EXPIRE => {
            if pending {
                clear_pending();
            }
            end(s, now, id.substate, false);
        }
        _ if id.certain => end(s, now, id.substate, true),
        _ => {
            s.cancel_ns = now;
            s.cancel_substate = id.substate;
            if let Some(p) = TW_PENDING.get_ptr_mut(0) {
                // SAFETY: this CPU's entry; nothing else runs on this CPU meanwhile.
                unsafe { *p = [id.tw, at as u64, id.cookie] };
            }
        }
    }
    true
}

/// On the same host, the peer of a timewait in FIN_WAIT2 substate sends its FIN
/// (`CLOSE_WAIT -> LAST_ACK` of a socket with tuple `peer`): the timewait is in TIME_WAIT now.
#[inline(always)]
pub fn peer_sent_fin(peer: &SockTuple) {
    let key = life::tuple_key(peer.netns, &peer.daddr, peer.dport, &peer.saddr, peer.sport);
    let first = first_of(key);
    for i in 0..TIMEWAIT_WAYS {
        let Some(s) = slot_at(first + i) else {
            return;
        };
        if s.cookie != 0 && s.key == key && s.substate == FIN_WAIT2 {
            let now = now();
            record_dwell(FIN_WAIT2, now.saturating_sub(s.since_ns));
            s.substate = TIME_WAIT;
            s.since_ns = now;
            return;
        }
    }
}

/// Settles a kill left pending on this CPU: on every state change, so the check is inline and
/// the rare work a subprogram.
#[inline(always)]
pub fn settle() {
    // SAFETY: this CPU's entry.
    if let Some(p) = TW_PENDING.get_ptr(0)
        && unsafe { (*p)[0] } != 0
    {
        settle_pending();
    }
}

#[inline(never)]
fn settle_pending() {
    settle_except(0, 0);
}

/// Settles the kill pending on this CPU unless it is that of timewait `tw` with `cookie` (a
/// timewait's memory is soon reused): returns whether it is.
#[inline(always)]
fn settle_except(tw: u64, tw_cookie: u64) -> bool {
    let Some(p) = TW_PENDING.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's entry.
    let [pending, at, cookie] = unsafe { *p };
    if pending == 0 {
        return false;
    }
    if pending == tw && cookie == tw_cookie {
        return true;
    }
    clear_pending();
    if let Some(s) = slot_at(at as u32)
        && s.tw == pending
        && s.cookie == cookie
        && cookie != 0
        && s.cancel_ns != 0
    {
        end(s, s.cancel_ns, s.cancel_substate, true);
    }
    false
}

#[inline(always)]
fn clear_pending() {
    if let Some(p) = TW_PENDING.get_ptr_mut(0) {
        // SAFETY: this CPU's entry.
        unsafe { (*p)[0] = 0 };
    }
}

/// [`super::record_dwell`] as a subprogram: the bucket's computation branches, and each of
/// its paths would otherwise multiply the paths of what follows for the verifier (6.1 gave up
/// on the fentry programs).
#[inline(never)]
fn record_dwell(state: u8, ns: u64) {
    record_dwell_inline(state, ns);
}

/// [`super::record_histogram`] of the home TIME_WAITs, as a subprogram for the same reason.
#[inline(never)]
fn record_home(ns: u64) {
    record_histogram(life::HOME_TIME_WAIT, ns);
}

/// Ends the timewait in `s` at `at_ns`, the kernel reporting `final_substate` then; `early`
/// when killed before its timer ran out.
#[inline(never)]
fn end(s: &mut TimewaitSlot, at_ns: u64, final_substate: u8, early: bool) {
    let (mut substate, mut since) = (s.substate, s.since_ns);
    if substate == FIN_WAIT2 && final_substate == TIME_WAIT {
        // The FIN arrived without a visible re-arm: TIME_WAIT counts from the start.
        record_dwell(FIN_WAIT2, s.start_ns.saturating_sub(since));
        (substate, since) = (TIME_WAIT, s.start_ns);
    }
    let ns = at_ns.saturating_sub(since);
    record_dwell(substate, ns);
    if substate == TIME_WAIT && s.netns == HOME_NETNS.load() {
        record_home(ns);
        if early {
            count(HOME_EARLY);
        }
    }
    s.cookie = 0;
}
