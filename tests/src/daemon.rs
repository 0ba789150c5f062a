//! Helpers for the daemon tests (tests/daemon*.rs): a private directory for a control socket,
//! a `tracer run` serving it, clients run to their end with a bound, and raw exchanges on the
//! socket. Every wait is bounded.
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Running, tracer_bin};

/// A fresh directory under the system's temp dir (mode 0755: others may look up what is in
/// it), removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tracer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }

    pub fn socket(&self) -> PathBuf {
        self.0.join("t.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `tracer run --quiet` on `port` serving `socket`, with `extra` options; `--duration` bounds
/// its life even if the test fails before stopping it.
pub fn daemon_with(port: u16, socket: &Path, extra: &[&str]) -> Running {
    let p = port.to_string();
    let args = [
        "run",
        "--quiet",
        "--duration",
        "60",
        "--port",
        &p,
        "--socket",
        text(socket),
    ];
    Running::start(&[&args[..], extra].concat())
}

pub fn daemon(port: u16, socket: &Path) -> Running {
    daemon_with(port, socket, &[])
}

pub fn signal(tracer: &Running, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid, which is not reaped before `finish`.
    unsafe { libc::kill(tracer.child.id() as libc::pid_t, sig) };
}

/// What a finished command said, and how long it took.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Runs `cmd` to its end, killing it after `timeout`.
pub fn bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let began = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = began.elapsed();
    Output {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        took,
    }
}

/// `tracer ARGS`, to its end (at most 20 s).
pub fn client(args: &[&str]) -> Output {
    bounded(
        Command::new(tracer_bin()).args(args),
        Duration::from_secs(20),
    )
}

/// Writes `bytes` on a fresh connection, then returns the lines read until the daemon closes
/// (at most 5 s).
pub fn raw_exchange(socket: &Path, bytes: &[u8], end_ours: bool) -> Vec<Value> {
    let mut stream = UnixStream::connect(socket).expect("connect to the daemon");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    if end_ours {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    BufReader::new(&stream)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("a whole line, then the close")).unwrap())
        .collect()
}
