//! Helpers for the real-kernel integration tests in tests/*.rs: attach the real eBPF programs
//! (filtered to one test's ports so tests running in parallel do not see each other), drive real
//! loopback TCP, and run the real `tracer` binary. Every wait is bounded.
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    time::{Duration, Instant},
};

use tracer::{
    model::{Event, Model, Step, TcpState},
    source::probe::{DEFAULT_RING_BYTES, Detail, Probe},
};
use tracer_common::FilterConfig;

pub mod churn;
pub mod daemon;
pub mod deploy;
pub mod filter_traffic;
pub mod half_open;
pub mod netns;
pub mod nginx;
pub mod paced;
pub mod sockets;
pub mod tools;

/// The real probe feeding the real model, keeping every step.
pub struct Trace {
    probe: Probe,
    model: Model,
    pub steps: Vec<Step>,
    /// Every event read, in order.
    pub events: Vec<Event>,
}

impl Trace {
    /// Attaches the programs, keeping only connections with one of `ports`.
    pub fn attach(ports: &[u16]) -> Trace {
        let mut filter = FilterConfig {
            port_count: ports.len() as u16,
            ..Default::default()
        };
        filter.ports[..ports.len()].copy_from_slice(ports);
        let probe = Probe::attach(&filter, DEFAULT_RING_BYTES, Detail::Transitions)
            .expect("attach eBPF programs");
        assert!(probe.timewait_supported, "tw_timer_handler must be found");
        Trace {
            probe,
            model: Model::new(),
            steps: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Seeds the model with the sockets that exist now on `ports` (the attach-time snapshot).
    pub fn seed_existing(&mut self, ports: &[u16]) {
        let snap = tracer::source::snapshot::take().expect("sock_diag snapshot");
        self.model.seed(
            tracer::source::snapshot::seeds(&snap)
                .into_iter()
                .filter(|s| {
                    ports.contains(&s.tuple.local_port) || ports.contains(&s.tuple.remote_port)
                }),
        );
    }

    /// Reads events until `done(steps)` holds or `timeout` passes; returns whether it held.
    pub async fn collect_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[Step]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut raw = Vec::new();
        loop {
            if done(&self.steps) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let wait = left.min(Duration::from_millis(100));
            match tokio::time::timeout(wait, self.probe.read(&mut raw)).await {
                Ok(read) => read.expect("ring buffer read"),
                // Small batches wake no reader: drain them as the daemon does on its timer.
                Err(_) => self.probe.drain(&mut raw),
            }
            for r in raw.drain(..) {
                let ev = Event::try_from(&r).expect("decodable event");
                self.steps.extend(self.model.apply(&ev));
                self.events.push(ev);
            }
            self.steps
                .extend(self.model.finish(tracer::time::clock::boot_ns()));
        }
    }

    pub fn lost(&self) -> u64 {
        self.probe.lost().expect("read lost counter")
    }
}

/// A port nobody listens on right now (bound then released).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// `(from, to)` pairs of the steps on sockets whose local port is `port`, in order.
pub fn transitions_at(steps: &[Step], local_port: u16) -> Vec<(TcpState, TcpState)> {
    steps
        .iter()
        .filter(|s| s.tuple.local_port == local_port)
        .map(|s| (s.from, s.to))
        .collect()
}

/// One connection: connect, hold it open `hold`, the client closes first, then the server
/// (20 ms after it has the client's FIN, which it acknowledges at once: [`take_fin`]).
pub fn client_closes_first(server: &TcpListener, hold: Duration) -> SocketAddr {
    let client = TcpStream::connect(server.local_addr().unwrap()).expect("connect");
    let (mut accepted, _) = server.accept().expect("accept");
    let client_addr = client.local_addr().unwrap();
    std::thread::sleep(hold);
    drop(client);
    take_fin(&mut accepted);
    std::thread::sleep(Duration::from_millis(20));
    drop(accepted);
    client_addr
}

/// Reads until the peer's FIN (at most 5 s), then acknowledges it at once (TCP_QUICKACK)
/// instead of leaving the ACK to the delayed-ACK timer. That timer's softirq runs in whatever
/// task it interrupts, and this 6.18 kernel does not run eBPF programs (ours nor libbpf-tools'
/// tcpstates) for the transitions of softirq work that interrupted PID 1: the peer's
/// FIN_WAIT1 -> FIN_WAIT2 would then be missing now and then (README: Reliability). Sent from
/// this system call, the peer's change happens in this task. Returns how many bytes of data
/// came before the FIN.
pub fn take_fin(stream: &mut TcpStream) -> usize {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut data = 0;
    loop {
        match stream.read(&mut buf).expect("read until the peer's FIN") {
            0 => break,
            n => data += n,
        }
    }
    socket2::SockRef::from(&*stream)
        .set_tcp_quickack(true)
        .expect("TCP_QUICKACK");
    data
}

/// The `tracer` binary built next to this test executable (or `$TRACER_BIN`).
pub fn tracer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TRACER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("tracer");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p tracer` first",
        bin.display()
    );
    bin
}

/// A running `tracer` process whose programs are attached (it printed its ready line).
pub struct Running {
    pub child: std::process::Child,
    /// Reads stdout from the start, so a chatty tracer never blocks on a full pipe.
    stdout: Option<std::thread::JoinHandle<String>>,
    /// What it said on stderr up to its ready line (which TIME_WAIT hooks, warnings).
    pub stderr: Vec<String>,
    /// The stderr lines after the ready line, as they come.
    later: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// Starts `tracer ARGS` and waits (at most 10 s) until it says it is tracing.
    pub fn start(args: &[&str]) -> Running {
        let mut cmd = std::process::Command::new(tracer_bin());
        cmd.args(args);
        Running::start_command(cmd)
    }

    /// Starts `cmd` (a tracer, maybe through a wrapper that execs it) and waits (at most 10 s)
    /// until it says it is tracing.
    pub fn start_command(mut cmd: std::process::Command) -> Running {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        // The ready line is an info-level message: a RUST_LOG of the caller's must not hide it.
        let mut child = cmd
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tracer");
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            out
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut said = Vec::new();
        while !said.iter().any(|l: &String| l.contains("Ctrl-C")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => said.push(line),
                Err(e) => {
                    let _ = child.kill();
                    panic!("tracer did not start ({e}): {said:?}");
                }
            }
        }
        Running {
            child,
            stdout: Some(stdout),
            stderr: said,
            later: rx,
        }
    }

    /// Waits (at most `timeout`) for exit; returns the exit code and stdout.
    pub fn finish(self, timeout: Duration) -> (i32, String) {
        let (code, out, _) = self.finish_with_stderr(timeout);
        (code, out)
    }

    /// [`Running::finish`], also returning the stderr lines after the ready line.
    pub fn finish_with_stderr(mut self, timeout: Duration) -> (i32, String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tracer did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        // The reader thread ends at EOF, once the process has exited and its pipe closed.
        let later = self.later.iter().collect();
        (status.code().unwrap_or(-1), out, later)
    }
}
