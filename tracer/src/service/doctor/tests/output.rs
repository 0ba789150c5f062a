//! The report as text and JSON, and the stuck-socket sections of `tracer states --stuck`.
use std::time::Duration;

use super::*;
use crate::{service::doctor::report, time::clock::WallClock};

#[test]
fn json_has_sysctls_counters_and_findings() {
    let mut socks = healthy().sockets;
    socks.extend(close_waits(5, 4242, "app"));
    let r = Report::build(
        stock(),
        counters(&[("TCPTimeWaitOverflow", 2)]),
        snapshot(S, socks),
        None,
        Duration::from_secs(30),
    );
    let v = report::json(&r, &WallClock::now());
    assert_eq!(v["sysctls"]["net.ipv4.tcp_fin_timeout"], 60);
    assert_eq!(v["sysctls"]["net.ipv4.ip_local_port_range"], "32768 60999");
    assert!(v["sysctls"]["net.ipv4.tcp_tw_recycle"].is_null());
    let why = v["absent_sysctls"]["net.ipv4.tcp_tw_recycle"]
        .as_str()
        .unwrap();
    assert!(why.contains("4.12") && why.contains("NAT"), "{why}");
    assert_eq!(v["counters"]["TcpExt"]["TCPTimeWaitOverflow"], 2);
    assert!(
        v["counters"]["Tcp"]["ActiveOpens"].is_null(),
        "not read: null"
    );
    assert!(v["deltas"].is_null() && v["window_secs"].is_null());
    assert_eq!(v["states"]["CLOSE_WAIT"], 5);
    assert_eq!(v["stuck"]["age_known"], false);
    assert_eq!(v["stuck"]["sockets"].as_array().unwrap().len(), 5);
    let findings = v["findings"].as_array().unwrap();
    let ids: Vec<&str> = findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["timewait-overflow", "close-wait"]);
    let f = &findings[1];
    assert_eq!(f["severity"], "notice");
    assert_eq!(f["evidence"]["pid"], 4242);
    assert!(f["title"].is_string() && f["advice"].is_string());
    assert!(f["evidence"].is_object());
}

#[test]
fn json_over_a_window_has_deltas_and_proven_ages() {
    let first = snapshot(S, close_waits(2, 4242, "app"));
    let last = snapshot(31 * S, close_waits(2, 4242, "app"));
    let m = measured(first, counters(&[("ListenDrops", 1)]), vec![]);
    let mut r = report(last, Some(m));
    let v = report::json(&r, &WallClock::now());
    assert_eq!(v["window_secs"], 30.0);
    assert_eq!(v["deltas"]["TcpExt"]["ListenDrops"]["delta"], -1);
    assert_eq!(v["stuck"]["age_known"], true);
    assert_eq!(v["stuck"]["sockets"][0]["at_least_ns"], 30 * S);
    assert_eq!(v["stuck"]["sockets"][0]["pid"], 4242);
    assert_eq!(v["events"]["received"], 10);
    assert_eq!(v["findings"][0]["id"], "close-wait");
    assert_eq!(v["findings"][0]["severity"], "warning");
    // Text: the stuck table with process, pid, addresses and age.
    r.findings.truncate(1);
    let t = report::text(&r, &WallClock::now());
    assert!(t.contains("measured over 30.0s"), "{t}");
    assert!(
        t.contains("[WARNING] 2 sockets stuck in CLOSE_WAIT for at least 30.0s"),
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.starts_with("CLOSE_WAIT") && l.contains("10.0.0.9:41000"))
        .unwrap_or_else(|| panic!("{t}"));
    for part in [
        "app",
        "4242",
        "10.0.0.1:8080",
        "≥ 30.0s",
        "has not called close()",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
}

#[test]
fn text_says_nothing_wrong_found_and_corrects_the_folklore() {
    let r = report(healthy(), None);
    let t = report::text(&r, &WallClock::now());
    assert!(t.contains("Nothing wrong found"), "{t}");
    assert!(
        t.contains("TCP sockets: 41 (ESTABLISHED 20, TIME_WAIT 20, LISTEN 1)"),
        "{t}"
    );
    let recycle: String = t
        .lines()
        .skip_while(|l| !l.contains("net.ipv4.tcp_tw_recycle"))
        .take(3)
        .collect();
    assert!(
        recycle.contains("absent") && recycle.contains("4.12"),
        "{recycle}"
    );
    assert!(recycle.contains("NAT"), "{recycle}");
    assert!(t.contains("does not shorten"), "{t}");
    assert!(t.contains("TcpExt.TCPTimeWaitOverflow"), "{t}");
    assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
}

#[test]
fn stuck_sockets_need_the_same_tuple_inode_and_state() {
    let cw = |p: u16| {
        owned(
            sock(TcpState::CloseWait, "10.0.0.1", 8080, "10.0.0.9", p),
            4242,
            "app",
        )
    };
    let first = snapshot(
        S,
        vec![
            cw(1),
            cw(2),
            cw(3),
            sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.1", 9),
        ],
    );
    let mut reborn = cw(2);
    reborn.inode += 1;
    let mut moved = cw(3);
    moved.state = TcpState::LastAck;
    let last = snapshot(
        11 * S,
        vec![
            cw(1),
            reborn,
            moved,
            sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.1", 9),
        ],
    );
    let stuck = stuck::persisting(&first, &last);
    let got: Vec<(TcpState, &str, u64)> = stuck
        .iter()
        .map(|s| (s.state, s.remote.as_str(), s.at_least_ns))
        .collect();
    assert_eq!(
        got,
        [
            (TcpState::CloseWait, "10.0.0.9:1", 10 * S),
            (TcpState::SynRecv, "10.9.0.1:9", 10 * S)
        ]
    );
    // One snapshot: every socket in those states, age 0, ESTABLISHED and others left out.
    let mut socks = last.sockets.clone();
    socks.push(sock(TcpState::Established, "10.0.0.1", 80, "10.9.0.1", 10));
    assert_eq!(stuck::candidates(&snapshot(S, socks)).len(), 3);
}

#[test]
fn states_stuck_section_from_one_snapshot() {
    let mut socks = healthy().sockets;
    socks.extend(close_waits(2, 4242, "app"));
    socks.push(sock(TcpState::SynRecv, "10.0.0.1", 80, "10.9.0.1", 9));
    let snap = snapshot(S, socks);
    // --stuck 0: every one, at least 0 s old.
    let t = stuck::instant_text(&snap, Duration::ZERO);
    assert!(t.contains("2 CLOSE_WAIT, 1 SYN_RECV"), "{t}");
    let rows: Vec<&str> = t
        .lines()
        .filter(|l| {
            l.contains("≥ 0s") && (l.starts_with("CLOSE_WAIT") || l.starts_with("SYN_RECV"))
        })
        .collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert!(
        rows.iter().any(|r| r.contains("app") && r.contains("4242")),
        "{t}"
    );
    // --stuck 30: counts, and how to prove an age.
    let t = stuck::instant_text(&snap, Duration::from_secs(30));
    assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        t.contains("unknown age") && t.contains("tracer doctor --duration 30"),
        "{t}"
    );
    assert!(!t.contains("≥ 0s"), "{t}");
    let v = stuck::instant_json(&snap, Duration::from_secs(30));
    assert_eq!(v["counts"]["CLOSE_WAIT"], 2);
    assert!(v["sockets"].is_null());
    let v = stuck::instant_json(&snap, Duration::ZERO);
    assert_eq!(v["sockets"].as_array().unwrap().len(), 3);
    assert_eq!(v["age_known"], false);
    // Nothing stuck-prone at all.
    let t = stuck::instant_text(&healthy(), Duration::ZERO);
    assert!(t.contains("none"), "{t}");
}
