//! Bounded tables: what a full table evicts is counted, an evicted socket's later transitions
//! give no duration (censored, like a socket that predates the trace), the others keep theirs.
use super::*;

fn counted(sockets: u64, timewaits: u64) -> Evictions {
    Evictions {
        sockets,
        timewaits,
        ..Evictions::default()
    }
}

#[test]
fn a_full_table_evicts_the_least_recently_changed_socket_and_censors_it() {
    let mut model = Model::with_max_sockets(2);
    let t = [tuple(40001, 80), tuple(40002, 80), tuple(40003, 80)];
    for (i, t) in t.iter().enumerate() {
        let events = later(connect(i as u64 + 1, *t, 7), i as u64 * 10 * MS);
        let steps = apply_all(&mut model, &events);
        assert!(steps.iter().all(|s| s.note.is_none()), "{steps:?}");
    }
    // Socket 1 entered ESTABLISHED first: it went.
    assert_eq!(model.evictions(), counted(1, 0));
    assert_eq!(model.tracked(), 2);
    let open = [(Established, S - 21 * MS), (Established, S - 11 * MS)];
    assert_eq!(ages(&model, S), open);
    let mut steps = apply_all(
        &mut model,
        &[
            change(2 * S, 2, t[1], Established, CloseWait),
            change(2 * S, 3, t[2], Established, CloseWait),
            change(3 * S, 1, t[0], Established, Close),
        ],
    );
    steps.extend(model.finish(3 * S + RESET_GRACE_NS + 1));
    let expected = [
        "2 p7 ESTABLISHED->CLOSE_WAIT 1989ms",
        "3 p7 ESTABLISHED->CLOSE_WAIT 1979ms",
        "1 p0 ESTABLISHED->CLOSE - StartNotSeen [Aborted]",
    ];
    assert_eq!(shown(&steps), expected);
    // Two ESTABLISHED durations, and one whose start was not seen (the evicted socket).
    let ended: Vec<_> = steps.iter().filter(|s| s.from == Established).collect();
    let timed = ended.iter().filter(|s| s.dwell_ns.is_some()).count();
    assert_eq!((timed, ended.len() - timed), (2, 1));
    // A new life at the evicted address is followed exactly again.
    let next = later(connect(1, tuple(40004, 443), 8), 4 * S);
    let steps = apply_all(&mut model, &next);
    assert_eq!(show(&steps[1]), "1 p8 SYN_SENT->ESTABLISHED 1ms");
    assert_eq!(model.evictions(), counted(2, 0));
}

/// Timewaits TW, TW+1, TW+2 (tuples 50000.., server closing first) start at 1 s, 2 s, 3 s.
fn three_timewaits(model: &mut Model) -> [Tuple; 3] {
    let t = [tuple(80, 50000), tuple(80, 50001), tuple(80, 50002)];
    for (i, t) in t.iter().enumerate() {
        let at = (i as u64 + 1) * S;
        let steps = apply_all(model, &[timer(at, TW + i as u64, *t, Start, TimeWait)]);
        assert_eq!(steps.len(), 1);
    }
    t
}

#[test]
fn an_evicted_timewait_gives_no_duration_even_when_re_armed() {
    let mut model = Model::with_max_sockets(4); // 2 timewaits
    let t = three_timewaits(&mut model);
    assert_eq!(model.evictions(), counted(0, 1)); // TW (the oldest) went
    // Re-armed (a retransmitted FIN) after its eviction: not a new timewait, just unknown.
    let rearm = apply_all(&mut model, &[timer(30 * S, TW, t[0], Start, TimeWait)]);
    assert_eq!(shown(&rearm), ["100 p0 FIN_WAIT2->TIME_WAIT -"]);
    assert_eq!(model.evictions(), counted(0, 2)); // TW+1 went to make room
    let ends = apply_all(
        &mut model,
        &[
            timer(62 * S, TW + 1, t[1], Cancel, TimeWait),
            timer(62 * S, TW + 1, t[1], Expire, TimeWait),
            timer(63 * S, TW + 2, t[2], Cancel, TimeWait),
            timer(63 * S, TW + 2, t[2], Expire, TimeWait),
            timer(90 * S, TW, t[0], Cancel, TimeWait),
            timer(90 * S, TW, t[0], Expire, TimeWait),
        ],
    );
    let expected = [
        "101 p0 TIME_WAIT->CLOSE - StartNotSeen",
        "102 p0 TIME_WAIT->CLOSE 60000ms Expired",
        "100 p0 TIME_WAIT->CLOSE - StartNotSeen",
    ];
    assert_eq!(shown(&ends), expected);
    assert_eq!(model.anomalies().timewait_start_not_seen, 1);
    // Long after the last eviction, a timewait at an unknown address is new again: exact.
    let t4 = tuple(80, 50004);
    let late = [
        timer(300 * S, TW + 4, t4, Start, TimeWait),
        timer(360 * S, TW + 4, t4, Cancel, TimeWait),
        timer(360 * S, TW + 4, t4, Expire, TimeWait),
    ];
    let late = apply_all(&mut model, &late);
    assert_eq!(show(&late[1]), "104 p0 TIME_WAIT->CLOSE 60000ms Expired");
}

#[test]
fn a_fin_wait2_whose_socket_or_timewait_was_evicted_gives_no_partial_duration() {
    // The full socket was evicted: its timewait cannot know when FIN_WAIT2 began.
    let mut model = Model::with_max_sockets(2);
    let t = tuple(T0, 80);
    apply_all(&mut model, &client_until_fin_wait2(1, t));
    for sk in [2, 3] {
        apply_all(
            &mut model,
            &later(connect(sk, tuple(40100 + sk as u16, 80), 9), 2 * S),
        );
    }
    assert_eq!(model.evictions(), counted(1, 0));
    let steps = apply_all(
        &mut model,
        &[
            timer(3 * S, TW, t, Start, FinWait2),
            change(3 * S, 1, t, FinWait2, Close),
            timer(63 * S, TW, t, Cancel, FinWait2),
            timer(63 * S, TW, t, Expire, FinWait2),
        ],
    );
    let expected = [
        "1 p0 FIN_WAIT2->CLOSE - TimewaitTakesOver [LocalFirst]",
        "100 p0 FIN_WAIT2->CLOSE - StartNotSeen",
    ];
    assert_eq!(shown(&steps), expected);
    // The timewait that took it over was evicted: the full socket's FIN_WAIT2 may go on in it.
    let mut model = Model::with_max_sockets(2); // 1 timewait
    apply_all(&mut model, &client_until_fin_wait2(1, t));
    let steps = apply_all(
        &mut model,
        &[
            timer(HANDOVER, TW, t, Start, FinWait2),
            timer(HANDOVER + 1, TW + 1, tuple(80, 50000), Start, TimeWait),
            change(HANDOVER + 2, 1, t, FinWait2, Close),
        ],
    );
    assert_eq!(model.evictions(), counted(0, 1));
    assert_eq!(
        show(&steps[1]),
        "1 p7 FIN_WAIT2->CLOSE - StartNotSeen [LocalFirst]"
    );
}

#[test]
fn listeners_seeds_and_held_ends_are_bounded_and_counted() {
    let mut model = Model::with_max_sockets(2); // 16 listeners, 2 seeds, 16 held ends
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    for port in 1..=17 {
        let listen = Tuple::new(any, port, any, 0);
        apply_all(
            &mut model,
            &[change_by(
                u64::from(port),
                1000 + u64::from(port),
                listen,
                Close,
                Listen,
                5,
            )],
        );
    }
    let child = |port| change(S, 2000 + u64::from(port), tuple(port, T0), Listen, SynRecv);
    let children = apply_all(&mut model, &[child(1), child(17)]);
    // Port 1 listened first and had no child since: its owner was forgotten, not port 17's.
    assert_eq!(
        shown(&children),
        ["2001 p0 LISTEN->SYN_RECV -", "2017 p5 LISTEN->SYN_RECV -"]
    );
    let owner = Owner {
        pid: 3,
        comm: "p3".into(),
        cgroup_id: 0,
    };
    model.seed((0..3).map(|i| Seed {
        state: Established,
        tuple: tuple(41000 + i, 80),
        netns: 1,
        owner,
        role: Role::Client,
        entered_ns: S + u64::from(i),
        exact: false,
    }));
    let aborts: Vec<_> = (0..17)
        .map(|i| {
            change(
                2 * S,
                3000 + i,
                tuple(42000 + i as u16, 80),
                Established,
                Close,
            )
        })
        .collect();
    let released = apply_all(&mut model, &aborts);
    let early: Vec<_> = released
        .iter()
        .filter(|s| s.end.is_some())
        .map(|s| s.sk)
        .collect();
    assert_eq!(early, [3000], "the oldest held end is released at once");
    let e = model.evictions();
    assert_eq!(
        (e.listeners, e.seeds, e.pending_ends, e.total()),
        (1, 1, 1, 3 + e.sockets)
    );
}

#[test]
fn owners_of_closed_sockets_are_forgotten_and_the_others_kept() {
    let mut model = Model::new();
    let kept = tuple(40000, 443);
    apply_all(&mut model, &connect(1, kept, 42));
    for i in 0..10_000u64 {
        let (sk, t, pid) = (
            10 + i,
            tuple(41000 + (i % 20_000) as u16, 80),
            100 + i as u32,
        );
        apply_all(
            &mut model,
            &[
                change_by(2 * S + i * MS, sk, t, Close, SynSent, pid),
                change(2 * S + i * MS + 1, sk, t, SynSent, Close),
            ],
        );
    }
    assert!(
        model.owners.len() <= 4097,
        "{} owners kept",
        model.owners.len()
    );
    let steps = apply_all(
        &mut model,
        &[change(100 * S, 1, kept, Established, CloseWait)],
    );
    assert_eq!(steps[0].owner.pid, 42);
    assert_eq!(steps[0].owner.comm, "p42");
}
