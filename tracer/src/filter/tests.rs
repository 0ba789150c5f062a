use std::{os::unix::fs::MetadataExt, path::PathBuf};

use tracer_common::{AddrRule, FilterConfig, addr_words};

use super::{
    Cidr, cgroup::unescape_mount, comm_bytes, kernel_addr, parse_comm, parse_netns, parse_pid,
};

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
fn mount_points_are_unescaped() {
    assert_eq!(unescape_mount("/a\\040b"), PathBuf::from("/a b"));
    assert_eq!(
        unescape_mount("/sys/fs/cgroup"),
        PathBuf::from("/sys/fs/cgroup")
    );
}
