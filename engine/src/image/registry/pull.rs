//! `docker pull`: the manifest (the platform's, when the name points at an index), the config,
//! then every layer the store lacks, downloaded in parallel (resuming what an interrupted pull
//! left), verified, and unpacked into its snapshot while the other downloads go on. The image
//! record is written last, so an interrupted pull leaves the store as it was plus verified
//! blobs and resumable downloads.

use std::sync::Arc;

use futures::StreamExt;
use oci_client::{Client, RegistryOperation};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::oci_reference;
use super::progress::{Event, LayerStatus, Sink};
use super::{Registry, RegistryError};
use crate::image::layer::{ExtractOptions, decompress};
use crate::image::manifest::{self, Document, host_platform};
use crate::image::reference::{Digest, Reference};
use crate::image::store::images::NewImage;
use crate::image::store::{BlobError, Blobs, ImageStore, LayerRecord, Snapshots, sha256};

/// What registries are asked to send for a name.
const ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    manifest::DOCKER_LIST,
    "application/vnd.oci.image.manifest.v1+json",
    manifest::DOCKER_MANIFEST,
];

/// The largest image config taken (berth's bound: configs are JSON read whole into memory; the
/// largest seen in practice are a few hundred KiB).
pub const CONFIG_MAX: u64 = 8 << 20;

/// Report download progress every this many bytes.
const REPORT_EVERY: u64 = 512 * 1024;

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image ID.
    pub id: Digest,
    /// `repo@sha256:...`: what the name pointed at (an index's digest for multi-platform images).
    pub repo_digest: String,
    /// Whether anything was downloaded (Docker's "Downloaded newer image" vs "up to date").
    pub downloaded: bool,
}

fn send(sink: &Sink, id: &str, status: LayerStatus, current: u64, total: u64) {
    sink(Event::Layer {
        id: id.to_string(),
        status,
        current,
        total,
        from: None,
    });
}

/// Pulls `name` for `platform` (`(os, arch)`; the host's when `None`) into `store`; returns
/// the image and what happened. No lock is held while it downloads and unpacks: a lease keeps
/// what it writes, and every blob and layer it will refer to, from the collector until the
/// image is recorded.
pub async fn pull(
    registry: &Registry,
    store: &ImageStore,
    name: &str,
    platform: Option<(&str, &str)>,
    sink: Sink,
) -> Result<Pulled, RegistryError> {
    let r: Reference = name.parse()?;
    let reg = r.registry.clone();
    let oref = oci_reference(&r);
    let session = registry.authenticate(&r, RegistryOperation::Pull).await?;
    let client = session.client.clone();
    let lease = store.lease();
    let (blobs, snapshots) = (store.blobs().clone(), store.snapshots().clone());
    sink(Event::Status {
        id: Some(
            r.tag
                .clone()
                .or_else(|| r.digest.as_ref().map(|d| d.to_string()))
                .unwrap_or_default(),
        ),
        status: format!("Pulling from {}", r.repository),
    });

    // The manifest, through the index when there is one.
    // Name what the user asked for when it is not there, as Docker does, not the URL.
    let asked = r.familiar_name_with_tag();
    let top = session.manifests.manifest(&oref, &ACCEPT, &asked).await?;
    let top_digest = sha256(&top);
    if let Some(want) = &r.digest {
        check_digest(&reg, "manifest", want, &top_digest)?;
    }
    let (manifest_bytes, manifest_digest) = match manifest::parse(&top, None)? {
        Document::Manifest(_) => (top.to_vec(), top_digest.clone()),
        Document::Index(index) => {
            let (os, arch) = match platform {
                Some((os, arch)) => (os.to_string(), arch.to_string()),
                None => host_platform(),
            };
            let desc = manifest::pick(&index, &os, &arch)?;
            let want = manifest::descriptor_digest("manifest", desc)?;
            let mref = oci_client::Reference::with_digest(
                r.registry.clone(),
                r.repository.clone(),
                want.to_string(),
            );
            let bytes = session
                .manifests
                .manifest(&mref, &ACCEPT[2..], &asked)
                .await?;
            check_digest(&reg, "manifest", &want, &sha256(&bytes))?;
            (bytes.to_vec(), want)
        }
    };
    let Document::Manifest(m) = manifest::parse(&manifest_bytes, None)? else {
        return Err(RegistryError::Registry {
            registry: reg,
            what: "fetching the platform's manifest".into(),
            detail: "an index points at another index".into(),
        });
    };
    let config_digest = manifest::descriptor_digest("config", m.config())?;
    lease.protect(&config_digest);
    lease.protect(&manifest_digest);
    if m.config().size() > CONFIG_MAX {
        return Err(RegistryError::Registry {
            registry: reg,
            what: "fetching the config".into(),
            detail: format!(
                "the manifest declares a config of {} bytes (berth takes at most {CONFIG_MAX})",
                m.config().size()
            ),
        });
    }
    if !blobs.has(&config_digest) {
        fetch_blob(
            &client,
            &oref,
            &config_digest,
            m.config().size(),
            &blobs,
            None,
        )
        .await?;
    }
    let config_bytes = blobs.read(&config_digest)?;
    let (config, diff_ids) = manifest::parse_config(&config_bytes, m.layers().len())?;
    let chains = manifest::chain_ids(&diff_ids);
    let known = {
        let s = store.snapshot();
        let mut known = std::collections::HashMap::new();
        for img in s.images() {
            for l in &img.layers {
                known.insert(l.chain_id.clone(), l.unpacked);
            }
        }
        known
    };

    // The layers.
    let permits = Arc::new(Semaphore::new(registry.options().concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut layers: Vec<Option<LayerRecord>> = vec![None; m.layers().len()];
    let mut downloaded = false;
    let opts = ExtractOptions {
        whiteouts: true,
        allow_devices: false,
        preserve_owners: nix::unistd::geteuid().is_root(),
    };
    for (i, desc) in m.layers().iter().enumerate() {
        let blob = manifest::descriptor_digest("layer", desc)?;
        let record = LayerRecord {
            blob: blob.clone(),
            media_type: desc.media_type().to_string(),
            size: desc.size(),
            unpacked: known.get(&chains[i]).copied().unwrap_or(0),
            diff_id: diff_ids[i].clone(),
            chain_id: chains[i].clone(),
        };
        let id = berth_common::id::short_id(&blob.hex);
        // Before looking: what is there now stays until the image is recorded.
        lease.protect(&blob);
        lease.protect(&chains[i]);
        if blobs.has(&blob) && snapshots.has(&chains[i]) && known.contains_key(&chains[i]) {
            send(&sink, &id, LayerStatus::AlreadyExists, 0, 0);
            layers[i] = Some(record);
            continue;
        }
        downloaded = true;
        send(&sink, &id, LayerStatus::PullingFsLayer, 0, 0);
        let (client, oref, blobs, snapshots, sink, permits) = (
            client.clone(),
            oref.clone(),
            blobs.clone(),
            snapshots.clone(),
            sink.clone(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if !blobs.has(&record.blob) {
                fetch_blob(
                    &client,
                    &oref,
                    &record.blob,
                    record.size,
                    &blobs,
                    Some((&id, &sink)),
                )
                .await?;
            }
            send(&sink, &id, LayerStatus::DownloadComplete, 0, 0);
            drop(_permit);
            let mut record = record;
            let unpacked = unpack(&blobs, &snapshots, &record, opts, &id, &sink).await?;
            if let Some(n) = unpacked {
                record.unpacked = n;
            }
            send(&sink, &id, LayerStatus::PullComplete, 0, 0);
            Ok::<_, RegistryError>((i, record))
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, record) = done.map_err(|e| RegistryError::Task(e.to_string()))??;
        layers[i] = Some(record);
    }
    let layers: Vec<LayerRecord> = layers
        .into_iter()
        .map(|l| l.expect("every layer is done"))
        .collect();
    blobs.put_bytes(Some(&manifest_digest), &manifest_bytes)?;

    let repo_digest = format!("{}@{}", r.name(), top_digest);
    let created = config
        .created()
        .clone()
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let tag = r.digest.is_none().then_some(&r);
    let record = {
        let s = store;
        let before = tag.and_then(|t| s.resolve(&t.to_string()).ok().map(|i| i.id));
        let record = s.add(
            NewImage {
                config: config_digest,
                manifest: manifest_digest,
                layers,
                created,
                repo_digest: Some(repo_digest.clone()),
                parent: None,
            },
            tag,
        )?;
        downloaded |= before.as_ref() != Some(&record.id);
        record
    };
    sink(Event::Status {
        id: None,
        status: format!("Digest: {top_digest}"),
    });
    sink(Event::Status {
        id: None,
        status: if downloaded {
            format!(
                "Status: Downloaded newer image for {}",
                r.familiar_name_with_tag()
            )
        } else {
            format!(
                "Status: Image is up to date for {}",
                r.familiar_name_with_tag()
            )
        },
    });
    Ok(Pulled {
        id: record.id,
        repo_digest,
        downloaded,
    })
}

fn check_digest(
    registry: &str,
    what: &str,
    want: &Digest,
    got: &Digest,
) -> Result<(), RegistryError> {
    if want != got {
        return Err(RegistryError::DigestMismatch {
            registry: registry.into(),
            what: what.into(),
            expected: want.to_string(),
            actual: got.to_string(),
        });
    }
    Ok(())
}

/// Unpacks a stored layer blob into its snapshot (on a blocking thread); the tar's size, or
/// `None` when the snapshot was there.
async fn unpack(
    blobs: &Arc<Blobs>,
    snapshots: &Arc<Snapshots>,
    layer: &LayerRecord,
    opts: ExtractOptions,
    id: &str,
    sink: &Sink,
) -> Result<Option<u64>, RegistryError> {
    send(sink, id, LayerStatus::Extracting, 0, layer.size);
    let (blobs, snapshots, layer) = (blobs.clone(), snapshots.clone(), layer.clone());
    tokio::task::spawn_blocking(move || {
        let _bg = crate::image::background::enter();
        let file = blobs.open_blob(&layer.blob)?;
        let tar = decompress(file).map_err(|source| BlobError::Io {
            path: blobs.path(&layer.blob),
            source,
        })?;
        let got = snapshots.unpack_verified(&layer.chain_id, &layer.diff_id, tar, opts)?;
        match got {
            Some(n) => Ok(Some(n)),
            // Unpacked by an earlier pull that recorded no image (interrupted): count it.
            None => {
                let mut tar =
                    decompress(blobs.open_blob(&layer.blob)?).map_err(|source| BlobError::Io {
                        path: blobs.path(&layer.blob),
                        source,
                    })?;
                let n = std::io::copy(&mut tar, &mut std::io::sink()).map_err(|source| {
                    BlobError::Io {
                        path: blobs.path(&layer.blob),
                        source,
                    }
                })?;
                Ok(Some(n))
            }
        }
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))?
}

/// Downloads blob `digest` into the store, resuming a download an interrupted pull left, and
/// reporting progress as layer `progress.0` when given.
pub(crate) async fn fetch_blob(
    client: &Client,
    oref: &oci_client::Reference,
    digest: &Digest,
    size: u64,
    blobs: &Arc<Blobs>,
    progress: Option<(&str, &Sink)>,
) -> Result<(), RegistryError> {
    let reg = oref.registry().to_string();
    let mut w = loop {
        if blobs.has(digest) {
            return Ok(());
        }
        match blobs.ingest(digest) {
            Ok(w) => break w,
            // Another pull is fetching it: wait until it lets the download go (landed, failed
            // or died; a lock the kernel wakes, never a poll), then look again.
            Err(BlobError::Busy(_)) => {
                let (b, d) = (blobs.clone(), digest.clone());
                tokio::task::spawn_blocking(move || b.wait_idle(&d))
                    .await
                    .map_err(|e| RegistryError::Task(e.to_string()))??;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if w.offset() >= size {
        // Complete but not committed (a crash at the last moment): check it.
        let offset = w.offset();
        match tokio::task::spawn_blocking(move || w.commit(Some(size)))
            .await
            .map_err(|e| RegistryError::Task(e.to_string()))?
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(%digest, offset, "discarding a bad earlier download: {e}");
                w = blobs.ingest(digest)?;
            }
        }
    }
    let digest_s = digest.to_string();
    let what = format!("downloading {digest}");
    // Always a range request (`bytes=OFFSET-`, 0 for a fresh download): it resumes an
    // interrupted download, and a 206 answer is not hashed a second time by oci-client (the
    // Ingest hashes every byte and checks the digest on commit anyway).
    let stream = client
        .pull_blob_stream_partial(oref, digest_s.as_str(), w.offset(), None)
        .await
        .map_err(|e| RegistryError::from_oci(&reg, &what, e))?;
    let mut stream = match stream {
        oci_client::client::BlobResponse::Partial(s) => s,
        oci_client::client::BlobResponse::Full(s) => {
            // The registry ignored the range and sends the whole blob.
            w.restart()?;
            s
        }
    };
    let mut reported = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Registry {
            registry: reg.clone(),
            what: what.clone(),
            detail: e.to_string(),
        })?;
        // Never past the size the manifest declares: a registry streaming without end fills
        // neither the disk nor the time.
        if w.offset() + chunk.len() as u64 > size {
            return Err(RegistryError::Registry {
                registry: reg,
                what,
                detail: format!(
                    "the registry sent more than the {size} bytes the manifest declares"
                ),
            });
        }
        w.write(&chunk)?;
        if w.offset() - reported >= REPORT_EVERY || w.offset() == size {
            reported = w.offset();
            if let Some((id, sink)) = progress {
                send(sink, id, LayerStatus::Downloading, reported, size);
            }
            // Loopback data is always ready, so the stream never returns Pending: yield, or a
            // cancelled pull (its task aborted) would run on to the end.
            tokio::task::yield_now().await;
        }
    }
    if let Some((id, sink)) = progress {
        send(sink, id, LayerStatus::VerifyingChecksum, 0, 0);
    }
    tokio::task::spawn_blocking(move || w.commit(Some(size)))
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))??;
    Ok(())
}
