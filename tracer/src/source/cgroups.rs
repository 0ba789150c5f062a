//! cgroup ids, as the kernel reports them with each event, turned into the names operators use
//! ([`CgroupNames`]: systemd unit, container, pod). A cgroup v2 id is the inode of its folder
//! under the cgroup2 mount, so one walk of that tree maps every id to its path; an id not
//! found starts a new walk, at most one every few seconds.
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    filter::cgroup2_root,
    model::cgroup_names::{CgroupNames, names_of},
    stats::closes::CloseRow,
};

/// Folders a walk visits at most: a host has hundreds, a busy Kubernetes node thousands.
const MAX_CGROUPS: usize = 100_000;
const REWALK_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct CgroupNamer {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    walked_at: Option<Instant>,
}

impl CgroupNamer {
    /// A namer for this host's cgroup2 hierarchy (names nothing where none is mounted).
    pub fn new() -> CgroupNamer {
        CgroupNamer {
            root: cgroup2_root().ok(),
            ..CgroupNamer::default()
        }
    }

    /// The path of cgroup `id` from the hierarchy's root (`/system.slice/nginx.service`).
    fn path(&mut self, id: u64) -> Option<&str> {
        if id == 0 {
            return None;
        }
        let due = self.walked_at.is_none_or(|at| at.elapsed() >= REWALK_AFTER);
        if !self.paths.contains_key(&id) && due {
            self.walk();
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// The names of cgroup `id`; empty when it is unknown (gone, or no cgroup2).
    pub fn names(&mut self, id: u64) -> CgroupNames {
        self.path(id).map(names_of).unwrap_or_default()
    }

    /// Fills in the names of each row's owner cgroup.
    pub fn name_rows(&mut self, rows: &mut [CloseRow]) {
        for row in rows {
            row.names = self.names(row.cgroup_id);
        }
    }

    fn walk(&mut self) {
        self.walked_at = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        self.paths.clear();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            if self.paths.len() >= MAX_CGROUPS {
                log::debug!("cgroup names: stopped after {MAX_CGROUPS} cgroups");
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            self.paths.insert(meta.ino(), relative(&root, &dir));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
    }
}

/// `/a/b` for `root/a/b`, `/` for the root itself.
fn relative(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    format!("/{}", rel.display())
}

/// The cgroup v2 path in the text of `/proc/PID/cgroup` (its `0::/path` line).
pub fn path_in(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim_end)
        .filter(|p| !p.is_empty())
}

/// The names of the cgroup process `pid` is in now; empty when it is gone or unreadable.
pub fn names_of_pid(pid: u32) -> CgroupNames {
    if pid == 0 {
        return CgroupNames::default();
    }
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| path_in(&text).map(names_of))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_path_of_proc_cgroup_and_this_process_names() {
        let text = "12:cpu:/old\n0::/system.slice/nginx.service\n";
        assert_eq!(path_in(text), Some("/system.slice/nginx.service"));
        assert_eq!(path_in("1:name=systemd:/x\n"), None);
        assert_eq!(path_in("0::\n"), None);
        assert_eq!(names_of_pid(0), CgroupNames::default());
        assert_eq!(names_of_pid(u32::MAX), CgroupNames::default());
        // This process is in some cgroup: whatever it is named, reading it does not fail.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = path_in(&own).unwrap_or("/");
        assert_eq!(names_of_pid(std::process::id()), names_of(path));
    }
}
