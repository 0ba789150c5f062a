//! Turns a snapshot into the model's seeds: the sockets that existed at attach time.
use super::{Snapshot, summary::Roles};
use crate::model::{Role, Seed, TcpState};

/// One seed per socket of the snapshot. TIME_WAIT carries its exact entry time (from its
/// timer); every other state only "at least since the snapshot".
pub fn seeds(snap: &Snapshot) -> Vec<Seed> {
    let roles = Roles::new(snap);
    snap.sockets
        .iter()
        .map(|sock| {
            let role = match sock.state {
                TcpState::Listen => Role::Listener,
                _ => roles.of(sock).0,
            };
            Seed {
                state: sock.state,
                tuple: sock.tuple,
                netns: snap.netns,
                owner: sock.owner.unwrap_or_default(),
                role,
                entered_ns: snap.taken_ns.saturating_sub(sock.age.ns()),
                exact: sock.age.is_exact(),
            }
        })
        .collect()
}
