//! Full-socket lives: closes of every kind, listeners, owners, address reuse.
use super::*;

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
    let expected = [
        "1 p7 CLOSE->SYN_SENT -",
        "1 p7 SYN_SENT->ESTABLISHED 1ms", // softirq (pid 0) keeps the owner
        "1 p7 ESTABLISHED->FIN_WAIT1 999ms",
        "1 p7 FIN_WAIT1->FIN_WAIT2 2ms",
        "100 p7 FIN_WAIT2->TIME_WAIT -",
        "1 p7 FIN_WAIT2->CLOSE 498ms TimewaitTakesOver [LocalFirst]",
        "100 p7 TIME_WAIT->CLOSE 60000010000ns Expired",
    ];
    assert_eq!(shown(&steps), expected);
    assert_eq!(steps[6].ts_ns, HANDOVER + 60 * S + 10_000);
    let end = steps[5].end.map(|e| (e.role, e.service.port, e.timewait));
    assert_eq!(end, Some((Role::Client, 80, true)));
    assert!(steps.iter().all(|s| s.tuple == t && s.owner.comm == "p7"));
    assert_eq!(model.anomalies(), Anomalies::default());
    assert!(model.in_progress(100 * S).is_empty());
    assert!(model.finish(u64::MAX - GRACE - 1).is_empty()); // that cancel was an expiry
}

#[test]
fn passive_close_simultaneous_close_rst_abort_and_refused_connect() {
    let t = tuple(40001, 80);
    let mut passive = connect(1, t, 9);
    passive.extend([
        change(5 * S, 1, t, Established, CloseWait),
        change_by(6 * S, 1, t, CloseWait, LastAck, 9),
        change(6 * S + 3 * MS, 1, t, LastAck, Close),
    ]);
    let expected = [
        "1 p9 ESTABLISHED->CLOSE_WAIT 4999ms",
        "1 p9 CLOSE_WAIT->LAST_ACK 1000ms",
        "1 p9 LAST_ACK->CLOSE 3ms [PeerFirst]",
    ];
    assert_eq!(shown(&run(&passive).1)[2..], expected);
    let mut simultaneous = client_until_fin_wait2(2, t);
    simultaneous.truncate(3);
    simultaneous.extend([
        change(S + MS, 2, t, FinWait1, Closing),
        timer(S + 3 * MS, TW, t, Start, TimeWait),
        change(S + 3 * MS, 2, t, Closing, Close),
    ]);
    let expected = [
        "2 p7 FIN_WAIT1->CLOSING 1ms",
        "100 p7 CLOSING->TIME_WAIT -",
        "2 p7 CLOSING->CLOSE 2ms TimewaitTakesOver [Simultaneous]",
    ];
    assert_eq!(shown(&run(&simultaneous).1)[3..], expected);
    let (model, refused) = run(&[
        change_by(10, 4, t, Close, SynSent, 4),
        change(10 + 300_000, 4, t, SynSent, Close),
    ]);
    let expected = "4 p4 SYN_SENT->CLOSE 300000ns [ConnectFailed]";
    assert_eq!(show(&refused[1]), expected);
    assert!(model.in_progress(S).is_empty());
    // RST aborts: the peer's RST comes before the CLOSE, ours right after it.
    let (abort, rst) = (vec![change(9 * S, 3, t, Established, Close)], |k| {
        vec![event(9 * S, 3, t, 0, k)]
    });
    let received = [
        connect(3, t, 4),
        rst(EventKind::ResetReceived),
        abort.clone(),
    ]
    .concat();
    let expected = "3 p4 ESTABLISHED->CLOSE 8999ms [RstReceived]";
    assert_eq!(show(&run(&received).1[2]), expected);
    let sent = [connect(3, t, 4), abort.clone(), rst(EventKind::ResetSent)].concat();
    let expected = "3 p4 ESTABLISHED->CLOSE 8999ms [RstSent]";
    assert_eq!(show(&run(&sent).1[2]), expected);
    // Neither: the end is held until the grace for the RST has passed.
    let (mut model, steps) = run(&[connect(3, t, 4), abort].concat());
    assert_eq!(steps.len(), 2);
    assert!(model.finish(9 * S + RESET_GRACE_NS).is_empty());
    let aborted = shown(&model.finish(9 * S + RESET_GRACE_NS + 1));
    assert_eq!(aborted, ["3 p4 ESTABLISHED->CLOSE 8999ms [Aborted]"]);
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
        change_by(3 * S, 11, child, CloseWait, LastAck, 6), // a worker closes it
        change(3 * S + MS, 11, child, LastAck, Close),
        change_by(10 * S, 10, listen, Listen, Close, 5),
    ]);
    let expected = [
        "10 p5 CLOSE->LISTEN -",
        "11 p5 LISTEN->SYN_RECV -",
        // No request socket end: a child's own microseconds are not SYN_RECV (half_open.rs).
        "11 p5 SYN_RECV->ESTABLISHED - StartNotSeen",
        "11 p5 ESTABLISHED->CLOSE_WAIT 999ms",
        "11 p6 CLOSE_WAIT->LAST_ACK 1000ms",
        "11 p6 LAST_ACK->CLOSE 1ms [PeerFirst]",
        "10 p5 LISTEN->CLOSE 10000ms",
    ];
    assert_eq!(shown(&steps), expected);
    let end = steps[5].end.map(|e| (e.role, e.service.port, e.timewait));
    assert_eq!(end, Some((Role::Server, 80, false)));
    assert!(model.in_progress(11 * S).is_empty());
    // The listener is gone: a child on its port has no owner, not the pid of the softirq.
    let (_, orphan) = run(&[change_by(0, 12, child, Listen, SynRecv, 33)]);
    assert_eq!(show(&orphan[0]), "12 p0 LISTEN->SYN_RECV -");
}

#[test]
fn a_reused_socket_address_never_carries_a_duration_into_its_next_life() {
    let (t1, t2) = (tuple(40003, 80), tuple(40004, 443));
    let mut events = connect(1, t1, 7);
    events.extend([
        change(S, 1, t1, Established, Close),
        change_by(5 * S, 1, t2, Close, SynSent, 8),
        change(5 * S + 3 * MS, 1, t2, SynSent, Established),
        // the CLOSE of this life is lost; the address becomes a server child
        change(9 * S, 1, t1, Listen, SynRecv),
        change(9 * S + 2 * MS, 1, t1, SynRecv, Established),
    ]);
    let (model, steps) = run(&events);
    let expected = [
        "1 p7 ESTABLISHED->CLOSE 999ms [Aborted]",
        "1 p8 CLOSE->SYN_SENT -",
        "1 p8 SYN_SENT->ESTABLISHED 3ms",
        "1 p0 LISTEN->SYN_RECV -",
        "1 p0 SYN_RECV->ESTABLISHED - StartNotSeen",
    ];
    assert_eq!(shown(&steps)[2..], expected);
    // The lost CLOSE is inferred once, from the new life at the open address.
    let gap = Anomalies {
        ends_not_seen: 1,
        ..Anomalies::default()
    };
    assert_eq!(model.anomalies(), gap);
}

#[test]
fn unseen_starts_give_no_duration() {
    let t = tuple(40005, 80);
    let (model, steps) = run(&[
        change(S, 1, t, Established, FinWait1),
        change(S + MS, 1, t, FinWait1, FinWait2),
        change_by(2 * S, 2, t, Close, SynSent, 3),
        change_by(3 * S, 2, t, Established, CloseWait, 3), // SYN_SENT->ESTABLISHED lost
        timer(4 * S, TW + 1, t, Expire, TimeWait),
        change(5 * S, 3, t, Established, CloseWait),
        change_by(6 * S, 3, t, CloseWait, LastAck, 4), // the owner is learnt from close()
    ]);
    let expected = [
        "1 p0 ESTABLISHED->FIN_WAIT1 - StartNotSeen",
        "1 p0 FIN_WAIT1->FIN_WAIT2 1ms",
        "2 p3 CLOSE->SYN_SENT -",
        // after a mismatch nothing of the life is kept (it may be a new one), not even its owner
        "2 p0 ESTABLISHED->CLOSE_WAIT - StartNotSeen",
        "101 p0 TIME_WAIT->CLOSE - StartNotSeen",
        "3 p0 ESTABLISHED->CLOSE_WAIT - StartNotSeen",
        "3 p4 CLOSE_WAIT->LAST_ACK 1000ms",
    ];
    assert_eq!(shown(&steps), expected);
    let counts = model.anomalies();
    let counts = (counts.state_mismatch, counts.timewait_start_not_seen);
    assert_eq!(counts, (1, 1));
}

/// A socket already closing when the tracer started: FIN_WAIT*/CLOSING imply this side's FIN,
/// CLOSE_WAIT/LAST_ACK the peer's, even though the first closing transition was not seen.
#[test]
fn a_close_seen_mid_way_is_not_an_abort() {
    let t = tuple(T0, 80);
    let (mut model, mut steps) = run(&[
        change(S, 1, t, FinWait1, FinWait2),
        timer(2 * S, TW, t, Start, TimeWait),
        change(2 * S, 1, t, FinWait2, Close),
        change(3 * S, 2, reversed(t), LastAck, Close),
    ]);
    steps.extend(model.finish(4 * S));
    let ends: Vec<_> = steps.iter().filter_map(|s| s.end.map(|e| e.kind)).collect();
    assert_eq!(ends, [CloseKind::LocalFirst, CloseKind::PeerFirst]);
}

#[test]
fn a_repeated_state_is_not_a_transition() {
    let t = tuple(T0, 80);
    let mut events = connect(1, t, 7);
    events.push(change_by(S, 1, t, Established, FinWait1, 7));
    events.push(change_by(S + MS, 1, t, FinWait1, FinWait1, 7));
    events.push(change(S + 3 * MS, 1, t, FinWait1, FinWait2));
    let (_, steps) = run(&events);
    assert_eq!(
        shown(&steps[2..]),
        [
            "1 p7 ESTABLISHED->FIN_WAIT1 999ms",
            "1 p7 FIN_WAIT1->FIN_WAIT2 3ms"
        ]
    );
}

/// The kernel did not hand a client's closing transitions to eBPF (seen on 6.18 for softirq
/// work that interrupted PID 1): its socket address then starts a new connection. The old
/// life's end is counted as not seen, and the new life is timed from its own start.
#[test]
fn a_new_life_at_an_open_address_counts_the_end_not_seen() {
    let (t, u) = (tuple(40010, 80), tuple(40011, 80));
    let mut events = connect(1, t, 7);
    events.push(change_by(S, 1, t, Established, FinWait1, 7));
    // FIN_WAIT1 -> FIN_WAIT2 -> CLOSE never arrive; the address is reused.
    events.push(change_by(2 * S, 1, u, Close, SynSent, 7));
    events.push(change(2 * S + MS, 1, u, SynSent, Established));
    let (model, steps) = run(&events);
    assert_eq!(
        shown(&steps)[3..],
        ["1 p7 CLOSE->SYN_SENT -", "1 p7 SYN_SENT->ESTABLISHED 1ms"]
    );
    let anomalies = model.anomalies();
    assert_eq!((anomalies.ends_not_seen, anomalies.gaps()), (1, 1));
    // A closed life leaves nothing behind: reusing its address is no gap.
    let mut closed = connect(2, t, 7);
    closed.push(change_by(S, 2, t, Established, Close, 7));
    closed.extend(connect(2, u, 7));
    assert_eq!(run(&closed).0.anomalies(), Anomalies::default());
}
