//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`: tell an abort by this side from one by the peer.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::{
    kind,
    tcp_state::{NEW_SYN_RECV, TIME_WAIT},
};

use crate::{
    emit::{OFFSETS, ProbeRead, Seen, emit, read},
    log::outcome,
};

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    outcome(&ctx, "tcp_send_reset", try_reset(&ctx, kind::RESET_SENT));
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    outcome(
        &ctx,
        "tcp_receive_reset",
        try_reset(&ctx, kind::RESET_RECEIVED),
    );
    0
}

fn try_reset(ctx: &BtfTracePointContext, event_kind: u8) -> Result<(), i32> {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        // An RST for a segment no socket owned (e.g. a SYN to a closed port): no socket life.
        return Ok(());
    }
    let o = OFFSETS.load();
    let state = read::<u8>(sk, o.skc_state)?;
    // Timewait and request sockets are not full sockets: their port is elsewhere.
    let sport = match state {
        TIME_WAIT => read::<u16>(sk, o.tw_sport)?,
        // A request socket's skc_num is its local port in host order; convert it to network
        // order here so the single from_be below applies to every case.
        NEW_SYN_RECV => read::<u16>(sk, o.skc_num)?.to_be(),
        _ => read::<u16>(sk, o.inet_sport)?,
    };
    if crate::aggregate::enabled() && crate::aggregate::reset(sk, event_kind == kind::RESET_SENT)? {
        return Ok(());
    }
    emit::<ProbeRead>(Seen {
        kind: event_kind,
        sk,
        old_state: state,
        new_state: state,
        family: read::<u16>(sk, o.skc_family)?,
        sport: u16::from_be(sport),
    })
}
