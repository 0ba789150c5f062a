//! Which process holds each socket: the kernel's sock_diag answer has an inode but no pid, so,
//! as `ss -p` does, every `/proc/PID/fd/*` link that reads `socket:[INODE]` is matched.
//!
//! Processes come and go during the scan; one that vanishes is skipped, never an error. Without
//! root the fds of other users' processes cannot be read: those are counted so the output can
//! say its owners are partial instead of silently showing fewer.
use std::{
    collections::{HashMap, HashSet},
    fs,
    io::ErrorKind,
    path::Path,
};

use crate::model::{Comm, Owner};

/// The owners a scan of /proc found for the inodes that were asked about.
#[derive(Debug, Default)]
pub struct OwnerScan {
    pub by_inode: HashMap<u64, Owner>,
    /// Processes whose fd table could not be read (permission): their sockets show no owner.
    pub unreadable: u32,
}

/// Scans `proc_root` (normally `/proc`) for the holders of `wanted` inodes (every socket inode
/// when `None`, so the scan can run while the sock_diag dump is still going). When several
/// processes share a socket (a forked listener), the lowest pid is kept: usually the parent.
pub fn scan(proc_root: &Path, wanted: Option<&HashSet<u64>>) -> OwnerScan {
    let mut owners = OwnerScan::default();
    if wanted.is_some_and(|w| w.is_empty()) {
        return owners;
    }
    let Ok(dir) = fs::read_dir(proc_root) else {
        return owners;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let fds = match fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                owners.unreadable += 1;
                continue;
            }
            // Gone since the listing (NotFound, ESRCH), or a zombie with no fd table.
            Err(_) => continue,
        };
        let mut comm: Option<String> = None;
        let fd_dir = fs::File::open(entry.path().join("fd")).ok();
        // Listing another user's fds can be allowed while reading the links is not (that needs
        // ptrace access): such a process counts as unreadable too, not as holding nothing.
        let mut denied = false;
        for fd in fds.flatten() {
            let link = match fd_dir
                .as_ref()
                .map(|dir| read_link_at(dir, &fd.file_name()))
            {
                Some(Ok(link)) => link,
                Some(Err(e)) if e.kind() == ErrorKind::PermissionDenied => {
                    denied = true;
                    continue;
                }
                _ => continue,
            };
            let Some(inode) = socket_inode(&link) else {
                continue;
            };
            if wanted.is_some_and(|w| !w.contains(&inode)) {
                continue;
            }
            let comm = comm.get_or_insert_with(|| read_comm(&entry.path()));
            let owner = Owner {
                pid,
                comm: Comm::from(comm.as_str()),
                cgroup_id: 0,
            };
            owners
                .by_inode
                .entry(inode)
                .and_modify(|o| {
                    if pid < o.pid {
                        *o = owner;
                    }
                })
                .or_insert(owner);
        }
        owners.unreadable += u32::from(denied);
    }
    owners
}

/// readlinkat(2) relative to the open fd directory: with 100,000 sockets a full-path readlink
/// per fd spends most of the snapshot in path lookups.
fn read_link_at(dir: &fs::File, name: &std::ffi::OsStr) -> std::io::Result<String> {
    use std::os::{fd::AsRawFd, unix::ffi::OsStrExt};
    let name = std::ffi::CString::new(name.as_bytes())?;
    let mut buf = [0u8; 64];
    // SAFETY: a valid directory fd, a NUL-terminated name and a buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    // Links longer than the buffer are no `socket:[...]`: truncated text is fine to reject.
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `/proc/PID/comm` is the thread-group leader's name (what `ps` shows), not a thread's; `?`
/// when the process vanished before it could be read.
fn read_comm(proc_pid: &Path) -> String {
    fs::read_to_string(proc_pid.join("comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The inode in an fd link `socket:[12345]`; `None` for files, pipes, anon inodes.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode in a namespace link `net:[4026531840]`.
pub fn netns_inode(link: &str) -> Option<u32> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_links_name_socket_inodes() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[]"), None);
        assert_eq!(netns_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(netns_inode("mnt:[4026531840]"), None);
    }

    #[test]
    fn this_process_owns_its_own_socket() {
        use std::os::unix::fs::MetadataExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let inode = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let owners = scan(Path::new("/proc"), Some(&HashSet::from([inode])));
        let owner = &owners.by_inode[&inode];
        assert_eq!(owner.pid, std::process::id());
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(owner.comm, comm.trim_end());
    }
}
