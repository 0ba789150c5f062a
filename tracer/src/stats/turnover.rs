//! What the forecasts rest on, measured from the steps of a window: per network namespace, the
//! timewait sockets taken on and the TIME_WAIT lifetimes that ended (expired, or ended early by
//! `tcp_tw_reuse` or a RST); per destination this host connected to, the connects, how long each
//! connection lived and the TIME_WAIT lifetimes of its local ports. Everything is bounded: past
//! [`MAX_DESTINATIONS`] destinations and [`MAX_PENDING`] connections awaiting their end, more
//! is counted as not followed rather than kept.
use std::collections::HashMap;

use hdrhistogram::Histogram;

use crate::model::{Note, Owner, Role, Service, Step, TcpState};

/// Destinations followed per collection.
pub const MAX_DESTINATIONS: usize = 1024;
/// Connections whose start is kept until their end gives their life.
pub const MAX_PENDING: usize = 262_144;
/// Owners counted per destination, to name the one with most connects.
const OWNERS_KEPT: usize = 4;

/// Lifetimes that ended: how many, their sum, and how many ended early.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lives {
    pub count: u64,
    pub sum_ns: u128,
    /// TIME_WAITs killed before their timer ran out (`tcp_tw_reuse`, RST, namespace exit).
    pub early: u64,
}

impl Lives {
    fn add(&mut self, ns: u64, early: bool) {
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.early += u64::from(early);
    }

    /// Mean lifetime in seconds, once at least `min` lifetimes ended.
    pub fn mean_secs(&self, min: u64) -> Option<f64> {
        (self.count >= min.max(1)).then(|| self.sum_ns as f64 / self.count as f64 / 1e9)
    }
}

/// One network namespace's timewait turnover.
#[derive(Clone, Debug)]
pub struct NetnsTurnover {
    /// Connection ends after which this host kept a timewait socket.
    pub timewaits_taken: u64,
    /// TIME_WAIT lifetimes that ended with a known start.
    pub time_wait: Lives,
    /// The same lifetimes, for their distribution (milliseconds).
    pub histogram: Histogram<u64>,
    /// TIME_WAITs that ended whose start was not seen: no lifetime.
    pub start_not_seen: u64,
}

impl Default for NetnsTurnover {
    fn default() -> Self {
        NetnsTurnover {
            timewaits_taken: 0,
            time_wait: Lives::default(),
            histogram: Histogram::new_with_bounds(1, 24 * 3_600_000, 3)
                .expect("constant histogram bounds are valid"),
            start_not_seen: 0,
        }
    }
}

impl NetnsTurnover {
    /// The TIME_WAIT lifetime at quantile `q`, in seconds (`None` before any ended).
    pub fn quantile_secs(&self, q: f64) -> Option<f64> {
        let h = &self.histogram;
        (!h.is_empty()).then(|| h.median_equivalent(h.value_at_quantile(q)) as f64 / 1e3)
    }
}

/// Connections this host opened towards one destination.
#[derive(Clone, Debug, Default)]
pub struct Destination {
    pub connects: u64,
    /// Connections that ended, and of them those after which this side kept a TIME_WAIT.
    pub ended: u64,
    pub timewait: u64,
    /// Connect-to-close lives of the connections whose connect was seen.
    pub life: Lives,
    /// TIME_WAIT lifetimes of this destination's local ports.
    pub time_wait: Lives,
    owners: HashMap<Owner, u64>,
}

impl Destination {
    /// The owner with most connects (`None` when no connect had one).
    pub fn owner(&self) -> Option<Owner> {
        self.owners
            .iter()
            .filter(|(o, _)| o.pid != 0)
            .max_by_key(|(o, n)| (**n, std::cmp::Reverse(o.pid)))
            .map(|(o, _)| *o)
    }
}

/// Everything measured, keyed by network namespace (and destination).
#[derive(Clone, Debug, Default)]
pub struct Turnover {
    netns: HashMap<u32, NetnsTurnover>,
    dests: HashMap<(u32, Service), Destination>,
    /// Connect time and destination of connections not ended yet, by socket address.
    pending: HashMap<u64, (u64, u32, Service)>,
    /// Connects not followed because a bound was reached.
    pub not_followed: u64,
}

fn dest_of(addr: std::net::IpAddr, port: u16) -> Service {
    Service {
        addr: addr.to_canonical(),
        port,
    }
}

impl Turnover {
    pub fn record(&mut self, step: &Step) {
        if step.from == TcpState::Close && step.to == TcpState::SynSent {
            self.connect(step);
        }
        if let Some(end) = step.end {
            if end.timewait {
                self.netns.entry(step.netns).or_default().timewaits_taken += 1;
            }
            if end.role == Role::Client {
                self.ended(step, end.service, end.timewait);
            }
        }
        let timewait_end = matches!(step.note, Some(Note::Expired | Note::EndedEarly))
            || (step.note == Some(Note::StartNotSeen) && step.end.is_none());
        if step.from == TcpState::TimeWait && step.to == TcpState::Close && timewait_end {
            self.time_wait_ended(step);
        }
    }

    fn connect(&mut self, step: &Step) {
        let dest = dest_of(step.tuple.remote, step.tuple.remote_port);
        let key = (step.netns, dest);
        if !self.dests.contains_key(&key) && self.dests.len() >= MAX_DESTINATIONS {
            self.not_followed += 1;
            return;
        }
        let d = self.dests.entry(key).or_default();
        d.connects += 1;
        if let Some(n) = d.owners.get_mut(&step.owner) {
            *n += 1;
        } else if d.owners.len() < OWNERS_KEPT {
            d.owners.insert(step.owner, 1);
        }
        if self.pending.len() < MAX_PENDING || self.pending.contains_key(&step.sk) {
            self.pending.insert(step.sk, (step.ts_ns, step.netns, dest));
        }
    }

    fn ended(&mut self, step: &Step, service: Service, timewait: bool) {
        let dest = dest_of(service.addr, service.port);
        let started = self
            .pending
            .remove(&step.sk)
            .filter(|&(_, netns, d)| netns == step.netns && d == dest);
        let Some(d) = self.dests.get_mut(&(step.netns, dest)) else {
            return;
        };
        d.ended += 1;
        d.timewait += u64::from(timewait);
        if let Some((at, _, _)) = started {
            d.life.add(step.ts_ns.saturating_sub(at), false);
        }
    }

    /// `n` TIME_WAITs of namespace `netns` that lasted `ns`, and `early` of those counted so
    /// far that were killed early: counted in the kernel, of a listener's children, so no
    /// destination's ports.
    pub fn time_waits_counted(&mut self, netns: u32, ns: u64, n: u64, early: u64) {
        let t = self.netns.entry(netns).or_default();
        t.time_wait.count += n;
        t.time_wait.sum_ns += u128::from(ns) * u128::from(n);
        t.time_wait.early += early;
        t.histogram.saturating_record_n((ns / 1_000_000).max(1), n);
    }

    fn time_wait_ended(&mut self, step: &Step) {
        let n = self.netns.entry(step.netns).or_default();
        let Some(ns) = step.dwell_ns else {
            n.start_not_seen += 1;
            return;
        };
        let early = step.note == Some(Note::EndedEarly);
        n.time_wait.add(ns, early);
        n.histogram.saturating_record((ns / 1_000_000).max(1));
        let dest = dest_of(step.tuple.remote, step.tuple.remote_port);
        if let Some(d) = self.dests.get_mut(&(step.netns, dest)) {
            d.time_wait.add(ns, early);
        }
    }

    /// Everything measured so far, handed over: this one starts a new window, keeping only
    /// the connections still awaiting their end (so lives longer than a window are measured).
    pub fn next_window(&mut self) -> Turnover {
        let pending = std::mem::take(&mut self.pending);
        let done = std::mem::take(self);
        self.pending = pending;
        done
    }

    /// One namespace's timewait turnover (`None`: nothing seen there).
    pub fn netns(&self, netns: u32) -> Option<&NetnsTurnover> {
        self.netns.get(&netns)
    }

    /// The destinations connected to from one namespace, most connects first.
    pub fn destinations(&self, netns: u32) -> Vec<(Service, &Destination)> {
        let mut out: Vec<(Service, &Destination)> = self
            .dests
            .iter()
            .filter(|((n, _), _)| *n == netns)
            .map(|((_, s), d)| (*s, d))
            .collect();
        out.sort_by(|a, b| b.1.connects.cmp(&a.1.connects).then(a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::model::Tuple;

    const S: u64 = 1_000_000_000;

    fn time_wait_end(ns: u64, note: Note) -> Step {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Step {
            ts_ns: 100 * S,
            sk: 1,
            tuple: Tuple::new(ip, 80, ip, 40000),
            netns: 7,
            owner: Owner::default(),
            from: TcpState::TimeWait,
            to: TcpState::Close,
            dwell_ns: Some(ns),
            note: Some(note),
            end: None,
        }
    }

    #[test]
    fn time_waits_the_kernel_counted_measure_as_their_ends_would() {
        let mut by_step = Turnover::default();
        for _ in 0..3 {
            by_step.record(&time_wait_end(60 * S, Note::Expired));
        }
        by_step.record(&time_wait_end(2 * S, Note::EndedEarly));
        let mut counted = Turnover::default();
        counted.time_waits_counted(7, 60 * S, 3, 0);
        counted.time_waits_counted(7, 2 * S, 1, 1);
        let (a, b) = (by_step.netns(7).unwrap(), counted.netns(7).unwrap());
        assert_eq!(a.time_wait, b.time_wait);
        assert_eq!(a.quantile_secs(0.5), b.quantile_secs(0.5));
        assert_eq!(b.time_wait.mean_secs(4), Some(45.5));
    }
}
