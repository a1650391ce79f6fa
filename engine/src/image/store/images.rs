//! The image store: records and tags over the blob and snapshot stores, what `docker images`,
//! `tag`, `rmi`, `import` and `commit` work on. Records live in one JSON file replaced
//! atomically; blobs and snapshots that no record, container or lease keeps are collected
//! after a removal.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sha2::{Digest as _, Sha256};

use super::blobs::{BlobError, Blobs};
use super::leases::{Lease, Leases, ctime_of};
use super::records::{ImageRecord, ImageUser, LayerRecord, Records};
use super::snapshots::{SnapshotError, Snapshots};
use crate::image::layer::{ExtractOptions, decompress};
use crate::image::manifest::{chain_ids, host_platform};
use crate::image::reference::{Digest, Reference, ReferenceError};

/// The records file under the image root.
const RECORDS: &str = "images.json";
/// Media types of what `import` writes.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image by that name or ID.
    #[error("No such image: {0}")]
    NotFound(String),
    /// An ID prefix matches several images.
    #[error("image ID prefix {0:?} is ambiguous; give more digits")]
    Ambiguous(String),
    /// `rmi TAG` of an image's last tag while a container uses the image, without force.
    #[error(
        "conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {image}"
    )]
    ReferenceInUse {
        /// The reference as the user named it.
        reference: String,
        /// The container's short ID.
        container: String,
        /// The image's short ID.
        image: String,
    },
    /// `rmi ID` of an image a container uses: never for a running one, only with force for
    /// a stopped one.
    #[error(
        "conflict: unable to delete {image} ({}) - image is being used by {} container {container}",
        if *running { "cannot be forced" } else { "must be forced" },
        if *running { "running" } else { "stopped" }
    )]
    InUse {
        /// The image's short ID.
        image: String,
        /// The container's short ID.
        container: String,
        /// Whether that container runs.
        running: bool,
    },
    /// Several tags and no force.
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleTags {
        /// The short ID.
        id: String,
    },
    /// A bad reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Blob store trouble.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Snapshot trouble (boxed: it is large).
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    /// The records file.
    #[error(transparent)]
    Records(#[from] berth_common::persist::PersistError),
    /// Reading the input or writing scratch files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: io::Error,
    },
}

impl From<SnapshotError> for ImageError {
    fn from(e: SnapshotError) -> Self {
        ImageError::Snapshot(Box::new(e))
    }
}

/// The image store, shared as `Arc<ImageStore>` and synchronized inside: readers take an
/// immutable [`Records`] snapshot and never wait on I/O; writers of records are serialized by
/// one writer lock held for the change and its atomic save (and by a running collection);
/// long operations (pull, load, import, commit) write blobs and snapshots under a [`Lease`]
/// with no lock held, and take the writer lock only to record the result.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    blobs: Arc<Blobs>,
    snapshots: Arc<Snapshots>,
    leases: Arc<Leases>,
    records: RwLock<Arc<Records>>,
    writer: Mutex<()>,
    /// Layers (chain IDs) containers run on, by container ID: kept by the collector even
    /// after their image is deleted (`rmi -f` under a stopped container).
    holds: Mutex<HashMap<String, Vec<Digest>>>,
    /// The image each container created through [`ImageStore::resolve_and_hold`] uses, by
    /// container ID: `rmi` and `prune` count it as used even before the container is in the
    /// engine's published index.
    held_images: Mutex<HashMap<String, Digest>>,
}

/// An image whose blobs and snapshots are in the store, about to get its record (a pull or a
/// load).
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The config blob (the image ID).
    pub config: Digest,
    /// The manifest blob.
    pub manifest: Digest,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// From the config.
    pub created: String,
    /// `repo@sha256:...` it was pulled as.
    pub repo_digest: Option<String>,
    /// The image it was committed on.
    pub parent: Option<Digest>,
}

fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(super) fn now() -> String {
    berth_common::time::rfc3339(berth_common::time::unix(std::time::SystemTime::now()).0)
}

/// Docker's "Untagged: REF" line, with the reference as Docker prints it (`app:1`, not
/// `docker.io/library/app:1`).
fn untagged(stored: &str) -> String {
    let shown = stored
        .parse::<Reference>()
        .map_or_else(|_| stored.to_string(), |r| r.familiar_name_with_tag());
    format!("Untagged: {shown}")
}

impl ImageStore {
    /// Opens (creating) the store under `root` (`<data-root>/image`).
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let blobs = Arc::new(Blobs::open(root)?);
        let snapshots = Arc::new(Snapshots::open(root)?);
        let records: Records =
            berth_common::persist::load(&root.join(RECORDS))?.unwrap_or_default();
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            snapshots,
            leases: Arc::new(Leases::default()),
            records: RwLock::new(Arc::new(records)),
            writer: Mutex::new(()),
            holds: Mutex::new(HashMap::new()),
            held_images: Mutex::new(HashMap::new()),
        })
    }

    /// The blob store (shared with downloads that run while the records are not locked).
    pub fn blobs(&self) -> &Arc<Blobs> {
        &self.blobs
    }

    /// The snapshot store.
    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    /// Begins a lease: what the caller writes from now on, and what it protects, is kept from
    /// the collector until the lease is dropped.
    pub fn lease(&self) -> Lease {
        self.leases.begin()
    }

    /// The records as they are now; later changes do not touch the snapshot.
    pub fn snapshot(&self) -> Arc<Records> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Finds an image by reference, ID or ID prefix (see [`Records::resolve`]).
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, ImageError> {
        self.snapshot().resolve(name).cloned()
    }

    /// Keeps the layers `chains` for container `owner` until [`ImageStore::release`].
    pub fn hold(&self, owner: &str, chains: Vec<Digest>) {
        self.holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(owner.to_string(), chains);
    }

    /// Finds image `name` and holds its layers for container `owner` in one step: no
    /// collection can run between the two (both happen under the writer lock), so an `rmi`
    /// racing a `create` either finds the container holding the layers or removes the image
    /// before the create finds it.
    pub fn resolve_and_hold(&self, owner: &str, name: &str) -> Result<ImageRecord, ImageError> {
        let _w = self.write_lock();
        let img = self.resolve(name)?;
        self.hold(
            owner,
            img.layers.iter().map(|l| l.chain_id.clone()).collect(),
        );
        self.held_images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(owner.to_string(), img.id.clone());
        Ok(img)
    }

    /// A container holding image `id` (see [`ImageStore::resolve_and_hold`]), as a stopped
    /// user: `rmi`'s rules then apply to it as to any container not running.
    fn holder_of(&self, id: &Digest) -> Option<ImageUser> {
        let held = self.held_images.lock().unwrap_or_else(|e| e.into_inner());
        let mut owners: Vec<&String> = held
            .iter()
            .filter(|(_, i)| *i == id)
            .map(|(o, _)| o)
            .collect();
        owners.sort();
        owners.first().map(|o| ImageUser {
            container: o.chars().take(12).collect(),
            running: false,
        })
    }

    /// Lets the collector have what `owner` held.
    pub fn release(&self, owner: &str) {
        self.holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(owner);
        self.held_images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(owner);
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the records with `f` and saves them atomically; readers see the change only
    /// once it is saved, and nothing of it when `f` or the save fails.
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Records) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _w = self.write_lock();
        let mut next = (*self.snapshot()).clone();
        let out = f(&mut next)?;
        berth_common::persist::save(&self.root.join(RECORDS), &next)?;
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(out)
    }

    /// Records an image whose blobs and snapshots are stored, tagging it `tag` (which moves
    /// off any image that had it; that one stays, untagged, as Docker's dangling images do).
    /// The caller's lease keeps the content until this returns.
    pub fn add(&self, new: NewImage, tag: Option<&Reference>) -> Result<ImageRecord, ImageError> {
        crate::failpoint::hit("image:before-record");
        self.update(|records| {
            // Checked under the writer lock: no collection runs between here and the save.
            for d in [&new.config, &new.manifest]
                .into_iter()
                .chain(new.layers.iter().map(|l| &l.blob))
            {
                if !self.blobs.has(d) {
                    return Err(BlobError::NotFound(d.clone()).into());
                }
            }
            for l in &new.layers {
                if !self.snapshots.has(&l.chain_id) {
                    return Err(ImageError::Io {
                        what: format!("recording image {}", new.config),
                        source: io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("layer snapshot {} is missing", l.chain_id),
                        ),
                    });
                }
            }
            let size = new.layers.iter().map(|l| l.unpacked).sum();
            let record = match records.images.get_mut(&new.config.hex) {
                Some(old) => {
                    old.repo_digests.extend(new.repo_digest);
                    old.clone()
                }
                None => {
                    let record = ImageRecord {
                        id: new.config.clone(),
                        manifest: new.manifest,
                        layers: new.layers,
                        created: new.created,
                        size,
                        repo_digests: new.repo_digest.into_iter().collect(),
                        parent: new.parent,
                    };
                    records
                        .images
                        .insert(new.config.hex.clone(), record.clone());
                    record
                }
            };
            if let Some(t) = tag {
                records.tags.insert(t.to_string(), record.id.clone());
            }
            Ok(record)
        })
    }

    /// Notes that image `id` is known to a registry as `repo_digest` (after a push).
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: String) -> Result<(), ImageError> {
        self.update(|records| {
            if let Some(img) = records.images.get_mut(&id.hex) {
                img.repo_digests.insert(repo_digest);
            }
            Ok(())
        })
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), ImageError> {
        let target: Reference = target.parse()?;
        self.update(|records| {
            let id = records.resolve(source)?.id.clone();
            records.tags.insert(target.to_string(), id);
            Ok(())
        })
    }

    /// `docker import`: a root file system tarball (plain, gzip or zstd) becomes a one-layer
    /// image, tagged `tag` when given. No lock is held while the layer is stored.
    pub fn import(&self, input: impl Read, tag: Option<&str>) -> Result<ImageRecord, ImageError> {
        self.import_with(input, tag, serde_json::json!({}), "Imported from -")
    }

    /// [`ImageStore::import`] with the run configuration `config` (`docker import --change`)
    /// and `comment` on its history entry (`--message`, else Docker's "Imported from -").
    pub fn import_with(
        &self,
        input: impl Read,
        tag: Option<&str>,
        config: serde_json::Value,
        comment: &str,
    ) -> Result<ImageRecord, ImageError> {
        let _bg = crate::image::background::enter();
        let tag: Option<Reference> = tag.map(str::parse).transpose()?;
        let lease = self.lease();
        let result = self.store_layer(&lease, input, None).and_then(|layer| {
            let created = now();
            let history = serde_json::json!([{"created": created, "comment": comment}]);
            self.record_image(vec![layer], config, history, created, tag.as_ref(), None)
        });
        drop(lease);
        if result.is_err() {
            // What the failed import stored belongs to no image: drop it now.
            let _ = self.collect();
        }
        result
    }

    /// Stores a layer tarball (plain, gzip or zstd) as a gzip blob and unpacks its snapshot on
    /// top of the stack whose chain ID is `parent`.
    /// `lease` keeps both until the caller records them.
    pub fn store_layer(
        &self,
        lease: &Lease,
        input: impl Read,
        parent: Option<&Digest>,
    ) -> Result<LayerRecord, ImageError> {
        let scratch = self.blobs.scratch("layer");
        let result = self.store_layer_via(lease, &scratch, input, parent);
        let _ = fs::remove_file(&scratch);
        result
    }

    fn store_layer_via(
        &self,
        lease: &Lease,
        scratch: &Path,
        input: impl Read,
        parent: Option<&Digest>,
    ) -> Result<LayerRecord, ImageError> {
        // Re-compress into a scratch file while hashing the uncompressed stream (the diff ID).
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(scratch)
            .map_err(io(format!("creating {}", scratch.display())))?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tee = Hashing {
            inner: gz,
            hasher: Sha256::new(),
            len: 0,
        };
        let mut plain = decompress(input).map_err(io("reading the layer tarball"))?;
        io::copy(&mut plain, &mut tee).map_err(io("reading the layer tarball"))?;
        let (size, diff_id) = (
            tee.len,
            Digest {
                algorithm: "sha256".into(),
                hex: format!("{:x}", tee.hasher.finalize()),
            },
        );
        let mut file = tee.inner.finish().map_err(io("compressing the layer"))?;
        file.rewind().map_err(io("compressing the layer"))?;
        // Written now (its fresh ctime is under the lease); protected by name too.
        let blob = self.blobs.put(None, None, &mut file)?;
        lease.protect(&blob);
        let blob_size = fs::metadata(self.blobs.path(&blob))
            .map_err(io("sizing the layer"))?
            .len();
        let chain_id = match parent {
            None => diff_id.clone(),
            Some(p) => chain_ids(&[p.clone(), diff_id.clone()])
                .pop()
                .expect("two chain IDs"),
        };
        // Before looking whether the snapshot exists: an existing one then stays.
        lease.protect(&chain_id);
        self.snapshots.unpack_verified(
            &chain_id,
            &diff_id,
            decompress(self.blobs.open_blob(&blob)?).map_err(io("reading the stored layer"))?,
            ExtractOptions {
                whiteouts: true,
                allow_devices: false,
                preserve_owners: true,
            },
        )?;
        Ok(LayerRecord {
            blob,
            media_type: OCI_LAYER_GZIP.into(),
            size: blob_size,
            unpacked: size,
            diff_id,
            chain_id,
        })
    }

    /// Makes an image of stored `layers` (bottom first) with `config` as its runtime
    /// configuration (`Env`, `Cmd`, ... as in an image config's `config` object) and one
    /// history entry per layer (`created_by`), and records it tagged `tag`.
    pub fn commit(
        &self,
        layers: Vec<LayerRecord>,
        config: serde_json::Value,
        created_by: &[&str],
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        let created = now();
        let history: Vec<serde_json::Value> = created_by
            .iter()
            .map(|c| serde_json::json!({"created": created, "created_by": c}))
            .collect();
        self.record_image(layers, config, history.into(), created, tag, None)
    }

    /// Records an image of `layers` whose config is made here: `config` as its run
    /// configuration, `history` as its history, `parent` as Docker's parent image.
    pub(super) fn record_image(
        &self,
        layers: Vec<LayerRecord>,
        config: serde_json::Value,
        history: serde_json::Value,
        created: String,
        tag: Option<&Reference>,
        parent: Option<Digest>,
    ) -> Result<ImageRecord, ImageError> {
        let (os, arch) = host_platform();
        let config = serde_json::json!({
            "created": created, "architecture": arch, "os": os, "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "history": history,
        });
        let config_bytes = serde_json::to_vec(&config).expect("JSON values serialise");
        self.record_config(&config_bytes, layers, created, tag, parent)
    }

    /// Records an image of stored `layers` with `config_bytes` as its config, kept byte for byte
    /// (so its ID is kept, as `docker load` does), under a new OCI manifest.
    pub fn commit_config(
        &self,
        config_bytes: &[u8],
        layers: Vec<LayerRecord>,
        created: String,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        self.record_config(config_bytes, layers, created, tag, None)
    }

    /// [`ImageStore::commit_config`] with Docker's parent image recorded.
    pub(super) fn record_config(
        &self,
        config_bytes: &[u8],
        layers: Vec<LayerRecord>,
        created: String,
        tag: Option<&Reference>,
        parent: Option<Digest>,
    ) -> Result<ImageRecord, ImageError> {
        // Keeps the two blobs written here until the record is saved.
        let _lease = self.lease();
        let id = self.blobs.put_bytes(None, config_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": id.to_string(), "size": config_bytes.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest = self.blobs.put_bytes(
            None,
            &serde_json::to_vec(&manifest).expect("JSON values serialise"),
        )?;
        self.add(
            NewImage {
                config: id,
                manifest,
                layers,
                created,
                repo_digest: None,
                parent,
            },
            tag,
        )
    }

    /// `docker rmi NAME` with Docker's rules. A tag with other tags left only loses that
    /// tag. Otherwise `user_of` says which container uses the image (a running one first):
    /// the last tag of an image in use is refused without `force`, and with it only untagged
    /// (the image stays, dangling, while its container runs); an image named by ID is never
    /// removed under a running container, and under a stopped one only with `force`, which
    /// untags it and keeps its record and layers until the container is gone (the container
    /// starts from them). Unreferenced blobs and snapshots are collected. Returns Docker's
    /// "Untagged:" and "Deleted:" lines.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        user_of: impl Fn(&Digest) -> Option<ImageUser>,
    ) -> Result<Vec<String>, ImageError> {
        let (out, deleted) = self.update(|records| {
            let id = records.resolve(name)?.id.clone();
            let short = id.hex[..12].to_string();
            let tags: Vec<String> = records.tags_of(&id).into_iter().map(String::from).collect();
            let by_tag = name
                .parse::<Reference>()
                .ok()
                .map(|r| r.to_string())
                .filter(|r| tags.contains(r));
            if let Some(t) = &by_tag {
                if tags.len() > 1 {
                    records.tags.remove(t);
                    return Ok((vec![untagged(t)], false));
                }
            } else if tags.len() > 1 && !force {
                return Err(ImageError::MultipleTags { id: short });
            }
            let mut untag_all = || {
                tags.iter()
                    .map(|t| {
                        records.tags.remove(t);
                        untagged(t)
                    })
                    .collect::<Vec<_>>()
            };
            // A container whose create holds the image counts, before the index shows it.
            let user = user_of(&id).or_else(|| self.holder_of(&id));
            match (by_tag.is_some(), user) {
                (true, Some(u)) if !force => Err(ImageError::ReferenceInUse {
                    reference: name.to_string(),
                    container: u.container,
                    image: short,
                }),
                (false, Some(u)) if u.running || !force => Err(ImageError::InUse {
                    image: short,
                    container: u.container,
                    running: u.running,
                }),
                // Forced under a running container: the names go, the image stays.
                (_, Some(u)) if u.running => Ok((untag_all(), false)),
                // Forced under a stopped one, or unused: the image goes; layers its
                // containers hold stay (see `hold`).
                _ => {
                    let mut out = untag_all();
                    records.images.remove(&id.hex);
                    out.push(format!("Deleted: {id}"));
                    Ok((out, true))
                }
            }
        })?;
        if deleted {
            self.collect()?;
        }
        Ok(out)
    }

    /// `docker image prune [-a]`: removes untagged images (with `all`, every image) that no
    /// container uses, then unreferenced blobs, snapshots and interrupted downloads (none
    /// that a live lease keeps). Returns Docker's "Deleted:"/"Untagged:" lines and the bytes
    /// reclaimed.
    pub fn prune(
        &self,
        all: bool,
        in_use: impl Fn(&Digest) -> bool,
    ) -> Result<(Vec<String>, u64), ImageError> {
        let before = self.disk_usage();
        let out = self.update(|records| {
            let mut out = Vec::new();
            // An image with children (a build's intermediate step, the parent of a commit)
            // is never pruned itself, as Docker's; it goes once its children have gone, so the
            // removal repeats until nothing more goes.
            loop {
                let parents: std::collections::BTreeSet<Digest> = records
                    .images
                    .values()
                    .filter_map(|i| i.parent.clone())
                    .collect();
                let doomed: Vec<Digest> = records
                    .images
                    .values()
                    .filter(|img| {
                        (all || records.tags_of(&img.id).is_empty())
                            && !parents.contains(&img.id)
                            && !in_use(&img.id)
                            && self.holder_of(&img.id).is_none()
                    })
                    .map(|img| img.id.clone())
                    .collect();
                if doomed.is_empty() {
                    break;
                }
                for id in doomed {
                    let tags: Vec<String> =
                        records.tags_of(&id).into_iter().map(String::from).collect();
                    for t in tags {
                        records.tags.remove(&t);
                        out.push(untagged(&t));
                    }
                    records.images.remove(&id.hex);
                    out.push(format!("Deleted: {id}"));
                }
            }
            Ok(out)
        })?;
        self.collect()?;
        for path in self.blobs.partials()? {
            // A download in progress holds its file's lock and is skipped; an old one goes.
            self.leases.sweep(
                None,
                || ctime_of(&path),
                || self.blobs.remove_partial_if_idle(&path),
            )?;
        }
        Ok((out, before.saturating_sub(self.disk_usage())))
    }

    /// Bytes under the store (blobs, snapshots, downloads), for `system df` and prune.
    pub fn disk_usage(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(meta) = fs::symlink_metadata(p) else {
                return 0;
            };
            if meta.is_dir() {
                fs::read_dir(p)
                    .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                    .unwrap_or(0)
            } else {
                meta.len()
            }
        }
        ["blobs", "snapshots", "partial"]
            .iter()
            .map(|d| walk(&self.root.join(d)))
            .sum()
    }

    /// Removes blobs and snapshots that no record refers to, no container holds and no live
    /// lease keeps. Runs under the writer lock (no record can gain a reference between the
    /// mark and the sweep); snapshots are moved into a trash directory there and deleted
    /// after the lock is released.
    pub fn collect(&self) -> Result<(), ImageError> {
        let trash = {
            let _w = self.write_lock();
            let records = self.snapshot();
            let mut blobs = BTreeSet::new();
            let mut chains = BTreeSet::new();
            for img in records.images() {
                blobs.insert(img.id.clone());
                blobs.insert(img.manifest.clone());
                for l in &img.layers {
                    blobs.insert(l.blob.clone());
                    chains.insert(l.chain_id.clone());
                }
            }
            for held in self
                .holds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                chains.extend(held.iter().cloned());
            }
            for d in self.blobs.list()? {
                if blobs.contains(&d) {
                    continue;
                }
                let path = self.blobs.path(&d);
                self.leases
                    .sweep(Some(&d), || ctime_of(&path), || self.blobs.remove(&d))?;
            }
            let mut trash = Vec::new();
            for c in self.snapshots.candidates(&chains)? {
                self.leases.sweep(
                    c.chain_id.as_ref(),
                    || c.ctime(),
                    || {
                        trash.extend(self.snapshots.trash(&c.path)?);
                        Ok::<_, SnapshotError>(())
                    },
                )?;
            }
            trash
        };
        for t in trash {
            if let Err(e) = crate::tree::remove_tree(&t) {
                tracing::warn!(path = %t.display(), error = %e, "removing a collected snapshot");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> Vec<u8> {
        crate::image::layer::fixtures::tarball(&[
            ("bin/busybox", b"#!elf"),
            ("etc/hostname", b"box\n"),
        ])
    }

    #[test]
    fn prune_removes_dangling_images_then_unused_ones_with_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let old = s.import(&rootfs()[..], Some("app:1")).unwrap();
        // Re-importing different content under the same tag leaves the old image dangling.
        let tar = crate::image::layer::fixtures::tarball(&[("bin/new", b"2")]);
        let new = s.import(&tar[..], Some("app:1")).unwrap();
        let kept = s
            .import(
                &crate::image::layer::fixtures::tarball(&[("x", b"3")])[..],
                Some("keep:1"),
            )
            .unwrap();
        fs::write(dir.path().join("partial/abc"), b"half").unwrap();
        let (lines, freed) = s.prune(false, |_| false).unwrap();
        assert_eq!(lines, vec![format!("Deleted: {}", old.id)]);
        assert!(freed > 0);
        assert!(!s.snapshots().has(&old.layers[0].chain_id));
        assert!(!dir.path().join("partial/abc").exists());
        // -a: everything unused goes; an image in use stays.
        let (lines, _) = s.prune(true, |id| *id == kept.id).unwrap();
        assert_eq!(
            lines,
            vec![
                "Untagged: app:1".to_string(),
                format!("Deleted: {}", new.id)
            ]
        );
        assert_eq!(s.snapshot().list().len(), 1);
        assert!(s.snapshots().has(&kept.layers[0].chain_id));
    }

    #[test]
    fn import_tag_list_and_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let tar = rootfs();
        let img = s.import(&tar[..], Some("box:1")).unwrap();
        assert_eq!(img.size, tar.len() as u64);
        assert_eq!(
            img.layers[0].diff_id.hex,
            format!("{:x}", Sha256::digest(&tar))
        );
        assert_eq!(
            fs::read(
                s.snapshots()
                    .path(&img.layers[0].chain_id)
                    .join("etc/hostname")
            )
            .unwrap(),
            b"box\n"
        );
        // The config names the layer; the manifest names the config and the layer blob.
        let config: serde_json::Value =
            serde_json::from_slice(&s.blobs().read(&img.id).unwrap()).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            img.layers[0].diff_id.to_string()
        );
        let m =
            crate::image::manifest::parse(&s.blobs().read(&img.manifest).unwrap(), None).unwrap();
        assert!(matches!(m, crate::image::manifest::Document::Manifest(_)));

        s.tag("box:1", "localhost:5000/box:latest").unwrap();
        let rows = s.snapshot().list();
        let names: Vec<_> = rows
            .iter()
            .map(|r| format!("{}:{}", r.repository, r.tag))
            .collect();
        assert_eq!(names, ["box:1", "localhost:5000/box:latest"]);
        assert_eq!(s.resolve(&img.id.hex[..6]).unwrap().id, img.id);

        // Records survive a reopen.
        let s = ImageStore::open(dir.path()).unwrap();
        assert_eq!(s.resolve("box:1").unwrap().id, img.id);
        let e = s.remove(&img.id.hex, false, |_| None).unwrap_err();
        assert!(
            e.to_string()
                .contains("referenced in multiple repositories"),
            "{e}"
        );
        assert_eq!(
            s.remove("box:1", false, |_| None).unwrap(),
            ["Untagged: box:1"]
        );
        let out = s.remove("localhost:5000/box", false, |_| None).unwrap();
        assert_eq!(out.last().unwrap(), &format!("Deleted: {}", img.id));
        assert!(s.blobs().list().unwrap().is_empty(), "blobs left after rmi");
        assert!(!s.snapshots().has(&img.layers[0].chain_id));
        assert!(matches!(s.resolve("box:1"), Err(ImageError::NotFound(_))));
    }

    #[test]
    fn two_imports_of_one_rootfs_share_their_layer() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let a = s.import(&rootfs()[..], Some("a")).unwrap();
        let b = s.import(&rootfs()[..], Some("b")).unwrap();
        assert_eq!(a.layers[0].chain_id, b.layers[0].chain_id);
        s.remove("a", false, |_| None).unwrap();
        assert!(
            s.snapshots().has(&b.layers[0].chain_id),
            "a layer in use was collected"
        );
    }

    #[test]
    fn a_bad_tarball_leaves_no_image_and_no_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let e = s
            .import(&evil.into_inner().unwrap()[..], Some("evil"))
            .unwrap_err();
        assert!(e.to_string().contains("../escape"), "{e}");
        assert!(s.snapshot().list().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        assert!(
            s.blobs().list().unwrap().is_empty(),
            "an orphan blob was left"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            0
        );
        assert!(matches!(
            s.import(&b"x"[..], Some("Bad:Tag")),
            Err(ImageError::Reference(_))
        ));
    }

    #[test]
    fn rmi_follows_dockers_rules_for_images_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let img = s.import(&rootfs()[..], Some("bb:1")).unwrap();
        s.tag("bb:1", "bb:2").unwrap();
        let short = img.id.hex[..12].to_string();
        let user = |running| {
            move |_: &Digest| {
                Some(ImageUser {
                    container: "d3234c944fe3".into(),
                    running,
                })
            }
        };
        // A tag with another left: untagged even while in use.
        assert_eq!(
            s.remove("bb:2", false, user(true)).unwrap(),
            ["Untagged: bb:2"]
        );
        // The last tag, in use, no force (Docker's message, checked against dockerd 20.10).
        let e = s.remove("bb:1", false, user(false)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to remove repository reference \"bb:1\" (must force) - container d3234c944fe3 is using its referenced image {short}"
            )
        );
        // By ID: a running user can never be forced away.
        for force in [false, true] {
            let e = s.remove(&img.id.hex, force, user(true)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by running container d3234c944fe3"
                )
            );
        }
        let e = s.remove(&short, false, user(false)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to delete {short} (must be forced) - image is being used by stopped container d3234c944fe3"
            )
        );
        assert_eq!(s.resolve("bb:1").unwrap().id, img.id, "nothing changed");
        // Forced under a running container: untagged, the image and its layers stay.
        assert_eq!(
            s.remove("bb:1", true, user(true)).unwrap(),
            ["Untagged: bb:1"]
        );
        assert!(s.snapshots().has(&img.layers[0].chain_id));
        assert_eq!(s.resolve(&short).unwrap().id, img.id);
        // Forced under a stopped one: untagged and deleted, as Docker; the layers the
        // container holds stay until it lets them go.
        s.tag(&short, "bb:3").unwrap();
        let chains: Vec<Digest> = img.layers.iter().map(|l| l.chain_id.clone()).collect();
        s.hold("c1", chains);
        assert_eq!(
            s.remove(&short, true, user(false)).unwrap(),
            ["Untagged: bb:3".to_string(), format!("Deleted: {}", img.id)]
        );
        assert!(matches!(s.resolve(&short), Err(ImageError::NotFound(_))));
        assert!(s.snapshots().has(&img.layers[0].chain_id));
        s.release("c1");
        s.collect().unwrap();
        assert!(!s.snapshots().has(&img.layers[0].chain_id));
    }

    #[test]
    fn an_image_held_by_a_create_is_in_use_before_the_index_shows_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let img = s.import(&rootfs()[..], Some("held:1")).unwrap();
        let short = img.id.hex[..12].to_string();
        let owner = "f".repeat(64);
        s.resolve_and_hold(&owner, "held:1").unwrap();
        // No user known to the caller: the hold is one, stopped (Docker's rules for it).
        let e = s.remove(&short, false, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("being used by stopped container ffffffffffff"),
            "{e}"
        );
        let (gone, _) = s.prune(true, |_| false).unwrap();
        assert!(gone.is_empty(), "pruned under a create: {gone:?}");
        assert_eq!(s.resolve("held:1").unwrap().id, img.id);
        s.release(&owner);
        let (gone, _) = s.prune(true, |_| false).unwrap();
        assert_eq!(gone.last().unwrap(), &format!("Deleted: {}", img.id));
    }

    #[test]
    fn a_collection_keeps_what_a_live_lease_wrote_and_drops_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let kept = s.import(&rootfs()[..], Some("kept:1")).unwrap();
        // A load or build in flight: a layer stored, no record yet.
        let lease = s.lease();
        let tar = crate::image::layer::fixtures::tarball(&[("bin/new", b"new")]);
        let layer = s.store_layer(&lease, &tar[..], None).unwrap();
        // The layer it stacks on, which an rmi meanwhile makes unreferenced.
        lease.protect(&kept.layers[0].chain_id);
        s.remove("kept:1", false, |_| None).unwrap();
        let (_, _) = s.prune(true, |_| false).unwrap();
        assert!(s.blobs().has(&layer.blob), "the lease's blob was collected");
        assert!(s.snapshots().has(&layer.chain_id));
        assert!(
            s.snapshots().has(&kept.layers[0].chain_id),
            "a protected layer went"
        );
        // Recording it works, and then the record keeps it.
        let img = s
            .commit(vec![layer.clone()], serde_json::json!({}), &["x"], None)
            .unwrap();
        drop(lease);
        s.collect().unwrap();
        assert!(s.snapshots().has(&layer.chain_id));
        assert!(!s.snapshots().has(&kept.layers[0].chain_id));
        // Abandoned: what a dropped lease wrote goes with the next collection.
        let lease = s.lease();
        let tar = crate::image::layer::fixtures::tarball(&[("bin/other", b"o")]);
        let orphan = s.store_layer(&lease, &tar[..], None).unwrap();
        drop(lease);
        s.collect().unwrap();
        assert!(!s.blobs().has(&orphan.blob) && !s.snapshots().has(&orphan.chain_id));
        assert_eq!(s.resolve(&img.id.hex).unwrap().id, img.id);
    }

    #[test]
    fn readers_keep_their_snapshot_while_the_store_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        let a = s.import(&rootfs()[..], Some("a:1")).unwrap();
        let before = s.snapshot();
        s.tag("a:1", "b:1").unwrap();
        s.remove("a:1", false, |_| None).unwrap();
        assert_eq!(before.tags_of(&a.id), ["docker.io/library/a:1"]);
        assert_eq!(s.snapshot().tags_of(&a.id), ["docker.io/library/b:1"]);
        // A failed change leaves the records as they were, on disk too.
        assert!(s.tag("nope:1", "c:1").is_err());
        let reopened = ImageStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.snapshot().tags_of(&a.id),
            ["docker.io/library/b:1"]
        );
    }
}
