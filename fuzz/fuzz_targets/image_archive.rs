//! Any bytes as a `docker load` archive: loading never panics, and when it fails it leaves the
//! store as it was (no image, blob, snapshot or scratch file) and nothing outside the store.
#![no_main]

use std::fs;

use engine::image::archive::load;
use engine::image::store::ImageStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("image");
    let store = ImageStore::open(&root).expect("store");
    if load(&store, data).is_err() {
        assert!(store.snapshot().list().is_empty());
        assert!(store.blobs().list().expect("blobs").is_empty());
        for sub in ["snapshots", "ingest"] {
            assert_eq!(fs::read_dir(root.join(sub)).expect("dir").count(), 0, "{sub}");
        }
    }
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1, "wrote beside the store");
});
