//! The HTTP side of `--metrics`: `GET /metrics` in the Prometheus text format (0.0.4), served by
//! hyper on the command's own (current-thread) tokio runtime as a spawned task, so scrapes
//! interleave with event processing and need no thread or lock of their own.
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Result, anyhow};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ALLOW, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::{encoding::prometheus_text, registry::Registry};
use tokio::{net::TcpListener, task::JoinHandle};

/// The address `--metrics` listens on when given no value. 9464 is the port OpenTelemetry's
/// Prometheus exporters use; loopback so nothing is exposed unless asked.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// How long a client may take to send its request headers before it is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the metrics address, with an error that says which address and why (port in use, ...).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow!("cannot serve metrics on {addr}: {e}"))
}

/// Serves `registry` on `listener` until the returned task is aborted (or the runtime ends).
pub fn spawn(listener: TcpListener, registry: Arc<Registry>) -> JoinHandle<()> {
    tokio::spawn(serve(listener, registry))
}

async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: say so, back off, keep serving.
                log::warn!("metrics server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = respond(&req, &registry);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            // A client that goes away mid-request is its own business, not the tracer's.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The response to one request: the metrics at `/metrics`, a pointer to it at `/`.
pub fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    route(req.method(), req.uri().path(), registry)
}

pub(crate) fn route(method: &Method, path: &str, registry: &Registry) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => match encode(registry) {
            Ok(body) => response(StatusCode::OK, prometheus_text::CONTENT_TYPE, body),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            ),
        },
        "/" => text(
            StatusCode::OK,
            "tracer: TCP state metrics at /metrics\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics\n".into()),
    }
}

/// Every registered metric in the Prometheus text format (version 0.0.4).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut body = String::with_capacity(16 * 1024);
    prometheus_text::encode(&mut body, registry)?;
    Ok(body)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
