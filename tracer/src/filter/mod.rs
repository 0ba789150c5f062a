//! The values of the filter options (`--addr`, `--cgroup`, `--netns`, `--pid`, `--comm`): each
//! parser is a clap value parser, so a bad value exits 2 with the reason before anything is
//! loaded. And the userspace half of the filter: sockets of the attach-time snapshot pass it as
//! the kernel side's events do.
//!
//! `cidr`: `--addr` and the kernel's address rules; `cgroup`: `--cgroup` and cgroup v2
//! membership; `parse`: `--netns`, `--pid`, `--comm`; `owner`: the userspace half of the
//! filter, for the attach-time snapshot.
mod cgroup;
mod cidr;
mod owner;
mod parse;
#[cfg(test)]
mod tests;

pub use cgroup::{Cgroup, cgroup2_root, process_in_cgroup};
pub use cidr::{Cidr, kernel_addr};
pub use owner::{SeedFilter, owner_passes};
pub use parse::{comm_bytes, parse_comm, parse_netns, parse_pid};
