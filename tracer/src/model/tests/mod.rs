//! The model from synthetic event sequences: exact steps, dwell times, notes, owners, ends.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::pending::RESET_GRACE_NS;
use super::timewait::CANCEL_GRACE_NS as GRACE;
use super::*;
use TcpState::*;
use TimerPhase::{Cancel, Expire, Start};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
/// Timewait sockets live at addresses apart from full sockets' (another slab cache).
const TW: u64 = 100;
/// When `client_until_fin_wait2` enters FIN_WAIT2, and when `after_handover` hands it over.
const FW2: u64 = S + 2 * MS;
const HANDOVER: u64 = S + 500 * MS;
const T0: u16 = 40006;

fn tuple(local_port: u16, remote_port: u16) -> Tuple {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    Tuple::new(IpAddr::V4(a), local_port, IpAddr::V4(b), remote_port)
}

fn reversed(t: Tuple) -> Tuple {
    Tuple::new(t.remote, t.remote_port, t.local, t.local_port)
}

fn event(ts_ns: u64, sk: u64, tuple: Tuple, pid: u32, kind: EventKind) -> Event {
    let (comm, netns, cgroup_id) = (Comm::from(format!("p{pid}").as_str()), 1, 0);
    #[rustfmt::skip]
    let ev = Event { ts_ns, sk, kind, tuple, pid, comm, cgroup_id, netns };
    ev
}

/// A state change in softirq on an idle CPU (pid 0).
fn change(ts: u64, sk: u64, t: Tuple, old: TcpState, new: TcpState) -> Event {
    change_by(ts, sk, t, old, new, 0)
}

fn change_by(ts: u64, sk: u64, t: Tuple, old: TcpState, new: TcpState, pid: u32) -> Event {
    event(ts, sk, t, pid, EventKind::StateChange { old, new })
}

fn timer(ts: u64, tw: u64, t: Tuple, phase: TimerPhase, substate: TcpState) -> Event {
    event(ts, tw, t, 0, EventKind::TimeWait { phase, substate })
}

/// A step as `sk pOWNER FROM->TO DWELL [NOTE] [[END KIND]]`; DWELL is `-` when unknown.
fn show(s: &Step) -> String {
    let dwell = match s.dwell_ns {
        None => "-".to_string(),
        Some(d) if d % MS == 0 => format!("{}ms", d / MS),
        Some(d) => format!("{d}ns"),
    };
    let note = s.note.map(|n| format!(" {n:?}")).unwrap_or_default();
    let end = s
        .end
        .map(|e| format!(" [{:?}]", e.kind))
        .unwrap_or_default();
    let (sk, pid) = (s.sk, s.owner.pid);
    format!("{sk} p{pid} {}->{} {dwell}{note}{end}", s.from, s.to)
}

fn shown(steps: &[Step]) -> Vec<String> {
    steps.iter().map(show).collect()
}

fn apply_all(model: &mut Model, events: &[Event]) -> Vec<Step> {
    events.iter().flat_map(|ev| model.apply(ev)).collect()
}

fn run(events: &[Event]) -> (Model, Vec<Step>) {
    let mut model = Model::new();
    let steps = apply_all(&mut model, events);
    (model, steps)
}

fn ages(model: &Model, now: u64) -> Vec<(TcpState, u64)> {
    let mut ages: Vec<_> = model
        .in_progress(now)
        .iter()
        .map(|p| (p.state, p.age_ns))
        .collect();
    ages.sort();
    ages
}

/// `events` moved `by` nanoseconds later.
fn later(events: Vec<Event>, by: u64) -> Vec<Event> {
    let shift = |mut e: Event| {
        e.ts_ns += by;
        e
    };
    events.into_iter().map(shift).collect()
}

/// Client `sk` of `pid` connects at 0 and is established at 1 ms.
fn connect(sk: u64, t: Tuple, pid: u32) -> Vec<Event> {
    let synack = change(MS, sk, t, SynSent, Established);
    vec![change_by(0, sk, t, Close, SynSent, pid), synack]
}

/// Client `sk` (pid 7) connected, closes at 1 s; its FIN is acked at FW2.
fn client_until_fin_wait2(sk: u64, t: Tuple) -> Vec<Event> {
    let fin = change_by(S, sk, t, Established, FinWait1, 7);
    [
        connect(sk, t, 7),
        vec![fin, change(FW2, sk, t, FinWait1, FinWait2)],
    ]
    .concat()
}

/// Client 1 (tuple `T0`) handed over to timewait `TW` in `substate` at HANDOVER; then `events`.
fn after_handover(substate: TcpState, events: &[Event]) -> (Model, Vec<Step>) {
    let t = tuple(T0, 80);
    let mut all = client_until_fin_wait2(1, t);
    all.push(timer(HANDOVER, TW, t, Start, substate));
    all.push(change(HANDOVER, 1, t, FinWait2, Close));
    let (mut model, steps) = run(&all);
    let handed = if substate == TimeWait { "498ms" } else { "-" };
    let last = format!("1 p7 FIN_WAIT2->CLOSE {handed} TimewaitTakesOver [LocalFirst]");
    assert_eq!(shown(&steps).last(), Some(&last));
    let more = apply_all(&mut model, events);
    (model, more)
}

mod half_open;
mod kernel_life;
mod limits;
mod random;
mod seed;
mod sockets;
mod timewait;

/// The table rows of both lives (here: the table knows neither).
#[test]
fn rows_are_as_small_as_the_docs_say() {
    use std::mem::size_of;

    use crate::model::{
        life::LifeRow,
        table::family::{Packed, V4, V6},
        tw_life::TimeWaitRow,
    };
    let sizes = [
        size_of::<Packed<V4, LifeRow>>(),
        size_of::<Packed<V6, LifeRow>>(),
        size_of::<Packed<V4, TimeWaitRow>>(),
        size_of::<Packed<V6, TimeWaitRow>>(),
    ];
    assert_eq!(sizes, [40, 72, 56, 88]);
}
