//! Unpacking one layer tarball into a directory that overlayfs can use as a lower layer.
//!
//! Every entry's path is resolved inside the root the way the container will see it: symlinks in
//! its parent directories are followed *within* the root (an absolute target means the root, `..`
//! stops at the root), so no entry, link or whiteout can land outside it. Absolute entry paths,
//! `..` components and device nodes (unless allowed) are refused. Docker/OCI whiteouts become
//! overlayfs ones: `.wh.NAME` a 0:0 character device `NAME`, `.wh..wh..opq` the
//! `trusted.overlay.opaque` attribute on its directory.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use tar::EntryType;

/// Docker's and OCI's whiteout prefix.
const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker.
const OPAQUE: &str = ".wh..wh..opq";
/// How many symlinks one path may go through.
const MAX_HOPS: usize = 40;

/// Why a layer could not be unpacked; names the entry.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An absolute path or a `..` component.
    #[error(
        "layer entry {0:?}: paths must be relative and stay inside the layer (no leading '/', no '..')"
    )]
    Path(String),
    /// A device node while devices are not allowed.
    #[error("layer entry {0:?}: device nodes are not allowed in image layers")]
    Device(String),
    /// A hard link to something outside the layer or to a directory.
    #[error("layer entry {entry:?}: hard link target {target:?} is not a file inside the layer")]
    HardLink {
        /// The link.
        entry: String,
        /// Its target.
        target: String,
    },
    /// A symlink loop or chain longer than 40.
    #[error("layer entry {0:?}: too many levels of symbolic links")]
    Loop(String),
    /// A parent of the entry is a file.
    #[error("layer entry {0:?}: a parent is not a directory")]
    NotDirectory(String),
    /// An entry type berth does not unpack.
    #[error("layer entry {entry:?}: unsupported entry type {kind:?}")]
    Unsupported {
        /// The entry.
        entry: String,
        /// Its tar type byte.
        kind: u8,
    },
    /// The tar stream is malformed or the file system refused.
    #[error("layer entry {entry:?}: {source}")]
    Io {
        /// The entry, or "" when the stream itself broke.
        entry: String,
        /// What failed.
        source: io::Error,
    },
}

/// What extraction may do beyond the safe default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Create character and block devices (off: they are refused).
    pub allow_devices: bool,
    /// Keep the archive's owners (needs root; off for rootless use).
    pub preserve_owners: bool,
    /// Read `.wh.` entries as Docker/OCI whiteouts (layers); off, they are ordinary files
    /// (`docker cp` into a container).
    pub whiteouts: bool,
}

/// What a layer held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries unpacked (whiteouts included).
    pub entries: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
}

/// The normal components of an entry path; refuses absolute paths and `..`. `./` and empty
/// components are dropped, as tar writers emit them.
pub fn clean(path: &Path) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Resolves `parts` (a directory path, relative to `root`) to a real directory inside `root`,
/// following symlinks within the root and creating missing directories (0755, as Docker).
fn resolve_dir(root: &Path, parts: &[&OsStr], entry: &str) -> Result<PathBuf, LayerError> {
    let mut cur: Vec<OsString> = Vec::new();
    let mut todo: VecDeque<OsString> = parts.iter().map(|p| p.to_os_string()).collect();
    let mut hops = 0;
    let io_err = |source| LayerError::Io {
        entry: entry.to_string(),
        source,
    };
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        if c == "." || c.is_empty() {
            continue;
        }
        let here: PathBuf = root.join(cur.iter().collect::<PathBuf>()).join(&c);
        match fs::symlink_metadata(&here) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&here).map_err(io_err)?;
                cur.push(c);
            }
            Err(e) => return Err(io_err(e)),
            Ok(m) if m.is_dir() => cur.push(c),
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(LayerError::Loop(entry.to_string()));
                }
                let target = fs::read_link(&here).map_err(io_err)?;
                if target.is_absolute() {
                    cur.clear();
                }
                let mut next: VecDeque<OsString> = target
                    .components()
                    .filter_map(|tc| match tc {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                next.extend(todo.drain(..));
                todo = next;
            }
            Ok(_) => return Err(LayerError::NotDirectory(entry.to_string())),
        }
    }
    Ok(root.join(cur.iter().collect::<PathBuf>()))
}

/// Removes whatever this layer already put at `path`, unless both are directories.
fn clear(path: &Path, keep_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && keep_dir => Ok(()),
        Ok(m) if m.is_dir() => crate::tree::remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the overlayfs whiteout for `path`: a 0:0 character device.
fn whiteout(path: &Path) -> io::Result<()> {
    clear(path, false)?;
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)
}

/// Unpacks the (uncompressed) tar stream `reader` into the directory `root`, which must exist.
/// On error the caller removes `root`: nothing was written outside it.
pub fn unpack(reader: impl Read, root: &Path, opts: ExtractOptions) -> Result<Stats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(opts.preserve_owners);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    let mut stats = Stats::default();
    let stream_err = |source| LayerError::Io {
        entry: String::new(),
        source,
    };
    for entry in archive.entries().map_err(stream_err)? {
        let mut entry = entry.map_err(stream_err)?;
        let raw = entry.path().map_err(stream_err)?.into_owned();
        let name = raw.display().to_string();
        let io_err = |source| LayerError::Io {
            entry: name.clone(),
            source,
        };
        let parts = clean(&raw).ok_or_else(|| LayerError::Path(name.clone()))?;
        let Some((last, parents)) = parts.split_last() else {
            // The layer's root itself: nothing to create.
            stats.entries += 1;
            continue;
        };
        let dir = resolve_dir(root, parents, &name)?;
        let last_bytes = last.as_bytes();
        stats.entries += 1;
        if opts.whiteouts && *last == OsStr::new(OPAQUE) {
            xattr::set(&dir, "trusted.overlay.opaque", b"y").map_err(io_err)?;
            continue;
        }
        if let Some(hidden) = last_bytes
            .strip_prefix(WHITEOUT.as_bytes())
            .filter(|_| opts.whiteouts)
        {
            let hidden = OsStr::from_bytes(hidden);
            if hidden.is_empty()
                || hidden == ".."
                || hidden == "."
                || hidden.as_bytes().contains(&b'/')
            {
                return Err(LayerError::Path(name));
            }
            whiteout(&dir.join(hidden)).map_err(io_err)?;
            continue;
        }
        let dst = dir.join(last);
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory => {
                clear(&dst, true).map_err(io_err)?;
                entry.unpack(&dst).map_err(io_err)?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::Symlink => {
                clear(&dst, false).map_err(io_err)?;
                stats.bytes += if kind == EntryType::Symlink {
                    0
                } else {
                    entry.size()
                };
                entry.unpack(&dst).map_err(io_err)?;
                if kind == EntryType::Symlink && opts.preserve_owners {
                    let (uid, gid) = (entry.header().uid(), entry.header().gid());
                    if let (Ok(u), Ok(g)) = (uid, gid) {
                        std::os::unix::fs::lchown(
                            &dst,
                            u32::try_from(u).ok(),
                            u32::try_from(g).ok(),
                        )
                        .map_err(io_err)?;
                    }
                }
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io_err)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let shown = target.display().to_string();
                let bad = || LayerError::HardLink {
                    entry: name.clone(),
                    target: shown.clone(),
                };
                let tparts = clean(&target).ok_or_else(bad)?;
                let Some((tlast, tparents)) = tparts.split_last() else {
                    return Err(bad());
                };
                let src = resolve_dir(root, tparents, &name)?.join(tlast);
                match fs::symlink_metadata(&src) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(bad()),
                }
                clear(&dst, false).map_err(io_err)?;
                fs::hard_link(&src, &dst).map_err(io_err)?;
            }
            EntryType::Fifo => {
                let h = entry.header();
                let mode = Mode::from_bits_truncate(h.mode().map_err(io_err)? & 0o7777);
                clear(&dst, false).map_err(io_err)?;
                nix::unistd::mkfifo(&dst, mode).map_err(|e| io_err(io::Error::from(e)))?;
                // mkfifo applies the umask; the layer's mode is what counts.
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode.bits()))
                    .map_err(io_err)?;
                if opts.preserve_owners {
                    let (u, g) = (h.uid().map_err(io_err)?, h.gid().map_err(io_err)?);
                    std::os::unix::fs::lchown(&dst, u32::try_from(u).ok(), u32::try_from(g).ok())
                        .map_err(io_err)?;
                }
            }
            EntryType::Char | EntryType::Block => {
                if !opts.allow_devices {
                    return Err(LayerError::Device(name));
                }
                let h = entry.header();
                let (major, minor) = (
                    h.device_major().map_err(io_err)?.unwrap_or(0),
                    h.device_minor().map_err(io_err)?.unwrap_or(0),
                );
                let flag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                let mode = Mode::from_bits_truncate(h.mode().map_err(io_err)? & 0o7777);
                clear(&dst, false).map_err(io_err)?;
                mknod(&dst, flag, mode, makedev(major.into(), minor.into()))
                    .map_err(|e| io_err(io::Error::from(e)))?;
            }
            // PAX and GNU long-name headers are consumed by the tar crate; anything left is
            // metadata berth has no use for.
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => {
                return Err(LayerError::Unsupported {
                    entry: name,
                    kind: other.as_byte(),
                });
            }
        }
    }
    Ok(stats)
}
