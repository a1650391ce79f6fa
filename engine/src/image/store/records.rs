//! Image records and tags as plain data: lookups by reference, ID or prefix, the tags of an
//! image, `docker images`' rows. Pure; the store keeps them in one JSON file and hands readers
//! an immutable snapshot.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::images::ImageError;
use crate::image::reference::{Digest, Reference};

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
    /// The image it was committed on (`docker commit`; Docker's `Parent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

/// Every image record and tag: a snapshot readers hold while the store moves on (see
/// [`super::ImageStore::snapshot`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    /// By image ID hex.
    pub(super) images: BTreeMap<String, ImageRecord>,
    /// Fully qualified `registry/repo:tag` to image ID.
    pub(super) tags: BTreeMap<String, Digest>,
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

impl Records {
    /// Every image record.
    pub fn images(&self) -> impl Iterator<Item = &ImageRecord> {
        self.images.values()
    }

    /// Every tag with the image it names.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &Digest)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Finds an image by reference (`busybox`, `localhost:5000/a:1`), full ID (`sha256:...`) or
    /// an ID prefix of at least one hex digit.
    pub fn resolve(&self, name: &str) -> Result<&ImageRecord, ImageError> {
        if let Ok(r) = name.parse::<Reference>() {
            if let Some(id) = self.tags.get(&r.to_string()) {
                if let Some(img) = self.images.get(&id.hex) {
                    return Ok(img);
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self
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
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// `docker images`: one row per tag, and a `<none>` row for untagged images.
    pub fn list(&self) -> Vec<ListRow> {
        let mut rows = Vec::new();
        for img in self.images.values() {
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
}
