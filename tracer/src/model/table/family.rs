//! One bounded set of socket rows over both address families: IPv4 rows keep their 12 bytes of
//! addresses and ports inline, IPv6 rows (38 bytes) live in a table of their own, so the common
//! IPv4 row stays at 40 bytes. Callers see a [`Keyed`] row with a full [`Tuple`].
use std::{
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{Row, Table};
use crate::model::Tuple;

/// The part of a row that is neither its address nor its tuple.
pub trait Payload: Copy {
    /// When the row last changed (eviction takes the oldest; [`Rows::latest`] the newest).
    fn touched_ns(&self) -> u64;
    /// Whether the row is found by (netns, tuple) too.
    fn by_tuple(&self) -> bool;
    /// The interned owner the row refers to (renumbered when owners are swept).
    fn owner_mut(&mut self) -> &mut u32;
}

/// A row as its users see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyed<P> {
    pub sk: u64,
    pub netns: u32,
    pub tuple: Tuple,
    pub data: P,
}

/// A tuple packed for one address family.
pub trait Addrs: Copy + Eq + Hash {
    fn pack(t: &Tuple) -> Option<Self>;
    fn unpack(&self) -> Tuple;
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct V4 {
    addrs: [[u8; 4]; 2],
    ports: [u16; 2],
}

impl Addrs for V4 {
    fn pack(t: &Tuple) -> Option<Self> {
        match (t.local, t.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => Some(V4 {
                addrs: [l.octets(), r.octets()],
                ports: [t.local_port, t.remote_port],
            }),
            _ => None,
        }
    }

    fn unpack(&self) -> Tuple {
        let [l, r] = self.addrs.map(|a| IpAddr::V4(Ipv4Addr::from(a)));
        Tuple::new(l, self.ports[0], r, self.ports[1])
    }
}

/// Any other tuple; an IPv4 side (a tuple built by hand mixing families) is marked, so
/// unpacking gives back exactly what was packed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct V6 {
    addrs: [[u8; 16]; 2],
    ports: [u16; 2],
    v4_sides: u8,
}

impl Addrs for V6 {
    fn pack(t: &Tuple) -> Option<Self> {
        let side = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), 1),
            IpAddr::V6(v6) => (v6.octets(), 0),
        };
        let ((l, l4), (r, r4)) = (side(t.local), side(t.remote));
        Some(V6 {
            addrs: [l, r],
            ports: [t.local_port, t.remote_port],
            v4_sides: l4 | (r4 << 1),
        })
    }

    fn unpack(&self) -> Tuple {
        let side = |i: usize| {
            let v6 = Ipv6Addr::from(self.addrs[i]);
            match v6.to_ipv4_mapped() {
                Some(v4) if self.v4_sides & (1 << i) != 0 => IpAddr::V4(v4),
                _ => IpAddr::V6(v6),
            }
        };
        Tuple::new(side(0), self.ports[0], side(1), self.ports[1])
    }
}

#[derive(Clone, Copy)]
pub struct Packed<A, P> {
    sk: u64,
    netns: u32,
    addrs: A,
    data: P,
}

impl<A: Addrs, P: Payload> Row for Packed<A, P> {
    type Alt = (u32, A);

    fn sk(&self) -> u64 {
        self.sk
    }

    fn touched_ns(&self) -> u64 {
        self.data.touched_ns()
    }

    fn alt(&self) -> Option<(u32, A)> {
        self.data.by_tuple().then_some((self.netns, self.addrs))
    }
}

impl<A: Addrs, P> Packed<A, P> {
    fn keyed(&self) -> Keyed<P>
    where
        P: Copy,
    {
        Keyed {
            sk: self.sk,
            netns: self.netns,
            tuple: self.addrs.unpack(),
            data: self.data,
        }
    }
}

/// Rows of both families, at most `cap` in all; counts what it evicted.
pub struct Rows<P> {
    v4: Table<Packed<V4, P>>,
    v6: Table<Packed<V6, P>>,
    cap: usize,
    evicted: u64,
}

impl<P: Payload> Rows<P> {
    pub fn new(cap: usize) -> Self {
        Rows {
            v4: Table::default(),
            v6: Table::default(),
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, sk: u64) -> Option<Keyed<P>> {
        match self.v4.get(sk) {
            Some(row) => Some(row.keyed()),
            None if self.v6.len() > 0 => self.v6.get(sk).map(|r| r.keyed()),
            None => None,
        }
    }

    /// Stores `row` (replacing the row at its address); when that makes one too many, evicts
    /// the least recently changed of a sample and returns it.
    pub fn put(&mut self, row: Keyed<P>) -> Option<Keyed<P>> {
        let added = match V4::pack(&row.tuple) {
            Some(addrs) => {
                // The allocator may reuse an IPv6 socket's address for an IPv4 one.
                if self.v6.len() > 0 {
                    self.v6.remove(row.sk);
                }
                self.v4.upsert(pack(&row, addrs))
            }
            None => {
                self.v4.remove(row.sk);
                V6::pack(&row.tuple).is_some_and(|addrs| self.v6.upsert(pack(&row, addrs)))
            }
        };
        if !added || self.len() <= self.cap {
            return None;
        }
        // The older of each family's candidate.
        let (v4, v6) = (self.v4.oldest(row.sk), self.v6.oldest(row.sk));
        let evicted = match (v4, v6) {
            (Some((slot, at4)), Some((_, at6))) if at4 <= at6 => {
                self.v4.evict(slot).map(|r| r.keyed())
            }
            (_, Some((slot, _))) => self.v6.evict(slot).map(|r| r.keyed()),
            (Some((slot, _)), None) => self.v4.evict(slot).map(|r| r.keyed()),
            (None, None) => None,
        };
        self.evicted += u64::from(evicted.is_some());
        evicted
    }

    pub fn remove(&mut self, sk: u64) -> Option<Keyed<P>> {
        match self.v4.remove(sk) {
            Some(row) => Some(row.keyed()),
            None if self.v6.len() > 0 => self.v6.remove(sk).map(|r| r.keyed()),
            None => None,
        }
    }

    /// Among the rows found by this (netns, tuple), the most recently changed.
    pub fn latest(&self, netns: u32, tuple: &Tuple) -> Option<Keyed<P>> {
        match V4::pack(tuple) {
            Some(addrs) => self.v4.latest(&(netns, addrs)).map(|r| r.keyed()),
            None => V6::pack(tuple)
                .and_then(|addrs| self.v6.latest(&(netns, addrs)))
                .map(|r| r.keyed()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Keyed<P>> + '_ {
        let v4 = self.v4.iter().map(|r| r.keyed());
        v4.chain(self.v6.iter().map(|r| r.keyed()))
    }

    /// Every row's owner id, to mark or renumber them.
    pub fn owners_mut(&mut self, f: &mut dyn FnMut(&mut u32)) {
        self.v4.for_each_mut(|r| f(r.data.owner_mut()));
        self.v6.for_each_mut(|r| f(r.data.owner_mut()));
    }
}

fn pack<A, P: Copy>(row: &Keyed<P>, addrs: A) -> Packed<A, P> {
    Packed {
        sk: row.sk,
        netns: row.netns,
        addrs,
        data: row.data,
    }
}
