//! Waiting for a shim to end without being its parent: a pidfd (pidfd_open(2)) becomes readable
//! when the process exits, whoever started it, so a restarted daemon waits for shims it
//! adopted exactly as for the ones it spawned.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use tokio::io::unix::AsyncFd;

/// A live process to wait for.
#[derive(Debug)]
pub struct ExitWatch {
    fd: AsyncFd<OwnedFd>,
}

impl ExitWatch {
    /// Watches `pid`; `None` when it has already gone.
    pub fn new(pid: i32) -> io::Result<Option<ExitWatch>> {
        // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1; no
        // memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: `owned` is an open descriptor that the AsyncFd owns for its whole life, and
        // OwnedFd::as_raw_fd always returns that same descriptor.
        let fd = unsafe { AsyncFd::register(owned)? };
        Ok(Some(ExitWatch { fd }))
    }

    /// Resolves once the process has exited.
    pub async fn wait(&self) {
        let _ = self.fd.readable().await;
    }

    /// Whether it has exited already.
    pub fn exited(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.fd.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }
}

/// Whether `pid` is a `berth-shim` serving container `id` (guards against PID reuse after a
/// reboot or a long downtime).
pub fn is_shim_of(pid: i32, id: &str) -> bool {
    let Ok(cmdline) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
    else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.first().is_some_and(|a| a.ends_with(b"berth-shim"))
        && args
            .windows(2)
            .any(|w| w[0] == b"--id" && w[1] == id.as_bytes())
}
