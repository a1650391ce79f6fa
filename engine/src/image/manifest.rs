//! Manifests, indexes and image configs as registries and archives hand them over: parsed with
//! oci-spec (Docker's schema 2 has the same shape as OCI's), checked for what berth relies on
//! (sha256 digests, layer media types, one diff ID per layer), and the platform picked from an
//! index. Pure functions over bytes.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::image::reference::Digest;

/// Docker's manifest list media type (the index of Docker's schema 2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Layer media types berth unpacks.
const LAYER_TYPES: [&str; 5] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// What is wrong with a manifest, index or config.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// "manifest", "image index", "image config".
        what: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// Docker's long-retired schema 1.
    #[error("image manifest schema version 1 is not supported (registries serve schema 2 or OCI)")]
    Schema1,
    /// A digest berth cannot verify.
    #[error("{what} digest {digest:?} is not sha256:<64 hex digits>")]
    Digest {
        /// Which descriptor.
        what: String,
        /// The digest as given.
        digest: String,
    },
    /// A layer of a kind berth does not unpack.
    #[error("layer {digest} has media type {media_type:?}; berth unpacks {}", LAYER_TYPES.join(", "))]
    LayerType {
        /// The layer.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// The config's diff IDs do not match the layers.
    #[error("image config lists {diff_ids} layer diff IDs but the manifest has {layers} layers")]
    LayerCount {
        /// Diff IDs in the config.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
    /// The index has no image for this platform.
    #[error("no image for platform {wanted} in the index (it has: {available})")]
    NoPlatform {
        /// `linux/amd64`.
        wanted: String,
        /// What it offers.
        available: String,
    },
}

/// A manifest or an index.
#[derive(Debug, Clone)]
pub enum Document {
    /// One image (both boxed: they are large and moved around).
    Manifest(Box<ImageManifest>),
    /// Images for several platforms.
    Index(Box<ImageIndex>),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
}

fn invalid(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> ManifestError {
    move |e| ManifestError::Invalid {
        what,
        detail: e.to_string(),
    }
}

/// Checks a descriptor's digest and returns it as berth's [`Digest`].
pub fn descriptor_digest(what: &str, d: &Descriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    match s.parse::<Digest>() {
        Ok(dg) if dg.algorithm == "sha256" => Ok(dg),
        _ => Err(ManifestError::Digest {
            what: what.to_string(),
            digest: s,
        }),
    }
}

/// Parses a manifest or index; `content_type` is the registry's Content-Type when known.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
        what: "manifest",
        detail: e.to_string(),
    })?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    let media = probe.media_type.as_deref().or(content_type).unwrap_or("");
    let is_index = probe.manifests.is_some()
        || media == DOCKER_LIST
        || media == MediaType::ImageIndex.to_string();
    if is_index {
        let index = ImageIndex::from_reader(bytes).map_err(invalid("image index"))?;
        for m in index.manifests() {
            descriptor_digest("manifest", m)?;
        }
        return Ok(Document::Index(Box::new(index)));
    }
    let manifest = ImageManifest::from_reader(bytes).map_err(invalid("manifest"))?;
    descriptor_digest("config", manifest.config())?;
    for layer in manifest.layers() {
        let digest = descriptor_digest("layer", layer)?;
        let mt = layer.media_type().to_string();
        if !LAYER_TYPES.contains(&mt.as_str()) {
            return Err(ManifestError::LayerType {
                digest: digest.to_string(),
                media_type: mt,
            });
        }
    }
    Ok(Document::Manifest(Box::new(manifest)))
}

/// Parses an image config and checks it has one sha256 diff ID per layer.
pub fn parse_config(
    bytes: &[u8],
    layers: usize,
) -> Result<(ImageConfiguration, Vec<Digest>), ManifestError> {
    let config = ImageConfiguration::from_reader(bytes).map_err(invalid("image config"))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| match d.parse::<Digest>() {
            Ok(dg) if dg.algorithm == "sha256" => Ok(dg),
            _ => Err(ManifestError::Digest {
                what: "layer diff ID".into(),
                digest: d.clone(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != layers {
        return Err(ManifestError::LayerCount {
            diff_ids: diff_ids.len(),
            layers,
        });
    }
    Ok((config, diff_ids))
}

/// The host's platform as OCI names it (`linux/amd64`, `linux/arm64`).
pub fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    ("linux".into(), arch.into())
}

/// Picks the manifest for `os`/`arch` from an index.
pub fn pick<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
) -> Result<&'a Descriptor, ManifestError> {
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
        })
        .ok_or_else(|| ManifestError::NoPlatform {
            wanted: format!("{os}/{arch}"),
            available: index
                .manifests()
                .iter()
                .filter_map(|m| {
                    m.platform()
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os(), p.architecture()))
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Chain IDs of a layer stack: the first layer's is its diff ID, each next one
/// `sha256(parent chain ID + " " + diff ID)`. A snapshot is keyed by it, so two images sharing a
/// base share its snapshots.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest {
                algorithm: "sha256".into(),
                hex: format!("{:x}", Sha256::digest(format!("{parent} {d}").as_bytes())),
            },
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest(layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
               "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"{}"}},
               "layers":[{{"mediaType":"{layer_type}","size":20,"digest":"{}"}}]}}"#,
            d('a'),
            d('b')
        )
    }

    #[test]
    fn docker_and_oci_manifests_parse() {
        let m = manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        let Document::Manifest(m) = parse(m.as_bytes(), None).unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers().len(), 1);
        let e = parse(manifest("application/x-evil").as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("\"application/x-evil\""), "{e}");
        let bad = manifest("application/vnd.oci.image.layer.v1.tar").replace(&d('b'), "sha256:xyz");
        assert!(parse(bad.as_bytes(), None).is_err());
        let e = parse(br#"{"schemaVersion":1,"name":"x"}"#, None).unwrap_err();
        assert!(matches!(e, ManifestError::Schema1));
        assert!(matches!(
            parse(b"[]", None),
            Err(ManifestError::Invalid { .. })
        ));
    }

    #[test]
    fn the_host_platform_is_picked_from_an_index() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{}","platform":{{"architecture":"arm64","os":"linux"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d('c'),
            d('e')
        );
        let Document::Index(i) = parse(idx.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(
            pick(&i, "linux", "amd64").unwrap().digest().to_string(),
            d('e')
        );
        let e = pick(&i, "linux", "s390x").unwrap_err().to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64, linux/amd64"),
            "{e}"
        );
    }

    #[test]
    fn configs_need_one_diff_id_per_layer() {
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            d('f')
        );
        let (_, ids) = parse_config(cfg.as_bytes(), 1).unwrap();
        assert_eq!(ids[0].to_string(), d('f'));
        let e = parse_config(cfg.as_bytes(), 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("1 layer diff IDs but the manifest has 2"),
            "{e}"
        );
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a: Digest = d('a').parse().unwrap();
        let b: Digest = d('b').parse().unwrap();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        let want = format!("{:x}", Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(ids[1].hex, want);
        // Shared bases share chain IDs; different stacks diverge.
        assert_eq!(chain_ids(std::slice::from_ref(&a))[0], ids[0]);
        assert_ne!(chain_ids(&[b, a])[1], ids[1]);
    }
}
