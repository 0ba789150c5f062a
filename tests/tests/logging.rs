//! Messages about the run go through log levels: info by default, `-v` adds debug, `RUST_LOG`
//! overrides, and under systemd's journal each line starts with its syslog priority.
use std::{
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
};

use tracer_tests::{daemon::TempDir, tracer_bin};

/// `tracer ARGS states --by state` (a snapshot: no eBPF), with `env`; its stderr.
fn states_stderr(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(tracer_bin());
    cmd.args(args)
        .args(["states", "--by", "state"])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verbose_adds_debug_lines_and_rust_log_overrides() {
    let quiet = states_stderr(&[], &[]);
    assert!(!quiet.contains("debug:"), "{quiet}");
    let verbose = states_stderr(&["-v"], &[]);
    assert!(verbose.contains("debug: snapshot: "), "{verbose}");
    let off = states_stderr(&["-v"], &[("RUST_LOG", "off")]);
    assert_eq!(off, "");
    let by_env = states_stderr(&[], &[("RUST_LOG", "debug")]);
    assert!(by_env.contains("debug: snapshot: "), "{by_env}");
}

#[test]
fn under_the_journal_each_line_starts_with_its_priority() {
    let dir = TempDir::new("journal");
    let path = dir.0.join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let status = Command::new(tracer_bin())
        .args(["-v", "states", "--by", "state"])
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", &stream)
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("<7>snapshot: ")),
        "{text}"
    );
    assert!(text.lines().all(|l| l.starts_with('<')), "{text}");
    // A JOURNAL_STREAM that is not this stderr (a redirected child) keeps the plain format.
    let plain = states_stderr(&["-v"], &[("JOURNAL_STREAM", "1:1")]);
    assert!(plain.contains("debug: snapshot: "), "{plain}");
}
