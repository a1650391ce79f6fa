//! The container's cgroups as berth reads and cleans them, on cgroup v1 (one hierarchy per
//! controller, this machine), v2 (one unified tree) and hybrid (v1 plus an empty `unified`
//! mount): the OOM kill count, and removing what the runtime left. The runtime creates and
//! configures them from the spec; these functions take the cgroupfs root as a parameter so
//! tests run them on a fake tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How the cgroupfs at a root is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One unified hierarchy at the root (`cgroup.controllers` there).
    V2,
    /// Hierarchies per controller (`memory/`, `pids/`, ...), maybe with an `unified/` v2 mount.
    V1,
}

/// The layout of the cgroupfs mounted at `root` (`/sys/fs/cgroup`).
pub fn layout(root: &Path) -> Layout {
    if root.join("cgroup.controllers").exists() {
        Layout::V2
    } else {
        Layout::V1
    }
}

/// Every directory of the cgroup `cgroups_path` (`/berth/<id>`) under `root` that exists.
pub fn dirs(root: &Path, cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    match layout(root) {
        Layout::V2 => vec![root.join(rel)]
            .into_iter()
            .filter(|p| p.is_dir())
            .collect(),
        Layout::V1 => {
            let mut out: Vec<PathBuf> = fs::read_dir(root)
                .map(|rd| {
                    rd.flatten()
                        // Skip the symlinks (cpu -> cpu,cpuacct): one entry per hierarchy.
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path().join(rel))
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            out.sort();
            out
        }
    }
}

/// How many times the kernel's OOM killer struck in the cgroup (v2 `memory.events`, v1
/// `memory.oom_control`), 0 when unknown. Read before the runtime removes the cgroup.
pub fn oom_kills(root: &Path, cgroups_path: &str) -> u64 {
    let rel = cgroups_path.trim_start_matches('/');
    let candidates = match layout(root) {
        Layout::V2 => vec![root.join(rel).join("memory.events")],
        Layout::V1 => vec![
            root.join("memory").join(rel).join("memory.oom_control"),
            root.join("unified").join(rel).join("memory.events"),
        ],
    };
    candidates
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Removes the cgroup's directories that the runtime left (runc leaves the v2 one of an
/// OOM-killed container on a hybrid host). A cgroup still holding processes cannot be removed:
/// its errors are returned; gone already is success.
pub fn remove(root: &Path, cgroups_path: &str) -> Vec<io::Error> {
    let mut errors = Vec::new();
    for d in dirs(root, cgroups_path) {
        // Child cgroups first (runc makes none, but a container may).
        let mut stack = vec![d.clone()];
        let mut order = Vec::new();
        while let Some(p) = stack.pop() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            order.push(p);
        }
        for p in order.into_iter().rev() {
            match fs::remove_dir(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    errors.push(io::Error::new(
                        e.kind(),
                        format!("removing cgroup {}: {e}", p.display()),
                    ));
                }
                _ => {}
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("cgroup.controllers"), "cpu memory pids\n");
        write(
            &r.join("berth/c1/memory.events"),
            "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
        );
        assert_eq!(layout(r), Layout::V2);
        assert_eq!(oom_kills(r, "/berth/c1"), 2);
        assert_eq!(oom_kills(r, "/berth/other"), 0);
        assert_eq!(dirs(r, "/berth/c1"), vec![r.join("berth/c1")]);
        // A fake cgroupfs holds ordinary files, so removal reports the non-empty directory
        // (the kernel's cgroupfs lets an empty cgroup go with its interface files).
        fs::remove_file(r.join("berth/c1/memory.events")).unwrap();
        assert!(remove(r, "/berth/c1").is_empty());
        assert!(!r.join("berth/c1").exists() && r.join("berth").exists());
        assert!(remove(r, "/berth/c1").is_empty(), "gone already is success");
    }

    #[test]
    fn v1_and_hybrid_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            &r.join("memory/berth/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        fs::create_dir_all(r.join("pids/berth/c1")).unwrap();
        fs::create_dir_all(r.join("unified/berth/c1/sub")).unwrap();
        fs::create_dir_all(r.join("cpu,cpuacct/berth")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpu")).unwrap();
        assert_eq!(layout(r), Layout::V1);
        assert_eq!(oom_kills(r, "/berth/c1"), 1);
        assert_eq!(
            dirs(r, "/berth/c1"),
            vec![
                r.join("memory/berth/c1"),
                r.join("pids/berth/c1"),
                r.join("unified/berth/c1")
            ]
        );
        let errors = remove(r, "berth/c1");
        assert_eq!(
            errors.len(),
            1,
            "the memory cgroup holds a (fake) file: {errors:?}"
        );
        assert!(errors[0].to_string().contains("memory/berth/c1"));
        assert!(!r.join("pids/berth/c1").exists());
        assert!(!r.join("unified/berth/c1").exists(), "children first");
        assert!(dirs(r, "").is_empty());
    }
}
