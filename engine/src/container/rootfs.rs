//! The mounts berth makes on the host for a container: its root file system (the overlay of its
//! image's snapshots under its own writable layer, at the bundle's `rootfs`), and the `/dev/shm`
//! of a shareable one (a tmpfs at the bundle's `shm`).

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::image::store::snapshots::OverlaySpec;

/// Mounts `spec` at `target` (created when missing).
pub fn mount_overlay(spec: &OverlaySpec, target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(spec.options().as_str()),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mounting the overlay at {}: {e}", target.display()),
        )
    })
}

/// Mounts a tmpfs with `options` at `target` (created when missing), never executable, setuid
/// or a place for device nodes.
pub fn mount_tmpfs(target: &Path, options: &str) -> io::Result<()> {
    fs::create_dir_all(target)?;
    mount(
        Some("shm"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mounting a tmpfs at {}: {e}", target.display()),
        )
    })
}

/// Whether something is mounted at `path`.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// Unmounts `target`; not mounted (or gone) is success.
pub fn unmount(target: &Path) -> io::Result<()> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("unmounting {}: {e}", target.display()),
        )),
    }
}
