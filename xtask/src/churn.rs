//! The benchmark's load: multi-threaded loopback connection churn. Each client thread loops
//! connect, a 16-byte request, a 16-byte response, close; each server thread accepts and
//! answers. Which side closes first is a flag, since it decides who holds the TIME_WAIT.
//! Every round is bounded by its duration; every socket has timeouts, so nothing can hang.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

const MESSAGE: usize = 16;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Client threads bind to 127.0.0.2, .3, ... so ephemeral ports (and the TIME_WAITs a
/// client-first close leaves) spread over several source addresses.
const FIRST_CLIENT_ADDR: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Closer {
    /// The client closes first and holds the TIME_WAIT (a crawler, a health checker).
    Client,
    /// The server closes first (HTTP/1.0, `keepalive_timeout 0`): the server holds it.
    Server,
}

/// A listening server with `threads` acceptor threads, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    /// Connections accepted (each one the server side of a connection that then ends).
    pub accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(port: u16, threads: usize, closer: Closer) -> Result<Server> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        let listener: TcpListener = socket.into();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let listener = listener
                .try_clone()
                .context("cloning the listening socket")?;
            let (stop, accepted) = (stop.clone(), accepted.clone());
            handles.push(std::thread::spawn(move || {
                serve(listener, &stop, &accepted, closer)
            }));
        }
        Ok(Server {
            addr,
            accepted,
            stop,
            threads: handles,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Each acceptor blocks in accept(): one connection each wakes them to see `stop`.
        for _ in 0..self.threads.len() {
            let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, accepted: &AtomicU64, closer: Closer) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut conn, _)) = listener.accept() else {
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = answer(&mut conn, closer);
    }
}

fn answer(conn: &mut TcpStream, closer: Closer) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = [0u8; MESSAGE];
    conn.read_exact(&mut request)?;
    conn.write_all(&[b'r'; MESSAGE])?;
    if closer == Closer::Client {
        wait_for_eof(conn)?;
    }
    Ok(())
}

fn wait_for_eof(conn: &mut TcpStream) -> std::io::Result<()> {
    let mut sink = [0u8; MESSAGE];
    while conn.read(&mut sink)? > 0 {}
    Ok(())
}

/// The churn's shape, as `cargo xtask churn` and `cargo xtask bench` take it.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Load {
    /// Seconds of each run of churn.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Client threads (and as many server threads).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Which side closes first.
    #[arg(long, value_enum, default_value_t = Closer::Server)]
    pub closer: Closer,
}

/// `cargo xtask churn`: a server and its clients for `seconds`, then the rate on stdout.
pub fn alone(load: &Load) -> Result<()> {
    let Load {
        seconds,
        threads,
        closer,
    } = *load;
    let server = Server::start(crate::bench::PORT, threads, closer)?;
    let duration = Duration::from_secs(seconds.into());
    let (done, failed) = clients(server.addr, threads, closer, duration);
    let rate = done as f64 / duration.as_secs_f64();
    println!("{rate:.0} conn/s ({done} connections, {failed} failed, {closer:?} closes first)");
    Ok(())
}

/// Runs `threads` client loops against `server` for `duration`; returns connections completed
/// (request answered and closed) and connections that failed.
pub fn clients(
    server: SocketAddr,
    threads: usize,
    closer: Closer,
    duration: Duration,
) -> (u64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (done, failed) = (done.clone(), failed.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    match one(i, server, closer) {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.join();
    }
    (done.load(Ordering::SeqCst), failed.load(Ordering::SeqCst))
}

/// One connection from client thread `i`'s source address (127.0.0.2 for the first).
pub fn one(i: usize, server: SocketAddr, closer: Closer) -> Result<()> {
    let source = Ipv4Addr::new(127, 0, 0, FIRST_CLIENT_ADDR + (i % 200) as u8);
    one_connection(source, server, closer)
}

/// IP_BIND_ADDRESS_NO_PORT: pick the port at connect() time, per 4-tuple, not at bind() time
/// per address, so a few source addresses can hold many more connections.
fn bind_address_no_port(socket: &Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on an fd we own, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn one_connection(source: Ipv4Addr, server: SocketAddr, closer: Closer) -> Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    bind_address_no_port(&socket)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
    socket.connect_timeout(&server.into(), IO_TIMEOUT)?;
    let mut conn: TcpStream = socket.into();
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.write_all(&[b'q'; MESSAGE])?;
    let mut response = [0u8; MESSAGE];
    conn.read_exact(&mut response).context("response")?;
    if closer == Closer::Server {
        wait_for_eof(&mut conn)?;
    }
    Ok(())
}
