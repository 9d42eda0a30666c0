//! Container and Kubernetes pod ids from a process's cgroup path (`/proc/PID/cgroup`), as
//! the runtimes name their cgroups: enough for the Collector's `k8sattributes` processor to
//! add the pod, namespace and labels.

/// What a cgroup path says about the container a process runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerIds {
    /// The runtime's 64-hex-digit container id.
    pub container_id: Option<String>,
    /// The Kubernetes pod's UID, with dashes.
    pub pod_uid: Option<String>,
}

fn hex64(text: &str) -> Option<&str> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
}

/// A container id in one path component: `<id>`, `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
fn container_in(component: &str) -> Option<&str> {
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    let id = stem.rsplit(['-', ':']).next()?;
    hex64(id)
}

/// A pod UID in one component: `pod<uid>` (cgroupfs driver) or
/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd driver).
fn pod_in(component: &str) -> Option<String> {
    let stem = component.strip_suffix(".slice").unwrap_or(component);
    let at = stem.rfind("pod")?;
    if at > 0 && !stem[..at].ends_with('-') {
        return None;
    }
    let uid = stem[at + 3..].replace('_', "-");
    let uuid_shaped = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    uuid_shaped.then_some(uid)
}

/// The ids in a cgroup path; None when it names no container.
pub fn from_cgroup_path(path: &str) -> Option<ContainerIds> {
    let mut ids = ContainerIds::default();
    for component in path.split('/') {
        if let Some(uid) = pod_in(component) {
            ids.pod_uid = Some(uid);
        }
        if let Some(id) = container_in(component) {
            ids.container_id = Some(id.to_owned());
        }
    }
    (ids.container_id.is_some() || ids.pod_uid.is_some()).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    const POD: &str = "8d4c2f9e-1b2a-4c3d-9e8f-7a6b5c4d3e2f";

    #[test]
    fn runtimes_and_drivers() {
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            POD.replace('-', "_")
        );
        let cgroupfs = format!("/kubepods/besteffort/pod{POD}/{ID}");
        for path in [systemd, cgroupfs] {
            let ids = from_cgroup_path(&path).unwrap();
            assert_eq!(ids.container_id.as_deref(), Some(ID), "{path}");
            assert_eq!(ids.pod_uid.as_deref(), Some(POD), "{path}");
        }
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/kubepods.slice/crio-{ID}.scope"),
        ] {
            let ids = from_cgroup_path(&path).unwrap();
            assert_eq!(ids.container_id.as_deref(), Some(ID), "{path}");
            assert_eq!(ids.pod_uid, None);
        }
        assert_eq!(
            from_cgroup_path("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        assert_eq!(from_cgroup_path("/system.slice/podman.service"), None);
        assert_eq!(from_cgroup_path("/"), None);
    }
}
