//! The options of each subcommand.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

use super::{
    FilterArgs,
    parsers::{parse_duration, parse_listen_addr, parse_ring_bytes, parse_state},
};
use crate::{model::TcpState, snapshot::summary::StatesBy, stats::closes::GroupBy};

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
        default_missing_value = crate::metrics::server::DEFAULT_ADDR,
        value_parser = parse_listen_addr
    )]
    pub metrics: Option<SocketAddr>,
    /// Read the events from a recording made by `tracer record` instead of tracing live (no
    /// root needed). --port/-4/-6/--addr/--netns then narrow the recording (owner filters need
    /// the live kernel); --duration keeps its first DURATION.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["metrics", "cgroup", "pid", "comm"])]
    pub from: Option<PathBuf>,
    /// Answer queries (`tracer histogram`, `tracer closes`) on this Unix socket, mode 0600.
    /// Default: /run/tracer/tracer.sock, unless another tracer serves it or it cannot be made.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["from", "no_socket"])]
    pub socket: Option<PathBuf>,
    /// Serve no control socket.
    #[arg(long)]
    pub no_socket: bool,
    /// Ring buffer size in bytes (a power of two, at least 4096); for tests of event loss.
    #[arg(long, hide = true, value_name = "BYTES", value_parser = parse_ring_bytes,
          default_value_t = crate::probe::DEFAULT_RING_BYTES)]
    pub ring_bytes: u32,
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
}

#[derive(Args, Debug)]
pub struct StatesArgs {
    /// Rows per service (address:port and role), per process, or none (state totals only).
    #[arg(long, value_enum, default_value = "service")]
    pub by: StatesBy,
    /// Print one JSON object ({"taken_at", "states": {STATE: n}, "oldest", "rows": [...]}).
    #[arg(long)]
    pub json: bool,
    /// Also list sockets that may be stuck (CLOSE_WAIT, FIN_WAIT2, SYN_RECV): with 0 every one
    /// (age ≥ 0 s); otherwise counts only, as one snapshot cannot date them (see doctor).
    #[arg(long, value_name = "SECS", value_parser = crate::doctor::stuck::parse_threshold)]
    pub stuck: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Measure for this long: counter rates, who closes first (eBPF), and a second snapshot.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// CLOSE_WAIT / FIN_WAIT2 / SYN_RECV sockets at least this old are stuck (needs --duration).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = crate::doctor::stuck::parse_threshold)]
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
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ClosesArgs {
    /// Collect for this long (e.g. 10s, 5m). Default: ask the running `tracer run`, else
    /// collect until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// One row per service (address:port and role) or per process.
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
    pub filter: FilterArgs,
}
