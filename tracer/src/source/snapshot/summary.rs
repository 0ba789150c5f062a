//! What `tracer states` shows, as data: sockets counted per state (the netstat | awk one-liner)
//! and per service or per process, each with the oldest known age per state.
use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Age, SnapSocket, Snapshot};
use crate::model::{Role, Service, TcpState, cgroup_names::CgroupNames};

/// What the rows of `tracer states` group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatesBy {
    /// Only the per-state totals.
    State,
    /// Server side: local address:port of sockets on a listening port; else the remote one
    /// (or the local one, role unknown, when that port looks like a departed server's).
    Service,
    /// Owning process (pid and command) and role.
    Process,
    /// The owning process's systemd unit (from its cgroup) and role: see [`regroup`].
    Unit,
    /// The owning process's container and role, likewise.
    Container,
}

impl StatesBy {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            StatesBy::State => "state",
            StatesBy::Service => "service",
            StatesBy::Process => "process",
            StatesBy::Unit => "unit",
            StatesBy::Container => "container",
        }
    }
}

/// Socket count and oldest known age for each state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    counts: [u64; TcpState::ALL.len()],
    oldest: [Option<Age>; TcpState::ALL.len()],
}

impl StateCounts {
    pub fn add(&mut self, state: TcpState, age: Age) {
        let i = state.index();
        self.counts[i] += 1;
        self.oldest[i] = Some(self.oldest[i].map_or(age, |o| o.oldest(age)));
    }

    pub fn count(&self, state: TcpState) -> u64 {
        self.counts[state.index()]
    }

    /// The oldest socket's age in `state`; `None` when there is none.
    pub fn oldest(&self, state: TcpState) -> Option<Age> {
        self.oldest[state.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another row's sockets (and keeps the oldest age of each state).
    pub fn absorb(&mut self, other: &StateCounts) {
        for i in 0..self.counts.len() {
            self.counts[i] += other.counts[i];
            self.oldest[i] = match (self.oldest[i], other.oldest[i]) {
                (Some(a), Some(b)) => Some(a.oldest(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// States with at least one socket, in kernel order.
    pub fn present(&self) -> impl Iterator<Item = (TcpState, u64)> + '_ {
        TcpState::ALL
            .into_iter()
            .map(|s| (s, self.count(s)))
            .filter(|&(_, n)| n > 0)
    }
}

/// One row: a service (or a process) in one role, with its sockets per state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `addr:port` of the service, or `*` when grouped by process.
    pub service: String,
    pub role: Role,
    /// The process holding most of the row's sockets; pid 0 and empty comm when none is known
    /// (TIME_WAIT and request sockets never have one).
    pub pid: u32,
    pub comm: String,
    /// Distinct processes holding the row's sockets.
    pub processes: usize,
    pub states: StateCounts,
    /// The systemd unit, container and pod of that process (filled in where it can be read).
    pub names: CgroupNames,
}

impl Row {
    /// `nginx (4242)`, `nginx (4242) +3` when others hold some too, or `-`; then its unit,
    /// container or pod when known (`nginx (4242) nginx.service`).
    pub fn process(&self) -> String {
        let process = match (self.pid, self.processes) {
            (0, _) => "-".into(),
            (pid, 0 | 1) => format!("{} ({pid})", self.comm),
            (pid, n) => format!("{} ({pid}) +{}", self.comm, n - 1),
        };
        match self.names.label() {
            label if label.is_empty() => process,
            label => format!("{process} {label}"),
        }
    }
}

/// The whole `tracer states` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub taken_ns: u64,
    pub netns: u32,
    pub totals: StateCounts,
    pub rows: Vec<Row>,
    /// Processes whose fds could not be read: owners are partial when non-zero.
    pub unreadable_processes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Service { service: Service, role: Role },
    Process { pid: u32, comm: String, role: Role },
}

/// Decides each socket's role and service from the whole snapshot.
pub struct Roles {
    listening: HashSet<u16>,
    /// Sockets using each port, on either end: a server's port is shared by its connections.
    port_uses: HashMap<u16, u32>,
    ephemeral: (u16, u16),
}

impl Roles {
    pub fn new(snap: &Snapshot) -> Roles {
        let mut listening = HashSet::new();
        let mut port_uses: HashMap<u16, u32> = HashMap::new();
        for s in &snap.sockets {
            if s.state == TcpState::Listen {
                listening.insert(s.tuple.local_port);
            } else {
                *port_uses.entry(s.tuple.local_port).or_default() += 1;
                *port_uses.entry(s.tuple.remote_port).or_default() += 1;
            }
        }
        Roles {
            listening,
            port_uses,
            ephemeral: snap.ephemeral_ports,
        }
    }

    /// A LISTEN socket is a listener of its local endpoint; a socket whose local port has a
    /// listener is the server side of its local endpoint. Without a listener (it may have
    /// exited, leaving its TIME_WAITs) the endpoint whose port more sockets use, or else the one
    /// outside the ephemeral port range, is taken as the service: the local one gives role
    /// `unknown` (most likely a server, not asserted), so one dead server is one row rather than
    /// one per client port. Anything else is a client of its remote endpoint. IPv4-mapped
    /// addresses are shown as IPv4 so a dual-stack listener's clients group with IPv4 ones.
    pub fn of(&self, sock: &SnapSocket) -> (Role, Service) {
        let t = &sock.tuple;
        let local = Service {
            addr: t.local.to_canonical(),
            port: t.local_port,
        };
        let remote = Service {
            addr: t.remote.to_canonical(),
            port: t.remote_port,
        };
        if sock.state == TcpState::Listen {
            return (Role::Listener, local);
        }
        if self.listening.contains(&t.local_port) {
            return (Role::Server, local);
        }
        let uses = |port| self.port_uses.get(&port).copied().unwrap_or(0);
        let ephemeral = |port: u16| (self.ephemeral.0..=self.ephemeral.1).contains(&port);
        let local_is_service = match uses(t.local_port).cmp(&uses(t.remote_port)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => ephemeral(t.remote_port) && !ephemeral(t.local_port),
        };
        if local_is_service {
            (Role::Unknown, local)
        } else {
            (Role::Client, remote)
        }
    }
}

#[derive(Default)]
struct Group {
    states: StateCounts,
    owners: HashMap<(u32, String), u64>,
}

/// Counts the snapshot's sockets per state and, unless `by` is [`StatesBy::State`], per row;
/// rows with the most sockets first.
pub fn summarize(snap: &Snapshot, by: StatesBy) -> Summary {
    let roles = Roles::new(snap);
    let mut totals = StateCounts::default();
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for sock in &snap.sockets {
        totals.add(sock.state, sock.age);
        let (role, service) = roles.of(sock);
        let (pid, comm) = sock
            .owner
            .as_ref()
            .map_or((0, String::new()), |o| (o.pid, o.comm.to_string()));
        let key = match by {
            StatesBy::State => continue,
            StatesBy::Service => Key::Service { service, role },
            StatesBy::Process | StatesBy::Unit | StatesBy::Container => Key::Process {
                pid,
                comm: comm.clone(),
                role,
            },
        };
        let group = groups.entry(key).or_default();
        group.states.add(sock.state, sock.age);
        if pid != 0 {
            *group.owners.entry((pid, comm)).or_default() += 1;
        }
    }
    let mut rows: Vec<Row> = groups.into_iter().map(|(k, g)| row(k, g)).collect();
    rows.sort_by(|a, b| {
        b.states
            .total()
            .cmp(&a.states.total())
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.role.cmp(&b.role))
            .then_with(|| a.pid.cmp(&b.pid))
    });
    Summary {
        taken_ns: snap.taken_ns,
        netns: snap.netns,
        totals,
        rows,
        unreadable_processes: snap.unreadable_processes,
    }
}

fn row(key: Key, group: Group) -> Row {
    let processes = group.owners.len();
    // Most sockets first; the lower pid on a tie, so the answer does not depend on hashing.
    let top = group
        .owners
        .into_iter()
        .max_by(|(a, n), (b, m)| n.cmp(m).then(b.0.cmp(&a.0)))
        .map(|(owner, _)| owner);
    let (service, role) = match key {
        Key::Service { service, role } => (service.to_string(), role),
        Key::Process { role, .. } => ("*".to_string(), role),
    };
    let (pid, comm) = top.unwrap_or_default();
    Row {
        service,
        role,
        pid,
        comm,
        processes,
        states: group.states,
        names: CgroupNames::default(),
    }
}

/// Names each row's process with `names(pid)`; by unit or container, then merges the process
/// rows per unit (or container) and role: the row's `service` is that name (`-` for
/// processes without one) and its process the one holding most sockets (sockets of no process,
/// such as TIME_WAITs, count in the row but name no one).
pub fn regroup(summary: &mut Summary, by: StatesBy, mut names: impl FnMut(u32) -> CgroupNames) {
    for row in &mut summary.rows {
        row.names = names(row.pid);
    }
    let name = |r: &Row| match by {
        StatesBy::Unit => r.names.unit.clone(),
        StatesBy::Container => r.names.container.clone(),
        _ => None,
    };
    if !matches!(by, StatesBy::Unit | StatesBy::Container) {
        return;
    }
    let mut groups: BTreeMap<(Option<String>, Role), Row> = BTreeMap::new();
    // Most sockets first, so the first row of a group names its top process.
    for row in std::mem::take(&mut summary.rows) {
        let key = (name(&row), row.role);
        match groups.get_mut(&key) {
            Some(group) => {
                group.states.absorb(&row.states);
                group.processes += row.processes;
                // Sockets of no process (TIME_WAIT) name none: the first process does.
                if group.pid == 0 && row.pid != 0 {
                    (group.pid, group.comm, group.names) = (row.pid, row.comm, row.names);
                }
            }
            None => {
                let mut first = row;
                first.service = key.0.clone().unwrap_or_else(|| "-".into());
                groups.insert(key, first);
            }
        }
    }
    summary.rows = groups.into_values().collect();
    summary.rows.sort_by(|a, b| {
        (b.states.total().cmp(&a.states.total()))
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.role.cmp(&b.role))
    });
}
