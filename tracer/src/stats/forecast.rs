//! Forecasts from measured lifetimes, by Little's law: at a steady rate `λ` of things that each
//! last `W` on average, `λ × W` of them exist at once. For TIME_WAIT buckets `λ` is the rate at
//! which this host takes on timewait sockets and `W` their measured TIME_WAIT lifetime; for a
//! destination's local ports `λ` is the connect rate and `W` how long a port stays taken (the
//! connection's life, plus its TIME_WAIT when this side closed first). Against a limit, the
//! steady number says whether it will be reached; the count's growth over the window says when.
//! Nothing is forecast from too few lifetimes: the outlook is then [`Outlook::NotEnoughData`].
use serde::Serialize;

use super::turnover::{Destination, NetnsTurnover};
use crate::model::{Owner, Service};

/// TIME_WAIT lifetimes (per namespace or per destination) a forecast needs.
pub const MIN_TIME_WAIT_ENDS: u64 = 20;
/// Connection lives (connect to close) a port forecast needs.
pub const MIN_LIVES: u64 = 20;

/// What will happen at this rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "outlook", content = "secs", rename_all = "snake_case")]
pub enum Outlook {
    /// Too few lifetimes measured to say.
    NotEnoughData,
    /// The steady number stays below the limit.
    Fits,
    /// The limit is reached now.
    Reached,
    /// Reached in about this many seconds, at the count's growth over the window.
    In(f64),
    /// The steady number is over the limit but the count did not grow over the window.
    NotGrowing,
}

impl Outlook {
    fn of(steady: Option<f64>, limit: f64, now: f64, growth_per_sec: f64) -> Outlook {
        let Some(steady) = steady else {
            return Outlook::NotEnoughData;
        };
        if limit > 0.0 && now >= limit {
            Outlook::Reached
        } else if steady < limit || limit <= 0.0 {
            Outlook::Fits
        } else if growth_per_sec > 0.0 {
            Outlook::In((limit - now) / growth_per_sec)
        } else {
            Outlook::NotGrowing
        }
    }

    /// The limit will be (or is) reached at this rate.
    pub fn runs_out(self) -> bool {
        matches!(
            self,
            Outlook::Reached | Outlook::In(_) | Outlook::NotGrowing
        )
    }
}

/// A count at the start and end of a window of `secs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Count {
    pub before: u64,
    pub now: u64,
    pub secs: f64,
}

impl Count {
    pub fn growth_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            (self.now as f64 - self.before as f64) / self.secs
        } else {
            0.0
        }
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Timewait sockets of one namespace against `tcp_max_tw_buckets`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BucketForecast {
    pub timewaits_per_sec: f64,
    pub time_wait_ends: u64,
    pub ended_early: u64,
    pub mean_time_wait_secs: Option<f64>,
    pub p50_time_wait_secs: Option<f64>,
    pub p90_time_wait_secs: Option<f64>,
    /// Timewait sockets at once at this rate (`λ × W`).
    pub steady: Option<f64>,
    pub count: Count,
    pub max_tw_buckets: u64,
    #[serde(flatten)]
    pub outlook: Outlook,
    /// Once the table is full: connections per second that skip TIME_WAIT (TCPTimeWaitOverflow).
    pub overflow_per_sec: Option<f64>,
}

pub fn buckets(t: &NetnsTurnover, count: Count, max_tw_buckets: u64) -> BucketForecast {
    let per_sec = rate(t.timewaits_taken, count.secs);
    let mean = t.time_wait.mean_secs(MIN_TIME_WAIT_ENDS);
    let steady = mean.map(|w| per_sec * w);
    let max = max_tw_buckets as f64;
    let outlook = Outlook::of(steady, max, count.now as f64, count.growth_per_sec());
    // Full, the table frees max/W slots a second; the rest of the rate overflows.
    let overflow_per_sec = match (outlook.runs_out(), mean) {
        (true, Some(w)) if w > 0.0 => Some((per_sec - max / w).max(0.0)),
        _ => None,
    };
    BucketForecast {
        timewaits_per_sec: per_sec,
        time_wait_ends: t.time_wait.count,
        ended_early: t.time_wait.early,
        mean_time_wait_secs: mean,
        p50_time_wait_secs: mean.and(t.quantile_secs(0.5)),
        p90_time_wait_secs: mean.and(t.quantile_secs(0.9)),
        steady,
        count,
        max_tw_buckets,
        outlook,
        overflow_per_sec,
    }
}

/// Where a destination's TIME_WAIT lifetime came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasuredFor {
    Destination,
    /// Too few of the destination's own ended: its namespace's.
    Namespace,
}

/// One destination's local ports against the size of `ip_local_port_range`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortForecast {
    pub destination: Service,
    #[serde(skip)]
    pub owner: Option<Owner>,
    pub connects_per_sec: f64,
    /// Connection lives and TIME_WAIT lifetimes measured (destination's, else namespace's).
    pub lives_measured: u64,
    pub time_wait_ends: u64,
    pub connection_life_secs: Option<f64>,
    /// Share of the connections after which this side kept a TIME_WAIT (it closed first).
    pub time_wait_share: Option<f64>,
    pub time_wait_secs: Option<f64>,
    pub time_wait_measured_for: Option<MeasuredFor>,
    /// How long a local port stays taken per connection.
    pub port_hold_secs: Option<f64>,
    /// Ports taken at once at this rate (`λ × W`).
    pub steady: Option<f64>,
    pub count: Count,
    pub range_size: u64,
    #[serde(flatten)]
    pub outlook: Outlook,
    /// The steady need with `tcp_tw_reuse` (a TIME_WAIT port reused after the delay), when it
    /// is off for this destination and this side keeps TIME_WAITs.
    pub steady_with_tw_reuse: Option<f64>,
    /// The steady need with pooled connections: only the connections in use at once.
    pub steady_with_pooling: Option<f64>,
}

/// How `tcp_tw_reuse` applies to a destination.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reuse {
    /// Already reusing (the measured lifetimes include it).
    On,
    /// Off for it: a TIME_WAIT port would be reused after this many seconds if it were on.
    Off { delay_secs: f64 },
}

pub fn ports(
    (destination, d): (Service, &Destination),
    namespace: Option<&NetnsTurnover>,
    count: Count,
    range_size: u64,
    reuse: Reuse,
) -> PortForecast {
    let per_sec = rate(d.connects, count.secs);
    let life = d.life.mean_secs(MIN_LIVES);
    let share = (d.ended >= MIN_LIVES).then(|| d.timewait as f64 / d.ended as f64);
    let (tw, from) = match (
        d.time_wait.mean_secs(MIN_TIME_WAIT_ENDS),
        namespace.and_then(|n| n.time_wait.mean_secs(MIN_TIME_WAIT_ENDS)),
    ) {
        (Some(w), _) => (Some(w), Some(MeasuredFor::Destination)),
        (None, Some(w)) => (Some(w), Some(MeasuredFor::Namespace)),
        (None, None) => (None, None),
    };
    let time_wait_ends = match from {
        Some(MeasuredFor::Namespace) => namespace.map_or(0, |n| n.time_wait.count),
        _ => d.time_wait.count,
    };
    // Without TIME_WAITs on this side, their lifetime does not matter.
    let hold = match (life, share, tw) {
        (Some(l), Some(0.0), _) => Some(l),
        (Some(l), Some(s), Some(w)) => Some(l + s * w),
        _ => None,
    };
    let steady = hold.map(|h| per_sec * h);
    let outlook = Outlook::of(
        steady,
        range_size as f64,
        count.now as f64,
        count.growth_per_sec(),
    );
    let steady_with_tw_reuse = match (reuse, life, share, tw) {
        (Reuse::Off { delay_secs }, Some(l), Some(s), Some(w)) if s > 0.0 => {
            Some(per_sec * (l + s * w.min(delay_secs)))
        }
        _ => None,
    };
    PortForecast {
        destination,
        owner: d.owner(),
        connects_per_sec: per_sec,
        lives_measured: d.life.count,
        time_wait_ends,
        connection_life_secs: life,
        time_wait_share: share,
        time_wait_secs: tw,
        time_wait_measured_for: from,
        port_hold_secs: hold,
        steady,
        count,
        range_size,
        outlook,
        steady_with_tw_reuse,
        steady_with_pooling: life.map(|l| per_sec * l),
    }
}
