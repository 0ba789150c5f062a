//! Where fentry works: the request socket timer's handler itself, entered and left, in place
//! of the `timer_start`, `timer_expire_entry` and `timer_expire_exit` programs, which run for
//! every timer in the system. `reqsk_timer_handler` is never inlined (the timer holds its
//! address). Only the deletion of the timer stays on its tracepoint (`reqsk_timer_cancel`):
//! the functions that unlink a request socket differ between kernels and are inlined.
//!
//! Dropped or kept is read when the handler returns: a kept request socket's timer is pending
//! again. A dropped one is unhashed, its timer not pending; its memory (a `SLAB_TYPESAFE_BY_RCU`
//! cache: no free pointer inside, no poisoning) is only reused by an allocation on this CPU,
//! and nothing else runs here before this program.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use tracer_common::kind;

use super::{exited, on_timer, started};
use crate::{emit::read, log::outcome, offset};

#[fentry(function = "reqsk_timer_handler")]
pub fn fentry_reqsk_timer(ctx: FEntryContext) -> i32 {
    let timer: *const u8 = ctx.arg(0);
    let result = on_timer(timer, kind::TW_EXPIRE);
    outcome(&ctx, "fentry reqsk_timer_handler", result);
    0
}

#[fexit(function = "reqsk_timer_handler")]
pub fn fexit_reqsk_timer(ctx: FExitContext) -> i32 {
    let timer: *const u8 = ctx.arg(0);
    outcome(&ctx, "fexit reqsk_timer_handler", returned(timer));
    0
}

/// The handler returned: a timer pending again was re-armed, as `timer_start` would have
/// said on the timer path.
#[inline(always)]
fn returned(timer: *const u8) -> Result<(), i32> {
    if read::<u64>(timer, offset!(timer_pprev))? != 0 {
        started(timer.wrapping_sub(offset!(rsk_timer) as usize))?;
    }
    exited(timer)
}
