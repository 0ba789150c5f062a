//! The userspace half of the filter: sockets of the attach-time snapshot pass it as the kernel
//! side's events do.
use tracer_common::{FilterConfig, addr_words, owner_match};

use super::{cgroup::process_in_cgroup, cidr::kernel_addr, parse::comm_bytes};
use crate::model::{Owner, Seed, TcpState};

/// Does a pre-existing socket's owner (from /proc, at attach time) meet the owner criteria?
/// An unknown owner never does.
pub fn owner_passes(config: &FilterConfig, owner: &Owner) -> bool {
    let want = config.owner_match;
    if want == 0 {
        return true;
    }
    if owner.pid == 0 {
        return false;
    }
    if want & owner_match::PID != 0 && owner.pid != config.pid {
        return false;
    }
    if want & owner_match::COMM != 0 && comm_bytes(owner.comm.as_str()) != config.comm {
        return false;
    }
    if want & owner_match::CGROUP != 0 && !process_in_cgroup(owner.pid, config.cgroup_id) {
        return false;
    }
    true
}

/// The kernel filter, applied to the sockets of the attach-time snapshot (owners are looked
/// up once per process).
pub struct SeedFilter<'a> {
    config: &'a FilterConfig,
    owners: std::collections::HashMap<u32, bool>,
}

impl<'a> SeedFilter<'a> {
    pub fn new(config: &'a FilterConfig) -> SeedFilter<'a> {
        SeedFilter {
            config,
            owners: std::collections::HashMap::new(),
        }
    }

    fn owner_passes(&mut self, owner: &Owner) -> bool {
        if self.config.owner_match == 0 {
            return true;
        }
        let config = self.config;
        *self
            .owners
            .entry(owner.pid)
            .or_insert_with(|| owner_passes(config, owner))
    }

    /// Does this socket pass, as its events would?
    pub fn passes(&mut self, seed: &Seed) -> bool {
        self.passes_except_addresses(seed)
            && self.addresses_pass(seed)
            && self.owner_passes(&seed.owner)
    }

    /// Must the kernel side be told about it so it follows the socket? Owner filters only:
    /// the kernel never saw who owns a socket that predates it.
    pub fn needs_following(&mut self, seed: &Seed) -> bool {
        self.config.owner_match != 0 && seed.state != TcpState::TimeWait && self.passes(seed)
    }

    fn passes_except_addresses(&self, seed: &Seed) -> bool {
        let (family, _) = kernel_addr(seed.tuple.local);
        self.config
            .accepts(family, seed.tuple.local_port, seed.tuple.remote_port)
            && self.config.accepts_netns(seed.netns)
    }

    /// A listener on every address passes any address filter, as its events do.
    fn addresses_pass(&self, seed: &Seed) -> bool {
        let (family, local) = kernel_addr(seed.tuple.local);
        let (_, remote) = kernel_addr(seed.tuple.remote);
        (seed.state == TcpState::Listen && seed.tuple.local.is_unspecified())
            || self
                .config
                .accepts_addrs(family, &addr_words(&local), &addr_words(&remote))
    }
}
