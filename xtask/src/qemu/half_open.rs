//! The half-open check of the qemu scenario (assets/qemu-init.sh): 5 unanswered SYNs
//! (trc-syns) and the churn's 20 completed handshakes, seen by `run` and
//! `histogram --state syn-recv` on the chosen path and with the timer path forced.
use anyhow::Result;

use super::scenario::{REQUESTS, between};

/// tracer's debug line when fentry and fexit on the request socket timer's handler follow
/// request sockets.
pub const HANDLER_PATH: &str =
    "request sockets followed with fentry and fexit on reqsk_timer_handler";

/// Unanswered SYNs the VM sends.
pub const UNANSWERED: usize = 5;
/// The half-open time of each with `tcp_synack_retries` 1 (SYN-ACK at 0 s, retransmitted at
/// 1 s, dropped at 3 s), with room for a slow VM's timers: milliseconds.
const LIFETIME_MS: std::ops::Range<u64> = 2900..4500;

/// What one path reported.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HalfOpens {
    /// `run`'s stderr lines about the TIME_WAIT path and half-opens.
    pub path: String,
    /// SYN_RECV durations in the histogram, and those whose start was not seen.
    durations: Option<u64>,
    start_not_seen: Option<u64>,
    /// `run`'s SYN_RECV -> CLOSE steps noted syn_ack_unanswered, and how many of them lived
    /// as long as the retransmit schedule says.
    unanswered: usize,
    on_schedule: usize,
}

impl HalfOpens {
    /// The lines between BEGIN-HALFOPEN-{name} and END-HALFOPEN-{name}.
    pub fn parse(out: &str, name: &str) -> Result<HalfOpens> {
        let section = between(
            out,
            &format!("BEGIN-HALFOPEN-{name}"),
            &format!("END-HALFOPEN-{name}"),
        )?;
        let mut h = HalfOpens::default();
        for line in section.lines().map(str::trim) {
            if let Some(path) = line.strip_prefix("PATH: ") {
                if !h.path.is_empty() {
                    h.path.push_str("; ");
                }
                h.path.push_str(path);
                continue;
            }
            let (hist, json) = match (line.strip_prefix("HIST: "), line.strip_prefix("END: ")) {
                (Some(json), _) => (true, json),
                (_, Some(json)) => (false, json),
                _ => continue,
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            if hist {
                h.durations = v["count"].as_u64();
                h.start_not_seen = v["start_not_seen"].as_u64();
            } else if v["note"] == "syn_ack_unanswered" {
                h.unanswered += 1;
                let ms = v["dwell_ns"].as_u64().unwrap_or(0) / 1_000_000;
                h.on_schedule += usize::from(LIFETIME_MS.contains(&ms));
            }
        }
        Ok(h)
    }

    /// Every handshake timed from its SYN, every unanswered one on its schedule.
    pub fn ok(&self) -> bool {
        let all = REQUESTS + UNANSWERED as u64;
        self.durations == Some(all)
            && self.start_not_seen == Some(0)
            && (self.unanswered, self.on_schedule) == (UNANSWERED, UNANSWERED)
    }

    /// The counts both paths must agree on.
    pub fn counts(&self) -> (Option<u64>, Option<u64>, usize, usize) {
        (
            self.durations,
            self.start_not_seen,
            self.unanswered,
            self.on_schedule,
        )
    }

    pub fn describe(&self) -> String {
        format!(
            "\"{}\"; SYN_RECV durations {:?} ({:?} start not seen), unanswered {} ({} in {:?} ms) \
             (expected {}, 0, {UNANSWERED} all on schedule)",
            self.path,
            self.durations,
            self.start_not_seen,
            self.unanswered,
            self.on_schedule,
            LIFETIME_MS,
            REQUESTS + UNANSWERED as u64
        )
    }
}
