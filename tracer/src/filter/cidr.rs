//! `--addr`: addresses and networks, and the kernel side's address rules.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use tracer_common::{AF_INET, AF_INET6, AddrRule, addr_words};

/// `--addr`: one address or a network in CIDR notation, IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// With the host bits cleared.
    pub addr: IpAddr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.1.2.3`, `10.0.0.0/8`, `::1`, `2001:db8::/32`. Host bits are allowed and cleared
    /// (`10.1.2.3/8` is `10.0.0.0/8`).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || {
            format!("'{s}' is not an address or CIDR (like 10.0.0.1, 10.0.0.0/8, ::1 or fd00::/8)")
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn rule(family: u16, addr: [u8; 16], mask: [u8; 16]) -> AddrRule {
    AddrRule {
        family,
        _pad: 0,
        addr: addr_words(&addr),
        mask: addr_words(&mask),
    }
}

impl Cidr {
    /// The kernel side's rules: an IPv4 network also matches its IPv4-mapped IPv6 form
    /// (`::ffff:10.0.0.0/104`), which is how dual-stack IPv6 sockets see IPv4 peers.
    pub fn rules(&self) -> Vec<AddrRule> {
        match self.addr {
            IpAddr::V4(a) => {
                let mut addr = [0u8; 16];
                let mut mask = [0u8; 16];
                addr[..4].copy_from_slice(&a.octets());
                mask[..4].copy_from_slice(&mask32(self.prefix).to_be_bytes());
                let mapped = Cidr {
                    addr: IpAddr::V6(a.to_ipv6_mapped()),
                    prefix: 96 + self.prefix,
                };
                vec![rule(AF_INET, addr, mask), mapped.rules()[0]]
            }
            IpAddr::V6(a) => vec![rule(
                AF_INET6,
                a.octets(),
                mask128(self.prefix).to_be_bytes(),
            )],
        }
    }
}

/// An address as the kernel stores it: IPv4 in the first 4 of 16 bytes.
pub fn kernel_addr(addr: IpAddr) -> (u16, [u8; 16]) {
    match addr {
        IpAddr::V4(a) => {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&a.octets());
            (AF_INET, bytes)
        }
        IpAddr::V6(a) => (AF_INET6, a.octets()),
    }
}
