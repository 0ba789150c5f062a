//! Half-open connections: a request socket's end gives SYN_RECV its meaning (SYN to final ACK);
//! a child's own microseconds in SYN_RECV are never a SYN_RECV duration.
use super::*;
use crate::model::half_open::CHILD_GRACE_NS;

fn request_end(ts: u64, req: u64, t: Tuple, start_ns: Option<u64>, how: RequestEnd) -> Event {
    let kind = EventKind::RequestEnd {
        start_ns,
        retransmits: 1,
        how,
    };
    event(ts, req, t, 0, kind)
}

fn listener() -> Event {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    change_by(0, 10, Tuple::new(any, 80, any, 0), Close, Listen, 5)
}

#[test]
fn a_completed_handshake_is_timed_from_the_syn_to_the_final_ack() {
    let child = reversed(tuple(40010, 80));
    let (_, steps) = run(&[
        listener(),
        change(S + 300 * MS, 11, child, Listen, SynRecv),
        request_end(S + 300 * MS + 1, 99, child, Some(S), RequestEnd::Unlinked),
        change(S + 300 * MS + 5, 11, child, SynRecv, Established),
    ]);
    let expected = [
        "10 p5 CLOSE->LISTEN -",
        "11 p5 LISTEN->SYN_RECV -",
        "11 p5 SYN_RECV->ESTABLISHED 300000005ns",
    ];
    assert_eq!(shown(&steps), expected);
}

/// Linux 6.1 reports a child's `LISTEN -> SYN_RECV` before it has its ports and peer
/// address: the child is matched at its next transition.
#[test]
fn a_child_reported_before_its_tuple_is_set_is_still_matched() {
    let child = reversed(tuple(40013, 80));
    let unset = Tuple::new(child.local, 80, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let (_, steps) = run(&[
        listener(),
        change(S + 300 * MS, 11, unset, Listen, SynRecv),
        request_end(S + 300 * MS + 1, 99, child, Some(S), RequestEnd::Unlinked),
        change(S + 300 * MS + 5, 11, child, SynRecv, Established),
    ]);
    assert_eq!(show(&steps[2]), "11 p5 SYN_RECV->ESTABLISHED 300000005ns");
    assert_eq!(steps.len(), 3);
}

#[test]
fn without_its_request_socket_a_child_has_no_syn_recv_duration() {
    let child = reversed(tuple(40011, 80));
    let (_, steps) = run(&[
        listener(),
        change(S, 11, child, Listen, SynRecv),
        change(S + 5_000, 11, child, SynRecv, Established),
    ]);
    assert_eq!(
        show(&steps[2]),
        "11 p5 SYN_RECV->ESTABLISHED - StartNotSeen"
    );
    // Nor when the request socket's start is unknown (the kernel kept none).
    let (_, steps) = run(&[
        listener(),
        change(S, 11, child, Listen, SynRecv),
        request_end(S + 1, 99, child, None, RequestEnd::Unlinked),
        change(S + 5_000, 11, child, SynRecv, Established),
    ]);
    assert_eq!(steps.len(), 3);
    assert_eq!(
        show(&steps[2]),
        "11 p5 SYN_RECV->ESTABLISHED - StartNotSeen"
    );
}

#[test]
fn an_unanswered_half_open_ends_as_a_handshake_not_completed_of_the_listener() {
    let peer = reversed(tuple(40012, 80));
    // The unlinked one waits for a child: none came within the grace, which the next event
    // (6 s) makes certain.
    let (_, steps) = run(&[
        listener(),
        request_end(3 * S + 7, 99, peer, Some(S), RequestEnd::Expired),
        request_end(4 * S, 98, peer, Some(3 * S), RequestEnd::Unlinked),
        request_end(6 * S, 97, peer, None, RequestEnd::Expired),
    ]);
    let expected = [
        "10 p5 CLOSE->LISTEN -",
        "99 p5 SYN_RECV->CLOSE 2000000007ns SynAckUnanswered [HandshakeIncomplete]",
        "98 p5 SYN_RECV->CLOSE 1000ms RequestRemoved [HandshakeIncomplete]",
        "97 p5 SYN_RECV->CLOSE - StartNotSeen [HandshakeIncomplete]",
    ];
    assert_eq!(shown(&steps), expected);
    let end = steps[1].end.expect("an end");
    assert_eq!((end.role, end.service.port), (Role::Server, 80));
    // Within the grace nothing is said yet; after it, the removal.
    let (mut model, _) = run(&[
        listener(),
        request_end(4 * S, 98, peer, Some(3 * S), RequestEnd::Unlinked),
    ]);
    assert!(model.finish(4 * S + CHILD_GRACE_NS).is_empty());
    assert_eq!(model.finish(4 * S + CHILD_GRACE_NS + 1).len(), 1);
}

#[test]
fn unlinked_request_sockets_waiting_for_a_child_are_bounded() {
    let mut model = Model::with_max_sockets(16);
    let cap = model.limits().listeners.max(2);
    let mut ends = 0;
    for i in 0..(10 * cap as u64) {
        let peer = reversed(tuple(1000 + i as u16, 80));
        let ev = request_end(i, 1000 + i, peer, Some(0), RequestEnd::Unlinked);
        ends += model.apply(&ev).len();
        assert!(model.half_opens.len() <= cap, "{}", model.half_opens.len());
    }
    // Released early, never lost.
    ends += model.finish(u64::MAX / 2).len();
    assert_eq!(ends, 10 * cap);
}

/// Two CPUs each took a segment completing one handshake (the final ACK, the first data):
/// each made a child; the one hashed second was closed at once, flagged by the kernel. Seen
/// before or after the request socket's end, it neither takes that end nor counts: the first
/// child is timed from the SYN, and no connection ended.
#[test]
fn a_second_child_of_one_handshake_is_no_connection_and_leaves_the_request_to_the_first() {
    let child = reversed(tuple(40014, 80));
    let lost = |ts| event(ts, 12, child, 0, EventKind::ChildLost);
    let end = request_end(S + 11 * MS, 99, child, Some(S), RequestEnd::Unlinked);
    for lost_first in [false, true] {
        let mut events = vec![
            listener(),
            change(S + 10 * MS, 11, child, Listen, SynRecv),
            change(S + 10 * MS + 1, 12, child, Listen, SynRecv),
        ];
        match lost_first {
            true => events.extend([lost(S + 11 * MS - 1), end.clone()]),
            false => events.extend([end.clone(), lost(S + 11 * MS + 1)]),
        }
        events.push(change(S + 12 * MS, 11, child, SynRecv, Established));
        let (mut model, steps) = run(&events);
        let mut shown = shown(&steps);
        shown.sort();
        let expected = [
            "10 p5 CLOSE->LISTEN -",
            "11 p5 LISTEN->SYN_RECV -",
            "11 p5 SYN_RECV->ESTABLISHED 12ms",
            "12 p5 LISTEN->SYN_RECV -",
            "12 p5 SYN_RECV->CLOSE - ChildLost",
        ];
        assert_eq!(shown, expected, "lost child first: {lost_first}");
        assert!(steps.iter().all(|s| s.end.is_none()));
        assert_eq!(model.half_opens.len(), 0);
        assert!(model.finish(u64::MAX / 2).is_empty());
        assert!(
            ages(&model, 2 * S)
                .iter()
                .all(|&(state, _)| state != SynRecv)
        );
    }
}

/// The request socket's timer expired after the final ACK unlinked it, before that CPU
/// deleted the timer: its end was recorded at the expiry, on the timer's CPU, and the kernel
/// side records no second one when the re-armed timer is deleted. The child, whose start the
/// kernel then could not hand over, goes one by one (`Followed` under aggregation) and is
/// timed from the SYN; an end recorded twice all the same is one end.
#[test]
fn a_request_socket_that_expires_after_its_unlink_ends_once_and_times_its_child() {
    let child = reversed(tuple(40015, 80));
    let end = request_end(S + 999 * MS, 99, child, Some(S), RequestEnd::Unlinked);
    let followed = EventKind::Followed {
        old: SynRecv,
        new: Established,
    };
    for twice in [false, true] {
        let mut events = vec![
            listener(),
            change(S + 999 * MS - 1, 11, child, Listen, SynRecv),
        ];
        events.push(end.clone());
        if twice {
            events.push(request_end(
                S + 1000 * MS,
                99,
                child,
                Some(S),
                RequestEnd::Unlinked,
            ));
        }
        events.push(event(S + 1000 * MS + 1, 11, child, 0, followed));
        let (mut model, steps) = run(&events);
        assert_eq!(
            show(steps.last().unwrap()),
            "11 p5 SYN_RECV->ESTABLISHED 1000000001ns",
            "twice: {twice}"
        );
        assert_eq!(steps.len(), 3, "twice: {twice}");
        assert!(model.finish(u64::MAX / 2).is_empty(), "twice: {twice}");
    }
}
