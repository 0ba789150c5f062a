//! LIFE records (kernel aggregation) give the ends, roles and owners the same events give one
//! by one, and no durations for their own socket.
use tracer_common::life::flags;

use super::*;
use crate::model::event::LifeTimewait;

fn path(states: &[TcpState]) -> LifePath {
    let raw = states
        .iter()
        .enumerate()
        .fold(0u64, |p, (i, s)| p | (s.index() as u64 + 1) << (4 * i));
    LifePath::new(raw).unwrap()
}

fn life(ts: u64, sk: u64, t: Tuple, pid: u32, states: &[TcpState], life_flags: u8) -> Event {
    let n = states.len();
    let kind = EventKind::Life {
        old: states[n - 2],
        new: states[n - 1],
        path: path(states),
        flags: life_flags,
        start_ns: 0,
        entered_ns: 0,
        timewait: None,
    };
    event(ts, sk, t, pid, kind)
}

/// The ends (kind, role, service, TIME_WAIT) and owners of `steps`.
fn ends(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| s.end.map(|e| format!("{} p{} {e:?}", s.sk, s.owner.pid)))
        .collect()
}

#[test]
fn a_passive_close_ends_as_its_events_do() {
    let t = tuple(80, T0);
    let one_by_one = [
        change(MS, 1, t, Listen, SynRecv),
        change(2 * MS, 1, t, SynRecv, Established),
        change(3 * MS, 1, t, Established, CloseWait),
        change_by(4 * MS, 1, t, CloseWait, LastAck, 7),
        change(5 * MS, 1, t, LastAck, Close),
    ];
    let states = [Listen, SynRecv, Established, CloseWait, LastAck, Close];
    let (_, want) = run(&one_by_one);
    let (_, got) = run(&[life(5 * MS, 1, t, 7, &states, 0)]);
    assert_eq!(ends(&got), ends(&want));
    assert_eq!(ends(&got).len(), 1);
    assert!(
        got.iter().all(|s| s.dwell_ns.is_none()),
        "{:?}",
        shown(&got)
    );
}

#[test]
fn resets_noted_in_the_life_decide_its_end() {
    let t = tuple(T0, 80);
    let states = [Close, SynSent, Established, Close];
    let (_, got) = run(&[life(MS, 1, t, 9, &states, flags::RST_RECEIVED)]);
    assert_eq!(
        got.last().unwrap().end.unwrap().kind,
        CloseKind::RstReceived
    );
    // An abort: its RST comes after the LIFE record, one by one.
    let mut model = Model::new();
    let held = model.apply(&life(MS, 2, t, 9, &states, 0));
    assert!(held.iter().all(|s| s.end.is_none()), "{:?}", shown(&held));
    let rst = event(MS + 10, 2, t, 0, EventKind::ResetSent);
    let ended = model.apply(&rst);
    assert_eq!(ended.len(), 1, "{:?}", shown(&ended));
    assert_eq!(ended[0].end.unwrap().kind, CloseKind::RstSent);
    assert_eq!(ended[0].dwell_ns, None, "counted by the kernel");
}

#[test]
fn a_life_handed_to_its_timewait_goes_on_one_by_one() {
    let t = tuple(T0, 80);
    let states = [Close, SynSent, Established, FinWait1, FinWait2];
    let mut model = Model::new();
    let first = model.apply(&life(FW2, 1, t, 5, &states, 0));
    assert!(
        first
            .iter()
            .all(|s| s.dwell_ns.is_none() && s.end.is_none())
    );
    model.apply(&timer(HANDOVER, TW, t, Start, TimeWait));
    let end = model.apply(&change(HANDOVER + 1, 1, t, FinWait2, Close));
    let step = end.last().unwrap();
    assert_eq!(
        step.dwell_ns,
        Some(HANDOVER + 1 - FW2),
        "timed by the model"
    );
    let e = step.end.unwrap();
    assert_eq!(
        (e.kind, e.role, e.timewait),
        (CloseKind::LocalFirst, Role::Client, true)
    );
    assert_eq!(step.owner.pid, 5);
}

/// A listener's child whose handshake went one event at a time (its request socket's first
/// SYN-ACK at 0.5 ms, its end record at 1 ms), then taken over by the kernel at
/// `SYN_RECV -> ESTABLISHED` (2 ms); the steps of that change.
fn child_followed(model: &mut Model, t: Tuple) -> Vec<Step> {
    model.apply(&change(MS, 1, t, Listen, SynRecv));
    let request = EventKind::RequestEnd {
        start_ns: Some(MS / 2),
        retransmits: 0,
        how: crate::model::RequestEnd::Unlinked,
    };
    model.apply(&event(MS + 1, 99, t, 0, request));
    let followed = EventKind::Followed {
        old: SynRecv,
        new: Established,
    };
    model.apply(&event(2 * MS, 1, t, 0, followed))
}

#[test]
fn a_child_followed_in_the_kernel_is_counted_there_until_its_life_record() {
    let t = tuple(80, T0);
    let mut model = Model::new();
    let steps = child_followed(&mut model, t);
    assert_eq!(steps.len(), 1);
    let half_open = Some(3 * MS / 2);
    assert_eq!(
        steps[0].dwell_ns, half_open,
        "timed here, from its request's SYN-ACK"
    );
    assert_eq!(model.open_by_state(3 * MS)[Established.index()].count, 0);
    // The life so far, handed back mid-way (a transition the kernel could not follow).
    let states = [Established, CloseWait, LastAck];
    model.apply(&life(4 * MS, 1, t, 7, &states, 0));
    assert_eq!(model.open_by_state(5 * MS)[LastAck.index()].count, 1);
    let end = model.apply(&change(6 * MS, 1, t, LastAck, Close));
    let e = end.last().unwrap().end.unwrap();
    assert_eq!((e.kind, e.role), (CloseKind::PeerFirst, Role::Server));
    assert_eq!(end.last().unwrap().owner.pid, 7);
}

#[test]
fn a_lifes_first_transition_keeps_its_own_time() {
    let t = tuple(T0, 80);
    let states = [Close, SynSent, Established, CloseWait, LastAck];
    let mut record = life(S, 1, t, 5, &states, 0);
    if let EventKind::Life { start_ns, .. } = &mut record.kind {
        *start_ns = MS;
    }
    let steps = run(&[record]).1;
    let times: Vec<(TcpState, u64)> = steps.iter().map(|s| (s.to, s.ts_ns)).collect();
    assert_eq!(times[0], (SynSent, MS), "the connect, when it happened");
    assert!(times[1..].iter().all(|&(_, ts)| ts == S), "{times:?}");
}

#[test]
fn a_childs_record_keeps_its_time_whatever_its_start() {
    let t = tuple(80, T0);
    let mut model = Model::new();
    child_followed(&mut model, t);
    // Reset by the peer: ESTABLISHED -> CLOSE, its life started at the handshake's end.
    let mut record = life(S, 1, t, 0, &[Established, Close], flags::RST_RECEIVED);
    if let EventKind::Life { start_ns, .. } = &mut record.kind {
        *start_ns = 2 * MS;
    }
    let end = model.apply(&record);
    let step = end.last().unwrap();
    assert_eq!(
        step.ts_ns, S,
        "the close at its own time, not the handshake's"
    );
    assert_eq!(step.end.unwrap().kind, CloseKind::RstReceived);
}

/// The steps of timewait `TW` as `show` writes them.
fn timewait_steps(steps: &[Step]) -> Vec<String> {
    shown(
        &steps
            .iter()
            .filter(|s| s.sk == TW)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// The LIFE record of `client_until_fin_wait2`'s socket closed at `close`, taken over by
/// timewait `TW` started in `substate` at HANDOVER.
fn client_handed_over(close: u64, substate: TcpState) -> Event {
    let states = [Close, SynSent, Established, FinWait1, FinWait2, Close];
    let mut record = life(close, 1, tuple(T0, 80), 7, &states, 0);
    if let EventKind::Life {
        entered_ns,
        timewait,
        ..
    } = &mut record.kind
    {
        *entered_ns = FW2;
        *timewait = Some(LifeTimewait {
            sk: TW,
            ts_ns: HANDOVER,
            substate,
            in_kernel: false,
        });
    }
    record
}

#[test]
fn a_life_and_its_timewaits_start_in_one_record_end_as_their_events_do() {
    let t = tuple(T0, 80);
    let expiry = HANDOVER + 60 * S;
    for substate in [FinWait2, TimeWait] {
        let mut one_by_one = client_until_fin_wait2(1, t);
        one_by_one.push(timer(HANDOVER, TW, t, Start, substate));
        one_by_one.push(change(HANDOVER + 1, 1, t, FinWait2, Close));
        one_by_one.push(timer(expiry, TW, t, Expire, TimeWait));
        let (_, want) = run(&one_by_one);
        let record = client_handed_over(HANDOVER + 1, substate);
        let (_, got) = run(&[record, timer(expiry, TW, t, Expire, TimeWait)]);
        assert_eq!(ends(&got), ends(&want), "{substate:?}");
        assert_eq!(ends(&got).len(), 1);
        assert_eq!(timewait_steps(&got), timewait_steps(&want), "{substate:?}");
        assert!(!timewait_steps(&got).is_empty());
    }
}

#[test]
fn a_timewait_the_kernel_follows_makes_the_close_a_handover_and_leaves_nothing_here() {
    let t = tuple(T0, 80);
    for substate in [FinWait2, TimeWait] {
        let mut one_by_one = client_until_fin_wait2(1, t);
        one_by_one.push(timer(HANDOVER, TW, t, Start, substate));
        one_by_one.push(change(HANDOVER + 1, 1, t, FinWait2, Close));
        let (_, want) = run(&one_by_one);
        let mut record = client_handed_over(HANDOVER + 1, substate);
        if let EventKind::Life {
            timewait: Some(tw), ..
        } = &mut record.kind
        {
            tw.in_kernel = true;
        }
        let mut model = Model::new();
        let got = model.apply(&record);
        assert_eq!(ends(&got), ends(&want), "{substate:?}");
        let end = got.iter().find_map(|s| s.end).expect("an end");
        assert!(end.timewait, "{substate:?}: {end:?}");
        assert!(timewait_steps(&got).is_empty(), "{got:?}");
        let open = model.in_progress(HANDOVER + 2);
        assert!(open.is_empty(), "the kernel counts it: {open:?}");
    }
}

#[test]
fn a_peers_fin_at_the_time_its_record_carries_ends_our_fin_wait2() {
    let t = tuple(T0, 80);
    let peer = reversed(t);
    let fin = HANDOVER + 3 * MS;
    let (_, want) = after_handover(
        FinWait2,
        &[
            change_by(fin, 2, peer, CloseWait, LastAck, 9),
            change(fin + 20_000, 2, peer, LastAck, Close),
        ],
    );
    let states = [Established, CloseWait, LastAck, Close];
    let mut record = life(fin + 20_000, 2, peer, 9, &states, 0);
    if let EventKind::Life { entered_ns, .. } = &mut record.kind {
        *entered_ns = fin;
    }
    let (_, got) = after_handover(FinWait2, &[record]);
    let turned = format!("{TW} p7 FIN_WAIT2->TIME_WAIT {}ms", (fin - FW2) / MS);
    assert_eq!(timewait_steps(&want), std::slice::from_ref(&turned));
    assert_eq!(timewait_steps(&got), [turned]);
}

#[test]
fn a_child_whose_handshake_the_kernel_kept_starts_at_its_making() {
    let t = tuple(80, T0);
    let one_by_one = [
        change(MS, 1, t, Listen, SynRecv),
        change(MS + 30_000, 1, t, SynRecv, Established),
        change_by(S, 1, t, Established, FinWait1, 7),
        change(S + MS, 1, t, FinWait1, FinWait2),
        change(S + 2 * MS, 1, t, FinWait2, Close),
    ];
    let (_, want) = run(&one_by_one);
    let states = [Listen, SynRecv, Established, FinWait1, FinWait2, Close];
    let mut record = life(S + 2 * MS, 1, t, 7, &states, 0);
    if let EventKind::Life {
        start_ns,
        entered_ns,
        ..
    } = &mut record.kind
    {
        (*start_ns, *entered_ns) = (MS, S + MS);
    }
    let (_, got) = run(&[record]);
    assert_eq!(ends(&got), ends(&want));
    let e = got.last().unwrap().end.unwrap();
    assert_eq!((e.kind, e.role), (CloseKind::LocalFirst, Role::Server));
    let times: Vec<(TcpState, u64)> = got.iter().map(|s| (s.to, s.ts_ns)).collect();
    assert_eq!(times[0], (SynRecv, MS), "made when it was");
    assert_eq!(times.last(), Some(&(Close, S + 2 * MS)));
    assert!(
        got.iter().all(|s| s.dwell_ns.is_none()),
        "{:?}",
        shown(&got)
    );
}

/// A timewait event flagged as coming before the LIFE record that carries its start.
fn ahead(ts: u64, phase: TimerPhase, substate: TcpState) -> Event {
    let t = tuple(T0, 80);
    event(ts, TW, t, 0, EventKind::TimeWaitAhead { phase, substate })
}

#[test]
fn a_timewait_event_ahead_of_its_start_waits_for_the_record() {
    let t = tuple(T0, 80);
    let (rearm, close, expiry) = (HANDOVER + 10_000, HANDOVER + 20_000, HANDOVER + 60 * S);
    let mut one_by_one = client_until_fin_wait2(1, t);
    one_by_one.push(timer(HANDOVER, TW, t, Start, FinWait2));
    // The peer's FIN re-arms it on another CPU before this one reaches the CLOSE.
    one_by_one.push(timer(rearm, TW, t, Start, TimeWait));
    one_by_one.push(change(close, 1, t, FinWait2, Close));
    one_by_one.push(timer(expiry, TW, t, Expire, TimeWait));
    let (_, want) = run(&one_by_one);
    let record = client_handed_over(close, FinWait2);
    let events = [
        ahead(rearm, Start, TimeWait),
        record,
        timer(expiry, TW, t, Expire, TimeWait),
    ];
    let (model, got) = run(&events);
    assert_eq!(ends(&got), ends(&want));
    assert_eq!(timewait_steps(&got), timewait_steps(&want));
    assert_eq!(model.anomalies(), run(&one_by_one).0.anomalies());
}

#[test]
fn a_timewait_event_ahead_goes_on_alone_when_no_record_comes() {
    let mut model = Model::new();
    assert!(model.apply(&ahead(S, Expire, TimeWait)).is_empty(), "held");
    let late = model.finish(S + super::super::kernel_life::AHEAD_WAIT_NS + 1);
    assert_eq!(late.len(), 1, "{:?}", shown(&late));
    assert_eq!(late[0].note, Some(Note::StartNotSeen));
}
