//! The replay side of the collect loop: a recording fed as fast as it reads, on the
//! recording's own clock, ticking the sink as that clock passes each tick.
use std::time::Duration;

use anyhow::Result;

use super::{Collector, Ended, Sink, Source};
use crate::source::recording::Record;

/// A replay with a gap longer than this many ticks ticks once for the whole gap.
const MAX_CATCH_UP_TICKS: u64 = 100_000;

impl Collector {
    /// Feeds a recording without sleeping. TICK records settle as the recorder's clock did;
    /// the sink ticks each time the recording's time passes another `tick`. A read error ends
    /// the replay like its end would; [`Collector::finish`] returns it.
    pub(super) fn run_replay(
        &mut self,
        duration: Option<Duration>,
        tick: Duration,
        sink: &mut dyn Sink,
    ) -> Result<Ended> {
        let tick_ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        let cutoff = duration.map(|d| {
            let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.started_ns.saturating_add(d)
        });
        let mut next_tick = self.started_ns.saturating_add(tick_ns);
        let ended = loop {
            let Source::Replay(replay) = &mut self.source else {
                break Ended::Recording;
            };
            let Some(record) = replay.next_record() else {
                break Ended::Recording;
            };
            let at = match record {
                Record::Event(raw) => raw.ts_ns,
                Record::Tick { now_ns, .. } => now_ns,
                Record::End { end_ns, .. } => end_ns,
            };
            if let Some(cutoff) = cutoff.filter(|&c| at >= c) {
                self.replay_until(cutoff, &mut next_tick, tick_ns, sink)?;
                break Ended::Duration;
            }
            self.replay_until(at, &mut next_tick, tick_ns, sink)?;
            match record {
                Record::Event(raw) => {
                    if matches!(&self.source, Source::Replay(r) if r.accepts(&raw)) {
                        self.apply(&raw, sink)?;
                    }
                }
                Record::Tick { lost, .. } => {
                    self.set_replay_lost(lost);
                    self.settle(sink)?;
                }
                Record::End { lost, .. } => {
                    self.set_replay_lost(lost);
                    break Ended::Recording;
                }
            }
        };
        self.settle(sink)?;
        Ok(ended)
    }

    /// Moves the replay clock to `at`, ticking the sink at each `tick` boundary passed.
    fn replay_until(
        &mut self,
        at: u64,
        next_tick: &mut u64,
        tick_ns: u64,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        if at >= *next_tick && (at - *next_tick) / tick_ns > MAX_CATCH_UP_TICKS {
            *next_tick = at - (at - *next_tick) % tick_ns;
        }
        while *next_tick <= at {
            self.set_replay_now(*next_tick);
            self.settle(sink)?;
            sink.tick(self)?;
            *next_tick = next_tick.saturating_add(tick_ns);
        }
        self.set_replay_now(at);
        Ok(())
    }

    fn set_replay_now(&mut self, at: u64) {
        if let Source::Replay(replay) = &mut self.source {
            replay.now_ns = replay.now_ns.max(at);
        }
    }

    fn set_replay_lost(&mut self, lost: u64) {
        if let Source::Replay(replay) = &mut self.source {
            replay.lost = lost;
        }
    }
}

#[cfg(test)]
mod tests;
