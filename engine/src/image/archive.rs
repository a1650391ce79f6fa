//! `docker save` and `docker load`. A saved archive is both formats at once, as Docker 25+
//! writes it: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`, the blobs
//! exactly as stored, so manifest digests survive) and Docker's `manifest.json` (config and
//! layer paths into the same blobs) that older `docker load` reads. Loading takes either: the
//! OCI layout when it is there (blobs verified against their digests), else `manifest.json`
//! (layers re-stored, their diff IDs checked against the config). The archive is unpacked into
//! a scratch directory first (regular files and directories only, paths kept inside it),
//! because `manifest.json` may come last.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::image::layer::{ExtractOptions, decompress, extract::clean};
use crate::image::manifest::{self, Document};
use crate::image::reference::{Digest, Reference};
use crate::image::store::images::NewImage;
use crate::image::store::{ImageError, ImageStore, LayerRecord, Lease, sha256};

/// Why a save or load failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive is not a `docker save` tarball or an OCI layout.
    #[error("invalid image archive: {0}")]
    Invalid(String),
    /// A manifest or config in it.
    #[error("invalid image archive: {0}")]
    Manifest(#[from] manifest::ManifestError),
    /// The store (boxed: it is large).
    #[error(transparent)]
    Image(Box<ImageError>),
    /// Reading or writing.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: io::Error,
    },
}

impl From<ImageError> for ArchiveError {
    fn from(e: ImageError) -> Self {
        ArchiveError::Image(Box::new(e))
    }
}

impl From<crate::image::store::BlobError> for ArchiveError {
    fn from(e: crate::image::store::BlobError) -> Self {
        ImageError::from(e).into()
    }
}

impl From<crate::image::store::SnapshotError> for ArchiveError {
    fn from(e: crate::image::store::SnapshotError) -> Self {
        ImageError::from(e).into()
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn append(
    b: &mut tar::Builder<impl Write>,
    path: &str,
    data: &mut dyn Read,
    size: u64,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, path, data)
}

/// `docker save NAME...`: writes the images `names` (references or IDs) to `out`.
pub fn save(store: &ImageStore, names: &[&str], out: impl Write) -> Result<(), ArchiveError> {
    let _bg = super::background::enter();
    let mut b = tar::Builder::new(out);
    let mut written = BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    // Keeps what is being written out from an `rmi` meanwhile.
    let lease = store.lease();
    let records = store.snapshot();
    for name in names {
        let img = records.resolve(name)?;
        // Named by a tag: that tag goes in; named by ID: none, as Docker.
        let tag = name
            .parse::<Reference>()
            .ok()
            .filter(|r| records.tags_of(&img.id).contains(&r.to_string().as_str()));
        for d in [&img.id, &img.manifest]
            .into_iter()
            .chain(img.layers.iter().map(|l| &l.blob))
        {
            lease.protect(d);
            if written.insert(d.clone()) {
                let path = store.blobs().path(d);
                let mut f = store.blobs().open_blob(d)?;
                let size = f
                    .metadata()
                    .map_err(io(format!("reading {}", path.display())))?
                    .len();
                append(&mut b, &format!("blobs/sha256/{}", d.hex), &mut f, size)
                    .map_err(io("writing the archive"))?;
            }
        }
        let manifest_size = fs::metadata(store.blobs().path(&img.manifest))
            .map_err(io("reading the manifest"))?
            .len();
        let media_type = serde_json::from_slice::<Value>(&store.blobs().read(&img.manifest)?)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from))
            .unwrap_or_else(|| OCI_MANIFEST.into());
        let mut desc = json!({"mediaType": media_type, "digest": img.manifest.to_string(), "size": manifest_size});
        if let Some(t) = &tag {
            desc["annotations"] = json!({
                "io.containerd.image.name": t.to_string(),
                "org.opencontainers.image.ref.name": t.tag.clone().unwrap_or_default(),
            });
        }
        index.push(desc);
        docker.push(json!({
            "Config": format!("blobs/sha256/{}", img.id.hex),
            "RepoTags": tag.iter().map(|t| t.familiar_name_with_tag()).collect::<Vec<_>>(),
            "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.blob.hex)).collect::<Vec<_>>(),
        }));
    }
    let files = [
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
        (
            "index.json",
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}),
        ),
        ("manifest.json", Value::Array(docker)),
    ];
    for (name, v) in files {
        let bytes = serde_json::to_vec(&v).expect("JSON values serialise");
        append(&mut b, name, &mut &bytes[..], bytes.len() as u64)
            .map_err(io("writing the archive"))?;
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("writing the archive"))
}

/// Unpacks the archive's regular files and directories under `dir`, refusing paths that
/// would leave it.
fn unpack_archive(input: impl Read, dir: &Path) -> Result<(), ArchiveError> {
    let mut a = tar::Archive::new(input);
    for entry in a.entries().map_err(io("reading the archive"))? {
        let mut entry = entry.map_err(io("reading the archive"))?;
        let path = entry
            .path()
            .map_err(io("reading the archive"))?
            .into_owned();
        let Some(parts) = clean(&path) else {
            return Err(ArchiveError::Invalid(format!(
                "entry {} points outside the archive",
                path.display()
            )));
        };
        if parts.is_empty() {
            continue;
        }
        let dest: PathBuf = parts.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&dest).map_err(io(format!("creating {}", dest.display())))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)
                        .map_err(io(format!("creating {}", parent.display())))?;
                }
                let mut f =
                    File::create(&dest).map_err(io(format!("creating {}", dest.display())))?;
                io::copy(&mut entry, &mut f).map_err(io("reading the archive"))?;
            }
            // Links and devices have no place in an image archive.
            _ => {}
        }
    }
    Ok(())
}

/// `docker load`: reads an archive from `input`, returns Docker's "Loaded image: ..." lines.
///
/// No lock is held while the layers are stored: a lease keeps them until each image is
/// recorded; what a failed load wrote is collected once its lease is gone.
pub fn load(store: &ImageStore, input: impl Read) -> Result<Vec<String>, ArchiveError> {
    let _bg = super::background::enter();
    let scratch = store.blobs().scratch("load");
    let lease = store.lease();
    let result = (|| {
        fs::create_dir_all(&scratch).map_err(io("creating the load directory"))?;
        unpack_archive(input, &scratch)?;
        if scratch.join("index.json").is_file() && scratch.join("blobs").is_dir() {
            load_oci(store, &lease, &scratch)
        } else if scratch.join("manifest.json").is_file() {
            load_docker(store, &lease, &scratch)
        } else {
            Err(ArchiveError::Invalid(
                "neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
            ))
        }
    })();
    let _ = crate::tree::remove_tree(&scratch);
    drop(lease);
    if result.is_err() {
        let _ = store.collect();
    }
    result
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path, what: &str) -> Result<T, ArchiveError> {
    let bytes = fs::read(path).map_err(io(format!("reading {what}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Invalid(format!("{what}: {e}")))
}

/// A path inside the archive, as `manifest.json` names it.
fn member(dir: &Path, rel: &str) -> Result<PathBuf, ArchiveError> {
    let parts = clean(Path::new(rel))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ArchiveError::Invalid(format!("path {rel:?} points outside the archive")))?;
    let p = parts.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
    if !p.is_file() {
        return Err(ArchiveError::Invalid(format!("{rel} is missing")));
    }
    Ok(p)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn loaded(img_id: &Digest, tags: &[Reference]) -> Vec<String> {
    if tags.is_empty() {
        vec![format!("Loaded image ID: {img_id}")]
    } else {
        tags.iter()
            .map(|t| format!("Loaded image: {}", t.familiar_name_with_tag()))
            .collect()
    }
}

fn load_docker(store: &ImageStore, lease: &Lease, dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let entries: Vec<DockerEntry> = read_json(&dir.join("manifest.json"), "manifest.json")?;
    let mut out = Vec::new();
    for e in entries {
        let config = fs::read(member(dir, &e.config)?).map_err(io("reading the config"))?;
        let (cfg, diff_ids) = manifest::parse_config(&config, e.layers.len())?;
        let mut layers: Vec<LayerRecord> = Vec::new();
        for (i, rel) in e.layers.iter().enumerate() {
            let f = File::open(member(dir, rel)?).map_err(io(format!("reading {rel}")))?;
            let parent = layers.last().map(|l: &LayerRecord| &l.chain_id);
            let layer = store.store_layer(lease, f, parent)?;
            if layer.diff_id != diff_ids[i] {
                return Err(ArchiveError::Invalid(format!(
                    "layer {rel} is {} but the config says {}",
                    layer.diff_id, diff_ids[i]
                )));
            }
            layers.push(layer);
        }
        let tags: Vec<Reference> = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse())
            .collect::<Result<_, _>>()
            .map_err(ImageError::from)?;
        let created = cfg
            .created()
            .clone()
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
        let mut id = None;
        for (i, t) in tags.iter().enumerate() {
            if i == 0 {
                id = Some(
                    store
                        .commit_config(&config, layers.clone(), created.clone(), Some(t))?
                        .id,
                );
            } else {
                store.tag(&id.clone().expect("set above").to_string(), &t.to_string())?;
            }
        }
        let id = match id {
            Some(id) => id,
            None => store.commit_config(&config, layers, created, None)?.id,
        };
        out.extend(loaded(&id, &tags));
    }
    Ok(out)
}

fn load_oci(store: &ImageStore, lease: &Lease, dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let blob_path = |d: &Digest| dir.join("blobs").join(&d.algorithm).join(&d.hex);
    let index_bytes = fs::read(dir.join("index.json")).map_err(io("reading index.json"))?;
    let Document::Index(index) = manifest::parse(&index_bytes, Some(OCI_INDEX))? else {
        return Err(ArchiveError::Invalid(
            "index.json is not an image index".into(),
        ));
    };
    let (os, arch) = manifest::host_platform();
    let mut out = Vec::new();
    for desc in index.manifests() {
        let mut digest = manifest::descriptor_digest("manifest", desc)?;
        let mut bytes = verified(&blob_path(&digest), &digest)?;
        // A nested index (a multi-platform image): take the host's platform.
        if let Document::Index(inner) = manifest::parse(&bytes, Some(desc.media_type().as_ref()))? {
            digest = manifest::descriptor_digest("manifest", manifest::pick(&inner, &os, &arch)?)?;
            bytes = verified(&blob_path(&digest), &digest)?;
        }
        let Document::Manifest(m) = manifest::parse(&bytes, None)? else {
            return Err(ArchiveError::Invalid(format!(
                "{digest} is an index inside an index inside the layout"
            )));
        };
        let config_digest = manifest::descriptor_digest("config", m.config())?;
        let config = verified(&blob_path(&config_digest), &config_digest)?;
        let (cfg, diff_ids) = manifest::parse_config(&config, m.layers().len())?;
        let chains = manifest::chain_ids(&diff_ids);
        let mut layers = Vec::new();
        for (i, l) in m.layers().iter().enumerate() {
            let blob = manifest::descriptor_digest("layer", l)?;
            lease.protect(&blob);
            lease.protect(&chains[i]);
            let f = File::open(blob_path(&blob)).map_err(io(format!("reading layer {blob}")))?;
            store.blobs().put(Some(&blob), Some(l.size()), f)?;
            let tar = decompress(store.blobs().open_blob(&blob)?).map_err(io("reading a layer"))?;
            let unpacked = store.snapshots().unpack_verified(
                &chains[i],
                &diff_ids[i],
                tar,
                ExtractOptions {
                    whiteouts: true,
                    allow_devices: false,
                    preserve_owners: nix::unistd::geteuid().is_root(),
                },
            )?;
            let unpacked = match unpacked {
                Some(n) => n,
                None => io::copy(
                    &mut decompress(store.blobs().open_blob(&blob)?)
                        .map_err(io("reading a layer"))?,
                    &mut io::sink(),
                )
                .map_err(io("reading a layer"))?,
            };
            layers.push(LayerRecord {
                blob,
                media_type: l.media_type().to_string(),
                size: l.size(),
                unpacked,
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
            });
        }
        store.blobs().put_bytes(Some(&config_digest), &config)?;
        store.blobs().put_bytes(Some(&digest), &bytes)?;
        let ann = desc.annotations().clone().unwrap_or_default();
        let tag = ann
            .get("io.containerd.image.name")
            .and_then(|n| n.parse::<Reference>().ok())
            .filter(|r| r.tag.is_some());
        let record = store.add(
            NewImage {
                config: config_digest,
                manifest: digest,
                layers,
                created: cfg
                    .created()
                    .clone()
                    .unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
                repo_digest: None,
                parent: None,
            },
            tag.as_ref(),
        )?;
        out.extend(loaded(&record.id, tag.as_slice()));
    }
    Ok(out)
}

/// Reads a blob of the layout, checking it against its digest.
fn verified(path: &Path, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
    let bytes =
        fs::read(path).map_err(|_| ArchiveError::Invalid(format!("blob {digest} is missing")))?;
    let got = sha256(&bytes);
    if got != *digest {
        return Err(ArchiveError::Invalid(format!(
            "blob {digest} has content {got}"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer::fixtures::{raw_tarball, tarball};

    fn store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(&dir.path().join("image")).unwrap();
        (dir, s)
    }

    fn two_layer(s: &ImageStore, tag: &str) -> crate::image::store::ImageRecord {
        let lease = s.lease();
        let a = s
            .store_layer(&lease, &tarball(&[("bin/a", b"a")])[..], None)
            .unwrap();
        let b = s
            .store_layer(&lease, &tarball(&[("bin/b", b"b")])[..], Some(&a.chain_id))
            .unwrap();
        s.commit(
            vec![a, b],
            json!({"Cmd": ["a"]}),
            &["a", "b"],
            Some(&tag.parse().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn save_then_load_keeps_ids_digests_and_tags() {
        let (_d1, a) = store();
        let img = two_layer(&a, "app:1");
        a.tag("app:1", "localhost:5000/app:2").unwrap();
        let mut tar = Vec::new();
        save(&a, &["app:1", "localhost:5000/app:2"], &mut tar).unwrap();

        let (d2, b) = store();
        let lines = load(&b, &tar[..]).unwrap();
        assert_eq!(
            lines,
            ["Loaded image: app:1", "Loaded image: localhost:5000/app:2"]
        );
        let got = b.resolve("app:1").unwrap();
        assert_eq!(got.id, img.id);
        assert_eq!(
            got.manifest, img.manifest,
            "the OCI layout keeps the manifest"
        );
        assert_eq!(got.layers, img.layers);
        assert_eq!(b.resolve("localhost:5000/app:2").unwrap().id, img.id);
        assert_eq!(
            fs::read_dir(d2.path().join("image/ingest"))
                .unwrap()
                .count(),
            0
        );

        // The same archive without its OCI part is what an older `docker save` makes:
        // `manifest.json` alone still loads, to the same image ID.
        let mut legacy = tar::Builder::new(Vec::new());
        let mut ar = tar::Archive::new(&tar[..]);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            if p == "index.json" || p == "oci-layout" {
                continue;
            }
            let mut h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            legacy.append_data(&mut h, &p, &data[..]).unwrap();
        }
        let legacy = legacy.into_inner().unwrap();
        let (_d3, c) = store();
        let lines = load(&c, &legacy[..]).unwrap();
        assert_eq!(lines.len(), 2);
        let got = c.resolve("app:1").unwrap();
        assert_eq!(got.id, img.id);
        assert_eq!(
            got.layers.iter().map(|l| &l.chain_id).collect::<Vec<_>>(),
            img.layers.iter().map(|l| &l.chain_id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_bad_archive_is_refused_and_leaves_nothing() {
        let (d, s) = store();
        let e = load(&s, &tarball(&[("hello.txt", b"hi")])[..]).unwrap_err();
        assert!(e.to_string().contains("manifest.json"), "{e}");
        let e = load(
            &s,
            &raw_tarball(&[("../escape", tar::EntryType::Regular, None, b"x")])[..],
        )
        .unwrap_err();
        assert!(e.to_string().contains("../escape"), "{e}");
        assert!(!d.path().join("image/escape").exists());
        // A layer whose content is not what the config says.
        let layer = tarball(&[("f", b"1")]);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(b"other").to_string()]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(
            &json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]),
        )
        .unwrap();
        let archive = tarball(&[
            ("c.json", &config),
            ("l/layer.tar", &layer),
            ("manifest.json", &manifest),
        ]);
        let e = load(&s, &archive[..]).unwrap_err();
        assert!(e.to_string().contains("l/layer.tar"), "{e}");
        assert!(s.snapshot().list().is_empty());
        assert!(
            s.blobs().list().unwrap().is_empty(),
            "nothing half-loaded stays"
        );
        assert_eq!(
            fs::read_dir(d.path().join("image/snapshots"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            fs::read_dir(d.path().join("image/ingest")).unwrap().count(),
            0
        );
    }
}
