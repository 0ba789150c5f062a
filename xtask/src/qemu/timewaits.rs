//! The TIME_WAIT check of the qemu scenario (assets/qemu-timewait.sh), as one `tracer run`
//! reported it.
use anyhow::Result;

use super::scenario::between;

/// What qemu-timewait.sh makes: its two requests to [`TW_SERVER`] each leave a TIME_WAIT that
/// ends early (tw reuse, netns exit), and its client's FIN_WAIT2 timewait (port 8091) one
/// expiry. Its server closes after the client's FIN, so the client holds each TIME_WAIT; when
/// the server was httpd, which closes as soon as it has answered, it sometimes closed first
/// under emulation (x86_64 5.10 once in 4 runs) or both at once (a CI run on 6.1). The check
/// still counts the requests that left a TIME_WAIT on either side (starts less than
/// [`TW_SAME_CLOSE_NS`] apart are one close), and wants every TIME_WAIT of them ended early.
const TW_REQUESTS: usize = 2;
const TW_EXPIRED: usize = 1;
pub const TW_CLIENT: &str = "127.0.0.1:40000";
pub const TW_SERVER: &str = "127.0.0.1:8090";
/// The two requests are 2.2 s apart; both sides of one close start theirs within it.
const TW_SAME_CLOSE_NS: u64 = 1_000_000_000;

/// What one `tracer run` reported over qemu-timewait.sh.
#[derive(Debug, Default)]
pub struct TimeWaits {
    /// Its stderr line naming the TIME_WAIT path.
    pub path: String,
    /// When each TIME_WAIT of the two requests started, either side.
    starts: Vec<u64>,
    ended_early: usize,
    expired: usize,
    lost: Option<u64>,
}

impl TimeWaits {
    /// The lines between BEGIN-TW-{name} and END-TW-{name}: the path, then the JSON lines
    /// of TIME_WAIT starts and ends and the final summary.
    pub fn parse(out: &str, name: &str) -> Result<TimeWaits> {
        let section = between(out, &format!("BEGIN-TW-{name}"), &format!("END-TW-{name}"))?;
        let mut tw = TimeWaits::default();
        for line in section.lines().map(str::trim) {
            if let Some(path) = line.strip_prefix("PATH: ") {
                tw.path = path.to_string();
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let request = (v["local"] == TW_CLIENT && v["remote"] == TW_SERVER)
                || (v["local"] == TW_SERVER && v["remote"] == TW_CLIENT);
            if v["type"] == "summary" {
                tw.lost = v["lost"].as_u64();
            } else if request && v["to"] == "TIME_WAIT" {
                tw.starts.push(v["ts_ns"].as_u64().unwrap_or(0));
            } else if request && v["note"] == "ended_early" {
                tw.ended_early += 1;
            } else if v["local"] == TW_CLIENT && v["note"] == "expired" {
                tw.expired += 1;
            }
        }
        Ok(tw)
    }

    /// The requests that left a TIME_WAIT: starts closer than [`TW_SAME_CLOSE_NS`] are one.
    fn closes(&self) -> usize {
        let mut starts = self.starts.clone();
        starts.sort_unstable();
        let apart = starts
            .windows(2)
            .filter(|w| w[1] - w[0] >= TW_SAME_CLOSE_NS);
        usize::from(!starts.is_empty()) + apart.count()
    }

    pub fn counts_ok(&self) -> bool {
        self.closes() == TW_REQUESTS
            && self.ended_early == self.starts.len()
            && self.expired == TW_EXPIRED
            && self.lost == Some(0)
    }

    pub fn describe(&self) -> String {
        format!(
            "\"{}\"; requests with a TIME_WAIT {} ({} TIME_WAITs, {} ended early), expired {}, \
             lost {:?} (expected {}, each ended early, {}, 0)",
            self.path,
            self.closes(),
            self.starts.len(),
            self.ended_early,
            self.expired,
            self.lost,
            TW_REQUESTS,
            TW_EXPIRED
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run`'s lines over qemu-timewait.sh: (local, remote, from, to, note, ts in ms).
    fn tw_out(lines: &[(&str, &str, &str, &str, &str, u64)]) -> String {
        let mut out = vec!["BEGIN-TW-auto".to_string(), "PATH: fentry".to_string()];
        out.extend(lines.iter().map(|(local, remote, from, to, note, ms)| {
            format!(
                r#"{{"type":"transition","ts_ns":{},"local":"{local}","remote":"{remote}","from":"{from}","to":"{to}","note":{note}}}"#,
                ms * 1_000_000
            )
        }));
        out.push(r#"{"type":"summary","final":true,"lost":0}"#.to_string());
        out.push("END-TW-auto".to_string());
        out.join("\n")
    }

    /// A simultaneous close on the first request (seen on 6.1): both sides hold a TIME_WAIT,
    /// one request.
    #[test]
    fn a_simultaneous_close_is_one_request_with_a_time_wait() {
        let (c, s, e) = (TW_CLIENT, TW_SERVER, r#""ended_early""#);
        let out = tw_out(&[
            (s, c, "CLOSING", "TIME_WAIT", "null", 1000),
            (c, s, "CLOSING", "TIME_WAIT", "null", 1000),
            (c, s, "TIME_WAIT", "CLOSE", e, 3200),
            (s, c, "TIME_WAIT", "CLOSE", e, 3200),
            (c, s, "FIN_WAIT2", "TIME_WAIT", "null", 3201),
            (
                c,
                "127.0.0.1:8091",
                "FIN_WAIT2",
                "CLOSE",
                r#""expired""#,
                5000,
            ),
            (c, s, "TIME_WAIT", "CLOSE", e, 7000),
        ]);
        let tw = TimeWaits::parse(&out, "auto").unwrap();
        assert!(tw.counts_ok(), "{}", tw.describe());
    }

    /// httpd closed first on the second request (x86_64 5.10): its TIME_WAIT counts.
    #[test]
    fn the_time_wait_counts_on_the_side_that_closed_first() {
        let (c, s, e) = (TW_CLIENT, TW_SERVER, r#""ended_early""#);
        let mut lines = vec![
            (c, s, "FIN_WAIT2", "TIME_WAIT", "null", 34759),
            (c, s, "TIME_WAIT", "CLOSE", e, 36977),
            (s, c, "FIN_WAIT2", "TIME_WAIT", "null", 36982),
            (
                c,
                "127.0.0.1:8091",
                "FIN_WAIT2",
                "CLOSE",
                r#""expired""#,
                39028,
            ),
            (s, c, "TIME_WAIT", "CLOSE", e, 40592),
        ];
        let tw = TimeWaits::parse(&tw_out(&lines), "auto").unwrap();
        assert!(tw.counts_ok(), "{}", tw.describe());
        // A TIME_WAIT that did not end early, or a request without one, is still a failure.
        lines.pop();
        let tw = TimeWaits::parse(&tw_out(&lines), "auto").unwrap();
        assert!(!tw.counts_ok(), "{}", tw.describe());
        lines.remove(2);
        let tw = TimeWaits::parse(&tw_out(&lines), "auto").unwrap();
        assert!(!tw.counts_ok(), "{}", tw.describe());
    }
}
