//! Filters on what the event itself carries (addresses, namespace), and bad values. They run
//! in the kernel: two kinds of traffic at once, one tracer keeping one kind and
//! a baseline tracer (port filter only) seeing both. What a filter excludes never reaches
//! userspace (0 transitions); what it keeps is exact (the expected transitions, the same as
//! the baseline's for that traffic).
use std::{
    net::{IpAddr, SocketAddr},
    process::Command,
};

use serde_json::Value;
use tracer_tests::{
    churn::{client_first_changes, count_by_change},
    filter_traffic::*,
    free_port, tracer_bin,
};

const CONNECTIONS: usize = 5;

#[test]
fn addr_filter_keeps_matching_networks_only() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    // Inside the /30 of this run: .2 and .3; outside: .5 and .6.
    let ips: Vec<String> = [2, 3, 5, 6].into_iter().map(block_ip).collect();
    let baseline = run_json(&["--port", &p]);
    let v4net = run_json(&["--port", &p, "--addr", &format!("{}/30", block_ip(0))]);
    let v6host = run_json(&["--port", &p, "--addr", "::1/128", "--addr", "10.99.0.0/16"]);
    let groups: [(&str, &str); 3] = [(&ips[0], &ips[1]), (&ips[2], &ips[3]), ("::1", "::1")];
    let threads: Vec<_> = groups
        .iter()
        .map(|&(server, client)| {
            let server = SocketAddr::new(server.parse().unwrap(), port);
            let client: IpAddr = client.parse().unwrap();
            std::thread::spawn(move || churn_from(server, client, CONNECTIONS))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (baseline, v4net, v6host) = (finish(baseline), finish(v4net), finish(v6host));
    let inside = [ips[0].as_str(), &ips[1]];
    let outside = [ips[2].as_str(), &ips[3]];
    let v6 = ["::1"];
    let expected = client_first_changes(CONNECTIONS, true);
    for ips in [&inside[..], &outside, &v6] {
        assert_eq!(
            count_by_change(&baseline, |l| touches(l, ips)),
            expected,
            "baseline, {ips:?}"
        );
    }
    assert_eq!(count_by_change(&v4net, |l| touches(l, &inside)), expected);
    assert_eq!(
        v4net.len(),
        expected.values().sum::<usize>(),
        "nothing else"
    );
    assert_eq!(count_by_change(&v6host, |l| touches(l, &v6)), expected);
    assert_eq!(
        v6host.len(),
        expected.values().sum::<usize>(),
        "nothing else"
    );
}

#[test]
fn netns_filter_keeps_one_namespace_by_path_or_inode() {
    use tracer_tests::sockets::Netns;
    let pid = std::process::id();
    let (a, b) = (
        Netns::create(&format!("trcfa{pid}")),
        Netns::create(&format!("trcfb{pid}")),
    );
    let (ino_a, ino_b) = (
        stat_inode(&format!("/run/netns/{}", a.name)),
        stat_inode(&format!("/run/netns/{}", b.name)),
    );
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let baseline = run_json(&["--port", &p]);
    let only_a = run_json(&["--port", &p, "--netns", &format!("/run/netns/{}", a.name)]);
    let only_b = run_json(&["--port", &p, "--netns", &ino_b.to_string()]);
    // The same address and port in both: only the namespace tells them apart.
    let server: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let ta = a.spawn("churn-a", move || churn_from(server, client, CONNECTIONS));
    let tb = b.spawn("churn-b", move || {
        churn_from(server, client, CONNECTIONS + 2)
    });
    ta.join().unwrap();
    tb.join().unwrap();
    let (baseline, only_a, only_b) = (finish(baseline), finish(only_a), finish(only_b));
    let in_ns = |ino: u64| move |l: &Value| l["netns"].as_u64() == Some(ino);
    let (expected_a, expected_b) = (
        client_first_changes(CONNECTIONS, true),
        client_first_changes(CONNECTIONS + 2, true),
    );
    assert_eq!(count_by_change(&baseline, in_ns(ino_a)), expected_a);
    assert_eq!(count_by_change(&baseline, in_ns(ino_b)), expected_b);
    assert_eq!(count_by_change(&only_a, in_ns(ino_a)), expected_a);
    assert_eq!(
        only_a.len(),
        expected_a.values().sum::<usize>(),
        "only namespace A"
    );
    assert_eq!(count_by_change(&only_b, in_ns(ino_b)), expected_b);
    assert_eq!(
        only_b.len(),
        expected_b.values().sum::<usize>(),
        "only namespace B"
    );
}

#[test]
fn bad_filter_values_are_usage_errors_with_the_reason() {
    let many_ports: Vec<String> = (1..=17)
        .flat_map(|p| ["--port".into(), p.to_string()])
        .collect();
    let many_addrs: Vec<String> = (1..=9)
        .flat_map(|i| ["--addr".into(), format!("10.0.0.{i}")])
        .collect();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--addr".into(), "10.0.0.0/33".into()],
            "'10.0.0.0/33' is not an address or CIDR",
        ),
        (
            vec!["--addr".into(), "::1/129".into()],
            "'::1/129' is not an address or CIDR",
        ),
        (
            vec!["--addr".into(), "example.com".into()],
            "is not an address or CIDR",
        ),
        (
            vec!["--netns".into(), "/run/netns/trc-does-not-exist".into()],
            "does not exist",
        ),
        (
            vec!["--netns".into(), "/etc/hostname".into()],
            "not a network namespace",
        ),
        (
            vec!["--netns".into(), "0".into()],
            "not a network namespace inode",
        ),
        (
            vec!["--cgroup".into(), "/trc-does-not-exist".into()],
            "not a cgroup v2 directory",
        ),
        (
            vec!["--cgroup".into(), "18446744073709551615".into()],
            "no cgroup has id",
        ),
        (vec!["--pid".into(), "0".into()], "not a process id"),
        (
            vec!["--pid".into(), "2147483647".into()],
            "no process has pid",
        ),
        (
            vec!["--comm".into(), "a-very-long-command".into()],
            "longer than 15 bytes",
        ),
        (vec!["--port".into(), "0".into()], "not a TCP port"),
        (vec!["--ring-bytes".into(), "1000".into()], "power of two"),
        (vec!["--ring-bytes".into(), "12288".into()], "power of two"),
        (
            vec!["--from".into(), "x.trc".into(), "--pid".into(), "1".into()],
            "cannot be used",
        ),
        (many_ports, "at most 16 --port values"),
        (many_addrs, "at most 8 --addr values"),
    ];
    for (args, message) in cases {
        let out = Command::new(tracer_bin())
            .arg("run")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // The same options on every live subcommand.
    for sub in [
        &["histogram", "--state", "established"][..],
        &["closes"],
        &["top"],
        &["record", "-o", "/dev/null"],
    ] {
        let out = Command::new(tracer_bin())
            .args(sub)
            .args(["--addr", "10.0.0.0/33"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub:?}");
    }
}
