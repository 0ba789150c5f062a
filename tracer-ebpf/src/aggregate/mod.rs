//! Kernel aggregation ([`tracer_common::life`]): a socket whose life starts while the tracer
//! runs (a client at connect(), a listener's child once established) gets a slot indexed by its
//! cookie; its transitions add their dwell times to per-CPU histograms and extend the slot's
//! path, and one LIFE record goes to userspace when it closes, carrying the start of the
//! timewait socket that takes it over. Whatever does not fit (a socket from before the trace,
//! a slot already taken, a state that does not follow) goes the per-transition way, so the
//! userspace model still decides it and nothing is guessed.
mod child;
mod hooks;
mod timewaits;

pub use child::request_completes;
pub use hooks::{Timewait, reset, timewait_event};
pub use timewaits::settle as settle_timewait_kill;

use aya_ebpf::{
    EbpfContext, Global,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated,
    },
    macros::{btf_tracepoint, map},
    maps::{Array, PerCpuArray},
    programs::BtfTracePointContext,
};
use tracer_common::{
    kind,
    life::{
        self, DWELL_CHUNK, DWELL_ENTRIES, LifeSlot, PATH_STATES,
        counts::{FOLLOWED, SLOT_TAKEN},
    },
    tcp_state::{
        CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, LAST_ACK, LISTEN, SYN_RECV, SYN_SENT,
    },
};

use crate::{
    emit::{
        DirectRead, ProbeRead, Reader, Seen, emit, emit_flagged, kept, push, tuple, write_tuple,
    },
    log::outcome,
};

/// 1 when the loader chose kernel aggregation (and attached the program below).
#[unsafe(no_mangle)]
static AGGREGATE: Global<u32> = Global::new(0);

/// Slots in [`LIVES`] minus one (a power of two minus one), written by the loader.
#[unsafe(no_mangle)]
static SLOT_MASK: Global<u32> = Global::new(0);

/// Userspace maps the slots to count the sockets in each state without a syscall per slot.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Lives followed in the kernel, by cookie. Sized by the loader.
#[map]
static LIVES: Array<LifeSlot> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Dwell-time histograms, [`life::dwell_entry`] of (state, bucket). Sized by the loader.
#[map]
static DWELL: PerCpuArray<[u64; DWELL_CHUNK as usize]> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: how many durations each [`DWELL`] entry counted, so userspace reads only the
/// entries that changed.
#[map]
static DWELL_TOUCHED: PerCpuArray<[u64; DWELL_ENTRIES as usize]> =
    PerCpuArray::with_max_entries(1, 0);

/// Per CPU: lives followed in the kernel, life starts left to the per-transition path
/// because their slot was taken, and the timewaits' counts of timewaits.rs.
#[map]
static LIFE_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(life::counts::ALL, 0);

#[inline(always)]
pub fn enabled() -> bool {
    AGGREGATE.load() != 0
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn aggregate_inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    timewaits::settle();
    let result = match crate::state::seen(&ctx) {
        Ok(Some(seen)) => match crate::reqsk::child::change_flags(&seen) {
            Ok(_) if (seen.old_state, seen.new_state) == (LISTEN, SYN_RECV) => {
                sk_number(&ctx).and_then(|n| child::child_made(seen, n))
            }
            Ok(flags) => {
                // SAFETY: the helper takes the tp_btf socket argument (a trusted BTF
                // pointer); it allows tracing programs from Linux 5.12, where the loader
                // falls back.
                let cookie = unsafe { generated::bpf_get_socket_cookie(seen.sk as *mut _) };
                change(&ctx, seen, cookie, flags)
            }
            Err(e) => Err(e),
        },
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    outcome(&ctx, "aggregate inet_sock_set_state", result);
    0
}

/// The socket's address as a number, read again from the tracepoint's arguments: the
/// verifier allows no arithmetic on the typed pointer, and a child's hash needs some.
#[inline(always)]
fn sk_number(ctx: &BtfTracePointContext) -> Result<u64, i32> {
    ProbeRead::read::<u64>(ctx.as_ptr() as *const u8, 0)
}

/// The slot of a cookie, whoever holds it. Hashed: cookies come in per-CPU batches of 4096,
/// and on some kernels (6.1, 6.12) many are multiples of 4096, which would share a few slots.
#[inline(always)]
fn slot(cookie: u64) -> Option<&'static mut LifeSlot> {
    let hash = (cookie.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
    let ptr = LIVES.get_ptr_mut(hash & SLOT_MASK.load())?;
    // SAFETY: a map value that lives as long as the map; a socket's transitions are
    // serialised by its lock, and a slot is only written for the socket whose cookie and
    // address it holds, or taken when free. Two sockets whose cookies share a free slot could
    // both take it in the same instant on two CPUs (no compare-and-swap before BPF v3); the
    // loser's next transition then finds another address and goes one by one.
    Some(unsafe { &mut *ptr })
}

/// Transitions that only happen inside a system call of the owning process, so the current
/// task is the owner (the userspace model's rule).
#[inline(always)]
fn in_owner_context(old: u8, new: u8) -> bool {
    matches!(
        (old, new),
        (CLOSE, SYN_SENT) | (CLOSE, LISTEN) | (ESTABLISHED, FIN_WAIT1) | (CLOSE_WAIT, LAST_ACK)
    )
}

#[inline(always)]
fn count(which: u32) {
    if let Some(n) = LIFE_COUNTS.get_ptr_mut(which) {
        // SAFETY: this CPU's counter.
        unsafe { *n += 1 };
    }
}

/// A free slot takes a life whose `path` (of `len` states) ends with `seen`'s change; it
/// started at `start` and makes that change `now`.
#[inline(always)]
fn take(
    s: &mut LifeSlot,
    cookie: u64,
    seen: &Seen,
    t: &tracer_common::SockTuple,
    (path, len): (u64, u8),
    (start, now): (u64, u64),
) {
    s.cookie = cookie;
    s.sk = seen.sk as u64;
    s.since_ns = now;
    s.start_ns = start;
    s.entered_ns = start;
    s.timewait_sk = 0;
    s.timewait_ns = 0;
    s.path = path;
    s.len = len;
    s.prev = seen.old_state;
    s.state = seen.new_state;
    s.flags = 0;
    s.ports = [t.sport, t.dport];
    s.pid_tgid = 0;
    s.cgroup_id = 0;
    if in_owner_context(seen.old_state, seen.new_state) {
        take_owner(s);
    } else {
        s.comm = [0; 16];
    }
    count(FOLLOWED);
}

/// One state change of a full socket under aggregation, with its `flags` (a child that
/// never took its request socket over: reqsk/child.rs).
#[inline(always)]
fn change(ctx: &BtfTracePointContext, seen: Seen, cookie: u64, flags: u8) -> Result<(), i32> {
    let (old, new) = (seen.old_state, seen.new_state);
    if (old, new) == (CLOSE_WAIT, LAST_ACK) {
        timewaits::peer_sent_fin(&tuple::<DirectRead>(&seen)?);
    }
    if old == SYN_RECV
        && let Some(note) = child::take_child_note(&seen, sk_number(ctx)?)
        && child::child_changes(seen, cookie, note)?
    {
        return Ok(());
    }
    if flags != 0 {
        return emit_flagged::<DirectRead>(seen, flags);
    }
    let Some(s) = slot(cookie) else {
        return emit::<DirectRead>(seen);
    };
    // The socket's address too: a cookie is meant to be unique, but a slot must never mix
    // two sockets whatever a kernel does with cookies.
    if cookie == 0 || s.cookie != cookie || s.sk != seen.sk as u64 {
        // A client from connect() on; a listener's child from its handshake's end, once its
        // cookie is final (6.1 and 6.12 copy the request socket's cookie into the child
        // after `LISTEN -> SYN_RECV`): its handshake goes one by one, the change that ends
        // it flagged.
        let client = old == CLOSE && new == SYN_SENT;
        let child = old == SYN_RECV && new == ESTABLISHED;
        if !client && !child {
            return emit::<DirectRead>(seen);
        }
        if s.cookie != 0 {
            count(SLOT_TAKEN);
            return emit::<DirectRead>(seen);
        }
        let Some(t) = kept::<DirectRead>(&seen)? else {
            return Ok(());
        };
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        // A child's path starts at ESTABLISHED: the model has its handshake one by one.
        let path = match client {
            true => (old as u64 | (new as u64) << 4, 2),
            false => (new as u64, 1),
        };
        take(s, cookie, &seen, &t, path, (now, now));
        return match client {
            true => Ok(()),
            false => emit_flagged::<DirectRead>(seen, life::flags::KERNEL_FOLLOWS),
        };
    }
    if s.state != old {
        // A transition that does not follow (cannot happen while every one is seen): hand
        // the life so far to userspace and follow the rest one by one.
        let flushed = release_after(s, |s| flush(s, seen.sk, seen.family, seen.sport));
        let emitted = emit::<DirectRead>(seen);
        return flushed.and(emitted);
    }
    if old == new {
        // shutdown() then close() reports FIN_WAIT1 -> FIN_WAIT1: not a change.
        return Ok(());
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // A FIN_WAIT2 that goes on in its timewait socket is timed from its start here to the
    // timewait's end or change to TIME_WAIT: by the timewait's slot (timewaits.rs) or, if it
    // took none, by userspace.
    let continues = new == CLOSE
        && old == FIN_WAIT2
        && s.timewait_sk != 0
        && s.flags & life::flags::TIMEWAIT_FIN_WAIT2 != 0;
    if !continues {
        record_dwell(old, now.saturating_sub(s.since_ns));
    }
    if (s.len as u32) < PATH_STATES {
        s.path |= (new as u64 & 0xf) << (4 * (s.len as u32 & 15));
        s.len += 1;
    } else {
        s.flags |= life::flags::PATH_FULL;
    }
    if in_owner_context(old, new) {
        take_owner(s);
    }
    s.prev = old;
    s.state = new;
    s.entered_ns = s.since_ns;
    s.since_ns = now;
    // connect() changes the state before it picks the local port: keep it current.
    s.ports[0] = seen.sport;
    if new != CLOSE {
        return Ok(());
    }
    let record = Seen {
        kind: kind::LIFE,
        ..seen
    };
    release_after(s, |s| push_life(s, &record, &tuple::<DirectRead>(&seen)?))
}

/// Runs `send` (which reads the slot), then frees the slot whatever it returned: freed
/// before, another CPU could take the slot and mix its life into the record.
#[inline(always)]
fn release_after(
    s: &mut LifeSlot,
    send: impl FnOnce(&LifeSlot) -> Result<(), i32>,
) -> Result<(), i32> {
    let sent = send(s);
    s.cookie = 0;
    sent
}

/// The current task becomes the life's owner.
#[inline(always)]
fn take_owner(s: &mut LifeSlot) {
    s.pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: helpers; the comm one writes at most 16 bytes into the slot (zeroed on error).
    unsafe {
        s.cgroup_id = bpf_get_current_cgroup_id();
        generated::bpf_get_current_comm((&raw mut s.comm).cast(), 16);
    }
}

#[inline(always)]
fn record_dwell(state: u8, ns: u64) {
    if let Some((entry, i)) = life::dwell_entry(state, life::dwell_bucket(ns)) {
        add_to(entry, i);
    }
}

/// Counts `ns` in histogram `histogram` of the `DWELL` map (past the states').
#[inline(always)]
fn record_histogram(histogram: u32, ns: u64) {
    let (entry, i) = life::histogram_entry(histogram, life::dwell_bucket(ns));
    add_to(entry, i);
}

/// Adds one to bucket `i` of `DWELL` entry `entry`.
#[inline(always)]
fn add_to(entry: u32, i: u32) {
    if let Some(chunk) = DWELL.get_ptr_mut(entry) {
        // SAFETY: this CPU's chunk; the index is masked into it.
        unsafe { (*chunk)[(i & (DWELL_CHUNK - 1)) as usize] += 1 };
    }
    if let Some(touched) = DWELL_TOUCHED.get_ptr_mut(0) {
        // LLVM proves the entry in bounds and would drop the check the verifier needs: the
        // volatile read hides what it knows.
        let entry = unsafe { core::ptr::read_volatile(&entry) } as usize;
        // SAFETY: this CPU's counters; `get_mut` checks the index.
        if let Some(n) = unsafe { (*touched).get_mut(entry) } {
            *n += 1;
        }
    }
}

/// One LIFE record for the slot's life, its last transition described by `record`.
#[inline(always)]
fn push_life(s: &LifeSlot, record: &Seen, t: &tracer_common::SockTuple) -> Result<(), i32> {
    push(|ev| {
        // SAFETY: `ev` is the reserved record, exclusively this program's until submitted.
        unsafe {
            write_tuple(ev, record, t);
            (*ev).ts_ns = s.since_ns;
            (*ev).sk = s.sk;
            (*ev).pid_tgid = s.pid_tgid;
            (*ev).cgroup_id = s.cgroup_id;
            (*ev).life_flags = s.flags;
            (*ev).path = s.path;
            (*ev).start_ns = s.start_ns;
            (*ev).entered_ns = s.entered_ns;
            (*ev).timewait_sk = s.timewait_sk;
            (*ev).timewait_ns = s.timewait_ns;
            let (from, to) = (
                (&raw const s.comm).cast::<u64>(),
                (&raw mut (*ev).comm).cast::<u64>(),
            );
            to.write_unaligned(from.read_unaligned());
            to.add(1).write_unaligned(from.add(1).read_unaligned());
        }
    })
}

/// Hands the life so far to userspace (its next transitions come one by one), reading its
/// addresses from the socket at `at`.
#[inline(always)]
fn flush(s: &LifeSlot, at: *const u8, family: u16, sport: u16) -> Result<(), i32> {
    let record = Seen {
        kind: kind::LIFE,
        sk: at,
        old_state: s.prev,
        new_state: s.state,
        family,
        sport,
    };
    let t = tuple::<ProbeRead>(&record)?;
    push_life(s, &record, &t)
}
