//! The model from synthetic event sequences: exact steps, dwell times, notes and owners.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::timewait::CANCEL_GRACE_NS as GRACE;
use super::*;
use Note::*;
use TcpState::*;
use TimerPhase::{Cancel, Expire, Start};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
/// Timewait sockets live at addresses apart from full sockets' (another slab cache).
const TW: u64 = 0x100;

fn tuple(local_port: u16, remote_port: u16) -> Tuple {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    Tuple::new(IpAddr::V4(a), local_port, IpAddr::V4(b), remote_port)
}

fn reversed(t: Tuple) -> Tuple {
    Tuple::new(t.remote, t.remote_port, t.local, t.local_port)
}

fn event(ts_ns: u64, sk: u64, tuple: Tuple, pid: u32, kind: EventKind) -> Event {
    let comm = format!("p{pid}");
    let netns = 1;
    Event {
        ts_ns,
        sk,
        kind,
        tuple,
        pid,
        comm,
        netns,
    }
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

type Brief = (TcpState, TcpState, Option<u64>, Option<Note>);

fn brief(steps: &[Step]) -> Vec<Brief> {
    steps
        .iter()
        .map(|s| (s.from, s.to, s.dwell_ns, s.note))
        .collect()
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

/// Client `sk` (pid 7) connects at 0, is established at 1 ms, closes at 1 s; FIN acked at 1.002 s.
fn client_until_fin_wait2(sk: u64, t: Tuple) -> Vec<Event> {
    vec![
        change_by(0, sk, t, Close, SynSent, 7),
        change(MS, sk, t, SynSent, Established),
        change_by(S, sk, t, Established, FinWait1, 7),
        change(S + 2 * MS, sk, t, FinWait1, FinWait2),
    ]
}

const T0: u16 = 40006;
/// When `client_until_fin_wait2(1, tuple(T0, 80))` hands over to timewait `TW`.
const HANDOVER: u64 = S + 500 * MS;
/// When that client entered FIN_WAIT2.
const FW2: u64 = S + 2 * MS;

/// The client above handed over to timewait `TW` in `substate`, then `events`: their steps.
fn after_handover(substate: TcpState, events: &[Event]) -> (Model, Vec<Step>) {
    let t = tuple(T0, 80);
    let mut all = client_until_fin_wait2(1, t);
    all.push(timer(HANDOVER, TW, t, Start, substate));
    all.push(change(HANDOVER, 1, t, FinWait2, Close));
    let (mut model, steps) = run(&all);
    let handed = (substate == TimeWait).then_some(HANDOVER - FW2);
    let last = (FinWait2, Close, handed, Some(TimewaitTakesOver));
    assert_eq!(brief(&steps).last(), Some(&last));
    let more = apply_all(&mut model, events);
    (model, more)
}

#[test]
fn active_close_ends_with_time_wait_expiry() {
    let t = tuple(40000, 80);
    let mut events = client_until_fin_wait2(1, t);
    events.extend([
        timer(HANDOVER, TW, t, Start, TimeWait),
        change(HANDOVER, 1, t, FinWait2, Close),
        timer(HANDOVER + 60 * S, TW, t, Cancel, TimeWait),
        timer(HANDOVER + 60 * S + 10_000, TW, t, Expire, TimeWait),
    ]);
    let (mut model, steps) = run(&events);
    assert_eq!(
        brief(&steps),
        [
            (Close, SynSent, None, None),
            (SynSent, Established, Some(MS), None),
            (Established, FinWait1, Some(S - MS), None),
            (FinWait1, FinWait2, Some(2 * MS), None),
            (FinWait2, TimeWait, None, None),
            (FinWait2, Close, Some(498 * MS), Some(TimewaitTakesOver)),
            (TimeWait, Close, Some(60 * S + 10_000), Some(Expired)),
        ]
    );
    let sks: Vec<u64> = steps.iter().map(|s| s.sk).collect();
    assert_eq!(sks, [1, 1, 1, 1, TW, 1, TW]);
    assert_eq!(steps[6].ts_ns, HANDOVER + 60 * S + 10_000);
    // The softirq events (pid 0) leave the owner found at connect().
    assert!(
        steps
            .iter()
            .all(|s| (s.owner.pid, &*s.owner.comm, s.tuple) == (7, "p7", t))
    );
    assert_eq!(model.anomalies(), Anomalies::default());
    assert!(model.in_progress(100 * S).is_empty());
    assert!(
        model.finish(u64::MAX - GRACE - 1).is_empty(),
        "that cancel was an expiry"
    );
}

#[test]
fn passive_close_simultaneous_close_rst_abort_and_refused_connect() {
    let t = tuple(40001, 80);
    let (_, passive) = run(&[
        change_by(0, 1, t, Close, SynSent, 9),
        change(MS, 1, t, SynSent, Established),
        change(5 * S, 1, t, Established, CloseWait),
        change_by(6 * S, 1, t, CloseWait, LastAck, 9),
        change(6 * S + 3 * MS, 1, t, LastAck, Close),
    ]);
    let expected = [
        (Established, CloseWait, Some(5 * S - MS), None),
        (CloseWait, LastAck, Some(S), None),
        (LastAck, Close, Some(3 * MS), None),
    ];
    assert_eq!(brief(&passive)[2..], expected);
    assert!(passive.iter().all(|s| s.owner.pid == 9));

    let mut simultaneous = client_until_fin_wait2(2, t);
    simultaneous.truncate(3);
    simultaneous.extend([
        change(S + MS, 2, t, FinWait1, Closing),
        timer(S + 3 * MS, TW, t, Start, TimeWait),
        change(S + 3 * MS, 2, t, Closing, Close),
    ]);
    let (_, steps) = run(&simultaneous);
    let expected = [
        (FinWait1, Closing, Some(MS), None),
        (Closing, TimeWait, None, None),
        (Closing, Close, Some(2 * MS), Some(TimewaitTakesOver)),
    ];
    assert_eq!(brief(&steps)[3..], expected);
    assert_eq!((steps[4].sk, steps[4].owner.pid), (TW, 7));

    let (_, rst) = run(&[
        change_by(0, 3, t, Close, SynSent, 4),
        change(MS, 3, t, SynSent, Established),
        change(9 * S, 3, t, Established, Close),
    ]);
    assert_eq!(brief(&rst)[2], (Established, Close, Some(9 * S - MS), None));
    let (model, refused) = run(&[
        change_by(10, 4, t, Close, SynSent, 4),
        change(10 + 300_000, 4, t, SynSent, Close),
    ]);
    assert_eq!(brief(&refused)[1], (SynSent, Close, Some(300_000), None));
    assert_eq!(refused[1].owner.pid, 4);
    assert!(model.in_progress(S).is_empty());
}

#[test]
fn listener_lives_until_closed_and_children_take_its_owner() {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let listen = Tuple::new(any, 80, any, 0);
    let child = reversed(tuple(40002, 80));
    let (model, steps) = run(&[
        change_by(0, 10, listen, Close, Listen, 5),
        change(S, 11, child, Listen, SynRecv),
        change(S + MS, 11, child, SynRecv, Established),
        // softirq interrupting an unrelated process: not the owner either
        change_by(2 * S, 11, child, Established, CloseWait, 33),
        change_by(3 * S, 11, child, CloseWait, LastAck, 6),
        change(3 * S + MS, 11, child, LastAck, Close),
        change_by(10 * S, 10, listen, Listen, Close, 5),
    ]);
    assert_eq!(
        brief(&steps),
        [
            (Close, Listen, None, None),
            (Listen, SynRecv, None, None),
            (SynRecv, Established, Some(MS), None),
            (Established, CloseWait, Some(S - MS), None),
            (CloseWait, LastAck, Some(S), None),
            (LastAck, Close, Some(MS), None),
            (Listen, Close, Some(10 * S), None),
        ]
    );
    let owners: Vec<(u32, &str)> = steps
        .iter()
        .map(|s| (s.owner.pid, &*s.owner.comm))
        .collect();
    let (p5, p6) = ((5, "p5"), (6, "p6"));
    assert_eq!(owners, [p5, p5, p5, p5, p6, p6, p5]);
    assert!(model.in_progress(11 * S).is_empty());
    // A child whose listener is not known has no owner, not the pid of the softirq.
    let (_, orphan) = run(&[change_by(0, 12, child, Listen, SynRecv, 33)]);
    assert_eq!(orphan[0].owner.pid, 0);
}

#[test]
fn a_reused_socket_address_never_carries_a_duration_into_its_next_life() {
    let (t1, t2) = (tuple(40003, 80), tuple(40004, 443));
    let (model, steps) = run(&[
        change_by(0, 1, t1, Close, SynSent, 7),
        change(MS, 1, t1, SynSent, Established),
        change(S, 1, t1, Established, Close),
        change_by(5 * S, 1, t2, Close, SynSent, 8),
        change(5 * S + 3 * MS, 1, t2, SynSent, Established),
        // the CLOSE of this life is lost; the address becomes a server child
        change(9 * S, 1, t1, Listen, SynRecv),
        change(9 * S + 2 * MS, 1, t1, SynRecv, Established),
    ]);
    let expected = [
        (Close, SynSent, None, None),
        (SynSent, Established, Some(3 * MS), None),
        (Listen, SynRecv, None, None),
        (SynRecv, Established, Some(2 * MS), None),
    ];
    assert_eq!(brief(&steps)[3..], expected);
    assert_eq!((steps[3].owner.pid, steps[4].owner.pid), (8, 8));
    assert_eq!(
        steps[6].owner.pid, 0,
        "no owner carried over from the previous life"
    );
    assert_eq!(model.anomalies(), Anomalies::default());
}

#[test]
fn unseen_starts_give_no_duration() {
    let t = tuple(40005, 80);
    let (model, steps) = run(&[
        change(S, 1, t, Established, FinWait1),
        change(S + MS, 1, t, FinWait1, FinWait2),
        change_by(2 * S, 2, t, Close, SynSent, 3),
        change(3 * S, 2, t, Established, CloseWait), // SYN_SENT -> ESTABLISHED lost
        timer(4 * S, TW + 1, t, Expire, TimeWait),
        change(5 * S, 3, t, Established, CloseWait),
        change_by(6 * S, 3, t, CloseWait, LastAck, 4),
    ]);
    assert_eq!(
        brief(&steps),
        [
            (Established, FinWait1, None, Some(StartNotSeen)),
            (FinWait1, FinWait2, Some(MS), None),
            (Close, SynSent, None, None),
            (Established, CloseWait, None, Some(StartNotSeen)),
            (TimeWait, Close, None, Some(StartNotSeen)),
            (Established, CloseWait, None, Some(StartNotSeen)),
            (CloseWait, LastAck, Some(S), None),
        ]
    );
    let expected = Anomalies {
        state_mismatch: 1,
        timewait_start_not_seen: 1,
    };
    assert_eq!(model.anomalies(), expected);
    // An unknown owner is learnt from the first process-context event, never from pid 0.
    let pids = [0, 2, 5, 6].map(|i| steps[i].owner.pid);
    assert_eq!(pids, [0, 3, 0, 4]);
}

#[test]
fn early_end_is_emitted_only_once_the_grace_has_passed() {
    let (t, other) = (tuple(T0, 80), tuple(50000, 22));
    let cancel = HANDOVER + 10 * S;
    let events = [
        timer(cancel, TW, t, Cancel, TimeWait),
        change(cancel + GRACE, 9, other, Established, CloseWait),
    ];
    let (mut model, steps) = after_handover(TimeWait, &events);
    assert_eq!(steps.len(), 1, "nothing ends within the grace: {steps:?}");
    let late = model.apply(&change(cancel + GRACE + 1, 9, other, CloseWait, LastAck));
    let expected = [
        (TimeWait, Close, Some(10 * S), Some(EndedEarly)),
        (CloseWait, LastAck, Some(1), None),
    ];
    assert_eq!(brief(&late), expected);
    assert_eq!(
        (late[0].ts_ns, late[0].sk, late[0].tuple, late[0].owner.pid),
        (cancel, TW, t, 7)
    );
    assert!(model.finish(u64::MAX - GRACE - 1).is_empty(), "ended once");

    // Through finish(): the same rule; until then the timewait is still in progress.
    let (mut model, _) = after_handover(TimeWait, &events[..1]);
    assert!(model.finish(cancel + GRACE).is_empty());
    assert_eq!(ages(&model, cancel + GRACE), [(TimeWait, 10 * S + GRACE)]);
    let ended = model.finish(cancel + GRACE + 1);
    assert_eq!(
        brief(&ended),
        [(TimeWait, Close, Some(10 * S), Some(EndedEarly))]
    );
    assert!(model.in_progress(cancel + S).is_empty());
}

#[test]
fn a_rearm_is_not_an_end_and_keeps_the_state_entry_time() {
    let t = tuple(T0, 80);
    let rearm = [
        timer(HANDOVER + S, TW, t, Cancel, TimeWait),
        timer(HANDOVER + S + 5_000, TW, t, Start, TimeWait),
    ];
    let (mut model, steps) = after_handover(TimeWait, &rearm);
    assert!(steps.is_empty());
    assert!(
        model.finish(HANDOVER + 30 * S).is_empty(),
        "re-armed, not ended"
    );
    assert_eq!(ages(&model, HANDOVER + 30 * S), [(TimeWait, 30 * S)]);
    let end = apply_all(
        &mut model,
        &[
            timer(HANDOVER + 61 * S, TW, t, Cancel, TimeWait),
            timer(HANDOVER + 61 * S + 1, TW, t, Expire, TimeWait),
        ],
    );
    assert_eq!(
        brief(&end),
        [(TimeWait, Close, Some(61 * S + 1), Some(Expired))]
    );
}

#[test]
fn orphaned_fin_wait2_continues_in_the_timewait() {
    let t = tuple(T0, 80);
    let tw = |dt: u64, phase, sub| timer(HANDOVER + dt, TW, t, phase, sub);
    // Visible re-arm: the peer's FIN arrives 3 s into the timewait.
    let (mut model, _) = after_handover(FinWait2, &[]);
    assert_eq!(ages(&model, 2 * S), [(FinWait2, 2 * S - FW2)]);
    let rearm = [tw(3 * S, Cancel, TimeWait), tw(3 * S + 1, Start, TimeWait)];
    let steps = apply_all(&mut model, &rearm);
    assert_eq!(
        brief(&steps),
        [(FinWait2, TimeWait, Some(HANDOVER + 3 * S + 1 - FW2), None)]
    );
    assert_eq!((steps[0].sk, steps[0].owner.pid), (TW, 7));
    let end = apply_all(
        &mut model,
        &[tw(63 * S, Cancel, TimeWait), tw(63 * S, Expire, TimeWait)],
    );
    assert_eq!(
        brief(&end),
        [(TimeWait, Close, Some(60 * S - 1), Some(Expired))]
    );

    // Invisible re-arm: only the substate at the expiry shows TIME_WAIT.
    let end = [tw(60 * S, Cancel, TimeWait), tw(60 * S, Expire, TimeWait)];
    let (_, steps) = after_handover(FinWait2, &end);
    let expected = [
        (FinWait2, TimeWait, Some(HANDOVER - FW2), None),
        (TimeWait, Close, Some(60 * S), Some(Expired)),
    ];
    assert_eq!(brief(&steps), expected);
    assert_eq!(steps[0].ts_ns, HANDOVER);

    // No FIN at all: FIN_WAIT2 times out, counted from the full socket's FIN_WAIT2.
    let end = [tw(60 * S, Cancel, FinWait2), tw(60 * S, Expire, FinWait2)];
    let (model, steps) = after_handover(FinWait2, &end);
    assert_eq!(
        brief(&steps),
        [(
            FinWait2,
            Close,
            Some(HANDOVER + 60 * S - FW2),
            Some(Expired)
        )]
    );
    assert!(model.in_progress(HANDOVER + 61 * S).is_empty());

    // One host: the peer's CLOSE_WAIT -> LAST_ACK is when our FIN_WAIT2 becomes TIME_WAIT.
    let peer = [
        change(2 * S, 2, reversed(t), Established, CloseWait),
        change_by(4 * S, 2, reversed(t), CloseWait, LastAck, 6),
    ];
    let (_, steps) = after_handover(FinWait2, &peer);
    assert_eq!(
        brief(&steps)[2],
        (FinWait2, TimeWait, Some(4 * S - FW2), None)
    );
    assert_eq!(
        (steps[2].sk, steps[2].tuple, steps[2].ts_ns),
        (TW, t, 4 * S)
    );
}

#[test]
fn a_new_timewait_at_a_killed_ones_address_ends_the_old_life_first() {
    let (t1, t2) = (tuple(T0, 80), tuple(40007, 80));
    let kill = 5 * S;
    // Client 2 reaches FIN_WAIT2 1 ms before timewait TW (of t1) is killed; 1 ms after the
    // kill, client 2's timewait reuses TW's memory.
    let mut events = client_until_fin_wait2(2, t2);
    events.iter_mut().for_each(|e| e.ts_ns += kill - FW2 - MS);
    events.extend([
        timer(kill, TW, t1, Cancel, TimeWait),
        timer(kill + MS, TW, t2, Start, TimeWait),
        change(kill + MS, 2, t2, FinWait2, Close),
        timer(kill + 60 * S + MS, TW, t2, Cancel, TimeWait),
        timer(kill + 60 * S + MS, TW, t2, Expire, TimeWait),
    ]);
    let (model, steps) = after_handover(TimeWait, &events);
    let seen: Vec<_> = steps[4..]
        .iter()
        .map(|s| (s.ts_ns, s.sk, s.tuple.local_port))
        .collect();
    let (p1, p2) = (t1.local_port, t2.local_port);
    let expected = [
        (kill, TW, p1),
        (kill + MS, TW, p2),
        (kill + MS, 2, p2),
        (kill + 60 * S + MS, TW, p2),
    ];
    assert_eq!(seen, expected);
    let expected = [
        (TimeWait, Close, Some(kill - HANDOVER), Some(EndedEarly)),
        (FinWait2, TimeWait, None, None),
        (FinWait2, Close, Some(2 * MS), Some(TimewaitTakesOver)),
        (TimeWait, Close, Some(60 * S), Some(Expired)),
    ];
    assert_eq!(brief(&steps)[4..], expected);
    assert_eq!(model.anomalies(), Anomalies::default());
}

#[test]
fn in_progress_reports_each_socket_with_its_age() {
    let (t, t2) = (tuple(40008, 80), tuple(40009, 80));
    let mut events = client_until_fin_wait2(1, t);
    events.extend([
        change_by(0, 10, tuple(80, 0), Close, Listen, 5),
        change_by(S, 2, t2, Close, SynSent, 5),
        change(S + MS, 2, t2, SynSent, Established),
        timer(2 * S, TW, t, Start, FinWait2),
    ]);
    let (model, _) = run(&events);
    let fw2 = 10 * S - FW2; // the timewait goes on with the full socket's FIN_WAIT2
    let expected = [
        (Established, 9 * S - MS),
        (FinWait2, fw2),
        (FinWait2, fw2),
        (Listen, 10 * S),
    ];
    assert_eq!(ages(&model, 10 * S), expected);
}

/// BUG: a timer start at a live timewait address with another tuple is taken for a re-arm when
/// no closing full socket with the new tuple is known (e.g. it predates the tracer).
#[test]
#[ignore = "model bug: timewait life taken for a re-arm of another"]
fn a_start_with_another_tuple_is_a_new_timewait_life() {
    let (t1, t2) = (tuple(T0, 80), tuple(40007, 80));
    let (_, steps) = run(&[
        timer(S, TW, t1, Start, TimeWait),
        timer(10 * S, TW, t1, Cancel, TimeWait),
        timer(10 * S + MS, TW, t2, Start, TimeWait),
        timer(70 * S, TW, t2, Cancel, TimeWait),
        timer(70 * S, TW, t2, Expire, TimeWait),
    ]);
    let seen: Vec<_> = steps
        .iter()
        .map(|s| (s.ts_ns, s.tuple.local_port))
        .collect();
    let (p1, p2) = (t1.local_port, t2.local_port);
    assert_eq!(
        seen,
        [(S, p1), (10 * S, p1), (10 * S + MS, p2), (70 * S, p2)]
    );
    let ended = (TimeWait, Close, Some(9 * S), Some(EndedEarly));
    assert_eq!(brief(&steps)[1], ended);
    assert_eq!(
        brief(&steps)[3],
        (TimeWait, Close, Some(60 * S - MS), Some(Expired))
    );
}

/// BUG: after a lost CLOSE and a reuse of the address, the closing index still maps the old
/// tuple to the address, so a timewait of the old tuple is matched with the new, unrelated life.
#[test]
#[ignore = "model bug: stale closing index"]
fn a_timewait_is_not_matched_with_a_later_life_of_the_closing_address() {
    let (t1, t2) = (tuple(T0, 80), tuple(40007, 80));
    let (_, steps) = run(&[
        change(S, 1, t1, Established, FinWait1),
        change_by(2 * S, 1, t2, Close, SynSent, 9), // the CLOSE of t1 was lost
        timer(3 * S, TW, t1, Start, TimeWait),
    ]);
    assert_eq!(brief(&steps)[2], (FinWait2, TimeWait, None, None));
    assert_eq!(steps[2].owner, Owner::default());
}

/// Random events: full sockets 1..=3, timewaits TW..TW+2, three ports on each side.
fn arb_event() -> impl Strategy<Value = (u64, Event)> {
    let dt = prop_oneof![0u64..10, 0..10 * MS, 0..70 * S];
    let state = prop::sample::select(TcpState::ALL.to_vec());
    let phase = prop::sample::select(vec![Start, Cancel, Expire]);
    let sub = prop::sample::select(vec![TimeWait, FinWait2]);
    let port = prop::sample::select(vec![80u16, 40000, 40001]);
    let kind = prop_oneof![
        (state.clone(), state).prop_map(|(old, new)| EventKind::StateChange { old, new }),
        (phase, sub).prop_map(|(phase, substate)| EventKind::TimeWait { phase, substate }),
    ];
    let pid = prop_oneof![Just(0u32), 1u32..4];
    (dt, 0u64..3, kind, port.clone(), port, pid).prop_map(|(dt, n, kind, lp, rp, pid)| {
        let timer = matches!(kind, EventKind::TimeWait { .. });
        let sk = if timer { TW + n } else { 1 + n };
        (dt, event(0, sk, tuple(lp, rp), pid, kind))
    })
}

fn starts_life(ev: &Event) -> bool {
    use EventKind::StateChange as C;
    matches!(
        ev.kind,
        C {
            old: Close,
            new: SynSent | Listen
        } | C {
            old: Listen,
            new: SynRecv
        }
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn random_sequences_keep_durations_inside_lives(input in prop::collection::vec(arb_event(), 1..80)) {
        let mut model = Model::new();
        let (first, mut ts) = (S, S);
        let mut life_start: HashMap<u64, u64> = HashMap::new();
        let mut steps = Vec::new();
        for (dt, mut ev) in input {
            ts += dt;
            ev.ts_ns = ts;
            if starts_life(&ev) {
                life_start.insert(ev.sk, ts);
            }
            for step in model.apply(&ev) {
                if step.sk < TW {
                    let began = step.dwell_ns.map(|d| step.ts_ns - d);
                    let life = life_start.get(&step.sk).copied().unwrap_or(0);
                    prop_assert!(began.is_none_or(|b| b >= life), "{step:?} crosses life at {life}");
                }
                steps.push(step);
            }
        }
        steps.extend(model.finish(ts + GRACE + 1));
        for step in &steps {
            prop_assert!((first..=ts).contains(&step.ts_ns), "{step:?}");
            prop_assert!(step.dwell_ns.is_none_or(|d| d <= step.ts_ns - first), "{step:?}");
        }
        for p in model.in_progress(ts) {
            prop_assert!(p.age_ns <= ts - first, "{p:?}");
        }
    }
}
