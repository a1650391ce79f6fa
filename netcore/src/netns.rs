//! Doing something inside another network namespace without moving the caller: a short-lived
//! thread enters the namespace, runs the closure and exits. Sockets made there belong to that
//! namespace for their whole life, wherever they are used afterwards, so one process (and one
//! tokio runtime) can serve every container namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// Runs `f` on a fresh thread that has entered the network namespace at `path`
/// (`/run/netns/NAME` or `/proc/PID/ns/net`) and returns what it returned. The calling thread
/// never changes namespace.
pub async fn run_in<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let ns = File::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {}: {e}", path.display()),
        )
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let res = setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| f());
            let _ = tx.send(res);
        })?;
    rx.await
        .map_err(|_| io::Error::other("namespace thread exited without a result"))?
}
