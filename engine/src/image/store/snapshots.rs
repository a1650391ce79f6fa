//! Unpacked layers, one directory per chain ID under `<root>/snapshots/<hex>`, shared by every
//! image whose stack starts the same way; and the overlayfs mount a container runs on. Which
//! snapshots are in use is derived from the image and container records each time (never a
//! counter that a crash could leave wrong), so a layer in use is never collected.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::image::layer::{ExtractOptions, LayerError, Stats, extract_layer};
use crate::image::reference::Digest;

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Numbers the temporary directories of unpacks: process-wide, so two stores open on one root
/// in one process (a store reopened while a cancelled pull's unpack still runs on the
/// blocking pool) never share one.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The snapshot directories.
#[derive(Debug)]
pub struct Snapshots {
    root: PathBuf,
}

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The layer would not unpack.
    #[error("layer {chain_id}: {source}")]
    Layer {
        /// The snapshot being made.
        chain_id: Digest,
        /// Why.
        source: LayerError,
    },
    /// The layer's content is not what the image config says (its diff ID).
    #[error(
        "layer {chain_id}: uncompressed content is {actual}, but the image config says {expected}"
    )]
    DiffId {
        /// The snapshot being made.
        chain_id: Digest,
        /// The config's diff ID.
        expected: String,
        /// What the layer hashes to.
        actual: String,
    },
    /// The file system refused.
    #[error("snapshot store {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// An overlayfs mount for one container: image layers below, the container's own layer on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Snapshot directories, topmost first (overlayfs's `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's scratch directory, on the same file system as `upper`.
    pub work: PathBuf,
}

impl OverlaySpec {
    /// The mount options: `lowerdir=top:...:bottom,upperdir=..,workdir=..`.
    pub fn options(&self) -> String {
        let lower: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        )
    }
}

impl Snapshots {
    /// Opens (creating) the snapshot directory under `root`.
    pub fn open(root: &Path) -> Result<Snapshots, SnapshotError> {
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Snapshots { root: dir })
    }

    /// The directory of snapshot `chain_id`.
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(&chain_id.hex)
    }

    /// Whether snapshot `chain_id` is unpacked.
    pub fn has(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).is_dir()
    }

    /// Unpacks `layer` as snapshot `chain_id` unless it already exists; `None` when it did.
    pub fn unpack(
        &self,
        chain_id: &Digest,
        layer: impl Read,
        opts: ExtractOptions,
    ) -> Result<Option<Stats>, SnapshotError> {
        if self.has(chain_id) {
            return Ok(None);
        }
        extract_layer(layer, &self.path(chain_id), opts)
            .map(Some)
            .map_err(|source| SnapshotError::Layer {
                chain_id: chain_id.clone(),
                source,
            })
    }

    /// Unpacks the decompressed layer `tar` as snapshot `chain_id`, checking that it hashes to
    /// `diff_id` before the snapshot appears; returns the tar's size, or `None` when the snapshot
    /// already existed. Safe to race with another unpack of the same snapshot.
    pub fn unpack_verified(
        &self,
        chain_id: &Digest,
        diff_id: &Digest,
        tar: impl Read,
        opts: ExtractOptions,
    ) -> Result<Option<u64>, SnapshotError> {
        if self.has(chain_id) {
            return Ok(None);
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join(format!(
            ".{}.verify-{}-{n}",
            chain_id.hex,
            std::process::id()
        ));
        let mut reader = HashingReader {
            inner: tar,
            hasher: Sha256::new(),
            len: 0,
        };
        let layer_err = |source| SnapshotError::Layer {
            chain_id: chain_id.clone(),
            source,
        };
        extract_layer(&mut reader, &tmp, opts).map_err(layer_err)?;
        let result = (|| {
            // The tar's end-of-archive blocks and any padding count too.
            io::copy(&mut reader, &mut io::sink()).map_err(|e| {
                layer_err(LayerError::Io {
                    entry: String::new(),
                    source: e,
                })
            })?;
            let actual = Digest {
                algorithm: "sha256".into(),
                hex: format!("{:x}", reader.hasher.clone().finalize()),
            };
            if actual != *diff_id {
                return Err(SnapshotError::DiffId {
                    chain_id: chain_id.clone(),
                    expected: diff_id.to_string(),
                    actual: actual.to_string(),
                });
            }
            let dest = self.path(chain_id);
            match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(Some(reader.len)),
                // Another pull unpacked it meanwhile.
                Err(_) if self.has(chain_id) => Ok(None),
                Err(source) => Err(SnapshotError::Io { path: dest, source }),
            }
        })();
        if tmp.exists() {
            let _ = crate::tree::remove_tree(&tmp);
        }
        result
    }

    /// The overlay for a container on the stack `chain_ids` (bottom first), with its writable
    /// layer under `container_dir`, which this creates.
    pub fn overlay(
        &self,
        chain_ids: &[Digest],
        container_dir: &Path,
    ) -> Result<OverlaySpec, SnapshotError> {
        let spec = OverlaySpec {
            lower: chain_ids.iter().rev().map(|c| self.path(c)).collect(),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
        };
        for d in [&spec.upper, &spec.work] {
            fs::create_dir_all(d).map_err(|source| SnapshotError::Io {
                path: d.clone(),
                source,
            })?;
        }
        Ok(spec)
    }

    /// Entries the collector may remove: snapshots not in `in_use`, leftovers of interrupted
    /// unpacks (and unpacks in flight: the caller's leases decide) and trash not yet deleted.
    pub fn candidates(&self, in_use: &BTreeSet<Digest>) -> Result<Vec<Candidate>, SnapshotError> {
        let keep: BTreeSet<&str> = in_use.iter().map(|d| d.hex.as_str()).collect();
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(io_at(&self.root))? {
            let e = e.map_err(io_at(&self.root))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(name.as_str()) {
                continue;
            }
            let trash = name.starts_with(TRASH);
            out.push(Candidate {
                chain_id: if trash {
                    None
                } else {
                    Digest::sha256(&name).ok()
                },
                path: e.path(),
                trash,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Moves a candidate out of the way at once (one rename: the collector does it under its
    /// locks) and returns where it went, for deletion after them; `None` when it is gone
    /// already (an unpack in flight that finished, or gave up, since it was listed).
    pub fn trash(&self, path: &Path) -> Result<Option<PathBuf>, SnapshotError> {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TRASH))
        {
            return Ok(Some(path.to_path_buf()));
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let to = self.root.join(format!("{TRASH}{}-{n}", std::process::id()));
        match fs::rename(path, &to) {
            Ok(()) => Ok(Some(to)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SnapshotError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The name prefix of snapshots on their way out.
const TRASH: &str = ".trash-";

/// An entry of the snapshot directory that nothing recorded keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The snapshot's chain ID; `None` for leftovers and trash.
    pub chain_id: Option<Digest>,
    /// Where it is.
    pub path: PathBuf,
    /// Already on its way out: nothing can refer to it.
    pub trash: bool,
}

impl Candidate {
    /// When it last changed, read now (the epoch for trash, which is always removable).
    pub fn ctime(&self) -> SystemTime {
        if self.trash {
            SystemTime::UNIX_EPOCH
        } else {
            super::leases::ctime_of(&self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, data: &[u8]) -> Vec<u8> {
        crate::image::layer::fixtures::tarball(&[(name, data)])
    }

    fn digest(c: char) -> Digest {
        Digest::sha256(&c.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn unpacks_once_and_collects_only_what_is_unused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::open(dir.path()).unwrap();
        let opts = ExtractOptions::default();
        let (a, b) = (digest('a'), digest('b'));
        assert!(
            s.unpack(&a, &layer("base", b"1")[..], opts)
                .unwrap()
                .is_some()
        );
        assert!(
            s.unpack(&a, &layer("other", b"2")[..], opts)
                .unwrap()
                .is_none()
        );
        s.unpack(&b, &layer("top", b"3")[..], opts).unwrap();
        assert_eq!(fs::read(s.path(&a).join("base")).unwrap(), b"1");
        fs::create_dir(dir.path().join("snapshots/.x.partial-1")).unwrap();
        let found = s.candidates(&[a.clone()].into()).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![".x.partial-1".to_string(), b.hex.clone()]);
        assert_eq!(found[0].chain_id, None);
        assert_eq!(found[1].chain_id, Some(b.clone()));
        let t = s.trash(&found[1].path).unwrap().unwrap();
        assert!(s.has(&a) && !s.has(&b));
        // Trash is always a candidate, with nothing to keep it.
        let again = s.candidates(&[a.clone()].into()).unwrap();
        let trash = again.iter().find(|c| c.path == t).unwrap();
        assert_eq!(
            (trash.chain_id.clone(), trash.ctime()),
            (None, SystemTime::UNIX_EPOCH)
        );
        assert_eq!(s.trash(&t).unwrap(), Some(t));
        // An entry gone between the listing and the collection (an unpack that finished) is
        // no error.
        assert_eq!(
            s.trash(&found[0].path.with_extension("gone")).unwrap(),
            None
        );
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_leaves_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::open(dir.path()).unwrap();
        let tar = layer("f", b"data");
        let diff = crate::image::store::sha256(&tar);
        let e = s
            .unpack_verified(
                &digest('c'),
                &digest('d'),
                &tar[..],
                ExtractOptions::default(),
            )
            .unwrap_err();
        assert!(matches!(e, SnapshotError::DiffId { .. }), "{e}");
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            0
        );
        let got = s
            .unpack_verified(&digest('c'), &diff, &tar[..], ExtractOptions::default())
            .unwrap();
        assert_eq!(got, Some(tar.len() as u64));
        assert_eq!(fs::read(s.path(&digest('c')).join("f")).unwrap(), b"data");
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            1
        );
    }

    #[test]
    fn the_overlay_puts_the_top_layer_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::open(dir.path()).unwrap();
        let c = dir.path().join("containers/c1");
        let spec = s.overlay(&[digest('a'), digest('b')], &c).unwrap();
        let snap = dir.path().join("snapshots");
        assert_eq!(
            spec.options(),
            format!(
                "lowerdir={}/{}:{}/{},upperdir={}/upper,workdir={}/work",
                snap.display(),
                "b".repeat(64),
                snap.display(),
                "a".repeat(64),
                c.display(),
                c.display()
            )
        );
        assert!(spec.upper.is_dir() && spec.work.is_dir());
    }
}
