//! `docker diff` (`GET /containers/{id}/changes`): what a container changed in its file system,
//! read from its overlay's upper (writable) directory, as Docker's overlay2 driver reports it:
//! a whiteout is a deletion (`D`), a path the image's layers also have is a change (`C`), any
//! other an addition (`A`).
//!
//! [`walk_upper`] reads the upper directory on the host without following the container's
//! links (every directory is opened `O_NOFOLLOW` relative to its parent's descriptor) and stops
//! at [`MAX_ENTRIES`]; [`classify`] is pure. berth has no init layer: the mount points the
//! runtime makes (`/proc`, `/dev`, `/etc/hosts`, volume targets, ...) are hidden, with the
//! directories that changed only because of them, so the list is what Docker shows.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag, fstatat};

/// Paths [`walk_upper`] reads at most (a container can create millions of files).
pub const MAX_ENTRIES: usize = 200_000;

/// Bytes of path names [`walk_upper`] holds at most (deep paths are long).
pub const MAX_PATH_BYTES: usize = 64 << 20;

/// Docker's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `C`, Kind 0.
    Modified,
    /// `A`, Kind 1.
    Added,
    /// `D`, Kind 2.
    Deleted,
}

impl ChangeKind {
    /// The API's number for it.
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One path of the upper directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpperEntry {
    /// Container path (`/etc/passwd`).
    pub path: String,
    /// An overlay whiteout (a character device 0/0): the lower path is deleted.
    pub whiteout: bool,
    /// An opaque directory (`trusted.overlay.opaque=y`): it replaces the lower one whole.
    pub opaque: bool,
    /// Some name on the way is not UTF-8: `path` shows it with replacement characters, so it
    /// cannot be opened again by it.
    pub lossy: bool,
}

/// Why the changes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// Deeper than [`MAX_DEPTH`] directories.
    #[error(
        "the container's changes are nested deeper than {MAX_DEPTH} directories; docker diff reads at most that deep"
    )]
    TooDeep,
    /// More than [`MAX_ENTRIES`] paths, or more than [`MAX_PATH_BYTES`] of them.
    #[error(
        "the container changed more than {MAX_ENTRIES} paths (or {MAX_PATH_BYTES} bytes of path names); berth reads at most that many"
    )]
    TooMany,
    /// A name that is not UTF-8 where it must be written again (a commit's layer).
    #[error("the container's change {0:?} has a name that is not UTF-8, which berth cannot commit")]
    NotUtf8(String),
    /// A system call.
    #[error("reading the container's changes at {path}: {source}")]
    Io {
        /// Host path.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

fn io_at(path: &str) -> impl Fn(nix::errno::Errno) -> ChangesError + '_ {
    move |e| ChangesError::Io {
        path: path.to_string(),
        source: e.into(),
    }
}

/// Directory levels [`walk_upper`] descends at most.
pub const MAX_DEPTH: usize = 256;

/// One directory being read: its descriptor, its container path, the names left (sorted, last
/// first).
struct Frame {
    fd: OwnedFd,
    prefix: String,
    lossy: bool,
    names: Vec<std::ffi::CString>,
}

/// The names in directory `dir`, sorted, last first; `budget` is how many more may be held.
fn names_of(dir: Dir, budget: usize, shown: &str) -> Result<(OwnedFd, Vec<CString>), ChangesError> {
    let mut dir = dir;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io_at(shown))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if names.len() >= budget {
            return Err(ChangesError::TooMany);
        }
        names.push(entry.file_name().to_owned());
    }
    names.sort_unstable_by(|a, b| b.cmp(a));
    let fd = dir
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| ChangesError::Io {
            path: shown.to_string(),
            source,
        })?;
    Ok((fd, names))
}

/// Every path of the upper directory `upper`, parents before children, depth first: one
/// descriptor open per level (at most [`MAX_DEPTH`]), at most [`MAX_ENTRIES`] paths held.
pub fn walk_upper(upper: &Path) -> Result<Vec<UpperEntry>, ChangesError> {
    let shown = upper.display().to_string();
    let root = match Dir::open(
        upper,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        // Never started, nothing written.
        Err(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&shown)(e)),
    };
    let mut out: Vec<UpperEntry> = Vec::new();
    let (fd, names) = names_of(root, MAX_ENTRIES, &shown)?;
    let mut stack = vec![Frame {
        fd,
        prefix: String::new(),
        lossy: false,
        names,
    }];
    let mut bytes = 0usize;
    let mut pending = stack[0].names.len();
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.pop() else {
            stack.pop();
            continue;
        };
        pending -= 1;
        let path = format!(
            "{}/{}",
            frame.prefix,
            String::from_utf8_lossy(name.to_bytes())
        );
        let st = match fstatat(
            frame.fd.as_fd(),
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            // Removed while read (a running container): not a change any more.
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(io_at(&shown)(e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        bytes += path.len();
        if bytes > MAX_PATH_BYTES {
            return Err(ChangesError::TooMany);
        }
        let mut entry = UpperEntry {
            lossy: frame.lossy || std::str::from_utf8(name.to_bytes()).is_err(),
            path,
            whiteout: kind == SFlag::S_IFCHR && st.st_rdev == 0,
            opaque: false,
        };
        let mut sub = None;
        if kind == SFlag::S_IFDIR {
            match Dir::openat(
                frame.fd.as_fd(),
                name.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(d) => {
                    entry.opaque = is_opaque(d.as_fd());
                    sub = Some(d);
                }
                // Swapped for a link or removed meanwhile: listed, not entered.
                Err(
                    nix::errno::Errno::ENOENT
                    | nix::errno::Errno::ELOOP
                    | nix::errno::Errno::ENOTDIR,
                ) => {}
                Err(e) => return Err(io_at(&shown)(e)),
            }
        }
        let prefix = entry.path.clone();
        let lossy = entry.lossy;
        out.push(entry);
        if let Some(d) = sub {
            if stack.len() >= MAX_DEPTH {
                return Err(ChangesError::TooDeep);
            }
            let budget = MAX_ENTRIES.saturating_sub(out.len() + pending);
            let (fd, names) = names_of(d, budget, &shown)?;
            pending += names.len();
            stack.push(Frame {
                fd,
                prefix,
                lossy,
                names,
            });
        }
    }
    Ok(out)
}

/// Whether the directory open at `fd` carries overlayfs's opaque mark.
fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let name = CString::new("trusted.overlay.opaque").expect("no NUL");
    let mut buf = [0u8; 4];
    // SAFETY: fgetxattr writes at most buf.len() bytes into buf, which outlives the call.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// The image's layers (`lowers`, topmost first), each opened once.
pub fn open_lowers(lowers: &[PathBuf]) -> Vec<OwnedFd> {
    lowers
        .iter()
        .filter_map(|l| {
            std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(l)
                .ok()
                .map(OwnedFd::from)
        })
        .collect()
}

/// Whether container path `path` exists in one of the layers opened by [`open_lowers`],
/// resolved inside each layer and never through a link in it.
pub fn in_lowers(lowers: &[OwnedFd], path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    lowers.iter().any(|root| {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(root, rel, how).is_ok()
    })
}

/// The changes of `entries` (from [`walk_upper`]), sorted by path: `exists` says whether a path
/// is in the image's layers; paths at or under one of `hidden` (the runtime's mount points) are
/// left out, and so are changed directories whose only changes were hidden.
pub fn classify(
    entries: &[UpperEntry],
    exists: impl Fn(&str) -> bool,
    hidden: &[String],
) -> Vec<(String, ChangeKind)> {
    use std::collections::HashSet;
    let hidden: HashSet<&str> = hidden.iter().map(|h| h.trim_end_matches('/')).collect();
    // Every path's ancestors, shortest last: `/a/b/c` gives `/a/b`, `/a`.
    fn ancestors(p: &str) -> impl Iterator<Item = &str> {
        let mut cur = p;
        std::iter::from_fn(move || {
            let i = cur.rfind('/').filter(|&i| i > 0)?;
            cur = &cur[..i];
            Some(cur)
        })
    }
    let is_hidden = |p: &str| hidden.contains(p) || ancestors(p).any(|a| hidden.contains(a));
    // Directories replaced whole: nothing under them comes from the image.
    let opaque: HashSet<&str> = entries
        .iter()
        .filter(|e| e.opaque)
        .map(|e| e.path.as_str())
        .collect();
    let under_opaque = |p: &str| ancestors(p).any(|a| opaque.contains(a));
    let mut out: Vec<(String, ChangeKind)> = Vec::new();
    // Directories above a hidden mount point.
    let mut above_hidden: HashSet<&str> = HashSet::new();
    for e in entries {
        if is_hidden(&e.path) {
            above_hidden.extend(ancestors(&e.path));
            continue;
        }
        if e.whiteout {
            out.push((e.path.clone(), ChangeKind::Deleted));
            continue;
        }
        let kind = if !under_opaque(&e.path) && exists(&e.path) {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push((e.path.clone(), kind));
    }
    out.sort();
    // A changed directory stays when something shown is under it, or when it is not only
    // the parent of hidden mount points (its own mode or owner changed, or it holds nothing
    // hidden either).
    let above_shown: HashSet<String> = out
        .iter()
        .flat_map(|(p, _)| ancestors(p).map(str::to_string))
        .collect();
    out.retain(|(p, k)| {
        *k != ChangeKind::Modified
            || !above_hidden.contains(p.as_str())
            || above_shown.contains(p.as_str())
    });
    out
}

/// What `docker diff` of one container reads, planned under the engine's lock and read
/// without it ([`ChangesPlan::run`]).
#[derive(Debug, Clone)]
pub struct ChangesPlan {
    upper: PathBuf,
    lowers: Vec<PathBuf>,
    hidden: Vec<String>,
}

/// A path of a commit's layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Container path.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
    /// A directory that replaces the image's whole.
    pub opaque: bool,
}

impl ChangesPlan {
    /// The plan for writable directory `upper` over image layers `lowers` (topmost first),
    /// with the runtime's mount points `hidden`.
    pub fn new(upper: PathBuf, lowers: Vec<PathBuf>, hidden: Vec<String>) -> ChangesPlan {
        ChangesPlan {
            upper,
            lowers,
            hidden,
        }
    }

    /// Reads the changes (blocking: a walk of the container's writable layer).
    pub fn run(&self) -> Result<Vec<(String, ChangeKind)>, ChangesError> {
        let entries = walk_upper(&self.upper)?;
        let lowers = open_lowers(&self.lowers);
        Ok(classify(&entries, |p| in_lowers(&lowers, p), &self.hidden))
    }

    /// The paths `docker commit` puts in its layer: the ones [`ChangesPlan::run`] lists.
    pub fn layer_entries(&self) -> Result<Vec<LayerEntry>, ChangesError> {
        let entries = walk_upper(&self.upper)?;
        let lowers = open_lowers(&self.lowers);
        let opaque: std::collections::HashSet<&str> = entries
            .iter()
            .filter(|e| e.opaque)
            .map(|e| e.path.as_str())
            .collect();
        let lossy: std::collections::HashSet<&str> = entries
            .iter()
            .filter(|e| e.lossy)
            .map(|e| e.path.as_str())
            .collect();
        classify(&entries, |p| in_lowers(&lowers, p), &self.hidden)
            .into_iter()
            .map(|(path, kind)| {
                // Written again by name: a name shown lossily would be a different file.
                if lossy.contains(path.as_str()) {
                    return Err(ChangesError::NotUtf8(path));
                }
                Ok(LayerEntry {
                    opaque: opaque.contains(path.as_str()),
                    path,
                    kind,
                })
            })
            .collect()
    }

    /// The container's writable directory.
    pub fn upper(&self) -> &Path {
        &self.upper
    }
}

impl super::Engine {
    /// Plans `docker diff` of container `what`.
    pub fn changes_plan(&self, what: &str) -> Result<ChangesPlan, super::ContainerError> {
        let c = self.get(what)?;
        let overlay = self.overlay_of(c)?;
        let mut hidden: Vec<String> = [
            "/proc",
            "/dev",
            "/sys",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            super::start::INIT_IN_CONTAINER,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        hidden.extend(c.mounts.iter().map(|m| m.destination.clone()));
        hidden.extend(c.options.tmpfs.keys().cloned());
        Ok(ChangesPlan {
            upper: overlay.upper,
            lowers: overlay.lower,
            hidden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str) -> UpperEntry {
        UpperEntry {
            path: path.into(),
            whiteout: false,
            opaque: false,
            lossy: false,
        }
    }

    #[test]
    fn as_docker_lists_them() {
        let entries = vec![
            e("/etc"),
            e("/etc/hosts"),
            e("/etc/resolv.conf"),
            e("/proc"),
            e("/tmp"),
            e("/tmp/new"),
            UpperEntry {
                whiteout: true,
                ..e("/bin/ls")
            },
            e("/bin"),
            UpperEntry {
                opaque: true,
                ..e("/var")
            },
            e("/var/lib"),
            e("/data"),
            e("/data/x"),
        ];
        let lower = [
            "/etc",
            "/etc/hosts",
            "/tmp",
            "/bin",
            "/bin/ls",
            "/var",
            "/var/lib",
        ];
        let hidden = [
            "/proc".to_string(),
            "/etc/hosts".to_string(),
            "/etc/resolv.conf".to_string(),
            "/data".to_string(),
        ];
        let got = classify(&entries, |p| lower.contains(&p), &hidden);
        assert_eq!(
            got,
            [
                ("/bin".to_string(), ChangeKind::Modified),
                ("/bin/ls".to_string(), ChangeKind::Deleted),
                ("/tmp".to_string(), ChangeKind::Modified),
                ("/tmp/new".to_string(), ChangeKind::Added),
                ("/var".to_string(), ChangeKind::Modified),
                // Under an opaque directory nothing comes from the image.
                ("/var/lib".to_string(), ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn walks_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path().join("upper");
        std::fs::create_dir_all(up.join("a/b")).unwrap();
        std::fs::write(up.join("a/b/f"), b"x").unwrap();
        // A link to the host's root: listed, never entered.
        std::os::unix::fs::symlink("/", up.join("escape")).unwrap();
        let paths: Vec<String> = walk_upper(&up)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(sorted, ["/a", "/a/b", "/a/b/f", "/escape"]);
        assert!(walk_upper(&d.path().join("missing")).unwrap().is_empty());
        let lower = d.path().join("lower");
        std::fs::create_dir_all(lower.join("a")).unwrap();
        std::os::unix::fs::symlink("/etc", lower.join("l")).unwrap();
        let lowers = open_lowers(std::slice::from_ref(&lower));
        assert!(in_lowers(&lowers, "/a"));
        assert!(in_lowers(&lowers, "/l"));
        // Never through a link in the layer.
        assert!(!in_lowers(&lowers, "/l/passwd"));
        assert!(!in_lowers(&lowers, "/a/b"));
        // Deeper than MAX_DEPTH: refused, not followed down.
        let mut deep = up.join("deep");
        for _ in 0..MAX_DEPTH {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        assert!(matches!(walk_upper(&up), Err(ChangesError::TooDeep)));
    }
}
