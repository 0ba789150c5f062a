//! /proc/net/{netstat,snmp} and /proc/sys parsing from synthetic text and trees.
use std::{path::PathBuf, time::Duration};

use super::*;
use crate::service::doctor::counters::{self, parse};

const NETSTAT: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv TW TWRecycled TWKilled ListenOverflows ListenDrops TCPTimeWaitOverflow
TcpExt: 3 0 1437265 95015 0 12 14 84
IpExt: InNoRoutes InOctets
IpExt: 0 18446744073709551615
";

const SNMP: &str = "\
Ip: Forwarding DefaultTTL
Ip: 1 64
Icmp: InMsgs InErrors
Icmp: 45 0
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 1430635 1430571 18 138 7 13811606 13802383 5 0 182 0
";

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tracer-doctor-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn two_line_sections_parse_generically() {
    let sections = parse(NETSTAT).unwrap();
    let names: Vec<&str> = sections.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["TcpExt", "IpExt"]);
    let tcp_ext = &sections[0].1;
    assert_eq!(tcp_ext["TCPTimeWaitOverflow"], 84);
    assert_eq!(tcp_ext["TW"], 1_437_265);
    assert_eq!(tcp_ext.len(), 8);
    // A u64 beyond i64 is clamped, not an error.
    assert_eq!(sections[1].1["InOctets"], i64::MAX);

    let mut c = Counters::default();
    c.add(NETSTAT).unwrap();
    c.add(SNMP).unwrap();
    assert_eq!(c.get("TcpExt", "ListenOverflows"), Some(12));
    assert_eq!(c.get("Tcp", "MaxConn"), Some(-1), "signed snmp fields");
    assert_eq!(c.get("Tcp", "CurrEstab"), Some(7));
    assert_eq!(c.get("Icmp", "InMsgs"), Some(45));
    assert_eq!(c.get("TcpExt", "TCPAbortOnClose"), None, "not in this text");
    assert_eq!(c.value("TcpExt", "TCPAbortOnClose"), 0);
    let watched: Vec<_> = c.watched().collect();
    assert_eq!(watched.len(), counters::WATCHED.len());
    assert!(watched.contains(&("TcpExt", "TCPTimeWaitOverflow", Some(84))));
    assert!(watched.contains(&("TcpExt", "TCPAbortOnClose", None)));
}

#[test]
fn malformed_sections_are_errors_not_guesses() {
    let err = |text: &str| parse(text).unwrap_err().to_string();
    assert!(err("TcpExt: A B\nTcpExt: 1\n").contains("2 names but 1 values"));
    assert!(err("TcpExt: A B\n").contains("without a value line"));
    assert!(err("TcpExt: A\nIpExt: 1\n").contains("followed by a line of section IpExt"));
    assert!(format!("{:#}", parse("TcpExt: A\nTcpExt: x\n").unwrap_err()).contains("'x'"));
    assert!(err("no colon here\n").contains("does not start with"));
    assert_eq!(parse("").unwrap(), vec![]);
    // Blank lines between sections are tolerated.
    assert_eq!(
        parse("Tcp: A\nTcp: 1\n\nUdp: B\nUdp: 2\n").unwrap().len(),
        2
    );
}

#[test]
fn deltas_and_rates_over_a_window() {
    let start = super::counters(&[("TCPTimeWaitOverflow", 10), ("ListenDrops", 3)]);
    let end = {
        let mut c = super::counters(&[("TCPTimeWaitOverflow", 70), ("ListenDrops", 3)]);
        c.add("Tcp: CurrEstab ActiveOpens\nTcp: 5 100\n").unwrap();
        c
    };
    let d = counters::deltas(&start, &end, 30.0);
    let of = |name: &str| d.iter().find(|d| d.name == name).unwrap();
    assert_eq!(of("TCPTimeWaitOverflow").delta, 60);
    assert_eq!(of("TCPTimeWaitOverflow").per_sec, Some(2.0));
    assert_eq!(of("ListenDrops").delta, 0);
    // Missing from the start reading: no delta at all rather than a wrong one.
    assert!(
        d.iter()
            .all(|d| d.name != "ActiveOpens" && d.name != "CurrEstab")
    );
    assert_eq!(
        counters::delta_of(&d, "TcpExt", "TCPTimeWaitOverflow"),
        Some(60)
    );

    // A gauge gets a change but no rate.
    let mut a = Counters::default();
    a.add("Tcp: CurrEstab\nTcp: 9\n").unwrap();
    let mut b = Counters::default();
    b.add("Tcp: CurrEstab\nTcp: 4\n").unwrap();
    let d = counters::deltas(&a, &b, 10.0);
    assert_eq!((d[0].delta, d[0].per_sec), (-5, None));
}

#[test]
fn counters_are_read_from_a_proc_net_directory() {
    let dir = TempDir::new("net");
    std::fs::write(dir.0.join("netstat"), NETSTAT).unwrap();
    std::fs::write(dir.0.join("snmp"), SNMP).unwrap();
    let c = Counters::read(&dir.0).unwrap();
    assert_eq!(c.get("TcpExt", "TCPTimeWaitOverflow"), Some(84));
    assert_eq!(c.get("Tcp", "OutRsts"), Some(182));
    std::fs::write(dir.0.join("snmp"), "Tcp: A\n").unwrap();
    let e = format!("{:#}", Counters::read(&dir.0).unwrap_err());
    assert!(
        e.contains("snmp") && e.contains("without a value line"),
        "{e}"
    );
}

#[test]
fn this_kernel_counters_parse() {
    // The real files of the namespace running the test: the generic parser must take them.
    let c = Counters::read(std::path::Path::new("/proc/net")).unwrap();
    assert!(c.get("TcpExt", "TCPTimeWaitOverflow").is_some());
    assert!(c.get("Tcp", "ActiveOpens").is_some());
}

#[test]
fn sysctls_are_read_and_missing_ones_are_absent() {
    let dir = TempDir::new("sys");
    let write = |name: &str, value: &str| {
        let path = sysctl::path_of(&dir.0, name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    };
    write(sysctl::FIN_TIMEOUT, "30\n");
    write(sysctl::PORT_RANGE, "1024\t65000\n");
    write(sysctl::SOMAXCONN, "4096\n");
    let s = Sysctls::read(&dir.0);
    assert_eq!(
        sysctl::path_of(&dir.0, "net.core.somaxconn"),
        dir.0.join("net/core/somaxconn")
    );
    assert_eq!(s.get(sysctl::FIN_TIMEOUT), Some("30"));
    assert_eq!(s.int(sysctl::FIN_TIMEOUT), Some(30));
    assert_eq!(s.get(sysctl::PORT_RANGE), Some("1024 65000"));
    assert_eq!(s.port_range(), Some((1024, 65000)));
    assert_eq!(s.int(sysctl::SOMAXCONN), Some(4096));
    // tcp_tw_recycle (gone since 4.12) and anything else not there: absent, not 0.
    assert_eq!(s.get(sysctl::TW_RECYCLE), None);
    assert_eq!(s.int(sysctl::TW_REUSE), None);
    let listed: Vec<&str> = s.iter().map(|(n, _)| n).collect();
    assert_eq!(listed, sysctl::WATCHED);
    let recycle = sysctl::meaning(sysctl::TW_RECYCLE, None);
    assert!(
        recycle.contains("4.12") && recycle.contains("NAT"),
        "{recycle}"
    );
    assert!(
        sysctl::meaning(sysctl::FIN_TIMEOUT, Some("30")).contains("does not shorten TIME_WAIT")
    );
}

#[test]
fn malformed_port_range_is_none() {
    let s = |v| Sysctls::with(&[(sysctl::PORT_RANGE, v)]).port_range();
    assert_eq!(s("32768 60999"), Some((32768, 60999)));
    assert_eq!(s("60999 32768"), None);
    assert_eq!(s("32768"), None);
    assert_eq!(s("a b"), None);
}

#[test]
fn stuck_threshold_accepts_zero_and_durations() {
    assert_eq!(stuck::parse_threshold("0"), Ok(Duration::ZERO));
    assert_eq!(stuck::parse_threshold("0s"), Ok(Duration::ZERO));
    assert_eq!(stuck::parse_threshold("30"), Ok(Duration::from_secs(30)));
    assert_eq!(stuck::parse_threshold("2m"), Ok(Duration::from_secs(120)));
    assert!(stuck::parse_threshold("soon").is_err());
}
