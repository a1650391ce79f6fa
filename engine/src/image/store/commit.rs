//! `docker commit` in the store: a container's changes, as a layer tarball, stored on top of
//! the image it runs, with the new image's config made from its parent's.

use std::io::Read;

use serde_json::{Value, json};

use super::images::{ImageError, ImageStore, now};
use super::records::ImageRecord;
use crate::image::reference::{Digest, Reference};

/// The layer a build's step adds.
#[derive(Debug)]
pub enum StepLayer<R> {
    /// None (a step that only changes the configuration).
    Empty,
    /// A tar of its changes, stored here.
    Tar(R),
    /// A layer the store has (a `--cache-from` image's, on the same layers below).
    Stored(crate::image::store::LayerRecord),
}

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
        self.commit_step(Some(parent), StepLayer::Tar(layer_tar), child, tag)
    }

    /// A build's step: `layer_tar` (or no layer: a step that only changes the configuration,
    /// recorded in the history as an empty layer) on top of `parent` (or of nothing: `FROM
    /// scratch`), recorded as a child image of `parent`.
    pub fn commit_step<R: Read>(
        &self,
        parent: Option<&Digest>,
        layer: StepLayer<R>,
        child: ChildImage,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        let _bg = crate::image::background::enter();
        let (parent, mut config) = match parent {
            Some(p) => {
                let parent = self.resolve(&p.to_string())?;
                let config: Value = serde_json::from_slice(&self.blobs().read(&parent.id)?)
                    .map_err(|e| ImageError::Io {
                        what: format!("reading the config of image {}", parent.id),
                        source: std::io::Error::other(e),
                    })?;
                (Some(parent), config)
            }
            None => {
                let (os, arch) = crate::image::manifest::host_platform();
                (
                    None,
                    json!({"architecture": arch, "os": os,
                           "rootfs": {"type": "layers", "diff_ids": []}, "history": []}),
                )
            }
        };
        let parent_layers = parent
            .as_ref()
            .map(|p| p.layers.clone())
            .unwrap_or_default();
        let parent_id = parent.as_ref().map(|p| p.id.clone());
        let lease = self.lease();
        let top = parent_layers.last().map(|l| l.chain_id.clone());
        let stored = match layer {
            StepLayer::Tar(tar) => self.store_layer(&lease, tar, top.as_ref()).map(Some),
            StepLayer::Stored(l) => Ok(Some(l)),
            StepLayer::Empty => Ok(None),
        };
        let result = stored.and_then(|layer| {
            let created = now();
            let mut entry = json!({"created": created, "created_by": child.created_by});
            if layer.is_none() {
                entry["empty_layer"] = json!(true);
            }
            if !child.author.is_empty() {
                entry["author"] = json!(child.author);
            }
            if !child.comment.is_empty() {
                entry["comment"] = json!(child.comment);
            }
            let obj = config.as_object_mut().ok_or_else(|| ImageError::Io {
                what: "reading the parent's config".into(),
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
            let mut layers = parent_layers.clone();
            layers.extend(layer);
            let diff_ids: Vec<Value> = layers
                .iter()
                .map(|l| json!(l.diff_id.to_string()))
                .collect();
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
            self.record_config(&bytes, layers, created, tag, parent_id.clone())
        });
        drop(lease);
        if result.is_err() {
            let _ = self.collect();
        }
        result
    }
}
