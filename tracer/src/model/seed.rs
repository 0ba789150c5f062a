//! Sockets that existed before the trace started (from the attach-time snapshot). Their entry
//! time is unknown except for TIME_WAIT (dated by its timer), so they are "at least this old"
//! (censored): counted as in progress, never put into exact histograms. The live stream takes
//! a seed over the first time it reports that socket, so nothing is counted twice.
//!
//! Kept in a bounded table like live sockets (a host may have millions): past the cap the
//! least recently entered seeds are evicted, and those sockets are seen as starting unseen.
use super::{
    Held, InProgress, Owner, Role, TcpState, Tuple,
    bits::{Bits, Field},
    owners::{OwnerId, OwnerKey, Owners},
    table::family::{Keyed, Payload, Rows},
};

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

/// What the live stream takes over from a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub owner: OwnerId,
    pub role: Role,
    pub entered_ns: u64,
    pub exact: bool,
}

const STATE: Field = (0, 4);
const ROLE: Field = (4, 2);
const EXACT: Field = (6, 1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRow {
    entered_ns: u64,
    owner: OwnerId,
    bits: Bits,
}

impl Payload for SeedRow {
    fn touched_ns(&self) -> u64 {
        self.entered_ns
    }

    fn by_tuple(&self) -> bool {
        true
    }

    fn owner_mut(&mut self) -> &mut u32 {
        &mut self.owner
    }
}

/// Seeds waiting for the live stream, found by (netns, tuple). They have no kernel address
/// (sock_diag gives none): each gets a number of its own as its key.
pub struct Seeds {
    rows: Rows<SeedRow>,
    next: u64,
}

impl Seeds {
    pub fn new(cap: usize) -> Seeds {
        Seeds {
            rows: Rows::new(cap),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn evicted(&self) -> u64 {
        self.rows.evicted()
    }

    pub fn insert(&mut self, seed: Seed, owners: &mut Owners) {
        if let Some(old) = self.rows.latest(seed.netns, &seed.tuple) {
            self.rows.remove(old.sk);
        }
        let mut bits = Bits::default();
        bits.set_state(STATE, seed.state);
        bits.set_role(ROLE, seed.role);
        bits.set_flag(EXACT, seed.exact);
        self.next += 1;
        self.rows.put(Keyed {
            sk: self.next,
            netns: seed.netns,
            tuple: seed.tuple,
            data: SeedRow {
                entered_ns: seed.entered_ns,
                owner: owners.intern(OwnerKey::from_owner(&seed.owner)),
                bits,
            },
        });
    }

    /// The seed for a socket the live stream just reported, removed: the stream owns it now.
    pub fn take(&mut self, netns: u32, tuple: &Tuple) -> Option<Taken> {
        if self.rows.is_empty() {
            return None;
        }
        let row = self.rows.latest(netns, tuple)?;
        self.rows.remove(row.sk);
        let bits = row.data.bits;
        Some(Taken {
            owner: row.data.owner,
            role: bits.role(ROLE),
            entered_ns: row.data.entered_ns,
            exact: bits.flag(EXACT),
        })
    }

    pub fn in_progress<'a>(
        &'a self,
        now_ns: u64,
        owners: &'a Owners,
    ) -> impl Iterator<Item = InProgress> + 'a {
        self.rows.iter().map(move |s| InProgress {
            state: s.data.bits.state(STATE),
            age_ns: now_ns.saturating_sub(s.data.entered_ns),
            tuple: s.tuple,
            exact: s.data.bits.flag(EXACT),
            role: s.data.bits.role(ROLE),
            owner: owners.owner(s.data.owner),
        })
    }

    /// What each seed holds, without copying its owner out ([`Held`]).
    pub fn held(&self) -> impl Iterator<Item = Held> + '_ {
        self.rows.iter().map(|s| Held {
            state: s.data.bits.state(STATE),
            tuple: s.tuple,
            role: s.data.bits.role(ROLE),
            owner: s.data.owner,
        })
    }

    /// (state, age, exact) of each seed, without building an [`InProgress`].
    pub fn ages(&self, now_ns: u64) -> impl Iterator<Item = (TcpState, u64, bool)> + '_ {
        self.rows.iter().map(move |s| {
            let age = now_ns.saturating_sub(s.data.entered_ns);
            (s.data.bits.state(STATE), age, s.data.bits.flag(EXACT))
        })
    }

    pub fn owners_mut(&mut self, f: &mut dyn FnMut(&mut u32)) {
        self.rows.owners_mut(f);
    }
}
