//! Any bytes as `docker cp`: the first line a container path, the rest a tar (plain, gzip or
//! zstd) copied into it, against a container root laid with traps (links pointing out of it,
//! absolute and relative, a link loop, a FIFO, a volume mounted inside). The pure steps keep
//! their shape (a clean path is absolute and has no `..`; a located path is relative); lookup,
//! stat and the copy out never panic, never block on the FIFO, and never resolve outside the
//! root; the copy in never writes outside it.
#![no_main]

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::Path;

use engine::container::archive::{ArchiveMount, ArchiveRoot, clean, locate};
use libfuzzer_sys::fuzz_target;

fn open_dir(p: &Path) -> OwnedFd {
    OwnedFd::from(fs::File::open(p).expect("a directory"))
}

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let path = String::from_utf8_lossy(&data[..cut]).into_owned();
    let body = data.get(cut + 1..).unwrap_or_default();

    let c = clean(&path);
    assert!(c.starts_with('/'), "{c}");
    assert!(!c.split('/').any(|p| p == ".."), "{c}");
    let (_, rel) = locate(&["/vol", "/vol/inner", "/data/"], &c);
    assert!(!rel.starts_with('/') && !rel.split('/').any(|p| p == ".."), "{rel}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let (root, vol, outside) = (
        dir.path().join("root"),
        dir.path().join("vol"),
        dir.path().join("outside"),
    );
    for d in [&root, &vol, &outside] {
        fs::create_dir(d).expect("dir");
    }
    fs::create_dir_all(root.join("etc")).expect("etc");
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    fs::write(outside.join("secret"), "host").expect("secret");
    symlink("../../outside", root.join("escape")).expect("link");
    symlink("/", root.join("abs")).expect("link");
    symlink(&outside, root.join("hostpath")).expect("link");
    symlink("loop", root.join("loop")).expect("link");
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644))
        .expect("fifo");
    fs::create_dir(root.join("vol")).expect("mount point");
    // What /proc/self/fd says is the real path (TMPDIR may hold a link).
    let (root, vol) = (
        fs::canonicalize(&root).expect("root"),
        fs::canonicalize(&vol).expect("vol"),
    );
    let ar = ArchiveRoot {
        container: "fuzz".into(),
        root: open_dir(&root),
        read_only: false,
        mounts: vec![ArchiveMount {
            destination: "/vol".into(),
            fd: open_dir(&vol),
            rw: data.len() % 2 == 0,
        }],
        freezer: None,
    };
    let inside = |fd: BorrowedFd<'_>| {
        let at = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd path");
        at.starts_with(&root) || at.starts_with(&vol)
    };
    if let Ok(r) = ar.resolve(&path) {
        assert!(inside(r.dir_fd()), "{path:?} resolved outside the root");
        let _ = ar.stat_resolved(&r);
        let mut out = Vec::new();
        let _ = ar.write_tar(&r, &mut out);
    }
    if !body.is_empty() {
        let _ = ar.extract(&path, body, false);
    }
    let names: Vec<_> = fs::read_dir(&outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["secret"], "{path:?} wrote outside the root");
    assert_eq!(fs::read(outside.join("secret")).expect("secret"), b"host");
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 3);
});
