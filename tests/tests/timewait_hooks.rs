//! Which hooks follow TIME_WAIT: fentry where the kernel allows it, else the timer
//! tracepoints. On a kernel that refuses fentry (the 6.18 test machines: EPERM for every
//! function) the automatic choice must fall back to the timer path and still report TIME_WAIT,
//! and forcing fentry must fail with one clear sentence. The fentry path itself runs on
//! Debian's 6.1 under qemu (`cargo xtask qemu`). A check this kernel cannot run says so on
//! stderr, by name, with the reason. Also: the kernel's per-program recursion misses are read,
//! and on a filter that keeps nothing they are the whole lost count.
use std::{net::TcpListener, process::Command, time::Duration};

use tracer::source::probe::{DEFAULT_RING_BYTES, Detail, Probe, timewait::HOOKS_ENV};
use tracer_common::FilterConfig;
use tracer_tests::{
    Running,
    churn::{final_summary, stop, transitions},
    client_closes_first, free_port, tracer_bin,
};

const FORCED_FENTRY_REFUSED: &str = "error: the fentry hooks for TIME_WAIT cannot be used on this \
                                     kernel: loading fentry on __inet_twsk_schedule: the kernel \
                                     refused it: ";

/// `tracer ARGS` with TRACER_TIMEWAIT_HOOKS set to `hooks` (unset for `None`).
fn tracer(hooks: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(tracer_bin());
    cmd.args(args);
    match hooks {
        Some(hooks) => cmd.env(HOOKS_ENV, hooks),
        None => cmd.env_remove(HOOKS_ENV),
    };
    cmd
}

/// `tracer ARGS` with the hooks chosen by `hooks`, attached (its stderr up to the ready line kept).
fn start(hooks: Option<&str>, args: &[&str]) -> Running {
    Running::start_command(tracer(hooks, args))
}

/// How forcing fentry went: `Some(stderr)` when this kernel refused it (exit 1), `None` when
/// it worked.
fn forced_fentry(port: &str) -> Option<String> {
    let out = tracer(
        Some("fentry"),
        &[
            "run",
            "--quiet",
            "--no-socket",
            "--duration",
            "1",
            "--port",
            port,
        ],
    )
    .output()
    .expect("run tracer");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    match out.status.code() {
        Some(0) => {
            assert!(err.contains("TIME_WAIT followed with fentry on"), "{err}");
            None
        }
        code => {
            assert_eq!(code, Some(1), "{err}");
            Some(err)
        }
    }
}

/// Says on stderr that the check `name` did not run, and why.
fn skipped(name: &str, why: &str) {
    eprintln!("skipped: {name}: {why}");
}

#[test]
fn forcing_fentry_where_the_kernel_refuses_it_is_one_clear_error() {
    let port = free_port("127.0.0.1").to_string();
    // Where the kernel allows fentry, `forced_fentry` has checked that forcing it attaches it.
    let Some(err) = forced_fentry(&port) else {
        skipped(
            "forcing_fentry_where_the_kernel_refuses_it_is_one_clear_error",
            "this kernel allows fentry, so nothing is refused (forcing it attached fentry)",
        );
        return;
    };
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(FORCED_FENTRY_REFUSED), "{err}");
}

/// A value that names no path is refused before anything is loaded, whatever the kernel allows.
#[test]
fn a_hooks_value_that_names_no_path_is_refused() {
    let port = free_port("127.0.0.1").to_string();
    let bad = tracer(
        Some("kprobes"),
        &["run", "--no-socket", "--duration", "1", "--port", &port],
    )
    .output()
    .expect("run tracer");
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{bad_err}");
    assert!(
        bad_err.contains("TRACER_TIMEWAIT_HOOKS=\"kprobes\" is not one of fentry, timer, auto"),
        "{bad_err}"
    );
}

#[test]
fn auto_falls_back_to_the_timer_path_and_both_report_the_same_time_waits() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let refused = forced_fentry(&p).is_some();
    let args = [
        "run",
        "--json",
        "--no-socket",
        "--duration",
        "60",
        "--port",
        &p,
    ];
    let auto = start(None, &args);
    let timer = start(Some("timer"), &args);
    let said = |s: &Running, what: &str| s.stderr.iter().any(|l| l.starts_with(what));
    if refused {
        assert!(
            said(
                &auto,
                "TIME_WAIT followed through the timer tracepoints (fentry not usable: loading \
                 fentry on __inet_twsk_schedule: the kernel refused it: "
            ),
            "{:?}",
            auto.stderr
        );
    } else {
        assert!(
            said(&auto, "TIME_WAIT followed with fentry on"),
            "{:?}",
            auto.stderr
        );
        skipped(
            "auto_falls_back_to_the_timer_path_and_both_report_the_same_time_waits (the fallback)",
            "this kernel allows fentry, so auto chose it; the forced timer path was checked",
        );
    }
    assert!(
        said(
            &timer,
            "TIME_WAIT followed through the timer tracepoints (timer_start, timer_expire_entry, \
             timer_cancel for tw_timer_handler)"
        ),
        "{:?}",
        timer.stderr
    );

    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let clients: Vec<u16> = (0..5)
        .map(|_| client_closes_first(&server, Duration::from_millis(5)).port())
        .collect();
    for started in [auto, timer] {
        let (code, out) = stop(started);
        assert_eq!(code, 0);
        let mut starts: Vec<u16> = transitions(&out)
            .iter()
            .filter(|t| t["to"] == "TIME_WAIT")
            .filter_map(|t| t["local"].as_str()?.rsplit_once(':')?.1.parse().ok())
            .collect();
        starts.sort_unstable();
        let mut expected = clients.clone();
        expected.sort_unstable();
        assert_eq!(starts, expected, "one TIME_WAIT start per client:\n{out}");
        assert_eq!(final_summary(&out)["lost"], 0, "{out}");
    }
}

/// With a filter no traffic passes, nothing is reserved in the rings, so none fails: the lost
/// count is the kernel's recursion misses and nothing else. They keep running (the timer hooks
/// run for every timer in the system), hence the bracket between two reads.
#[tokio::test(flavor = "current_thread")]
async fn on_an_idle_filter_lost_is_exactly_the_kernels_recursion_misses() {
    let port = free_port("127.0.0.1");
    let mut filter = FilterConfig {
        port_count: 1,
        ..Default::default()
    };
    filter.ports[0] = port;
    let probe = Probe::attach(&filter, DEFAULT_RING_BYTES, Detail::Transitions)
        .expect("attach eBPF programs");
    assert!(probe.timewait.followed(), "{:?}", probe.timewait);
    // Timers armed and fired meanwhile: the hooks run.
    std::thread::sleep(Duration::from_millis(200));
    let before = probe.missed_by_kernel().expect("read recursion misses");
    let lost = probe.lost().expect("read lost count");
    let after = probe.missed_by_kernel().expect("read recursion misses");
    assert!(
        (before..=after).contains(&lost),
        "lost {lost}: not the {before}..={after} runs the kernel missed"
    );
    // A nested run of the same program on one CPU needs an interrupt inside it: rare.
    assert!(after < 1000, "{after} runs missed on an idle filter");
    if after == 0 {
        skipped(
            "on_an_idle_filter_lost_is_exactly_the_kernels_recursion_misses (misses counted)",
            "the kernel missed no run, so lost was checked to be 0 only",
        );
    }
}
