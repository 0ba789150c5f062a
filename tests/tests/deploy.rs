//! The deployment files under deploy/ stay in step with the binary: the Grafana dashboard only
//! queries metrics, labels and label values that a real `tracer run --metrics` exports (and its
//! PromQL parses, by promtool); the systemd unit's ExecStart and the DaemonSet's command line run
//! as written (with a free port); the unit's capabilities are enough for an unprivileged user.
//! Every wait is bounded; every process started is stopped.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{Running, client_closes_first, free_port, tracer_bin};

const UNIT: &str = "deploy/systemd/tracer.service";
const DAEMONSET: &str = "deploy/kubernetes/daemonset.yaml";
const DASHBOARD: &str = "deploy/grafana/tracer-dashboard.json";
/// The metrics port both deployments use, replaced by a free one to run them here.
const METRICS_PORT: &str = "9464";
/// The path the unit runs the binary from, replaced by the one under test.
const INSTALLED_BIN: &str = "/usr/local/bin/tracer";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `cmd` to completion (at most `timeout`, then it is killed), capturing its output.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for child"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid, not yet reaped (its waiter is blocked).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{cmd:?} did not exit within {timeout:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// --- The systemd unit -------------------------------------------------------------------------

/// `Key=value` settings of the unit, in order (comments and section headers left out).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The one value of `key` in the unit.
fn unit_value(unit: &str, key: &str) -> String {
    let values: Vec<String> = unit_settings(unit)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= in {UNIT}: {values:?}");
    values.into_iter().next().unwrap()
}

/// The unit's ExecStart, split into arguments after the program (it uses no quoting).
fn unit_exec_args(unit: &str) -> Vec<String> {
    let exec = unit_value(unit, "ExecStart");
    assert!(
        !exec.contains(['"', '\'', '\\', '$', '%']),
        "ExecStart should need no quoting or expansion: {exec}"
    );
    let mut words = exec.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some(INSTALLED_BIN), "{exec}");
    words.collect()
}

/// A capability list setting as a set of names (`CAP_BPF`, ...).
fn unit_caps(unit: &str, key: &str) -> BTreeSet<String> {
    unit_value(unit, key)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

// --- The DaemonSet (just enough YAML for the keys used) ---------------------------------------

/// The string list under `key:`, written either as a flow sequence on its line
/// (`args: ["run", ...]`) or as a block of `- item` lines below it. `key` must occur once.
fn yaml_list(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let prefix = format!("{key}:");
    let found: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with(&prefix))
        .collect();
    assert_eq!(found.len(), 1, "`{key}:` lines in {DAEMONSET}");
    let line = lines[found[0]];
    let indent = line.len() - line.trim_start().len();
    let rest = line.trim_start()[prefix.len()..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return serde_json::from_str(rest)
            .unwrap_or_else(|e| panic!("`{key}:` is not a list of strings: {rest} ({e})"));
    }
    let mut items = Vec::new();
    for line in &lines[found[0] + 1..] {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() < indent || !trimmed.starts_with("- ") {
            break;
        }
        let item = trimmed[2..].split(" #").next().unwrap().trim();
        items.push(item.trim_matches('"').trim_matches('\'').to_string());
    }
    items
}

/// The scalar after the one `key:` line, unquoted.
fn yaml_scalar(yaml: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    let values: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(&prefix))
        .map(|v| v.trim().trim_matches('"'))
        .collect();
    assert_eq!(values.len(), 1, "`{key}:` lines in {DAEMONSET}: {values:?}");
    values[0].to_string()
}

// --- The metrics a real tracer exports ---------------------------------------------------------

/// Sample names, and the values seen for each label name, in a Prometheus text exposition.
#[derive(Debug, Default)]
struct Exposition {
    names: BTreeSet<String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(body: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some(open) = line.find('{') else {
                e.names
                    .insert(line.split_whitespace().next().unwrap().to_string());
                continue;
            };
            e.names.insert(line[..open].to_string());
            let close = line.rfind('}').expect("labels close");
            let mut rest = &line[open + 1..close];
            while let Some((name, after)) = rest.split_once("=\"") {
                let end = after.find('"').expect("label value ends");
                e.labels
                    .entry(name.trim_start_matches(',').to_string())
                    .or_default()
                    .insert(after[..end].to_string());
                rest = &after[end + 1..];
            }
        }
        e
    }

    /// Label names a query may use: the exported ones and those Prometheus adds to every
    /// scraped series.
    fn knows_label(&self, label: &str) -> bool {
        self.labels.contains_key(label) || matches!(label, "instance" | "job")
    }
}

/// `GET /metrics` over HTTP/1.0: the body of a 200 answer.
fn scrape(port: u16) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {raw:?}")))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not a 200: {head}")));
    }
    Ok(body.to_string())
}

/// What a real `tracer run --metrics` exports after a few loopback connections (both roles,
/// every series a connection's life creates).
fn real_exposition() -> Exposition {
    let port = free_port("127.0.0.1");
    let metrics_port = free_port("127.0.0.1");
    let tracer = Running::start(&[
        "run",
        "--quiet",
        "--metrics",
        &format!("127.0.0.1:{metrics_port}"),
        // Only a bound on its life should the test fail first: it is stopped by SIGTERM.
        "--duration",
        "30",
        "--port",
        &port.to_string(),
    ]);
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        client_closes_first(&server, Duration::from_millis(5));
    }
    let complete = |body: &str| {
        ["role=\"server\"", "role=\"client\""].iter().all(|role| {
            body.lines()
                .any(|l| l.starts_with("tracer_connection_ends_total{") && l.contains(role))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let body = loop {
        let body = scrape(metrics_port).expect("GET /metrics");
        if complete(&body) || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on our own child's pid, which is not reaped before `finish`.
    unsafe { libc::kill(tracer.child.id() as libc::pid_t, libc::SIGTERM) };
    let (code, _) = tracer.finish(Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(complete(&body), "both ends of the connections: {body}");
    Exposition::parse(&body)
}

// --- PromQL, as far as the dashboard needs -----------------------------------------------------

/// What one PromQL expression refers to.
#[derive(Debug, Default)]
struct Refs {
    /// Identifiers starting with `tracer_`: metric names.
    metrics: Vec<String>,
    /// Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_*`.
    grouping: Vec<String>,
    /// `(label, operator, value)` of every label matcher.
    matchers: Vec<(String, String, String)>,
}

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads a quoted string starting at `s[*i]` (the quote), leaving `*i` after its end.
fn read_string(s: &[char], i: &mut usize) -> String {
    let quote = s[*i];
    *i += 1;
    let mut out = String::new();
    while *i < s.len() && s[*i] != quote {
        if s[*i] == '\\' && *i + 1 < s.len() {
            *i += 1;
        }
        out.push(s[*i]);
        *i += 1;
    }
    *i += 1;
    out
}

fn read_ident(s: &[char], i: &mut usize) -> String {
    let start = *i;
    while *i < s.len() && ident_char(s[*i]) {
        *i += 1;
    }
    s[start..*i].iter().collect()
}

fn skip_spaces(s: &[char], i: &mut usize) {
    while *i < s.len() && s[*i].is_whitespace() {
        *i += 1;
    }
}

fn scan_promql(expr: &str) -> Refs {
    let s: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            read_string(&s, &mut i);
        } else if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if i < s.len() && s[i] == '{' {
                while i < s.len() && s[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                read_ident(&s, &mut i);
            }
        } else if c == '[' {
            while i < s.len() && s[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            i += 1;
            loop {
                skip_spaces(&s, &mut i);
                if i >= s.len() || s[i] == '}' {
                    i += 1;
                    break;
                }
                let label = read_ident(&s, &mut i);
                skip_spaces(&s, &mut i);
                let op_start = i;
                while i < s.len() && "=!~".contains(s[i]) {
                    i += 1;
                }
                let op: String = s[op_start..i].iter().collect();
                skip_spaces(&s, &mut i);
                assert!(
                    !label.is_empty() && !op.is_empty() && i < s.len() && s[i] == '"',
                    "cannot read the label matchers of {expr}"
                );
                let value = read_string(&s, &mut i);
                refs.matchers.push((label, op, value));
                skip_spaces(&s, &mut i);
                if i < s.len() && s[i] == ',' {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations: 0.99, 5m, 1e-9.
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let word = read_ident(&s, &mut i);
            if word.starts_with("tracer_") {
                refs.metrics.push(word);
            } else if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                skip_spaces(&s, &mut i);
                if i < s.len() && s[i] == '(' {
                    let start = i + 1;
                    while i < s.len() && s[i] != ')' {
                        i += 1;
                    }
                    let list: String = s[start..i].iter().collect();
                    refs.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// The expression with Grafana's variables replaced by values Prometheus accepts: time ranges
/// by durations, the dashboard's own variables (inside label matchers) by `.*`.
fn substitute_variables(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m");
    while let Some(at) = out.find('$') {
        let end = out[at + 1..]
            .find(|c: char| !ident_char(c))
            .map_or(out.len(), |n| at + 1 + n);
        out.replace_range(at..end, ".*");
    }
    out
}

// --- The dashboard -----------------------------------------------------------------------------

/// One query of the dashboard: its PromQL, where it is, and its legend (if any).
#[derive(Debug)]
struct DashboardQuery {
    place: String,
    expr: String,
    legend: String,
}

fn load_dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel's targets' `expr`, and every query variable's `label_values(...)` selector.
fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(DashboardQuery {
                place: format!("panel {title:?}"),
                expr: target["expr"].as_str().expect("a target's expr").into(),
                legend: target["legendFormat"].as_str().unwrap_or("").into(),
            });
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("a query variable's query");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(...)"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        queries.push(DashboardQuery {
            place: format!("variable {}", var["name"]),
            // The label must exist: check it as a grouping label.
            expr: format!("count by ({}) ({selector})", label.trim()),
            legend: String::new(),
        });
    }
    queries
}

#[test]
fn dashboard_is_an_importable_grafana_dashboard() {
    let d = load_dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(
        d["__inputs"]
            .as_array()
            .expect("__inputs")
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "a DS_PROMETHEUS input for import"
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    assert_eq!(
        var("DS_PROMETHEUS").map(|v| &v["type"]),
        Some(&Value::from("datasource")),
        "a DS_PROMETHEUS data source variable (for file provisioning)"
    );
    assert_eq!(
        var("instance").map(|v| &v["type"]),
        Some(&Value::from("query"))
    );

    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id: {title}"
        );
        let (x, w) = (p["gridPos"]["x"].as_u64(), p["gridPos"]["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "gridPos of {title}"
        );
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        }
    }
    for wanted in [
        "tracer_state_duration_seconds_bucket",
        "tracer_sockets_in_state",
        "tracer_connection_ends_total",
        "tracer_transitions_total",
        "tracer_events_lost_total",
    ] {
        assert!(
            dashboard_queries(&d)
                .iter()
                .any(|q| q.expr.contains(wanted)),
            "no panel shows {wanted}"
        );
    }
}

#[test]
fn dashboard_queries_only_what_tracer_exports() {
    let queries = dashboard_queries(&load_dashboard());
    let exposition = real_exposition();
    for q in &queries {
        let refs = scan_promql(&q.expr);
        let at = format!("{}: {}", q.place, q.expr);
        assert!(!refs.metrics.is_empty(), "no tracer metric in {at}");
        for metric in &refs.metrics {
            assert!(
                exposition.names.contains(metric),
                "{metric} is not exported ({at}); exported: {:?}",
                exposition.names
            );
        }
        for label in &refs.grouping {
            assert!(exposition.knows_label(label), "label {label} in {at}");
        }
        for (label, op, value) in &refs.matchers {
            assert!(exposition.knows_label(label), "label {label} in {at}");
            // Literal values (not a Grafana variable, not a real regex) must be real values.
            let plain = |v: &str| !v.is_empty() && v.chars().all(|c| ident_char(c) || c == '.');
            let alternatives: Vec<&str> = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                "=~" | "!~" => value.split('|').collect(),
                _ => panic!("matcher operator {op} in {at}"),
            };
            if matches!(label.as_str(), "instance" | "job")
                || !alternatives.iter().all(|v| plain(v))
            {
                continue;
            }
            for v in alternatives {
                assert!(
                    exposition.labels[label].contains(v),
                    "{label}=\"{v}\" never occurs ({at}); values seen: {:?}",
                    exposition.labels[label]
                );
            }
        }
        // Legend placeholders name labels the series carry.
        for part in q.legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap().trim();
            assert!(
                exposition.knows_label(label),
                "legend {{{{{label}}}}} in {at}"
            );
        }
    }
}

#[test]
fn dashboard_promql_parses() {
    let promtool = "promtool";
    assert!(
        Command::new(promtool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "promtool is missing: run `bash scripts/setup.sh` (Debian package prometheus)"
    );
    // Each query as a recording rule: `promtool check rules` parses every expression.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, q) in dashboard_queries(&load_dashboard()).iter().enumerate() {
        let expr = serde_json::to_string(&substitute_variables(&q.expr)).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query{n}\n        expr: {expr}\n"
        ));
    }
    let path =
        std::env::temp_dir().join(format!("tracer-dashboard-{}.rules.yml", std::process::id()));
    std::fs::write(&path, &rules).unwrap();
    let out = run_bounded(
        Command::new(promtool).arg("check").arg("rules").arg(&path),
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// --- Command lines and privileges ------------------------------------------------------------

/// `args` with the metrics port replaced by a free one, and `--duration 1` so it ends.
fn runnable(args: &[String], ip: &str) -> (Vec<String>, String) {
    let port = free_port(ip);
    let from = format!("{ip}:{METRICS_PORT}");
    let addr = format!("{ip}:{port}");
    assert!(args.contains(&from), "--metrics {from} in {args:?}");
    let mut args: Vec<String> = args.iter().map(|a| a.replace(&from, &addr)).collect();
    assert!(
        !args.iter().any(|a| a == "--duration"),
        "a service runs until stopped: {args:?}"
    );
    args.extend(["--duration".into(), "1".into()]);
    (args, addr)
}

/// Runs `tracer ARGS` (through `wrapper` if given) and checks it served metrics and exited 0.
fn runs_cleanly(wrapper: &[&str], args: &[String], addr: &str) -> String {
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(tracer_bin());
            cmd
        }
        None => Command::new(tracer_bin()),
    };
    let out = run_bounded(cmd.args(args), Duration::from_secs(20));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{wrapper:?} {args:?}: {err}");
    assert!(
        err.contains(&format!(
            "serving Prometheus metrics at http://{addr}/metrics"
        )),
        "{err}"
    );
    err
}

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

    // systemd's own parser, when installed: every line understood, no warning.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
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
    } else {
        eprintln!("systemd-analyze not installed: unit syntax not verified by systemd");
    }
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
    // setpriv (util-linux): nobody, holding exactly the unit's capabilities, as systemd would
    // give them to its dynamic user (ambient, bounded, no new privileges).
    let caps: Vec<String> = unit_caps(&unit, "AmbientCapabilities")
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = format!("-all,{}", caps.join(","));
    let inh = format!("--inh-caps={caps}");
    let ambient = format!("--ambient-caps={caps}");
    let bounding = format!("--bounding-set={caps}");
    let setpriv = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--no-new-privs",
        &inh,
        &ambient,
        &bounding,
        "--",
    ];

    let (args, addr) = runnable(&unit_exec_args(&unit), "127.0.0.1");
    let err = runs_cleanly(&setpriv, &args, &addr);
    // CAP_SYSLOG lets it read tw_timer_handler's address: TIME_WAIT is followed.
    assert!(!err.contains("TIME_WAIT is not followed"), "{err}");

    // CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH let it name the owners of root's sockets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let service = listener.local_addr().unwrap().to_string();
    let mut cmd = Command::new(setpriv[0]);
    cmd.args(&setpriv[1..])
        .arg(tracer_bin())
        .args(["states", "--json"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let snap: Value = serde_json::from_slice(&out.stdout).expect("states --json");
    assert_eq!(
        snap["owners_partial"], false,
        "{}",
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
