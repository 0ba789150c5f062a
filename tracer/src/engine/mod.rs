//! The loop every analysis subcommand shares: events -> model -> stats, with a periodic tick.
//! The events come from a [`Source`]: the live ring buffer (until a duration, Ctrl-C or SIGTERM;
//! nothing queued is dropped at exit: [`live`]) or a recording (as fast as it reads, on the
//! recording's clock: [`replay`]). Everything time-dependent asks [`Collector::now_ns`], so both give the
//! same answers.
use std::{path::Path, sync::Arc};

use anyhow::Result;
use tokio::sync::Notify;
use tracer_common::{FilterConfig, RawEvent};

use crate::{
    filter,
    model::{Event, Model, Step},
    model::{Open, TcpState},
    source::probe::{DEFAULT_RING_BYTES, Detail, Probe},
    source::recording::Replay,
    stats::{StateStats, StateSummary},
    time::clock::{WallClock, boot_ns},
};

mod live;
mod replay;

/// The counts of the event stream, shown under every table so no loss is silent.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct EventCounts {
    pub events: u64,
    pub lost: u64,
    pub undecodable: u64,
    /// Sockets (and timewaits, listeners, snapshot sockets, held ends) the model dropped
    /// because its tables were full: their later transitions give no duration.
    pub evicted: u64,
    /// The full-socket cap (`--max-sockets`) those tables are sized from.
    pub max_sockets: u64,
    /// Transitions sockets must have made that never arrived, inferred from what came next
    /// ([`crate::model::Anomalies::gaps`]): lost events, or changes the kernel did not hand
    /// to eBPF at all.
    pub gaps: u64,
}

/// What a subcommand does with the results as they come.
pub trait Sink {
    /// Every event as read, before decoding (`tracer record` writes them).
    fn raw(&mut self, _raw: &RawEvent) -> Result<()> {
        Ok(())
    }
    fn step(&mut self, step: &Step) -> Result<()>;
    fn tick(&mut self, collector: &Collector) -> Result<()>;
    /// Notified when queries from outside (the daemon's control socket) wait for answers that
    /// need the collector: the live loop then reads what the kernel has queued and calls
    /// [`Sink::answer`]. `None` (the default): there are none.
    fn queries(&self) -> Option<Arc<Notify>> {
        None
    }
    fn answer(&mut self, _collector: &Collector) -> Result<()> {
        Ok(())
    }
    /// `n` sockets spent `ns` in `state`, counted by kernel aggregation (whose steps carry no
    /// durations), read at `now_ns`.
    fn dwell(&mut self, _now_ns: u64, _state: TcpState, _ns: u64, _n: u64) -> Result<()> {
        Ok(())
    }
    /// `n` TIME_WAITs of the tracer's own network namespace lasted `ns`, and `early` of the
    /// TIME_WAITs counted so far were killed before their timer ran out: counted by kernel
    /// aggregation again (already in [`Sink::dwell`]) for that namespace's forecasts.
    fn home_time_waits(&mut self, _ns: u64, _n: u64, _early: u64) {}
}

/// Why collection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Duration,
    Signal,
    /// A replay read its recording to the end, or to the first unreadable byte.
    Recording,
}

/// Where the events come from.
#[allow(
    clippy::large_enum_variant,
    reason = "one per collector, never moved on a hot path; a replay holds two filters"
)]
pub enum Source {
    Live(Probe),
    Replay(Replay),
}

pub struct Collector {
    source: Source,
    pub model: Model,
    pub stats: StateStats,
    pub undecodable: u64,
    pub events: u64,
    /// When collection started, in boot-time ns (a replay: when the recording started).
    pub started_ns: u64,
    clock: WallClock,
    raw: Vec<RawEvent>,
    /// The steps of one event (or one settling), reused: no allocation per event.
    steps: Vec<Step>,
    /// The last lost count read from the kernel, shown again (with one warning) if a later
    /// read fails, rather than a silent 0.
    last_lost: std::cell::Cell<u64>,
    lost_warned: std::cell::Cell<bool>,
    /// Durations kernel aggregation counted, read but not yet handed on (reused).
    dwell: Vec<(usize, u64)>,
    /// A read of those durations failed (said once).
    dwell_warned: bool,
}

impl Collector {
    /// Live from the kernel when `from` is `None` (with kernel aggregation where it works),
    /// else replaying that recording narrowed by `filter`.
    pub fn new(filter: &FilterConfig, from: Option<&Path>) -> Result<Collector> {
        Collector::open(filter, from, DEFAULT_RING_BYTES, Detail::Lives)
    }

    /// [`Collector::new`] with the ring buffer's size in bytes and what the command needs
    /// (when live).
    pub fn open(
        filter: &FilterConfig,
        from: Option<&Path>,
        ring_bytes: u32,
        detail: Detail,
    ) -> Result<Collector> {
        match from {
            None => Collector::attach_with_ring(filter, ring_bytes, detail),
            Some(path) => Collector::replay(path, filter),
        }
    }

    /// Live, every transition sent to userspace.
    pub fn attach(filter: &FilterConfig) -> Result<Collector> {
        Collector::attach_with_ring(filter, DEFAULT_RING_BYTES, Detail::Transitions)
    }

    fn attach_with_ring(
        filter: &FilterConfig,
        ring_bytes: u32,
        detail: Detail,
    ) -> Result<Collector> {
        let mut probe = Probe::attach(filter, ring_bytes, detail)?;
        let (started, clock) = (boot_ns(), WallClock::now());
        // The probe has already said which TIME_WAIT hooks it uses, or why there are none.
        // After attaching, so a socket that changes meanwhile is seen live; the live stream
        // takes each seed over the first time it reports that socket. The kernel filter
        // applies to these sockets too.
        let mut seeds = match crate::source::snapshot::take() {
            Ok(snap) => crate::source::snapshot::seeds(&snap),
            Err(e) => {
                log::warn!("no snapshot of existing sockets ({e:#})");
                Vec::new()
            }
        };
        // The kernel side of an owner filter cannot know who owns these: tell it.
        let mut seed_filter = filter::SeedFilter::new(filter);
        for seed in seeds.iter().filter(|s| seed_filter.needs_following(s)) {
            let (family, local) = filter::kernel_addr(seed.tuple.local);
            let (_, remote) = filter::kernel_addr(seed.tuple.remote);
            probe.follow_existing(
                seed.netns,
                family,
                (local, seed.tuple.local_port),
                (remote, seed.tuple.remote_port),
                seed.state == crate::model::TcpState::Listen,
            )?;
        }
        seeds.retain(|seed| seed_filter.passes(seed));
        let mut collector = Collector::with_source(Source::Live(probe), started, clock);
        collector.model.seed(seeds);
        Ok(collector)
    }

    /// Opens a recording (checking its header) and says on stderr what it replays.
    pub fn replay(path: &Path, filter: &FilterConfig) -> Result<Collector> {
        let replay = Replay::open(path, *filter)?;
        log::info!("{}", replay.banner());
        if !replay.header().timewait_followed() {
            log::warn!("TIME_WAIT was not followed when this recording was made");
        }
        let (started, clock) = (replay.header().start_boot_ns, replay.clock());
        Ok(Collector::with_source(
            Source::Replay(replay),
            started,
            clock,
        ))
    }

    fn with_source(source: Source, started_ns: u64, clock: WallClock) -> Collector {
        Collector {
            source,
            model: Model::new(),
            stats: StateStats::new(),
            undecodable: 0,
            events: 0,
            started_ns,
            clock,
            raw: Vec::with_capacity(4096),
            steps: Vec::with_capacity(16),
            last_lost: std::cell::Cell::new(0),
            lost_warned: std::cell::Cell::new(false),
            dwell: Vec::new(),
            dwell_warned: false,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.source, Source::Replay(_))
    }

    /// Boot-time ns "now": the clock when live, the recording's latest time when replaying
    /// (its end time once it has been read).
    pub fn now_ns(&self) -> u64 {
        match &self.source {
            Source::Live(_) => boot_ns(),
            Source::Replay(replay) => replay.now_ns,
        }
    }

    /// Turns boot-time ns into wall-clock time of the host the events come from.
    pub fn clock(&self) -> WallClock {
        self.clock
    }

    /// Whether TIME_WAIT is (or was, for a recording) followed.
    pub fn timewait_followed(&self) -> bool {
        match &self.source {
            Source::Live(probe) => probe.timewait_supported,
            Source::Replay(replay) => replay.header().timewait_followed(),
        }
    }

    fn apply(&mut self, raw: &RawEvent, sink: &mut dyn Sink) -> Result<()> {
        self.events += 1;
        sink.raw(raw)?;
        let Ok(event) = Event::try_from(raw) else {
            self.undecodable += 1;
            return Ok(());
        };
        log::trace!("{event:?}");
        self.steps_from(sink, |model, steps| model.apply_into(&event, steps))
    }

    /// Lets the model `produce` steps into the reused buffer, then records them and hands them
    /// to the sink.
    fn steps_from(
        &mut self,
        sink: &mut dyn Sink,
        produce: impl FnOnce(&mut Model, &mut Vec<Step>),
    ) -> Result<()> {
        let mut steps = std::mem::take(&mut self.steps);
        produce(&mut self.model, &mut steps);
        let mut handed = Ok(());
        for step in &steps {
            self.stats.record(step);
            handed = sink.step(step);
            if handed.is_err() {
                break;
            }
        }
        steps.clear();
        self.steps = steps;
        handed
    }

    fn process(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let mut raw = std::mem::take(&mut self.raw);
        for r in raw.drain(..) {
            self.apply(&r, sink)?;
        }
        self.raw = raw;
        Ok(())
    }

    pub fn counters(&self) -> EventCounts {
        EventCounts {
            events: self.events,
            lost: match &self.source {
                Source::Live(probe) => self.live_lost(probe),
                Source::Replay(replay) => replay.lost,
            },
            undecodable: self.undecodable,
            evicted: self.model.evictions().total(),
            max_sockets: self.model.limits().sockets as u64,
            gaps: self
                .model
                .anomalies()
                .gaps()
                .saturating_add(self.kernel_ends_not_seen()),
        }
    }

    /// Timewaits followed in the kernel whose end never came (their slot was taken back by a
    /// new timewait of their tuple): the model counts the same among its gaps.
    fn kernel_ends_not_seen(&self) -> u64 {
        let Some(lives) = self.lives() else {
            return 0;
        };
        match lives.timewait_counts() {
            Ok(c) => c.end_not_seen,
            Err(e) => {
                log::debug!("{e:#}");
                0
            }
        }
    }

    fn live_lost(&self, probe: &Probe) -> u64 {
        match probe.lost() {
            Ok(n) => {
                self.last_lost.set(n);
                n
            }
            Err(e) => {
                if !self.lost_warned.replace(true) {
                    log::warn!("{e:#}: the lost count shown is the last one read");
                }
                self.last_lost.get()
            }
        }
    }

    /// Per-state summaries as of now, sockets still in a state included.
    pub fn summaries(&self) -> Vec<StateSummary> {
        self.summaries_of(&self.stats)
    }

    pub fn summary(&self, state: crate::model::TcpState) -> StateSummary {
        self.summary_of(&self.stats, state)
    }

    /// [`Collector::summaries`] of other durations (the daemon's, over an interval), with the
    /// sockets still in each state now.
    pub fn summaries_of(&self, stats: &StateStats) -> Vec<StateSummary> {
        crate::stats::summaries(stats, &self.open_by_state(self.now_ns()))
    }

    pub fn summary_of(&self, stats: &StateStats, state: crate::model::TcpState) -> StateSummary {
        crate::stats::summary(stats, state, &self.open_by_state(self.now_ns()))
    }

    /// The sockets in each state at `now_ns` ([`Model::open_by_state`]), with those whose
    /// life the kernel follows (kernel aggregation).
    pub fn open_by_state(&self, now_ns: u64) -> [Open; TcpState::ALL.len()] {
        let mut open = self.model.open_by_state(now_ns);
        if let Some(lives) = self.lives() {
            for (state, since_ns, sk) in lives.open() {
                // A child the kernel took over a moment ago, still in the model's SYN_RECV
                // until its flagged change is read: counted once, there.
                if self.model.holds(sk) {
                    continue;
                }
                if let Some(o) = open.get_mut(state.index()) {
                    o.add(now_ns.saturating_sub(since_ns), true);
                }
            }
            for (state, since_ns) in lives.timewaits_open() {
                if let Some(o) = open.get_mut(state.index()) {
                    o.add(now_ns.saturating_sub(since_ns), true);
                }
            }
        }
        open
    }

    /// Kernel aggregation's maps, when live and chosen.
    fn lives(&self) -> Option<&crate::source::probe::aggregate::Lives> {
        match &self.source {
            Source::Live(probe) => probe.lives.as_ref(),
            Source::Replay(_) => None,
        }
    }

    /// Call once the results are out: the error that cut a replay short, if any (what came
    /// before it has been processed and reported by then).
    pub fn finish(&mut self) -> Result<()> {
        match &mut self.source {
            Source::Replay(replay) => replay.take_error().map_or(Ok(()), Err),
            Source::Live(_) => Ok(()),
        }
    }
}
