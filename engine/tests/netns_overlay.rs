//! Snapshots made by berth's layer extraction, stacked by overlayfs as the runtime will: the
//! top layer's whiteout hides a base file, its opaque directory hides the base directory's
//! contents, and the container's writes land in its own upper layer. Privileged (mounts); run
//! through scripts/netns-test.sh, whose private mount namespace takes the mount away with it.

#[path = "../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::fs;

use engine::image::layer::ExtractOptions;
use engine::image::layer::fixtures::tarball;
use engine::image::reference::Digest;
use engine::image::store::Snapshots;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn netns_overlay_of_extracted_layers_honours_whiteouts() {
    if !netns_support::enabled("netns_overlay_of_extracted_layers_honours_whiteouts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snaps = Snapshots::open(dir.path()).unwrap();
    let base = Digest::sha256(&"1".repeat(64)).unwrap();
    let top = Digest::sha256(&"2".repeat(64)).unwrap();
    let opts = ExtractOptions {
        whiteouts: true,
        allow_devices: false,
        preserve_owners: true,
    };
    let base_layer = tarball(&[
        ("etc/motd", b"hello"),
        ("etc/keep", b"k"),
        ("var/cache/old", b"o"),
    ]);
    let top_layer = tarball(&[
        ("etc/.wh.motd", b""),
        ("var/cache/.wh..wh..opq", b""),
        ("var/cache/new", b"n"),
    ]);
    snaps.unpack(&base, &base_layer[..], opts).unwrap();
    snaps.unpack(&top, &top_layer[..], opts).unwrap();

    let spec = snaps
        .overlay(&[base, top.clone()], &dir.path().join("containers/c1"))
        .unwrap();
    let merged = dir.path().join("merged");
    fs::create_dir(&merged).unwrap();
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(spec.options().as_str()),
    )
    .expect("overlay mount");
    let _guard = Mounted(merged.clone());

    assert!(
        !merged.join("etc/motd").exists(),
        "whiteout did not hide etc/motd"
    );
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"k");
    let cache: Vec<_> = fs::read_dir(merged.join("var/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cache, ["new"], "opaque directory showed the base's entries");
    fs::write(merged.join("etc/added"), b"w").unwrap();
    assert_eq!(fs::read(spec.upper.join("etc/added")).unwrap(), b"w");
    assert!(!snaps.path(&top).join("etc/added").exists());
}
