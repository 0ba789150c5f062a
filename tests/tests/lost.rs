//! The lost-events path: a ring buffer too small for a burst loses events, and the loss is
//! reported, never silent: what the small tracer received plus what it says it lost is exactly
//! what a tracer with a large ring received from the same traffic.
use std::{
    net::{TcpListener, TcpStream},
    time::Duration,
};

use tracer_tests::{
    Running,
    churn::{final_summary, run_ip, stop, transitions},
    free_port,
};

/// `n` connections opened at once, then every client closed, then every server end: bursts of
/// thousands of events within a few milliseconds.
fn burst(ip: &str, port: u16, n: usize) {
    let listener = TcpListener::bind((ip, port)).unwrap();
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect((ip, port)).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        pairs.push((client, accepted));
    }
    let (clients, servers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    drop(clients);
    std::thread::sleep(Duration::from_millis(20));
    drop(servers);
}

#[test]
fn a_tiny_ring_reports_every_lost_event() {
    let ip = run_ip(120, 0);
    let port = free_port(&ip);
    let p = port.to_string();
    let base = [
        "run",
        "--json",
        "--no-socket",
        "--duration",
        "60",
        "--port",
        p.as_str(),
    ];
    let tiny = Running::start(&[&base[..], &["--ring-bytes", "4096"]].concat());
    let large = Running::start(&base);
    burst(&ip, port, 400);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(tiny.child.id() as i32, libc::SIGTERM) };
    let (code, tiny_out, tiny_err) = tiny.finish_with_stderr(Duration::from_secs(20));
    assert_eq!(code, 0);
    // The eBPF side says so (aya-log), once per CPU that lost, then only counts.
    let said = tiny_err
        .iter()
        .filter(|l| l.contains("event ring full on this CPU"))
        .count();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        (1..=cpus).contains(&said),
        "{said} ring-full warnings: {tiny_err:?}"
    );
    let (code, large_out) = stop(large);
    assert_eq!(code, 0);
    let (tiny_sum, large_sum) = (final_summary(&tiny_out), final_summary(&large_out));
    let counter = |v: &serde_json::Value, key: &str| v[key].as_u64().expect(key);
    assert_eq!(
        counter(&large_sum, "lost"),
        0,
        "the large ring loses nothing"
    );
    let (received, lost) = (counter(&tiny_sum, "events"), counter(&tiny_sum, "lost"));
    assert!(lost > 0, "a 4 KiB ring cannot hold the burst: {tiny_sum}");
    assert_eq!(
        received + lost,
        counter(&large_sum, "events"),
        "received + lost = every event the kernel reported"
    );
    // A transition not seen is inferred only where a known life skips a state (a whole life
    // lost is just missing); each needs at least one lost event, or one the kernel did not
    // hand to eBPF, which the large ring then misses as well.
    let (gaps, large_gaps) = (counter(&tiny_sum, "gaps"), counter(&large_sum, "gaps"));
    assert!(
        gaps <= lost + large_gaps,
        "{gaps} gaps from {lost} lost events: {tiny_sum}"
    );
    let (tiny_lines, large_lines) = (transitions(&tiny_out).len(), transitions(&large_out).len());
    assert!(
        tiny_lines < large_lines,
        "{tiny_lines} transitions printed with loss, {large_lines} without"
    );
    assert!(large_lines >= 400 * 10, "{large_lines}");
}
