//! Content-addressed blobs under `<root>/blobs/sha256/<hex>`. A blob is written to
//! `<root>/ingest/` while its digest is computed, synced, checked against the digest it was
//! announced under, and only then renamed into place (and the directory synced): a crash, a full
//! disk or a lying registry never leaves a partial or wrong blob under a final name.
//!
//! Downloads go through an [`Ingest`] under `<root>/partial/<hex>` instead: it survives an
//! interrupted pull so the next one resumes where it stopped, and is committed the same way.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

use crate::image::reference::Digest;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content does not hash to the digest it was announced under.
    #[error("blob content does not match its digest: expected {expected}, got {actual}")]
    Mismatch {
        /// The announced digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The content is longer or shorter than announced.
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    Size {
        /// The announced digest.
        digest: String,
        /// The announced size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
    /// Only sha256 blobs are stored.
    #[error("unsupported digest algorithm {0:?}: berth stores sha256 blobs")]
    Algorithm(String),
    /// Another pull is downloading the same blob right now.
    #[error("blob {0} is being downloaded by another pull")]
    Busy(Digest),
    /// The blob is not in the store.
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// Reading or writing failed.
    #[error("blob store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The blob store.
#[derive(Debug)]
pub struct Blobs {
    root: PathBuf,
    next: AtomicU64,
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest {
        algorithm: "sha256".into(),
        hex: format!("{:x}", Sha256::digest(bytes)),
    }
}

impl Blobs {
    /// Opens (creating) the store under `root`, removing leftovers of interrupted writes.
    pub fn open(root: &Path) -> Result<Blobs, BlobError> {
        let ingest = root.join("ingest");
        for dir in [
            root.join("blobs/sha256"),
            ingest.clone(),
            root.join("partial"),
        ] {
            fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        for entry in fs::read_dir(&ingest).map_err(io_at(&ingest))? {
            let path = entry.map_err(io_at(&ingest))?.path();
            // Scratch directories of interrupted loads, as well as files.
            if path.is_dir() {
                fs::remove_dir_all(&path).map_err(io_at(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(Blobs {
            root: root.to_path_buf(),
            next: AtomicU64::new(0),
        })
    }

    /// A fresh, unique path under `<root>/ingest/` (emptied when the store opens) for work in
    /// progress: blob writes, layer re-compression, archive loads.
    pub fn scratch(&self, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("ingest")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Where blob `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(&digest.algorithm)
            .join(&digest.hex)
    }

    /// Whether the store has `digest`.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens blob `digest` for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, BlobError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound(digest.clone()),
            _ => BlobError::Io { path, source: e },
        })
    }

    /// Reads blob `digest` whole (manifests, configs).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut buf = Vec::new();
        let path = self.path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut buf)
            .map_err(io_at(&path))?;
        Ok(buf)
    }

    /// Stores bytes already in memory.
    pub fn put_bytes(&self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest, BlobError> {
        self.put(expected, None, bytes)
    }

    /// Stores what `reader` yields; when `expected` (and `size`) are given the content must match
    /// them, else nothing is stored. Returns the digest. A blob already present is kept as is.
    pub fn put(
        &self,
        expected: Option<&Digest>,
        size: Option<u64>,
        mut reader: impl Read,
    ) -> Result<Digest, BlobError> {
        if let Some(d) = expected {
            if d.algorithm != "sha256" {
                return Err(BlobError::Algorithm(d.algorithm.clone()));
            }
        }
        let tmp = self.scratch("blob");
        let result = (|| {
            let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let got = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_at(&tmp)(e)),
                };
                hasher.update(&buf[..got]);
                f.write_all(&buf[..got]).map_err(io_at(&tmp))?;
                total += got as u64;
            }
            let actual = Digest {
                algorithm: "sha256".into(),
                hex: format!("{:x}", hasher.finalize()),
            };
            if let Some(expected) = expected {
                if *expected != actual {
                    return Err(BlobError::Mismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
            }
            if let Some(size) = size {
                if size != total {
                    return Err(BlobError::Size {
                        digest: actual.to_string(),
                        expected: size,
                        actual: total,
                    });
                }
            }
            f.sync_all().map_err(io_at(&tmp))?;
            let dest = self.path(&actual);
            fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
            let dir = self.root.join("blobs/sha256");
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(&dir))?;
            Ok(actual)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// A resumable writer for blob `digest`: bytes a previous, interrupted download left are
    /// hashed again and kept; [`Ingest::offset`] says how many.
    pub fn ingest(&self, digest: &Digest) -> Result<Ingest, BlobError> {
        if digest.algorithm != "sha256" {
            return Err(BlobError::Algorithm(digest.algorithm.clone()));
        }
        let path = self.root.join("partial").join(&digest.hex);
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                BlobError::Busy(digest.clone())
            } else {
                io_at(&path)(e.into())
            }
        })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        loop {
            let got = file.read(&mut buf).map_err(io_at(&path))?;
            if got == 0 {
                break;
            }
            hasher.update(&buf[..got]);
            offset += got as u64;
        }
        Ok(Ingest {
            blobs_dir: self.root.join("blobs/sha256"),
            final_path: self.path(digest),
            path,
            file,
            hasher,
            offset,
            expected: digest.clone(),
        })
    }

    /// Blocks until no one (a pull of this or another process) holds the download of
    /// `digest`: the kernel wakes the wait when the holder commits, fails or dies. Returns at
    /// once when no download is in progress.
    pub fn wait_idle(&self, digest: &Digest) -> Result<(), BlobError> {
        let path = self.root.join("partial").join(&digest.hex);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(&path)(e)),
        };
        Flock::lock(file, FlockArg::LockShared)
            .map(drop)
            .map_err(|(_, e)| io_at(&path)(e.into()))
    }

    /// Downloads in the partial directory: interrupted pulls, and pulls in flight (see
    /// [`Blobs::remove_partial_if_idle`]).
    pub fn partials(&self) -> Result<Vec<PathBuf>, BlobError> {
        let dir = self.root.join("partial");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
            out.push(e.map_err(io_at(&dir))?.path());
        }
        Ok(out)
    }

    /// Removes the partial download at `path` unless a pull is writing it (its [`Ingest`]
    /// holds the file's lock).
    pub fn remove_partial_if_idle(&self, path: &Path) -> Result<(), BlobError> {
        let file = match File::options().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(path)(e)),
        };
        let Ok(_locked) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            return Ok(());
        };
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at(path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes blob `digest`; absent is fine.
    pub fn remove(&self, digest: &Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::Io { path, source: e }),
        }
    }

    /// Every stored digest.
    pub fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let name = e.map_err(io_at(&dir))?.file_name();
            if let Some(d) = name.to_str().and_then(|h| Digest::sha256(h).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being downloaded; see [`Blobs::ingest`].
#[derive(Debug)]
pub struct Ingest {
    blobs_dir: PathBuf,
    final_path: PathBuf,
    path: PathBuf,
    file: Flock<File>,
    hasher: Sha256,
    offset: u64,
    expected: Digest,
}

impl Ingest {
    /// Bytes already written.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.file.write_all(bytes).map_err(io_at(&self.path))?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Starts over (the server ignored a resume request and sent the whole blob).
    pub fn restart(&mut self) -> Result<(), BlobError> {
        self.file.set_len(0).map_err(io_at(&self.path))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Checks the digest and size, syncs, and moves the blob into place. On a mismatch the
    /// download is deleted (the next attempt starts over) and nothing is stored.
    pub fn commit(self, size: Option<u64>) -> Result<Digest, BlobError> {
        let actual = Digest {
            algorithm: "sha256".into(),
            hex: format!("{:x}", self.hasher.clone().finalize()),
        };
        let fail = |e: BlobError| {
            let _ = fs::remove_file(&self.path);
            Err(e)
        };
        if let Some(size) = size {
            if size != self.offset {
                return fail(BlobError::Size {
                    digest: self.expected.to_string(),
                    expected: size,
                    actual: self.offset,
                });
            }
        }
        if actual != self.expected {
            return fail(BlobError::Mismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        self.file.sync_all().map_err(io_at(&self.path))?;
        fs::rename(&self.path, &self.final_path).map_err(io_at(&self.final_path))?;
        File::open(&self.blobs_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.blobs_dir))?;
        Ok(actual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("connection reset"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }

    fn ingest_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("ingest")).unwrap().next().is_none()
    }

    #[test]
    fn stores_verified_content_under_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let want = sha256(b"hello");
        let got = blobs.put(Some(&want), Some(5), &b"hello"[..]).unwrap();
        assert_eq!(got, want);
        assert_eq!(blobs.read(&want).unwrap(), b"hello");
        assert_eq!(blobs.list().unwrap(), std::slice::from_ref(&want));
        // Storing it again is harmless.
        blobs.put_bytes(Some(&want), b"hello").unwrap();
        blobs.remove(&want).unwrap();
        blobs.remove(&want).unwrap();
        assert!(matches!(blobs.read(&want), Err(BlobError::NotFound(_))));
    }

    #[test]
    fn wrong_content_size_or_a_broken_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let want = sha256(b"hello");
        let e = blobs.put_bytes(Some(&want), b"jello").unwrap_err();
        assert!(e.to_string().contains(&want.hex), "{e}");
        let e = blobs.put(None, Some(9), &b"hello"[..]).unwrap_err();
        assert!(
            matches!(
                e,
                BlobError::Size {
                    expected: 9,
                    actual: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(blobs.put(Some(&want), None, Failing(3)).is_err());
        assert!(blobs.list().unwrap().is_empty());
        assert!(ingest_is_empty(dir.path()));
        let e = blobs
            .put_bytes(
                Some(&format!("sha512:{}", "a".repeat(128)).parse().unwrap()),
                b"x",
            )
            .unwrap_err();
        assert!(e.to_string().contains("sha512"), "{e}");
    }

    #[test]
    fn an_interrupted_download_resumes_and_is_verified_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let want = sha256(b"hello world");
        let mut w = blobs.ingest(&want).unwrap();
        assert!(matches!(blobs.ingest(&want), Err(BlobError::Busy(_))));
        w.write(b"hello").unwrap();
        drop(w); // the connection dropped
        // Reopening the store (a daemon restart) keeps the download.
        let blobs = Blobs::open(dir.path()).unwrap();
        let mut w = blobs.ingest(&want).unwrap();
        assert_eq!(w.offset(), 5);
        assert!(!blobs.has(&want));
        w.write(b" world").unwrap();
        assert_eq!(w.commit(Some(11)).unwrap(), want);
        assert_eq!(blobs.read(&want).unwrap(), b"hello world");
        assert!(
            blobs.partials().unwrap().is_empty(),
            "the download was committed"
        );
    }

    #[test]
    fn a_wait_for_a_download_in_progress_ends_when_it_lands() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(Blobs::open(dir.path()).unwrap());
        let want = sha256(b"hello world");
        // Nothing in progress: no wait.
        blobs.wait_idle(&want).unwrap();
        let mut w = blobs.ingest(&want).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (b, d) = (blobs.clone(), want.clone());
        std::thread::spawn(move || tx.send(b.wait_idle(&d).is_ok()).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            rx.try_recv().is_err(),
            "the wait ended while the download ran"
        );
        w.write(b"hello world").unwrap();
        w.commit(Some(11)).unwrap();
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
        assert!(blobs.has(&want));
    }

    #[test]
    fn a_download_with_the_wrong_content_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let want = sha256(b"hello");
        let mut w = blobs.ingest(&want).unwrap();
        w.write(b"jello").unwrap();
        let e = w.commit(Some(5)).unwrap_err();
        assert!(matches!(e, BlobError::Mismatch { .. }), "{e}");
        let mut w = blobs.ingest(&want).unwrap();
        assert_eq!(w.offset(), 0, "the bad bytes are not resumed");
        w.write(b"hell").unwrap();
        let e = w.commit(Some(5)).unwrap_err();
        assert!(matches!(e, BlobError::Size { .. }), "{e}");
        let mut w = blobs.ingest(&want).unwrap();
        w.write(b"xx").unwrap();
        w.restart().unwrap();
        w.write(b"hello").unwrap();
        w.commit(None).unwrap();
        assert!(blobs.list().unwrap() == vec![want]);
    }

    #[test]
    fn open_clears_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        Blobs::open(dir.path()).unwrap();
        fs::write(dir.path().join("ingest/123-0"), b"half a layer").unwrap();
        fs::create_dir_all(dir.path().join("ingest/load-123-1/blobs")).unwrap();
        Blobs::open(dir.path()).unwrap();
        assert!(ingest_is_empty(dir.path()));
    }
}
