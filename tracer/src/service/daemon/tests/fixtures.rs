//! What the socket and server tests share: a temporary directory, and a collector replayed from
//! a recording made up here.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use tracer_common::{FilterConfig, RawEvent, kind, tcp_state};

use crate::{
    engine::{Collector, Sink},
    model::Step,
    service::daemon::server::View,
    service::doctor::live::Forecasts,
    source::recording::{Header, Record},
    stats::{closes::CloseStats, window::History},
};

pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("tracer-daemon-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

pub(super) const S: u64 = 1_000_000_000;
pub(super) const START: u64 = 1_000 * S;
pub(super) const CONNECTIONS: u64 = 30;

fn change(ts_ns: u64, sk: u64, old: u8, new: u8) -> Record {
    let mut raw = RawEvent {
        ts_ns,
        sk,
        kind: kind::STATE_CHANGE,
        old_state: old,
        new_state: new,
        family: tracer_common::AF_INET,
        sport: 5000 + sk as u16,
        dport: 80,
        ..Default::default()
    };
    raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    raw.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    Record::Event(raw)
}

/// What a daemon answers from: the collector, its close statistics and its history.
pub(super) struct Collected {
    pub(super) collector: Collector,
    pub(super) closes: CloseStats,
    pub(super) history: History,
    pub(super) forecasts: Forecasts,
}

impl Collected {
    pub(super) fn view(&self) -> View<'_> {
        View {
            collector: &self.collector,
            closes: &self.closes,
            history: &self.history,
            forecasts: &self.forecasts,
        }
    }
}

/// Records as `tracer run` does for its control socket.
struct Daemonish {
    closes: CloseStats,
    history: History,
}

impl Sink for Daemonish {
    fn raw(&mut self, raw: &RawEvent) -> Result<()> {
        self.history.count_event(raw.ts_ns);
        Ok(())
    }
    fn step(&mut self, step: &Step) -> Result<()> {
        self.closes.record(step);
        self.history.record(step);
        Ok(())
    }
    fn tick(&mut self, _: &Collector) -> Result<()> {
        Ok(())
    }
}

/// The daemon's history slots in these tests: 1 s (edges on whole seconds of the recording).
pub(super) const SLOT: Duration = Duration::from_secs(1);

/// A replayed collector (no root): 30 connections established for 3 ms .. 2.7 s (the n-th
/// for 3 ms × n²), closing by aborts, and one still established at the end, 4 s after the
/// start; with its close statistics and a history of [`SLOT`] slots.
pub(super) fn collected(dir: &Path) -> Collected {
    let header = Header {
        flags: crate::source::recording::format::FLAG_TIMEWAIT_FOLLOWED,
        start_boot_ns: START,
        start_realtime_ns: 1_780_000_000 * S as i64,
        filter: FilterConfig::default(),
        tracer_version: "test".into(),
        hostname: "h".into(),
    };
    let mut bytes = header.encode();
    let mut events = 0;
    for sk in 1..=CONNECTIONS + 1 {
        change(START + sk, sk, tcp_state::SYN_SENT, tcp_state::ESTABLISHED).encode(&mut bytes);
        events += 1;
        if sk <= CONNECTIONS {
            let dwell = S / 1000 * sk * sk * 3;
            change(
                START + sk + dwell,
                sk,
                tcp_state::ESTABLISHED,
                tcp_state::CLOSE,
            )
            .encode(&mut bytes);
            events += 1;
        }
    }
    let end = Record::End {
        end_ns: START + 4 * S,
        lost: 0,
        events,
    };
    end.encode(&mut bytes);
    let path = dir.join("rec.trc");
    fs::write(&path, bytes).unwrap();
    let mut collector = Collector::replay(&path, &FilterConfig::default()).unwrap();
    let history = History::new(SLOT, collector.clock().realtime_ns(0));
    let mut sink = Daemonish {
        closes: CloseStats::default(),
        history,
    };
    let rt = runtime();
    rt.block_on(collector.run(None, Duration::from_secs(1), &mut sink))
        .unwrap();
    sink.history.advance(collector.now_ns());
    Collected {
        collector,
        closes: sink.closes,
        history: sink.history,
        forecasts: Forecasts::default(),
    }
}

/// Only the collector of [`collected`].
pub(super) fn collector(dir: &Path) -> Collector {
    collected(dir).collector
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
