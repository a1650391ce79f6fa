//! `docker cp`'s file system side: a container's files (its root file system plus its volume
//! and bind mounts) statted, archived into a tar stream, or extracted from one.
//!
//! Pure parts: [`clean`] (Docker's lexical path clean, keeping a trailing `/.`), [`locate`]
//! (which root a container path lives under: the rootfs or the mount whose destination is its
//! longest prefix) and [`PathStat`]s (Docker's `X-Docker-Container-Path-Stat` JSON).
//!
//! Nothing here follows a link out of the container: lookups go through `openat2` with
//! `RESOLVE_IN_ROOT` from a descriptor of the root (a link to `/../../etc` resolves to the
//! container's own `/etc`), the archive walk opens every entry by descriptor with `O_NOFOLLOW`,
//! and extraction runs on a thread of its own that has `chroot`ed into the target directory
//! (after `unshare(CLONE_FS)`, so only that thread is confined), as Docker's chrootarchive does.
//!
//! A stopped container's overlay is mounted for the operation on a private directory, opened
//! and unmounted at once (lazily: the kernel keeps it while the descriptors are open), so
//! nothing is left mounted whatever happens to the operation.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_api::archive::PathStat;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use super::state::Status;
use super::{ContainerError, Engine, io_err, rootfs};
use crate::image::layer::{ExtractOptions, LayerError};
use crate::runtime::oci::{OciRuntime, RuncLike};

/// The longest container path `docker cp` archives (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;

/// Why a copy to or from a container failed; names the path and the container.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Nothing at the path (Docker's wording).
    #[error("Could not find the file {path} in container {container}")]
    NotFound {
        /// The path in the container.
        path: String,
        /// The container's name.
        container: String,
    },
    /// The extraction point is not a directory.
    #[error("extraction point {path} in container {container} is not a directory")]
    NotDirectory {
        /// The path in the container.
        path: String,
        /// The container's name.
        container: String,
    },
    /// The path is on a read-only root file system or mount.
    #[error("cannot copy to {path} in container {container}: {what} is marked read-only")]
    ReadOnly {
        /// The path in the container.
        path: String,
        /// The container's name.
        container: String,
        /// `container rootfs` or `mounted volume`.
        what: &'static str,
    },
    /// The archive could not be extracted.
    #[error("extracting into {path} in container {container}: {source}")]
    Extract {
        /// The path in the container.
        path: String,
        /// The container's name.
        container: String,
        /// What the extraction said.
        source: LayerError,
    },
    /// A system call failed.
    #[error("{what} {path} in container {container}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path in the container.
        path: String,
        /// The container's name.
        container: String,
        /// What the system said.
        source: io::Error,
    },
}

impl ArchiveError {
    /// Docker's status: 404 missing, 400 not a directory, 403 read-only, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            ArchiveError::NotFound { .. } => 404,
            ArchiveError::NotDirectory { .. } | ArchiveError::Extract { .. } => 400,
            ArchiveError::ReadOnly { .. } => 403,
            ArchiveError::Io { .. } => 500,
        }
    }
}

/// A mount of the container, opened.
#[derive(Debug)]
pub struct ArchiveMount {
    /// Where it is in the container (clean, absolute).
    pub destination: String,
    /// Its source (volume directory or bind source), opened `O_PATH`.
    pub fd: OwnedFd,
    /// Writable.
    pub rw: bool,
}

/// What a copy works on: the container's root file system and its mounts, opened. The
/// descriptors keep a stopped container's private overlay mount alive until this is dropped.
#[derive(Debug)]
pub struct ArchiveRoot {
    /// The container's name (for messages).
    pub container: String,
    /// The root file system (`O_PATH`, a directory).
    pub root: OwnedFd,
    /// `--read-only`.
    pub read_only: bool,
    /// Volumes and binds (tmpfs mounts have no source outside the container and are left out).
    pub mounts: Vec<ArchiveMount>,
    /// A running container's freezer: it is held still while a copy resolves and writes its
    /// paths (see [`ArchiveRoot::hold_still`]).
    pub freezer: Option<Freezer>,
}

/// Freezes one running container for `docker cp`, without recording it paused (Docker's
/// answer to CVE-2018-15664: a container renaming directories during a copy cannot race it).
/// Copies at once share one freeze: the first freezes, the last thaws.
#[derive(Debug, Clone)]
pub struct Freezer {
    runtime: RuncLike,
    id: String,
    holders: Holders,
}

/// How many copies hold each container frozen (the engine's, shared by its copies).
pub type Holders = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// Thaws the container when dropped (when it is the last copy holding it).
#[derive(Debug)]
pub struct Thaw(Option<Freezer>);

impl Drop for Thaw {
    fn drop(&mut self) {
        let Some(f) = self.0.take() else {
            return;
        };
        // The runtime call runs under the count's lock: a copy starting meanwhile waits for
        // the thaw and freezes again, never finding the container thawed under it.
        let mut holders = f.holders.lock().unwrap_or_else(|e| e.into_inner());
        let n = holders.get(&f.id).copied().unwrap_or(1).saturating_sub(1);
        if n > 0 {
            holders.insert(f.id.clone(), n);
            return;
        }
        holders.remove(&f.id);
        if let Err(e) = f.runtime.pause(&f.id, false) {
            tracing::warn!(container = %f.id, error = %e, "thawing after docker cp");
        }
    }
}

impl Freezer {
    /// Freezes the container until the returned guard is dropped. A container that exited
    /// meanwhile needs no freezing.
    pub fn hold(&self) -> io::Result<Thaw> {
        let f = self;
        let mut holders = f.holders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = holders.get_mut(&f.id) {
            *n += 1;
            return Ok(Thaw(Some(f.clone())));
        }
        match f.runtime.pause(&f.id, true) {
            Ok(()) => {
                holders.insert(f.id.clone(), 1);
                Ok(Thaw(Some(f.clone())))
            }
            Err(e) => match f.runtime.state(&f.id) {
                Ok(s) if s.status == "running" => Err(io::Error::other(e.to_string())),
                // It ended meanwhile: nothing runs to race the copy.
                _ => Ok(Thaw(None)),
            },
        }
    }
}

impl Engine {
    /// The freezer of container `id` when it runs (a container the user paused stays as it
    /// is; a stopped one has nothing to race).
    pub(super) fn freezer_of(&self, id: &str) -> Option<Freezer> {
        let c = self.containers.get(id)?;
        (c.state.status == Status::Running).then(|| Freezer {
            runtime: self.runtime_of(id),
            id: id.to_string(),
            holders: self.cp_holders.clone(),
        })
    }

    /// The file system of container `what` for `docker cp`: its rootfs (a running container's
    /// own mount, or the overlay mounted privately for a stopped one and detached at once) and
    /// its volume and bind mounts, all opened.
    pub fn archive_root(&self, what: &str) -> Result<ArchiveRoot, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        let running = self.bundle(&id).join("rootfs");
        // Mounted by a run, or by a start under way: that mount, never a second one on the
        // same upper and work directories.
        let root = if rootfs::is_mounted(&running) {
            open_dir_path(&running).map_err(io_err(format!(
                "opening the root file system of container {}",
                c.name
            )))?
        } else {
            let overlay = self.overlay_of(c)?;
            let target = self
                .cfg
                .exec_root
                .join("archive")
                .join(format!("{id}-{}", &berth_common::id::random_id()[..12]));
            rootfs::mount_overlay(&overlay, &target)
                .map_err(io_err(format!("container {}", c.name)))?;
            let opened = open_dir_path(&target);
            // Detached now: the open descriptor keeps the mount until the copy ends.
            let unmounted = rootfs::unmount(&target);
            let _ = std::fs::remove_dir(&target);
            unmounted.map_err(io_err(format!("container {}", c.name)))?;
            opened.map_err(io_err(format!(
                "opening the root file system of container {}",
                c.name
            )))?
        };
        let mut mounts = Vec::new();
        for m in &c.mounts {
            let source = match m.kind.as_str() {
                "volume" => self.volumes.path(m.name.as_deref().unwrap_or_default()),
                "bind" => PathBuf::from(&m.source),
                _ => continue,
            };
            let fd = open_path(&source).map_err(io_err(format!(
                "opening {} (mounted at {} in container {})",
                source.display(),
                m.destination,
                c.name
            )))?;
            mounts.push(ArchiveMount {
                destination: clean(&m.destination).trim_end_matches("/.").to_string(),
                fd,
                rw: m.rw,
            });
        }
        Ok(ArchiveRoot {
            container: c.name.clone(),
            root,
            read_only: c.options.read_only,
            mounts,
            freezer: self.freezer_of(&id),
        })
    }
}

/// Opens `entry` of `dir` (never through a link), or `dir` itself when `entry` is `None`.
fn open_node(dir: BorrowedFd<'_>, entry: Option<&OsStr>, flags: OFlag) -> Result<OwnedFd, Errno> {
    match entry {
        Some(e) => openat(
            dir,
            e,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
        // The item is `dir` itself (already resolved): reopen it for reading.
        None => openat(dir, ".", flags | OFlag::O_CLOEXEC, Mode::empty()).or_else(|_| {
            let p = format!("/proc/self/fd/{}", dir.as_raw_fd());
            nix::fcntl::open(p.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())
        }),
    }
}

/// The files with several names an archive has written so far, by device and inode, with
/// the name each was written under: the next names are written as hard links to it, so a file
/// linked many times is archived once (as Docker). At most [`MAX_HARD_LINKS`] files are kept.
#[derive(Debug, Default)]
pub(crate) struct HardLinks(std::collections::HashMap<(u64, u64), std::path::PathBuf>);

/// Files with several names an archive remembers at most.
pub(crate) const MAX_HARD_LINKS: usize = 100_000;

/// Appends one node to an archive as `name`: `entry` of `dir` (or `dir` itself), whose
/// `lstat` is `st`. A directory gets its own entry only (none when `name` is empty); a
/// regular file its content (or a hard link to the name it was written under), opened
/// `O_PATH` without following links, checked to be a regular file on that descriptor, and
/// only then opened for reading (never a device or FIFO swapped in meanwhile); links, FIFOs
/// and devices their entries, nothing opened. Sockets are left out (as Docker). Shared by
/// `docker cp`, `docker export` and `docker commit`.
pub(crate) fn append_node<W: Write>(
    b: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    entry: Option<&OsStr>,
    st: &FileStat,
    name: &Path,
    links: &mut HardLinks,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
        // (A directory with an empty name is the archive's root: no entry.)
        SFlag::S_IFDIR if !name.as_os_str().is_empty() => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, name, io::empty())?;
        }
        SFlag::S_IFREG => {
            let p = match open_node(dir, entry, OFlag::O_PATH) {
                Ok(p) => p,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(errno_io(e)),
            };
            let st = fstat(&p).map_err(errno_io)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Ok(());
            }
            if st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.0.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    return b.append_link(&mut h, name, first);
                }
                if links.0.len() < MAX_HARD_LINKS {
                    links.0.insert(key, name.to_path_buf());
                }
            }
            // The very file checked, opened for reading through its descriptor.
            let f = match nix::fcntl::open(
                format!("/proc/self/fd/{}", p.as_raw_fd()).as_str(),
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(f) => File::from(f),
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(errno_io(e)),
            };
            let size = st.st_size.max(0) as u64;
            h.set_size(size);
            h.set_entry_type(tar::EntryType::Regular);
            // Exactly `size` bytes whatever the file does meanwhile (zeros if it shrinks).
            let data = f.take(size).chain(io::repeat(0)).take(size);
            b.append_data(&mut h, name, data)?;
        }
        SFlag::S_IFLNK => {
            let Some(e) = entry else { return Ok(()) };
            let target = readlinkat(dir, e).map_err(errno_io)?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, name, Path::new(&target))?;
        }
        kind @ (SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK) => {
            h.set_entry_type(match kind {
                SFlag::S_IFIFO => tar::EntryType::Fifo,
                SFlag::S_IFCHR => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            if kind != SFlag::S_IFIFO {
                h.set_device_major(libc::major(st.st_rdev))?;
                h.set_device_minor(libc::minor(st.st_rdev))?;
            }
            b.append_data(&mut h, name, io::empty())?;
        }
        // Sockets are not archived (as Docker).
        _ => {}
    }
    Ok(())
}

fn open_path(p: &Path) -> io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(p)?
        .into())
}

/// Opens directory `p` with `O_PATH` (an archive root's descriptor).
pub fn open_dir_path(p: &Path) -> io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(p)?
        .into())
}

/// Docker's lexical clean of a container path: absolute, `.`/`..`/empty components resolved
/// (`..` stops at `/`), with a trailing `/.` kept (it asks for a directory's contents).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    let contents = path == "." || path.ends_with("/.");
    if contents {
        out = if out == "/" { "/.".into() } else { out + "/." };
    }
    out
}

/// Which root `path` (from [`clean`]) lives under: the index of the mount whose destination is
/// its longest prefix (`None`: the root file system) and the path relative to that root (`.`
/// for the root itself).
pub fn locate(destinations: &[&str], path: &str) -> (Option<usize>, String) {
    let path = path.trim_end_matches("/.");
    let path = if path.is_empty() { "/" } else { path };
    let mut best: Option<(usize, usize)> = None;
    for (i, d) in destinations.iter().enumerate() {
        let d = d.trim_end_matches('/');
        let under =
            path == d || (path.starts_with(d) && path.as_bytes().get(d.len()) == Some(&b'/'));
        if !d.is_empty() && under && best.is_none_or(|(_, l)| d.len() > l) {
            best = Some((i, d.len()));
        }
    }
    let (idx, rest) = match best {
        Some((i, l)) => (Some(i), &path[l..]),
        None => (None, path),
    };
    let rel = rest.trim_start_matches('/');
    (
        idx,
        if rel.is_empty() {
            ".".into()
        } else {
            rel.into()
        },
    )
}

/// Go's `os.FileMode` of a `st_mode`: type bits (directory `1<<31`, symlink `1<<27`, ...),
/// setuid/setgid/sticky and the permission bits.
pub fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFIFO => PIPE,
        libc::S_IFSOCK => SOCKET,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= STICKY;
    }
    m
}

/// A container path looked up: the directory holding it and its name there (`None`: the
/// directory itself is the item: a mount's root, `/`, or `DIR/.`).
#[derive(Debug)]
pub struct Resolved {
    /// The path asked for, cleaned.
    pub path: String,
    /// The directory (or, for a file bind mount, the file) holding the item, `O_PATH`.
    dir: OwnedFd,
    /// The item's name in `dir`.
    entry: Option<OsString>,
    /// The name entries take in an archive and the stat (`.`: the contents only).
    pub name: String,
    /// The item's container path (for mounts nested under it).
    container_path: String,
}

impl Resolved {
    /// The directory holding the item (where the lookup ended, for checks that it stayed in
    /// the container).
    pub fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from(e)
}

impl ArchiveRoot {
    /// Freezes a running container until the returned guard is dropped (nothing for a
    /// stopped or paused one). A container that exited meanwhile needs no freezing.
    pub fn hold_still(&self) -> Result<Thaw, ArchiveError> {
        match &self.freezer {
            None => Ok(Thaw(None)),
            Some(f) => f
                .hold()
                .map_err(|e| self.io("pausing the container to copy", "/", e)),
        }
    }

    fn root_of(&self, idx: Option<usize>) -> BorrowedFd<'_> {
        match idx {
            Some(i) => self.mounts[i].fd.as_fd(),
            None => self.root.as_fd(),
        }
    }

    fn not_found(&self, path: &str) -> ArchiveError {
        ArchiveError::NotFound {
            path: path.to_string(),
            container: self.container.clone(),
        }
    }

    fn io(&self, what: &'static str, path: &str, source: io::Error) -> ArchiveError {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => self.not_found(path),
            _ => ArchiveError::Io {
                what,
                path: path.to_string(),
                container: self.container.clone(),
                source,
            },
        }
    }

    /// Opens `rel` under the root `idx`, never leaving it (`RESOLVE_IN_ROOT`).
    fn open_in(&self, idx: Option<usize>, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root_of(idx), rel, how)
    }

    fn destinations(&self) -> Vec<&str> {
        self.mounts.iter().map(|m| m.destination.as_str()).collect()
    }

    /// Looks `path` up as `docker cp` does: links on the way are followed (inside the
    /// container), the last component is not, and `DIR/.` is DIR's contents.
    pub fn resolve(&self, path: &str) -> Result<Resolved, ArchiveError> {
        let cleaned = clean(path);
        let contents = cleaned.ends_with("/.");
        let item = cleaned.trim_end_matches("/.");
        let item = if item.is_empty() { "/" } else { item };
        let (idx, rel) = locate(&self.destinations(), item);
        let err = |e: Errno| self.io("looking up", &cleaned, errno_io(e));
        if contents || rel == "." {
            // The item is a directory opened whole (a mount root, `/`, or `DIR/.`).
            let dir = if rel == "." {
                nix::unistd::dup(self.root_of(idx)).map_err(err)?
            } else {
                self.open_in(idx, &rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .map_err(err)?
            };
            let name = if contents || item == "/" {
                ".".to_string()
            } else {
                item.rsplit('/').next().unwrap_or(".").to_string()
            };
            return Ok(Resolved {
                path: cleaned.clone(),
                dir,
                entry: None,
                name,
                container_path: item.to_string(),
            });
        }
        let (parent, last) = match rel.rsplit_once('/') {
            Some((p, l)) => (p.to_string(), l.to_string()),
            None => (".".to_string(), rel.clone()),
        };
        let dir = self
            .open_in(idx, &parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(err)?;
        Ok(Resolved {
            path: cleaned.clone(),
            dir,
            entry: Some(last.clone().into()),
            name: last,
            container_path: item.to_string(),
        })
    }

    fn lstat(&self, r: &Resolved) -> Result<FileStat, ArchiveError> {
        match &r.entry {
            Some(e) => fstatat(
                &r.dir,
                e.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            None => fstat(&r.dir),
        }
        .map_err(|e| self.io("statting", &r.path, errno_io(e)))
    }

    /// The `lstat` of `path` (looked up as [`ArchiveRoot::resolve`] does): owners and mode
    /// as the file system has them.
    pub fn lstat_path(&self, path: &str) -> Result<FileStat, ArchiveError> {
        let r = self.resolve(path)?;
        self.lstat(&r)
    }

    /// `HEAD /containers/{id}/archive`: Docker's stat of `path` (a link itself, not its
    /// target; `linkTarget` says where it points).
    pub fn stat(&self, path: &str) -> Result<PathStat, ArchiveError> {
        let r = self.resolve(path)?;
        self.stat_resolved(&r)
    }

    /// The stat of a looked-up path.
    pub fn stat_resolved(&self, r: &Resolved) -> Result<PathStat, ArchiveError> {
        let st = self.lstat(r)?;
        let mut link_target = String::new();
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            if let Some(e) = &r.entry {
                let t = readlinkat(&r.dir, e.as_os_str())
                    .map_err(|e| self.io("reading the link", &r.path, errno_io(e)))?;
                let t = t.to_string_lossy();
                let parent = r.container_path.rsplit_once('/').map_or("", |(p, _)| p);
                link_target = if t.starts_with('/') {
                    clean(&t)
                } else {
                    clean(&format!("{parent}/{t}"))
                };
            }
        }
        Ok(PathStat {
            name: r.name.clone(),
            size: st.st_size,
            mode: go_mode(st.st_mode),
            mtime: berth_common::time::rfc3339_nano(
                st.st_mtime,
                u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            ),
            link_target,
        })
    }

    /// `GET /containers/{id}/archive`: writes an uncompressed tar of the looked-up path to
    /// `out` (a file: one entry; a directory: itself and everything below, named
    /// `NAME/...`; `DIR/.`: its contents), walking by descriptor without following links.
    /// Mounts below a copied directory are archived from their sources.
    pub fn write_tar(&self, r: &Resolved, out: impl Write) -> Result<(), ArchiveError> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        let name = if r.name == "." {
            PathBuf::new()
        } else {
            PathBuf::from(&r.name)
        };
        let st = self.lstat(r)?;
        let mut links = HardLinks::default();
        self.add(
            &mut b,
            &mut links,
            r.dir.as_fd(),
            r.entry.as_deref(),
            st,
            &name,
            &r.container_path,
        )?;
        b.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| self.io("writing the archive of", &r.path, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn add<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        links: &mut HardLinks,
        dir: BorrowedFd<'_>,
        entry: Option<&OsStr>,
        st: FileStat,
        name: &Path,
        cpath: &str,
    ) -> Result<(), ArchiveError> {
        let io = |e: io::Error| self.io("archiving", cpath, e);
        let ioe = |e: Errno| self.io("archiving", cpath, errno_io(e));
        if cpath.len() > MAX_PATH {
            // A tree deeper than any path can name (a hostile container's): refused, so the
            // walk stays bounded in depth and memory.
            let head: String = cpath.chars().take(64).collect();
            return Err(self.io(
                "archiving",
                &format!("{head}..."),
                io::Error::other(format!(
                    "a path longer than {MAX_PATH} bytes (PATH_MAX) cannot be archived"
                )),
            ));
        }
        match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
            SFlag::S_IFDIR => {
                append_node(b, dir, entry, &st, name, links).map_err(io)?;
                let d = open_node(dir, entry, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(ioe)?;
                // Read through the descriptor's own /proc link: the very directory opened.
                let mut names: Vec<OsString> =
                    std::fs::read_dir(format!("/proc/self/fd/{}", d.as_raw_fd()))
                        .map_err(io)?
                        .filter_map(|e| e.ok().map(|e| e.file_name()))
                        .collect();
                names.sort();
                let dests = self.destinations();
                for child in names {
                    let child_cpath = if cpath == "/" {
                        format!("/{}", child.to_string_lossy())
                    } else {
                        format!("{cpath}/{}", child.to_string_lossy())
                    };
                    let child_name = name.join(&child);
                    if let Some(i) = dests.iter().position(|m| *m == child_cpath) {
                        // A mount: its source, not the directory under it.
                        let fd = self.mounts[i].fd.as_fd();
                        let cst = fstat(fd).map_err(ioe)?;
                        self.add(b, links, fd, None, cst, &child_name, &child_cpath)?;
                        continue;
                    }
                    let cst = match fstatat(
                        &d,
                        child.as_os_str(),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    ) {
                        Ok(s) => s,
                        // Gone meanwhile.
                        Err(Errno::ENOENT) => continue,
                        Err(e) => return Err(ioe(e)),
                    };
                    self.add(
                        b,
                        links,
                        d.as_fd(),
                        Some(child.as_os_str()),
                        cst,
                        &child_name,
                        &child_cpath,
                    )?;
                }
            }
            _ => append_node(b, dir, entry, &st, name, links).map_err(io)?,
        }
        Ok(())
    }

    /// `PUT /containers/{id}/archive`: extracts the tar (plain, gzip or zstd) read from `body`
    /// into the existing directory `path` (links on the way, the last included, followed
    /// inside the container). `preserve_owners`: keep the archive's owners (Docker's
    /// `copyUIDGID`); otherwise entries belong to root.
    pub fn extract(
        &self,
        path: &str,
        body: impl Read + Send,
        preserve_owners: bool,
    ) -> Result<(), ArchiveError> {
        // Held still from the lookup of the target to the end of the extraction.
        let _still = self.hold_still()?;
        let cleaned = clean(path);
        let item = cleaned.trim_end_matches("/.");
        let item = if item.is_empty() { "/" } else { item };
        let (idx, rel) = locate(&self.destinations(), item);
        let dir = self
            .open_in(idx, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| match e {
                Errno::ENOTDIR => ArchiveError::NotDirectory {
                    path: cleaned.clone(),
                    container: self.container.clone(),
                },
                e => self.io("opening", &cleaned, errno_io(e)),
            })?;
        let writable = match idx {
            Some(i) => self.mounts[i].rw,
            None => !self.read_only,
        };
        if !writable {
            return Err(ArchiveError::ReadOnly {
                path: cleaned,
                container: self.container.clone(),
                what: if idx.is_some() {
                    "mounted volume"
                } else {
                    "container rootfs"
                },
            });
        }
        let opts = ExtractOptions {
            allow_devices: false,
            preserve_owners,
            // A file named `.wh.x` copied in is a file, never a deletion.
            whiteouts: false,
        };
        let result = std::thread::scope(|s| {
            s.spawn(|| -> Result<(), ArchiveError> {
                confine(dir.as_fd()).map_err(|e| self.io("entering", &cleaned, e))?;
                let reader = crate::image::layer::decompress(body)
                    .map_err(|e| self.io("reading the archive for", &cleaned, e))?;
                crate::image::layer::unpack(reader, Path::new("/"), opts).map_err(|source| {
                    ArchiveError::Extract {
                        path: cleaned.clone(),
                        container: self.container.clone(),
                        source,
                    }
                })?;
                Ok(())
            })
            .join()
        });
        result.unwrap_or_else(|_| {
            Err(self.io(
                "extracting into",
                path,
                io::Error::other("the extracting thread panicked"),
            ))
        })
    }
}

/// Confines the calling thread to `dir`: its own file system context (`unshare(CLONE_FS)`),
/// then `chroot` there. Only for a thread that ends after its work (never a pooled one).
fn confine(dir: BorrowedFd<'_>) -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(errno_io)?;
    nix::unistd::fchdir(dir).map_err(errno_io)?;
    nix::unistd::chroot(".").map_err(errno_io)?;
    nix::unistd::chdir("/").map_err(errno_io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_keeps_contents_marker() {
        assert_eq!(clean("/a/b/../c/"), "/a/c");
        assert_eq!(clean("a//b"), "/a/b");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(clean("/dir/."), "/dir/.");
        assert_eq!(clean("/dir/./"), "/dir");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("/."), "/.");
    }

    #[test]
    fn locating_across_mounts() {
        let m = ["/data", "/data/inner", "/etc/conf"];
        assert_eq!(locate(&m, "/etc/passwd"), (None, "etc/passwd".into()));
        assert_eq!(locate(&m, "/data"), (Some(0), ".".into()));
        assert_eq!(locate(&m, "/data/x/y"), (Some(0), "x/y".into()));
        assert_eq!(locate(&m, "/data/inner/z"), (Some(1), "z".into()));
        assert_eq!(locate(&m, "/database"), (None, "database".into()));
        assert_eq!(locate(&m, "/data/."), (Some(0), ".".into()));
        assert_eq!(locate(&m, "/"), (None, ".".into()));
        assert_eq!(locate(&m, "/etc/conf/a"), (Some(2), "a".into()));
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o4644), (1 << 23) | 0o644);
        assert_eq!(
            go_mode(libc::S_IFCHR | 0o600),
            (1 << 26) | (1 << 21) | 0o600
        );
    }

    fn root_at(dir: &Path, mounts: Vec<(&str, &Path)>) -> ArchiveRoot {
        ArchiveRoot {
            container: "web".into(),
            root: open_dir_path(dir).unwrap(),
            read_only: false,
            freezer: None,
            mounts: mounts
                .into_iter()
                .map(|(d, p)| ArchiveMount {
                    destination: d.into(),
                    fd: open_dir_path(p).unwrap(),
                    rw: true,
                })
                .collect(),
        }
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        tar::Archive::new(tar_bytes)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn links_never_leave_the_container() {
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        let rootdir = host.path().join("rootfs");
        std::fs::create_dir_all(rootdir.join("etc")).unwrap();
        std::fs::write(rootdir.join("etc/secret"), "container file").unwrap();
        // Absolute and relative escapes: both must land inside the container.
        std::os::unix::fs::symlink("/../../../..", rootdir.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../../../", rootdir.join("rel")).unwrap();
        let root = root_at(&rootdir, vec![]);

        // Reading through the link: the container's /secret, which does not exist.
        let e = root.stat("/up/secret").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Could not find the file /up/secret in container web"
        );
        let st = root.stat("/rel/etc/secret").unwrap();
        assert_eq!(st.size, "container file".len() as i64);
        let r = root.resolve("/up/etc/secret").unwrap();
        let mut out = Vec::new();
        root.write_tar(&r, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut ent = a.entries().unwrap().next().unwrap().unwrap();
        let mut text = String::new();
        ent.read_to_string(&mut text).unwrap();
        assert_eq!(text, "container file");

        // A link is archived as a link, its target reported inside the container.
        let st = root.stat("/up").unwrap();
        assert_eq!(st.link_target, "/");
        assert_eq!(st.mode & (1 << 27), 1 << 27);

        // Writing through the link: inside the container, never next to the host's secret.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "secret", &b"evil"[..]).unwrap();
        // An entry that tries a symlink out, then writing through it.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "out", "/../../../../..").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "out/secret", &b"evil"[..]).unwrap();
        let tarball = b.into_inner().unwrap();
        root.extract("/up", &tarball[..], false).unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        assert_eq!(
            std::fs::read_to_string(rootdir.join("secret")).unwrap(),
            "evil"
        );
        assert!(!host.path().join("out").exists());
    }

    #[test]
    fn archives_dirs_contents_and_mounts() {
        let t = tempfile::tempdir().unwrap();
        let rootdir = t.path().join("rootfs");
        let vol = t.path().join("vol");
        std::fs::create_dir_all(rootdir.join("srv/data")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(rootdir.join("srv/a"), "a").unwrap();
        std::fs::write(rootdir.join("srv/data/hidden"), "under the mount").unwrap();
        std::fs::write(vol.join("v"), "volume").unwrap();
        let root = root_at(&rootdir, vec![("/srv/data", vol.as_path())]);

        let tar_of = |p: &str| {
            let r = root.resolve(p).unwrap();
            let mut out = Vec::new();
            root.write_tar(&r, &mut out).unwrap();
            names(&out)
        };
        assert_eq!(tar_of("/srv"), ["srv", "srv/a", "srv/data", "srv/data/v"]);
        assert_eq!(tar_of("/srv/."), ["a", "data", "data/v"]);
        assert_eq!(tar_of("/srv/data"), ["data", "data/v"]);
        assert_eq!(tar_of("/srv/data/v"), ["v"]);
        assert!(root.stat("/srv/.").unwrap().is_dir());
        assert_eq!(root.stat("/srv/data").unwrap().name, "data");

        // Extraction into a mount lands in its source.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o600);
        b.append_data(&mut h, "sub/new", &b"hi"[..]).unwrap();
        let tarball = b.into_inner().unwrap();
        root.extract("/srv/data", &tarball[..], false).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("sub/new")).unwrap(), "hi");
        let e = root.extract("/srv/a", &tarball[..], false).unwrap_err();
        assert!(matches!(e, ArchiveError::NotDirectory { .. }), "{e}");
        let e = root.extract("/nope", &tarball[..], false).unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
