//! A request socket's end record ([`kind::REQ_END`]), or, under kernel aggregation, its start
//! handed to the child that completes it.
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, bpf_ktime_get_ns,
    generated,
};
use tracer_common::{kind, req_end, tcp_state::NEW_SYN_RECV};

use crate::{
    emit::{ProbeRead, Reader, Seen, kept, push, read, write_tuple},
    offset,
};

/// Unlinked before its timer ran out: the socket is still alive here. Completed by the final
/// ACK under aggregation, its start goes into its child's note (nothing crosses: the child's
/// life record carries it); else its end record goes. Once: not again when its timer, re-armed
/// after its end was recorded at an expiry, is deleted (mod.rs).
#[inline(always)]
pub fn unlinked(req: *const u8) -> Result<(), i32> {
    let child = super::child::take();
    let key = req as u64;
    // SAFETY: the value is not used, only whether there is one.
    if unsafe { super::REQ_ENDED.get(&key) }.is_some() {
        let _ = super::REQ_ENDED.remove(&key);
        return Ok(());
    }
    super::ended(req);
    let first_synack_us = read::<u64>(req, offset!(snt_synack))?;
    if crate::aggregate::enabled() {
        let start_ns = boot_time(first_synack_us);
        if start_ns != 0 && crate::aggregate::request_completes(req, child, start_ns)? {
            return Ok(());
        }
    }
    let retransmits = read::<u8>(req, offset!(num_retrans))?;
    record::<ProbeRead>(req, req_end::UNLINKED, retransmits, first_synack_us)
}

/// A `tcp_clock_us` time (CLOCK_MONOTONIC microseconds) on the events' clock
/// (CLOCK_BOOTTIME nanoseconds); 0 for 0 or a time in the future (not a real start).
#[inline(always)]
fn boot_time(mono_us: u64) -> u64 {
    // SAFETY: helpers without arguments.
    let (mono, boot) = unsafe { (bpf_ktime_get_ns(), bpf_ktime_get_boot_ns()) };
    if mono_us == 0 || mono_us > mono / 1000 {
        return 0;
    }
    // A plain multiply: saturating_mul compiles to a 128-bit one, which BPF lacks.
    boot - (mono - mono_us.wrapping_mul(1000))
}

/// Sends the end record of `req`: its start is its first SYN-ACK.
#[inline(always)]
pub fn record<R: Reader>(
    req: *const u8,
    end: u8,
    retransmits: u8,
    first_synack_us: u64,
) -> Result<(), i32> {
    // A request socket's skc_num is its local port in host order.
    let seen = Seen {
        kind: kind::REQ_END,
        sk: req,
        old_state: NEW_SYN_RECV,
        new_state: NEW_SYN_RECV,
        family: R::read::<u16>(req, offset!(skc_family))?,
        sport: R::read::<u16>(req, offset!(skc_num))?,
    };
    let Some(t) = kept::<R>(&seen)? else {
        return Ok(());
    };
    let start_ns = boot_time(first_synack_us);
    // SAFETY: helper without arguments.
    let ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    push(|ev| {
        // SAFETY: `ev` is the reserved record, exclusively this program's until submitted.
        unsafe {
            write_tuple(ev, &seen, &t);
            (*ev).ts_ns = ts_ns;
            (*ev).sk = req as u64;
            (*ev).pid_tgid = bpf_get_current_pid_tgid();
            (*ev).cgroup_id = bpf_get_current_cgroup_id();
            (*ev).life_flags = 0;
            (*ev).retransmits = retransmits;
            (*ev).end = end;
            (*ev).path = 0;
            (*ev).start_ns = start_ns;
            (*ev).entered_ns = 0;
            (*ev).timewait_sk = 0;
            (*ev).timewait_ns = 0;
            generated::bpf_get_current_comm((&raw mut (*ev).comm).cast(), 16);
        }
    })
}
