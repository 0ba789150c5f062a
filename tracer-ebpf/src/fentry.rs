//! TIME_WAIT life through fentry on the timewait functions themselves: preferred where the
//! kernel allows fentry, as they run once per timewait event while the timer hooks of
//! timewait.rs (the fallback) run for every timer in the system. The events are the ones the
//! timer hooks send (TW_START, TW_EXPIRE, TW_CANCEL, same fields), so userspace cannot tell
//! which path produced them:
//! - start and re-arm: `__inet_twsk_schedule(tw, timeo, rearm)` (its `mod_timer` is the
//!   timer path's `timer_start`); from 6.10 the first arming happens inside
//!   `inet_twsk_hashdance_schedule(tw, sk, hashinfo, timeo)`, which the loader then also
//!   attaches, and `__inet_twsk_schedule` reports only re-arms;
//! - expiry: `tw_timer_handler(timer)` (the timer path's `timer_expire_entry`), which then
//!   calls `inet_twsk_kill(tw)`;
//! - early end: `inet_twsk_kill(tw)` when not called by the handler: the kill that follows a
//!   successful deletion of the timer in `inet_twsk_deschedule_put` (tw reuse, RST, netns exit;
//!   the timer path's `timer_cancel`, which is also only for a timer really deleted). Not
//!   `inet_twsk_deschedule_put` itself: 6.1 inlines it into `inet_twsk_purge` (netns exit),
//!   and it is called for timers already running too.
use aya_ebpf::{
    Global,
    macros::{fentry, map},
    maps::PerCpuArray,
    programs::FEntryContext,
};
use tracer_common::kind;

use crate::log::outcome;

/// 1 when the loader attached `inet_twsk_hashdance_schedule`: first starts come from there.
#[unsafe(no_mangle)]
static TW_START_IN_HASHDANCE: Global<u32> = Global::new(0);

/// Per CPU: the timewait socket whose `tw_timer_handler` runs, so that the `inet_twsk_kill`
/// it calls next on this CPU (timer handlers run in softirq, nothing else runs in between) is
/// not taken for an early end.
#[map]
static TW_EXPIRING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[fentry(function = "__inet_twsk_schedule")]
pub fn fentry_tw_schedule(ctx: FEntryContext) -> i32 {
    // `bool rearm`: only the low byte of its slot is defined.
    let rearm = ctx.arg::<u64>(2) & 0xff != 0;
    if rearm || TW_START_IN_HASHDANCE.load() == 0 {
        outcome(
            &ctx,
            "fentry __inet_twsk_schedule",
            try_timewait(ctx.arg(0), kind::TW_START),
        );
    }
    0
}

#[fentry(function = "inet_twsk_hashdance_schedule")]
pub fn fentry_tw_hashdance(ctx: FEntryContext) -> i32 {
    let result = try_timewait(ctx.arg(0), kind::TW_START);
    outcome(&ctx, "fentry inet_twsk_hashdance_schedule", result);
    0
}

#[fentry(function = "tw_timer_handler")]
pub fn fentry_tw_expire(ctx: FEntryContext) -> i32 {
    let timer: *const u8 = ctx.arg(0);
    // The timer is embedded in its inet_timewait_sock at a BTF-known offset.
    let tw = timer.wrapping_sub(crate::offset!(tw_timer) as usize);
    if let Some(expiring) = TW_EXPIRING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
        unsafe { *expiring = tw as u64 };
    }
    outcome(
        &ctx,
        "fentry tw_timer_handler",
        try_timewait(tw, kind::TW_EXPIRE),
    );
    0
}

#[fentry(function = "inet_twsk_kill")]
pub fn fentry_tw_kill(ctx: FEntryContext) -> i32 {
    let tw: *const u8 = ctx.arg(0);
    let Some(expiring) = TW_EXPIRING.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: as above. The mark is consumed by the first kill after it, stale or not.
    let from_handler = unsafe { core::mem::replace(&mut *expiring, 0) } == tw as u64;
    if !from_handler {
        outcome(
            &ctx,
            "fentry inet_twsk_kill",
            try_timewait(tw, kind::TW_CANCEL),
        );
    }
    0
}

/// The same event the timer hooks send for this timewait socket; a cancel here is a kill.
#[inline(always)]
fn try_timewait(tw: *const u8, event_kind: u8) -> Result<(), i32> {
    crate::timewait::emit_timewait(tw, event_kind, true)
}
