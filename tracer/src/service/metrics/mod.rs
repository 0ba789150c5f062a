//! Prometheus metrics for `tracer run --metrics`: what the steps of the model become as metric
//! families (prometheus-client), and the bound on label cardinality ([`limiter`]).
//!
//! | metric                               | type      | labels                          |
//! |--------------------------------------|-----------|---------------------------------|
//! | `tracer_state_duration_seconds`      | histogram | `state`                         |
//! | `tracer_transitions_total`           | counter   | `from`, `to`                    |
//! | `tracer_connection_ends_total`       | counter   | `service`, `role`, `initiator`  |
//! | `tracer_sockets_in_state`            | gauge     | `state`                         |
//! | `tracer_tracked_sockets`             | gauge     |                                 |
//! | `tracer_events_received_total`       | counter   |                                 |
//! | `tracer_events_lost_total`           | counter   |                                 |
//! | `tracer_events_undecodable_total`    | counter   |                                 |
//! | `tracer_sockets_evicted_total`       | counter   |                                 |
//! | `tracer_transitions_not_seen_total`  | counter   |                                 |
//! | `tracer_forecast_*` ([`forecasts`])  | gauge     | `limit`, `destination`, `process` |
//!
//! The histogram, transition and end counters are fed by every [`Step`] as it comes; the
//! gauges and event counters are refreshed from the collector on every tick ([`refresh_tick`]),
//! since the collector is busy in its loop and cannot be asked at scrape time.
pub mod forecasts;
pub mod limiter;
pub mod server;

#[cfg(test)]
mod tests;

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::{
    engine::EventCounts,
    model::{CloseKind, InProgress, Open, Role, Step, TcpState},
};
pub use limiter::{MAX_SERVICES, OTHER, ServiceLimiter};

/// Upper bounds (seconds) of the time-in-state histogram's buckets: 1-2-5 per decade from
/// 1 µs to 100 s, then 120 s, so a normal TIME_WAIT (60 s plus the timer wheel's rounding)
/// and one killed early (seconds) fall in different buckets. Longer dwells go to `+Inf`.
pub const DURATION_BUCKETS: [f64; 26] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
    0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 120.0,
];

/// How often the gauges are refreshed at most, whatever `--interval` is.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: &'static str,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    service: String,
    role: &'static str,
    initiator: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The handles steps and ticks are recorded through. The metrics themselves live in the
/// [`Registry`] given to [`Metrics::new`] (the handles share them), which the HTTP server
/// encodes on every scrape: nothing here needs a lock of its own.
#[derive(Debug)]
pub struct Metrics {
    durations: Family<StateLabels, Histogram, fn() -> Histogram>,
    transitions: Family<TransitionLabels, Counter>,
    ends: Family<EndLabels, Counter>,
    in_state: Family<StateLabels, Gauge>,
    tracked: Gauge,
    events: Counter,
    lost: Counter,
    undecodable: Counter,
    evicted: Counter,
    gaps: Counter,
    services: ServiceLimiter,
    forecasts: forecasts::ForecastMetrics,
}

impl Metrics {
    /// Registers every metric in `registry` (under the `tracer_` prefix) and returns the
    /// handles to record through.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            durations: Family::new_with_constructor(duration_histogram),
            transitions: Family::default(),
            ends: Family::default(),
            in_state: Family::default(),
            tracked: Gauge::default(),
            events: Counter::default(),
            lost: Counter::default(),
            undecodable: Counter::default(),
            evicted: Counter::default(),
            gaps: Counter::default(),
            services: ServiceLimiter::default(),
            forecasts: forecasts::ForecastMetrics::new(registry),
        };
        let r = registry.sub_registry_with_prefix("tracer");
        r.register_with_unit(
            "state_duration",
            "Time sockets spent in a TCP state before leaving it (only when its start was seen)",
            Unit::Seconds,
            m.durations.clone(),
        );
        r.register(
            "transitions",
            "TCP state transitions seen, by old and new state",
            m.transitions.clone(),
        );
        r.register(
            "connection_ends",
            format!(
                "Connections ended, by service (address:port; after {MAX_SERVICES} distinct \
                 services the rest count as \"{OTHER}\"), role and who closed first"
            ),
            m.ends.clone(),
        );
        r.register(
            "sockets_in_state",
            "Tracked sockets currently in each TCP state",
            m.in_state.clone(),
        );
        r.register(
            "tracked_sockets",
            "Sockets (and timewait sockets) currently tracked",
            m.tracked.clone(),
        );
        r.register(
            "events_received",
            "Events read from the kernel's ring buffer",
            m.events.clone(),
        );
        r.register(
            "events_lost",
            "Events the kernel could not queue (ring buffer full)",
            m.lost.clone(),
        );
        r.register(
            "events_undecodable",
            "Events read but not understood",
            m.undecodable.clone(),
        );
        r.register(
            "sockets_evicted",
            "Sockets dropped because the model's tables were full (--max-sockets): their later \
             transitions give no duration",
            m.evicted.clone(),
        );
        r.register(
            "transitions_not_seen",
            "Transitions sockets must have made that never arrived, inferred from what came \
             next (lost events, or changes the kernel did not hand to eBPF)",
            m.gaps.clone(),
        );
        m.refresh(&[], &EventCounts::default());
        m
    }

    /// Counts one step: its transition, the time spent in the state it left (when known) and
    /// the connection end it carries (if any).
    pub fn record(&mut self, step: &Step) {
        self.transitions
            .get_or_create(&TransitionLabels {
                from: step.from.name(),
                to: step.to.name(),
            })
            .inc();
        if let Some(ns) = step.dwell_ns {
            self.durations
                .get_or_create(&StateLabels {
                    state: step.from.name(),
                })
                .observe(ns as f64 / 1e9);
        }
        if let Some(end) = step.end {
            let labels = EndLabels {
                service: self.services.label(&end.service),
                role: role_label(end.role),
                initiator: initiator_label(end.kind),
            };
            self.ends.get_or_create(&labels).inc();
        }
    }

    /// Counts `n` sockets that spent `ns` in `state` (kernel aggregation's histograms).
    pub fn record_dwell(&mut self, state: TcpState, ns: u64, n: u64) {
        let histogram = self.durations.get_or_create(&StateLabels {
            state: state.name(),
        });
        for _ in 0..n {
            histogram.observe(ns as f64 / 1e9);
        }
    }

    /// Sets the gauges to the sockets in progress now, and the event counters to the
    /// collector's. Every state but CLOSE (no socket is followed in it) is set, 0 when empty,
    /// so each series exists from the start.
    pub fn refresh(&self, in_progress: &[InProgress], counters: &EventCounts) {
        let mut open = [Open::default(); TcpState::ALL.len()];
        for p in in_progress {
            if let Some(o) = open.get_mut(p.state.index()) {
                o.count += 1;
            }
        }
        self.refresh_open(&open, counters);
    }

    /// [`Metrics::refresh`] from the sockets counted in the model's tables
    /// ([`crate::model::Model::open_by_state`]) instead of copied out of them, which with a
    /// million open sockets would take 130 MiB every refresh.
    pub fn refresh_open(&self, open: &[Open], counters: &EventCounts) {
        for state in TcpState::ALL.into_iter().filter(|s| *s != TcpState::Close) {
            let count = open.get(state.index()).map_or(0, |o| o.count);
            self.in_state
                .get_or_create(&StateLabels {
                    state: state.name(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let tracked: u64 = open.iter().map(|o| o.count).sum();
        self.tracked.set(i64::try_from(tracked).unwrap_or(i64::MAX));
        for (counter, total) in [
            (&self.events, counters.events),
            (&self.lost, counters.lost),
            (&self.undecodable, counters.undecodable),
            (&self.evicted, counters.evicted),
            (&self.gaps, counters.gaps),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Replaces the forecast gauges with the latest forecasts.
    pub fn refresh_forecasts(&self, latest: &crate::service::doctor::live::Forecasts) {
        self.forecasts.refresh(latest);
    }

    /// The service label limiter, for what it admitted and folded.
    pub fn services(&self) -> &ServiceLimiter {
        &self.services
    }
}

/// The `role` label value.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
        Role::Listener => "listener",
        Role::Unknown => "unknown",
    }
}

/// The `initiator` label value: the snake_case name of the [`CloseKind`], as in `--json`.
pub fn initiator_label(kind: CloseKind) -> &'static str {
    match kind {
        CloseKind::LocalFirst => "local_first",
        CloseKind::PeerFirst => "peer_first",
        CloseKind::Simultaneous => "simultaneous",
        CloseKind::RstSent => "rst_sent",
        CloseKind::RstReceived => "rst_received",
        CloseKind::ConnectFailed => "connect_failed",
        CloseKind::HandshakeIncomplete => "handshake_incomplete",
        CloseKind::Aborted => "aborted",
    }
}

/// The collector's tick when metrics are on, and how many ticks make one `interval`: the
/// largest period of at most [`REFRESH`] that divides `interval` evenly, so the gauges are
/// at most about a second old and the summaries still come exactly every `interval`.
pub fn refresh_tick(interval: Duration) -> (Duration, u32) {
    if interval <= REFRESH {
        return (interval, 1);
    }
    let per = interval.as_nanos().div_ceil(REFRESH.as_nanos());
    let per = u32::try_from(per).unwrap_or(u32::MAX);
    (interval / per, per)
}
