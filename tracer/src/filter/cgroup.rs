//! `--cgroup`: cgroup v2 directories, their ids, and which processes are in them.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    str::FromStr,
};

/// `--cgroup`: a cgroup v2 directory and its id (the directory's inode, what
/// `bpf_get_current_cgroup_id` returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    pub path: PathBuf,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on most systems,
/// `/sys/fs/cgroup/unified` on hybrid ones), from /proc/self/mountinfo.
pub fn cgroup2_root() -> Result<PathBuf, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    info.lines()
        .find_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(unescape_mount))
                .flatten()
        })
        .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
pub(super) fn unescape_mount(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// A directory of the cgroup v2 hierarchy (it has `cgroup.procs`).
fn is_cgroup_dir(path: &Path) -> bool {
    path.is_dir() && path.join("cgroup.procs").exists()
}

impl FromStr for Cgroup {
    type Err = String;

    /// A path (`/sys/fs/cgroup/system.slice/nginx.service`, or relative to the cgroup v2 mount
    /// as /proc/PID/cgroup shows it: `/system.slice/nginx.service`) or a numeric id.
    fn from_str(s: &str) -> Result<Cgroup, String> {
        let root = cgroup2_root()?;
        if let Ok(id) = s.trim().parse::<u64>() {
            return find_cgroup(&root, id)
                .map(|path| Cgroup { id, path })
                .ok_or_else(|| format!("'{s}': no cgroup has id {id} under {}", root.display()));
        }
        let given = PathBuf::from(s);
        let under_root = root.join(s.trim_start_matches('/'));
        let path = if given.is_absolute() && given.starts_with(&root) && is_cgroup_dir(&given) {
            given
        } else if is_cgroup_dir(&under_root) {
            under_root
        } else {
            return Err(format!(
                "'{s}' is not a cgroup v2 directory (looked under {})",
                root.display()
            ));
        };
        let id = std::fs::metadata(&path)
            .map_err(|e| format!("'{s}': {e}"))?
            .ino();
        Ok(Cgroup { id, path })
    }
}

/// The directory whose inode is `id`, searched breadth-first (bounded: a few levels of a large
/// hierarchy are enough for real ids, and a wrong id must not walk forever).
fn find_cgroup(root: &Path, id: u64) -> Option<PathBuf> {
    const MAX_DIRS: usize = 100_000;
    let mut queue = std::collections::VecDeque::from([root.to_path_buf()]);
    let mut seen = 0;
    while let Some(dir) = queue.pop_front() {
        seen += 1;
        if seen > MAX_DIRS {
            return None;
        }
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            return Some(dir);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back(entry.path());
            }
        }
    }
    None
}

/// Is process `pid` in cgroup `id` or below it (its /proc/PID/cgroup path and its ancestors)?
pub fn process_in_cgroup(pid: u32, id: u64) -> bool {
    let Ok(root) = cgroup2_root() else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let mut dir = root.join(rel.trim_start_matches('/'));
    loop {
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            return true;
        }
        if dir == root || !dir.pop() || !dir.starts_with(&root) {
            return false;
        }
    }
}
