//! An image's file system, read-only, for a build: where `COPY` looks up its destination
//! (does it exist, is it a directory, where do its links lead) and what `COPY --from` reads.
//! The layers are mounted as a private overlay and the mount detached at once, its open
//! descriptor keeping it (so nothing is left mounted if the build dies); lookups go through
//! [`ArchiveRoot`], which never leaves the image's root.

use std::io;
use std::path::Path;

use crate::container::archive::{ArchiveRoot, open_dir_path};
use crate::container::rootfs;
use crate::image::store::{ImageRecord, OverlaySpec, Snapshots};

/// An image's file system, open; its scratch directory goes after the file system closes.
#[derive(Debug)]
pub struct View {
    /// The file system.
    pub root: ArchiveRoot,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for View {
    type Target = ArchiveRoot;
    fn deref(&self) -> &ArchiveRoot {
        &self.root
    }
}

/// Opens the file system of `image` (`None`: scratch, an empty one), using a fresh
/// directory under `work` for the mount.
pub fn open(
    snapshots: &Snapshots,
    image: Option<&ImageRecord>,
    work: &Path,
    name: &str,
) -> io::Result<View> {
    std::fs::create_dir_all(work)?;
    let dir = tempfile::Builder::new().prefix("view-").tempdir_in(work)?;
    let root = match image.filter(|i| !i.layers.is_empty()) {
        None => {
            let empty = dir.path().join("empty");
            std::fs::create_dir(&empty)?;
            open_dir_path(&empty)?
        }
        Some(img) => {
            let spec = OverlaySpec {
                lower: img
                    .layers
                    .iter()
                    .rev()
                    .map(|l| snapshots.path(&l.chain_id))
                    .collect(),
                upper: dir.path().join("upper"),
                work: dir.path().join("work"),
            };
            std::fs::create_dir(&spec.upper)?;
            std::fs::create_dir(&spec.work)?;
            let target = dir.path().join("merged");
            rootfs::mount_overlay(&spec, &target)?;
            let opened = open_dir_path(&target);
            let unmounted = rootfs::unmount(&target);
            unmounted?;
            opened?
        }
    };
    Ok(View {
        root: ArchiveRoot {
            container: name.to_string(),
            root,
            read_only: true,
            mounts: Vec::new(),
            freezer: None,
        },
        _dir: dir,
    })
}
