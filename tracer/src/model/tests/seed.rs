//! Sockets from the attach-time snapshot: censored until the live stream takes them over,
//! never counted twice, TIME_WAIT dated exactly by its timer.
use super::*;

fn seed(state: TcpState, t: Tuple, entered_ns: u64, exact: bool, pid: u32) -> Seed {
    let owner = Owner {
        pid,
        comm: format!("p{pid}").as_str().into(),
        cgroup_id: 0,
    };
    #[rustfmt::skip]
    let seed = Seed { state, tuple: t, netns: 1, owner, role: Role::Server, entered_ns, exact };
    seed
}

#[test]
fn a_seeded_socket_is_censored_then_taken_over_without_double_counting() {
    let t = tuple(80, T0);
    let mut model = Model::new();
    model.seed([seed(FinWait1, t, 10 * S, false, 42)]);
    let open = model.in_progress(40 * S);
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].state, open[0].age_ns, open[0].exact),
        (FinWait1, 30 * S, false)
    );

    // Softirq pid 0 never replaces what the snapshot knew of the owner.
    let steps = apply_all(&mut model, &[change(50 * S, 9, t, FinWait1, FinWait2)]);
    assert_eq!(shown(&steps), ["9 p42 FIN_WAIT1->FIN_WAIT2 - StartNotSeen"]);
    let open = model.in_progress(51 * S);
    assert_eq!(
        open.len(),
        1,
        "the seed is gone, the live socket remains: {open:?}"
    );
    assert_eq!((open[0].state, open[0].exact), (FinWait2, true));
    let steps = apply_all(&mut model, &[change(51 * S, 9, t, FinWait2, Close)]);
    assert_eq!(
        shown(&steps),
        ["9 p42 FIN_WAIT2->CLOSE 1000ms [LocalFirst]"]
    );
    assert!(model.in_progress(52 * S).is_empty());
}

#[test]
fn a_seeded_time_wait_gets_its_exact_life_when_its_timer_fires() {
    let t = tuple(T0, 80);
    let mut model = Model::new();
    model.seed([seed(TimeWait, t, 5 * S, true, 0)]);
    assert_eq!(ages(&model, 20 * S), [(TimeWait, 15 * S)]);
    let steps = apply_all(
        &mut model,
        &[
            timer(65 * S, TW, t, Cancel, TimeWait),
            timer(65 * S, TW, t, Expire, TimeWait),
        ],
    );
    assert_eq!(shown(&steps), ["100 p0 TIME_WAIT->CLOSE 60000ms Expired"]);
    assert_eq!(model.anomalies().timewait_start_not_seen, 0);
    assert!(model.in_progress(66 * S).is_empty());
}

#[test]
fn a_seeded_listener_names_the_owner_of_new_children() {
    let listener = Tuple::new(tuple(80, 0).local, 80, "0.0.0.0".parse().unwrap(), 0);
    let mut model = Model::new();
    model.seed([seed(Listen, listener, S, false, 7)]);
    let t = tuple(80, T0);
    let steps = apply_all(&mut model, &[change(2 * S, 3, t, Listen, SynRecv)]);
    assert_eq!(shown(&steps), ["3 p7 LISTEN->SYN_RECV -"]);
}
