//! `docker commit` in the store: a container's changes, as a layer tarball, stored on top of
//! the image it runs, with the new image's config made from its parent's.

use std::io::Read;

use serde_json::{Value, json};

use super::images::{ImageError, ImageStore, now};
use super::records::ImageRecord;
use crate::image::reference::{Digest, Reference};

/// What a committed image's config says besides its layers.
#[derive(Debug, Clone, Default)]
pub struct ChildImage {
    /// The run configuration (`Cmd`, `Env`, ...).
    pub config: Value,
    /// The container's own configuration (Docker's `container_config`).
    pub container_config: Value,
    /// The container's ID.
    pub container: String,
    /// `--author`.
    pub author: String,
    /// `--message`.
    pub comment: String,
    /// The container's command line (the history entry's `created_by`).
    pub created_by: String,
}

impl ImageStore {
    /// Stores `layer_tar` (the container's changes) on top of image `parent` and records the
    /// image made of both, tagged `tag`. Nothing is left behind when it fails.
    pub fn commit_child(
        &self,
        parent: &Digest,
        layer_tar: impl Read,
        child: ChildImage,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        let _bg = crate::image::background::enter();
        let parent = self.resolve(&parent.to_string())?;
        let mut config: Value =
            serde_json::from_slice(&self.blobs().read(&parent.id)?).map_err(|e| {
                ImageError::Io {
                    what: format!("reading the config of image {}", parent.id),
                    source: std::io::Error::other(e),
                }
            })?;
        let lease = self.lease();
        let top = parent.layers.last().map(|l| l.chain_id.clone());
        let result = self
            .store_layer(&lease, layer_tar, top.as_ref())
            .and_then(|layer| {
                let created = now();
                let mut entry = json!({"created": created, "created_by": child.created_by});
                if !child.author.is_empty() {
                    entry["author"] = json!(child.author);
                }
                if !child.comment.is_empty() {
                    entry["comment"] = json!(child.comment);
                }
                let obj = config.as_object_mut().ok_or_else(|| ImageError::Io {
                    what: format!("reading the config of image {}", parent.id),
                    source: std::io::Error::other("not a JSON object"),
                })?;
                obj.insert("created".into(), json!(created));
                obj.insert("config".into(), child.config);
                obj.insert("container_config".into(), child.container_config);
                obj.insert("container".into(), json!(child.container));
                if child.author.is_empty() {
                    obj.remove("author");
                } else {
                    obj.insert("author".into(), json!(child.author));
                }
                let mut diff_ids: Vec<Value> = parent
                    .layers
                    .iter()
                    .map(|l| json!(l.diff_id.to_string()))
                    .collect();
                diff_ids.push(json!(layer.diff_id.to_string()));
                obj.insert(
                    "rootfs".into(),
                    json!({"type": "layers", "diff_ids": diff_ids}),
                );
                let mut history = obj
                    .get("history")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                history.push(entry);
                obj.insert("history".into(), Value::Array(history));
                let bytes = serde_json::to_vec(&config).expect("JSON values serialise");
                let mut layers = parent.layers.clone();
                layers.push(layer);
                self.record_config(&bytes, layers, created, tag, Some(parent.id.clone()))
            });
        drop(lease);
        if result.is_err() {
            let _ = self.collect();
        }
        result
    }
}
