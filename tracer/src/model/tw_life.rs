//! A timewait socket's life as the model reasons about it ([`TimeWait`]), and as a table keeps
//! it ([`TimeWaitRow`]: 32 bytes besides the address and tuple).
use super::{
    Role, TcpState, Tuple,
    bits::{Bits, Field},
    owners::OwnerId,
    table::family::{Keyed, Payload},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    pub sk: u64,
    pub netns: u32,
    pub tuple: Tuple,
    pub substate: TcpState,
    /// When the timewait socket's timer first started.
    pub started_ns: u64,
    /// When the current substate began (for FIN_WAIT2: when the full socket entered it).
    pub since_ns: u64,
    /// A cancel not yet known to be an early end: its time and the substate it reported.
    pub cancel: Option<(u64, TcpState)>,
    pub owner: OwnerId,
    pub role: Role,
    pub handed_over: bool,
    /// `started_ns` is the timewait's real start (false: perhaps a re-arm of one not followed).
    pub start_seen: bool,
    /// `since_ns` is when the current substate really began; when false, leaving the
    /// substate gives no duration.
    pub since_known: bool,
}

const SUBSTATE: Field = (0, 4);
const CANCEL_SUBSTATE: Field = (4, 4);
const CANCELLED: Field = (8, 1);
const ROLE: Field = (9, 2);
const HANDED_OVER: Field = (11, 1);
const START_SEEN: Field = (12, 1);
const SINCE_KNOWN: Field = (13, 1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWaitRow {
    started_ns: u64,
    since_ns: u64,
    cancel_ns: u64,
    owner: OwnerId,
    bits: Bits,
}

impl Payload for TimeWaitRow {
    fn touched_ns(&self) -> u64 {
        self.started_ns.max(self.since_ns)
    }

    fn by_tuple(&self) -> bool {
        true
    }

    fn owner_mut(&mut self) -> &mut u32 {
        &mut self.owner
    }
}

impl TimeWait {
    pub fn row(&self) -> Keyed<TimeWaitRow> {
        let mut bits = Bits::default();
        bits.set_state(SUBSTATE, self.substate);
        if let Some((_, substate)) = self.cancel {
            bits.set_flag(CANCELLED, true);
            bits.set_state(CANCEL_SUBSTATE, substate);
        }
        bits.set_role(ROLE, self.role);
        bits.set_flag(HANDED_OVER, self.handed_over);
        bits.set_flag(START_SEEN, self.start_seen);
        bits.set_flag(SINCE_KNOWN, self.since_known);
        Keyed {
            sk: self.sk,
            netns: self.netns,
            tuple: self.tuple,
            data: TimeWaitRow {
                started_ns: self.started_ns,
                since_ns: self.since_ns,
                cancel_ns: self.cancel.map_or(0, |(at, _)| at),
                owner: self.owner,
                bits,
            },
        }
    }

    pub fn from_row(row: Keyed<TimeWaitRow>) -> TimeWait {
        let (d, bits) = (row.data, row.data.bits);
        TimeWait {
            sk: row.sk,
            netns: row.netns,
            tuple: row.tuple,
            substate: bits.state(SUBSTATE),
            started_ns: d.started_ns,
            since_ns: d.since_ns,
            cancel: bits
                .flag(CANCELLED)
                .then(|| (d.cancel_ns, bits.state(CANCEL_SUBSTATE))),
            owner: d.owner,
            role: bits.role(ROLE),
            handed_over: bits.flag(HANDED_OVER),
            start_seen: bits.flag(START_SEEN),
            since_known: bits.flag(SINCE_KNOWN),
        }
    }
}
