//! A container's network namespace as a file (`<exec-root>/netns/<id>`): made before the
//! container starts, so its interfaces, addresses, routes and DNS listener are in place when
//! its process runs, and kept by a bind mount that outlives every process, daemon included.

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Creates a new network namespace bound at `path` (which must not exist).
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let target = path.to_path_buf();
    let made = std::thread::Builder::new()
        .name("berth-netns-new".into())
        .spawn(move || -> io::Result<()> {
            // Only this short-lived thread moves into the new namespace.
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })?
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?;
    if let Err(e) = made {
        let _ = fs::remove_file(path);
        return Err(io::Error::new(
            e.kind(),
            format!("network namespace {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Unbinds and deletes the namespace file; gone already is success.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("unmounting {}: {e}", path.display()),
            ));
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
