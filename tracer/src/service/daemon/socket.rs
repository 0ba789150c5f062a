//! The control socket's file: made with mode 0600 from the start (in a 0700 directory made if
//! missing), refused while a live daemon answers on the path (the default one too: a second
//! `tracer run` must say `--no-socket` to run beside the first), replacing the file a dead one
//! left, and removed when the daemon ends (only if it is still the one made).
use std::{
    fs::{self, DirBuilder, Permissions},
    io::ErrorKind,
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};

/// Where `tracer run` serves, and `tracer histogram` / `tracer closes` ask, by default.
pub const DEFAULT_PATH: &str = "/run/tracer/tracer.sock";

/// The socket file this process made; removed on drop unless another file has replaced it.
#[derive(Debug)]
pub(super) struct SocketFile {
    pub(super) path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A bound control socket, not yet served.
#[derive(Debug)]
pub struct Bound {
    pub(super) listener: std::os::unix::net::UnixListener,
    pub(super) file: SocketFile,
}

/// The process on the other end of a Unix socket (SO_PEERCRED).
fn peer_pid(stream: &std::os::unix::net::UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

/// What to do instead, said after every error about the socket.
const INSTEAD: &str = "--no-socket serves none, --socket PATH another one";

fn already_served(path: &Path, pid: Option<u32>) -> anyhow::Error {
    let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    anyhow!(
        "another tracer daemon{pid} already serves {} (stop it, or run this one with \
         --no-socket or another --socket)",
        path.display()
    )
}

/// Creates the socket file at `path`: refused while a live daemon answers there; a file left by
/// one that died (nobody accepts) is replaced.
pub fn bind(path: &Path) -> Result<Bound> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| {
                format!(
                    "cannot create {} for the control socket ({INSTEAD})",
                    dir.display()
                )
            })?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(peer) => return Err(already_served(path, peer_pid(&peer))),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            let is_socket = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            if !is_socket {
                bail!("{shown} exists and is not a socket: remove it ({INSTEAD})");
            }
            fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {shown} ({INSTEAD})"))?;
        }
        Err(e) => bail!("cannot use {shown} as the control socket: {e} ({INSTEAD})"),
    }
    // Mode 0600 from the moment the file exists: there is no window with a wider one.
    // SAFETY: umask(2) only swaps the process's file mode mask; it cannot fail.
    let previous = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(previous) };
    let listener = bound.map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => already_served(path, None),
        _ => anyhow!("cannot serve the control socket {shown}: {e} ({INSTEAD})"),
    })?;
    let meta = fs::symlink_metadata(path).with_context(|| format!("{shown} vanished"))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: (meta.dev(), meta.ino()),
    };
    fs::set_permissions(path, Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {shown}"))?;
    Ok(Bound { listener, file })
}

/// The socket `tracer run` serves: `--socket PATH`, else [`DEFAULT_PATH`]. Either must work:
/// a daemon that silently served nothing would leave `tracer closes` asking the other one.
pub fn open(explicit: Option<&Path>) -> Result<Bound> {
    bind(explicit.unwrap_or(Path::new(DEFAULT_PATH)))
}
