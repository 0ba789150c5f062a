//! How many sockets the model follows at most, and what it evicted to stay there. Without a
//! bound, a host with millions of sockets, or a stream that never shows their ends (lost
//! events, sockets opened before the trace), would grow the daemon without end.
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

/// Full sockets followed by default (`--max-sockets`): about 48 MiB of tables when full.
pub const DEFAULT_MAX_SOCKETS: usize = 1_000_000;

/// The cap [`crate::model::Model::new`] gives: `--max-sockets`, set once while the command line
/// is parsed (the collectors' models are made far from it).
static CONFIGURED: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_SOCKETS);

pub fn set_max_sockets(max_sockets: usize) {
    CONFIGURED.store(max_sockets, Ordering::Relaxed);
}

pub fn configured_max_sockets() -> usize {
    CONFIGURED.load(Ordering::Relaxed)
}

/// The index keeps row numbers in 24 bits ([`super::table::index::MAX_ROWS`]).
const MAX_CAP: usize = super::table::index::MAX_ROWS - 1;

/// The cap of each table, all derived from the full-socket cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Full sockets (each with its row in the closing index when closing).
    pub sockets: usize,
    /// Timewait sockets: half as many. The kernel itself keeps at most `tcp_max_tw_buckets`
    /// per network namespace (262,144 by default on most hosts).
    pub timewaits: usize,
    /// Listening ports remembered for their children's owner.
    pub listeners: usize,
    /// Sockets from the attach-time snapshot, each until the live stream reports it.
    pub seeds: usize,
    /// Connection ends held a few milliseconds for their RST.
    pub pending_ends: usize,
}

impl Limits {
    pub fn for_sockets(max_sockets: usize) -> Limits {
        let n = max_sockets.clamp(1, MAX_CAP);
        Limits {
            sockets: n,
            timewaits: (n / 2).max(1),
            listeners: (n / 16).max(16),
            seeds: n,
            pending_ends: (n / 16).max(16),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_sockets(DEFAULT_MAX_SOCKETS)
    }
}

/// Entries dropped because their table was full. An evicted socket's next event is treated
/// like that of a socket whose start was not seen: no duration, never a wrong one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evictions {
    pub sockets: u64,
    pub timewaits: u64,
    pub listeners: u64,
    pub seeds: u64,
    /// Ends released before their RST grace had passed (classified without it).
    pub pending_ends: u64,
}

impl Evictions {
    pub fn total(&self) -> u64 {
        self.sockets + self.timewaits + self.listeners + self.seeds + self.pending_ends
    }
}
