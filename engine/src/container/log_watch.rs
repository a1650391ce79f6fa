//! Wakes `logs -f` followers (and a build's step output) when a log may have changed, from one
//! inotify instance for the whole process: the kernel allows a user 128 instances but
//! thousands of watches, so followers share the instance, and the followers of one container
//! share its directory's watch. A thread of its own reads the instance (blocking: it sleeps
//! until the kernel has events, never polls) and bumps each watched directory's change
//! counter, which followers await on a [`tokio::sync::watch`] channel from any runtime.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::sync::watch;

/// What a directory's watch is for.
#[derive(Debug)]
struct Watched {
    wd: WatchDescriptor,
    /// How many [`LogWatch`]es use it.
    users: usize,
    changes: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Table {
    by_dir: HashMap<PathBuf, Watched>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
}

#[derive(Debug)]
struct Shared {
    ino: Inotify,
    table: Mutex<Table>,
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reader thread: every event bumps its directory's counter; an overflow bumps all.
    fn read_forever(&self) {
        loop {
            let events = match self.ino.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "reading the log watch's inotify instance; log followers wake only on state changes from now on");
                    return;
                }
            };
            let mut t = self.table();
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    for w in t.by_dir.values() {
                        w.changes.send_modify(|n| *n += 1);
                    }
                    continue;
                }
                if let Some(w) = t.by_wd.get(&ev.wd).and_then(|d| t.by_dir.get(d)) {
                    w.changes.send_modify(|n| *n += 1);
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory went (its container removed): the kernel dropped the watch.
                    // A directory made again at that path gets a watch of its own.
                    if let Some(dir) = t.by_wd.remove(&ev.wd) {
                        if t.by_dir.get(&dir).is_some_and(|w| w.wd == ev.wd) {
                            t.by_dir.remove(&dir);
                        }
                    }
                }
            }
        }
    }
}

fn shared() -> io::Result<&'static Arc<Shared>> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    if let Some(s) = SHARED.get() {
        return Ok(s);
    }
    // Blocking reads: the thread sleeps in the kernel until there are events.
    let ino = Inotify::init(InitFlags::IN_CLOEXEC)?;
    let made = Arc::new(Shared {
        ino,
        table: Mutex::default(),
    });
    let mut ours = false;
    let s = SHARED.get_or_init(|| {
        ours = true;
        made
    });
    if ours {
        let reader = s.clone();
        std::thread::Builder::new()
            .name("berth-log-watch".into())
            .spawn(move || reader.read_forever())?;
    }
    Ok(s)
}

/// Wakes a follower when its log may have changed: writes in the log's directory, and the new
/// file a rotation creates. Made before the follower reads, it misses nothing written after.
#[derive(Debug)]
pub struct LogWatch {
    /// The table's key of its watch, and the watch (an entry of the same key with another
    /// watch is a later one: the directory was made again).
    dir: PathBuf,
    wd: WatchDescriptor,
    changes: watch::Receiver<u64>,
}

impl LogWatch {
    /// Watches the directory of the log at `path`.
    pub fn new(path: &Path) -> io::Result<LogWatch> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let s = shared()?;
        let mut t = s.table();
        if let Some(w) = t.by_dir.get_mut(&dir) {
            w.users += 1;
            return Ok(LogWatch {
                changes: w.changes.subscribe(),
                wd: w.wd,
                dir,
            });
        }
        let wd = s.ino.add_watch(
            &dir,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )?;
        // Another path to the same directory: the kernel gave its watch back; share it.
        if let Some(known) = t.by_wd.get(&wd).cloned() {
            if let Some(w) = t.by_dir.get_mut(&known) {
                w.users += 1;
                return Ok(LogWatch {
                    changes: w.changes.subscribe(),
                    wd,
                    dir: known,
                });
            }
        }
        let (changes, rx) = watch::channel(0);
        t.by_wd.insert(wd, dir.clone());
        t.by_dir.insert(
            dir.clone(),
            Watched {
                wd,
                users: 1,
                changes,
            },
        );
        Ok(LogWatch {
            dir,
            wd,
            changes: rx,
        })
    }

    /// Resolves once something changed since the last call (or since the watch was made).
    pub async fn changed(&mut self) -> io::Result<()> {
        self.changes
            .changed()
            .await
            .map_err(|_| io::Error::other("the log watch ended"))
    }

    /// How many watches share the directory `dir`'s inotify watch (`None`: not watched).
    pub fn watchers(dir: &Path) -> Option<usize> {
        shared().ok()?.table().by_dir.get(dir).map(|w| w.users)
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        let Ok(s) = shared() else { return };
        let mut t = s.table();
        let Some(w) = t.by_dir.get_mut(&self.dir).filter(|w| w.wd == self.wd) else {
            // Its directory went and the watch with it.
            return;
        };
        w.users -= 1;
        if w.users > 0 {
            return;
        }
        let wd = w.wd;
        t.by_dir.remove(&self.dir);
        t.by_wd.remove(&wd);
        // Already gone when the directory was removed (the kernel dropped the watch).
        let _ = s.ino.rm_watch(wd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn followers_share_one_watch_per_directory_and_each_is_woken() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, "").unwrap();
        let mut watches: Vec<LogWatch> = (0..300).map(|_| LogWatch::new(&log).unwrap()).collect();
        assert_eq!(
            LogWatch::watchers(dir.path()),
            Some(300),
            "300 followers share one watch (more than the 128 instances a user may have)"
        );
        let quiet = tokio::time::timeout(Duration::from_millis(50), watches[0].changed()).await;
        assert!(quiet.is_err(), "no change, no wake-up");
        std::fs::write(&log, "line\n").unwrap();
        for w in &mut watches {
            tokio::time::timeout(Duration::from_secs(5), w.changed())
                .await
                .expect("every follower is woken")
                .unwrap();
        }
        // Another directory: a watch of its own, woken by its own writes only.
        let other = tempfile::tempdir().unwrap();
        let mut o = LogWatch::new(&other.path().join("x.log")).unwrap();
        std::fs::write(&log, "more\n").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), o.changed())
                .await
                .is_err()
        );
        std::fs::write(other.path().join("x.log"), "x\n").unwrap();
        tokio::time::timeout(Duration::from_secs(5), o.changed())
            .await
            .expect("woken by its directory")
            .unwrap();
        drop(watches);
        drop(o);
        // A directory removed and made again at the same path: a new watch, woken again.
        let gone = tempfile::tempdir().unwrap();
        let path = gone.path().join("c");
        std::fs::create_dir(&path).unwrap();
        let old = LogWatch::new(&path.join("c-json.log")).unwrap();
        std::fs::remove_dir(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while LogWatch::watchers(&path).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped watch stayed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::create_dir(&path).unwrap();
        let mut new = LogWatch::new(&path.join("c-json.log")).unwrap();
        drop(old);
        assert_eq!(
            LogWatch::watchers(&path),
            Some(1),
            "the old watch's drop left it alone"
        );
        std::fs::write(path.join("c-json.log"), "x\n").unwrap();
        tokio::time::timeout(Duration::from_secs(5), new.changed())
            .await
            .expect("the new directory's watch wakes")
            .unwrap();
        assert_eq!(
            LogWatch::watchers(dir.path()),
            None,
            "the watch went with its users"
        );
        assert_eq!(LogWatch::watchers(other.path()), None);
    }
}
