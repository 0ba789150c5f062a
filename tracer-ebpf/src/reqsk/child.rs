//! The listener's child made last on each CPU, on both paths: what ties a request socket's
//! unlink to its child under kernel aggregation (aggregate/child.rs), and what tells a child
//! that never took its request socket over ([`life::flags::CHILD_LOST`]).
//!
//! The final ACK makes the child (`LISTEN -> SYN_RECV`), hashes it in its request socket's
//! place, then unlinks the request socket (its timer's `timer_cancel`, end.rs): one CPU, one
//! softirq, nothing else in between. Two CPUs can each take a segment that completes the same
//! handshake (the final ACK, the first data right behind it): each makes a child
//! (`tcp_check_req`), the one hashed second fails in `inet_ehash_nolisten`, which closes it
//! there and then (`SYN_RECV -> CLOSE`), and the kernel feeds its segment to the winner
//! (`req_stolen`). No request socket is unlinked for that child; nor for one that fails before
//! it is hashed (`tcp_v4_syn_recv_sock`'s `put_and_exit`: the request socket lives on).
use aya_ebpf::{macros::map, maps::PerCpuArray};
use tracer_common::{
    life,
    tcp_state::{CLOSE, LISTEN, SYN_RECV},
};

use crate::{
    emit::{ProbeRead, Reader, Seen},
    offset,
};

/// Per CPU: the address of the listener's child made last, until a request socket's unlink
/// takes it.
#[map]
static LAST_CHILD: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// `LISTEN -> SYN_RECV` of the child at `sk` (a number).
#[inline(always)]
pub fn made(sk: u64) {
    if let Some(last) = LAST_CHILD.get_ptr_mut(0) {
        // SAFETY: this CPU's value; nothing else runs on this CPU while this program does.
        unsafe { *last = sk };
    }
}

/// A request socket is unlinked on this CPU: the child made last, taken (0 if none), so that
/// it links once.
#[inline(always)]
pub fn take() -> u64 {
    match LAST_CHILD.get_ptr_mut(0) {
        // SAFETY: as above.
        Some(last) => unsafe { core::mem::replace(&mut *last, 0) },
        None => 0,
    }
}

/// `SYN_RECV -> CLOSE` of `sk`: true when no request socket was unlinked for it since it was
/// made on this CPU. A Fast Open child is made at the SYN, its request socket never in the
/// queue: it is a connection whatever came before, and `fastopen_rsk` says which it is until
/// its final ACK.
#[inline(always)]
fn lost(sk: *const u8) -> Result<bool, i32> {
    let Some(last) = LAST_CHILD.get_ptr_mut(0) else {
        return Ok(false);
    };
    // SAFETY: as above.
    unsafe {
        if *last != sk as u64 {
            return Ok(false);
        }
        *last = 0;
    }
    Ok(ProbeRead::read::<u64>(sk, offset!(fastopen_rsk))? == 0)
}

/// The flags of a full socket's state change on the per-transition path: notes a child at
/// `LISTEN -> SYN_RECV`, and flags a child that never took its request socket over when it
/// closes. One compare for every other change.
#[inline(always)]
pub fn change_flags(seen: &Seen) -> Result<u8, i32> {
    match (seen.old_state, seen.new_state) {
        (LISTEN, SYN_RECV) => {
            made(seen.sk as u64);
            Ok(0)
        }
        (SYN_RECV, CLOSE) if lost(seen.sk)? => Ok(life::flags::CHILD_LOST),
        _ => Ok(0),
    }
}
