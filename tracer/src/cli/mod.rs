//! Command-line interface: every subcommand with its help and examples; each one's options
//! are in [`crate::commands::options`].
use clap::{CommandFactory, Parser, Subcommand, error::ErrorKind};

pub mod generate;
pub mod logging;
#[cfg(test)]
mod tests;

use crate::commands::options::{
    ClosesArgs, DoctorArgs, FilterArgs, HistogramArgs, RecordArgs, RunArgs, StatesArgs, TopArgs,
};

const ABOUT: &str = "Trace TCP state transitions with eBPF: how long sockets stay in each state \
(TIME_WAIT, CLOSE_WAIT, ...) and which side closed first.";

/// `tracer --version`: "0.1.0 (abc1234 2026-12-07)", the commit from tracer/build.rs.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TRACER_GIT_COMMIT"),
    ")"
);

const EXAMPLES: &str = "\
Examples:
  sudo tracer run                                 # every transition, a summary every 10 s
  sudo tracer run --port 8080 --duration 30s      # one service, 30 seconds
  sudo tracer histogram --state TIME_WAIT --duration 70s
  sudo tracer histogram --state close-wait --json
  sudo tracer closes --duration 10s               # which side closes first, per service
  sudo tracer states                              # sockets in each state right now, per service
  sudo tracer record -o web.trc --duration 5m     # record the events, then analyse them offline:
  tracer closes --from web.trc                    # (no root needed to replay)";

#[derive(Parser, Debug)]
#[command(name = "tracer", version = VERSION, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// More messages about the run on stderr: -v debug, -vv trace and the libraries' debug
    /// (RUST_LOG, e.g. RUST_LOG=tracer=debug, overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` like [`Parser::try_parse_from`], and also refuses a filter with more
    /// values than the kernel side holds and `--window`/`--since` where no daemon is asked.
    /// The error is clap's, for `main` to print and exit with (2 for usage errors).
    pub fn try_parse_valid<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        if let Some(Err(msg)) = cli.command.filter().map(FilterArgs::check) {
            return Err(Cli::command().error(ErrorKind::TooManyValues, msg));
        }
        if let Err(msg) = cli.command.check_window() {
            return Err(Cli::command().error(ErrorKind::ArgumentConflict, msg));
        }
        Ok(cli)
    }
}

/// A usage error as clap reports one (the message, the usage line; exit 2): for what only shows
/// once the command runs, such as `--window` with no daemon to ask.
pub fn usage_error(message: impl std::fmt::Display) -> clap::Error {
    Cli::command().error(ErrorKind::InvalidValue, message)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print every TCP state transition and, every interval and at exit, the time spent in
    /// each state (p50/p90/p99/max).
    #[command(after_help = "\
Examples:
  sudo tracer run                                  # all TCP traffic, summary every 10 s
  sudo tracer run --quiet --interval 5s            # only the per-state table, every 5 s
  sudo tracer run -4 --port 80 --port 443          # IPv4, local or remote port 80 or 443
  sudo tracer run --addr 10.0.0.0/8 --netns /run/netns/blue   # one network, one namespace
  sudo tracer run --cgroup /system.slice/nginx.service  # sockets owned by a service's processes
  sudo tracer run --json --duration 1m > out.jsonl # one JSON object per line, for 1 minute
  sudo tracer run --quiet --metrics                # Prometheus metrics at 127.0.0.1:9464/metrics
  sudo tracer run --quiet --metrics 0.0.0.0:9464   # ... on every interface
  sudo tracer run --quiet --socket /tmp/t.sock     # answer queries on another socket

Each line: time, pid, command, local -> remote, OLD -> NEW, time spent in OLD.
TIME_WAIT is followed through the kernel's timewait socket, so its end (normally 60 s
later) shows as TIME_WAIT -> CLOSE. Stops on Ctrl-C, SIGTERM or after --duration.

While it runs, `tracer histogram` and `tracer closes` (without --duration) answer at once
from what it has collected, through its control socket (/run/tracer/tracer.sock, root only),
also for the last minutes (--window 5m) or since a time (--since 14:00): it keeps 10 s slots
for the last hour and 15 min slots for the last day. One daemon per socket: a second
`tracer run` exits 1 unless given --no-socket (or another --socket).")]
    Run(RunArgs),
    /// Collect for a while, then show the distribution of the time sockets spent in one state.
    #[command(after_help = "\
Examples:
  sudo tracer histogram --state TIME_WAIT --duration 70s   # TIME_WAIT lasts 60 s: wait longer
  sudo tracer histogram --state established --port 5432 --duration 5m
  sudo tracer histogram --state fin-wait2 --json           # until Ctrl-C, then JSON
  sudo tracer histogram --state time-wait                  # at once, from `tracer run`
  sudo tracer histogram --state time-wait --window 5m      # ... what ended in the last 5 min
  sudo tracer histogram --state established --since 14:00  # ... since 14:00 today

State names: any case, with '_', '-' or nothing between words (TIME_WAIT, time-wait,
timewait). Sockets still in the state at the end are reported apart with their age so far.

Without --duration or --from, a running `tracer run` answers at once with what it has
collected since it started (--no-daemon collects anew instead), or with --window/--since
only what ended in that interval (its start rounded down to the daemon's 10 s or 15 min
slots; sockets still in the state as of now).")]
    Histogram(HistogramArgs),
    /// Collect for a while, then show who closed first, per service or per process: this side,
    /// the peer, both, RST either way, or a failed connect.
    #[command(after_help = "\
Examples:
  sudo tracer closes --duration 10s                 # per service (server: local, client: remote)
  sudo tracer closes --by process --duration 1m     # per owning process
  sudo tracer closes --port 8080 --json             # until Ctrl-C, then a JSON array
  sudo tracer closes                                # at once, from `tracer run`
  sudo tracer closes --window 1h --json             # ... the last hour, as JSON

The side that closes first holds the TIME_WAIT; a side that stays in CLOSE_WAIT has an
application that has not called close(). Each row ends with a sentence saying which.

Without --duration or --from, a running `tracer run` answers at once with what it has
collected since it started (--no-daemon collects anew instead), or with --window/--since
only what ended in that interval (its start rounded down to the daemon's 10 s or 15 min
slots).")]
    Closes(ClosesArgs),
    /// A live full-screen view, refreshed every second: sockets per state, transition rates,
    /// who holds TIME_WAIT and CLOSE_WAIT, who closes first, lost events.
    #[command(after_help = "\
Examples:
  sudo tracer top                      # q, Esc or Ctrl-C quits and restores the terminal
  sudo tracer top --port 443           # one service
  sudo tracer top --duration 30s > top.txt   # not a terminal: plain-text snapshots

Sockets that existed before tracer started are counted from a snapshot; their age in a state
shows as \"≥\" (at least), except TIME_WAIT, which is dated by its timer.")]
    Top(TopArgs),
    /// Count the TCP sockets that exist right now in each state (like `netstat -n | awk ...`),
    /// per service or per process, with the oldest TIME_WAIT's age. Instant: no eBPF.
    #[command(after_help = "\
Examples:
  sudo tracer states                     # totals per state, then one row per service and role
  sudo tracer states --by process        # one row per owning process (pid, command) and role
  sudo tracer states --by state --json   # only the totals, as one JSON object
  sudo ip netns exec NS tracer states    # the sockets of another network namespace

A service is the local address:port of sockets on a listening port (role server), else the
remote address:port (role client); a socket whose local port looks like a server's whose
listener is gone (more sockets share it, or only the peer's port is ephemeral) counts for its
local address:port with role unknown. TIME_WAIT ages are exact (from the kernel's 60 s timer);
other states began before the snapshot at an unknown time. Without root the counts are complete
but the owners of other users' sockets are not (the output says so).")]
    States(StatesArgs),
    /// Record the raw event stream to a file, to analyse later (and elsewhere, without root)
    /// with `--from FILE` on run, histogram and closes.
    #[command(after_help = "\
Examples:
  sudo tracer record -o web.trc --port 8080 --duration 5m  # record 5 minutes of one service
  tracer closes --from web.trc                             # then, offline: who closed first
  tracer histogram --state time-wait --from web.trc        # ... the TIME_WAIT durations
  tracer run --quiet --from web.trc --port 443             # ... the tables, port 443 only

The file is created with mode 0600 (it names every connection and process) and holds the
events exactly as the kernel reported them, the start time (boot and wall clock), the filter,
the host name and the lost-events counter, so a replay gives the answers, times and losses of
the live run. Stops on Ctrl-C, SIGTERM or after --duration and ends the file properly. The
format is documented in docs/recording-format.md.")]
    Record(RecordArgs),
    /// Diagnose TCP connection-end trouble: sysctls, kernel counters and one snapshot (two,
    /// --duration apart, with who-closed-first in between) turned into findings with numbers.
    #[command(after_help = "\
Examples:
  sudo tracer doctor                              # instant: sysctls, counters, one snapshot
  sudo tracer doctor --duration 60s               # counter rates, who closes first, stuck sockets
  sudo tracer doctor --duration 30s --stuck 10s --json
  sudo ip netns exec NS tracer doctor             # another network namespace (sysctls are per netns)

Findings (most severe first): TIME_WAIT near tcp_max_tw_buckets or TCPTimeWaitOverflow > 0,
services whose TIME_WAIT comes from this host closing first, ephemeral port pressure per
destination, CLOSE_WAIT (the application has not called close()) with process and pid, listen
queue overflows and SYN_RECV pile-ups, tcp_tw_reuse; 'nothing wrong found' is a valid answer.
A socket's age is only known from two snapshots: with --duration D, CLOSE_WAIT / FIN_WAIT2 /
SYN_RECV sockets present in both are at least D old.")]
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(after_help = "\
Examples:
  tracer completions bash > ~/.local/share/bash-completion/completions/tracer
  tracer completions zsh > ~/.zfunc/_tracer        # a folder on $fpath
  tracer completions fish > ~/.config/fish/completions/tracer.fish

The .deb installs all three where the shells look for them.")]
    Completions(generate::CompletionsArgs),
    /// Write the man pages (for packaging): tracer.1 to stdout, or every page into --dir.
    #[command(hide = true)]
    Man(generate::ManArgs),
}

impl Command {
    /// `--window`/`--since` only where the command asks the daemon.
    fn check_window(&self) -> Result<(), String> {
        match self {
            Command::Histogram(a) => a.daemon.check(a.duration.is_some(), a.from.is_some()),
            Command::Closes(a) => a.daemon.check(a.duration.is_some(), a.from.is_some()),
            _ => Ok(()),
        }
    }

    /// `--max-sockets` of subcommands that follow sockets.
    pub fn max_sockets(&self) -> Option<usize> {
        match self {
            Command::Run(a) => Some(a.limits.max_sockets),
            Command::Histogram(a) => Some(a.limits.max_sockets),
            Command::Closes(a) => Some(a.limits.max_sockets),
            Command::Top(a) => Some(a.limits.max_sockets),
            Command::Record(a) => Some(a.limits.max_sockets),
            _ => None,
        }
    }

    /// The filter options of subcommands that trace.
    pub fn filter(&self) -> Option<&FilterArgs> {
        match self {
            Command::Run(a) => Some(&a.filter),
            Command::Histogram(a) => Some(&a.filter),
            Command::Closes(a) => Some(&a.filter),
            Command::Top(a) => Some(&a.filter),
            Command::Record(a) => Some(&a.filter),
            _ => None,
        }
    }
}
