//! Reading a file that a container controls (its `/etc/passwd`, `/etc/group`) from the host,
//! as a hostile container cannot exploit: the path is resolved inside the container's root
//! (`openat2` with `RESOLVE_IN_ROOT`, so a link to `/../../etc/shadow` lands on the
//! container's own `/etc/shadow`), the file is first opened `O_PATH` and `fstat`ed, and only a
//! regular file is then opened for reading (a FIFO, device or socket is never opened, so
//! nothing blocks and no driver sees an `open`), and at most `limit` bytes are read.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{SFlag, fstat};

/// The most a container's `/etc/passwd` or `/etc/group` may hold (Docker reads them whole;
/// a real one is a few KiB).
pub const ETC_FILE_LIMIT: u64 = 1 << 20;

/// Why a file in a container could not be read; names the path.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    /// Something other than a regular file is at the path.
    #[error("{path} in the container is a {kind}, not a regular file")]
    NotRegular {
        /// The container path.
        path: String,
        /// `FIFO`, `character device`, `block device`, `socket` or `directory`.
        kind: &'static str,
    },
    /// The file is larger than the caller allows.
    #[error("{path} in the container is larger than {limit} bytes")]
    TooLarge {
        /// The container path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A system call failed.
    #[error("reading {path} in the container: {source}")]
    Io {
        /// The container path.
        path: String,
        /// What the system said.
        source: io::Error,
    },
}

/// Reads the file at container path `path` under the root directory `root`, without leaving
/// the root, without opening anything but a regular file, and refusing more than `limit`
/// bytes. `Ok(None)` when nothing is at the path (or a directory on the way is missing).
pub fn read_file(root: &Path, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ConfinedError> {
    let io = |source: io::Error| ConfinedError::Io {
        path: path.to_string(),
        source,
    };
    let root_fd: OwnedFd = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
        .map_err(io)?
        .into();
    let rel = path.trim_start_matches('/');
    let how = OpenHow::new()
        // Links are followed, but only inside the root: RESOLVE_IN_ROOT treats the root as
        // `/` for every component, the last included (an image's `/etc/passwd` may well be a
        // link to `/usr/lib/passwd`).
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let handle = match openat2(&root_fd, rel, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(io(e.into())),
    };
    let st = fstat(&handle).map_err(|e| io(e.into()))?;
    let kind = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => None,
        SFlag::S_IFIFO => Some("FIFO"),
        SFlag::S_IFCHR => Some("character device"),
        SFlag::S_IFBLK => Some("block device"),
        SFlag::S_IFSOCK => Some("socket"),
        SFlag::S_IFDIR => Some("directory"),
        _ => Some("special file"),
    };
    if let Some(kind) = kind {
        return Err(ConfinedError::NotRegular {
            path: path.to_string(),
            kind,
        });
    }
    if st.st_size as u64 > limit {
        return Err(ConfinedError::TooLarge {
            path: path.to_string(),
            limit,
        });
    }
    // Reopen the very inode the handle names (not the name again, which the container could
    // have swapped meanwhile) for reading.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .map_err(io)?;
    let mut buf = Vec::with_capacity(st.st_size as usize);
    // The file may grow while it is read: never past the limit.
    file.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(ConfinedError::TooLarge {
            path: path.to_string(),
            limit,
        });
    }
    Ok(Some(buf))
}

/// [`read_file`] as text for the parsers of `/etc/passwd`-like files: missing is empty,
/// invalid UTF-8 is replaced (the parsers skip lines they cannot read).
pub fn read_etc(root: &Path, path: &str) -> Result<String, ConfinedError> {
    Ok(read_file(root, path, ETC_FILE_LIMIT)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default())
}

/// The user and groups a container process runs as (`--user`, else the image's), looked up in
/// the container's own `/etc/passwd` and `/etc/group` read by [`read_etc`]. A file the
/// container has made unreadable (a FIFO, a device, a huge file) fails this container's start
/// or exec with the path named; it never blocks the caller.
pub fn resolve_user(
    rootfs: &Path,
    spec: &str,
    group_add: &[String],
    container: &str,
) -> Result<crate::runtime::user::Ids, super::ContainerError> {
    let invalid = |e: &dyn std::fmt::Display| {
        super::ContainerError::Invalid(format!("container {container}: {e}"))
    };
    let passwd = read_etc(rootfs, "/etc/passwd").map_err(|e| invalid(&e))?;
    let group = read_etc(rootfs, "/etc/group").map_err(|e| invalid(&e))?;
    let mut ids = crate::runtime::user::resolve(spec, &passwd, &group).map_err(|e| invalid(&e))?;
    crate::runtime::user::add_groups(&mut ids, group_add, &group).map_err(|e| invalid(&e))?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        d
    }

    #[test]
    fn reads_a_regular_file_and_missing_is_none() {
        let r = root();
        fs::write(r.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        assert_eq!(
            read_etc(r.path(), "/etc/passwd").unwrap(),
            "root:x:0:0::/:/bin/sh\n"
        );
        assert!(read_file(r.path(), "/etc/group", 10).unwrap().is_none());
        assert!(read_file(r.path(), "/nodir/group", 10).unwrap().is_none());
        assert_eq!(read_etc(r.path(), "/etc/group").unwrap(), "");
    }

    #[test]
    fn a_fifo_is_refused_at_once_never_opened_for_reading() {
        let r = root();
        nix::unistd::mkfifo(&r.path().join("etc/passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO for reading without O_NONBLOCK would block this test forever.
        let err = read_file(r.path(), "/etc/passwd", ETC_FILE_LIMIT).unwrap_err();
        assert!(
            matches!(err, ConfinedError::NotRegular { kind: "FIFO", .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "/etc/passwd in the container is a FIFO, not a regular file"
        );
    }

    #[test]
    fn devices_sockets_and_directories_are_refused() {
        let r = root();
        // A link to the host's /dev/null resolves inside the root: the container's own
        // /dev/null, which here is a directory.
        fs::create_dir_all(r.path().join("dev/null")).unwrap();
        symlink("/dev/null", r.path().join("etc/passwd")).unwrap();
        let err = read_file(r.path(), "/etc/passwd", 10).unwrap_err();
        assert!(matches!(
            err,
            ConfinedError::NotRegular {
                kind: "directory",
                ..
            }
        ));
        let _sock = std::os::unix::net::UnixListener::bind(r.path().join("etc/group")).unwrap();
        let err = read_file(r.path(), "/etc/group", 10).unwrap_err();
        assert!(matches!(
            err,
            ConfinedError::NotRegular { kind: "socket", .. }
        ));
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let r = root();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "host secret").unwrap();
        // Absolute and relative escapes both land inside the container.
        let abs = outside.path().join("secret");
        symlink(&abs, r.path().join("etc/passwd")).unwrap();
        assert!(read_file(r.path(), "/etc/passwd", 100).unwrap().is_none());
        symlink(
            "../../../../../../../../../../etc/hostname",
            r.path().join("etc/group"),
        )
        .unwrap();
        fs::write(r.path().join("etc/hostname"), "inside").unwrap();
        assert_eq!(read_etc(r.path(), "/etc/group").unwrap(), "inside");
        assert_eq!(
            read_etc(r.path(), "../../../etc/hostname").unwrap(),
            "inside"
        );
    }

    #[test]
    fn size_is_bounded() {
        let r = root();
        fs::write(r.path().join("etc/passwd"), vec![b'x'; 101]).unwrap();
        let err = read_file(r.path(), "/etc/passwd", 100).unwrap_err();
        assert!(matches!(err, ConfinedError::TooLarge { limit: 100, .. }));
        assert_eq!(
            read_file(r.path(), "/etc/passwd", 101)
                .unwrap()
                .unwrap()
                .len(),
            101
        );
    }
}
