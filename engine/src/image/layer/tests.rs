//! Layer extraction against hand-built tarballs: ordinary trees, whiteouts, compression, and
//! hostile entries that must not write outside the root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// Appends an entry with `name` written into the header as raw bytes (see
/// [`fixtures::raw_tarball`]).
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let one = fixtures::raw_tarball(&[(name, kind, link, data)]);
    let mut a = tar::Archive::new(&one[..]);
    let mut e = a.entries().unwrap().next().unwrap().unwrap();
    let h = e.header().clone();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut body).unwrap();
    b.append(&h, &body[..]).unwrap();
}

fn tarball(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

fn opts() -> ExtractOptions {
    ExtractOptions {
        whiteouts: true,
        allow_devices: false,
        preserve_owners: true,
    }
}

use tar::EntryType as T;

#[test]
fn an_ordinary_tree_keeps_content_modes_owners_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tarball(|b| {
        raw(b, "bin/", T::Directory, None, b"");
        raw(b, "bin/busybox", T::Regular, None, b"#!binary");
        raw(b, "bin/sh", T::Symlink, Some("busybox"), b"");
        raw(b, "bin/ls", T::Link, Some("bin/busybox"), b"");
        raw(b, "./etc/hostname", T::Regular, None, b"box\n");
        raw(b, "run/fifo", T::Fifo, None, b"");
    });
    let dest = dir.path().join("layer");
    let stats = extract_layer(&layer[..], &dest, opts()).unwrap();
    assert_eq!(stats.entries, 6);
    assert_eq!(stats.bytes, 12);
    assert_eq!(fs::read(dest.join("bin/busybox")).unwrap(), b"#!binary");
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let (a, b) = (
        fs::metadata(dest.join("bin/busybox")).unwrap(),
        fs::metadata(dest.join("bin/ls")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.uid(), 1000);
    assert_eq!(a.permissions().mode() & 0o7777, 0o644);
    assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
    assert!(
        fs::metadata(dest.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        fs::symlink_metadata(dest.join("bin/sh")).unwrap().uid(),
        1000
    );
}

#[test]
fn whiteouts_become_overlayfs_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tarball(|b| {
        raw(b, "etc/.wh.motd", T::Regular, None, b"");
        raw(b, "var/cache/.wh..wh..opq", T::Regular, None, b"");
    });
    let dest = dir.path().join("layer");
    extract_layer(&layer[..], &dest, opts()).unwrap();
    let m = fs::symlink_metadata(dest.join("etc/motd")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(!dest.join("etc/.wh.motd").exists());
    assert_eq!(
        xattr::get(dest.join("var/cache"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn gzip_and_zstd_layers_are_recognised() {
    let layer = tarball(|b| raw(b, "f", T::Regular, None, b"data"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    assert_eq!(sniff(&gz), Compression::Gzip);
    assert_eq!(sniff(&zst), Compression::Zstd);
    assert_eq!(sniff(&layer), Compression::None);
    for blob in [gz, zst, layer] {
        let dir = tempfile::tempdir().unwrap();
        extract_layer(&blob[..], &dir.path().join("l"), opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("l/f")).unwrap(), b"data");
    }
}

/// Extracts `layer` into `<tmp>/box/layer` and returns the error, asserting that nothing is
/// left: no layer, no partial directory, nothing else in `<tmp>/box` or `<tmp>`.
fn refused(layer: &[u8]) -> LayerError {
    let dir = tempfile::tempdir().unwrap();
    let boxed = dir.path().join("box");
    fs::create_dir(&boxed).unwrap();
    let e = extract_layer(layer, &boxed.join("layer"), opts()).unwrap_err();
    assert_eq!(
        fs::read_dir(&boxed).unwrap().count(),
        0,
        "left behind in {}",
        boxed.display()
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    e
}

#[test]
fn hostile_entries_are_refused_with_nothing_written() {
    let ok = |b: &mut tar::Builder<Vec<u8>>| raw(b, "fine", T::Regular, None, b"x");
    let e = refused(&tarball(|b| {
        ok(b);
        raw(b, "../evil", T::Regular, None, b"x");
    }));
    assert!(matches!(&e, LayerError::Path(p) if p == "../evil"), "{e}");
    assert!(e.to_string().contains("no '..'"));
    let e = refused(&tarball(|b| {
        raw(b, "/etc/cron.d/evil", T::Regular, None, b"x")
    }));
    assert!(matches!(e, LayerError::Path(_)), "{e}");
    let e = refused(&tarball(|b| raw(b, "a/../../evil", T::Regular, None, b"x")));
    assert!(matches!(e, LayerError::Path(_)), "{e}");
    let e = refused(&tarball(|b| {
        ok(b);
        raw(b, "passwd", T::Link, Some("../../../../etc/passwd"), b"");
    }));
    assert!(matches!(e, LayerError::HardLink { .. }), "{e}");
    let e = refused(&tarball(|b| raw(b, "dev/sda", T::Block, None, b"")));
    assert!(matches!(&e, LayerError::Device(p) if p == "dev/sda"), "{e}");
    let e = refused(&tarball(|b| raw(b, "dev/mem", T::Char, None, b"")));
    assert!(matches!(e, LayerError::Device(_)), "{e}");
    let e = refused(&tarball(|b| raw(b, "x/.wh...", T::Regular, None, b"")));
    assert!(matches!(e, LayerError::Path(_)), "{e}");
    let e = refused(&tarball(|b| {
        raw(b, "loop", T::Symlink, Some("loop"), b"");
        raw(b, "loop/f", T::Regular, None, b"x");
    }));
    assert!(matches!(e, LayerError::Loop(_)), "{e}");
    let e = refused(
        &b"this is not a tar archive at all, but it is long enough to be read as a header block"
            .repeat(8),
    );
    assert!(matches!(e, LayerError::Io { .. }), "{e}");
}

#[test]
fn symlinks_resolve_inside_the_root_never_outside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let layer = tarball(|b| {
        // An absolute link and a link climbing past the root both stay inside it.
        raw(b, "abs", T::Symlink, Some(outside.to_str().unwrap()), b"");
        raw(b, "abs/planted", T::Regular, None, b"x");
        raw(b, "up", T::Symlink, Some("../../../../../outside"), b"");
        raw(b, "up/planted2", T::Regular, None, b"x");
        raw(b, "up/.wh.victim", T::Regular, None, b"");
    });
    let dest = dir.path().join("layer");
    extract_layer(&layer[..], &dest, opts()).unwrap();
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the root"
    );
    let inner = dest.join(outside.strip_prefix("/").unwrap());
    assert!(inner.join("planted").is_file());
    assert!(dest.join("outside/planted2").is_file());
    assert!(
        fs::symlink_metadata(dest.join("outside/victim"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn a_later_entry_replaces_an_earlier_one_of_another_kind() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tarball(|b| {
        raw(b, "x", T::Symlink, Some("/etc/passwd"), b"");
        raw(b, "x", T::Regular, None, b"file");
        raw(b, "d/f", T::Regular, None, b"1");
        raw(b, "d", T::Regular, None, b"now a file");
    });
    let dest = dir.path().join("layer");
    extract_layer(&layer[..], &dest, opts()).unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"file");
    assert_eq!(fs::read(dest.join("d")).unwrap(), b"now a file");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_bytes_never_panic_or_escape(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        let boxed = dir.path().join("box");
        fs::create_dir(&boxed).unwrap();
        let _ = extract_layer(&bytes[..], &boxed.join("layer"), opts());
        let names: Vec<_> = fs::read_dir(&boxed).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert!(names.is_empty() || names == ["layer"], "{names:?}");
        prop_assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn without_whiteouts_wh_names_are_ordinary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("data"), b"keep").unwrap();
    let tar = tarball(|b| {
        raw(b, ".wh.data", T::Regular, None, b"a file");
        raw(b, ".wh..wh..opq", T::Regular, None, b"another");
    });
    let o = ExtractOptions {
        whiteouts: false,
        ..opts()
    };
    unpack(&tar[..], root, o).unwrap();
    assert_eq!(std::fs::read(root.join("data")).unwrap(), b"keep");
    assert_eq!(std::fs::read(root.join(".wh.data")).unwrap(), b"a file");
    assert_eq!(
        std::fs::read(root.join(".wh..wh..opq")).unwrap(),
        b"another"
    );
}
