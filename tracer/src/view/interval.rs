//! The `"interval"` object of a `--window`/`--since` answer: exactly what it covers.
use serde::{Deserialize, Serialize};

/// `--window`'s and `--since`'s answer: the interval counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The start asked for (RFC 3339).
    pub requested: String,
    /// The start counted from: a slot edge at or before `requested`, or the daemon's start.
    pub start: String,
    /// The daemon's "now" when it answered; sockets still in a state are counted as of then.
    pub end: String,
    pub duration_ns: u64,
    /// The slot length `start` is a multiple of; 0 when it is the daemon's start.
    pub slot_ns: u64,
    /// Significant bits of the duration buckets: 11 (3 significant digits, as answers since
    /// the start have), fewer when a busy slot had to coarsen (8: within 0.4 %).
    pub significant_bits: u32,
    /// Why the interval starts later than asked, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
