//! Content-addressed blobs under `<root>/blobs/sha256/<hex>`. A blob is written to
//! `<root>/ingest/` while its digest is computed, synced, checked against the digest it was
//! announced under, and only then renamed into place (and the directory synced): a crash, a full
//! disk or a lying registry never leaves a partial or wrong blob under a final name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
        for dir in [root.join("blobs/sha256"), ingest.clone()] {
            fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        for entry in fs::read_dir(&ingest).map_err(io_at(&ingest))? {
            let path = entry.map_err(io_at(&ingest))?.path();
            fs::remove_file(&path).map_err(io_at(&path))?;
        }
        Ok(Blobs {
            root: root.to_path_buf(),
            next: AtomicU64::new(0),
        })
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
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("ingest")
            .join(format!("{}-{n}", std::process::id()));
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn open_clears_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        Blobs::open(dir.path()).unwrap();
        fs::write(dir.path().join("ingest/123-0"), b"half a layer").unwrap();
        Blobs::open(dir.path()).unwrap();
        assert!(ingest_is_empty(dir.path()));
    }
}
