//! What the timewait and reset hooks ask of the slots.
use aya_ebpf::helpers::bpf_ktime_get_boot_ns;
use tracer_common::{
    SockTuple,
    life::{self, LifeSlot},
    tcp_state::{CLOSE, FIN_WAIT2},
};

use super::{slot, timewaits};
use crate::{
    emit::{ProbeRead, Seen, read, tuple},
    offset,
};

/// The slot of the full socket whose life the timewait socket with `cookie` and tuple `t`
/// takes over, if that life is followed here.
#[inline(always)]
fn slot_of_timewait(cookie: u64, t: &SockTuple) -> Option<&'static mut LifeSlot> {
    let s = slot(cookie)?;
    if cookie == 0 || s.cookie != cookie || s.ports != [t.sport, t.dport] {
        return None;
    }
    Some(s)
}

/// What a timewait's timer event is under aggregation.
pub enum Timewait {
    /// Its timewait is followed here to its end (timewaits.rs): nothing is sent.
    Followed,
    /// Its start, noted in the slot (the full socket's CLOSE follows on this CPU), to go in
    /// that life's LIFE record: nothing is sent now.
    Noted,
    /// An event on another CPU before that life's CLOSE (a re-arm by the peer's FIN, a kill
    /// for reuse): its start, still in the slot, comes in the record after it.
    Ahead,
    /// Anything else: sent as it is.
    Alone,
}

/// Timer event `event_kind` of timewait socket `seen.sk` (substate `seen.new_state`; a cancel
/// `certain` to be a kill on fentry): handed to its slot if the kernel follows it; else looks
/// up, and for a first start writes, the slot of the life it takes over. Only a start writes
/// there: it runs on the CPU that owns the slot. A first start that takes over a listener's
/// child also takes the timewait a slot of its own when it can.
#[inline(always)]
pub fn timewait_event(seen: &Seen, event_kind: u8, certain: bool) -> Result<Timewait, i32> {
    let (tw, substate) = (seen.sk, seen.new_state);
    let cookie = read::<u64>(tw, offset!(skc_cookie))?;
    let t = tuple::<ProbeRead>(seen)?;
    let id = timewaits::Id {
        tw: tw as u64,
        cookie,
        substate,
        event_kind,
        certain,
    };
    if timewaits::event(&id, &t) {
        return Ok(Timewait::Followed);
    }
    let Some(s) = slot_of_timewait(cookie, &t) else {
        return Ok(Timewait::Alone);
    };
    if s.timewait_sk == tw as u64 {
        return Ok(Timewait::Ahead);
    }
    if event_kind != tracer_common::kind::TW_START || s.timewait_sk != 0 {
        return Ok(Timewait::Alone);
    }
    // SAFETY: helper without arguments.
    s.timewait_ns = unsafe { bpf_ktime_get_boot_ns() };
    s.timewait_sk = tw as u64;
    if substate == FIN_WAIT2 {
        s.flags |= life::flags::TIMEWAIT_FIN_WAIT2;
    }
    // A client's path starts at CLOSE (a listener's child's at LISTEN, or ESTABLISHED): the
    // TIME_WAITs of a connecting side stay one event at a time, for the forecasts per
    // destination.
    let child = life::path_state(s.path, 0) != CLOSE;
    if child && timewaits::take(&id, &t, s.state, s.since_ns) {
        s.flags |= life::flags::TIMEWAIT_KERNEL;
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
