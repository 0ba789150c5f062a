//! The filter options shared by the subcommands that trace, and the kernel filter they make.
use anyhow::Result;
use clap::Args;
use tracer_common::{AF_INET, AF_INET6, FilterConfig, MAX_ADDRS, MAX_PORTS, owner_match};

use super::parsers::{parse_cgroup, parse_cidr, parse_port};
use crate::filter::{Cgroup, Cidr};

/// Which traffic to follow; applied in the kernel so the rest never reaches userspace. Options
/// of different kinds must all match; repeated --port or --addr values are alternatives.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Filters (applied in the kernel)")]
pub struct FilterArgs {
    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 sockets.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Only connections whose local or remote port is PORT (repeat for up to 16 ports).
    #[arg(long = "port", value_name = "PORT", value_parser = parse_port)]
    pub ports: Vec<u16>,
    /// Only connections whose local or remote address is ADDR or in the network CIDR, IPv4 or
    /// IPv6 (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8; repeat for up to 8). An IPv4 network also
    /// matches IPv4-mapped IPv6 addresses (::ffff:10.0.0.5).
    #[arg(long = "addr", value_name = "ADDR|CIDR", value_parser = parse_cidr)]
    pub addrs: Vec<Cidr>,
    /// Only sockets of one network namespace: its inode number, or a namespace file such as
    /// /run/netns/NAME or /proc/PID/ns/net.
    #[arg(long, value_name = "INODE|PATH", value_parser = crate::filter::parse_netns)]
    pub netns: Option<u32>,
    /// Only sockets owned by processes in this cgroup (v2) or below it: a directory
    /// (/sys/fs/cgroup/system.slice/nginx.service, or /system.slice/nginx.service as
    /// /proc/PID/cgroup shows it) or a numeric cgroup id.
    ///
    /// --cgroup, --pid and --comm select by owner and follow the socket: its owner is the task
    /// that connects, listens on it, or closes or shuts it down (children of a listener belong
    /// to the listener's owner), and from then on every event of the socket is kept, its
    /// TIME_WAIT included. The task current at an event is not used otherwise: most
    /// transitions happen in softirq context, which carries whichever task was interrupted.
    /// Sockets that existed before the trace are kept when their owner (found in /proc at
    /// start) matches. Up to 65,536 sockets are followed at once; beyond that the least
    /// recently seen are forgotten.
    #[arg(long, value_name = "PATH|ID", value_parser = parse_cgroup)]
    pub cgroup: Option<Cgroup>,
    /// Only sockets owned by process PID (the whole process, not its children; see --cgroup
    /// for what owning means).
    #[arg(long, value_name = "PID", value_parser = crate::filter::parse_pid)]
    pub pid: Option<u32>,
    /// Only sockets owned by a thread whose command name is NAME (as in /proc/PID/comm, at
    /// most 15 bytes; see --cgroup for what owning means).
    #[arg(long, value_name = "NAME", value_parser = crate::filter::parse_comm)]
    pub comm: Option<String>,
}

impl FilterArgs {
    /// Limits that one value cannot show (how many were given).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ports.len() > MAX_PORTS {
            return Err(format!(
                "at most {MAX_PORTS} --port values are supported, got {}",
                self.ports.len()
            ));
        }
        if self.addrs.len() > MAX_ADDRS {
            return Err(format!(
                "at most {MAX_ADDRS} --addr values are supported, got {}",
                self.addrs.len()
            ));
        }
        Ok(())
    }

    pub fn to_config(&self) -> Result<FilterConfig> {
        self.check().map_err(anyhow::Error::msg)?;
        let mut config = FilterConfig {
            family: match (self.ipv4, self.ipv6) {
                (true, _) => AF_INET,
                (_, true) => AF_INET6,
                _ => 0,
            },
            port_count: self.ports.len() as u16,
            netns: self.netns.unwrap_or(0),
            ..Default::default()
        };
        config.ports[..self.ports.len()].copy_from_slice(&self.ports);
        let rules: Vec<_> = self.addrs.iter().flat_map(Cidr::rules).collect();
        config.addr_count = rules.len() as u16;
        config.addrs[..rules.len()].copy_from_slice(&rules);
        if let Some(cgroup) = &self.cgroup {
            config.owner_match |= owner_match::CGROUP;
            config.cgroup_id = cgroup.id;
        }
        if let Some(pid) = self.pid {
            config.owner_match |= owner_match::PID;
            config.pid = pid;
        }
        if let Some(comm) = &self.comm {
            config.owner_match |= owner_match::COMM;
            config.comm = crate::filter::comm_bytes(comm);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{AF_INET, owner_match};

    use crate::source::recording::replay::describe_filter;

    #[test]
    fn filter_args_fill_every_field_and_read_back_in_words() {
        let args = super::FilterArgs {
            ipv4: true,
            ports: vec![80],
            addrs: vec!["10.1.0.0/16".parse().unwrap(), "fd00::1".parse().unwrap()],
            netns: Some(4026531840),
            pid: Some(42),
            comm: Some("nginx".into()),
            ..Default::default()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.addr_count, 3, "an IPv4 network takes two rules");
        assert_eq!(c.owner_match, owner_match::PID | owner_match::COMM);
        assert_eq!(
            describe_filter(&c),
            "IPv4, port 80, address 10.1.0.0/16 fd00::1/128, netns 4026531840, pid 42, \
             command nginx"
        );
        let mut ev = tracer_common::RawEvent {
            family: AF_INET,
            sport: 80,
            dport: 5000,
            netns: 4026531840,
            ..Default::default()
        };
        ev.saddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        assert!(c.accepts_event(&ev));
        ev.netns = 1;
        assert!(!c.accepts_event(&ev), "another namespace");
        ev.netns = 4026531840;
        ev.saddr[..4].copy_from_slice(&[10, 2, 2, 3]);
        assert!(!c.accepts_event(&ev), "another network");
    }
}
