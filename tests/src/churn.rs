//! Traffic from separate processes (the `trc-churn` binary of this crate), each with its own
//! pid, command name and cgroup, and test cgroups created under the cgroup v2 mount. Counting
//! helpers for `tracer run --json` output. Every wait is bounded.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::Value;

/// A `trc-churn` process that is ready (listening if it serves) and waits for [`Churn::go`].
pub struct Churn {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Churn {
    /// Starts `trc-churn ARGS` and waits (at most 10 s) for its `ready`.
    pub fn spawn(args: &[&str]) -> Churn {
        let mut child = Command::new(churn_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn trc-churn");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut churn = Churn {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        churn.expect_line("ready", Duration::from_secs(10));
        churn
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it make its connections.
    pub fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("not started yet");
        stdin.write_all(b"go\n").expect("write to trc-churn");
        stdin.flush().unwrap();
    }

    /// Waits (at most `timeout`) until it made every connection and exited successfully.
    pub fn finish(mut self, timeout: Duration) {
        self.expect_line("done", timeout);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "trc-churn: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "trc-churn did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn expect_line(&mut self, want: &str, timeout: Duration) {
        match self.lines.recv_timeout(timeout) {
            Ok(line) if line == want => {}
            other => {
                let _ = self.child.kill();
                panic!("trc-churn: expected {want:?}, got {other:?}");
            }
        }
    }
}

/// The `trc-churn` binary cargo builds next to the integration tests of this crate.
fn churn_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("trc-churn");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

impl Drop for Churn {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A cgroup made for one test under the cgroup v2 mount, removed when dropped (once the
/// processes moved into it have exited).
pub struct TestCgroup {
    pub path: PathBuf,
    /// Its id: the directory's inode, what `bpf_get_current_cgroup_id` returns.
    pub id: u64,
}

impl TestCgroup {
    pub fn create(name: &str) -> TestCgroup {
        let root = tracer::filter::cgroup2_root().expect("cgroup v2 mounted");
        let path = root.join(name);
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).expect("mkdir cgroup");
        let id = std::fs::metadata(&path).unwrap().ino();
        TestCgroup { path, id }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A cgroup can be removed only once empty; an exiting process leaves it shortly after.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The transition objects of `tracer run --json` output (summaries left out).
pub fn transitions(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|v| v["type"] == "transition")
        .collect()
}

/// The final summary object of `tracer run --json` output.
pub fn final_summary(out: &str) -> Value {
    let last = out.lines().last().expect("output");
    let v: Value = serde_json::from_str(last).expect("a JSON line");
    assert_eq!(v["type"], "summary", "{last}");
    assert_eq!(v["final"], true, "{last}");
    v
}

/// Port and address of an endpoint as printed: `127.0.0.1:80`, `[::1]:80`.
pub fn endpoint(v: &Value) -> (String, u16) {
    let s = v.as_str().expect("endpoint string");
    let (ip, port) = s.rsplit_once(':').expect("ip:port");
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    (ip.to_string(), port.parse().expect("port"))
}

/// `(from, to) -> count` of the transitions that satisfy `keep`.
pub fn count_by_change(
    lines: &[Value],
    keep: impl Fn(&Value) -> bool,
) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for l in lines.iter().filter(|l| keep(l)) {
        let key = (
            l["from"].as_str().unwrap().to_string(),
            l["to"].as_str().unwrap().to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// `[("CLOSE", "LISTEN", 1), ...]` as a map, for comparing with [`count_by_change`].
pub fn changes(expected: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    expected
        .iter()
        .map(|&(from, to, n)| ((from.to_string(), to.to_string()), n))
        .collect()
}

/// What `n` loopback connections whose client closes first show, both ends, listener life
/// included (`listener_seen`: it was created after the tracer attached).
pub fn client_first_changes(n: usize, listener_seen: bool) -> BTreeMap<(String, String), usize> {
    let mut expected = changes(&[
        ("CLOSE", "SYN_SENT", n),
        ("SYN_SENT", "ESTABLISHED", n),
        ("LISTEN", "SYN_RECV", n),
        ("SYN_RECV", "ESTABLISHED", n),
        ("ESTABLISHED", "FIN_WAIT1", n),
        ("ESTABLISHED", "CLOSE_WAIT", n),
        ("FIN_WAIT1", "FIN_WAIT2", n),
        ("FIN_WAIT2", "CLOSE", n),
        ("FIN_WAIT2", "TIME_WAIT", n),
        ("CLOSE_WAIT", "LAST_ACK", n),
        ("LAST_ACK", "CLOSE", n),
        ("LISTEN", "CLOSE", 1),
    ]);
    if listener_seen {
        expected.insert(("CLOSE".into(), "LISTEN".into()), 1);
    }
    expected
}

/// Stops a tracer once the traffic is over: a moment for the last events to arrive, then
/// SIGTERM (it drains what is queued and prints its final summary). Returns exit code and
/// stdout. Tracers are stopped rather than given a --duration because starting several at
/// once on a loaded machine takes an unknown part of any fixed duration.
pub fn stop(tracer: crate::Running) -> (i32, String) {
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(tracer.child.id() as i32, libc::SIGTERM) };
    tracer.finish(Duration::from_secs(20))
}

/// A loopback address (127.0.0.0/8 is all local) of this test run only: `127.SLOT.x.y` with
/// x.y from the process id. A fixed address and port could meet another test's churn (the
/// port as an ephemeral one) or a TIME_WAIT left by an earlier run expiring mid-test.
pub fn run_ip(slot: u8, last_bits: u8) -> String {
    let pid = std::process::id();
    format!(
        "127.{slot}.{}.{}",
        (pid >> 8) & 0xff,
        (pid as u8) | last_bits
    )
}

/// Ends a loopback connection with the client closing first, the same way every time: the
/// client shuts down its side (FIN_WAIT1, FIN_WAIT2), the server reads the FIN and closes
/// (CLOSE_WAIT, LAST_ACK), and the server's FIN takes the client's still-open socket into
/// TIME_WAIT. A client that close()d at once would hand an orphan to a FIN_WAIT2 timewait
/// socket whose later re-arm for TIME_WAIT the kernel may not report (same timer slot); the
/// model then dates TIME_WAIT from the peer's CLOSE_WAIT -> LAST_ACK, which a filter or another
/// namespace can hide.
pub fn close_client_first(mut client: std::net::TcpStream, mut accepted: std::net::TcpStream) {
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    crate::take_fin(&mut accepted);
    drop(accepted);
    crate::take_fin(&mut client);
}
