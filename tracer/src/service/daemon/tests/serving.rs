//! A real server in this process, on its own thread and runtime, answering from the fixture's
//! collector (as the collect loop does) until dropped.
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use tracer_common::FilterConfig;

use super::fixtures::{collected, runtime};
use crate::service::daemon::{
    server::{Context, Server},
    socket::bind,
};

pub(super) struct Serving {
    pub(super) path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Serving {
    /// Serves `dir`/t.sock (the recording is made in `dir` too); returns once it accepts.
    pub(super) fn start(dir: &Path) -> Serving {
        let path = dir.join("t.sock");
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, started) = mpsc::channel();
        let thread = {
            let (dir, path, stop) = (dir.to_path_buf(), path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let collected = collected(&dir);
                let rt = runtime();
                let context = Context::new(&FilterConfig::default());
                let server = rt.block_on(async { Server::start(bind(&path).unwrap(), context) });
                let server = server.unwrap();
                ready.send(()).unwrap();
                rt.block_on(async {
                    let wakeup = server.wakeup();
                    while !stop.load(Ordering::Relaxed) {
                        tokio::select! {
                            _ = wakeup.notified() => server.answer(collected.view()),
                            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        }
                    }
                });
            })
        };
        started
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        Serving {
            path,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
