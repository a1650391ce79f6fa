//! Image work at background priority: unpacking, compressing and hashing layers (load, save,
//! import, pull) is CPU-bound and can take seconds; on a small host it would otherwise take
//! the cores the API needs, and `ps` would wait behind a `docker load`. The thread doing it
//! lowers its own scheduling priority (nice 10, per thread: Linux applies `setpriority` with a
//! thread ID to that thread only) for as long as the guard lives.

/// The nice value image work runs at.
const NICE: i32 = 10;

/// Lowers the calling thread's priority until dropped. Call it only on a thread the work owns
/// (a blocking-pool thread, a command-line process), never on an async worker.
#[derive(Debug)]
pub struct Background {
    tid: libc::id_t,
    before: Option<i32>,
}

/// Enters background priority on this thread.
pub fn enter() -> Background {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    // getpriority returns the nice value, which may legitimately be -1: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: plain syscalls on this thread's ID; no memory is passed.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    let before = (now != -1 || nix::errno::Errno::last_raw() == 0).then_some(now);
    // SAFETY: as above.
    let lowered = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, NICE.max(now)) } == 0;
    Background {
        tid,
        before: before.filter(|_| lowered),
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(n) = self.before {
            // Raising it back needs CAP_SYS_NICE (berthd runs as root); a thread that cannot
            // stays lower, which costs only its own speed.
            // SAFETY: a plain syscall on this thread's ID.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, self.tid, n) };
        }
    }
}

#[cfg(test)]
mod tests {
    fn nice() -> i32 {
        // SAFETY: plain syscalls on this thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn lowers_this_thread_only_and_restores_it() {
        std::thread::spawn(|| {
            let start = nice();
            let other = std::thread::spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                nice()
            });
            {
                let _bg = super::enter();
                assert_eq!(nice(), super::NICE.max(start));
                assert_eq!(other.join().unwrap(), start, "another thread was lowered");
            }
            if nix::unistd::geteuid().is_root() {
                assert_eq!(nice(), start, "restored");
            }
        })
        .join()
        .unwrap();
    }
}
