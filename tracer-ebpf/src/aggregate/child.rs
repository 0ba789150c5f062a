//! A listener's child between `LISTEN -> SYN_RECV` and its next change, held in the kernel so
//! that an established child crosses to userspace only in its LIFE record.
use aya_ebpf::{helpers::bpf_ktime_get_boot_ns, macros::map, maps::Array};
use tracer_common::tcp_state::{ESTABLISHED, LISTEN, SYN_RECV};

use super::{SLOT_TAKEN, count, record_dwell, slot, take};
use crate::emit::{DirectRead, Seen, emit, emit_at, kept};

/// A listener's child from `LISTEN -> SYN_RECV` to its next change, which follows at once on
/// the same CPU (the final ACK makes the child, then establishes it), or later with TCP Fast
/// Open. Its cookie is not final yet (6.1 and 6.12 copy the request socket's into it after
/// that change), nor are its ports on 6.1 (set after it too), so it waits here, by its
/// address, before it takes a slot.
#[repr(C)]
#[derive(Clone, Copy)]
struct ChildNote {
    /// The child's address; 0: free.
    sk: u64,
    /// When it entered SYN_RECV.
    since_ns: u64,
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
    Ok(())
}

/// The time a child noted at `LISTEN -> SYN_RECV` entered SYN_RECV, taking its note.
#[inline(always)]
pub(super) fn take_child_note(seen: &Seen, sk_number: u64) -> Option<u64> {
    let n = child_note(sk_number)?;
    if n.sk != seen.sk as u64 {
        return None;
    }
    n.sk = 0;
    Some(n.since_ns)
}

/// A noted child leaves SYN_RECV (entered at `since`): established, it takes a slot with its
/// whole handshake, and nothing crosses; else its `LISTEN -> SYN_RECV` goes now, at its own
/// time, and this change after it.
#[inline(always)]
pub(super) fn child_changes(seen: Seen, cookie: u64, since: u64) -> Result<(), i32> {
    if seen.new_state == ESTABLISHED
        && let Some(s) = slot(cookie)
        && cookie != 0
    {
        if s.cookie == 0 {
            let Some(t) = kept::<DirectRead>(&seen)? else {
                return Ok(());
            };
            // SAFETY: helper without arguments.
            let now = unsafe { bpf_ktime_get_boot_ns() };
            record_dwell(SYN_RECV, now.saturating_sub(since));
            let path = LISTEN as u64 | (SYN_RECV as u64) << 4 | (ESTABLISHED as u64) << 8;
            take(s, cookie, &seen, &t, (path, 3), (since, now));
            return Ok(());
        }
        count(SLOT_TAKEN);
    }
    let made = Seen {
        old_state: LISTEN,
        new_state: SYN_RECV,
        ..seen
    };
    let sent = emit_at::<DirectRead>(made, 0, since);
    sent.and(emit::<DirectRead>(seen))
}
