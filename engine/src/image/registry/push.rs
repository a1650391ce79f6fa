//! `docker push`: every layer the registry lacks is linked from another repository of the same
//! registry when the store knows one that has it (cross-repository mount), else uploaded from
//! the blob file (one request, or `PATCH` chunks when configured), in parallel; then the config
//! and the manifest, byte for byte as stored, so the digest is the one the image was pulled or
//! built with.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use oci_client::errors::OciDistributionError;
use oci_client::{Client, RegistryOperation};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::oci_reference;
use super::progress::{Event, LayerStatus, Sink};
use super::{Registry, RegistryError};
use crate::image::reference::{Digest, Reference};
use crate::image::store::{Blobs, ImageStore};

/// Read size for one-request uploads.
const READ_SIZE: usize = 1024 * 1024;

/// The result of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
}

/// What to push for one layer.
#[derive(Debug, Clone)]
struct Upload {
    blob: Digest,
    size: u64,
    /// Repositories of the same registry known to have it.
    mount_from: Vec<String>,
}

fn send(
    sink: &Sink,
    id: &str,
    status: LayerStatus,
    current: u64,
    total: u64,
    from: Option<String>,
) {
    sink(Event::Layer {
        id: id.to_string(),
        status,
        current,
        total,
        from,
    });
}

/// Pushes image `name` (`localhost:5000/app:1`) from `store` to its registry.
pub async fn push(
    registry: &Registry,
    store: &ImageStore,
    name: &str,
    sink: Sink,
) -> Result<Pushed, RegistryError> {
    let r: Reference = name.parse()?;
    let reg = r.registry.clone();
    let oref = oci_reference(&r);
    // Kept for the push's length: an `rmi` meanwhile cannot take the blobs it reads.
    let lease = store.lease();
    let (blobs, record, uploads) = {
        let s = store.snapshot();
        let record = s.resolve(&r.to_string())?.clone();
        for d in [&record.id, &record.manifest]
            .into_iter()
            .chain(record.layers.iter().map(|l| &l.blob))
        {
            lease.protect(d);
            if !store.blobs().has(d) {
                return Err(crate::image::store::BlobError::NotFound(d.clone()).into());
            }
        }
        // Which repositories of this registry hold which blobs, as far as the store knows.
        let mut holders: std::collections::BTreeMap<&Digest, Vec<String>> = Default::default();
        for img in s.images() {
            let mut repos: Vec<Reference> = s
                .tags_of(&img.id)
                .into_iter()
                .filter_map(|t| t.parse().ok())
                .collect();
            repos.extend(img.repo_digests.iter().filter_map(|d| d.parse().ok()));
            for repo in repos {
                if repo.registry == r.registry && repo.repository != r.repository {
                    for l in &img.layers {
                        let v = holders.entry(&l.blob).or_default();
                        if !v.contains(&repo.repository) {
                            v.push(repo.repository.clone());
                        }
                    }
                }
            }
        }
        let uploads: Vec<Upload> = record
            .layers
            .iter()
            .map(|l| Upload {
                blob: l.blob.clone(),
                size: l.size,
                mount_from: holders.get(&l.blob).cloned().unwrap_or_default(),
            })
            .collect();
        (store.blobs().clone(), record, uploads)
    };
    sink(Event::Status {
        id: None,
        status: format!("The push refers to repository [{}]", r.name()),
    });
    let client = registry
        .authenticate(&r, RegistryOperation::Push)
        .await?
        .client;
    let chunk = registry.options().chunk_size;

    let permits = Arc::new(Semaphore::new(registry.options().concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for up in uploads.into_iter().rev() {
        let id = berth_common::id::short_id(&up.blob.hex);
        send(&sink, &id, LayerStatus::Preparing, 0, 0, None);
        let (client, oref, r, blobs, sink, permits) = (
            client.clone(),
            oref.clone(),
            r.clone(),
            blobs.clone(),
            sink.clone(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            push_layer(&client, &oref, &r, &blobs, &up, chunk, &id, &sink).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| RegistryError::Task(e.to_string()))??;
    }

    let config = blobs.read(&record.id)?;
    let reg_err = |what: &str| {
        let what = what.to_string();
        let reg = reg.clone();
        move |e| RegistryError::from_oci(&reg, &what, e)
    };
    if !client
        .blob_exists(&oref, &record.id.to_string())
        .await
        .map_err(reg_err("checking the config"))?
    {
        client
            .push_blob(&oref, config, &record.id.to_string())
            .await
            .map_err(reg_err("uploading the config"))?;
    }
    let manifest = blobs.read(&record.manifest)?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(String::from)
        })
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    let size = manifest.len() as u64;
    client
        .push_manifest_raw(
            &oref,
            manifest,
            media_type.parse().map_err(|_| RegistryError::Registry {
                registry: reg.clone(),
                what: "pushing the manifest".into(),
                detail: format!("stored manifest has an unusable media type {media_type:?}"),
            })?,
        )
        .await
        .map_err(reg_err("pushing the manifest"))?;
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    sink(Event::Status {
        id: None,
        status: format!("{tag}: digest: {} size: {size}", record.manifest),
    });
    sink(Event::PushResult {
        tag,
        digest: record.manifest.to_string(),
        size,
    });
    store.add_repo_digest(&record.id, format!("{}@{}", r.name(), record.manifest))?;
    drop(lease);
    Ok(Pushed {
        digest: record.manifest,
        size,
    })
}

#[allow(clippy::too_many_arguments)]
async fn push_layer(
    client: &Client,
    oref: &oci_client::Reference,
    r: &Reference,
    blobs: &Arc<Blobs>,
    up: &Upload,
    chunk: Option<usize>,
    id: &str,
    sink: &Sink,
) -> Result<(), RegistryError> {
    let reg = &r.registry;
    let digest = up.blob.to_string();
    if client
        .blob_exists(oref, &digest)
        .await
        .map_err(|e| RegistryError::from_oci(reg, "checking a layer", e))?
    {
        send(sink, id, LayerStatus::LayerAlreadyExists, 0, 0, None);
        return Ok(());
    }
    for from in &up.mount_from {
        let source =
            oci_client::Reference::with_tag(r.registry.clone(), from.clone(), "latest".into());
        // A registry that cannot mount answers 202 and an upload session; oci-client reports
        // that as an error and berth uploads instead.
        if client.mount_blob(oref, &source, &digest).await.is_ok() {
            send(sink, id, LayerStatus::Mounted, 0, 0, Some(from.clone()));
            return Ok(());
        }
    }
    let file = blobs.open_blob(&up.blob)?;
    let sent = Arc::new(AtomicU64::new(0));
    let stream = file_stream(
        file,
        chunk.unwrap_or(READ_SIZE),
        up.size,
        id.to_string(),
        sink.clone(),
        sent,
    );
    client
        .push_blob_stream(oref, stream, &digest, Some(up.size))
        .await
        .map_err(|e| RegistryError::from_oci(reg, &format!("uploading layer {digest}"), e))?;
    send(sink, id, LayerStatus::Pushed, 0, 0, None);
    Ok(())
}

/// A blob file as a stream of `read_size` pieces, reporting progress as it is read.
fn file_stream(
    file: File,
    read_size: usize,
    total: u64,
    id: String,
    sink: Sink,
    sent: Arc<AtomicU64>,
) -> impl Stream<Item = Result<bytes::Bytes, OciDistributionError>> + Send + 'static {
    futures::stream::unfold(Some(file), move |state| {
        let (id, sink, sent) = (id.clone(), sink.clone(), sent.clone());
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; read_size];
            let mut filled = 0;
            while filled < read_size {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Some((Err(OciDistributionError::IoError(e)), None)),
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            let done = sent.fetch_add(filled as u64, Ordering::Relaxed) + filled as u64;
            send(&sink, &id, LayerStatus::Pushing, done, total, None);
            Some((Ok(bytes::Bytes::from(buf)), Some(file)))
        }
    })
}
