//! The collector replaying a recording (no root): the recording's clock is "now" for ticks,
//! settles and in-progress ages; losses come from its TICK and END records; `--duration` keeps
//! its first part; a cut file still yields what precedes the cut, then the error.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use tracer_common::{AF_INET, FilterConfig, RawEvent, kind, tcp_state};

use crate::{
    engine::{Collector, Ended, Sink},
    model::{Step, TcpState},
    source::recording::{Header, Record, format},
};

const S: u64 = 1_000_000_000;
const START: u64 = 1_000 * S;

fn header() -> Header {
    Header {
        flags: format::FLAG_TIMEWAIT_FOLLOWED,
        start_boot_ns: START,
        start_realtime_ns: 1_780_000_000 * S as i64,
        filter: FilterConfig::default(),
        tracer_version: "test".into(),
        hostname: "h".into(),
    }
}

fn change(ts_ns: u64, sk: u64, sport: u16, old: u8, new: u8) -> Record {
    let mut raw = RawEvent {
        ts_ns,
        sk,
        kind: kind::STATE_CHANGE,
        old_state: old,
        new_state: new,
        family: AF_INET,
        sport,
        dport: 80,
        ..Default::default()
    };
    raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    raw.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    Record::Event(raw)
}

/// Two connections established at +0.5 s (one ends at +1.2 s), ticks at +1 s and +2 s, end at
/// +2.5 s with 4 events lost.
fn recording() -> Vec<u8> {
    use tcp_state::*;
    let records = [
        change(START + S / 2, 1, 5000, SYN_SENT, ESTABLISHED),
        change(START + S / 2, 2, 5001, SYN_SENT, ESTABLISHED),
        Record::Tick {
            now_ns: START + S,
            lost: 2,
        },
        change(START + 1200 * S / 1000, 2, 5001, ESTABLISHED, CLOSE),
        Record::Tick {
            now_ns: START + 2 * S,
            lost: 3,
        },
        Record::End {
            end_ns: START + 5 * S / 2,
            lost: 4,
            events: 3,
        },
    ];
    let mut bytes = header().encode();
    for r in records {
        r.encode(&mut bytes);
    }
    bytes
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tracer-unit-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Records the collector's "now" at each tick.
#[derive(Default)]
struct Ticks(Vec<u64>);

impl Sink for Ticks {
    fn step(&mut self, _: &Step) -> Result<()> {
        Ok(())
    }
    fn tick(&mut self, c: &Collector) -> Result<()> {
        self.0.push(c.now_ns());
        Ok(())
    }
}

fn replay(path: &Path, duration: Option<Duration>) -> (Collector, Ticks, Ended) {
    let mut collector = Collector::replay(path, &FilterConfig::default()).unwrap();
    let mut ticks = Ticks::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = rt
        .block_on(collector.run(duration, Duration::from_secs(1), &mut ticks))
        .unwrap();
    (collector, ticks, ended)
}

#[test]
fn a_replay_runs_on_the_recordings_clock() {
    let path = file("clock.trc", &recording());
    let (mut c, ticks, ended) = replay(&path, None);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ended, Ended::Recording);
    assert_eq!(ticks.0, [START + S, START + 2 * S]);
    assert_eq!(c.now_ns(), START + 5 * S / 2);
    let counters = c.counters();
    assert_eq!((counters.events, counters.lost), (3, 4));
    let established = c.summary(TcpState::Established);
    assert_eq!(established.count, 1);
    let p50_ms = established.p50_ns / 1_000_000;
    assert!(
        (699..=701).contains(&p50_ms),
        "700 ms, to hdrhistogram's precision: {p50_ms}"
    );
    assert_eq!(established.in_progress, 1);
    assert_eq!(
        established.oldest_in_progress_ns,
        2 * S,
        "aged at the END time"
    );
    assert_eq!(c.clock().realtime_ns(START), 1_780_000_000 * S as i64);
    c.finish().unwrap();
}

#[test]
fn a_replay_duration_keeps_the_first_part() {
    let path = file("duration.trc", &recording());
    let (c, ticks, ended) = replay(&path, Some(Duration::from_millis(1100)));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ended, Ended::Duration);
    assert_eq!(ticks.0, [START + S]);
    assert_eq!(c.now_ns(), START + 1100 * S / 1000);
    assert_eq!((c.counters().events, c.counters().lost), (2, 2));
    assert_eq!(c.summary(TcpState::Established).in_progress, 2);
}

#[test]
fn a_cut_replay_keeps_what_precedes_the_cut_then_fails() {
    let bytes = recording();
    let cut = bytes.len() - 40; // inside the second TICK record
    let path = file("cut.trc", &bytes[..cut]);
    let (mut c, _, ended) = replay(&path, None);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ended, Ended::Recording);
    assert_eq!(c.counters().events, 3);
    assert_eq!(
        (c.counters().lost, c.now_ns()),
        (2, START + 1200 * S / 1000)
    );
    let error = c.finish().unwrap_err().to_string();
    let at = format::HEADER_LEN + 3 * 100 + 23;
    assert!(
        error.contains(&format!(
            "truncated record at byte {at}: 14 of 23 bytes present"
        )),
        "{error}"
    );
    assert!(error.contains("the 3 events before it"), "{error}");
    assert!(c.finish().is_ok(), "reported once");
}
