//! The names operators use for a process's cgroup: its systemd unit (`nginx.service`), its
//! container (docker, containerd, CRI-O, podman: the 12-character short id) and its
//! Kubernetes pod uid, read from the cgroup v2 path in the common layouts of the systemd and
//! cgroupfs drivers.
use serde::{Deserialize, Serialize};

/// What a cgroup path says about its processes; each part absent when the layout has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CgroupNames {
    /// The innermost systemd service or scope that is not a container's (`nginx.service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The container's short id (the first 12 hex digits, as `docker ps` shows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The Kubernetes pod uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl CgroupNames {
    /// `nginx.service`, `container 3f2a9c1b7d4e`, `pod 1b2c…/container 3f2a9c1b7d4e`, or "".
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pod) = &self.pod {
            parts.push(format!("pod {pod}"));
        }
        if let Some(container) = &self.container {
            parts.push(format!("container {container}"));
        }
        if let Some(unit) = &self.unit {
            parts.push(unit.clone());
        }
        parts.join(" ")
    }
}

/// Container scopes of the systemd driver: `<prefix><64 hex>.scope`.
const CONTAINER_SCOPES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];
const SHORT_ID: usize = 12;

fn hex_id(s: &str) -> Option<&str> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

fn short(id: &str) -> String {
    id[..SHORT_ID].to_string()
}

/// A container id in one path component, in either driver's layout.
fn container_of(component: &str) -> Option<String> {
    if let Some(scope) = component.strip_suffix(".scope") {
        return CONTAINER_SCOPES
            .iter()
            .find_map(|p| scope.strip_prefix(p))
            .and_then(hex_id)
            .map(short);
    }
    hex_id(component).map(short)
}

/// A pod uid in one path component: `kubepods-burstable-pod<uid>.slice` (systemd driver, `_`
/// for `-` in the uid) or `pod<uid>` (cgroupfs driver).
fn pod_of(component: &str) -> Option<String> {
    let uid = match component.strip_suffix(".slice") {
        Some(slice) if slice.starts_with("kubepods") => slice.rsplit_once("-pod")?.1,
        Some(_) => return None,
        None => component.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    let ok = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// The names in `path`, a cgroup v2 path from the hierarchy's root (`/system.slice/x.service`).
pub fn names_of(path: &str) -> CgroupNames {
    let mut names = CgroupNames::default();
    let under_kubepods = path.contains("kubepods");
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if let Some(id) = container_of(component) {
            names.container = Some(id);
        } else if let Some(uid) = pod_of(component).filter(|_| under_kubepods) {
            names.pod = Some(uid);
        } else if component.ends_with(".service") || component.ends_with(".scope") {
            names.unit = Some(component.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    const UID: &str = "1b2c3d4e-5f60-4718-93a4-b5c6d7e8f90a";

    fn names(unit: Option<&str>, container: Option<&str>, pod: Option<&str>) -> CgroupNames {
        CgroupNames {
            unit: unit.map(str::to_string),
            container: container.map(str::to_string),
            pod: pod.map(str::to_string),
        }
    }

    #[test]
    fn systemd_units_and_user_sessions() {
        assert_eq!(
            names_of("/system.slice/nginx.service"),
            names(Some("nginx.service"), None, None)
        );
        assert_eq!(
            names_of("/user.slice/user-1000.slice/session-3.scope"),
            names(Some("session-3.scope"), None, None)
        );
        assert_eq!(names_of("/"), CgroupNames::default());
        assert_eq!(
            names_of("/init.scope"),
            names(Some("init.scope"), None, None)
        );
    }

    #[test]
    fn container_scopes_of_each_runtime() {
        for prefix in CONTAINER_SCOPES {
            let path = format!("/system.slice/{prefix}{ID}.scope");
            assert_eq!(
                names_of(&path),
                names(None, Some("3f2a9c1b7d4e"), None),
                "{path}"
            );
        }
        // The cgroupfs driver: the id alone.
        assert_eq!(
            names_of(&format!("/docker/{ID}")),
            names(None, Some("3f2a9c1b7d4e"), None)
        );
        // Not 64 hex digits: a unit like any other.
        assert_eq!(
            names_of("/system.slice/docker-compose.scope"),
            names(Some("docker-compose.scope"), None, None)
        );
    }

    #[test]
    fn kubernetes_pods_with_both_drivers() {
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/\
             cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let expected = names(None, Some("3f2a9c1b7d4e"), Some(UID));
        assert_eq!(names_of(&systemd), expected);
        let cgroupfs = format!("/kubepods/besteffort/pod{UID}/{ID}");
        assert_eq!(names_of(&cgroupfs), expected);
        assert_eq!(
            expected.label(),
            format!("pod {UID} container 3f2a9c1b7d4e")
        );
        // A `pod...` folder outside kubepods is not a pod.
        assert_eq!(names_of(&format!("/pod{UID}")), CgroupNames::default());
    }
}
