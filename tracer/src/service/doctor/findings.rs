//! What `tracer doctor` concludes, as data: each finding carries the numbers it rests on. A rule
//! that has no numbers behind it says nothing; no finding at all is a valid answer.
//!
//! This file holds the finding type and the TIME_WAIT rules; [`super::ports`] the ephemeral
//! port rules, [`super::sockets`] those about stuck sockets and listen queues, and
//! [`super::diagnose`] runs them all.
use std::time::Duration;

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Value, json};

use super::{
    counters::{Counters, Delta, delta_of},
    stuck::Stuck,
    sysctl::{self, Sysctls},
};
use crate::{
    model::TcpState,
    source::snapshot::Snapshot,
    stats::{closes::CloseRow, forecast::MIN_TIME_WAIT_ENDS, turnover::Turnover},
};

/// Most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Notice,
}

/// Named numbers, kept in the order the rule gives them (JSON: an object).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence(pub Vec<(String, Value)>);

impl Evidence {
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Evidence {
        self.0.push((key.to_string(), value.into()));
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `timewait-overflow`, `close-wait`.
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Evidence,
    pub advice: String,
}

/// What was measured over `--duration`.
pub struct Period<'a> {
    pub secs: f64,
    /// Watched counters, start to end.
    pub deltas: &'a [Delta],
    /// Connection ends per service seen by the live collector (this namespace's only).
    pub closes: &'a [CloseRow],
    /// The snapshot at the window's start.
    pub first: &'a Snapshot,
    /// Lifetimes and rates measured by the live collector (every namespace).
    pub turnover: &'a Turnover,
}

impl Period<'_> {
    /// The mean TIME_WAIT lifetime measured in `netns`, with how many ended.
    pub fn time_wait_secs(&self, netns: u32) -> (Option<f64>, u64) {
        self.turnover.netns(netns).map_or((None, 0), |t| {
            (t.time_wait.mean_secs(MIN_TIME_WAIT_ENDS), t.time_wait.count)
        })
    }
}

/// Everything the rules look at.
pub struct Inputs<'a> {
    pub sysctls: &'a Sysctls,
    /// Counters at the end (or at the only reading).
    pub counters: &'a Counters,
    /// The (last) snapshot.
    pub snapshot: &'a Snapshot,
    /// Stuck-prone sockets: all of the snapshot's without a window (age unknown), those present
    /// in both snapshots with one.
    pub stuck: &'a [Stuck],
    pub stuck_threshold: Duration,
    pub window: Option<Period<'a>>,
}

/// TIME_WAIT use at or above this share of tcp_max_tw_buckets is a finding.
pub const TW_BUCKETS_PCT: u64 = 80;
/// A service whose connections left at least this many TIME_WAITs in the window is examined.
pub const CLOSES_MIN_TIMEWAIT: u64 = 50;
/// Local ports to one destination above this share of the ephemeral range is a finding.
pub const PORTS_PCT: u64 = 50;
/// Findings per rule that lists services or destinations.
pub const TOP: usize = 3;

pub const FIN_TIMEOUT_MYTH: &str = "Lowering tcp_fin_timeout would not help: it only bounds \
orphaned FIN_WAIT2 sockets; TIME_WAIT always lasts 60 s (TCP_TIMEWAIT_LEN).";

/// The TIME_WAIT rules' findings, in rule order.
pub fn time_wait(i: &Inputs) -> Vec<Finding> {
    let mut all = Vec::new();
    all.extend(tw_recycle(i));
    all.extend(timewait_overflow(i));
    all.extend(local_closes(i));
    all
}

/// `a` as a percentage of `b`, one decimal.
pub fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        return 0.0;
    }
    (a as f64 * 1000.0 / b as f64).round() / 10.0
}

/// `x` to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `comm (pid)`, or `-`.
pub fn process(pid: u32, comm: &str) -> String {
    if pid == 0 {
        "-".into()
    } else {
        format!("{comm} ({pid})")
    }
}

fn tw_recycle(i: &Inputs) -> Option<Finding> {
    let value = i.sysctls.get(sysctl::TW_RECYCLE)?;
    (value != "0").then(|| Finding {
        id: "tw-recycle",
        severity: Severity::Critical,
        title: format!("net.ipv4.tcp_tw_recycle = {value}"),
        evidence: Evidence::default().with(sysctl::TW_RECYCLE, value),
        advice: format!(
            "Set it to 0: this kernel still has tcp_tw_recycle, which was {}.",
            sysctl::TW_RECYCLE_HISTORY
        ),
    })
}

/// (TIME_WAIT, orphaned FIN_WAIT2) sockets of a snapshot: both are timewait sockets and count
/// against tcp_max_tw_buckets.
pub fn timewait_sockets(snapshot: &Snapshot) -> (u64, u64) {
    let socks = &snapshot.sockets;
    let tw = socks
        .iter()
        .filter(|s| s.state == TcpState::TimeWait)
        .count() as u64;
    let orphan_fw2 = socks
        .iter()
        .filter(|s| s.state == TcpState::FinWait2 && s.inode == 0)
        .count() as u64;
    (tw, orphan_fw2)
}

/// TIME_WAIT near or over tcp_max_tw_buckets, or TCPTimeWaitOverflow > 0.
fn timewait_overflow(i: &Inputs) -> Option<Finding> {
    let (tw, orphan_fw2) = timewait_sockets(i.snapshot);
    let used = tw + orphan_fw2;
    let max = i
        .sysctls
        .int(sysctl::MAX_TW_BUCKETS)
        .map(|m| m.max(0) as u64);
    let overflow = i.counters.value("TcpExt", "TCPTimeWaitOverflow");
    let recent = i
        .window
        .as_ref()
        .and_then(|w| delta_of(w.deltas, "TcpExt", "TCPTimeWaitOverflow"));
    let near = max.is_some_and(|m| m > 0 && used * 100 >= m * TW_BUCKETS_PCT);
    let full = max.is_some_and(|m| m > 0 && used >= m);
    if !near && overflow <= 0 {
        return None;
    }
    let severity = match recent {
        Some(d) if d > 0 || full => Severity::Critical,
        Some(_) if near => Severity::Warning,
        Some(_) => Severity::Notice,
        None if full || (near && overflow > 0) => Severity::Critical,
        None => Severity::Warning,
    };
    let mut evidence = Evidence::default()
        .with("time_wait", tw)
        .with("orphaned_fin_wait2", orphan_fw2)
        .with(sysctl::MAX_TW_BUCKETS, json!(max))
        .with("used_pct", max.map(|m| pct(used, m)))
        .with("TCPTimeWaitOverflow", overflow);
    if let (Some(d), Some(w)) = (recent, &i.window) {
        evidence = evidence
            .with("TCPTimeWaitOverflow_delta", d)
            .with("window_secs", w.secs);
    }
    let title = if overflow > 0 {
        format!(
            "TIME_WAIT table overflowed: {overflow} connections skipped TIME_WAIT \
             (TCPTimeWaitOverflow){}",
            recent.map_or(String::new(), |d| format!(", {d} during this run"))
        )
    } else {
        format!(
            "{used} timewait sockets: {}% of tcp_max_tw_buckets ({})",
            pct(used, max.unwrap_or(0)),
            max.unwrap_or(0)
        )
    };
    Some(Finding {
        id: "timewait-overflow",
        severity,
        title,
        evidence,
        advice: format!(
            "Beyond tcp_max_tw_buckets the kernel destroys closing connections at once instead \
             of keeping them in TIME_WAIT (\"TCP: time wait bucket table overflow\" in the kernel \
             log): delayed segments of an old connection can then corrupt a new one on the same \
             ports. Find who closes first (`tracer closes`, or `tracer doctor --duration 60`) and \
             reuse connections (keep-alive, pooling) so fewer close; raising tcp_max_tw_buckets is \
             cheap (a timewait socket is a few hundred bytes). {FIN_TIMEOUT_MYTH}"
        ),
    })
}

/// Services whose TIME_WAITs this host takes on because it closes first (needs `--duration`).
fn local_closes(i: &Inputs) -> Vec<Finding> {
    let Some(w) = &i.window else {
        return Vec::new();
    };
    let max = i.sysctls.int(sysctl::MAX_TW_BUCKETS).unwrap_or(0).max(0) as f64;
    let mut rows: Vec<&CloseRow> = w
        .closes
        .iter()
        .filter(|r| r.timewait >= CLOSES_MIN_TIMEWAIT && r.ended > 0)
        .filter(|r| r.local_first * 2 >= r.ended)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.timewait));
    rows.into_iter()
        .take(TOP)
        .map(|r| {
            let per_sec = if w.secs > 0.0 {
                r.timewait as f64 / w.secs
            } else {
                0.0
            };
            // At this rate, the TIME_WAITs this service keeps on the host at any time: the
            // rate times the TIME_WAIT lifetime measured in this namespace, if enough ended.
            let (life, ends) = w.time_wait_secs(i.snapshot.netns);
            let steady = life.map(|l| (per_sec * l).round());
            let severity = if max > 0.0 && steady.is_some_and(|s| s * 2.0 >= max) {
                Severity::Warning
            } else {
                Severity::Notice
            };
            let advice = if r.role == "client" {
                format!(
                    "This host closes its connections to {} first, one per request: pool and \
                     reuse them (keep-alive) and the TIME_WAITs go away with the connects.",
                    r.service
                )
            } else {
                format!(
                    "This host ({}) closes its clients' connections to {} first: HTTP keep-alive \
                     (e.g. nginx keepalive_timeout > 0, upstream keepalive) or clients that reuse \
                     connections remove most of them; a protocol where the client closes first \
                     moves TIME_WAIT to the clients.",
                    r.process, r.service
                )
            };
            Finding {
                id: "timewait-local-close",
                severity,
                title: format!(
                    "{} ({}): this host closed {}% of {} connections first and took on {} \
                     TIME_WAITs",
                    r.service,
                    r.role,
                    pct(r.local_first, r.ended),
                    r.ended,
                    r.timewait
                ),
                evidence: Evidence::default()
                    .with("service", r.service.as_str())
                    .with("role", r.role.as_str())
                    .with("process", r.process.as_str())
                    .with("pid", r.pid)
                    .with("ended", r.ended)
                    .with("local_first", r.local_first)
                    .with("local_first_pct", pct(r.local_first, r.ended))
                    .with("timewait", r.timewait)
                    .with("window_secs", w.secs)
                    .with("timewait_per_sec", (per_sec * 10.0).round() / 10.0)
                    .with("time_wait_ends_measured", ends)
                    .with("time_wait_secs_measured", life.map(round1))
                    .with("steady_time_wait", steady),
                advice: format!("{advice} {FIN_TIMEOUT_MYTH}"),
            }
        })
        .collect()
}
