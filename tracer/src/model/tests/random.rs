//! Random event orders: no panic, no duration outside the run or across two lives.
use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn random_sequences_keep_durations_inside_lives(input in prop::collection::vec(arb_event(), 1..80)) {
        run_checked(Model::new(), &input)?;
    }

    /// A table of one socket and one timewait evicts at nearly every event: still no duration
    /// outside a life, and a full socket's duration is one the unbounded model gives too
    /// (evicting only forgets). Not for `* -> CLOSE`: whether a timewait continues the state
    /// depends on the timewait table, which in random orders can be stale either way.
    #[test]
    fn random_sequences_with_a_tiny_table_only_lose_durations(input in prop::collection::vec(arb_event(), 1..80)) {
        let unbounded = run_checked(Model::new(), &input)?;
        let tiny = run_checked(Model::with_max_sockets(1), &input)?;
        let in_unbounded = |s: &Step| unbounded.iter().any(|u| {
            (u.sk, u.ts_ns, u.from, u.to, u.dwell_ns) == (s.sk, s.ts_ns, s.from, s.to, s.dwell_ns)
        });
        for step in tiny.iter().filter(|s| s.sk < TW && s.to != Close && s.dwell_ns.is_some()) {
            prop_assert!(in_unbounded(step), "{step:?} is not in {unbounded:?}");
        }
    }
}

/// Feeds `input` (gaps and events) with strictly increasing times; checks that no step is
/// outside the run, no duration is negative or crosses a life start at its address, and no
/// socket in progress is older than the run. Returns the steps.
fn run_checked(mut model: Model, input: &[(u64, Event)]) -> Result<Vec<Step>, TestCaseError> {
    let mut ts = S;
    // Timestamps strictly increase, so a life start inside a step's dwell is a crossing.
    let mut life_starts: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut steps = Vec::new();
    for (dt, ev) in input {
        ts += dt;
        let ev = Event {
            ts_ns: ts,
            ..ev.clone()
        };
        if starts_life(&ev) {
            life_starts.entry(ev.sk).or_default().push(ts);
        }
        steps.extend(model.apply(&ev));
    }
    steps.extend(model.finish(ts + GRACE.max(RESET_GRACE_NS) + 1));
    for step in &steps {
        prop_assert!((S..=ts).contains(&step.ts_ns), "{step:?}");
        let Some(dwell) = step.dwell_ns else { continue };
        prop_assert!(dwell <= step.ts_ns - S, "{step:?}");
        let starts = life_starts.get(&step.sk).map_or(&[][..], |v| v);
        let began = step.ts_ns - dwell;
        let crossed = starts
            .iter()
            .find(|&&l| step.sk < TW && began < l && l <= step.ts_ns);
        prop_assert!(
            crossed.is_none(),
            "{step:?} crosses the life started at {crossed:?}"
        );
    }
    let open = model.in_progress(ts);
    prop_assert!(open.iter().all(|p| p.age_ns <= ts - S));
    // Counted in place, the same as counted from the copies.
    let mut counted = [Open::default(); TcpState::ALL.len()];
    for p in &open {
        let o = &mut counted[p.state.index()];
        if o.count == 0 || (p.age_ns, !p.exact) > (o.oldest_ns, !o.oldest_exact) {
            (o.oldest_ns, o.oldest_exact) = (p.age_ns, p.exact);
        }
        o.count += 1;
    }
    prop_assert_eq!(model.open_by_state(ts), counted);
    Ok(steps)
}

/// Random events: full sockets 1..=3, timewaits TW..TW+2, three ports on each side.
fn arb_event() -> impl Strategy<Value = (u64, Event)> {
    let dt = prop_oneof![1u64..10, 1..10 * MS, 1..70 * S];
    let state = prop::sample::select(TcpState::ALL.to_vec());
    let phase = prop::sample::select(vec![Start, Cancel, Expire]);
    let sub = prop::sample::select(vec![TimeWait, FinWait2]);
    let rst = prop::sample::select(vec![EventKind::ResetSent, EventKind::ResetReceived]);
    let port = prop::sample::select(vec![80u16, 40000, 40001]);
    let kind = prop_oneof![
        4 => (state.clone(), state).prop_map(|(old, new)| EventKind::StateChange { old, new }),
        2 => (phase, sub).prop_map(|(phase, substate)| EventKind::TimeWait { phase, substate }),
        1 => rst,
    ];
    let pid = prop_oneof![Just(0u32), 1u32..4];
    (dt, 0u64..3, kind, port.clone(), port, pid).prop_map(|(dt, n, kind, lp, rp, pid)| {
        let timer = matches!(kind, EventKind::TimeWait { .. });
        let sk = if timer { TW + n } else { 1 + n };
        (dt, event(0, sk, tuple(lp, rp), pid, kind))
    })
}

fn starts_life(ev: &Event) -> bool {
    let EventKind::StateChange { old, new } = ev.kind else {
        return false;
    };
    matches!((old, new), (Close, SynSent | Listen) | (Listen, SynRecv))
}
