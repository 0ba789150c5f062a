//! Lives of full sockets, keyed by kernel socket address. An address is reused by the allocator,
//! so a life starts at `CLOSE -> SYN_SENT`, `CLOSE -> LISTEN` or `LISTEN -> SYN_RECV` and no
//! duration or close classification ever spans two lives.
//!
//! Every table here is bounded ([`Limits`]). A life evicted from a full table is simply gone:
//! its next transition finds nothing, so like one of a socket that predates the trace it gets
//! no duration (`StartNotSeen`), and a new life at that address starts afresh.
use super::{
    Anomalies, Event, Held, InProgress, Note, Step, TcpState, Tuple,
    close::{CloseKind, End, Role, Service},
    life::{Life, LifeRow},
    limits::Limits,
    listeners::Listeners,
    owners::{OwnerId, OwnerKey, Owners},
    pending::PendingEnds,
    seed::{Seed, Seeds},
    table::family::Rows,
};

/// What the timewait side knows about a full socket that is handing over to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    None,
    /// A timewait socket in FIN_WAIT2 substate continues this socket's FIN_WAIT2.
    ContinuesFinWait2,
    /// A timewait socket in TIME_WAIT took over.
    TimeWait,
    /// None was found, but one may have been evicted: a FIN_WAIT2 may go on in it.
    Unsure,
}

/// A closing full socket, as the timewait side asks about it when its timer starts.
pub struct Closing {
    pub state: TcpState,
    pub entered_ns: u64,
    pub owner: OwnerId,
    pub role: Role,
}

pub struct Sockets {
    /// Lives by address; those in FIN_WAIT1, FIN_WAIT2 or CLOSING also by (netns, tuple), so
    /// the timewait socket that takes one over finds it in O(1).
    lives: Rows<LifeRow>,
    listeners: Listeners,
    /// Ends that wait for a `tcp_send_reset` that follows the CLOSE it belongs to.
    pending: PendingEnds,
    /// Sockets from the attach-time snapshot not yet seen live.
    seeds: Seeds,
}

fn new_life_role(old: TcpState, new: TcpState) -> Option<Role> {
    use TcpState::*;
    match (old, new) {
        (Close, SynSent) => Some(Role::Client),
        (Close, Listen) => Some(Role::Listener),
        (Listen, SynRecv) => Some(Role::Server),
        _ => None,
    }
}

/// Transitions that only happen inside a system call of the owning process
/// (connect, listen, close, shutdown), so the current task is the owner.
fn in_owner_context(old: TcpState, new: TcpState) -> bool {
    use TcpState::*;
    matches!(
        (old, new),
        (Close, SynSent) | (Close, Listen) | (Established, FinWait1) | (CloseWait, LastAck)
    )
}

impl Sockets {
    pub fn new(limits: &Limits) -> Sockets {
        Sockets {
            lives: Rows::new(limits.sockets),
            listeners: Listeners::new(limits.listeners),
            pending: PendingEnds::new(limits.pending_ends),
            seeds: Seeds::new(limits.seeds),
        }
    }

    pub fn change(
        &mut self,
        ev: &Event,
        (old, new): (TcpState, TcpState),
        handover: Handover,
        (anomalies, owners): (&mut Anomalies, &mut Owners),
        out: &mut Vec<Step>,
    ) {
        // A new life at this address settles the end of the previous one: no RST can follow.
        if new_life_role(old, new).is_some() {
            if self.lives.get(ev.sk).is_some() {
                anomalies.ends_not_seen += 1;
            }
            out.extend(self.pending.take(ev.sk));
        }
        let known = self.continue_life(ev, old, new, anomalies);
        let dwell_ns = match (known, handover) {
            (_, Handover::ContinuesFinWait2) if new == TcpState::Close => None,
            (_, Handover::Unsure) if (old, new) == (TcpState::FinWait2, TcpState::Close) => None,
            (Some((_, dwell)), _) => Some(dwell),
            (None, _) => None,
        };
        let mut life = match known {
            Some((life, _)) => life,
            None => self.fresh_life(ev, old, new, owners),
        };
        // Softirq events carry whatever task was interrupted: only trust syscall transitions.
        if in_owner_context(old, new) {
            life.owner = owners.intern(OwnerKey::of(ev));
        }
        if let Some(kind) = CloseKind::from_first_close(old, new)
            && life.first_close.is_none()
        {
            life.first_close = Some(kind);
        }
        if (old, new) == (TcpState::FinWait1, TcpState::Closing) {
            life.first_close = Some(CloseKind::Simultaneous);
        }
        let taken_over = matches!(handover, Handover::ContinuesFinWait2 | Handover::TimeWait);
        let note = if new == TcpState::Close && taken_over {
            Some(Note::TimewaitTakesOver)
        } else if dwell_ns.is_none() && new_life_role(old, new).is_none() {
            Some(Note::StartNotSeen)
        } else {
            None
        };
        let mut step = Step {
            ts_ns: ev.ts_ns,
            sk: ev.sk,
            tuple: ev.tuple,
            netns: ev.netns,
            owner: owners.owner(life.owner),
            from: old,
            to: new,
            dwell_ns,
            note,
            end: None,
        };
        self.index_listener(ev, old, new, owners.key(life.owner));
        if new != TcpState::Close {
            // Whatever changes it here is no longer in the kernel's hands.
            life.in_kernel = false;
            life.state = new;
            life.entered_ns = ev.ts_ns;
            life.tuple = ev.tuple;
            life.netns = ev.netns;
            self.lives.put(life.row());
            out.push(step);
            return;
        }
        self.lives.remove(ev.sk);
        if life.role == Role::Listener {
            out.push(step);
            return;
        }
        let service = self.service(&life, ev);
        let end = |kind| End {
            kind,
            role: life.role,
            service,
            timewait: taken_over,
        };
        let kind = life.first_close.or(match old {
            TcpState::SynSent => Some(CloseKind::ConnectFailed),
            TcpState::SynRecv => Some(CloseKind::HandshakeIncomplete),
            _ if life.rst_received => Some(CloseKind::RstReceived),
            _ if life.rst_sent => Some(CloseKind::RstSent),
            // First seen mid-close: the state it closes from still tells who sent the FIN.
            TcpState::FinWait1 | TcpState::FinWait2 => Some(CloseKind::LocalFirst),
            TcpState::Closing => Some(CloseKind::Simultaneous),
            TcpState::CloseWait | TcpState::LastAck => Some(CloseKind::PeerFirst),
            _ => None,
        });
        match kind {
            Some(kind) => {
                step.end = Some(end(kind));
                out.push(step);
            }
            // An abort reports CLOSE before its RST: wait for it (or its absence).
            None => {
                step.end = Some(end(CloseKind::Aborted));
                self.pending.hold(step, out);
            }
        }
    }

    /// The life this transition continues, with the time spent in `old`; `None` when the
    /// transition starts a new life or does not follow from what was known (an evicted life
    /// is not known at all). The life stays stored until the transition is done with it.
    fn continue_life(
        &mut self,
        ev: &Event,
        old: TcpState,
        new: TcpState,
        anomalies: &mut Anomalies,
    ) -> Option<(Life, u64)> {
        if new_life_role(old, new).is_some() {
            return None;
        }
        let life = Life::from_row(self.lives.get(ev.sk)?);
        if life.state != old {
            anomalies.state_mismatch += 1;
            return None;
        }
        Some((life, ev.ts_ns.saturating_sub(life.entered_ns)))
    }

    fn fresh_life(
        &mut self,
        ev: &Event,
        old: TcpState,
        new: TcpState,
        owners: &mut Owners,
    ) -> Life {
        let mut life = Life {
            sk: ev.sk,
            netns: ev.netns,
            tuple: ev.tuple,
            state: old,
            entered_ns: ev.ts_ns,
            owner: 0,
            role: Role::Unknown,
            first_close: None,
            rst_received: false,
            rst_sent: false,
            in_kernel: false,
        };
        if new_life_role(old, new).is_none()
            && let Some(seed) = self.seeds.take(ev.netns, &ev.tuple)
        {
            // A socket from the snapshot, now seen live: keep what the snapshot knew of it.
            life.owner = seed.owner;
            life.role = seed.role;
            return life;
        }
        life.role = new_life_role(old, new).unwrap_or(Role::Unknown);
        if life.role == Role::Server
            && let Some(owner) = self.listeners.owner((ev.netns, ev.tuple.local_port))
        {
            life.owner = owners.intern(owner);
        }
        life
    }

    /// The owner of the listener on this port (if known) and whether one is known.
    pub fn listener(&mut self, netns: u32, port: u16) -> (Option<OwnerKey>, bool) {
        let owner = self.listeners.owner((netns, port));
        (owner, self.listeners.contains((netns, port)))
    }

    fn service(&self, life: &Life, ev: &Event) -> Service {
        let listens = self.listeners.contains((ev.netns, ev.tuple.local_port));
        Service::of(life.role, &ev.tuple, listens)
    }

    fn index_listener(&mut self, ev: &Event, old: TcpState, new: TcpState, owner: OwnerKey) {
        let key = (ev.netns, ev.tuple.local_port);
        if new == TcpState::Listen {
            self.listeners.insert(key, owner);
        } else if old == TcpState::Listen && new == TcpState::Close {
            self.listeners.remove(key);
        }
    }

    /// The kernel follows `sk`'s life from now on (kernel aggregation): it is no longer counted
    /// among the sockets in progress here.
    pub fn followed_in_kernel(&mut self, sk: u64) {
        if let Some(row) = self.lives.get(sk) {
            let mut life = Life::from_row(row);
            life.in_kernel = true;
            self.lives.put(life.row());
        }
    }

    /// Forgets `sk`'s life, which was none (a child that never took its request socket over);
    /// its owner, if it was followed.
    pub fn forget(&mut self, sk: u64) -> Option<OwnerId> {
        let owner = Life::from_row(self.lives.get(sk)?).owner;
        self.lives.remove(sk);
        Some(owner)
    }

    /// The end of `sk`'s previous life held for its RST, released now: a new life began there.
    pub fn take_held_end(&mut self, sk: u64) -> Option<Step> {
        self.pending.take(sk)
    }

    /// Whether the model follows `sk`'s life itself (not in the kernel's hands).
    pub fn holds(&self, sk: u64) -> bool {
        self.lives
            .get(sk)
            .is_some_and(|row| !Life::from_row(row).in_kernel)
    }

    /// The end of `sk` held for its RST keeps no duration (kernel aggregation counted it).
    pub fn untime_held_end(&mut self, sk: u64) {
        self.pending.untime(sk);
    }

    /// `tcp_receive_reset` comes before the CLOSE it causes; `tcp_send_reset` after it
    /// (an abort) or before it (a reset while the socket lives on).
    pub fn reset(&mut self, ev: &Event, sent: bool) -> Option<Step> {
        if sent && let Some(step) = self.pending.reset_sent(ev) {
            return Some(step);
        }
        if let Some(row) = self.lives.get(ev.sk) {
            let mut life = Life::from_row(row);
            if sent {
                life.rst_sent = true;
            } else {
                life.rst_received = true;
            }
            self.lives.put(life.row());
        }
        None
    }

    /// Ends held for an RST that did not come within the grace: aborted without one.
    pub fn settle(&mut self, now_ns: u64, out: &mut Vec<Step>) {
        self.pending.settle(now_ns, out);
    }

    /// The closing full socket with this tuple, if one is followed.
    pub fn closing(&self, tuple: &Tuple, netns: u32) -> Option<Closing> {
        let life = Life::from_row(self.lives.latest(netns, tuple)?);
        Some(Closing {
            state: life.state,
            entered_ns: life.entered_ns,
            owner: life.owner,
            role: life.role,
        })
    }

    pub fn in_progress<'a>(
        &'a self,
        now_ns: u64,
        owners: &'a Owners,
    ) -> impl Iterator<Item = InProgress> + 'a {
        self.lives
            .iter()
            .map(Life::from_row)
            .filter(|l| !l.in_kernel)
            .map(move |l| InProgress {
                state: l.state,
                age_ns: now_ns.saturating_sub(l.entered_ns),
                tuple: l.tuple,
                exact: true,
                role: l.role,
                owner: owners.owner(l.owner),
            })
            .chain(self.seeds.in_progress(now_ns, owners))
    }

    /// What each socket in progress holds, without copying its owner out.
    pub fn held(&self) -> impl Iterator<Item = Held> + '_ {
        let lives = self
            .lives
            .iter()
            .map(Life::from_row)
            .filter(|l| !l.in_kernel);
        lives
            .map(|l| Held {
                state: l.state,
                tuple: l.tuple,
                role: l.role,
                owner: l.owner,
            })
            .chain(self.seeds.held())
    }

    /// (state, age, exact) of each socket in progress, without building an [`InProgress`].
    pub fn ages(&self, now_ns: u64) -> impl Iterator<Item = (TcpState, u64, bool)> + '_ {
        let lives = self
            .lives
            .iter()
            .map(Life::from_row)
            .filter(|l| !l.in_kernel);
        lives
            .map(move |l| (l.state, now_ns.saturating_sub(l.entered_ns), true))
            .chain(self.seeds.ages(now_ns))
    }

    /// A pre-existing socket: listeners hand their owner to children at once; the others
    /// wait for the live stream.
    pub fn seed(&mut self, seed: Seed, owners: &mut Owners) {
        if seed.state == TcpState::Listen {
            let key = (seed.netns, seed.tuple.local_port);
            self.listeners
                .insert(key, OwnerKey::from_owner(&seed.owner));
        }
        self.seeds.insert(seed, owners);
    }

    /// Full sockets followed, and snapshot sockets not yet seen live.
    pub fn tracked(&self) -> usize {
        self.lives.len() + self.seeds.len()
    }

    /// Evictions of (full sockets, listeners, seeds, pending ends).
    pub fn evicted(&self) -> (u64, u64, u64, u64) {
        let (lives, listeners) = (self.lives.evicted(), self.listeners.evicted());
        (
            lives,
            listeners,
            self.seeds.evicted(),
            self.pending.evicted(),
        )
    }

    /// Every owner id held, to mark or renumber them.
    pub fn owners_mut(&mut self, f: &mut dyn FnMut(&mut u32)) {
        self.lives.owners_mut(f);
        self.seeds.owners_mut(f);
    }
}
