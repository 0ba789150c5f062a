//! The values of the filter options (`--addr`, `--cgroup`, `--netns`, `--pid`, `--comm`): each
//! parser is a clap value parser, so a bad value exits 2 with the reason before anything is
//! loaded. And the userspace half of the filter: sockets of the attach-time snapshot pass it as
//! the kernel side's events do.
use std::{
    fmt,
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    str::FromStr,
};

use tracer_common::{AF_INET, AF_INET6, AddrRule, FilterConfig, addr_words, owner_match};

use crate::model::{Owner, Seed, TcpState};

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

/// `--cgroup`: a cgroup v2 directory and its id (the directory's inode, what
/// `bpf_get_current_cgroup_id` returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    pub path: PathBuf,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on most systems,
/// `/sys/fs/cgroup/unified` on hybrid ones), from /proc/self/mountinfo.
pub fn cgroup2_root() -> Result<PathBuf, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    info.lines()
        .find_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(unescape_mount))
                .flatten()
        })
        .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// A directory of the cgroup v2 hierarchy (it has `cgroup.procs`).
fn is_cgroup_dir(path: &Path) -> bool {
    path.is_dir() && path.join("cgroup.procs").exists()
}

impl FromStr for Cgroup {
    type Err = String;

    /// A path (`/sys/fs/cgroup/system.slice/nginx.service`, or relative to the cgroup v2 mount
    /// as /proc/PID/cgroup shows it: `/system.slice/nginx.service`) or a numeric id.
    fn from_str(s: &str) -> Result<Cgroup, String> {
        let root = cgroup2_root()?;
        if let Ok(id) = s.trim().parse::<u64>() {
            return find_cgroup(&root, id)
                .map(|path| Cgroup { id, path })
                .ok_or_else(|| format!("'{s}': no cgroup has id {id} under {}", root.display()));
        }
        let given = PathBuf::from(s);
        let under_root = root.join(s.trim_start_matches('/'));
        let path = if given.is_absolute() && given.starts_with(&root) && is_cgroup_dir(&given) {
            given
        } else if is_cgroup_dir(&under_root) {
            under_root
        } else {
            return Err(format!(
                "'{s}' is not a cgroup v2 directory (looked under {})",
                root.display()
            ));
        };
        let id = std::fs::metadata(&path)
            .map_err(|e| format!("'{s}': {e}"))?
            .ino();
        Ok(Cgroup { id, path })
    }
}

/// The directory whose inode is `id`, searched breadth-first (bounded: a few levels of a large
/// hierarchy are enough for real ids, and a wrong id must not walk forever).
fn find_cgroup(root: &Path, id: u64) -> Option<PathBuf> {
    const MAX_DIRS: usize = 100_000;
    let mut queue = std::collections::VecDeque::from([root.to_path_buf()]);
    let mut seen = 0;
    while let Some(dir) = queue.pop_front() {
        seen += 1;
        if seen > MAX_DIRS {
            return None;
        }
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            return Some(dir);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back(entry.path());
            }
        }
    }
    None
}

/// Is process `pid` in cgroup `id` or below it (its /proc/PID/cgroup path and its ancestors)?
pub fn process_in_cgroup(pid: u32, id: u64) -> bool {
    let Ok(root) = cgroup2_root() else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let mut dir = root.join(rel.trim_start_matches('/'));
    loop {
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            return true;
        }
        if dir == root || !dir.pop() || !dir.starts_with(&root) {
            return false;
        }
    }
}

/// `NS_GET_NSTYPE` (linux/nsfs.h): which kind of namespace a namespace file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// `--netns`: an inode number, or a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`)
/// whose inode is taken.
pub fn parse_netns(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return u32::try_from(n)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| format!("'{s}' is not a network namespace inode (1-4294967295)"));
    }
    let file = File::open(s).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "'{s}' does not exist (a network namespace is an inode number, /run/netns/NAME or /proc/PID/ns/net)"
        ),
        _ => format!("'{s}': {e}"),
    })?;
    // SAFETY: ioctl on an fd we own, no argument.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(format!("'{s}' is not a network namespace file"));
    }
    let ino = file.metadata().map_err(|e| format!("'{s}': {e}"))?.ino();
    u32::try_from(ino).map_err(|_| format!("'{s}': inode {ino} out of range"))
}

/// `--pid`: a process that exists now.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let pid = s
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0 && p <= i32::MAX as u32)
        .ok_or_else(|| format!("'{s}' is not a process id"))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("no process has pid {pid}"));
    }
    Ok(pid)
}

/// `--comm`: a command name as the kernel keeps it (at most 15 bytes).
pub fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('\0') {
        return Err(format!("'{s}' is not a command name"));
    }
    if s.len() > 15 {
        let cut = (0..=15).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        return Err(format!(
            "'{s}' is longer than 15 bytes: the kernel keeps only the first 15 of a command \
             name, use '{}'",
            &s[..cut]
        ));
    }
    Ok(s.to_string())
}

/// The kernel's 16-byte, NUL-padded form of a command name.
pub fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = comm.len().min(15);
    out[..n].copy_from_slice(&comm.as_bytes()[..n]);
    out
}

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
    if want & owner_match::COMM != 0 && comm_bytes(&owner.comm) != config.comm {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_clear_host_bits() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let c: Cidr = "127.0.0.2".parse().unwrap();
        assert_eq!(c.to_string(), "127.0.0.2/32");
        let c: Cidr = "2001:db8::1/32".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8::/32");
        let c: Cidr = "::/0".parse().unwrap();
        assert_eq!(c.to_string(), "::/0");
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "10.0.0.0/",
            "10.0.0/8",
            "host",
            "1.2.3.4/-1",
            "1.2.3.4/+8",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(
                err.starts_with(&format!("'{bad}' is not an address or CIDR")),
                "{err}"
            );
        }
    }

    fn config_with(cidrs: &[&str]) -> FilterConfig {
        let mut config = FilterConfig::default();
        let rules: Vec<AddrRule> = cidrs
            .iter()
            .flat_map(|c| c.parse::<Cidr>().unwrap().rules())
            .collect();
        config.addr_count = rules.len() as u16;
        config.addrs[..rules.len()].copy_from_slice(&rules);
        config
    }

    fn words(ip: &str) -> (u16, [u32; 4]) {
        let (family, bytes) = kernel_addr(ip.parse().unwrap());
        (family, addr_words(&bytes))
    }

    fn accepts(config: &FilterConfig, local: &str, remote: &str) -> bool {
        let (family, l) = words(local);
        let (_, r) = words(remote);
        config.accepts_addrs(family, &l, &r)
    }

    #[test]
    fn address_rules_match_local_or_remote_within_the_prefix() {
        let c = config_with(&["127.0.0.0/30", "fd00::/8"]);
        assert!(accepts(&c, "127.0.0.2", "127.0.0.3"));
        assert!(accepts(&c, "10.0.0.1", "127.0.0.3"));
        assert!(!accepts(&c, "127.0.0.5", "127.0.0.6"));
        assert!(accepts(&c, "::ffff:127.0.0.1", "::1"), "IPv4-mapped");
        assert!(!accepts(&c, "::ffff:127.0.0.9", "::1"));
        assert!(accepts(&c, "fd12::1", "2001:db8::1"));
        assert!(!accepts(&c, "fe80::1", "2001:db8::1"));
        assert!(accepts(&FilterConfig::default(), "1.2.3.4", "5.6.7.8"));
        let everything = config_with(&["0.0.0.0/0"]);
        assert!(accepts(&everything, "1.2.3.4", "5.6.7.8"));
        assert!(!accepts(&everything, "::1", "::1"));
    }

    #[test]
    fn comm_names_are_checked() {
        assert_eq!(parse_comm("nginx"), Ok("nginx".into()));
        let err = parse_comm("a-very-long-command-name").unwrap_err();
        assert!(err.contains("use 'a-very-long-com'"), "{err}");
        assert!(parse_comm("").is_err());
        assert_eq!(&comm_bytes("nginx")[..6], b"nginx\0");
    }

    #[test]
    fn namespaces_and_pids_are_checked() {
        assert!(parse_netns("0").is_err());
        assert!(parse_netns("4026531840").is_ok());
        let err = parse_netns("/run/netns/does-not-exist").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = parse_netns("/etc/hostname").unwrap_err();
        assert!(err.contains("not a network namespace"), "{err}");
        let own = parse_netns("/proc/self/ns/net").unwrap();
        let meta = std::fs::metadata("/proc/self/ns/net").unwrap();
        assert_eq!(u64::from(own), meta.ino());
        assert!(parse_netns("/proc/self/ns/uts").is_err());
        assert_eq!(
            parse_pid(&std::process::id().to_string()),
            Ok(std::process::id())
        );
        assert!(parse_pid("0").is_err());
        assert!(parse_pid("x").is_err());
    }

    #[test]
    fn filter_args_fill_every_field_and_read_back_in_words() {
        let args = crate::cli::FilterArgs {
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
            crate::recording::replay::describe_filter(&c),
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

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(
            unescape_mount("/sys/fs/cgroup"),
            PathBuf::from("/sys/fs/cgroup")
        );
    }
}
