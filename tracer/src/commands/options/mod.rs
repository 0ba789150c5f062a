//! The options of each subcommand (clap), the filter options shared by the tracing ones
//! ([`filter`]), the value parsers ([`parsers`]) and the daemon's `--window`/`--since`
//! ([`window`]).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

mod filter;
mod parsers;
mod window;

pub use filter::FilterArgs;
#[cfg(test)]
pub(crate) use parsers::parse_port;
use parsers::{parse_listen_addr, parse_ring_bytes, parse_slot, parse_state};
use window::parse_since;
pub use window::{Since, since_at};

use crate::{
    model::TcpState, source::snapshot::summary::StatesBy, stats::closes::GroupBy,
    time::duration::parse_duration,
};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Stop after this long (e.g. 30s, 2m, 1h; a bare number is seconds). Default: until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the per-state summary this often.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// One JSON object per line, for transitions and summaries.
    #[arg(long)]
    pub json: bool,
    /// No line per transition: only the summaries.
    #[arg(long, short)]
    pub quiet: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (default address 127.0.0.1:9464): time
    /// in each state, transitions, connection ends, sockets in each state, events and losses.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = crate::service::metrics::server::DEFAULT_ADDR,
        value_parser = parse_listen_addr
    )]
    pub metrics: Option<SocketAddr>,
    /// Read the events from a recording made by `tracer record` instead of tracing live (no
    /// root needed). --port/-4/-6/--addr/--netns then narrow the recording (owner filters need
    /// the live kernel); --duration keeps its first DURATION.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["metrics", "cgroup", "pid", "comm"])]
    pub from: Option<PathBuf>,
    /// Answer queries (`tracer histogram`, `tracer closes`) on this Unix socket, mode 0600.
    /// Default: /run/tracer/tracer.sock; refused while another tracer serves it.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["from", "no_socket"])]
    pub socket: Option<PathBuf>,
    /// Serve no control socket (to run next to a `tracer run` that serves it).
    #[arg(long)]
    pub no_socket: bool,
    /// Length of the daemon's fine history slots (default 10s; coarse ones are 90 times longer);
    /// for tests of --window.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_slot)]
    pub slot: Option<Duration>,
    /// Ring buffer bytes in all, shared by the per-CPU rings (a power of two, at least 4096;
    /// each ring gets at least a page); for tests of event loss.
    #[arg(long, hide = true, value_name = "BYTES", value_parser = parse_ring_bytes,
          default_value_t = crate::source::probe::DEFAULT_RING_BYTES)]
    pub ring_bytes: u32,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct HistogramArgs {
    /// The state whose durations to show (e.g. TIME_WAIT, close-wait, established).
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub state: TcpState,
    /// Collect for this long, with a countdown (e.g. 70s, 5m). Default: ask the running
    /// `tracer run`, else collect until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print one JSON object instead of the chart.
    #[arg(long)]
    pub json: bool,
    /// Read the events from a recording made by `tracer record` instead of tracing live (no
    /// root needed). --port/-4/-6/--addr/--netns then narrow the recording (owner filters need
    /// the live kernel); --duration keeps its first DURATION.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cgroup", "pid", "comm"])]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Whether to ask a running `tracer run` instead of tracing (when no --duration/--from is given).
#[derive(Args, Debug, Clone, Default)]
pub struct DaemonArgs {
    /// The control socket of the `tracer run` to ask (default /run/tracer/tracer.sock).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["duration", "from", "no_daemon"])]
    pub socket: Option<PathBuf>,
    /// Trace from now on even when a `tracer run` could answer at once.
    #[arg(long)]
    pub no_daemon: bool,
    /// Only what ended in the last DURATION (e.g. 5m, 1h), from the running `tracer run`'s
    /// history (10 s slots for the last hour, 15 min slots for the last day).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "since")]
    pub window: Option<Duration>,
    /// Only what ended since TIME, from the running `tracer run`'s history: 14:00 or 14:00:30
    /// (today, local time), 2026-11-28 14:00, or RFC 3339 (2026-11-28T14:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<Since>,
}

#[derive(Args, Debug)]
pub struct StatesArgs {
    /// Rows per service (address:port and role), per process, per systemd unit or container
    /// of the process (`-` for processes without one), or none (state totals only).
    #[arg(long, value_enum, default_value = "service")]
    pub by: StatesBy,
    /// Print one JSON object ({"taken_at", "states": {STATE: n}, "oldest", "rows": [...]}).
    #[arg(long)]
    pub json: bool,
    /// Also list sockets that may be stuck (CLOSE_WAIT, FIN_WAIT2, SYN_RECV): with 0 every one
    /// (age ≥ 0 s); otherwise counts only, as one snapshot cannot date them (see doctor).
    #[arg(long, value_name = "SECS", value_parser = crate::service::doctor::stuck::parse_threshold)]
    pub stuck: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Measure for this long: counter rates, who closes first (eBPF), and a second snapshot.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// CLOSE_WAIT / FIN_WAIT2 / SYN_RECV sockets at least this old are stuck (needs --duration).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = crate::service::doctor::stuck::parse_threshold)]
    pub stuck: Duration,
    /// Print one JSON object (sysctls, counters, findings, ...).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Refresh this often.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Quit after this long. Default: until q.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ClosesArgs {
    /// Collect for this long (e.g. 10s, 5m). Default: ask the running `tracer run`, else
    /// collect until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// One row per service (address:port and role), per process, per systemd unit or per
    /// container (of the process, from its cgroup; `-` for processes without one).
    #[arg(long, value_enum, default_value = "service")]
    pub by: GroupBy,
    /// Print a JSON array of rows instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Read the events from a recording made by `tracer record` instead of tracing live (no
    /// root needed). --port/-4/-6/--addr/--netns then narrow the recording (owner filters need
    /// the live kernel); --duration keeps its first DURATION.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cgroup", "pid", "comm"])]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Write the recording to FILE (mode 0600; an existing file is replaced).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (e.g. 30s, 5m). Default: until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// How much the model may follow (the collecting subcommands).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Follow at most N full sockets (about 48 bytes each; timewaits, listeners and snapshot
    /// sockets get proportionate caps). Past it the least recently changed are evicted, counted
    /// under the summary, and their later transitions give no duration.
    #[arg(long, value_name = "N", default_value_t = crate::model::DEFAULT_MAX_SOCKETS,
          value_parser = max_sockets)]
    pub max_sockets: usize,
}

/// The tables number their rows in 24 bits (see model/table/index.rs).
const MAX_SOCKETS: usize = 16_000_000;

/// `--max-sockets`: 1 to [`MAX_SOCKETS`].
fn max_sockets(s: &str) -> Result<usize, String> {
    match s.trim().replace('_', "").parse::<usize>() {
        Ok(n) if (1..=MAX_SOCKETS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of sockets: a whole number from 1 to {MAX_SOCKETS}"
        )),
    }
}
