//! `berth cp`: files between a container and the local file system, with Docker's rules.
//! Out: the daemon's tar of the path (`GET .../archive`) extracted here as it arrives, or
//! written to stdout (`-`). In: a tar of the local path written by a blocking task into a
//! pipe that streams into `PUT .../archive` (or stdin's tar, with `-`). Nothing is held whole.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use berth_api::archive::PathStat;
use berth_cli::client::{BodyStream, Client, ClientError, enc, query, reader_body};
use berth_common::humanize::human_size3;
use clap::Args;
use hyper::Method;

use crate::Exit;

/// `berth cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or - (a tar on stdin)
    src: String,
    /// DEST_PATH, CONTAINER:DEST_PATH or - (a tar on stdout)
    dest: String,
}

fn fail(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        message: message.into(),
    }
    .into()
}

/// Docker's `splitCpArg`: `CONTAINER:PATH`, or a local path (absolute, or starting with `.`,
/// or without a colon).
pub fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// The last component of a path as Docker names a copied item: `.` for `DIR/.`.
pub fn base_of(path: &str) -> String {
    if path == "." || path.ends_with("/.") {
        return ".".into();
    }
    let t = path.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((_, b)) => b.to_string(),
        None if t.is_empty() => "/".into(),
        None => t.to_string(),
    }
}

/// The directory of a path (`/` for `/x`, `.` for `x`).
pub fn dir_of(path: &str) -> String {
    let t = path.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((d, _)) => d.to_string(),
        None => ".".into(),
    }
}

/// How archive entries are renamed on the way: `from` (the copied item's name, `.` for
/// contents only) becomes `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The name in the archive.
    pub from: String,
    /// The name wanted.
    pub to: String,
}

/// An entry's path under the extraction directory, renamed; `None` for a path that would
/// leave it (absolute, `..`).
pub fn entry_target(name: &Path, rename: Option<&Rename>) -> Option<PathBuf> {
    let mut parts: Vec<OsString> = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_os_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if let Some(r) = rename {
        if r.from == "." {
            parts.insert(0, r.to.clone().into());
        } else if parts.first().is_some_and(|f| *f == *r.from) {
            parts[0] = r.to.clone().into();
        }
    }
    if parts.is_empty() {
        return Some(PathBuf::new());
    }
    Some(parts.iter().collect())
}

/// Where a copy out extracts and how it renames, by Docker's rules: an existing directory
/// receives the item as it is; an existing file is replaced by a file; a missing path
/// becomes the item (its parent must exist).
pub fn plan_out(
    src: &PathStat,
    src_name: &str,
    dest: &str,
    dest_meta: Option<&fs::Metadata>,
) -> Result<(PathBuf, Option<Rename>), String> {
    let rename = || Rename {
        from: src_name.to_string(),
        to: base_of(dest),
    };
    match dest_meta {
        Some(m) if m.is_dir() => Ok((PathBuf::from(dest), None)),
        Some(_) if src.is_dir() => Err(format!(
            "cannot copy a directory to a file: {dest} is not a directory"
        )),
        Some(_) => Ok((PathBuf::from(dir_of(dest)), Some(rename()))),
        None if !src.is_dir() && dest.ends_with('/') => Err(format!(
            "destination directory {dest} does not exist: no such directory"
        )),
        None => Ok((PathBuf::from(dir_of(dest)), Some(rename()))),
    }
}

/// `berth cp`.
pub async fn cp(c: &Client, a: CpArgs) -> anyhow::Result<i32> {
    let (sc, sp) = split_arg(&a.src);
    let (dc, dp) = split_arg(&a.dest);
    match (sc, dc) {
        (Some(_), Some(_)) => Err(fail("copying between containers is not supported")),
        (None, None) => Err(fail("must specify at least one container source")),
        (Some(ct), None) => copy_out(c, ct, sp, dp, &a).await,
        (None, Some(ct)) => copy_in(c, sp, ct, dp, &a).await,
    }
}

fn archive_path(ct: &str, path: &str, extra: &[(&str, String)]) -> String {
    let mut pairs = vec![("path", path.to_string())];
    pairs.extend(extra.iter().cloned());
    format!("/containers/{}/archive{}", enc(ct), query(pairs))
}

/// The stat of a container path, `Ok(None)` when it does not exist.
async fn stat(c: &Client, ct: &str, path: &str) -> Result<Option<PathStat>, ClientError> {
    match c.head(&archive_path(ct, path, &[])).await {
        Ok(h) => Ok(h
            .get("X-Docker-Container-Path-Stat")
            .and_then(|v| v.to_str().ok())
            .and_then(PathStat::from_header)),
        Err(e) if e.status() == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// A bounded channel of chunks read synchronously (the extracting thread).
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Extracts the tar read from `r` under `root`, renaming entries; never writes outside
/// `root` (no `..`, no absolute names, no parent that is a link).
fn extract_local(r: impl Read, root: &Path, rename: Option<&Rename>) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let rel = entry_target(&name, rename)
            .with_context(|| format!("archive entry {} leaves the destination", name.display()))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let mut here = root.to_path_buf();
        let parents: Vec<_> = rel
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        for comp in parents {
            here.push(comp);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => anyhow::bail!(
                    "archive entry {}: {} is not a directory",
                    name.display(),
                    here.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&here).with_context(|| format!("mkdir {}", here.display()))?
                }
                Err(e) => return Err(e.into()),
            }
        }
        let target = root.join(&rel);
        if entry.header().entry_type().is_dir() {
            if let Ok(m) = fs::symlink_metadata(&target) {
                if !m.is_dir() {
                    fs::remove_file(&target)?;
                }
            }
        } else if let Ok(m) = fs::symlink_metadata(&target) {
            if m.is_dir() {
                anyhow::bail!(
                    "cannot overwrite directory {} with non-directory {}",
                    target.display(),
                    name.display()
                );
            }
        }
        entry
            .unpack(&target)
            .with_context(|| format!("extracting {}", target.display()))?;
    }
    Ok(())
}

async fn copy_out(c: &Client, ct: &str, src: &str, dest: &str, a: &CpArgs) -> anyhow::Result<i32> {
    let mut path = src.to_string();
    let mut name = base_of(src);
    let mut st = stat(c, ct, &path).await?;
    if a.follow_link {
        if let Some(s) = st
            .as_ref()
            .filter(|s| s.is_symlink() && !s.link_target.is_empty())
        {
            path = s.link_target.clone();
            st = stat(c, ct, &path).await?;
            // The copy keeps the link's name (Docker's RebaseName).
            name = base_of(src);
        }
    }
    let mut stream = c
        .stream(
            Method::GET,
            &archive_path(ct, &path, &[]),
            berth_cli::client::empty(),
            &[],
        )
        .await?;
    let Some(st) = st else {
        return Err(fail(format!(
            "Error response from daemon: Could not find the file {src} in container {ct}"
        )));
    };
    if dest == "-" {
        let mut out = io::stdout().lock();
        berth_cli::client::copy_to(&mut stream, &mut out).await?;
        return Ok(0);
    }
    let meta = fs::metadata(dest).ok();
    // The archive names the item by the path's base in the container (`st.name`); a followed
    // link keeps the link's own name.
    let from = if st.name == "." {
        ".".to_string()
    } else {
        st.name.clone()
    };
    let (root, mut rename) = plan_out(&st, &from, dest, meta.as_ref()).map_err(fail)?;
    if rename.is_none() && from != name && from != "." {
        rename = Some(Rename {
            from: from.clone(),
            to: name.clone(),
        });
    }
    if !root.as_os_str().is_empty() && !root.is_dir() {
        return Err(fail(format!(
            "destination directory {} does not exist: no such directory",
            root.display()
        )));
    }
    let total = pump_into(&mut stream, move |r| {
        extract_local(r, &root, rename.as_ref())
    })
    .await?;
    if !a.quiet {
        eprintln!("Successfully copied {} to {dest}", human_size3(total));
    }
    Ok(0)
}

/// Feeds the body to `work` on a blocking thread through a bounded channel; the bytes read.
async fn pump_into(
    stream: &mut BodyStream,
    work: impl FnOnce(ChunkReader) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(8);
    let task = tokio::task::spawn_blocking(move || {
        work(ChunkReader {
            rx,
            cur: bytes::Bytes::new(),
        })
    });
    let mut total = 0u64;
    let mut broken = None;
    while let Some(chunk) = stream.chunk().await.transpose() {
        match chunk {
            Ok(b) => {
                total += b.len() as u64;
                let tx = tx.clone();
                // A full channel blocks: send from a blocking thread.
                let sent = tokio::task::spawn_blocking(move || tx.send(b).is_ok()).await?;
                if !sent {
                    break;
                }
            }
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
    }
    drop(tx);
    task.await??;
    if let Some(e) = broken {
        return Err(e.into());
    }
    Ok(total)
}

/// Writes a tar of `src` named `name` (`None`: its contents only) to `w`; links are archived
/// as links, except `src` itself with `follow`.
fn write_local_tar(src: &Path, name: Option<&Path>, follow: bool, w: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let meta = if follow {
        fs::metadata(src)?
    } else {
        fs::symlink_metadata(src)?
    };
    if let Some(n) = name {
        b.follow_symlinks(follow);
        b.append_path_with_name(src, n)?;
        b.follow_symlinks(false);
    }
    if meta.is_dir() {
        add_children(&mut b, src, name.unwrap_or(Path::new("")))?;
    }
    b.into_inner()?.flush()
}

fn add_children<W: Write>(b: &mut tar::Builder<W>, dir: &Path, name: &Path) -> io::Result<()> {
    let mut kids: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    kids.sort_by_key(|e| e.file_name());
    for k in kids {
        let ft = k.file_type()?;
        {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_socket() {
                continue;
            }
        }
        let n = name.join(k.file_name());
        b.append_path_with_name(k.path(), &n)?;
        if ft.is_dir() {
            add_children(b, &k.path(), &n)?;
        }
    }
    Ok(())
}

/// Counts what passes through.
struct Counting<W> {
    inner: W,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

async fn copy_in(c: &Client, src: &str, ct: &str, dest: &str, a: &CpArgs) -> anyhow::Result<i32> {
    let mut extra = vec![("noOverwriteDirNonDir", "true".to_string())];
    if a.archive {
        extra.push(("copyUIDGID", "true".to_string()));
    }
    let headers: &[(&str, &str)] = &[("Content-Type", "application/x-tar")];
    if src == "-" {
        let body = reader_body(tokio::io::stdin());
        let mut s = c
            .stream(Method::PUT, &archive_path(ct, dest, &extra), body, headers)
            .await?;
        while s.chunk().await?.is_some() {}
        return Ok(0);
    }
    let local = Path::new(src);
    let meta = if a.follow_link {
        fs::metadata(local)
    } else {
        fs::symlink_metadata(local)
    }
    .map_err(|e| fail(format!("Error: lstat {src}: {e}")))?;
    let src_base = base_of(src);
    let contents = src_base == ".";
    // Where to PUT and under which name the item goes (None: contents only, as they are).
    let mut dst_stat = stat(c, ct, dest).await?;
    let mut dest_path = dest.to_string();
    if let Some(s) = dst_stat
        .as_ref()
        .filter(|s| s.is_symlink() && !s.link_target.is_empty())
    {
        dest_path = s.link_target.clone();
        dst_stat = stat(c, ct, &dest_path).await?;
    }
    let (put_dir, name): (String, Option<String>) = match &dst_stat {
        Some(s) if s.is_dir() => (dest_path.clone(), (!contents).then(|| src_base.clone())),
        Some(_) if meta.is_dir() => {
            return Err(fail(format!(
                "Error: cannot copy a directory to a file: {ct}:{dest} is not a directory"
            )));
        }
        Some(_) => (dir_of(&dest_path), Some(base_of(&dest_path))),
        None if !meta.is_dir() && dest.ends_with('/') => {
            return Err(fail(format!(
                "Error response from daemon: Could not find the file {dest} in container {ct}"
            )));
        }
        None => (dir_of(&dest_path), Some(base_of(&dest_path))),
    };
    let (r, w) = nix::unistd::pipe().context("making a pipe")?;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    let local = local.to_path_buf();
    let follow = a.follow_link;
    let writer = tokio::task::spawn_blocking(move || {
        let w = Counting {
            inner: io::BufWriter::with_capacity(64 * 1024, fs::File::from(w)),
            n: counter,
        };
        write_local_tar(&local, name.as_deref().map(Path::new), follow, w)
    });
    let body = reader_body(tokio::fs::File::from_std(fs::File::from(r)));
    let put = async {
        let mut s = c
            .stream(
                Method::PUT,
                &archive_path(ct, &put_dir, &extra),
                body,
                headers,
            )
            .await?;
        while s.chunk().await?.is_some() {}
        Ok::<_, ClientError>(())
    }
    .await;
    let written = writer.await?;
    put?;
    written.with_context(|| format!("archiving {src}"))?;
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {ct}:{dest}",
            human_size3(count.load(std::sync::atomic::Ordering::Relaxed))
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_as_docker() {
        assert_eq!(split_arg("web:/tmp/x"), (Some("web"), "/tmp/x"));
        assert_eq!(split_arg("/abs:path"), (None, "/abs:path"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
        assert_eq!(split_arg("web:"), (Some("web"), ""));
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(human_size3(2048), "2.05kB");
        assert_eq!(human_size3(512), "512B");
        assert_eq!(human_size3(10240), "10.2kB");
        assert_eq!(human_size3(0), "0B");
        assert_eq!(base_of("/tmp/dir/"), "dir");
        assert_eq!(base_of("/tmp/dir/."), ".");
        assert_eq!(base_of("f"), "f");
        assert_eq!(dir_of("/tmp/x"), "/tmp");
        assert_eq!(dir_of("/x"), "/");
        assert_eq!(dir_of("x"), ".");
    }

    #[test]
    fn entries_are_renamed_and_kept_inside() {
        let r = Rename {
            from: "dir".into(),
            to: "copy".into(),
        };
        assert_eq!(
            entry_target(Path::new("dir/a/b"), Some(&r)),
            Some("copy/a/b".into())
        );
        let dot = Rename {
            from: ".".into(),
            to: "copy".into(),
        };
        assert_eq!(
            entry_target(Path::new("a"), Some(&dot)),
            Some("copy/a".into())
        );
        assert_eq!(entry_target(Path::new("../x"), None), None);
        assert_eq!(entry_target(Path::new("/etc/x"), None), None);
        assert_eq!(entry_target(Path::new("./a"), None), Some("a".into()));
    }

    fn stat_of(dir: bool) -> PathStat {
        PathStat {
            name: "x".into(),
            size: 0,
            mode: if dir { 1 << 31 } else { 0 },
            mtime: String::new(),
            link_target: String::new(),
        }
    }

    #[test]
    fn copy_out_follows_dockers_rules() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display().to_string();
        let dm = fs::metadata(t.path()).unwrap();
        fs::write(t.path().join("f"), "").unwrap();
        let fm = fs::metadata(t.path().join("f")).unwrap();
        // Existing directory: inside it, unchanged.
        assert_eq!(
            plan_out(&stat_of(true), "x", &d, Some(&dm)).unwrap(),
            (t.path().into(), None)
        );
        // Missing: the item takes the name.
        let (root, r) = plan_out(&stat_of(true), "x", &format!("{d}/new"), None).unwrap();
        assert_eq!(root, t.path());
        assert_eq!(r.unwrap().to, "new");
        // A directory onto a file is refused; a file onto a file replaces it.
        let f = format!("{d}/f");
        assert!(plan_out(&stat_of(true), "x", &f, Some(&fm)).is_err());
        assert_eq!(
            plan_out(&stat_of(false), "x", &f, Some(&fm))
                .unwrap()
                .1
                .unwrap()
                .to,
            "f"
        );
        // A file into a missing directory (trailing slash) is refused.
        assert!(plan_out(&stat_of(false), "x", &format!("{d}/nodir/"), None).is_err());
    }

    #[test]
    fn local_tar_round_trips() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f"), "hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let mut buf = Vec::new();
        write_local_tar(&src, Some(Path::new("src")), false, &mut buf).unwrap();
        let out = t.path().join("out");
        fs::create_dir(&out).unwrap();
        let r = Rename {
            from: "src".into(),
            to: "renamed".into(),
        };
        extract_local(&buf[..], &out, Some(&r)).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("renamed/sub/f")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_link(out.join("renamed/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        // Contents only.
        let mut buf = Vec::new();
        write_local_tar(&src, None, false, &mut buf).unwrap();
        let out2 = t.path().join("out2");
        fs::create_dir(&out2).unwrap();
        extract_local(&buf[..], &out2, None).unwrap();
        assert!(out2.join("sub/f").exists());
        // A link in the archive is never written through.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", t.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "esc/pwned", &b"x"[..]).unwrap();
        let out3 = t.path().join("out3");
        fs::create_dir(&out3).unwrap();
        assert!(extract_local(&b.into_inner().unwrap()[..], &out3, None).is_err());
        assert!(!t.path().join("pwned").exists());
    }
}
