//! Faults: SIGKILL leaves nothing attached in the kernel; a tracer started (or restarted) while
//! connections are mid-flight invents no durations for what it saw only partly.
use std::{
    net::TcpListener,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{Running, client_closes_first, free_port};

/// BPF object ids (`prog_id` / `link_id`) held by a process, from /proc/PID/fdinfo.
fn bpf_ids(pid: u32, key: &str) -> Vec<String> {
    let dir = format!("/proc/{pid}/fdinfo");
    std::fs::read_dir(&dir)
        .expect("fdinfo")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn exists(kind: &str, id: &str) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", id])
        .output()
        .expect("bpftool (scripts/setup.sh installs it)")
        .status
        .success()
}

#[test]
fn sigkill_leaves_no_program_or_link_attached() {
    let port = free_port("127.0.0.1").to_string();
    let tracer = Running::start(&["run", "--quiet", "--no-socket", "--port", &port]);
    let pid = tracer.child.id();
    let progs = bpf_ids(pid, "prog_id:");
    let links = bpf_ids(pid, "link_id:");
    assert!(progs.len() >= 6, "expected the 6 programs, found {progs:?}");
    assert!(links.len() >= 6, "expected 6 links, found {links:?}");
    assert!(progs.iter().all(|id| exists("prog", id)));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = tracer.finish(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    while progs.iter().any(|id| exists("prog", id)) || links.iter().any(|id| exists("link", id)) {
        assert!(
            Instant::now() < deadline,
            "programs or links outlived the process"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing pinned either.
    let pinned: Vec<_> = std::fs::read_dir("/sys/fs/bpf")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !pinned
            .iter()
            .any(|n| n.to_string_lossy().contains("tracer")),
        "{pinned:?}"
    );
}

/// Connections churn for a few seconds while a tracer starts mid-way and a second one
/// replaces it mid-way: every duration either is exact (its start was seen) or is absent.
#[test]
fn a_tracer_started_or_restarted_under_load_invents_no_durations() {
    let port = free_port("127.0.0.1");
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 5000 {
                client_closes_first(&server, Duration::from_millis(30));
                n += 1;
            }
            n
        })
    };
    let p = port.to_string();
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let tracer = Running::start(&[
            "run",
            "--json",
            "--no-socket",
            "--duration",
            "2",
            "--port",
            &p,
        ]);
        let (code, out) = tracer.finish(Duration::from_secs(10));
        assert_eq!(code, 0);
        outputs.push(out);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().unwrap() > 10, "the churn must have run");
    for out in outputs {
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let transitions: Vec<&Value> = lines.iter().filter(|l| l["type"] == "transition").collect();
        assert!(
            transitions.len() > 20,
            "too few transitions: {}",
            transitions.len()
        );
        for t in transitions {
            let dwell = t["dwell_ns"].as_u64();
            if t["note"] == "start_not_seen" {
                assert_eq!(dwell, None, "a partly seen state got a duration: {t}");
            }
            if t["from"] == "ESTABLISHED"
                && let Some(ns) = dwell
            {
                // Each connection is held 30 ms: nothing near the tracer's own lifetime.
                assert!(
                    ns < 1_000_000_000,
                    "bogus ESTABLISHED duration {ns} ns: {t}"
                );
            }
        }
        let summary = lines.last().unwrap();
        assert_eq!(summary["lost"], 0);
    }
}
