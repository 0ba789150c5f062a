//! The kernel's TCP counters from /proc/net/netstat (`TcpExt`) and /proc/net/snmp (`Tcp`), per
//! network namespace like the sysctls. Both files use the same two-line format, parsed
//! generically: a header line `Section: Name1 Name2 ...` then a value line `Section: 1 2 ...`.
use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};

/// The counters `tracer doctor` reports, as (section, name).
pub const WATCHED: [(&str, &str); 19] = [
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPAbortOnClose"),
    ("TcpExt", "TCPAbortOnData"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("TcpExt", "TW"),
    ("TcpExt", "TWRecycled"),
    ("TcpExt", "TWKilled"),
    ("TcpExt", "TCPReqQFullDrop"),
    ("TcpExt", "TCPReqQFullDoCookies"),
    ("TcpExt", "SyncookiesSent"),
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
    ("Tcp", "CurrEstab"),
    ("Tcp", "RetransSegs"),
    ("Tcp", "OutRsts"),
];

/// Values that are a level now, not a count of events: no rate for them.
pub const GAUGES: [(&str, &str); 1] = [("Tcp", "CurrEstab")];

/// Every counter of one or more files: section -> name -> value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    sections: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Counters {
    /// Reads `netstat` and `snmp` under `proc_net` (normally `/proc/net`).
    pub fn read(proc_net: &Path) -> Result<Counters> {
        let mut counters = Counters::default();
        for file in ["netstat", "snmp"] {
            let path = proc_net.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            counters
                .add(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
        }
        Ok(counters)
    }

    /// Adds every section of one file's text (tests feed synthetic text).
    pub fn add(&mut self, text: &str) -> Result<()> {
        for (section, values) in parse(text)? {
            self.sections.entry(section).or_default().extend(values);
        }
        Ok(())
    }

    pub fn get(&self, section: &str, name: &str) -> Option<i64> {
        self.sections.get(section)?.get(name).copied()
    }

    /// A counter's value, 0 when this kernel does not have it.
    pub fn value(&self, section: &str, name: &str) -> i64 {
        self.get(section, name).unwrap_or(0)
    }

    /// The watched counters with their values (`None`: not on this kernel).
    pub fn watched(&self) -> impl Iterator<Item = (&'static str, &'static str, Option<i64>)> + '_ {
        WATCHED.iter().map(|&(s, n)| (s, n, self.get(s, n)))
    }
}

/// Sections of a `/proc/net/netstat` or `/proc/net/snmp` text. A section whose value line is
/// missing, has another number of fields or a non-number is an error: a guessed counter would
/// be worse than none.
pub fn parse(text: &str) -> Result<Vec<(String, BTreeMap<String, i64>)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(header) = lines.next() {
        let (section, names) = split(header)?;
        let Some(values_line) = lines.next() else {
            bail!("section {section}: header without a value line");
        };
        let (again, values) = split(values_line)?;
        if again != section {
            bail!("section {section}: followed by a line of section {again}");
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            bail!(
                "section {section}: {} names but {} values",
                names.len(),
                values.len()
            );
        }
        let mut map = BTreeMap::new();
        for (name, value) in names.into_iter().zip(values) {
            map.insert(
                name.to_string(),
                number(value).with_context(|| {
                    format!("section {section}: {name} = '{value}' is not a number")
                })?,
            );
        }
        out.push((section.to_string(), map));
    }
    Ok(out)
}

/// `TcpExt: a b c` -> (`TcpExt`, ` a b c`).
fn split(line: &str) -> Result<(&str, &str)> {
    line.split_once(':')
        .filter(|(s, _)| !s.is_empty() && !s.contains(char::is_whitespace))
        .with_context(|| format!("'{line}' does not start with 'Section:'"))
}

/// Counters are unsigned (a 64-bit one may exceed i64: clamped); a few snmp fields (MaxConn)
/// are signed.
fn number(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<u64>().ok().map(|_| i64::MAX))
}

/// How one watched counter moved between two readings.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub section: &'static str,
    pub name: &'static str,
    pub start: i64,
    pub end: i64,
    pub delta: i64,
    /// Per second over the window; `None` for a gauge.
    pub per_sec: Option<f64>,
}

/// Moves of the watched counters from `start` to `end`, `secs` apart; counters missing from
/// either reading are left out.
pub fn deltas(start: &Counters, end: &Counters, secs: f64) -> Vec<Delta> {
    WATCHED
        .iter()
        .filter_map(|&(section, name)| {
            let (a, b) = (start.get(section, name)?, end.get(section, name)?);
            let delta = b.saturating_sub(a);
            let gauge = GAUGES.contains(&(section, name));
            let per_sec = (!gauge && secs > 0.0).then(|| delta as f64 / secs);
            Some(Delta {
                section,
                name,
                start: a,
                end: b,
                delta,
                per_sec,
            })
        })
        .collect()
}

/// The delta of one counter, if it was measured.
pub fn delta_of(deltas: &[Delta], section: &str, name: &str) -> Option<i64> {
    deltas
        .iter()
        .find(|d| d.section == section && d.name == name)
        .map(|d| d.delta)
}
