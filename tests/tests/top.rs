//! `tracer top` in a real pseudo-terminal (tmux): it draws, refreshes with live traffic, quits
//! on `q` with exit 0, and leaves the terminal sane (canonical mode and echo back on).
use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use tracer_tests::{client_closes_first, free_port, tracer_bin};

struct Tmux(String);

impl Tmux {
    fn start(name: &str) -> Tmux {
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "120",
                "-y",
                "45",
                "bash --norc",
            ])
            .status()
            .expect("tmux (scripts/setup.sh installs it)")
            .success();
        assert!(ok, "tmux new-session");
        Tmux(name.into())
    }

    fn send(&self, keys: &[&str]) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until the screen satisfies `want`.
    fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if want(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn sockets_in(screen: &str, state: &str) -> Option<u64> {
    screen
        .lines()
        .filter(|l| l.starts_with(state))
        .find_map(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[test]
fn top_draws_refreshes_and_quits_on_q_leaving_the_terminal_sane() {
    let port = free_port("127.0.0.1");
    let tmux = Tmux::start(&format!("tracer-top-{}", std::process::id()));
    let cmd = format!(
        "{} top --port {port}; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo -e -icanon -e -echo | tr '\\n' ' '; echo",
        tracer_bin().display()
    );
    tmux.send(&[&cmd, "Enter"]);
    // The table's TIME_WAIT row, not the words on the command line or in the stderr line
    // that names the TIME_WAIT hooks (both are on screen before the first frame).
    let first = tmux.wait_for("the state table", |s| {
        s.contains("tracer top  ") && sockets_in(s, "TIME_WAIT").is_some()
    });
    assert_eq!(sockets_in(&first, "TIME_WAIT"), Some(0), "{first}");

    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        client_closes_first(&server, Duration::from_millis(10));
    }
    // Refreshed: the three client TIME_WAITs and the close-initiator rows appear.
    let later = tmux.wait_for("3 TIME_WAIT", |s| sockets_in(s, "TIME_WAIT") == Some(3));
    assert!(later.contains("WHO CLOSED FIRST"), "{later}");
    assert!(later.contains(&format!("127.0.0.1:{port}")), "{later}");
    // Who holds them: this test process, as the client of the service, 3 TIME_WAIT, 0 CLOSE_WAIT.
    let holder = later
        .lines()
        .skip_while(|l| !l.starts_with("TIME_WAIT/CLOSE_WAIT BY"))
        .find(|l| l.contains(&format!("127.0.0.1:{port}")) && l.contains("client"))
        .unwrap_or_default();
    let counts: Vec<&str> = holder.split_whitespace().rev().take(2).collect();
    assert_eq!(counts, ["0", "3"], "{later}");
    assert!(
        holder.contains(&format!("({})", std::process::id())),
        "{later}"
    );

    tmux.send(&["q"]);
    let exit_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("EXIT=") && !l.contains('$'))
            .map(str::to_string)
    };
    let after = tmux.wait_for("exit", |s| exit_line(s).is_some());
    assert!(after.contains("EXIT=0"), "{after}");
    let modes = after
        .lines()
        .skip_while(|l| !(l.starts_with("EXIT=") && !l.contains('$')))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        modes.contains("icanon") && !modes.contains("-icanon") && !modes.contains("-echo"),
        "terminal left in raw mode: {modes:?}\n{after}"
    );
}
