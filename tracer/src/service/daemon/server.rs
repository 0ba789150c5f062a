//! The daemon side of the control socket: [`Server`] accepts connections on the command's own
//! (current-thread) tokio runtime, reads one request line at a time and queues it; the collect
//! loop answers the queue with the collector at hand ([`Server::answer`], called when
//! [`Server::wakeup`] fires), so answers are as fresh as the events read and need no copy of
//! the statistics. Bad requests get an error response and the connection closes; the server
//! itself never stops for a client. The socket file ([`socket`]) is removed when it drops.
use std::{
    collections::VecDeque,
    path::Path,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{Notify, oneshot},
    task::JoinHandle,
    time::timeout,
};

pub use super::answer::{Context, View};
use super::{
    answer::respond,
    protocol::{ErrorCode, MAX_REQUEST, Refusal, Request, Response},
    socket::{Bound, SocketFile},
};

/// Connections served at once; more are refused (`busy`).
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no request for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// The collect loop answers within milliseconds; this only bounds a stuck one.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

struct Pending {
    request: Request,
    reply: oneshot::Sender<Response>,
}

/// Requests waiting for the collect loop.
#[derive(Default)]
struct Inbox {
    queue: Mutex<VecDeque<Pending>>,
    wakeup: Arc<Notify>,
    closed: AtomicBool,
    connections: AtomicUsize,
}

impl Inbox {
    async fn ask(&self, request: Request, pid: u32) -> Response {
        let stopping = || Response::failure(pid, Refusal::new(ErrorCode::Stopping, "stopping"));
        if self.closed.load(Ordering::Acquire) {
            return stopping();
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending { request, reply };
        self.lock().push_back(pending);
        self.wakeup.notify_one();
        match timeout(ANSWER_WITHIN, answer).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => stopping(),
            Err(_) => Response::failure(
                pid,
                Refusal::new(ErrorCode::Busy, "the daemon did not answer in time"),
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The control socket being served; stops serving and removes the file when dropped.
pub struct Server {
    inbox: Arc<Inbox>,
    context: Context,
    task: JoinHandle<()>,
    file: SocketFile,
}

impl Server {
    /// Serves `bound` on the current tokio runtime.
    pub fn start(bound: Bound, context: Context) -> Result<Server> {
        bound.listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(bound.listener)?;
        let inbox = Arc::new(Inbox::default());
        let task = tokio::spawn(accept(listener, Arc::clone(&inbox), context.pid));
        Ok(Server {
            inbox,
            context,
            task,
            file: bound.file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Notified whenever requests wait for [`Server::answer`].
    pub fn wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.inbox.wakeup)
    }

    /// Answers every waiting request from the collector, the close statistics and the history
    /// as they are.
    pub fn answer(&self, view: View<'_>) {
        loop {
            let Some(pending) = self.inbox.lock().pop_front() else {
                return;
            };
            let response = respond(&pending.request, &self.context, view);
            let _ = pending.reply.send(response);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        self.inbox.closed.store(true, Ordering::Release);
        self.inbox.lock().clear();
    }
}

async fn accept(listener: UnixListener, inbox: Arc<Inbox>, pid: u32) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: say so, back off, keep serving.
                log::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let inbox = Arc::clone(&inbox);
        tokio::spawn(async move {
            let open = inbox.connections.fetch_add(1, Ordering::AcqRel);
            let _counted = Counted(&inbox);
            serve(stream, &inbox, pid, open < MAX_CONNECTIONS).await;
        });
    }
}

/// Counts a connection out when its task ends, however it ends.
struct Counted<'a>(&'a Inbox);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Line {
    Request(Vec<u8>),
    TooLong,
    End,
}

/// One request line, at most [`MAX_REQUEST`] bytes without its newline.
async fn read_line(read: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let limit = MAX_REQUEST as u64 + 1;
    if read.take(limit).read_until(b'\n', &mut line).await? == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Ok(Line::TooLong);
    }
    Ok(Line::Request(line))
}

/// Requests and responses on one connection, until it ends, idles or a request is refused.
async fn serve(stream: UnixStream, inbox: &Inbox, pid: u32, admitted: bool) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut response =
        Response::failure(pid, Refusal::new(ErrorCode::Busy, "too many connections"));
    if admitted {
        loop {
            response = match timeout(IDLE, read_line(&mut read)).await {
                Ok(Ok(Line::Request(line))) => match Request::parse(&line) {
                    Ok(request) => inbox.ask(request, pid).await,
                    Err(refusal) => Response::failure(pid, refusal),
                },
                Ok(Ok(Line::TooLong)) => {
                    let message = format!("request longer than {MAX_REQUEST} bytes");
                    Response::failure(pid, Refusal::new(ErrorCode::TooLong, message))
                }
                Ok(Ok(Line::End) | Err(_)) | Err(_) => return,
            };
            if !response.ok {
                break;
            }
            let sent = timeout(IDLE, write.write_all(response.to_line().as_bytes())).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    }
    let _ = timeout(IDLE, write.write_all(response.to_line().as_bytes())).await;
    // Close after an error, but read (and drop, within bounds) what the client still sends:
    // closing a Unix socket with unread input makes the client's next read fail.
    let _ = write.shutdown().await;
    let mut rest = (&mut read).take(1 << 20);
    let _ = timeout(
        Duration::from_secs(1),
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
}
