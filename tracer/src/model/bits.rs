//! Small enums packed into the bits of a table row (a state is 4 bits, not a byte plus padding).
use super::{CloseKind, Role, TcpState};

/// Fields of a row packed into 16 bits; each field is (shift, width).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits(pub u16);

pub type Field = (u32, u32);

impl Bits {
    pub fn get(self, (shift, width): Field) -> u16 {
        (self.0 >> shift) & ((1 << width) - 1)
    }

    pub fn set(&mut self, (shift, width): Field, value: u16) {
        let mask = ((1u16 << width) - 1) << shift;
        self.0 = (self.0 & !mask) | ((value << shift) & mask);
    }

    pub fn flag(self, field: Field) -> bool {
        self.get(field) != 0
    }

    pub fn set_flag(&mut self, field: Field, on: bool) {
        self.set(field, u16::from(on));
    }

    pub fn state(self, field: Field) -> TcpState {
        let i = usize::from(self.get(field));
        TcpState::ALL.get(i).copied().unwrap_or(TcpState::Close)
    }

    pub fn set_state(&mut self, field: Field, state: TcpState) {
        self.set(field, state.index() as u16);
    }

    pub fn role(self, field: Field) -> Role {
        ROLES
            .get(usize::from(self.get(field)))
            .copied()
            .unwrap_or(Role::Unknown)
    }

    pub fn set_role(&mut self, field: Field, role: Role) {
        let i = ROLES.iter().position(|r| *r == role).unwrap_or(3);
        self.set(field, i as u16);
    }

    /// 0 for none, else 1 + the kind's place in [`CloseKind::ALL`].
    pub fn close_kind(self, field: Field) -> Option<CloseKind> {
        let i = usize::from(self.get(field));
        i.checked_sub(1)
            .and_then(|i| CloseKind::ALL.get(i))
            .copied()
    }

    pub fn set_close_kind(&mut self, field: Field, kind: Option<CloseKind>) {
        let i = kind.and_then(|k| CloseKind::ALL.iter().position(|c| *c == k));
        self.set(field, i.map_or(0, |i| i as u16 + 1));
    }
}

const ROLES: [Role; 4] = [Role::Client, Role::Server, Role::Listener, Role::Unknown];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_and_leaves_the_other_fields_alone() {
        let (a, b, c) = ((0, 4), (4, 2), (6, 4));
        for state in TcpState::ALL {
            for role in ROLES {
                for kind in CloseKind::ALL.map(Some).into_iter().chain([None]) {
                    let mut bits = Bits(u16::MAX);
                    bits.set_state(a, state);
                    bits.set_role(b, role);
                    bits.set_close_kind(c, kind);
                    assert_eq!((bits.state(a), bits.role(b)), (state, role));
                    assert_eq!(bits.close_kind(c), kind);
                    assert_eq!(bits.0 >> 10, u16::MAX >> 10);
                }
            }
        }
    }
}
