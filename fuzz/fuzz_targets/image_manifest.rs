//! Any bytes as a manifest, an image index or an image config, as a registry or an archive could
//! hand them over: parsing never panics, and every digest of an accepted document is sha256.
#![no_main]

use engine::image::manifest::{DOCKER_LIST, Document, chain_ids, descriptor_digest, parse, parse_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for hint in [None, Some(DOCKER_LIST)] {
        match parse(data, hint) {
            Ok(Document::Manifest(m)) => {
                for l in m.layers() {
                    assert_eq!(descriptor_digest("layer", l).expect("checked").algorithm, "sha256");
                }
            }
            Ok(Document::Index(i)) => {
                for m in i.manifests() {
                    assert!(descriptor_digest("manifest", m).is_ok());
                }
            }
            Err(_) => {}
        }
    }
    if let Ok((_, ids)) = parse_config(data, 1) {
        assert_eq!(chain_ids(&ids).len(), 1);
    }
});
