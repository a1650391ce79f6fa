//! Image records and tags, over the blob and snapshot stores: what `docker images`, `tag`,
//! `rmi` and `import` work on. Records live in one JSON file replaced atomically; blobs and
//! snapshots no record refers to are collected after a removal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::blobs::{BlobError, Blobs};
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

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The blob as stored (compressed).
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed size (the tar stream).
    #[serde(default)]
    pub unpacked: u64,
    /// Digest of the uncompressed tar (the config's diff ID).
    pub diff_id: Digest,
    /// The snapshot it is unpacked in.
    pub chain_id: Digest,
}

/// A container that uses an image, as `rmi`'s conflicts name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// The container's short ID (12 digits).
    pub container: String,
    /// Whether it runs (or is paused): its image can then never be deleted.
    pub running: bool,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image ID: the config blob's digest.
    pub id: Digest,
    /// The manifest blob's digest.
    pub manifest: Digest,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// When it was made (RFC 3339), from its config.
    pub created: String,
    /// Uncompressed size of its layers.
    pub size: u64,
    /// `repo@sha256:...` names it is known by in registries.
    pub repo_digests: BTreeSet<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Records {
    /// By image ID hex.
    images: BTreeMap<String, ImageRecord>,
    /// Fully qualified `registry/repo:tag` to image ID.
    tags: BTreeMap<String, Digest>,
}

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
    Records(#[from] netcore::persist::PersistError),
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

/// A row of `docker images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    /// `busybox`, `localhost:5000/app`, or `<none>`.
    pub repository: String,
    /// The tag, or `<none>`.
    pub tag: String,
    /// The image ID.
    pub id: Digest,
    /// RFC 3339.
    pub created: String,
    /// Bytes.
    pub size: u64,
}

/// The image store.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    blobs: Arc<Blobs>,
    snapshots: Arc<Snapshots>,
    records: Records,
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

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    netcore::network::rfc3339(secs)
}

impl ImageStore {
    /// Opens (creating) the store under `root` (`<data-root>/image`).
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let blobs = Arc::new(Blobs::open(root)?);
        let snapshots = Arc::new(Snapshots::open(root)?);
        let records = netcore::persist::load(&root.join(RECORDS))?.unwrap_or_default();
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            snapshots,
            records,
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

    /// Records an image whose blobs and snapshots are stored, tagging it `tag` (which moves
    /// off any image that had it; that one stays, untagged, as Docker's dangling images do).
    pub fn add(
        &mut self,
        new: NewImage,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        for d in [&new.config, &new.manifest]
            .into_iter()
            .chain(new.layers.iter().map(|l| &l.blob))
        {
            if !self.blobs.has(d) {
                return Err(BlobError::NotFound(d.clone()).into());
            }
        }
        let size = new.layers.iter().map(|l| l.unpacked).sum();
        let record = match self.records.images.get_mut(&new.config.hex) {
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
                };
                self.records
                    .images
                    .insert(new.config.hex.clone(), record.clone());
                record
            }
        };
        if let Some(t) = tag {
            self.records.tags.insert(t.to_string(), record.id.clone());
        }
        self.save()?;
        Ok(record)
    }

    /// Notes that image `id` is known to a registry as `repo_digest` (after a push).
    pub fn add_repo_digest(&mut self, id: &Digest, repo_digest: String) -> Result<(), ImageError> {
        if let Some(img) = self.records.images.get_mut(&id.hex) {
            if img.repo_digests.insert(repo_digest) {
                self.save()?;
            }
        }
        Ok(())
    }

    /// Every image record.
    pub fn images(&self) -> impl Iterator<Item = &ImageRecord> {
        self.records.images.values()
    }

    /// Every tag with the image it names.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &Digest)> {
        self.records.tags.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn save(&self) -> Result<(), ImageError> {
        Ok(netcore::persist::save(
            &self.root.join(RECORDS),
            &self.records,
        )?)
    }

    /// Finds an image by reference (`busybox`, `localhost:5000/a:1`), full ID (`sha256:...`) or
    /// an ID prefix of at least one hex digit.
    pub fn resolve(&self, name: &str) -> Result<&ImageRecord, ImageError> {
        if let Ok(r) = name.parse::<Reference>() {
            if let Some(id) = self.records.tags.get(&r.to_string()) {
                if let Some(img) = self.records.images.get(&id.hex) {
                    return Ok(img);
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self
                .records
                .images
                .range(hex.to_string()..)
                .take_while(|(k, _)| k.starts_with(hex));
            if let Some((_, img)) = found.next() {
                if found.next().is_some() {
                    return Err(ImageError::Ambiguous(name.to_string()));
                }
                return Ok(img);
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    /// Tags of image `id`, fully qualified.
    pub fn tags_of(&self, id: &Digest) -> Vec<&str> {
        self.records
            .tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&mut self, source: &str, target: &str) -> Result<(), ImageError> {
        let id = self.resolve(source)?.id.clone();
        let target: Reference = target.parse()?;
        self.records.tags.insert(target.to_string(), id);
        self.save()
    }

    /// `docker import`: a root file system tarball (plain, gzip or zstd) becomes a one-layer
    /// image, tagged `tag` when given.
    pub fn import(
        &mut self,
        input: impl Read,
        tag: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let tag: Option<Reference> = tag.map(str::parse).transpose()?;
        let result = self.store_layer(input, None).and_then(|layer| {
            self.commit(
                vec![layer],
                serde_json::json!({}),
                &["berth import"],
                tag.as_ref(),
            )
        });
        if result.is_err() {
            // Blobs stored before the failure belong to no image: drop them now.
            let _ = self.collect();
        }
        result
    }

    /// Stores a layer tarball (plain, gzip or zstd) as a gzip blob and unpacks its snapshot on
    /// top of the stack whose chain ID is `parent`.
    pub fn store_layer(
        &self,
        input: impl Read,
        parent: Option<&Digest>,
    ) -> Result<LayerRecord, ImageError> {
        let scratch = self.blobs.scratch("layer");
        let result = self.store_layer_via(&scratch, input, parent);
        let _ = fs::remove_file(&scratch);
        result
    }

    fn store_layer_via(
        &self,
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
        let blob = self.blobs.put(None, None, &mut file)?;
        let blob_size = fs::metadata(self.blobs.path(&blob))
            .map_err(io("sizing the layer"))?
            .len();
        let chain_id = match parent {
            None => diff_id.clone(),
            Some(p) => chain_ids(&[p.clone(), diff_id.clone()])
                .pop()
                .expect("two chain IDs"),
        };
        self.snapshots.unpack_verified(
            &chain_id,
            &diff_id,
            decompress(self.blobs.open_blob(&blob)?).map_err(io("reading the stored layer"))?,
            ExtractOptions {
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
        &mut self,
        layers: Vec<LayerRecord>,
        config: serde_json::Value,
        created_by: &[&str],
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        let created = now();
        let (os, arch) = host_platform();
        let history: Vec<serde_json::Value> = created_by
            .iter()
            .map(|c| serde_json::json!({"created": created, "created_by": c}))
            .collect();
        let config = serde_json::json!({
            "created": created, "architecture": arch, "os": os, "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "history": history,
        });
        let config_bytes = serde_json::to_vec(&config).expect("JSON values serialise");
        self.commit_config(&config_bytes, layers, created, tag)
    }

    /// Records an image of stored `layers` with `config_bytes` as its config, kept byte for byte
    /// (so its ID is kept, as `docker load` does), under a new OCI manifest.
    pub fn commit_config(
        &mut self,
        config_bytes: &[u8],
        layers: Vec<LayerRecord>,
        created: String,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
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
            },
            tag,
        )
    }

    /// `docker images`: one row per tag, and a `<none>` row for untagged images.
    pub fn list(&self) -> Vec<ListRow> {
        let mut rows = Vec::new();
        for img in self.records.images.values() {
            let tags = self.tags_of(&img.id);
            let row = |repository: String, tag: String| ListRow {
                repository,
                tag,
                id: img.id.clone(),
                created: img.created.clone(),
                size: img.size,
            };
            if tags.is_empty() {
                rows.push(row("<none>".into(), "<none>".into()));
            }
            for t in tags {
                let r: Reference = t.parse().expect("stored tags are valid references");
                rows.push(row(r.familiar_name(), r.tag.unwrap_or_default()));
            }
        }
        rows.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then(a.repository.cmp(&b.repository))
        });
        rows
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
        &mut self,
        name: &str,
        force: bool,
        user_of: impl Fn(&Digest) -> Option<ImageUser>,
    ) -> Result<Vec<String>, ImageError> {
        let id = self.resolve(name)?.id.clone();
        let short = id.hex[..12].to_string();
        let tags: Vec<String> = self.tags_of(&id).into_iter().map(String::from).collect();
        let by_tag = name
            .parse::<Reference>()
            .ok()
            .map(|r| r.to_string())
            .filter(|r| tags.contains(r));
        if let Some(t) = &by_tag {
            if tags.len() > 1 {
                self.records.tags.remove(t);
                self.save()?;
                return Ok(vec![format!("Untagged: {t}")]);
            }
        } else if tags.len() > 1 && !force {
            return Err(ImageError::MultipleTags { id: short });
        }
        let untag_all = |s: &mut ImageStore| -> Result<Vec<String>, ImageError> {
            let mut out = Vec::new();
            for t in &tags {
                s.records.tags.remove(t);
                out.push(format!("Untagged: {t}"));
            }
            s.save()?;
            Ok(out)
        };
        match (by_tag.is_some(), user_of(&id)) {
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
            // Forced, in use: the names go, the image stays for its containers.
            (_, Some(_)) => untag_all(self),
            (_, None) => {
                let mut out = untag_all(self)?;
                self.records.images.remove(&id.hex);
                self.save()?;
                out.push(format!("Deleted: {id}"));
                self.collect()?;
                Ok(out)
            }
        }
    }

    /// `docker image prune [-a]`: removes untagged images (with `all`, every image) that no
    /// container uses, then unreferenced blobs, snapshots and interrupted downloads. Returns
    /// Docker's "Deleted:"/"Untagged:" lines and the bytes reclaimed.
    pub fn prune(
        &mut self,
        all: bool,
        in_use: impl Fn(&Digest) -> bool,
    ) -> Result<(Vec<String>, u64), ImageError> {
        let before = self.disk_usage();
        let mut out = Vec::new();
        let doomed: Vec<Digest> = self
            .records
            .images
            .values()
            .filter(|img| (all || self.tags_of(&img.id).is_empty()) && !in_use(&img.id))
            .map(|img| img.id.clone())
            .collect();
        for id in doomed {
            let tags: Vec<String> = self.tags_of(&id).into_iter().map(String::from).collect();
            for t in tags {
                self.records.tags.remove(&t);
                out.push(format!("Untagged: {t}"));
            }
            self.records.images.remove(&id.hex);
            out.push(format!("Deleted: {id}"));
        }
        self.save()?;
        self.collect()?;
        self.blobs.clear_partial()?;
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

    /// Removes blobs and snapshots no image record refers to.
    pub fn collect(&self) -> Result<(), ImageError> {
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        for img in self.records.images.values() {
            blobs.insert(img.id.clone());
            blobs.insert(img.manifest.clone());
            for l in &img.layers {
                blobs.insert(l.blob.clone());
                chains.insert(l.chain_id.clone());
            }
        }
        for d in self.blobs.list()? {
            if !blobs.contains(&d) {
                self.blobs.remove(&d)?;
            }
        }
        self.snapshots.collect(&chains)?;
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
        let mut s = ImageStore::open(dir.path()).unwrap();
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
                "Untagged: docker.io/library/app:1".to_string(),
                format!("Deleted: {}", new.id)
            ]
        );
        assert_eq!(s.list().len(), 1);
        assert!(s.snapshots().has(&kept.layers[0].chain_id));
    }

    #[test]
    fn import_tag_list_and_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ImageStore::open(dir.path()).unwrap();
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
        let rows = s.list();
        let names: Vec<_> = rows
            .iter()
            .map(|r| format!("{}:{}", r.repository, r.tag))
            .collect();
        assert_eq!(names, ["box:1", "localhost:5000/box:latest"]);
        assert_eq!(s.resolve(&img.id.hex[..6]).unwrap().id, img.id);

        // Records survive a reopen.
        let mut s = ImageStore::open(dir.path()).unwrap();
        assert_eq!(s.resolve("box:1").unwrap().id, img.id);
        let e = s.remove(&img.id.hex, false, |_| None).unwrap_err();
        assert!(
            e.to_string()
                .contains("referenced in multiple repositories"),
            "{e}"
        );
        assert_eq!(
            s.remove("box:1", false, |_| None).unwrap(),
            ["Untagged: docker.io/library/box:1"]
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
        let mut s = ImageStore::open(dir.path()).unwrap();
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
        let mut s = ImageStore::open(dir.path()).unwrap();
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
        assert!(s.list().is_empty());
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
        let mut s = ImageStore::open(dir.path()).unwrap();
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
            ["Untagged: docker.io/library/bb:2"]
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
            ["Untagged: docker.io/library/bb:1"]
        );
        assert!(s.snapshots().has(&img.layers[0].chain_id));
        assert_eq!(s.resolve(&short).unwrap().id, img.id);
        // Forced under a stopped one: the same; with no user left the image goes.
        s.tag(&short, "bb:3").unwrap();
        assert_eq!(
            s.remove(&short, true, user(false)).unwrap(),
            ["Untagged: docker.io/library/bb:3"]
        );
        assert!(s.snapshots().has(&img.layers[0].chain_id));
        assert_eq!(
            s.remove(&short, false, |_| None).unwrap(),
            [format!("Deleted: {}", img.id)]
        );
        assert!(!s.snapshots().has(&img.layers[0].chain_id));
    }
}
