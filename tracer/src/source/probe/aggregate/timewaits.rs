//! The timewaits kernel aggregation follows to their end (tracer-ebpf/src/aggregate/
//! timewaits.rs): how many slots, what the kernel counted, and the kills it had not settled
//! when the trace stopped.
use std::net::{IpAddr, Ipv4Addr};

use tracer_common::life::{TIMEWAIT_WAYS, TimewaitSlot};

use crate::model::{Note, Step, TcpState, Tuple};

pub(super) use tracer_common::life::counts::{
    HOME_EARLY, TIMEWAIT_BUCKET_FULL, TIMEWAIT_END_NOT_SEEN, TIMEWAITS_TAKEN,
};

/// At most 2^19 slots (28 MiB).
const MAX_SLOTS: u32 = 1 << 19;
/// At least 64 buckets.
const MIN_SLOTS: u32 = 64 * TIMEWAIT_WAYS;

/// How long after a cancel a kill is certain: an expiry or re-arm follows its cancel within
/// microseconds.
const KILL_AFTER_NS: u64 = crate::model::CANCEL_GRACE_NS;

/// Slots for the timewaits of a host that holds at most `max_tw_buckets` of them (its
/// `net.ipv4.tcp_max_tw_buckets`) and a model capped at `max_sockets`: twice the smaller of
/// that and the model's timewaits (half the cap), so that a bucket is rarely full, as a power
/// of two within [`MIN_SLOTS`] and [`MAX_SLOTS`].
pub fn timewait_slots(max_tw_buckets: u64, max_sockets: usize) -> u32 {
    let model = (max_sockets / 2).max(1) as u64;
    let wanted = max_tw_buckets.min(model).saturating_mul(2);
    let wanted = u32::try_from(wanted).unwrap_or(MAX_SLOTS);
    wanted
        .checked_next_power_of_two()
        .unwrap_or(MAX_SLOTS)
        .clamp(MIN_SLOTS, MAX_SLOTS)
}

/// `net.ipv4.tcp_max_tw_buckets`, or Linux's default for a host of a few GiB when unreadable.
pub fn read_max_tw_buckets() -> u64 {
    const PATH: &str = "/proc/sys/net/ipv4/tcp_max_tw_buckets";
    match std::fs::read_to_string(PATH).map(|v| v.trim().parse::<u64>()) {
        Ok(Ok(n)) => n,
        other => {
            log::debug!("{PATH}: {other:?}; sizing for 65536 timewaits");
            65_536
        }
    }
}

/// What the kernel counted of timewaits, since the attach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimewaitCounts {
    /// That took a slot: followed in the kernel to their end.
    pub taken: u64,
    /// Sent one event at a time because their bucket was full.
    pub bucket_full: u64,
    /// Taken back from a timewait whose end was never seen.
    pub end_not_seen: u64,
}

/// The steps of the timewaits in `slots` whose timer was cancelled long enough before `now_ns`
/// for nothing to have followed: kills the kernel settles only at its next event on that CPU,
/// counted here once the programs run no more (the kernel's rule: a FIN_WAIT2 substate that
/// ends in TIME_WAIT without a visible re-arm counts TIME_WAIT from its start). The slots keep
/// no addresses: the steps have the namespace and none (0.0.0.0:0).
pub fn ended_at_exit(slots: impl Iterator<Item = TimewaitSlot>, now_ns: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let killed = slots.filter(|s| {
        s.cookie != 0 && s.cancel_ns != 0 && s.cancel_ns.saturating_add(KILL_AFTER_NS) < now_ns
    });
    for s in killed {
        let (Some(mut from), Some(last)) = (
            TcpState::from_kernel(s.substate),
            TcpState::from_kernel(s.cancel_substate),
        ) else {
            continue;
        };
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let step = |from, to, at: u64, since: u64, note| Step {
            ts_ns: at,
            sk: s.tw,
            tuple: Tuple::new(unspecified, 0, unspecified, 0),
            netns: s.netns,
            owner: Default::default(),
            from,
            to,
            dwell_ns: Some(at.saturating_sub(since)),
            note,
            end: None,
        };
        let mut since = s.since_ns;
        if from == TcpState::FinWait2 && last == TcpState::TimeWait {
            steps.push(step(from, TcpState::TimeWait, s.start_ns, since, None));
            (from, since) = (TcpState::TimeWait, s.start_ns);
        }
        let note = Some(Note::EndedEarly);
        steps.push(step(from, TcpState::Close, s.cancel_ns, since, note));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn killed(substate: u8, cancel_substate: u8) -> TimewaitSlot {
        TimewaitSlot {
            cookie: 9,
            tw: 0xffff_0000,
            since_ns: 10 * S,
            start_ns: 11 * S,
            cancel_ns: 20 * S,
            netns: 4026531840,
            substate,
            cancel_substate,
            ..Default::default()
        }
    }

    #[test]
    fn slots_are_twice_the_timewaits_a_host_holds_within_bounds() {
        assert_eq!(timewait_slots(131_072, 1_000_000), 262_144);
        assert_eq!(timewait_slots(131_072, 1_000), 1_024);
        assert_eq!(timewait_slots(4_000_000, 100_000_000), MAX_SLOTS);
        assert_eq!(timewait_slots(0, 0), MIN_SLOTS);
        assert_eq!(timewait_slots(u64::MAX, usize::MAX), MAX_SLOTS);
    }

    #[test]
    fn a_kill_the_kernel_left_unsettled_ends_at_its_cancel() {
        let steps = ended_at_exit([killed(6, 6)].into_iter(), 21 * S);
        assert_eq!(steps.len(), 1);
        let s = &steps[0];
        assert_eq!(
            (s.from, s.to, s.ts_ns),
            (TcpState::TimeWait, TcpState::Close, 20 * S)
        );
        assert_eq!((s.dwell_ns, s.note), (Some(10 * S), Some(Note::EndedEarly)));
        assert_eq!((s.netns, s.sk), (4026531840, 0xffff_0000));
    }

    #[test]
    fn a_fin_wait2_that_became_time_wait_unseen_counts_time_wait_from_the_start() {
        let steps = ended_at_exit([killed(5, 6)].into_iter(), 21 * S);
        let got: Vec<_> = steps.iter().map(|s| (s.from, s.to, s.dwell_ns)).collect();
        assert_eq!(
            got,
            [
                (TcpState::FinWait2, TcpState::TimeWait, Some(S)),
                (TcpState::TimeWait, TcpState::Close, Some(9 * S)),
            ]
        );
    }

    #[test]
    fn a_cancel_just_made_or_a_free_slot_is_no_kill() {
        let recent = ended_at_exit([killed(6, 6)].into_iter(), 20 * S + 1_000);
        assert!(recent.is_empty());
        let free = TimewaitSlot {
            cookie: 0,
            ..killed(6, 6)
        };
        let none = TimewaitSlot {
            cancel_ns: 0,
            ..killed(6, 6)
        };
        assert!(ended_at_exit([free, none].into_iter(), 30 * S).is_empty());
    }
}
