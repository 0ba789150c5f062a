//! The programs' rare paths, logged with aya-log (userspace prints them through its logger):
//! a failed read of kernel memory, an unexpected state value, the first event lost to a full
//! ring on a CPU. The per-event path only tests for them; it never logs.
use aya_ebpf::EbpfContext;
use aya_log_ebpf::warn;

use crate::emit::FIRST_LOSS;

/// Logs why `program` gave up on an event, if it did.
#[inline(always)]
pub fn outcome<C: EbpfContext>(ctx: &C, program: &str, result: Result<(), i32>) {
    match result {
        Ok(()) => {}
        Err(FIRST_LOSS) => warn!(
            ctx,
            "{}: event ring full on this CPU: events are lost from now on (and counted)", program
        ),
        Err(code) => warn!(ctx, "{}: reading kernel memory failed ({})", program, code),
    }
}
