//! `tracer run --metrics` for real: the real binary traces real loopback connections, its
//! `/metrics` is read over plain HTTP/1.0 and scraped by a real Prometheus (Debian's package,
//! installed by scripts/setup.sh). Every wait is bounded; every process started is stopped.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{Running, client_closes_first, free_port, tools, tracer_bin};

const CONNECTIONS: usize = 20;

/// `GET path` over HTTP/1.0 (the server closes after the response): the status and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// Sum of the `tracer_connection_ends_total` samples whose labels contain `labels`.
fn ends_with(exposition: &str, labels: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with("tracer_connection_ends_total{") && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Serves `count` connections on `port` that the client closes first.
fn churn(port: u16, count: usize) {
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..count {
        client_closes_first(&server, Duration::from_millis(5));
    }
}

/// Starts `tracer run --quiet` on `port` with metrics on `metrics_port`. `--duration` bounds its
/// life even if the test fails before stopping it.
fn start_tracer(port: u16, metrics_port: u16) -> Running {
    Running::start(&[
        "run",
        "--quiet",
        "--no-socket",
        "--duration",
        "90",
        "--port",
        &port.to_string(),
        "--metrics",
        &format!("127.0.0.1:{metrics_port}"),
    ])
}

/// SIGTERM, then the exit code (a final summary is printed first).
fn stop(tracer: Running) -> i32 {
    // SAFETY: kill(2) on our own child's pid, which is not reaped before `finish`.
    unsafe { libc::kill(tracer.child.id() as libc::pid_t, libc::SIGTERM) };
    tracer.finish(Duration::from_secs(10)).0
}

#[test]
fn metrics_count_every_server_side_end() {
    let port = free_port("127.0.0.1");
    let metrics_port = free_port("127.0.0.1");
    let tracer = start_tracer(port, metrics_port);
    churn(port, CONNECTIONS);

    let server_role = r#"role="server""#;
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let (status, body) = http_get(metrics_port, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "{body}");
        if ends_with(&body, server_role) >= CONNECTIONS as f64 || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ends_with(&text, server_role), CONNECTIONS as f64, "{text}");
    // The client closed first each time: the server saw its peer close first.
    let service = format!(r#"service="127.0.0.1:{port}",role="server",initiator="peer_first""#);
    assert_eq!(ends_with(&text, &service), CONNECTIONS as f64, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"tracer_transitions_total{from="CLOSE_WAIT",to="LAST_ACK"} "#
        )),
        "{text}"
    );
    let established = text
        .lines()
        .find(|l| l.starts_with(r#"tracer_state_duration_seconds_count{state="ESTABLISHED"} "#))
        .expect("ESTABLISHED durations");
    assert!(
        established.ends_with(&format!(" {}", 2 * CONNECTIONS)),
        "{established}"
    );
    assert!(
        text.lines().any(|l| l == "tracer_events_lost_total 0"),
        "{text}"
    );

    let (status, _) = http_get(metrics_port, "/nothing").unwrap();
    assert_eq!(status, 404);
    assert_eq!(stop(tracer), 0);
}

#[test]
fn metrics_port_in_use_is_a_one_line_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(tracer_bin())
        .args(["run", "--no-socket", "--duration", "5", "--metrics", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

/// A started process, killed (and reaped) when dropped, even when the test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Percent-encodes a query string value (everything but unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's single sample, `None` while it has no result.
fn query(port: u16, promql: &str) -> Option<String> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={}", url_encode(promql)))
        .expect("query Prometheus");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_string)
}

#[test]
fn prometheus_scrapes_the_connection_ends() {
    let prometheus = "prometheus";
    tools::require(prometheus, "prometheus");
    let port = free_port("127.0.0.1");
    let metrics_port = free_port("127.0.0.1");
    let prom_port = free_port("127.0.0.1");
    let dir = TempDir::new("tracer-prometheus");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: tracer\n    static_configs:\n      \
             - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();

    let tracer = start_tracer(port, metrics_port);
    let server = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prometheus_log = || std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(prom_port, "/-/ready"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 30 s:\n{}",
            prometheus_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    churn(port, CONNECTIONS);

    let promql = r#"sum(tracer_connection_ends_total{role="server"})"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        last = query(prom_port, promql);
        if last == Some(CONNECTIONS.to_string()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        last,
        Some(CONNECTIONS.to_string()),
        "{promql} after 20 s; prometheus log:\n{}",
        prometheus_log()
    );
    // The target is healthy and scraped as the Prometheus text format.
    assert_eq!(
        query(prom_port, r#"up{job="tracer"}"#).as_deref(),
        Some("1")
    );

    drop(server);
    assert_eq!(stop(tracer), 0);
}
