//! The history on synthetic steps: rotation, merging, the two tiers' retention, empty slots
//! costing nothing, and the budgets that bound a busy slot.
use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{
    COARSE_FACTOR, COARSE_SLOTS, FINE_SLOTS, History,
    slot::{BUCKET_BUDGET, GROUP_BUDGET, Slot},
    sparse::{FULL_BITS, bucket},
};
use crate::{
    model::{CloseKind, End, Owner, Role, Service, Step, TcpState, Tuple},
    stats::closes::{GroupBy, OTHER},
};

const S: u64 = 1_000_000_000;
/// Boot time of the tests' "now" at the start: far from 0, so nothing saturates.
const T0: u64 = 1_000_000 * S;

/// A connection to `port` that was ESTABLISHED for `dwell_ns` and ended at `ts_ns`.
fn ended(ts_ns: u64, dwell_ns: u64, port: u16) -> Step {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Step {
        ts_ns,
        sk: 1,
        tuple: Tuple::new(ip, 40_000, ip, port),
        netns: 1,
        owner: Owner {
            pid: u32::from(port),
            comm: format!("c{port}").as_str().into(),
            cgroup_id: 0,
        },
        from: TcpState::Established,
        to: TcpState::FinWait1,
        dwell_ns: Some(dwell_ns),
        note: None,
        end: Some(End {
            kind: CloseKind::LocalFirst,
            role: Role::Client,
            service: Service { addr: ip, port },
            timewait: true,
        }),
    }
}

/// 10 s slots on a clock where `T0` is a round wall-clock time (a multiple of 15 min).
fn history() -> History {
    let t0_wall = 1_780_000_200 * S;
    let mut h = History::new(Duration::from_secs(10), (t0_wall - T0) as i64);
    h.advance(T0);
    h
}

fn count(h: &History, from_ns: u64) -> u64 {
    let merged = h.merged(h.start(from_ns));
    merged.stats.histogram(TcpState::Established).len()
}

#[test]
fn slots_rotate_and_an_interval_merges_the_slots_from_its_edge() {
    let mut h = history();
    for (i, at) in [0, 1, 12, 25, 29].into_iter().enumerate() {
        h.record(&ended(T0 + at * S, (i as u64 + 1) * 1_000_000, 80));
        h.count_event(T0 + at * S);
    }
    h.advance(T0 + 30 * S);
    assert_eq!(
        h.slots(),
        (3, 0),
        "slots 0, 10 and 20 s; none for the empty ones"
    );
    assert_eq!(count(&h, T0), 5);
    // From 15 s: the edge at 10 s, so 12, 25 and 29 s.
    let start = h.start(T0 + 15 * S);
    assert_eq!((start.at_ns, start.slot_ns), (T0 + 10 * S, 10 * S));
    assert!(!start.beyond_history);
    let merged = h.merged(start);
    assert_eq!(merged.events, 3);
    assert_eq!(merged.bits, FULL_BITS);
    let hist = merged.stats.histogram(TcpState::Established);
    let (min, max) = (
        hist.lowest_equivalent(3_000_000),
        hist.highest_equivalent(5_000_000),
    );
    assert_eq!((hist.len(), hist.min(), hist.max()), (3, min, max));
    let rows = merged.closes.rows(GroupBy::Service);
    assert_eq!((rows.len(), rows[0].ended, rows[0].local_first), (1, 3, 3));
    assert_eq!(count(&h, T0 + 29 * S), 2, "the current slot, still open");
}

#[test]
fn slot_edges_fall_on_round_wall_clock_times() {
    // Boot time 0 was 3.25 s past a round minute: edges are at 6.75 s, 16.75 s, ... of boot
    // time, whatever the time asked for.
    let mut h = History::new(
        Duration::from_secs(10),
        1_780_000_000 * S as i64 + 3_250_000_000,
    );
    h.advance(T0 + 60 * S);
    for at in [T0, T0 + 6_750_000_000, T0 + 8 * S, T0 + 16_749_999_999] {
        let start = h.start(at);
        assert_eq!((start.at_ns + 3_250_000_000) % (10 * S), 0, "{at}");
        assert!(start.at_ns <= at && at - start.at_ns < 10 * S, "{at}");
    }
}

#[test]
fn old_fine_slots_fold_into_coarse_ones_and_the_oldest_are_dropped() {
    let mut h = history();
    let fine = 10 * S;
    let coarse = fine * COARSE_FACTOR;
    h.record(&ended(T0 + S, 1_000_000, 80));
    h.record(&ended(T0 + 2 * fine, 2_000_000, 80));
    // Just before the first fine slot ages out: all fine.
    h.advance(T0 + (FINE_SLOTS - 1) * fine);
    assert_eq!(h.slots(), (2, 0));
    // One more: the first is folded into the coarse slot of its time.
    h.advance(T0 + FINE_SLOTS * fine);
    assert_eq!(h.slots(), (1, 1));
    assert_eq!(count(&h, T0), 2, "nothing lost, nothing counted twice");
    let start = h.start(T0 + S);
    assert_eq!(
        (start.at_ns, start.slot_ns),
        (T0, coarse),
        "a coarse edge now"
    );
    // A late step for a time the fine slots no longer cover goes to its coarse slot.
    h.record(&ended(T0 + 3 * S, 3_000_000, 80));
    assert_eq!(count(&h, T0), 3);
    assert_eq!(h.slots(), (1, 1));
    // A day later, everything has aged out: nothing kept, and the start says so.
    h.advance(T0 + COARSE_SLOTS * coarse + coarse);
    assert_eq!(h.slots(), (0, 0));
    let start = h.start(T0);
    assert!(start.beyond_history);
    assert_eq!(start.at_ns, T0 + 2 * coarse, "the oldest coarse slot kept");
    assert_eq!(count(&h, T0), 0);
    h.record(&ended(T0, 1, 80));
    assert_eq!(h.slots(), (0, 0), "too old to keep");
}

#[test]
fn an_idle_day_costs_no_slot() {
    let mut h = history();
    for hour in 0..48 {
        h.advance(T0 + hour * 3600 * S);
    }
    assert_eq!(h.slots(), (0, 0));
    let merged = h.merged(h.start(T0));
    assert_eq!(merged.events, 0);
    assert!(merged.closes.rows(GroupBy::Service).is_empty());
}

#[test]
fn a_busy_slot_coarsens_its_buckets_within_the_budget_and_keeps_exact_extremes() {
    let mut slot = Slot::new(0);
    let mut n = 0;
    // Durations from 1 µs to ~1 h, each in its own full-precision bucket.
    let mut ns = 1_000;
    while ns < 3_600 * S {
        slot.record(&ended(T0, ns, 80));
        n += 1;
        ns += ns / 500 + 1;
    }
    assert!(n > 4 * BUCKET_BUDGET as u64, "{n}");
    assert!(slot.buckets() <= BUCKET_BUDGET, "{}", slot.buckets());
    assert!(slot.bits < FULL_BITS);
    let dwells = slot.dwells(TcpState::Established);
    assert_eq!(dwells.buckets.count(), n);
    assert_eq!(dwells.min, 1_000);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    super::slot::add_to(&mut hist, dwells, slot.bits);
    assert_eq!(hist.len(), n);
    assert_eq!(hist.min(), hist.lowest_equivalent(1_000));
    assert_eq!(hist.max(), hist.highest_equivalent(dwells.max));
}

#[test]
fn a_slot_groups_a_bounded_number_of_services_and_counts_the_rest_as_other() {
    let mut h = history();
    let services = GROUP_BUDGET as u16 + 10;
    for port in 1..=services {
        h.record(&ended(T0, 1_000, port));
    }
    let merged = h.merged(h.start(T0));
    let rows = merged.closes.rows(GroupBy::Service);
    assert_eq!(rows.len(), GROUP_BUDGET + 1, "{rows:?}");
    let other = rows
        .iter()
        .find(|r| r.service == OTHER)
        .expect("an other row");
    assert_eq!(other.ended, 10);
    assert_eq!(
        rows.iter().map(|r| r.ended).sum::<u64>(),
        u64::from(services)
    );
    let by_process = merged.closes.rows(GroupBy::Process);
    assert_eq!(by_process.len(), GROUP_BUDGET + 1);
    assert!(by_process.iter().any(|r| r.process == OTHER));
}

#[test]
fn full_precision_buckets_are_hdrhistograms() {
    let hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 30 * 24 * 3600 * S, 3).unwrap();
    let mut v = 1u64;
    while v < 30 * 24 * 3600 * S {
        for x in [v, v + 1, v + v / 3, v * 2 - 1] {
            assert_eq!(bucket(x, FULL_BITS), hist.lowest_equivalent(x), "{x}");
        }
        v *= 2;
    }
}
