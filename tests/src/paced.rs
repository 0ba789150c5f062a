//! A client that connects at a steady rate (which the test can change) and closes first, and
//! the server it connects to, both in one network namespace: each connection leaves a
//! TIME_WAIT on the client's local port, as a client without pooling does. Bounded in time.
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{sockets::Netns, take_fin};

/// What the client saw.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub connects: u64,
    /// When connect() first failed, and its errno.
    pub first_failure: Option<(Instant, Option<i32>)>,
    pub failures: u64,
}

pub struct PacedClient {
    /// Connects per second, in thousandths.
    rate_milli: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    client: JoinHandle<Outcome>,
    server: JoinHandle<u64>,
    pub server_addr: SocketAddr,
}

impl PacedClient {
    /// Starts a server on 127.0.0.1:`port` and a client connecting to it `rate` times a second
    /// in `ns`, for at most `limit`; with `stop_on_failure` the client stops at its first
    /// failed connect().
    pub fn start(ns: &Netns, port: u16, rate: f64, limit: Duration, stop_on_failure: bool) -> Self {
        let rate_milli = Arc::new(AtomicU64::new((rate * 1000.0) as u64));
        let stop = Arc::new(AtomicBool::new(false));
        let server_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = {
            let stop = stop.clone();
            ns.spawn("paced-server", move || {
                let listener = TcpListener::bind(server_addr).expect("bind");
                listener.set_nonblocking(true).unwrap();
                ready_tx.send(()).unwrap();
                serve(&listener, &stop, Instant::now() + limit)
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server listening");
        let client = {
            let (rate_milli, stop) = (rate_milli.clone(), stop.clone());
            ns.spawn("paced-client", move || {
                let deadline = Instant::now() + limit;
                connect_paced(server_addr, &rate_milli, &stop, deadline, stop_on_failure)
            })
        };
        PacedClient {
            rate_milli,
            stop,
            client,
            server,
            server_addr,
        }
    }

    pub fn set_rate(&self, rate: f64) {
        self.rate_milli
            .store((rate * 1000.0) as u64, Ordering::Relaxed);
    }

    /// Whether the client has stopped (its first failure with `stop_on_failure`, or its limit).
    pub fn client_done(&self) -> bool {
        self.client.is_finished()
    }

    /// Stops both and returns what the client saw.
    pub fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let outcome = self.client.join().expect("client thread");
        self.server.join().expect("server thread");
        outcome
    }
}

/// Accepts until `stop` or `deadline`; each connection is read to the client's FIN, then closed.
fn serve(listener: &TcpListener, stop: &AtomicBool, deadline: Instant) -> u64 {
    let mut served = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                take_fin(&mut stream);
                served += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    served
}

/// Connects on a fixed schedule (no drift: each connect has its own instant), closing each
/// connection at once.
fn connect_paced(
    addr: SocketAddr,
    rate_milli: &AtomicU64,
    stop: &AtomicBool,
    deadline: Instant,
    stop_on_failure: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let rate = rate_milli.load(Ordering::Relaxed).max(1) as f64 / 1000.0;
        next += Duration::from_secs_f64(1.0 / rate);
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => {
                outcome.connects += 1;
                drop(stream);
            }
            Err(e) => {
                outcome.failures += 1;
                if outcome.first_failure.is_none() {
                    outcome.first_failure = Some((Instant::now(), e.raw_os_error()));
                }
                if stop_on_failure {
                    break;
                }
            }
        }
    }
    outcome
}
