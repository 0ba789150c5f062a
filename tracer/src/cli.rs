//! Command-line interface: every subcommand, its options and its examples.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tracer_common::{AF_INET, AF_INET6, FilterConfig, MAX_ADDRS, MAX_PORTS, owner_match};

use crate::{
    filter::{Cgroup, Cidr},
    model::TcpState,
    snapshot::summary::StatesBy,
    stats::closes::GroupBy,
};

const ABOUT: &str = "Trace TCP state transitions with eBPF: how long sockets stay in each state \
(TIME_WAIT, CLOSE_WAIT, ...) and which side closed first.";

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
#[command(name = "tracer", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line like [`Parser::parse`], and also refuses (exit 2) a filter
    /// with more values than the kernel side holds.
    pub fn parse_valid() -> Cli {
        let cli = Cli::parse();
        if let Some(Err(msg)) = cli.command.filter().map(FilterArgs::check) {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::TooManyValues, msg)
                .exit();
        }
        cli
    }
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
from what it has collected, through its control socket (/run/tracer/tracer.sock, root only).")]
    Run(RunArgs),
    /// Collect for a while, then show the distribution of the time sockets spent in one state.
    #[command(after_help = "\
Examples:
  sudo tracer histogram --state TIME_WAIT --duration 70s   # TIME_WAIT lasts 60 s: wait longer
  sudo tracer histogram --state established --port 5432 --duration 5m
  sudo tracer histogram --state fin-wait2 --json           # until Ctrl-C, then JSON
  sudo tracer histogram --state time-wait                  # at once, from `tracer run`

State names: any case, with '_', '-' or nothing between words (TIME_WAIT, time-wait,
timewait). Sockets still in the state at the end are reported apart with their age so far.

Without --duration or --from, a running `tracer run` answers at once with what it has
collected since it started (--no-daemon collects anew instead).")]
    Histogram(HistogramArgs),
    /// Collect for a while, then show who closed first, per service or per process: this side,
    /// the peer, both, RST either way, or a failed connect.
    #[command(after_help = "\
Examples:
  sudo tracer closes --duration 10s                 # per service (server: local, client: remote)
  sudo tracer closes --by process --duration 1m     # per owning process
  sudo tracer closes --port 8080 --json             # until Ctrl-C, then a JSON array
  sudo tracer closes                                # at once, from `tracer run`

The side that closes first holds the TIME_WAIT; a side that stays in CLOSE_WAIT has an
application that has not called close(). Each row ends with a sentence saying which.

Without --duration or --from, a running `tracer run` answers at once with what it has
collected since it started (--no-daemon collects anew instead).")]
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
}

impl Command {
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

/// Which traffic to follow; applied in the kernel so the rest never reaches userspace. Options
/// of different kinds must all match; repeated --port or --addr values are alternatives.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Filters (applied in the kernel)")]
pub struct FilterArgs {
    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 sockets.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Only connections whose local or remote port is PORT (repeat for up to 16 ports).
    #[arg(long = "port", value_name = "PORT", value_parser = parse_port)]
    pub ports: Vec<u16>,
    /// Only connections whose local or remote address is ADDR or in the network CIDR, IPv4 or
    /// IPv6 (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8; repeat for up to 8). An IPv4 network also
    /// matches IPv4-mapped IPv6 addresses (::ffff:10.0.0.5).
    #[arg(long = "addr", value_name = "ADDR|CIDR", value_parser = parse_cidr)]
    pub addrs: Vec<Cidr>,
    /// Only sockets of one network namespace: its inode number, or a namespace file such as
    /// /run/netns/NAME or /proc/PID/ns/net.
    #[arg(long, value_name = "INODE|PATH", value_parser = crate::filter::parse_netns)]
    pub netns: Option<u32>,
    /// Only sockets owned by processes in this cgroup (v2) or below it: a directory
    /// (/sys/fs/cgroup/system.slice/nginx.service, or /system.slice/nginx.service as
    /// /proc/PID/cgroup shows it) or a numeric cgroup id.
    ///
    /// --cgroup, --pid and --comm select by owner and follow the socket: its owner is the task
    /// that connects, listens on it, or closes or shuts it down (children of a listener belong
    /// to the listener's owner), and from then on every event of the socket is kept, its
    /// TIME_WAIT included. The task current at an event is not used otherwise: most
    /// transitions happen in softirq context, which carries whichever task was interrupted.
    /// Sockets that existed before the trace are kept when their owner (found in /proc at
    /// start) matches. Up to 65,536 sockets are followed at once; beyond that the least
    /// recently seen are forgotten.
    #[arg(long, value_name = "PATH|ID", value_parser = parse_cgroup)]
    pub cgroup: Option<Cgroup>,
    /// Only sockets owned by process PID (the whole process, not its children; see --cgroup
    /// for what owning means).
    #[arg(long, value_name = "PID", value_parser = crate::filter::parse_pid)]
    pub pid: Option<u32>,
    /// Only sockets owned by a thread whose command name is NAME (as in /proc/PID/comm, at
    /// most 15 bytes; see --cgroup for what owning means).
    #[arg(long, value_name = "NAME", value_parser = crate::filter::parse_comm)]
    pub comm: Option<String>,
}

impl FilterArgs {
    /// Limits that one value cannot show (how many were given).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ports.len() > MAX_PORTS {
            return Err(format!(
                "at most {MAX_PORTS} --port values are supported, got {}",
                self.ports.len()
            ));
        }
        if self.addrs.len() > MAX_ADDRS {
            return Err(format!(
                "at most {MAX_ADDRS} --addr values are supported, got {}",
                self.addrs.len()
            ));
        }
        Ok(())
    }

    pub fn to_config(&self) -> Result<FilterConfig> {
        self.check().map_err(anyhow::Error::msg)?;
        let mut config = FilterConfig {
            family: match (self.ipv4, self.ipv6) {
                (true, _) => AF_INET,
                (_, true) => AF_INET6,
                _ => 0,
            },
            port_count: self.ports.len() as u16,
            netns: self.netns.unwrap_or(0),
            ..Default::default()
        };
        config.ports[..self.ports.len()].copy_from_slice(&self.ports);
        let rules: Vec<_> = self.addrs.iter().flat_map(Cidr::rules).collect();
        config.addr_count = rules.len() as u16;
        config.addrs[..rules.len()].copy_from_slice(&rules);
        if let Some(cgroup) = &self.cgroup {
            config.owner_match |= owner_match::CGROUP;
            config.cgroup_id = cgroup.id;
        }
        if let Some(pid) = self.pid {
            config.owner_match |= owner_match::PID;
            config.pid = pid;
        }
        if let Some(comm) = &self.comm {
            config.owner_match |= owner_match::COMM;
            config.comm = crate::filter::comm_bytes(comm);
        }
        Ok(config)
    }
}

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

fn parse_state(s: &str) -> Result<TcpState, String> {
    s.parse()
        .map_err(|e: crate::model::state::UnknownState| e.to_string())
}

/// `30`, `30s`, `1500ms`, `2m`, `1h30m`. Zero is refused: it would end before starting.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let parsed = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("'{s}' is not a duration like 30s, 2m or 1h ({e})"))?,
    };
    if parsed.is_zero() {
        return Err("a duration must be longer than zero".into());
    }
    Ok(parsed)
}

/// `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`: an IP address and a port, no host name.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not an address and port like 127.0.0.1:9464, 0.0.0.0:9464 or [::]:9464")
    })
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

fn parse_cgroup(s: &str) -> Result<Cgroup, String> {
    s.parse()
}

/// `--ring-bytes`: the kernel wants a power of two, at least a page.
fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 4096 && n.is_power_of_two() && n <= 1 << 30 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a ring buffer size: a power of two from 4096 to 1073741824"
        )),
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{s}' is not a TCP port (1-65535)")),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_usual_spellings() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_port("443"), Ok(443));
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
    }

    #[test]
    fn filter_config_carries_family_and_ports() {
        let args = FilterArgs {
            ipv6: true,
            ports: vec![80, 443],
            ..Default::default()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.family, AF_INET6);
        assert!(c.accepts(AF_INET6, 80, 5000));
        assert!(c.accepts(AF_INET6, 5000, 443));
        assert!(!c.accepts(AF_INET6, 5000, 5001));
        assert!(!c.accepts(AF_INET, 80, 5000));
    }

    #[test]
    fn metrics_address_is_optional_with_a_loopback_default() {
        let run = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Run(run)) => Ok(run.metrics),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(run(&["tracer", "run"]), Ok(None));
        assert_eq!(
            run(&["tracer", "run", "--metrics"]),
            Ok(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            run(&["tracer", "run", "--metrics", "--quiet"]),
            Ok(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            run(&["tracer", "run", "--metrics", "0.0.0.0:9464"]),
            Ok(Some("0.0.0.0:9464".parse().unwrap()))
        );
        assert_eq!(
            run(&["tracer", "run", "--metrics=[::1]:9100"]),
            Ok(Some("[::1]:9100".parse().unwrap()))
        );
        assert_eq!(
            run(&["tracer", "run", "--metrics", "localhost"]),
            Err(clap::error::ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
