//! `sock:inet_sock_set_state`: every state change of a full TCP socket (IPv4 and IPv6).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::kind;

use aya_log_ebpf::warn;

use crate::{
    emit::{DirectRead, ProbeRead, Reader, Seen, emit_flagged},
    log::outcome,
    offset,
};

const IPPROTO_TCP: u16 = 6;
/// TCP_NEW_SYN_RECV, the highest state a full socket's change can carry (TCP_BOUND_INACTIVE,
/// 13 on 6.8+, is only reported by inet_diag).
const MAX_STATE: i32 = tracer_common::tcp_state::NEW_SYN_RECV as i32;

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let result = match seen(&ctx) {
        Ok(Some(seen)) => crate::reqsk::child::change_flags(&seen)
            .and_then(|flags| emit_flagged::<DirectRead>(seen, flags)),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    outcome(&ctx, "inet_sock_set_state", result);
    0
}

/// What a TCP socket's state change reports; `None` for other protocols.
#[inline(always)]
pub fn seen(ctx: &BtfTracePointContext) -> Result<Option<Seen>, i32> {
    let sk: *const u8 = ctx.arg(0);
    let old_state: i32 = ctx.arg(1);
    let new_state: i32 = ctx.arg(2);
    // One load per member used (not the whole offsets struct): this runs on every change.
    let protocol = if offset!(sk_protocol_size) == 1 {
        DirectRead::read::<u8>(sk, offset!(sk_protocol))? as u16
    } else {
        DirectRead::read::<u16>(sk, offset!(sk_protocol))?
    };
    if protocol != IPPROTO_TCP {
        return Ok(None);
    }
    if !(1..=MAX_STATE).contains(&old_state) || !(1..=MAX_STATE).contains(&new_state) {
        // Still handed on: userspace shows the number it cannot name.
        warn!(
            ctx,
            "inet_sock_set_state: unexpected state {} -> {}", old_state, new_state
        );
    }
    Ok(Some(Seen {
        kind: kind::STATE_CHANGE,
        sk,
        old_state: old_state as u8,
        new_state: new_state as u8,
        family: DirectRead::read::<u16>(sk, offset!(skc_family))?,
        sport: local_port(sk)?,
    }))
}

/// The local port, host order. `skc_num` is a direct load; it is already 0 once the socket
/// is unhashed on its way to CLOSE, where `inet_sport` still holds the port. That lies in
/// `inet_sock`, beyond the `struct sock` the verifier types `sk` as: a helper read, so only
/// when needed.
#[inline(always)]
fn local_port(sk: *const u8) -> Result<u16, i32> {
    match DirectRead::read::<u16>(sk, offset!(skc_num))? {
        0 => Ok(u16::from_be(ProbeRead::read::<u16>(
            sk,
            offset!(inet_sport),
        )?)),
        port => Ok(port),
    }
}
