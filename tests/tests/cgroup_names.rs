//! The names operators use, read from the owner's cgroup: a client in a cgroup named like a
//! systemd service and one in a cgroup named like a docker container scope show that unit and
//! that container in `tracer closes --by process --json`.
use std::time::Duration;

use serde_json::Value;
use tracer_tests::{
    Running,
    churn::{Churn, TestCgroup, run_ip, stop},
    free_port,
};

const CONNECTIONS: usize = 5;
const CONTAINER: &str = "c0ffee00d00d5eed0000000000000000000000000000000000000000000000aa";

/// A cgroup `name` inside `parent` (created empty; removed on drop by the caller's guard).
fn child(parent: &TestCgroup, name: &str) -> TestCgroup {
    TestCgroup::create(&format!(
        "{}/{name}",
        parent.path.file_name().unwrap().to_string_lossy()
    ))
}

/// `connect` churn from a process in `cgroup`, to a server in `server`.
fn clients_in(cgroup: &TestCgroup, addr: &str, comm: &str) -> Churn {
    let n = CONNECTIONS.to_string();
    Churn::spawn(&[
        "connect",
        "--addr",
        addr,
        "-n",
        &n,
        "--cgroup",
        cgroup.path_str(),
        "--comm",
        comm,
    ])
}

#[test]
fn closes_names_the_unit_and_the_container_of_each_process() {
    let pid = std::process::id();
    let slice = TestCgroup::create(&format!("trc-names-{pid}.slice"));
    let unit = format!("trc-web-{pid}.service");
    let service = child(&slice, &unit);
    let container = child(&slice, &format!("docker-{CONTAINER}.scope"));
    let servers = child(&slice, "servers");
    let ip = run_ip(131, 0);
    let port = free_port(&ip);
    let addr = format!("{ip}:{port}");
    let p = port.to_string();
    let grouped = |by: &str| {
        Running::start(&[
            "closes",
            "--by",
            by,
            "--json",
            "--duration",
            "60",
            "--port",
            &p,
            "--addr",
            &ip,
        ])
    };
    let tracer = grouped("process");
    // The same ends per unit and per container.
    let (by_unit, by_container) = (grouped("unit"), grouped("container"));
    let n = (2 * CONNECTIONS).to_string();
    let mut server = Churn::spawn(&[
        "serve",
        "--addr",
        &addr,
        "-n",
        &n,
        "--cgroup",
        servers.path_str(),
    ]);
    let mut web = clients_in(&service, &addr, "trc-web");
    let mut boxed = clients_in(&container, &addr, "trc-boxed");
    server.go();
    web.go();
    web.finish(Duration::from_secs(20));
    boxed.go();
    boxed.finish(Duration::from_secs(20));
    server.finish(Duration::from_secs(20));
    let (code, out) = stop(tracer);
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(out.trim()).expect("a JSON array");
    let client_row = |comm: &str| {
        rows.iter()
            .find(|r| {
                r["role"] == "client" && r["process"].as_str().unwrap_or("").starts_with(comm)
            })
            .unwrap_or_else(|| panic!("no client row of {comm}: {rows:?}"))
    };
    let web_row = client_row("trc-web");
    assert_eq!(web_row["ended"], CONNECTIONS as u64, "{web_row}");
    assert_eq!(web_row["unit"], unit.as_str(), "{web_row}");
    assert!(web_row.get("container").is_none(), "{web_row}");
    let boxed_row = client_row("trc-boxed");
    assert_eq!(boxed_row["ended"], CONNECTIONS as u64, "{boxed_row}");
    assert_eq!(boxed_row["container"], &CONTAINER[..12], "{boxed_row}");
    assert!(boxed_row.get("unit").is_none(), "{boxed_row}");
    // Nothing in the servers' plain folder to name.
    let server_row = rows
        .iter()
        .find(|r| r["role"] == "server")
        .expect("a server row");
    assert!(server_row.get("unit").is_none() && server_row.get("container").is_none());
    for (tracer, by, name, process) in [
        (by_unit, "unit", unit.clone(), "trc-web"),
        (
            by_container,
            "container",
            CONTAINER[..12].to_string(),
            "trc-boxed",
        ),
    ] {
        let (code, out) = stop(tracer);
        assert_eq!(code, 0);
        let rows: Vec<Value> = serde_json::from_str(out.trim()).expect("a JSON array");
        let row = rows
            .iter()
            .find(|r| r["service"] == name.as_str() && r["role"] == "client")
            .unwrap_or_else(|| panic!("no {by} row {name}: {rows:?}"));
        assert_eq!(row["ended"], CONNECTIONS as u64, "{row}");
        assert!(
            row["process"].as_str().unwrap().starts_with(process),
            "{row}"
        );
        // The other clients and the servers have none: one `-` row per role.
        let none = rows.iter().filter(|r| r["service"] == "-").count();
        assert_eq!(none, 2, "{rows:?}");
    }
    drop((service, container, servers));
    drop(slice);
}

/// `tracer ARGS --json` to its end: its one JSON value.
fn tracer_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(tracer_tests::tracer_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tracer");
    assert!(out.status.success(), "tracer {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("one JSON value")
}

#[test]
fn states_and_doctor_name_the_unit_and_the_container_beside_the_process() {
    let pid = std::process::id();
    let slice = TestCgroup::create(&format!("trc-names2-{pid}.slice"));
    let unit = format!("trc-held-{pid}.service");
    let service = child(&slice, &unit);
    let container = child(&slice, &format!("docker-{CONTAINER}.scope"));
    let ip = run_ip(132, 0);
    let (held_port, idle_port) = (free_port(&ip), free_port(&ip));
    let (held_addr, idle_addr) = (format!("{ip}:{held_port}"), format!("{ip}:{idle_port}"));
    // In the unit: a server that keeps the connection it accepts open for 20 s after the
    // client closed it (one CLOSE_WAIT). In the container: a listener only.
    let mut held = Churn::spawn(&[
        "serve",
        "--addr",
        &held_addr,
        "-n",
        "1",
        "--hold-ms",
        "20000",
        "--cgroup",
        service.path_str(),
        "--comm",
        "trc-held",
    ]);
    let idle = Churn::spawn(&[
        "serve",
        "--addr",
        &idle_addr,
        "-n",
        "1",
        "--cgroup",
        container.path_str(),
        "--comm",
        "trc-idle",
    ]);
    held.go();
    drop(std::net::TcpStream::connect(&held_addr).expect("connect"));
    std::thread::sleep(Duration::from_millis(300));

    let states = tracer_json(&["states", "--by", "process", "--json"]);
    let row = |owner: u32| {
        states["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["pid"] == owner)
            .unwrap_or_else(|| panic!("no row of {owner}: {states}"))
            .clone()
    };
    let held_row = row(held.pid());
    assert_eq!(held_row["unit"], unit.as_str(), "{held_row}");
    assert!(held_row.get("container").is_none(), "{held_row}");
    let idle_row = row(idle.pid());
    assert_eq!(idle_row["container"], &CONTAINER[..12], "{idle_row}");
    assert!(idle_row.get("unit").is_none(), "{idle_row}");

    // One row per unit (or container) and role, naming its process.
    for (by, name, owner) in [
        ("unit", unit.clone(), held.pid()),
        ("container", CONTAINER[..12].to_string(), idle.pid()),
    ] {
        let grouped = tracer_json(&["states", "--by", by, "--json"]);
        assert_eq!(grouped["by"], by);
        let rows = grouped["rows"].as_array().unwrap();
        let named: Vec<&Value> = rows
            .iter()
            .filter(|r| r["service"] == name.as_str())
            .collect();
        assert!(!named.is_empty(), "no {by} row {name}: {grouped}");
        assert!(named.iter().all(|r| r["pid"] == owner), "{named:?}");
    }

    let doctor = tracer_json(&["doctor", "--json"]);
    let close_wait = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "close-wait" && f["evidence"]["pid"] == held.pid())
        .unwrap_or_else(|| panic!("no close-wait finding of trc-held: {doctor}"));
    assert_eq!(
        close_wait["evidence"]["unit"],
        unit.as_str(),
        "{close_wait}"
    );

    // The text shows the unit beside the process too.
    let text = std::process::Command::new(tracer_tests::tracer_bin())
        .args(["states", "--by", "service"])
        .output()
        .expect("tracer states");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("trc-held ({}) {unit}", held.pid()))),
        "{text}"
    );
    drop((held, idle));
    drop((service, container));
    drop(slice);
}
