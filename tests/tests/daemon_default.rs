//! The default control socket (/run/tracer/tracer.sock) for real, without touching the host's:
//! each `tracer run` here runs in a mount namespace of its own whose /run is an empty tmpfs
//! (`unshare`), and the others join that namespace (`nsenter`). A second daemon on the default
//! path exits 1 saying who serves it, `--no-socket` runs beside it, clients find it there, and
//! a /run that cannot be written is one clear error. Every process started is stopped.
use std::{process::Command, time::Duration};

use tracer_tests::{
    Running,
    daemon::{Output, bounded, signal},
    free_port, tracer_bin,
};

const DEFAULT: &str = "/run/tracer/tracer.sock";

/// `tracer ARGS` in a new mount namespace whose /run is an empty tmpfs (read-only if `ro`).
fn in_private_run(args: &[&str], ro: bool) -> Command {
    let options = if ro { "mode=0755,ro" } else { "mode=0755" };
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o {options} tracer-test /run && exec \"$0\" \"$@\""
        ))
        .arg(tracer_bin())
        .args(args);
    cmd
}

/// `tracer ARGS` in the mount namespace of process `pid`, to its end (at most 20 s).
fn beside(pid: u32, args: &[&str]) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--mount=/proc/{pid}/ns/mnt"))
        .arg("--")
        .arg(tracer_bin())
        .args(args);
    bounded(&mut cmd, Duration::from_secs(20))
}

#[test]
fn a_second_daemon_on_the_default_socket_refuses_to_start() {
    let port = free_port("127.0.0.1").to_string();
    let run = ["run", "--quiet", "--duration", "60", "--port", &port];
    // `sh` execs the tracer: the child's pid is the daemon's.
    let first = Running::start_command(in_private_run(&run, false));
    let pid = first.child.id();

    let other = free_port("127.0.0.1").to_string();
    let second = beside(
        pid,
        &["run", "--quiet", "--duration", "5", "--port", &other],
    );
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.stderr);
    let expected = format!("another tracer daemon (pid {pid}) already serves {DEFAULT}");
    assert!(second.stderr.contains(&expected), "{}", second.stderr);
    assert!(second.stderr.contains("--no-socket"), "{}", second.stderr);
    assert!(second.took < Duration::from_secs(5), "{:?}", second.took);

    // --no-socket runs beside it; clients find the first one on the default path.
    let quiet = [
        "run",
        "--quiet",
        "--no-socket",
        "--duration",
        "1",
        "--port",
        &other,
    ];
    let alongside = beside(pid, &quiet);
    assert_eq!(alongside.code, Some(0), "{}", alongside.stderr);
    let asked = beside(pid, &["closes", "--json", "--port", &port]);
    assert_eq!(asked.code, Some(0), "{}", asked.stderr);
    let from = format!("from the tracer daemon (pid {pid}, tracing port {port})");
    assert!(asked.stderr.contains(&from), "{}", asked.stderr);

    signal(&first, libc::SIGTERM);
    assert_eq!(first.finish(Duration::from_secs(10)).0, 0);
}

#[test]
fn a_run_directory_that_cannot_be_made_is_one_clear_error() {
    let port = free_port("127.0.0.1").to_string();
    let run = ["run", "--quiet", "--duration", "5", "--port", &port];
    let out = bounded(&mut in_private_run(&run, true), Duration::from_secs(20));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot create /run/tracer for the control socket (--no-socket serves none"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
}
