//! The live side of the collect loop: ring-buffer events as they come (until a duration,
//! Ctrl-C or SIGTERM; nothing queued is dropped at exit), a periodic tick, queries from the
//! daemon's control socket, and the durations kernel aggregation counted.
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::Notify,
};
use tracer_common::RawEvent;

use super::{Collector, Ended, Sink, Source};
use crate::source::probe::{Probe, aggregate::Counted};

impl Collector {
    /// Runs until `duration`, Ctrl-C or SIGTERM (a replay: to the end of the recording, or its
    /// first `duration`), ticking the sink every `tick`.
    pub async fn run(
        &mut self,
        duration: Option<Duration>,
        tick: Duration,
        sink: &mut dyn Sink,
    ) -> Result<Ended> {
        if self.is_replay() {
            return self.run_replay(duration, tick, sink);
        }
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        let drain_every = Duration::from_millis(tracer_common::DRAIN_INTERVAL_MS);
        let mut drain = tokio::time::interval(drain_every);
        let queries = sink.queries();
        let ended = loop {
            let mut raw = std::mem::take(&mut self.raw);
            tokio::select! {
                read = read_live(&mut self.source, &mut raw) => {
                    read?;
                    self.raw = raw;
                    self.process(sink)?;
                    continue;
                }
                _ = drain.tick() => {
                    self.raw = raw;
                    drain_live(&mut self.source, &mut self.raw);
                    self.process(sink)?;
                    self.take_dwell(self.now_ns(), sink)?;
                    continue;
                }
                _ = ticker.tick() => {
                    self.raw = raw;
                    self.settle(sink)?;
                    sink.tick(self)?;
                    continue;
                }
                _ = notified(queries.as_deref()) => {
                    // Answers include every event the kernel reported before the query: the
                    // rings' reorder horizon is waited out first.
                    self.raw = raw;
                    if let Source::Live(probe) = &self.source {
                        tokio::time::sleep(probe.reorder_delay()).await;
                    }
                    drain_live(&mut self.source, &mut self.raw);
                    self.process(sink)?;
                    self.settle(sink)?;
                    sink.answer(self)?;
                    continue;
                }
                _ = &mut deadline => { self.raw = raw; break Ended::Duration }
                _ = interrupt.recv() => { self.raw = raw; break Ended::Signal }
                _ = terminate.recv() => { self.raw = raw; break Ended::Signal }
            }
        };
        if let Source::Live(probe) = &mut self.source {
            // Everything, also what the reorder horizon still held.
            probe.drain_final(&mut self.raw);
        }
        self.process(sink)?;
        self.settle(sink)?;
        self.kills_at_exit(sink)?;
        Ok(ended)
    }

    /// The timewait kills the kernel had not settled (it does at its next event on that CPU):
    /// their steps, once the durations it did count are read. The programs stay attached
    /// until the process exits, but nothing reads the kernel's counts after this. A kill the
    /// kernel settles between that last read and this one is in neither: one lost end rather
    /// than one counted twice.
    fn kills_at_exit(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let now_ns = self.now_ns();
        let Some(lives) = self.lives() else {
            return Ok(());
        };
        let steps = lives.ended_at_exit(now_ns);
        self.steps_from(sink, |_, out| out.extend(steps))
    }

    /// Ends timewaits whose early end became certain with the passing of time, and takes in
    /// the durations kernel aggregation counted since the last time.
    pub(super) fn settle(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let now_ns = self.now_ns();
        self.steps_from(sink, |model, steps| model.finish_into(now_ns, steps))?;
        self.take_dwell(now_ns, sink)
    }

    /// Takes in the durations kernel aggregation counted since the last time (on every drain,
    /// so a daemon's time slots get them within [`tracer_common::DRAIN_INTERVAL_MS`]).
    fn take_dwell(&mut self, now_ns: u64, sink: &mut dyn Sink) -> Result<()> {
        let Source::Live(Probe {
            lives: Some(lives), ..
        }) = &mut self.source
        else {
            return Ok(());
        };
        let mut dwell = std::mem::take(&mut self.dwell);
        // A failed read is said once; what a later read finds is taken in then.
        if let Err(e) = lives.dwell_since(|at, n| dwell.push((at, n)))
            && !std::mem::replace(&mut self.dwell_warned, true)
        {
            log::warn!("{e:#}: durations counted in the kernel are late until a read works");
        }
        let mut handed = Ok(());
        let mut home = Vec::new();
        for &(at, n) in &dwell {
            match crate::source::probe::aggregate::bucket_at(at) {
                Some((Counted::State(state), ns)) => {
                    self.stats.record_dwell(state, ns, n);
                    if handed.is_ok() {
                        handed = sink.dwell(now_ns, state, ns, n);
                    }
                }
                Some((Counted::HomeTimeWait, ns)) => home.push((ns, n)),
                None => {}
            }
        }
        dwell.clear();
        self.dwell = dwell;
        if !home.is_empty() {
            // The early ones are counted with the ends that made them early.
            let early = match lives.home_early_since() {
                Ok(n) => n,
                Err(e) => {
                    log::debug!("{e:#}");
                    0
                }
            };
            for (i, (ns, n)) in home.into_iter().enumerate() {
                sink.home_time_waits(ns, n, if i == 0 { early } else { 0 });
            }
        }
        handed
    }
}

/// Waits for ring-buffer events; a replay has none to wait for (it never gets here).
async fn read_live(source: &mut Source, out: &mut Vec<RawEvent>) -> Result<()> {
    match source {
        Source::Live(probe) => probe.read(out).await,
        Source::Replay(_) => std::future::pending().await,
    }
}

async fn notified(queries: Option<&Notify>) {
    match queries {
        Some(queries) => queries.notified().await,
        None => std::future::pending().await,
    }
}

fn drain_live(source: &mut Source, out: &mut Vec<RawEvent>) {
    if let Source::Live(probe) = source {
        probe.drain(out);
    }
}
