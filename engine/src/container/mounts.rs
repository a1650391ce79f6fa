//! What a container's mounts resolve to: `--volumes-from` first, then the image's VOLUME
//! entries as anonymous volumes, then `-v`/`--mount`, a later source replacing an earlier one
//! at the same path (Docker's order); the OCI mounts they become; and the first-use copy of the
//! image's content into an empty volume.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::Path;

use super::ContainerError;
use super::model::MountPoint;
use crate::runtime::spec::OciMount;
use berth_api::opts::mount::{MountSpec, Source};

/// `--volumes-from NAME[:ro|rw]` into the container and the access override.
pub fn parse_volumes_from(s: &str) -> Result<(String, Option<bool>), ContainerError> {
    match s.rsplit_once(':') {
        Some((c, "ro")) if !c.is_empty() => Ok((c.to_string(), Some(false))),
        Some((c, "rw")) if !c.is_empty() => Ok((c.to_string(), Some(true))),
        Some(_) => Err(ContainerError::Invalid(format!(
            "invalid --volumes-from {s:?}: expected CONTAINER, CONTAINER:ro or CONTAINER:rw"
        ))),
        None if !s.is_empty() => Ok((s.to_string(), None)),
        None => Err(ContainerError::Invalid(
            "invalid --volumes-from \"\": expected CONTAINER[:ro|rw]".into(),
        )),
    }
}

fn point(spec: &MountSpec) -> MountPoint {
    let (kind, name, source, tmpfs_size, tmpfs_mode, anonymous) = match &spec.source {
        Source::Bind(p) => ("bind", None, p.clone(), None, None, false),
        Source::Volume(n) => ("volume", Some(n.clone()), String::new(), None, None, false),
        Source::Anonymous => ("volume", None, String::new(), None, None, true),
        Source::Tmpfs { size, mode } => ("tmpfs", None, String::new(), *size, *mode, false),
    };
    MountPoint {
        kind: kind.into(),
        name,
        source,
        destination: spec.target.trim_end_matches('/').to_string(),
        rw: !spec.read_only,
        propagation: spec.propagation.as_str().into(),
        no_copy: spec.no_copy,
        tmpfs_size,
        tmpfs_mode,
        anonymous,
    }
}

/// Resolves the mounts of a new container. `from`: each `--volumes-from` container's mounts
/// with the access override. Anonymous volumes come back with `name: None` for the caller to
/// create. Two user mounts at one path are refused, as Docker does.
pub fn plan(
    specs: &[MountSpec],
    image_volumes: &[String],
    from: &[(Vec<MountPoint>, Option<bool>)],
) -> Result<Vec<MountPoint>, ContainerError> {
    let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
    for (mounts, rw) in from {
        for m in mounts.iter().filter(|m| m.kind != "tmpfs") {
            let mut m = m.clone();
            if let Some(rw) = rw {
                m.rw = *rw;
            }
            // Shared, not owned: removing this container must not remove them.
            m.anonymous = false;
            by_dest.insert(m.destination.clone(), m);
        }
    }
    for v in image_volumes {
        let dest = v.trim_end_matches('/').to_string();
        if dest.is_empty() || by_dest.contains_key(&dest) {
            continue;
        }
        by_dest.insert(
            dest.clone(),
            MountPoint {
                kind: "volume".into(),
                name: None,
                source: String::new(),
                destination: dest,
                rw: true,
                propagation: "rprivate".into(),
                no_copy: false,
                tmpfs_size: None,
                tmpfs_mode: None,
                anonymous: true,
            },
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in specs {
        let p = point(s);
        if !seen.insert(p.destination.clone()) {
            return Err(ContainerError::Invalid(format!(
                "Duplicate mount point: {}",
                p.destination
            )));
        }
        by_dest.insert(p.destination.clone(), p);
    }
    Ok(by_dest.into_values().collect())
}

/// The OCI mount of a resolved mount point; `volume_path` gives a named volume's directory.
pub fn oci_mount(m: &MountPoint, volume_path: impl Fn(&str) -> String) -> OciMount {
    match m.kind.as_str() {
        "tmpfs" => {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            if let Some(s) = m.tmpfs_size {
                options.push(format!("size={s}"));
            }
            if let Some(mode) = m.tmpfs_mode {
                options.push(format!("mode={mode:o}"));
            }
            if !m.rw {
                options.push("ro".into());
            }
            OciMount {
                destination: m.destination.clone(),
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options,
            }
        }
        "volume" => OciMount::bind(
            &volume_path(m.name.as_deref().unwrap_or_default()),
            &m.destination,
            !m.rw,
            &m.propagation,
        ),
        _ => OciMount::bind(&m.source, &m.destination, !m.rw, &m.propagation),
    }
}

/// `path` (absolute in the container) under `rootfs`, refusing any symlink on the way: an
/// image's link (`/data -> /etc`) must never lead the engine to the host's files.
pub fn inside(rootfs: &Path, path: &str) -> Option<std::path::PathBuf> {
    let mut p = rootfs.to_path_buf();
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return None;
        }
        p.push(c);
        if fs::symlink_metadata(&p).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    Some(p)
}

/// Whether a directory is empty (or missing).
pub fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p).map_or(true, |mut d| d.next().is_none())
}

/// Copies the tree at `src` into `dst` keeping modes, owners and symlinks (the image's content
/// under a volume's mount point, into the volume on first use).
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&from)?;
        let ft = m.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            lchown(&to, Some(m.uid()), Some(m.gid()))?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            lchown(&to, Some(m.uid()), Some(m.gid()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        // Devices, sockets and FIFOs are not copied (Docker's copy skips them as well).
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::opts::mount::{parse_mount, parse_volume};

    fn from_of(dest: &str, name: &str) -> MountPoint {
        point(&parse_volume(&format!("{name}:{dest}")).unwrap())
    }

    #[test]
    fn order_and_overrides() {
        let specs = vec![
            parse_volume("data:/var/lib/data").unwrap(),
            parse_mount("type=tmpfs,target=/scratch,tmpfs-size=1m").unwrap(),
            parse_volume("/tmp/host:/etc/conf:ro").unwrap(),
        ];
        let from = vec![(
            vec![from_of("/shared", "s1"), from_of("/var/lib/data", "old")],
            Some(false),
        )];
        let out = plan(&specs, &["/var/lib/data".into(), "/cache/".into()], &from).unwrap();
        let get = |d: &str| out.iter().find(|m| m.destination == d).unwrap();
        // -v replaces both --volumes-from and the image's VOLUME at the same path.
        assert_eq!(get("/var/lib/data").name.as_deref(), Some("data"));
        // The image's other VOLUME is a fresh anonymous volume.
        assert!(get("/cache").anonymous && get("/cache").name.is_none());
        // --volumes-from :ro applies, and the shared volume is not this container's to remove.
        assert!(!get("/shared").rw && !get("/shared").anonymous);
        assert_eq!(get("/etc/conf").kind, "bind");
        assert!(!get("/etc/conf").rw);
        assert_eq!(get("/scratch").tmpfs_size, Some(1 << 20));
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn duplicate_targets_are_refused() {
        let specs = vec![
            parse_volume("a1:/d").unwrap(),
            parse_volume("b1:/d/").unwrap(),
        ];
        let e = plan(&specs, &[], &[]).unwrap_err().to_string();
        assert_eq!(e, "Duplicate mount point: /d");
    }

    #[test]
    fn volumes_from_forms() {
        assert_eq!(parse_volumes_from("web").unwrap(), ("web".into(), None));
        assert_eq!(
            parse_volumes_from("web:ro").unwrap(),
            ("web".into(), Some(false))
        );
        let e = parse_volumes_from("web:rx").unwrap_err().to_string();
        assert!(e.contains("web:rx") && e.contains(":ro"), "{e}");
        assert!(parse_volumes_from("").is_err());
    }

    #[test]
    fn oci_mounts() {
        let v = from_of("/data", "pg");
        let m = oci_mount(&v, |n| format!("/vols/{n}/_data"));
        assert_eq!(m.source, "/vols/pg/_data");
        assert_eq!(m.kind, "bind");
        let t = point(&parse_mount("type=tmpfs,target=/t,tmpfs-mode=1770,readonly").unwrap());
        let m = oci_mount(&t, |_| unreachable!());
        assert!(m.options.contains(&"mode=1770".to_string()) && m.options.contains(&"ro".into()));
    }

    #[test]
    fn paths_inside_the_rootfs_never_follow_links() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("data")).unwrap();
        assert_eq!(
            inside(root.path(), "/etc/passwd"),
            Some(root.path().join("etc/passwd"))
        );
        assert_eq!(inside(root.path(), "/data"), None);
        assert_eq!(inside(root.path(), "/data/passwd"), None);
        assert_eq!(inside(root.path(), "/../etc"), None);
        assert_eq!(inside(root.path(), "/missing"), None);
    }

    #[test]
    fn copy_keeps_tree_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/f"), "x").unwrap();
        fs::set_permissions(src.path().join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/f", src.path().join("l")).unwrap();
        assert!(is_empty_dir(dst.path()));
        copy_tree(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("l")).unwrap(), "x");
        let mode = fs::metadata(dst.path().join("sub/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(!is_empty_dir(dst.path()));
    }
}
