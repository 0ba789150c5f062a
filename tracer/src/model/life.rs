//! A full socket's life as the model reasons about it ([`Life`]), and as a table keeps it
//! ([`LifeRow`]: 16 bytes besides the address and tuple, so an IPv4 row is 40 bytes).
use super::{
    CloseKind, Role, TcpState, Tuple,
    bits::{Bits, Field},
    owners::OwnerId,
    table::family::{Keyed, Payload},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Life {
    pub sk: u64,
    pub netns: u32,
    pub tuple: Tuple,
    pub state: TcpState,
    pub entered_ns: u64,
    pub owner: OwnerId,
    pub role: Role,
    pub first_close: Option<CloseKind>,
    pub rst_received: bool,
    pub rst_sent: bool,
    /// Followed in the kernel now (kernel aggregation): counted from its slot there, not here.
    pub in_kernel: bool,
}

pub fn is_closing(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
    )
}

const STATE: Field = (0, 4);
const ROLE: Field = (4, 2);
const FIRST_CLOSE: Field = (6, 4);
const RST_RECEIVED: Field = (10, 1);
const RST_SENT: Field = (11, 1);
const IN_KERNEL: Field = (12, 1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifeRow {
    entered_ns: u64,
    owner: OwnerId,
    bits: Bits,
}

impl Payload for LifeRow {
    fn touched_ns(&self) -> u64 {
        self.entered_ns
    }

    /// Closing sockets are found by tuple: the timewait socket that takes one over asks.
    fn by_tuple(&self) -> bool {
        is_closing(self.bits.state(STATE))
    }

    fn owner_mut(&mut self) -> &mut u32 {
        &mut self.owner
    }
}

impl Life {
    pub fn row(&self) -> Keyed<LifeRow> {
        let mut bits = Bits::default();
        bits.set_state(STATE, self.state);
        bits.set_role(ROLE, self.role);
        bits.set_close_kind(FIRST_CLOSE, self.first_close);
        bits.set_flag(RST_RECEIVED, self.rst_received);
        bits.set_flag(RST_SENT, self.rst_sent);
        bits.set_flag(IN_KERNEL, self.in_kernel);
        Keyed {
            sk: self.sk,
            netns: self.netns,
            tuple: self.tuple,
            data: LifeRow {
                entered_ns: self.entered_ns,
                owner: self.owner,
                bits,
            },
        }
    }

    pub fn from_row(row: Keyed<LifeRow>) -> Life {
        let bits = row.data.bits;
        Life {
            sk: row.sk,
            netns: row.netns,
            tuple: row.tuple,
            state: bits.state(STATE),
            entered_ns: row.data.entered_ns,
            owner: row.data.owner,
            role: bits.role(ROLE),
            first_close: bits.close_kind(FIRST_CLOSE),
            rst_received: bits.flag(RST_RECEIVED),
            rst_sent: bits.flag(RST_SENT),
            in_kernel: bits.flag(IN_KERNEL),
        }
    }
}
