//! Half-open connections: request sockets (SYN received, SYN-ACK sent, final ACK awaited),
//! which `inet_sock_set_state` never reports, followed through their SYN-ACK timer
//! (`reqsk_timer_handler`) on the timer tracepoints. One record per request socket, at its
//! end ([`kind::REQ_END`], end.rs), with its start (its first SYN-ACK, which the kernel keeps
//! in `tcp_request_sock.snt_synack`: no map, and exact for request sockets older than the
//! trace too) and its SYN-ACK retransmits. What the timer does (seen on 6.18 with a debug
//! build; the tests of tests/tests/half_open.rs check the outcome):
//! - creation arms it (`timer_start`);
//! - each timeout detaches it (`timer_cancel`, still hashed), runs the handler
//!   (`timer_expire_entry`), which retransmits and re-arms it (`timer_start`, same CPU) or
//!   drops the request socket (no timer event: seen at `timer_expire_exit`);
//! - the final ACK, an RST or a netns exit first unlink the request socket from the hash, then
//!   delete its timer (`timer_cancel` of an unhashed request socket);
//! - a retransmitted SYN re-arms a pending timer (`timer_cancel` then `timer_start`, hashed).
//!
//! The timer can expire on one CPU while another completes the request socket: between the
//! final ACK's unlink and its timer delete (`timer_delete_sync`, which waits for a running
//! handler), the expiry detaches the timer of an unlinked request socket (`timer_cancel`: its
//! end is recorded then), and the handler re-arms it (`mod_timer`) or drops it. The delete
//! that follows a re-arm is then no second end ([`REQ_ENDED`]).
//!
//! On the timer path of TIME_WAIT the timer programs of timewait.rs pass request socket timers
//! here. Where the loader chooses fentry for TIME_WAIT, fentry and fexit on the handler itself
//! (handler.rs) and `reqsk_timer_cancel` below do it; should the kernel refuse fexit, the
//! `reqsk_timer_*` programs below are attached to all four tracepoints for request sockets
//! alone. The unlink stays on `timer_cancel`: the functions that end a request socket differ
//! between kernels (6.12 moved the drop into a static `__inet_csk_reqsk_queue_drop`;
//! `reqsk_queue_unlink` is static and the exported `inet_csk_reqsk_queue_drop` can be inlined
//! into its callers), while the timer tracepoints are the same everywhere.
pub mod child;
mod end;
mod handler;

use aya_ebpf::{
    Global,
    helpers::bpf_probe_read_kernel_buf,
    macros::{btf_tracepoint, map},
    maps::{LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use tracer_common::{kind, req_end};

use crate::{
    emit::{ProbeRead, Reader, read},
    log::outcome,
    offset,
};

/// Address of `reqsk_timer_handler`, from /proc/kallsyms at load time. 0 disables this path.
#[unsafe(no_mangle)]
pub static REQSK_TIMER_HANDLER: Global<u64> = Global::new(0);

/// Bytes of a request socket copied when its handler starts: its `sock_common` (136 bytes
/// on 6.18) with room to spare.
const HEAD: usize = 256;

/// Per CPU: the request socket whose timer handler runs now (handlers run in softirq, one at
/// a time per CPU), and what its end record needs if the handler drops it: the socket is freed
/// before `timer_expire_exit`.
#[repr(C)]
pub struct Expiring {
    req: u64,
    retransmits: u64,
    /// `snt_synack`: beyond the copied head.
    first_synack_us: u64,
    /// The request socket whose end the last `timer_cancel` on this CPU recorded (end.rs).
    ended: u64,
    /// The request socket whose handler runs now, its end recorded at its expiry ([`REQ_ENDED`]).
    unlinked: u64,
    head: [u8; HEAD],
}

#[map]
static REQ_EXPIRING: PerCpuArray<Expiring> = PerCpuArray::with_max_entries(1, 0);

/// Request sockets whose end was recorded at the expiry of their timer, after their unlink,
/// and whose handler re-armed it: the `timer_cancel` that deletes it is no second end. Taken
/// out by that cancel, or when the handler does not re-arm it.
#[map]
pub(super) static REQ_ENDED: LruHashMap<u64, u64> = LruHashMap::with_max_entries(256, 0);

/// True when `function` is the request socket timer's: the one compare the timer hooks add.
#[inline(always)]
pub fn is_reqsk_timer(function: u64) -> bool {
    let handler = REQSK_TIMER_HANDLER.load();
    handler != 0 && function == handler
}

/// A timer event of a request socket's timer (`event_kind` as in timewait.rs).
#[inline(always)]
pub fn on_timer(timer: *const u8, event_kind: u8) -> Result<(), i32> {
    let req = timer.wrapping_sub(offset!(rsk_timer) as usize);
    match event_kind {
        kind::TW_START => started(req),
        kind::TW_CANCEL if unhashed(req)? => end::unlinked(req),
        kind::TW_EXPIRE if !unhashed(req)? => expiring(req),
        kind::TW_EXPIRE => expiring_unlinked(req),
        _ => Ok(()),
    }
}

/// The fentry path's timer programs: request socket timers only (timewait ones are followed by
/// fentry there).
#[inline(always)]
fn request_timer(ctx: &BtfTracePointContext, event_kind: u8) -> Result<(), i32> {
    let timer: *const u8 = ctx.arg(0);
    // A direct load from the BTF-typed argument, as in timewait.rs.
    let at = offset!(timer_function) as usize;
    // SAFETY: tp_btf arguments are valid kernel pointers; the verifier checks the access.
    let function = unsafe { core::ptr::read_volatile(timer.add(at) as *const u64) };
    if !is_reqsk_timer(function) {
        return Ok(());
    }
    on_timer(timer, event_kind)
}

#[btf_tracepoint(function = "timer_start")]
pub fn reqsk_timer_start(ctx: BtfTracePointContext) -> i32 {
    outcome(
        &ctx,
        "reqsk timer_start",
        request_timer(&ctx, kind::TW_START),
    );
    0
}

#[btf_tracepoint(function = "timer_expire_entry")]
pub fn reqsk_timer_expire_entry(ctx: BtfTracePointContext) -> i32 {
    let result = request_timer(&ctx, kind::TW_EXPIRE);
    outcome(&ctx, "reqsk timer_expire_entry", result);
    0
}

#[btf_tracepoint(function = "timer_cancel")]
pub fn reqsk_timer_cancel(ctx: BtfTracePointContext) -> i32 {
    outcome(
        &ctx,
        "reqsk timer_cancel",
        request_timer(&ctx, kind::TW_CANCEL),
    );
    0
}

/// Armed: by its creation, by its handler after a retransmit (then it was not dropped), or by
/// a retransmitted SYN. Its start is kept by the kernel: nothing to record.
#[inline(always)]
fn started(req: *const u8) -> Result<(), i32> {
    if let Some(slot) = REQ_EXPIRING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
        unsafe {
            if (*slot).req == req as u64 {
                (*slot).req = 0;
            }
            // Re-armed after its end: the cancel that deletes it finds it in REQ_ENDED.
            if (*slot).unlinked == req as u64 {
                (*slot).unlinked = 0;
            }
        }
    }
    Ok(())
}

/// The handler of a request socket unlinked before its timer expired is about to run: if the
/// expiry's `timer_cancel` (right before, on this CPU) recorded its end, none must follow.
#[inline(always)]
fn expiring_unlinked(req: *const u8) -> Result<(), i32> {
    let slot = REQ_EXPIRING.get_ptr_mut(0).ok_or(-1)?;
    let req = req as u64;
    // SAFETY: this CPU's slot, as above.
    unsafe {
        if (*slot).ended != req {
            return Ok(());
        }
        (*slot).ended = 0;
        (*slot).unlinked = req;
    }
    REQ_ENDED.insert(&req, &0, 0)
}

/// A request socket unlinked on this CPU had its end recorded.
#[inline(always)]
pub(super) fn ended(req: *const u8) {
    if let Some(slot) = REQ_EXPIRING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, as above.
        unsafe { (*slot).ended = req as u64 };
    }
}

/// Out of the established hash (`skc_nulls_node.pprev` NULL): unlinked from the SYN queue.
#[inline(always)]
fn unhashed(req: *const u8) -> Result<bool, i32> {
    Ok(read::<u64>(req, offset!(skc_nulls_pprev))? == 0)
}

/// The handler is about to run: keep what an end record needs, in case it drops the socket.
#[inline(always)]
fn expiring(req: *const u8) -> Result<(), i32> {
    let slot = REQ_EXPIRING.get_ptr_mut(0).ok_or(-1)?;
    let retransmits = u64::from(read::<u8>(req, offset!(num_retrans))?);
    let first_synack_us = read::<u64>(req, offset!(snt_synack))?;
    // SAFETY: this CPU's slot, as above; the helper copies with the fault-safe accessor.
    unsafe {
        bpf_probe_read_kernel_buf(req, &mut (*slot).head)?;
        (*slot).retransmits = retransmits;
        (*slot).first_synack_us = first_synack_us;
        (*slot).req = req as u64;
    }
    Ok(())
}

/// On both paths: the handler returned without re-arming the timer.
#[btf_tracepoint(function = "timer_expire_exit")]
pub fn timer_expire_exit(ctx: BtfTracePointContext) -> i32 {
    outcome(&ctx, "timer_expire_exit", try_expire_exit(&ctx));
    0
}

/// Runs for every timer that fires; the compare with this CPU's slot is all most pay.
#[inline(always)]
fn try_expire_exit(ctx: &BtfTracePointContext) -> Result<(), i32> {
    if REQSK_TIMER_HANDLER.load() == 0 {
        return Ok(());
    }
    exited(ctx.arg(0))
}

/// The handler of request socket timer `timer` returned. A re-arm in it cleared this CPU's
/// slot ([`started`]); else the request socket noted at its expiry was dropped.
#[inline(always)]
fn exited(timer: *const u8) -> Result<(), i32> {
    let Some(slot) = REQ_EXPIRING.get_ptr_mut(0) else {
        return Ok(());
    };
    let expired = (timer as u64).wrapping_sub(u64::from(offset!(rsk_timer)));
    // SAFETY: this CPU's slot, as above.
    let (req, unlinked) = unsafe { ((*slot).req, (*slot).unlinked) };
    if unlinked != 0 && unlinked == expired {
        // Ended at its expiry and not re-armed: no cancel of it follows.
        // SAFETY: as above.
        unsafe { (*slot).unlinked = 0 };
        let _ = REQ_ENDED.remove(&unlinked);
        return Ok(());
    }
    if req == 0 || req != expired {
        return Ok(());
    }
    // SAFETY: as above.
    let (retransmits, first_synack_us) = unsafe { ((*slot).retransmits, (*slot).first_synack_us) };
    let req = req as *const u8;
    let result = end::record::<Copied>(req, req_end::EXPIRED, retransmits as u8, first_synack_us);
    // Copied reads the slot while its owner is set: clear it only after the record is sent.
    // SAFETY: as above.
    unsafe { (*slot).req = 0 };
    result
}

/// Reads the request socket being dropped from this CPU's copy (it is freed by now), and any
/// other address (its `struct net`) from the kernel.
struct Copied;

impl Reader for Copied {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, offset: u32) -> Result<T, i32> {
        let slot = REQ_EXPIRING.get_ptr(0).ok_or(-1)?;
        let size = core::mem::size_of::<T>();
        // SAFETY: this CPU's slot, as above.
        unsafe {
            if (*slot).req != base as u64 {
                return ProbeRead::read(base, offset);
            }
            if offset as usize + size > HEAD {
                return Err(-1);
            }
            ProbeRead::read((*slot).head.as_ptr(), offset)
        }
    }
}
