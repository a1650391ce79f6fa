//! Any bytes as a layer blob (plain, gzip or zstd tar): extraction never panics and never writes
//! outside its root: after it, the root's parent holds the layer or nothing.
#![no_main]

use std::fs;

use engine::image::layer::{ExtractOptions, extract_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp dir");
    let boxed = dir.path().join("box");
    fs::create_dir(&boxed).expect("box");
    // Whiteouts as in image layers on odd inputs, as files (docker cp) on even ones.
    let opts = ExtractOptions {
        allow_devices: false,
        preserve_owners: false,
        whiteouts: data.len() % 2 == 1,
    };
    let _ = extract_layer(data, &boxed.join("layer"), opts);
    let names: Vec<_> = fs::read_dir(&boxed)
        .expect("box")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.is_empty() || names == ["layer"], "{names:?}");
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
});
