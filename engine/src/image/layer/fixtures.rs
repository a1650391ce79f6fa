//! Layer tarballs for tests and benches (feature `testing`).

/// A header owned by root with a fixed mtime, so fixtures are reproducible.
fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// A tar of regular files `(path, content)`, mode 0755, owned by root, as a layer or a rootfs.
pub fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = header(tar::EntryType::Regular, data.len(), 0o755);
        b.append_data(&mut h, name, *data).expect("a tar in memory");
    }
    b.into_inner().expect("a tar in memory")
}

/// A root file system with Debian's static busybox (`/bin/busybox`, from the `busybox-static`
/// package) and its applets `sh`, `ls`, `cat`, `echo`, `true`, `sleep`, `wget`, `httpd`, `test`,
/// `touch` and `nslookup` as symlinks: the test image.
pub fn busybox_rootfs() -> std::io::Result<Vec<u8>> {
    let busybox = std::fs::read("/bin/busybox").map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("/bin/busybox: {e} (install Debian's busybox-static)"),
        )
    })?;
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        let mode = if dir == "tmp" { 0o1777 } else { 0o755 };
        let mut h = header(tar::EntryType::Directory, 0, mode);
        b.append_data(&mut h, dir, &[][..])?;
    }
    let mut h = header(tar::EntryType::Regular, busybox.len(), 0o755);
    b.append_data(&mut h, "bin/busybox", &busybox[..])?;
    for applet in [
        "sh", "ls", "cat", "echo", "true", "sleep", "wget", "httpd", "test", "touch", "nslookup",
    ] {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut h = header(tar::EntryType::Regular, passwd.len(), 0o644);
    b.append_data(&mut h, "etc/passwd", &passwd[..])?;
    b.into_inner()
}

/// A layer holding one file `name` of `size` pseudo-random (incompressible) bytes from `seed`:
/// large images for transfer benchmarks.
pub fn random_layer(name: &str, size: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; size];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data.chunks_mut(8) {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    tarball(&[(name, &data)])
}

/// A tar whose entries' names and link targets are written into the headers as raw bytes, so
/// hostile paths the tar crate would refuse to build (`..`, absolute) can be made.
pub fn raw_tarball(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).expect("a tar in memory");
    }
    b.into_inner().expect("a tar in memory")
}
