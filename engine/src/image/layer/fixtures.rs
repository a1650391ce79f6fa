//! Layer tarballs for tests and benches (feature `testing`).

/// A tar of regular files `(path, content)`, mode 0755, owned by root, as a layer or a rootfs.
pub fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("a tar in memory");
    }
    b.into_inner().expect("a tar in memory")
}
