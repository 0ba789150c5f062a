//! Timewait lives through their timer: expiry, early end, re-arm, FIN_WAIT2 substate.
use super::*;

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
        "100 p7 TIME_WAIT->CLOSE 10000ms EndedEarly",
        "9 p0 CLOSE_WAIT->LAST_ACK 1ns",
    ];
    assert_eq!(shown(&late), expected);
    assert_eq!((late[0].ts_ns, late[0].tuple), (cancel, t)); // it ended at the cancel
    assert!(model.finish(u64::MAX - GRACE - 1).is_empty(), "ended once");
    // Through finish(): the same rule; until then the timewait is still in progress.
    let (mut model, _) = after_handover(TimeWait, &events[..1]);
    assert!(model.finish(cancel + GRACE).is_empty());
    assert_eq!(ages(&model, cancel + GRACE), [(TimeWait, 10 * S + GRACE)]);
    let ended = shown(&model.finish(cancel + GRACE + 1));
    assert_eq!(ended, ["100 p7 TIME_WAIT->CLOSE 10000ms EndedEarly"]);
    assert!(model.in_progress(cancel + S).is_empty());
}

#[test]
fn a_rearm_is_not_an_end_and_keeps_the_state_entry_time() {
    let t = tuple(T0, 80);
    let tw = |dt: u64, phase| timer(HANDOVER + dt, TW, t, phase, TimeWait);
    let (mut model, steps) = after_handover(TimeWait, &[tw(S, Cancel), tw(S + 5_000, Start)]);
    assert!(steps.is_empty());
    assert!(model.finish(HANDOVER + 30 * S).is_empty()); // re-armed, not ended
    assert_eq!(ages(&model, HANDOVER + 30 * S), [(TimeWait, 30 * S)]);
    let end = shown(&apply_all(
        &mut model,
        &[tw(61 * S, Cancel), tw(61 * S + 1, Expire)],
    ));
    assert_eq!(end, ["100 p7 TIME_WAIT->CLOSE 61000000001ns Expired"]);
}

#[test]
fn orphaned_fin_wait2_continues_in_the_timewait() {
    let t = tuple(T0, 80);
    let tw = |dt: u64, phase, sub| timer(HANDOVER + dt, TW, t, phase, sub);
    // Visible re-arm: the peer's FIN arrives 3 s into the timewait.
    let (mut model, _) = after_handover(FinWait2, &[]);
    assert_eq!(ages(&model, 2 * S), [(FinWait2, 2 * S - FW2)]);
    let rearm = [tw(3 * S, Cancel, TimeWait), tw(3 * S + MS, Start, TimeWait)];
    let fw2 = shown(&apply_all(&mut model, &rearm));
    assert_eq!(fw2, ["100 p7 FIN_WAIT2->TIME_WAIT 3499ms"]); // since the full socket's FIN_WAIT2
    let end = [tw(63 * S, Cancel, TimeWait), tw(63 * S, Expire, TimeWait)];
    let end = shown(&apply_all(&mut model, &end));
    assert_eq!(end, ["100 p7 TIME_WAIT->CLOSE 59999ms Expired"]);
    // Invisible re-arm: only the substate at the expiry shows TIME_WAIT.
    let end = [tw(60 * S, Cancel, TimeWait), tw(60 * S, Expire, TimeWait)];
    let (_, steps) = after_handover(FinWait2, &end);
    let expected = [
        "100 p7 FIN_WAIT2->TIME_WAIT 498ms",
        "100 p7 TIME_WAIT->CLOSE 60000ms Expired",
    ];
    assert_eq!(shown(&steps), expected);
    assert_eq!(steps[0].ts_ns, HANDOVER);
    // No FIN at all: FIN_WAIT2 times out, counted from the full socket's FIN_WAIT2.
    let end = [tw(60 * S, Cancel, FinWait2), tw(60 * S, Expire, FinWait2)];
    let (model, steps) = after_handover(FinWait2, &end);
    assert_eq!(shown(&steps), ["100 p7 FIN_WAIT2->CLOSE 60498ms Expired"]);
    assert!(model.in_progress(HANDOVER + 61 * S).is_empty());
    // One host: the peer's CLOSE_WAIT -> LAST_ACK is when our FIN_WAIT2 becomes TIME_WAIT.
    let peer = [
        change(2 * S, 2, reversed(t), Established, CloseWait),
        change_by(4 * S, 2, reversed(t), CloseWait, LastAck, 6),
    ];
    let (_, steps) = after_handover(FinWait2, &peer);
    assert_eq!(show(&steps[2]), "100 p7 FIN_WAIT2->TIME_WAIT 2998ms");
    assert_eq!((steps[2].tuple, steps[2].ts_ns), (t, 4 * S));
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
    let expected = [
        "100 p7 TIME_WAIT->CLOSE 3500ms EndedEarly",
        "100 p7 FIN_WAIT2->TIME_WAIT -",
        "2 p7 FIN_WAIT2->CLOSE 2ms TimewaitTakesOver [LocalFirst]",
        "100 p7 TIME_WAIT->CLOSE 60000ms Expired",
    ];
    assert_eq!(shown(&steps)[4..], expected);
    let at = |i: usize| (steps[i].ts_ns, steps[i].tuple);
    let expire = kill + 60 * S + MS;
    assert_eq!(
        [at(4), at(5), at(7)],
        [(kill, t1), (kill + MS, t2), (expire, t2)]
    );
    assert_eq!(model.anomalies(), Anomalies::default());
}

#[test]
fn in_progress_reports_each_socket_with_its_age() {
    let mut events = vec![change_by(2 * S, 10, tuple(80, 0), Close, Listen, 5)];
    events.extend(connect(2, tuple(40009, 80), 5).into_iter().map(|mut e| {
        e.ts_ns += 3 * S;
        e
    }));
    let (model, _) = after_handover(FinWait2, &events);
    // The orphaned FIN_WAIT2 goes on in the timewait, aged from the full socket's FIN_WAIT2.
    let expected = [
        (Established, 7 * S - MS),
        (FinWait2, 10 * S - FW2),
        (Listen, 8 * S),
    ];
    assert_eq!(ages(&model, 10 * S), expected);
}

/// A timer start at a live timewait address with another tuple is a new life even when no
/// closing full socket is known for it (e.g. it predates the tracer): the old one ended early.
#[test]
fn a_start_with_another_tuple_is_a_new_timewait_life() {
    let (t1, t2) = (tuple(T0, 80), tuple(40007, 80));
    let (_, steps) = run(&[
        timer(S, TW, t1, Start, TimeWait),
        timer(10 * S, TW, t1, Cancel, TimeWait),
        timer(10 * S + MS, TW, t2, Start, TimeWait),
        timer(70 * S, TW, t2, Cancel, TimeWait),
        timer(70 * S, TW, t2, Expire, TimeWait),
    ]);
    let ends: Vec<_> = steps
        .iter()
        .skip(1)
        .step_by(2)
        .map(|s| (show(s), s.tuple))
        .collect();
    let early = "100 p0 TIME_WAIT->CLOSE 9000ms EndedEarly".to_string();
    let expired = "100 p0 TIME_WAIT->CLOSE 59999ms Expired".to_string();
    assert_eq!(ends, [(early, t1), (expired, t2)]);
}

/// A timewait whose expiry (or kill) never arrived, e.g. a timer softirq the kernel did not
/// hand to eBPF: a new timewait with another tuple at its address counts that end as not seen,
/// gives the old one no end time, and starts the new one cleanly.
#[test]
fn a_new_timewait_at_an_address_whose_end_was_not_seen_counts_a_gap() {
    let (t1, t2) = (tuple(T0, 80), tuple(40008, 80));
    let (model, steps) = run(&[
        timer(S, TW, t1, Start, TimeWait),
        timer(70 * S, TW, t2, Start, TimeWait),
        timer(130 * S, TW, t2, Cancel, TimeWait),
        timer(130 * S, TW, t2, Expire, TimeWait),
    ]);
    let ends: Vec<_> = steps
        .iter()
        .filter(|s| s.to == Close)
        .map(|s| (show(s), s.tuple))
        .collect();
    let expired = "100 p0 TIME_WAIT->CLOSE 60000ms Expired".to_string();
    assert_eq!(ends, [(expired, t2)]);
    let anomalies = model.anomalies();
    assert_eq!((anomalies.ends_not_seen, anomalies.gaps()), (1, 1));
}
