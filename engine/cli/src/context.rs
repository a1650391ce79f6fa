//! `berth build`'s context as the docker CLI sends it: the directory as a tar, what
//! `.dockerignore` leaves out not sent (the Dockerfile and `.dockerignore` always are, so the
//! daemon reads them and then drops them if listed), a Dockerfile from outside the context
//! added under a name of its own. Links are sent as links, never followed.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use berth_common::pattern::Ignore;

/// The packed context: a tar file and the Dockerfile's name in it.
#[derive(Debug)]
pub struct Packed {
    /// The tar, rewound.
    pub file: fs::File,
    /// The `dockerfile` query parameter.
    pub dockerfile: String,
}

/// Packs directory `dir` with Dockerfile `dockerfile` (a path; `None`: `dir/Dockerfile`).
pub fn pack(dir: &Path, dockerfile: Option<&Path>) -> io::Result<Packed> {
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "unable to prepare context: path {:?} not found",
                dir.display()
            ),
        ));
    }
    let ignore = match fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t).map_err(|e| io::Error::other(format!(".dockerignore: {e}")))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e),
    };
    let df_path = dockerfile
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("Dockerfile"));
    let df_abs = fs::canonicalize(&df_path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: {}: {e}", df_path.display()),
        )
    })?;
    let dir_abs = fs::canonicalize(dir)?;
    // Inside the context: its path there; outside: added under a name of its own.
    let (name, outside) = match df_abs.strip_prefix(&dir_abs) {
        Ok(rel) => (rel.to_string_lossy().into_owned(), false),
        Err(_) => (
            format!(".dockerfile.{}", &berth_common::id::random_id()[..20]),
            true,
        ),
    };
    let keep = [name.clone(), ".dockerignore".to_string()];
    let mut b = tar::Builder::new(io::BufWriter::new(tempfile::tempfile()?));
    b.follow_symlinks(false);
    add_dir(&mut b, &dir_abs, "", &ignore, &keep)?;
    if outside {
        let data = fs::read(&df_abs)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        b.append_data(&mut h, &name, &data[..])?;
    }
    let mut w = b.into_inner()?;
    w.flush()?;
    let mut file = w.into_inner().map_err(|e| e.into_error())?;
    io::Seek::rewind(&mut file)?;
    Ok(Packed {
        file,
        dockerfile: name,
    })
}

fn add_dir<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    ignore: &Ignore,
    keep: &[String],
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for n in names {
        let name = n.to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = dir.join(&n);
        let meta = fs::symlink_metadata(&path)?;
        let excluded = ignore.excludes(&child) && !keep.contains(&child);
        // A directory left out is still walked when it holds the Dockerfile (the docker
        // CLI's exception for it) or an exception may take something back below.
        let holds_kept = keep.iter().any(|k| k.starts_with(&format!("{child}/")));
        if excluded && !(meta.is_dir() && (ignore.has_exceptions() || holds_kept)) {
            continue;
        }
        if meta.is_dir() {
            if !excluded {
                b.append_path_with_name(&path, &child)?;
            }
            add_dir(b, &path, &child, ignore, keep)?;
        } else if (meta.is_file() || meta.file_type().is_symlink()) && !excluded {
            b.append_path_with_name(&path, &child)?;
        }
        // Sockets, FIFOs and devices are not sent (as the docker CLI skips them).
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: Packed) -> Vec<String> {
        let mut a = tar::Archive::new(p.file);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn packs_what_dockerignore_keeps() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(
            d.path().join(".dockerignore"),
            "*.log\nDockerfile\nsecret\n!secret/ok\n",
        )
        .unwrap();
        fs::write(d.path().join("a.log"), "x").unwrap();
        fs::write(d.path().join("keep.txt"), "y").unwrap();
        fs::create_dir(d.path().join("secret")).unwrap();
        fs::write(d.path().join("secret/key"), "z").unwrap();
        fs::write(d.path().join("secret/ok"), "z").unwrap();
        let p = pack(d.path(), None).unwrap();
        assert_eq!(p.dockerfile, "Dockerfile");
        let n = names(p);
        assert!(n.contains(&"Dockerfile".to_string()), "{n:?}");
        assert!(n.contains(&".dockerignore".to_string()));
        assert!(n.contains(&"keep.txt".to_string()));
        assert!(n.contains(&"secret/ok".to_string()), "{n:?}");
        assert!(
            !n.iter().any(|x| x == "a.log" || x == "secret/key"),
            "{n:?}"
        );
    }

    #[test]
    fn a_dockerfile_outside_is_added() {
        let d = tempfile::tempdir().unwrap();
        let o = tempfile::tempdir().unwrap();
        fs::write(o.path().join("Other"), "FROM scratch\n").unwrap();
        fs::write(d.path().join("f"), "1").unwrap();
        let p = pack(d.path(), Some(&o.path().join("Other"))).unwrap();
        assert!(p.dockerfile.starts_with(".dockerfile."));
        let name = p.dockerfile.clone();
        let n = names(p);
        assert!(n.contains(&name) && n.contains(&"f".to_string()), "{n:?}");
        assert!(pack(&d.path().join("nope"), None).is_err());
        // A Dockerfile in a directory .dockerignore leaves out is still sent.
        fs::create_dir(d.path().join("docker")).unwrap();
        fs::write(d.path().join("docker/Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.path().join("docker/other"), "x").unwrap();
        fs::write(d.path().join(".dockerignore"), "docker/\n").unwrap();
        let p = pack(d.path(), Some(&d.path().join("docker/Dockerfile"))).unwrap();
        assert_eq!(p.dockerfile, "docker/Dockerfile");
        let n = names(p);
        assert!(n.contains(&"docker/Dockerfile".to_string()), "{n:?}");
        assert!(!n.contains(&"docker/other".to_string()), "{n:?}");
    }
}
