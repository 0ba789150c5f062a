//! A listener's child between `LISTEN -> SYN_RECV` and its next change, held in the kernel so
//! that an established child crosses to userspace only in its LIFE record. Its SYN_RECV is the
//! half-open time, from its request socket's first SYN-ACK: the request socket, unlinked by the
//! final ACK between the child's two changes on the same CPU, hands its start over here
//! ([`request_completes`]).
use aya_ebpf::{helpers::bpf_ktime_get_boot_ns, macros::map, maps::Array};
use tracer_common::tcp_state::{ESTABLISHED, LISTEN, SYN_RECV};

use super::{record_dwell, slot, take};
use crate::{
    emit::{DirectRead, Seen, emit, emit_at, kept, read},
    offset,
};

/// A listener's child from `LISTEN -> SYN_RECV` to its next change, which follows at once on
/// the same CPU (the final ACK makes the child, then establishes it), or later with TCP Fast
/// Open. Its cookie is not final yet (6.1 and 6.12 copy the request socket's into it after
/// that change), nor are its ports on 6.1 (set after it too), so it waits here, by its
/// address, before it takes a slot.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct ChildNote {
    /// The child's address; 0: free.
    sk: u64,
    /// When it entered SYN_RECV.
    since_ns: u64,
    /// When its request socket sent its first SYN-ACK; 0 until the request hands it over.
    request_ns: u64,
}

const CHILD_NOTES: u32 = 4096;

#[map]
static CHILDREN: Array<ChildNote> = Array::with_max_entries(CHILD_NOTES, 0);

/// The note of the child at address `sk` (a number), whoever holds it.
#[inline(always)]
fn child_note(sk: u64) -> Option<&'static mut ChildNote> {
    // Sockets are at least 64-byte aligned: the bits above those pick the note.
    let hash = ((sk >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as u32;
    let ptr = CHILDREN.get_ptr_mut(hash & (CHILD_NOTES - 1))?;
    // SAFETY: a map value that lives as long as the map; written only for the child whose
    // address it holds, or when free. Two children whose addresses share a free note could both
    // take it in the same instant on two CPUs (no compare-and-swap before BPF v3): the
    // loser's next change then comes alone, its start not seen.
    Some(unsafe { &mut *ptr })
}

/// `LISTEN -> SYN_RECV` of the child at `sk` (a number): noted, not sent, when its note is
/// free (or still holds this address from a life that ended unseen); its next change decides
/// what crosses.
#[inline(always)]
pub(super) fn child_made(seen: Seen, sk_number: u64) -> Result<(), i32> {
    // Not filtered here: what leaves the note is, by the same filter.
    let Some(n) = child_note(sk_number) else {
        return emit::<DirectRead>(seen);
    };
    let sk = seen.sk as u64;
    if n.sk != 0 && n.sk != sk {
        return emit::<DirectRead>(seen);
    }
    n.sk = sk;
    // SAFETY: helper without arguments.
    n.since_ns = unsafe { bpf_ktime_get_boot_ns() };
    n.request_ns = 0;
    Ok(())
}

/// A request socket `req`, first SYN-ACK at `request_ns`, is unlinked (reqsk/end.rs): if
/// `sk`, the child made last on this CPU (reqsk/child.rs), is its own (same ports: the final
/// ACK made it just before), the child takes its start and `true` says no end record is
/// needed.
#[inline(always)]
pub fn request_completes(req: *const u8, sk: u64, request_ns: u64) -> Result<bool, i32> {
    if sk == 0 {
        return Ok(false);
    }
    let Some(n) = child_note(sk) else {
        return Ok(false);
    };
    if n.sk != sk || n.request_ns != 0 {
        return Ok(false);
    }
    // Both ports in one load each: `skc_dport` and `skc_num` make up `skc_portpair`, as both
    // sockets store them. By now the child has its own on every kernel.
    let child = sk as *const u8;
    let same = read::<u32>(child, offset!(skc_dport))? == read::<u32>(req, offset!(skc_dport))?;
    if same {
        n.request_ns = request_ns;
    }
    Ok(same)
}

/// The time a child noted at `LISTEN -> SYN_RECV` entered SYN_RECV, taking its note.
#[inline(always)]
pub(super) fn take_child_note(seen: &Seen, sk_number: u64) -> Option<ChildNote> {
    let n = child_note(sk_number)?;
    if n.sk != seen.sk as u64 {
        return None;
    }
    n.sk = 0;
    Some(*n)
}

/// A noted child leaves SYN_RECV: established, with its request's start, it takes a slot with
/// its whole handshake, timed from that start, and nothing crosses (`true`). Else its
/// `LISTEN -> SYN_RECV` goes now, at its request's start if known (its end record did not
/// cross), else at its own time (its end record, if any, did), and this change is left to the
/// caller, as for a child not noted (`false`): the child's own microseconds are never a
/// half-open time.
#[inline(always)]
pub(super) fn child_changes(seen: Seen, cookie: u64, note: ChildNote) -> Result<bool, i32> {
    if note.request_ns != 0
        && seen.new_state == ESTABLISHED
        && let Some(s) = slot(cookie)
        && cookie != 0
        && s.cookie == 0
    {
        let Some(t) = kept::<DirectRead>(&seen)? else {
            return Ok(true);
        };
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        let since = note.request_ns.min(now);
        record_dwell(SYN_RECV, now - since);
        let path = LISTEN as u64 | (SYN_RECV as u64) << 4 | (ESTABLISHED as u64) << 8;
        take(s, cookie, &seen, &t, (path, 3), (since, now));
        return Ok(true);
    }
    let made = Seen {
        old_state: LISTEN,
        new_state: SYN_RECV,
        ..seen
    };
    let at = match note.request_ns {
        0 => note.since_ns,
        request => request,
    };
    // This change goes on in the caller whatever happened to that record (a lost one is
    // counted in LOST, which userspace reports).
    let _ = emit_at::<DirectRead>(made, 0, at);
    Ok(false)
}
