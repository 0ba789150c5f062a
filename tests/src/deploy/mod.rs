//! Helpers for the tests of the deployment files under deploy/ (tests/deploy_*.rs): where the
//! files are, running a command with a bound, and running a deployment's command line as written.
use std::{
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use crate::{free_port, tracer_bin};

pub mod files;
pub mod metrics;
pub mod promql;

pub const UNIT: &str = "deploy/systemd/tracer.service";
pub const DAEMONSET: &str = "deploy/kubernetes/daemonset.yaml";
pub const DASHBOARD: &str = "deploy/grafana/tracer-dashboard.json";
/// The metrics port both deployments use, replaced by a free one to run them here.
pub const METRICS_PORT: &str = "9464";
/// The path the unit runs the binary from, replaced by the one under test.
pub const INSTALLED_BIN: &str = "/usr/local/bin/tracer";

/// The text of a file of the repository, by its path relative to the repository's root.
pub fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `cmd` to completion (at most `timeout`, then it is killed), capturing its output.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for child"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid, not yet reaped (its waiter is blocked).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{cmd:?} did not exit within {timeout:?}");
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// --- Command lines and privileges ------------------------------------------------------------

/// `args` with the metrics port replaced by a free one, `--duration 1` so it ends, and
/// `--no-socket`: the control socket's default path is one per host (a deployment gets its own
/// /run/tracer), and tests run side by side.
pub fn runnable(args: &[String], ip: &str) -> (Vec<String>, String) {
    let port = free_port(ip);
    let from = format!("{ip}:{METRICS_PORT}");
    let addr = format!("{ip}:{port}");
    assert!(args.contains(&from), "--metrics {from} in {args:?}");
    let mut args: Vec<String> = args.iter().map(|a| a.replace(&from, &addr)).collect();
    assert!(
        !args.iter().any(|a| a == "--duration"),
        "a service runs until stopped: {args:?}"
    );
    args.extend(["--duration".into(), "1".into(), "--no-socket".into()]);
    (args, addr)
}

/// Runs `tracer ARGS` (through `wrapper` if given) and checks it served metrics and exited 0.
pub fn runs_cleanly(wrapper: &[&str], args: &[String], addr: &str) -> String {
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(tracer_bin());
            cmd
        }
        None => Command::new(tracer_bin()),
    };
    let out = run_bounded(cmd.args(args), Duration::from_secs(20));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{wrapper:?} {args:?}: {err}");
    assert!(
        err.contains(&format!(
            "serving Prometheus metrics at http://{addr}/metrics"
        )),
        "{err}"
    );
    err
}

/// Processes whose fd links a command prefix (e.g. `setpriv` with a user and capabilities;
/// empty for this process's own rights) cannot read: the oracle for `owners_partial`. Some
/// hosts refuse even root (this VM's pid 1 lives in a parent user namespace).
pub fn processes_with_unreadable_links(prefix: &[&str]) -> usize {
    let scan = "for p in /proc/[0-9]*; do ls $p/fd >/dev/null 2>&1 || continue; \
                for f in $p/fd/*; do [ -L \"$f\" ] || continue; \
                readlink -v \"$f\" 2>&1 >/dev/null | grep -q denied && { echo $p; break; }; \
                done; done";
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg("sh");
            cmd
        }
        None => Command::new("sh"),
    };
    cmd.args(["-c", scan]);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    text(&out.stdout).lines().count()
}
