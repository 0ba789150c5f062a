//! TIME_WAIT life, followed through the timer of the timewait socket: the fallback for kernels
//! that refuse fentry (the preferred path, fentry.rs; the loader chooses). Only timers whose
//! function is `tw_timer_handler` are kept.
use aya_ebpf::{Global, macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::{kind, life};

use crate::{
    aggregate::Timewait,
    emit::{OFFSETS, ProbeRead, Seen, emit, emit_flagged, read},
    log::outcome,
};

/// Address of `tw_timer_handler`, from /proc/kallsyms at load time. 0 disables these hooks.
#[unsafe(no_mangle)]
static TW_TIMER_HANDLER: Global<u64> = Global::new(0);

#[btf_tracepoint(function = "timer_start")]
pub fn timer_start(ctx: BtfTracePointContext) -> i32 {
    outcome(&ctx, "timer_start", try_timer(&ctx, kind::TW_START));
    0
}

#[btf_tracepoint(function = "timer_expire_entry")]
pub fn timer_expire_entry(ctx: BtfTracePointContext) -> i32 {
    outcome(&ctx, "timer_expire_entry", try_timer(&ctx, kind::TW_EXPIRE));
    0
}

#[btf_tracepoint(function = "timer_cancel")]
pub fn timer_cancel(ctx: BtfTracePointContext) -> i32 {
    outcome(&ctx, "timer_cancel", try_timer(&ctx, kind::TW_CANCEL));
    0
}

#[inline(always)]
fn try_timer(ctx: &BtfTracePointContext, event_kind: u8) -> Result<(), i32> {
    // This runs for every timer in the system: three loads and a compare before leaving.
    let timer: *const u8 = ctx.arg(0);
    let handler = TW_TIMER_HANDLER.load();
    // A direct load from the BTF-typed argument (the offset is a verifier-known constant from
    // the read-only globals), no helper call.
    // SAFETY: tp_btf arguments are valid kernel pointers; the verifier checks the access
    // against the BTF layout of `struct timer_list`.
    let at = crate::offset!(timer_function) as usize;
    let function = unsafe { core::ptr::read_volatile(timer.add(at) as *const u64) };
    if handler == 0 || function != handler {
        if crate::reqsk::is_reqsk_timer(function) {
            if crate::aggregate::enabled() {
                crate::aggregate::settle_timewait_kill();
            }
            return crate::reqsk::on_timer(timer, event_kind);
        }
        return Ok(());
    }
    // The timer is embedded in its inet_timewait_sock at a BTF-known offset. A cancel here
    // may be a kill, or the start of an expiry or re-arm.
    emit_timewait(
        timer.wrapping_sub(crate::offset!(tw_timer) as usize),
        event_kind,
        false,
    )
}

/// One TIME_WAIT event for timewait socket `tw`; the fentry hooks send the same, their
/// cancel `certain` to be a kill.
#[inline(always)]
pub fn emit_timewait(tw: *const u8, event_kind: u8, certain: bool) -> Result<(), i32> {
    let o = OFFSETS.load();
    let seen = Seen {
        kind: event_kind,
        sk: tw,
        old_state: 0,
        new_state: read::<u8>(tw, o.tw_substate)?,
        family: read::<u16>(tw, o.skc_family)?,
        sport: u16::from_be(read::<u16>(tw, o.tw_sport)?),
    };
    if !crate::aggregate::enabled() {
        return emit::<ProbeRead>(seen);
    }
    // Under aggregation a start goes in the LIFE record of the life it takes over, if that is
    // followed in the kernel; an event that comes before that record is flagged so.
    let flags = match crate::aggregate::timewait_event(&seen, event_kind, certain) {
        Ok(Timewait::Noted | Timewait::Followed) => return Ok(()),
        Ok(Timewait::Ahead) => life::flags::TIMEWAIT_AHEAD,
        Ok(Timewait::Alone) => 0,
        Err(e) => return emit::<ProbeRead>(seen).and(Err(e)),
    };
    emit_flagged::<ProbeRead>(seen, flags)
}
