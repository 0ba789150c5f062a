//! `sock:inet_sock_set_state`: every state change of a full TCP socket (IPv4 and IPv6).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::kind;

use crate::emit::{DirectRead, OFFSETS, ProbeRead, Reader, Seen, emit};

const IPPROTO_TCP: u16 = 6;

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let _ = try_inet_sock_set_state(&ctx);
    0
}

fn try_inet_sock_set_state(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    let old_state: i32 = ctx.arg(1);
    let new_state: i32 = ctx.arg(2);
    let o = OFFSETS.load();
    let protocol = if o.sk_protocol_size == 1 {
        DirectRead::read::<u8>(sk, o.sk_protocol)? as u16
    } else {
        DirectRead::read::<u16>(sk, o.sk_protocol)?
    };
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    emit::<DirectRead>(Seen {
        kind: kind::STATE_CHANGE,
        sk,
        old_state: old_state as u8,
        new_state: new_state as u8,
        family: DirectRead::read::<u16>(sk, o.skc_family)?,
        // skc_num is already 0 on a transition to CLOSE; inet_sport stays. It lies in
        // `inet_sock`, beyond the `struct sock` the verifier types `sk` as: a helper read.
        sport: u16::from_be(ProbeRead::read::<u16>(sk, o.inet_sport)?),
    })
}
