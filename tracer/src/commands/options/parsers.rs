//! Value parsers of the options: a bad value exits 2 with the reason.
use std::{net::SocketAddr, time::Duration};

use crate::{
    filter::{Cgroup, Cidr},
    model::TcpState,
    time::duration::parse_duration,
};

pub(super) fn parse_state(s: &str) -> Result<TcpState, String> {
    s.parse()
        .map_err(|e: crate::model::state::UnknownState| e.to_string())
}

/// `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`: an IP address and a port, no host name.
pub(super) fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not an address and port like 127.0.0.1:9464, 0.0.0.0:9464 or [::]:9464")
    })
}

pub(super) fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

pub(super) fn parse_cgroup(s: &str) -> Result<Cgroup, String> {
    s.parse()
}

/// `--ring-bytes`: the kernel wants a power of two, at least a page.
pub(super) fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 4096 && n.is_power_of_two() && n <= 1 << 30 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a ring buffer size: a power of two from 4096 to 1073741824"
        )),
    }
}

pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{s}' is not a TCP port (1-65535)")),
        Ok(p) => Ok(p),
    }
}

/// `--slot`: a daemon history slot, from 100 ms (tests) to an hour.
pub(super) fn parse_slot(s: &str) -> Result<Duration, String> {
    let slot = parse_duration(s)?;
    if slot < Duration::from_millis(100) || slot > Duration::from_secs(3600) {
        return Err(format!("'{s}' is not a slot length from 100ms to 1h"));
    }
    Ok(slot)
}
