//! Device nodes for a container's `/dev`: the host's own, as `--privileged` gives them (runc's
//! walk of `/dev`, as Docker's: character and block devices only, without `pts`, `shm`,
//! `mqueue`, `fd` and `console`, which the container has its own of).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A device node as the OCI spec lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Path inside the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The most nodes taken from the host (a host has a few hundred).
pub const MAX_DEVICES: usize = 4096;

const SKIPPED_DIRS: [&str; 7] = ["pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"];

/// The device nodes under `dev` (the host's `/dev`), named as under `/dev`, at most
/// [`MAX_DEVICES`], in path order.
pub fn host_devices(dev: &Path) -> io::Result<Vec<HostDevice>> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = vec![dev.to_path_buf()];
    'walk: while let Some(dir) = todo.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            // A directory udev removed meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir != dev => continue,
            Err(e) => return Err(e),
        };
        for e in entries {
            let Ok(e) = e else { continue };
            let path = e.path();
            let rel = path.strip_prefix(dev).unwrap_or(&path);
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                let name = e.file_name();
                if dir.as_path() == dev && SKIPPED_DIRS.iter().any(|s| name == *s) {
                    continue;
                }
                if todo.len() < 256 {
                    todo.push(path);
                }
                continue;
            }
            if !(t.is_char_device() || t.is_block_device()) || rel == Path::new("console") {
                continue;
            }
            // A node removed meanwhile is left out (as runc's walk does).
            let Ok(m) = e.metadata() else { continue };
            let rdev = m.rdev();
            out.push(HostDevice {
                path: Path::new("/dev").join(rel).display().to_string(),
                kind: if t.is_char_device() { 'c' } else { 'b' },
                major: nix::sys::stat::major(rdev),
                minor: nix::sys::stat::minor(rdev),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
            });
            if out.len() >= MAX_DEVICES {
                break 'walk;
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `--device`'s nodes: the device at `host` (links followed, as Docker) shown at `ctr`, or every
/// device under the directory `host` at the same place under `ctr`. Refused when `host` is
/// neither, naming it.
pub fn device_at(host: &Path, ctr: &str) -> io::Result<Vec<HostDevice>> {
    let m = fs::metadata(host)?;
    let t = m.file_type();
    if t.is_dir() {
        let found = host_devices(host)?;
        return Ok(found
            .into_iter()
            .map(|mut d| {
                let rel = d.path.strip_prefix("/dev").unwrap_or(&d.path).to_string();
                d.path = format!("{}{rel}", ctr.trim_end_matches('/'));
                d
            })
            .collect());
    }
    if !(t.is_char_device() || t.is_block_device()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a device node", host.display()),
        ));
    }
    let rdev = m.rdev();
    Ok(vec![HostDevice {
        path: ctr.to_string(),
        kind: if t.is_char_device() { 'c' } else { 'b' },
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_null_device_is_found_and_pts_left_out() {
        let d = host_devices(Path::new("/dev")).unwrap();
        let null = d.iter().find(|d| d.path == "/dev/null").expect("/dev/null");
        assert_eq!((null.kind, null.major, null.minor), ('c', 1, 3));
        assert!(!d.iter().any(|d| d.path.starts_with("/dev/pts/")));
        assert!(!d.iter().any(|d| d.path == "/dev/console"));
        let one = device_at(Path::new("/dev/null"), "/dev/mynull").unwrap();
        assert_eq!(
            (one[0].path.as_str(), one[0].major, one[0].minor),
            ("/dev/mynull", 1, 3)
        );
        let e = device_at(Path::new("/etc/hostname"), "/x")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/etc/hostname is not a device node");
    }
}
