//! The model's memory with a million followed sockets (issue 6): `trc-model-rss` feeds a million
//! synthetic IPv4 connections (a few thousand owners, kept open) through the real model and
//! histograms, builds the per-state summaries, and reports VmHWM. Memory is deterministic
//! enough to assert (no timing involved). No root needed.
use std::process::Command;

/// The whole process's peak, as the README states it.
const MAX_HWM_KIB: u64 = 64 * 1024;

fn run(args: &[&str]) -> Vec<(String, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_trc-model-rss"))
        .args(args)
        .output()
        .expect("run trc-model-rss");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, n)| Some((name.to_owned(), n.parse().ok()?)))
        .collect()
}

fn value(report: &[(String, u64)], name: &str) -> u64 {
    let found = report.iter().find(|(n, _)| n == name);
    found.unwrap_or_else(|| panic!("no {name} in {report:?}")).1
}

#[test]
fn a_million_sockets_and_their_summary_fit_in_64_mib() {
    let report = run(&["--sockets", "1000000", "--owners", "3000", "--summary"]);
    assert_eq!(value(&report, "tracked"), 1_000_000);
    assert_eq!(value(&report, "evicted"), 0);
    assert_eq!(value(&report, "summary open"), 1_000_000);
    let hwm = value(&report, "summary VmHWM");
    assert!(hwm <= MAX_HWM_KIB, "VmHWM {hwm} KiB > {MAX_HWM_KIB} KiB");
}

#[test]
fn past_the_cap_sockets_are_evicted_and_memory_stays_bounded() {
    let report = run(&["--sockets", "300000", "--max-sockets", "100000"]);
    assert_eq!(value(&report, "tracked"), 100_000);
    assert_eq!(value(&report, "evicted"), 200_000);
    let hwm = value(&report, "VmHWM");
    assert!(
        hwm <= MAX_HWM_KIB / 4,
        "VmHWM {hwm} KiB with 100,000 sockets"
    );
}
