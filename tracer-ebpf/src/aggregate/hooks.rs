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

/// A timewait socket starts (the full socket's CLOSE follows on this CPU): noted in the slot
/// of the life it takes over, which then carries it in its LIFE record (`true`); else the
/// caller emits the start.
#[inline(always)]
pub fn timewait_starts(tw: *const u8, sport: u16, substate: u8) -> Result<bool, i32> {
    let Some(s) = slot_of_timewait(tw, sport)? else {
        return Ok(false);
    };
    if s.timewait_sk != 0 {
        return Ok(false);
    }
    // SAFETY: helper without arguments.
    s.timewait_ns = unsafe { bpf_ktime_get_boot_ns() };
    s.timewait_sk = tw as u64;
    if substate == FIN_WAIT2 {
        s.flags |= life::flags::TIMEWAIT_FIN_WAIT2;
    }
    Ok(true)
}

/// A timewait's timer event on another CPU before the CLOSE of the life it took over (a re-arm
/// by the peer's FIN, a kill for reuse): the start is still in the slot, to come in that life's
/// record after this event (`true`). Only read: the slot is the owner CPU's to write.
#[inline(always)]
pub fn timewait_ahead(tw: *const u8, sport: u16) -> Result<bool, i32> {
    Ok(slot_of_timewait(tw, sport)?.is_some_and(|s| s.timewait_sk == tw as u64))
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
