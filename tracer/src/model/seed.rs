//! Sockets that existed before the trace started (from the attach-time snapshot). Their entry
//! time is unknown except for TIME_WAIT (dated by its timer), so they are "at least this old"
//! (censored): counted as in progress, never put into exact histograms. The live stream takes
//! a seed over the first time it reports that socket, so nothing is counted twice.
// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::{InProgress, Owner, Role, TcpState, Tuple};

/// One pre-existing socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub state: TcpState,
    pub tuple: Tuple,
    pub netns: u32,
    pub owner: Owner,
    pub role: Role,
    /// When it entered `state`: exact for TIME_WAIT, else the snapshot time (a lower bound
    /// of its age).
    pub entered_ns: u64,
    pub exact: bool,
}

/// Seeds waiting for the live stream, by (netns, tuple).
#[derive(Default)]
pub struct Seeds {
    by_tuple: HashMap<(u32, Tuple), Seed>,
}

impl Seeds {
    pub fn insert(&mut self, seed: Seed) {
        self.by_tuple.insert((seed.netns, seed.tuple), seed);
    }

    /// The seed for a socket the live stream just reported, removed: the stream owns it now.
    pub fn take(&mut self, netns: u32, tuple: &Tuple) -> Option<Seed> {
        if self.by_tuple.is_empty() {
            return None;
        }
        self.by_tuple.remove(&(netns, *tuple))
    }

    pub fn in_progress(&self, now_ns: u64) -> impl Iterator<Item = InProgress> + '_ {
        self.by_tuple.values().map(move |s| InProgress {
            state: s.state,
            age_ns: now_ns.saturating_sub(s.entered_ns),
            tuple: s.tuple,
            exact: s.exact,
            role: s.role,
            owner: s.owner.clone(),
        })
    }
}
