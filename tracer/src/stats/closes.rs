//! Connection ends counted per service (or per process) and role: who closed first, how often.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{CloseKind, End, Owner, Role, Service, Step};

/// What a row groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Service,
    Process,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Service {
        netns: u32,
        service: Service,
        role: Role,
    },
    Process {
        comm: String,
        pid: u32,
        role: Role,
    },
}

/// One row: counts of each way connections ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRow {
    /// `addr:port` of the service, or `*` when grouped by process.
    pub service: String,
    pub role: String,
    /// The process that owns most of these connections, `comm (pid)`, or `-` if unknown.
    pub process: String,
    pub pid: u32,
    pub cgroup_id: u64,
    pub netns: u32,
    pub ended: u64,
    pub local_first: u64,
    pub peer_first: u64,
    pub simultaneous: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub connect_failed: u64,
    pub handshake_incomplete: u64,
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

    fn add(&mut self, end: &End) {
        self.ended += 1;
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

#[derive(Default)]
struct Group {
    row: CloseRow,
    owners: HashMap<Owner, u64>,
}

/// Every connection end seen, grouped both ways so either view is instant.
#[derive(Default)]
pub struct CloseStats {
    groups: BTreeMap<Key, Group>,
}

impl CloseStats {
    pub fn record(&mut self, step: &Step) {
        let Some(end) = step.end else { return };
        let keys = [
            Key::Service {
                netns: step.netns,
                service: end.service,
                role: end.role,
            },
            Key::Process {
                comm: step.owner.comm.clone(),
                pid: step.owner.pid,
                role: end.role,
            },
        ];
        for key in keys {
            let group = self.groups.entry(key).or_default();
            group.row.add(&end);
            *group.owners.entry(step.owner.clone()).or_default() += 1;
        }
    }

    /// Rows for one grouping, most connections ended first.
    pub fn rows(&self, by: GroupBy) -> Vec<CloseRow> {
        let mut rows: Vec<CloseRow> = self
            .groups
            .iter()
            .filter_map(|(key, group)| {
                let mut row = group.row.clone();
                let top = group
                    .owners
                    .iter()
                    .max_by_key(|(owner, n)| (**n, owner.pid != 0))
                    .map(|(owner, _)| owner.clone())
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
                    _ => return None,
                }
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| b.ended.cmp(&a.ended).then(a.service.cmp(&b.service)));
        rows
    }
}
