//! The service files under deploy/ run as written: the systemd unit's ExecStart and the
//! DaemonSet's command line (with a free port), the unit's capabilities are enough for an
//! unprivileged user, and the deploy README names them all. Every wait is bounded; every process
//! started is stopped.
use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    deploy::{
        DAEMONSET, DASHBOARD, INSTALLED_BIN, METRICS_PORT, UNIT,
        files::{unit_caps, unit_exec_args, unit_settings, unit_value, yaml_list, yaml_scalar},
        processes_with_unreadable_links, read, run_bounded, runnable, runs_cleanly, text,
    },
    tools, tracer_bin,
};

#[test]
fn systemd_unit_runs_as_written() {
    let unit = read(UNIT);
    let args = unit_exec_args(&unit);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    let (args, addr) = runnable(&args, "127.0.0.1");
    runs_cleanly(&[], &args, &addr);

    assert_eq!(
        unit_caps(&unit, "CapabilityBoundingSet"),
        unit_caps(&unit, "AmbientCapabilities")
    );
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(unit_value(&unit, "RuntimeDirectory"), "tracer");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(unit_value(&unit, key), value, "{key}");
    }
    // These would break tracer: kallsyms hidden, CAP_SYSLOG dropped, other processes hidden.
    for key in [
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectProc",
        "ProcSubset",
    ] {
        assert!(
            unit_settings(&unit).iter().all(|(k, _)| k != key),
            "{key}= must not be set (see the comment in {UNIT})"
        );
    }

    // systemd's own parser: every line understood, no warning.
    tools::require("systemd-analyze", "systemd");
    let dir = std::env::temp_dir().join(format!("tracer-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("tracer.service");
    let bin = tracer_bin();
    std::fs::write(&copy, unit.replace(INSTALLED_BIN, bin.to_str().unwrap())).unwrap();
    let out = run_bounded(
        Command::new("systemd-analyze").arg("verify").arg(&copy),
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn daemonset_runs_as_written() {
    let yaml = read(DAEMONSET);
    let command = yaml_list(&yaml, "command");
    assert_eq!(command, [INSTALLED_BIN]);
    let args = yaml_list(&yaml, "args");
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert_eq!(yaml_scalar(&yaml, "containerPort"), METRICS_PORT);
    assert_eq!(yaml_scalar(&yaml, "prometheus.io/port"), METRICS_PORT);
    assert_eq!(yaml_scalar(&yaml, "hostPID"), "true");
    assert_eq!(yaml_scalar(&yaml, "hostNetwork"), "true");
    let (args, addr) = runnable(&args, "0.0.0.0");
    runs_cleanly(&[], &args, &addr);

    // The same capabilities as the systemd unit (Kubernetes names them without CAP_).
    let pod: BTreeSet<String> = yaml_list(&yaml, "add")
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    assert_eq!(pod, unit_caps(&read(UNIT), "CapabilityBoundingSet"));
    assert_eq!(yaml_list(&yaml, "drop"), ["ALL"]);
}

#[test]
fn unit_capabilities_are_enough_without_root() {
    let unit = read(UNIT);
    // Nobody, holding exactly the unit's capabilities, as systemd gives them to its dynamic user.
    let caps = unit_caps(&unit, "AmbientCapabilities");
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let setpriv = tools::as_nobody(&caps);
    let setpriv: Vec<&str> = setpriv.iter().map(String::as_str).collect();

    let (args, addr) = runnable(&unit_exec_args(&unit), "127.0.0.1");
    let err = runs_cleanly(&setpriv, &args, &addr);
    // CAP_SYSLOG lets it read tw_timer_handler's address: TIME_WAIT is followed.
    assert!(err.contains("TIME_WAIT followed"), "{err}");

    // CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH let it name the owners of root's sockets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let service = listener.local_addr().unwrap().to_string();
    let snap = states_json_as(&caps);
    // Every process's links are readable with these capabilities, except where the host
    // refuses even CAP_SYS_PTRACE (this VM's pid 1): then, and only then, "partial".
    let refused = processes_with_unreadable_links(&setpriv);
    assert_eq!(
        snap["owners_partial"],
        refused > 0,
        "{} unreadable, {refused} refused to a shell",
        snap["unreadable_processes"]
    );
    let row = snap["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["service"] == service.as_str() && r["role"] == "listener")
        .unwrap_or_else(|| panic!("no listener row for {service}"));
    assert_eq!(row["pid"], std::process::id(), "{row}");
    drop(listener);
}

/// `tracer states --json` run as nobody holding exactly `caps`.
fn states_json_as(caps: &[&str]) -> Value {
    let out = run_bounded(
        tools::tracer_as_nobody(caps).args(["states", "--json"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("states --json")
}

/// Listing another user's fds (CAP_DAC_READ_SEARCH) without reading their links (that needs
/// CAP_SYS_PTRACE) leaves owners unknown: `tracer states` must say they are partial.
#[test]
fn owners_are_partial_when_fd_links_cannot_be_read() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let snap = states_json_as(&["CAP_DAC_READ_SEARCH"]);
    assert_eq!(snap["owners_partial"], true, "{snap}");
    assert!(
        snap["unreadable_processes"].as_u64().unwrap_or(0) > 0,
        "{snap}"
    );
    drop(listener);
}

/// The deploy README names every file it documents, and they exist.
#[test]
fn readme_documents_the_files() {
    let readme = read("deploy/README.md");
    for file in [UNIT, DAEMONSET, DASHBOARD] {
        assert!(
            readme.contains(file),
            "deploy/README.md does not mention {file}"
        );
        let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        assert!(path.exists(), "{}", path.display());
    }
}
