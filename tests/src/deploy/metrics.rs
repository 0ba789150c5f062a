//! The metrics a real tracer exports: a `tracer run --metrics` driven by loopback connections,
//! scraped over HTTP, its Prometheus text exposition reduced to names and label values.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use crate::{Running, client_closes_first, free_port};

/// Sample names, and the values seen for each label name, in a Prometheus text exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub names: BTreeSet<String>,
    pub labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    pub fn parse(body: &str) -> Exposition {
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
    pub fn knows_label(&self, label: &str) -> bool {
        self.labels.contains_key(label) || matches!(label, "instance" | "job")
    }
}

/// `GET /metrics` over HTTP/1.0: the body of a 200 answer.
pub fn scrape(port: u16) -> std::io::Result<String> {
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
pub fn real_exposition() -> Exposition {
    let port = free_port("127.0.0.1");
    let metrics_port = free_port("127.0.0.1");
    let tracer = Running::start(&[
        "run",
        "--quiet",
        "--no-socket",
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
