//! A build's context: the tar a client sends (plain, gzip or zstd), unpacked into a private
//! directory, with `.dockerignore` applied (clients apply it too; applying it again changes
//! nothing and covers those that do not), the Dockerfile read from it, and paths looked up
//! inside it, links followed without leaving it.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use super::BuildError;
use crate::image::layer::{ExtractOptions, decompress, unpack};
use berth_common::pattern::Ignore;

/// A `.dockerignore` read at most (bytes).
const MAX_IGNORE: u64 = 1 << 20;

/// An unpacked context; removed when dropped.
#[derive(Debug)]
pub struct Context {
    dir: tempfile::TempDir,
}

impl Context {
    /// Unpacks the context tar `body` into a new directory under `scratch`.
    pub fn unpack(body: impl Read, scratch: &Path) -> Result<Context, BuildError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| BuildError::Io { what, source }
        };
        std::fs::create_dir_all(scratch).map_err(io("making the build's scratch directory"))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(scratch)
            .map_err(io("making the context's directory"))?;
        let mut body = io::BufReader::with_capacity(256 << 10, body);
        let head = io::BufRead::fill_buf(&mut body).map_err(io("reading the build context"))?;
        if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            return Err(BuildError::Invalid(
                "the build context is compressed with bzip2 or xz: berth takes a plain, gzip or zstd tar".into(),
            ));
        }
        let root = dir.path().join("root");
        std::fs::create_dir(&root).map_err(io("making the context's directory"))?;
        let reader = decompress(body).map_err(io("reading the build context"))?;
        unpack(
            Ended {
                inner: reader,
                read: 0,
                tail: None,
            },
            &root,
            ExtractOptions {
                allow_devices: false,
                preserve_owners: false,
                whiteouts: false,
            },
        )
        .map_err(|e| {
            BuildError::Invalid(format!("the build context is not a valid tar archive: {e}"))
        })?;
        Ok(Context { dir })
    }

    /// The context's root directory (its real path: lookups compare against it).
    pub fn root(&self) -> PathBuf {
        let root = self.dir.path().join("root");
        std::fs::canonicalize(&root).unwrap_or(root)
    }

    /// Looks `rel` up inside the context (links followed, never out of it); the path it
    /// names, or `None` when nothing is there.
    pub fn resolve(&self, rel: &str) -> Result<Option<PathBuf>, BuildError> {
        let root = self.root();
        let dir = std::fs::File::open(&root).map_err(|source| BuildError::Io {
            what: "opening the build context".into(),
            source,
        })?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = rel.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let fd = match openat2(dir.as_fd(), rel, how) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Ok(None),
            Err(e) => {
                return Err(BuildError::Io {
                    what: format!("looking up {rel} in the build context"),
                    source: e.into(),
                });
            }
        };
        // The context is berth's own directory, written by nobody else: the path the
        // descriptor has is the one to walk.
        let real = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .map_err(|source| BuildError::Io {
            what: format!("looking up {rel} in the build context"),
            source,
        })?;
        if !real.starts_with(&root) {
            return Ok(None);
        }
        Ok(Some(real))
    }

    /// The Dockerfile at `name` in the context (Docker's `Dockerfile`, then `dockerfile`, when
    /// none is named), a regular file of at most the parser's bound.
    pub fn dockerfile(&self, name: Option<&str>) -> Result<String, BuildError> {
        let candidates: Vec<&str> = match name {
            Some(n) if !n.is_empty() => vec![n],
            _ => vec!["Dockerfile", "dockerfile"],
        };
        for c in &candidates {
            let Some(path) = self.resolve(c)? else {
                continue;
            };
            let meta = std::fs::metadata(&path).map_err(|source| BuildError::Io {
                what: format!("reading {c}"),
                source,
            })?;
            if !meta.is_file() {
                return Err(BuildError::Invalid(format!(
                    "the Dockerfile ({c}) is not a regular file"
                )));
            }
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|f| {
                    f.take(super::dockerfile::MAX_DOCKERFILE as u64 + 1)
                        .read_to_string(&mut text)
                })
                .map_err(|source| BuildError::Io {
                    what: format!("reading the Dockerfile {c}"),
                    source,
                })?;
            return Ok(text);
        }
        Err(BuildError::Invalid(format!(
            "Cannot locate specified Dockerfile: {}",
            candidates[0]
        )))
    }

    /// Removes what `.dockerignore` leaves out (the Dockerfile and `.dockerignore` go too
    /// when it names them, as Docker's daemon does after reading them).
    pub fn apply_ignore(&self) -> Result<(), BuildError> {
        let root = self.root();
        let path = root.join(".dockerignore");
        let text = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                let mut t = String::new();
                std::fs::File::open(&path)
                    .and_then(|f| f.take(MAX_IGNORE).read_to_string(&mut t))
                    .map_err(|source| BuildError::Io {
                        what: "reading .dockerignore".into(),
                        source,
                    })?;
                t
            }
            _ => return Ok(()),
        };
        let ignore =
            Ignore::parse(&text).map_err(|e| BuildError::Invalid(format!(".dockerignore: {e}")))?;
        if ignore.rules.is_empty() {
            return Ok(());
        }
        remove_ignored(&root, "", &ignore).map_err(|source| BuildError::Io {
            what: "applying .dockerignore".into(),
            source,
        })
    }
}

/// A tar stream made whole: the docker CLI's `-f` outside the context sends its tar cut after
/// the last entry's data (no padding, no end blocks), which Docker's reader takes; the missing
/// padding and end blocks are added here as zeros.
struct Ended<R> {
    inner: R,
    read: u64,
    tail: Option<u64>,
}

impl<R: Read> Read for Ended<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.tail = Some((512 - self.read % 512) % 512 + 1024);
        }
        let left = self.tail.as_mut().expect("set above");
        let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

fn remove_ignored(dir: &Path, rel: &str, ignore: &Ignore) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type()?;
        if ignore.excludes(&child) {
            if ft.is_dir() && ignore.has_exceptions() {
                // An exception may take something back below.
                remove_ignored(&entry.path(), &child, ignore)?;
                if std::fs::read_dir(entry.path())?.next().is_none() {
                    std::fs::remove_dir(entry.path())?;
                }
            } else if ft.is_dir() {
                crate::tree::remove_tree(&entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        } else if ft.is_dir() {
            remove_ignored(&entry.path(), &child, ignore)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        crate::image::layer::fixtures::tarball(files)
    }

    #[test]
    fn unpacks_reads_the_dockerfile_and_applies_dockerignore() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(&[
            ("Dockerfile", b"FROM scratch\n"),
            (".dockerignore", b"*.log\nsecret\n!keep.log\n"),
            ("a.log", b"x"),
            ("keep.log", b"y"),
            ("secret/key", b"z"),
            ("src/main.c", b"int main;"),
        ]);
        let c = Context::unpack(&tar[..], scratch.path()).unwrap();
        assert_eq!(c.dockerfile(None).unwrap(), "FROM scratch\n");
        c.apply_ignore().unwrap();
        let root = c.root();
        assert!(!root.join("a.log").exists());
        assert!(root.join("keep.log").exists());
        assert!(!root.join("secret").exists());
        assert!(root.join("src/main.c").exists());
        assert!(c.resolve("nope").unwrap().is_none());
        assert!(
            c.dockerfile(Some("Other"))
                .unwrap_err()
                .to_string()
                .contains("Other")
        );
    }

    #[test]
    fn links_never_leave_the_context() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(&[("f", b"1")]);
        let c = Context::unpack(&tar[..], scratch.path()).unwrap();
        std::os::unix::fs::symlink("/etc", c.root().join("out")).unwrap();
        std::os::unix::fs::symlink("../../..", c.root().join("up")).unwrap();
        // Resolved inside the context's root: /etc there does not exist.
        assert!(c.resolve("out/passwd").unwrap().is_none());
        assert_eq!(c.resolve("up/f").unwrap().unwrap(), c.root().join("f"));
        drop(c);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_tar_cut_after_its_last_entry_is_taken() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(&[("Dockerfile", b"FROM scratch\n"), ("f", b"abc")]);
        // The last entry's data without padding, no end blocks: as the docker CLI sends it.
        let cut = &tar[..512 + 512 + 512 + 3];
        let c = Context::unpack(cut, scratch.path()).unwrap();
        assert_eq!(std::fs::read(c.root().join("f")).unwrap(), b"abc");
    }

    #[test]
    fn xz_contexts_are_refused_by_name() {
        let scratch = tempfile::tempdir().unwrap();
        let e = Context::unpack(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2][..], scratch.path())
            .unwrap_err();
        assert!(e.to_string().contains("xz"), "{e}");
    }
}
