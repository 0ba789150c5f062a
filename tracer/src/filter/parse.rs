//! `--netns`, `--pid` and `--comm` values.
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::Path,
};

/// `NS_GET_NSTYPE` (linux/nsfs.h): which kind of namespace a namespace file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// `--netns`: an inode number, or a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`)
/// whose inode is taken.
pub fn parse_netns(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return u32::try_from(n)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| format!("'{s}' is not a network namespace inode (1-4294967295)"));
    }
    let file = File::open(s).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "'{s}' does not exist (a network namespace is an inode number, /run/netns/NAME or /proc/PID/ns/net)"
        ),
        _ => format!("'{s}': {e}"),
    })?;
    // SAFETY: ioctl on an fd we own, no argument.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(format!("'{s}' is not a network namespace file"));
    }
    let ino = file.metadata().map_err(|e| format!("'{s}': {e}"))?.ino();
    u32::try_from(ino).map_err(|_| format!("'{s}': inode {ino} out of range"))
}

/// `--pid`: a process that exists now.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let pid = s
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0 && p <= i32::MAX as u32)
        .ok_or_else(|| format!("'{s}' is not a process id"))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("no process has pid {pid}"));
    }
    Ok(pid)
}

/// `--comm`: a command name as the kernel keeps it (at most 15 bytes).
pub fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('\0') {
        return Err(format!("'{s}' is not a command name"));
    }
    if s.len() > 15 {
        let cut = (0..=15).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        return Err(format!(
            "'{s}' is longer than 15 bytes: the kernel keeps only the first 15 of a command \
             name, use '{}'",
            &s[..cut]
        ));
    }
    Ok(s.to_string())
}

/// The kernel's 16-byte, NUL-padded form of a command name.
pub fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = comm.len().min(15);
    out[..n].copy_from_slice(&comm.as_bytes()[..n]);
    out
}
