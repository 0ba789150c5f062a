//! What the timewait and reset hooks ask of the slots.
use aya_ebpf::helpers::bpf_ktime_get_boot_ns;
use tracer_common::{
    life::{self, LifeSlot},
    tcp_state::FIN_WAIT2,
};

use super::slot;
use crate::{emit::read, offset};

/// The slot of the full socket whose life timewait socket `tw` (same cookie and ports) takes
/// over, if that life is followed here.
#[inline(always)]
fn slot_of_timewait(tw: *const u8, sport: u16) -> Result<Option<&'static mut LifeSlot>, i32> {
    let cookie = read::<u64>(tw, offset!(skc_cookie))?;
    let Some(s) = slot(cookie) else {
        return Ok(None);
    };
    let dport = u16::from_be(read::<u16>(tw, offset!(skc_dport))?);
    if cookie == 0 || s.cookie != cookie || s.ports != [sport, dport] {
        return Ok(None);
    }
    Ok(Some(s))
}

/// What a timewait's timer event is under aggregation, from the slot of the life it takes over.
pub enum Timewait {
    /// Its start, noted in the slot (the full socket's CLOSE follows on this CPU), to go in
    /// that life's LIFE record: nothing is sent now.
    Noted,
    /// An event on another CPU before that life's CLOSE (a re-arm by the peer's FIN, a kill
    /// for reuse): its start, still in the slot, comes in the record after it.
    Ahead,
    /// Anything else: sent as it is.
    Alone,
}

/// Looks up, and for a first start writes, the slot of the life timewait socket `tw` takes
/// over. Only a start writes: it runs on the CPU that owns the slot.
#[inline(always)]
pub fn timewait_event(
    tw: *const u8,
    sport: u16,
    substate: u8,
    start: bool,
) -> Result<Timewait, i32> {
    let Some(s) = slot_of_timewait(tw, sport)? else {
        return Ok(Timewait::Alone);
    };
    if s.timewait_sk == tw as u64 {
        return Ok(Timewait::Ahead);
    }
    if !start || s.timewait_sk != 0 {
        return Ok(Timewait::Alone);
    }
    // SAFETY: helper without arguments.
    s.timewait_ns = unsafe { bpf_ktime_get_boot_ns() };
    s.timewait_sk = tw as u64;
    if substate == FIN_WAIT2 {
        s.flags |= life::flags::TIMEWAIT_FIN_WAIT2;
    }
    Ok(Timewait::Noted)
}

/// A reset on a socket whose life is followed here: noted in its slot (`true`), else the
/// caller emits the event.
#[inline(always)]
pub fn reset(sk: *const u8, sent: bool) -> Result<bool, i32> {
    let cookie = read::<u64>(sk, offset!(skc_cookie))?;
    let Some(s) = slot(cookie) else {
        return Ok(false);
    };
    if cookie == 0 || s.cookie != cookie || s.sk != sk as u64 {
        return Ok(false);
    }
    s.flags |= if sent {
        life::flags::RST_SENT
    } else {
        life::flags::RST_RECEIVED
    };
    Ok(true)
}
