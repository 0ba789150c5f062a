//! Each CPU writes its own ring buffer; the reader merges them. Connections made at the same
//! time from threads pinned to different CPUs must come out of `tracer run --json` complete
//! and in event-time order.
use std::{net::TcpListener, time::Duration};

use tracer_tests::{
    Running,
    churn::{changes, client_first_changes, count_by_change, final_summary, stop, transitions},
    client_closes_first, free_port,
};

const PER_THREAD: usize = 100;

/// Pins the calling thread to one CPU.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t filled by the libc macros, passed with its size for this
    // thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity to CPU {cpu}");
    }
}

#[test]
fn transitions_from_several_cpus_arrive_complete_and_in_time_order() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus.clamp(2, 4);
    let ports: Vec<u16> = (0..threads).map(|_| free_port("127.0.0.1")).collect();
    let mut args = vec!["run", "--json", "--no-socket"];
    let port_args: Vec<String> = ports.iter().map(u16::to_string).collect();
    for p in &port_args {
        args.extend(["--port", p.as_str()]);
    }
    let tracer = Running::start(&args);

    let workers: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            std::thread::spawn(move || {
                pin_to(i % cpus);
                let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
                for _ in 0..PER_THREAD {
                    client_closes_first(&server, Duration::ZERO);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread");
    }
    let (code, out) = stop(tracer);
    assert_eq!(code, 0, "{out}");

    let lines = transitions(&out);
    let times: Vec<u64> = lines.iter().map(|l| l["ts_ns"].as_u64().unwrap()).collect();
    if let Some(i) = (1..times.len()).find(|&i| times[i] < times[i - 1]) {
        panic!(
            "transition {i} is older than the one before it:\n{}\n{}",
            lines[i - 1],
            lines[i]
        );
    }
    let mut expected = client_first_changes(threads * PER_THREAD, true);
    // One listener per thread, each opened and closed.
    expected.extend(changes(&[
        ("CLOSE", "LISTEN", threads),
        ("LISTEN", "CLOSE", threads),
    ]));
    assert_eq!(count_by_change(&lines, |_| true), expected);
    let summary = final_summary(&out);
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["gaps"], 0, "{summary}");
}
