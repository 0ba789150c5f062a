//! The loop every live subcommand shares: ring buffer -> model -> stats, until a duration,
//! Ctrl-C or SIGTERM, with a periodic tick. Nothing queued in the ring buffer is dropped at exit.
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tracer_common::{FilterConfig, RawEvent};

use crate::{
    model::{Event, Model, Step},
    output::{clock::boot_ns, table::Counters},
    probe::{DEFAULT_RING_BYTES, Probe},
    stats::{StateStats, StateSummary},
};

/// What a subcommand does with the results as they come.
pub trait Sink {
    fn step(&mut self, step: &Step) -> Result<()>;
    fn tick(&mut self, collector: &Collector) -> Result<()>;
}

/// Why collection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Duration,
    Signal,
}

pub struct Collector {
    probe: Probe,
    pub model: Model,
    pub stats: StateStats,
    pub undecodable: u64,
    pub events: u64,
    /// When collection started, in boot-time ns.
    pub started_ns: u64,
    raw: Vec<RawEvent>,
}

/// The kernel filter, applied to pre-existing sockets too.
fn seed_passes(filter: &FilterConfig, seed: &crate::model::Seed) -> bool {
    let family = if seed.tuple.local.is_ipv4() {
        tracer_common::AF_INET
    } else {
        tracer_common::AF_INET6
    };
    filter.accepts(family, seed.tuple.local_port, seed.tuple.remote_port)
}

impl Collector {
    pub fn attach(filter: &FilterConfig) -> Result<Collector> {
        let probe = Probe::attach(filter, DEFAULT_RING_BYTES)?;
        if !probe.timewait_supported {
            eprintln!(
                "warning: tw_timer_handler not found in /proc/kallsyms: TIME_WAIT is not followed"
            );
        }
        // After attaching, so a socket that changes meanwhile is seen live, and the live
        // stream takes each seed over the first time it reports that socket.
        let mut model = Model::new();
        match crate::snapshot::take() {
            Ok(snap) => model.seed(
                crate::snapshot::seeds(&snap)
                    .into_iter()
                    .filter(|seed| seed_passes(filter, seed)),
            ),
            Err(e) => eprintln!("warning: no snapshot of existing sockets ({e:#})"),
        }
        Ok(Collector {
            probe,
            model,
            stats: StateStats::new(),
            undecodable: 0,
            events: 0,
            started_ns: boot_ns(),
            raw: Vec::with_capacity(4096),
        })
    }

    fn process(&mut self, sink: &mut dyn Sink) -> Result<()> {
        for raw in std::mem::take(&mut self.raw) {
            self.events += 1;
            let Ok(event) = Event::try_from(&raw) else {
                self.undecodable += 1;
                continue;
            };
            for step in self.model.apply(&event) {
                self.stats.record(&step);
                sink.step(&step)?;
            }
        }
        Ok(())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            events: self.events,
            lost: self.probe.lost().unwrap_or(0),
            undecodable: self.undecodable,
        }
    }

    /// Per-state summaries as of now, sockets still in a state included.
    pub fn summaries(&self) -> Vec<StateSummary> {
        self.stats.summaries(&self.model.in_progress(boot_ns()))
    }

    pub fn summary(&self, state: crate::model::TcpState) -> StateSummary {
        self.stats
            .summary(state, &self.model.in_progress(boot_ns()))
    }

    /// Runs until `duration`, Ctrl-C or SIGTERM, ticking the sink every `tick`.
    pub async fn run(
        &mut self,
        duration: Option<Duration>,
        tick: Duration,
        sink: &mut dyn Sink,
    ) -> Result<Ended> {
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        let drain_every = Duration::from_millis(tracer_common::DRAIN_INTERVAL_MS);
        let mut drain = tokio::time::interval(drain_every);
        let ended = loop {
            let mut raw = std::mem::take(&mut self.raw);
            tokio::select! {
                read = self.probe.read(&mut raw) => {
                    read?;
                    self.raw = raw;
                    self.process(sink)?;
                    continue;
                }
                _ = drain.tick() => {
                    self.raw = raw;
                    self.probe.drain(&mut self.raw);
                    self.process(sink)?;
                    continue;
                }
                _ = ticker.tick() => {
                    self.raw = raw;
                    self.settle(sink)?;
                    sink.tick(self)?;
                    continue;
                }
                _ = &mut deadline => { self.raw = raw; break Ended::Duration }
                _ = interrupt.recv() => { self.raw = raw; break Ended::Signal }
                _ = terminate.recv() => { self.raw = raw; break Ended::Signal }
            }
        };
        self.probe.drain(&mut self.raw);
        self.process(sink)?;
        self.settle(sink)?;
        Ok(ended)
    }

    /// Ends timewaits whose early end became certain with the passing of time.
    fn settle(&mut self, sink: &mut dyn Sink) -> Result<()> {
        for step in self.model.finish(boot_ns()) {
            self.stats.record(&step);
            sink.step(&step)?;
        }
        Ok(())
    }
}
