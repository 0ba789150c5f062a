//! Connection ends counted per service (or per process) and role: who closed first, how often.
//! The daemon's totals grow with the services seen; the copies it keeps per time slot
//! ([`CloseStats::limited`]) hold a bounded number of groups and fold the rest into `other`.
use std::collections::BTreeMap;

// Looked up once per connection end: a fast seeded hasher, not SipHash.
use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    CloseKind, Comm, End, Note, Owner, Role, Service, Step, cgroup_names::CgroupNames,
};

/// What a row groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum GroupBy {
    Service,
    Process,
    /// The systemd unit of the process: its rows by process, [`regroup`]ed once named.
    Unit,
    /// The container of the process, likewise.
    Container,
}

impl GroupBy {
    const ALL: [GroupBy; 4] = [
        GroupBy::Service,
        GroupBy::Process,
        GroupBy::Unit,
        GroupBy::Container,
    ];

    /// The name on the command line and on the control socket.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Service => "service",
            GroupBy::Process => "process",
            GroupBy::Unit => "unit",
            GroupBy::Container => "container",
        }
    }

    /// The grouping the statistics keep: units and containers are made of process rows.
    fn kept(self) -> GroupBy {
        match self {
            GroupBy::Service => GroupBy::Service,
            _ => GroupBy::Process,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    /// `service`, `process`, `unit` or `container`, in any case.
    fn from_str(s: &str) -> Result<GroupBy, String> {
        GroupBy::ALL
            .into_iter()
            .find(|by| by.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown \"by\" '{s}' (service, process, unit or container)"))
    }
}

/// Process rows whose names are filled in, merged per unit (or container) and role: the
/// process shown is the one that ended most connections; processes without one are `-`.
/// Other groupings are returned as they are.
pub fn regroup(rows: Vec<CloseRow>, by: GroupBy) -> Vec<CloseRow> {
    let name = |r: &CloseRow| match by {
        GroupBy::Unit => r.names.unit.clone(),
        GroupBy::Container => r.names.container.clone(),
        _ => None,
    };
    if by.kept() == by {
        return rows;
    }
    let mut groups: BTreeMap<(Option<String>, String), CloseRow> = BTreeMap::new();
    // Most ended first, so the first row of a group names its top process.
    for row in rows {
        let key = (name(&row), row.role.clone());
        match groups.get_mut(&key) {
            Some(group) => group.absorb(&row),
            None => {
                let mut first = row;
                first.service = key.0.clone().unwrap_or_else(|| "-".into());
                groups.insert(key, first);
            }
        }
    }
    let mut out: Vec<CloseRow> = groups.into_values().collect();
    out.sort_by(|a, b| b.ended.cmp(&a.ended).then(a.service.cmp(&b.service)));
    out
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Service {
        netns: u32,
        service: Service,
        role: Role,
    },
    Process {
        comm: Comm,
        pid: u32,
        role: Role,
    },
    /// The ends a limited collection had no room to group apart.
    Other {
        by: GroupBy,
        role: Role,
    },
}

impl Key {
    fn grouping(&self) -> GroupBy {
        match self {
            Key::Service { .. } => GroupBy::Service,
            Key::Process { .. } => GroupBy::Process,
            Key::Other { by, .. } => *by,
        }
    }

    fn role(&self) -> Role {
        match self {
            Key::Service { role, .. } | Key::Process { role, .. } | Key::Other { role, .. } => {
                *role
            }
        }
    }
}

/// What an `other` row says in the service (or process) column.
pub const OTHER: &str = "other";
/// Owners a limited collection counts per group, to name the row's top process (usually one).
const OWNERS_KEPT: usize = 2;

/// One row: counts of each way connections ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRow {
    /// `addr:port` of the service, `*` when grouped by process, the unit or container when
    /// grouped by those (`-` for processes without one).
    pub service: String,
    pub role: String,
    /// The process that owns most of these connections, `comm (pid)`, or `-` if unknown.
    pub process: String,
    pub pid: u32,
    pub cgroup_id: u64,
    /// The systemd unit, container and pod of that cgroup (filled in where it can be read).
    #[serde(flatten)]
    pub names: CgroupNames,
    pub netns: u32,
    pub ended: u64,
    pub local_first: u64,
    pub peer_first: u64,
    pub simultaneous: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub connect_failed: u64,
    pub handshake_incomplete: u64,
    /// Of `handshake_incomplete`: half-open connections dropped after their SYN-ACK
    /// retransmits went unanswered.
    #[serde(default)]
    pub syn_ack_unanswered: u64,
    pub aborted: u64,
    /// TIME_WAIT (or FIN_WAIT2 timewait) sockets this host took on for these connections.
    pub timewait: u64,
}

impl CloseRow {
    pub fn count(&self, kind: CloseKind) -> u64 {
        match kind {
            CloseKind::LocalFirst => self.local_first,
            CloseKind::PeerFirst => self.peer_first,
            CloseKind::Simultaneous => self.simultaneous,
            CloseKind::RstSent => self.rst_sent,
            CloseKind::RstReceived => self.rst_received,
            CloseKind::ConnectFailed => self.connect_failed,
            CloseKind::HandshakeIncomplete => self.handshake_incomplete,
            CloseKind::Aborted => self.aborted,
        }
    }

    /// Adds another row's counts (its names are not taken).
    fn absorb(&mut self, other: &CloseRow) {
        self.ended += other.ended;
        self.local_first += other.local_first;
        self.peer_first += other.peer_first;
        self.simultaneous += other.simultaneous;
        self.rst_sent += other.rst_sent;
        self.rst_received += other.rst_received;
        self.connect_failed += other.connect_failed;
        self.handshake_incomplete += other.handshake_incomplete;
        self.syn_ack_unanswered += other.syn_ack_unanswered;
        self.aborted += other.aborted;
        self.timewait += other.timewait;
    }

    fn add(&mut self, end: &End, note: Option<Note>) {
        self.ended += 1;
        self.syn_ack_unanswered += u64::from(note == Some(Note::SynAckUnanswered));
        self.timewait += u64::from(end.timewait);
        *match end.kind {
            CloseKind::LocalFirst => &mut self.local_first,
            CloseKind::PeerFirst => &mut self.peer_first,
            CloseKind::Simultaneous => &mut self.simultaneous,
            CloseKind::RstSent => &mut self.rst_sent,
            CloseKind::RstReceived => &mut self.rst_received,
            CloseKind::ConnectFailed => &mut self.connect_failed,
            CloseKind::HandshakeIncomplete => &mut self.handshake_incomplete,
            CloseKind::Aborted => &mut self.aborted,
        } += 1;
    }
}

#[derive(Clone, Debug, Default)]
struct Group {
    row: CloseRow,
    owners: HashMap<Owner, u64>,
}

/// Every connection end seen, grouped both ways so either view is instant.
#[derive(Clone, Debug, Default)]
pub struct CloseStats {
    groups: BTreeMap<Key, Group>,
    /// Groups kept apart per grouping (then `other`); `None`: no limit.
    limit: Option<usize>,
    /// Groups per grouping (service, process), `other` excluded.
    grouped: [usize; 2],
}

impl CloseStats {
    /// At most `groups` services and `groups` processes, each with a few owners counted; further
    /// ends go to one `other` row per role. Its memory is bounded whatever the traffic.
    pub fn limited(groups: usize) -> CloseStats {
        CloseStats {
            limit: Some(groups),
            ..CloseStats::default()
        }
    }

    /// Groups held (`other` rows included): what the memory grows with.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The group for `key`, or the `other` one when a limited collection is full.
    fn group(&mut self, key: Key) -> &mut Group {
        let by = key.grouping();
        let full = self
            .limit
            .is_some_and(|limit| self.grouped[by as usize] >= limit);
        let key = if matches!(key, Key::Other { .. }) || self.groups.contains_key(&key) || !full {
            key
        } else {
            Key::Other {
                by,
                role: key.role(),
            }
        };
        if !matches!(key, Key::Other { .. }) && !self.groups.contains_key(&key) {
            self.grouped[by as usize] += 1;
        }
        self.groups.entry(key).or_default()
    }

    /// Counts `n` connections of `owner` in `group` (a limited collection names only a few).
    fn own(group: &mut Group, owner: &Owner, n: u64, limited: bool) {
        if let Some(count) = group.owners.get_mut(owner) {
            *count += n;
        } else if !limited || group.owners.len() < OWNERS_KEPT {
            group.owners.insert(*owner, n);
        }
    }

    /// Adds everything `other` counted (bounded again if this one is limited).
    pub fn merge(&mut self, other: &CloseStats) {
        let limited = self.limit.is_some();
        for (key, theirs) in &other.groups {
            let group = self.group(key.clone());
            group.row.absorb(&theirs.row);
            for (owner, &n) in &theirs.owners {
                CloseStats::own(group, owner, n, limited);
            }
        }
    }

    pub fn record(&mut self, step: &Step) {
        let Some(end) = step.end else { return };
        let keys = [
            Key::Service {
                netns: step.netns,
                service: end.service,
                role: end.role,
            },
            Key::Process {
                comm: step.owner.comm,
                pid: step.owner.pid,
                role: end.role,
            },
        ];
        let limited = self.limit.is_some();
        for key in keys {
            let group = self.group(key);
            group.row.add(&end, step.note);
            CloseStats::own(group, &step.owner, 1, limited);
        }
    }

    /// Rows for one grouping, most connections ended first (by process for units and
    /// containers: see [`regroup`]).
    pub fn rows(&self, by: GroupBy) -> Vec<CloseRow> {
        let by = by.kept();
        let mut rows: Vec<CloseRow> = self
            .groups
            .iter()
            .filter_map(|(key, group)| {
                let mut row = group.row.clone();
                let top = group
                    .owners
                    .iter()
                    .max_by_key(|(owner, n)| (**n, owner.pid != 0))
                    .map(|(owner, _)| *owner)
                    .unwrap_or_default();
                row.pid = top.pid;
                row.cgroup_id = top.cgroup_id;
                row.process = if top.pid == 0 {
                    "-".into()
                } else {
                    format!("{} ({})", top.comm, top.pid)
                };
                match (key, by) {
                    (
                        Key::Service {
                            netns,
                            service,
                            role,
                        },
                        GroupBy::Service,
                    ) => {
                        row.service = service.to_string();
                        row.role = role.to_string();
                        row.netns = *netns;
                    }
                    (Key::Process { role, .. }, GroupBy::Process) => {
                        row.service = "*".into();
                        row.role = role.to_string();
                    }
                    (Key::Other { by: b, role }, by) if *b == by => {
                        row.role = role.to_string();
                        row.service = match by {
                            GroupBy::Service => OTHER.into(),
                            _ => "*".into(),
                        };
                        if by == GroupBy::Process {
                            row.process = OTHER.into();
                            row.pid = 0;
                            row.cgroup_id = 0;
                        }
                    }
                    _ => return None,
                }
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| b.ended.cmp(&a.ended).then(a.service.cmp(&b.service)));
        rows
    }
}
