//! `COPY` and `ADD` as layers: sources picked from the context (Go's globs, a directory's
//! contents), their checksum (what the cache compares: names, types, modes, sizes, link
//! targets and contents; not times or owners), the destination as Docker reads it (relative to
//! `WORKDIR`, a directory when it ends in `/` or exists as one), and the layer written as a
//! tar: the destination's parents (their metadata kept when the image has them, links in the
//! image followed), then the sources, owned by `--chown` (root otherwise), `--chmod` applied.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::BuildError;
use crate::container::archive::{ArchiveError, ArchiveRoot};
use berth_common::pattern::{Pattern, clean};

/// Whether a source has Go glob characters not escaped.
pub fn has_wildcards(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A source in the context: its path there (relative) and its real path on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Relative to the context's root.
    pub rel: String,
    /// On the host, inside the unpacked context.
    pub path: std::path::PathBuf,
}

/// Sources in the context: the matches of a glob (a matching directory whole), or the one
/// path named. `lookup` finds a path inside the context.
pub fn select(
    root: &Path,
    source: &str,
    lookup: impl Fn(&str) -> Result<Option<std::path::PathBuf>, BuildError>,
    keyword: &str,
) -> Result<Vec<Source>, BuildError> {
    let rel = clean(source.trim_start_matches('/'));
    let rel = rel.trim_start_matches("../").to_string();
    if has_wildcards(&rel) {
        let pattern = Pattern::glob(&rel)
            .map_err(|e| BuildError::Invalid(format!("{keyword} failed: {e}")))?;
        let mut out = Vec::new();
        walk_matches(root, "", &pattern, &mut out).map_err(|source| BuildError::Io {
            what: format!("{keyword}: reading the build context"),
            source,
        })?;
        // A matching link is followed (inside the context), as a named source is.
        let mut resolved = Vec::with_capacity(out.len());
        for m in out {
            if let Some(path) = lookup(&m.rel)? {
                resolved.push(Source { rel: m.rel, path });
            }
        }
        let out = resolved;
        if out.is_empty() {
            return Err(BuildError::Invalid(format!(
                "{keyword} failed: no source files were specified"
            )));
        }
        return Ok(out);
    }
    match lookup(&rel)? {
        Some(path) => Ok(vec![Source { rel, path }]),
        None => Err(BuildError::Invalid(format!(
            "{keyword} failed: file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist"
        ))),
    }
}

fn walk_matches(dir: &Path, rel: &str, p: &Pattern, out: &mut Vec<Source>) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = dir.join(&name);
        if p.matches(&child) {
            out.push(Source { rel: child, path });
        } else if fs::symlink_metadata(&path)?.is_dir() {
            walk_matches(&path, &child, p, out)?;
        }
    }
    Ok(())
}

/// The checksum of `sources` (sorted walk of each): what decides a `COPY`'s cache hit.
pub fn checksum(sources: &[Source]) -> Result<String, BuildError> {
    // The walk first (names, modes, sizes, link targets, in order), then the files' contents
    // hashed on both cores, then everything in order into one hash.
    let mut items: Vec<Item> = Vec::new();
    for s in sources {
        items.push(Item::Text(format!("{}\0", s.rel)));
        walk_tree(&s.path, "", &mut items).map_err(|source| BuildError::Io {
            what: format!("reading {} in the build context", s.rel),
            source,
        })?;
    }
    let files: Vec<(usize, &Path)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match it {
            Item::File(p) => Some((i, p.as_path())),
            Item::Text(_) => None,
        })
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut sums: Vec<(usize, io::Result<[u8; 32]>)> = Vec::with_capacity(files.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let mine: Vec<(usize, &Path)> =
                    files.iter().skip(w).step_by(workers).copied().collect();
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|(i, p)| (i, hash_file(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            sums.extend(h.join().unwrap_or_default());
        }
    });
    sums.sort_by_key(|(i, _)| *i);
    let mut by_index = sums.into_iter().peekable();
    let mut h = Sha256::new();
    for (i, it) in items.iter().enumerate() {
        match it {
            Item::Text(t) => h.update(t.as_bytes()),
            Item::File(p) => match by_index.next() {
                Some((j, Ok(sum))) if j == i => h.update(sum),
                Some((_, Err(source))) => {
                    return Err(BuildError::Io {
                        what: format!("reading {} in the build context", p.display()),
                        source,
                    });
                }
                _ => {
                    return Err(BuildError::Failed(format!(
                        "hashing {} in the build context failed",
                        p.display()
                    )));
                }
            },
        }
    }
    Ok(hex(&h.finalize()))
}

/// What the checksum takes, in order: text, or a file's content (its SHA-256).
enum Item {
    Text(String),
    File(std::path::PathBuf),
}

fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn walk_tree(path: &Path, rel: &str, items: &mut Vec<Item>) -> io::Result<()> {
    let m = fs::symlink_metadata(path)?;
    items.push(Item::Text(format!("{rel}\0{:o}\0{}\0", m.mode(), m.len())));
    if m.is_file() {
        items.push(Item::File(path.to_path_buf()));
    } else if m.file_type().is_symlink() {
        items.push(Item::Text(
            fs::read_link(path)?.to_string_lossy().into_owned(),
        ));
    } else if m.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            let child = format!("{rel}/{}", n.to_string_lossy());
            walk_tree(&path.join(&n), &child, items)?;
        }
    }
    items.push(Item::Text("\u{ff}".into()));
    Ok(())
}

/// The checksum of a tar's entries (sorted by name): names, types, modes, sizes, link targets
/// and contents; not times or owners, so the same files rebuilt hash the same.
pub fn checksum_tar(input: impl Read) -> Result<String, BuildError> {
    let io = |source| BuildError::Io {
        what: "reading the source's files".into(),
        source,
    };
    let mut a = tar::Archive::new(input);
    let mut lines = Vec::new();
    for e in a.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let path = e.path().map_err(io)?.to_string_lossy().into_owned();
        let h = e.header();
        let kind = h.entry_type().as_byte();
        let mode = h.mode().map_err(io)?;
        let link = e
            .link_name()
            .map_err(io)?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = Sha256::new();
        io::copy(&mut e, &mut content).map_err(io)?;
        lines.push(format!(
            "{path}\0{kind}\0{mode:o}\0{link}\0{}",
            hex(&content.finalize())
        ));
    }
    lines.sort();
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update([0xff]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The destination of `COPY`/`ADD` as written (`dest`, substituted) made absolute against
/// `workdir`; whether it names a directory (a trailing `/` or `.`).
pub fn destination(dest: &str, workdir: &str) -> (String, bool) {
    let dir = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", if workdir.is_empty() { "/" } else { workdir })
    };
    (clean(&joined), dir)
}

/// Owners and mode of what a `COPY` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Apply {
    /// `--chown` (root when not given).
    pub uid: u64,
    /// `--chown`'s group.
    pub gid: u64,
    /// `--chmod` (octal), for every entry.
    pub mode: Option<u32>,
}

/// `--chmod=MODE`: octal, at most 07777.
pub fn parse_chmod(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid --chmod={s}: give an octal mode such as 755"))
}

/// Links followed this many times at most when a destination is looked up.
const MAX_LINKS: usize = 40;

/// What a path is in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing there.
    Missing,
    /// A directory.
    Dir,
    /// Anything else.
    Other,
}

/// `path` (absolute) in the image with the links of its directories followed inside it,
/// and what is there (the last component's own link is followed with `follow_last`).
pub fn lookup(
    view: &ArchiveRoot,
    path: &str,
    follow_last: bool,
) -> Result<(String, Found), BuildError> {
    let mut todo: Vec<String> = clean(path)
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    todo.reverse();
    let mut cur = String::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        let candidate = format!("{cur}/{part}");
        match view.stat(&candidate) {
            Err(ArchiveError::NotFound { .. }) => {
                let mut rest = candidate;
                while let Some(p) = todo.pop() {
                    rest = format!("{rest}/{p}");
                }
                return Ok((rest, Found::Missing));
            }
            Err(e) => return Err(archive_err(e)),
            Ok(st) if !st.link_target.is_empty() && (follow_last || !todo.is_empty()) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(BuildError::Invalid(format!(
                        "too many levels of symbolic links in {path}"
                    )));
                }
                let mut parts: Vec<String> = st
                    .link_target
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                parts.reverse();
                todo.extend(parts);
                cur = String::new();
            }
            Ok(st) => {
                cur = candidate;
                if todo.is_empty() {
                    let dir = st.mode & (1 << 31) != 0;
                    return Ok((cur, if dir { Found::Dir } else { Found::Other }));
                }
            }
        }
    }
    Ok(("/".into(), Found::Dir))
}

/// The layer a `COPY` writes, as a tar.
#[allow(missing_debug_implementations)]
pub struct LayerTar<'v, W: Write> {
    b: tar::Builder<W>,
    view: &'v ArchiveRoot,
    apply: Apply,
    written: BTreeSet<String>,
    now: u64,
}

fn archive_err(e: ArchiveError) -> BuildError {
    BuildError::Invalid(e.to_string())
}

impl<'v, W: Write> LayerTar<'v, W> {
    /// A layer over the image `view`.
    pub fn new(out: W, view: &'v ArchiveRoot, apply: Apply) -> LayerTar<'v, W> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        LayerTar {
            b,
            view,
            apply,
            written: BTreeSet::new(),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Ends the tar.
    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }

    /// `path` (absolute) in the image being written over, as [`lookup`] finds it.
    pub fn lookup(&self, path: &str, follow_last: bool) -> Result<(String, Found), BuildError> {
        lookup(self.view, path, follow_last)
    }

    /// Writes `dir` (resolved, absolute) and its parents as directories: with their metadata
    /// where the image has them, owned by the copy's owner with mode 0755 where it does not.
    pub fn parents(&mut self, dir: &str) -> Result<(), BuildError> {
        let mut cur = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            cur = format!("{cur}/{part}");
            if self.written.contains(&cur) {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            match self.view.lstat_path(&cur) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    h.set_mode(st.st_mode & 0o7777);
                    h.set_uid(st.st_uid.into());
                    h.set_gid(st.st_gid.into());
                    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
                }
                Ok(_) => {
                    return Err(BuildError::Invalid(format!(
                        "cannot copy to non-directory: {cur}"
                    )));
                }
                Err(ArchiveError::NotFound { .. }) => {
                    h.set_mode(0o755);
                    h.set_uid(self.apply.uid);
                    h.set_gid(self.apply.gid);
                    h.set_mtime(self.now);
                }
                Err(e) => return Err(archive_err(e)),
            }
            self.append(h, &cur, io::empty())?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        mut h: tar::Header,
        path: &str,
        data: impl Read,
    ) -> Result<(), BuildError> {
        let name = path.trim_start_matches('/');
        let name = if h.entry_type() == tar::EntryType::Directory {
            format!("{name}/")
        } else {
            name.to_string()
        };
        self.b
            .append_data(&mut h, &name, data)
            .map_err(|source| BuildError::Io {
                what: format!("writing {path} into the layer"),
                source,
            })?;
        self.written.insert(path.to_string());
        Ok(())
    }

    fn header(&self, m: &fs::Metadata) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(self.apply.mode.unwrap_or(m.mode() & 0o7777));
        h.set_uid(self.apply.uid);
        h.set_gid(self.apply.gid);
        h.set_mtime(u64::try_from(m.mtime()).unwrap_or(0));
        h
    }

    /// Copies host path `src` (a file, link or directory of the context) to `dest` (absolute,
    /// resolved): a directory's contents go into `dest`, which is made as [`LayerTar::parents`]
    /// makes directories (its own metadata kept when the image has it), as Docker's.
    pub fn host(&mut self, src: &Path, dest: &str) -> Result<(), BuildError> {
        let m = fs::symlink_metadata(src).map_err(|source| BuildError::Io {
            what: format!("reading {}", src.display()),
            source,
        })?;
        if m.is_dir() {
            self.parents(dest)?;
            self.host_children(src, dest)
        } else {
            self.host_entry(src, dest)
        }
    }

    fn host_children(&mut self, src: &Path, dest: &str) -> Result<(), BuildError> {
        let io = |source| BuildError::Io {
            what: format!("reading {}", src.display()),
            source,
        };
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(io)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        names.sort();
        for n in names {
            let child = format!("{}/{}", dest.trim_end_matches('/'), n.to_string_lossy());
            self.host_entry(&src.join(&n), &child)?;
        }
        Ok(())
    }

    fn host_entry(&mut self, src: &Path, dest: &str) -> Result<(), BuildError> {
        let io = |source| BuildError::Io {
            what: format!("reading {}", src.display()),
            source,
        };
        let m = fs::symlink_metadata(src).map_err(io)?;
        let ft = m.file_type();
        let mut h = self.header(&m);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            self.append(h, dest, io::empty())?;
            self.host_children(src, dest)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io)?;
            h.set_entry_type(tar::EntryType::Symlink);
            self.append_link(h, dest, &target)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let f = File::open(src).map_err(io)?;
            self.append(h, dest, f.take(m.len()))?;
        } else {
            let kind = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(BuildError::Invalid(format!(
                "{} in the build context is {kind}: only files, directories and links are copied",
                src.display()
            )));
        }
        Ok(())
    }

    /// A link entry (long targets in GNU/PAX extensions, as the tar crate writes them).
    fn append_link(
        &mut self,
        mut h: tar::Header,
        path: &str,
        target: &Path,
    ) -> Result<(), BuildError> {
        h.set_size(0);
        let name = path.trim_start_matches('/');
        self.b
            .append_link(&mut h, name, target)
            .map_err(|source| BuildError::Io {
                what: format!("writing {path} into the layer"),
                source,
            })?;
        self.written.insert(path.to_string());
        Ok(())
    }

    /// Copies the entries of tar `input` (an archive of one item named `name`, as
    /// [`ArchiveRoot::write_tar`] writes it; `name` `.` for a directory's contents) to `dest`:
    /// the item itself becomes `dest`.
    pub fn from_tar(&mut self, input: impl Read, name: &str, dest: &str) -> Result<(), BuildError> {
        let mut a = tar::Archive::new(input);
        let io = |source| BuildError::Io {
            what: "reading the source stage's files".into(),
            source,
        };
        for entry in a.entries().map_err(io)? {
            let mut e = entry.map_err(io)?;
            let path = e.path().map_err(io)?.to_string_lossy().into_owned();
            let path = path.trim_end_matches('/');
            let rest = if name == "." {
                strip_dot(path)
            } else {
                match path.strip_prefix(name) {
                    Some(r) if r.is_empty() || r.starts_with('/') => r.trim_start_matches('/'),
                    _ => continue,
                }
            };
            if rest.split('/').any(|p| p == "..") {
                continue;
            }
            let target = if rest.is_empty() {
                dest.to_string()
            } else {
                format!("{}/{rest}", dest.trim_end_matches('/'))
            };
            let mut h = e.header().clone();
            if rest.is_empty() && h.entry_type() == tar::EntryType::Directory {
                // The copied directory itself: made as missing parents are, its metadata kept
                // where the image has it.
                self.parents(dest)?;
                continue;
            }
            h.set_uid(self.apply.uid);
            h.set_gid(self.apply.gid);
            if let Some(m) = self.apply.mode {
                h.set_mode(m);
            }
            match h.entry_type() {
                tar::EntryType::Link => {
                    // A hard link's target is renamed as the entries are.
                    let t = e
                        .link_name()
                        .map_err(io)?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let t_rest = if name == "." {
                        strip_dot(&t).to_string()
                    } else {
                        t.strip_prefix(name)
                            .unwrap_or(&t)
                            .trim_start_matches('/')
                            .to_string()
                    };
                    let t = format!("{}/{t_rest}", dest.trim_end_matches('/'));
                    let t = t.trim_start_matches('/').to_string();
                    self.append_link(h, &target, Path::new(&t))?;
                }
                tar::EntryType::Symlink => {
                    let t = e
                        .link_name()
                        .map_err(io)?
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    self.append_link(h, &target, &t)?;
                }
                _ => {
                    let size = h.size().map_err(io)?;
                    self.append(h, &target, (&mut e).take(size))?;
                }
            }
        }
        Ok(())
    }
}

/// An archive path without its leading `./` (`.` itself: nothing).
fn strip_dot(p: &str) -> &str {
    let p = p.trim_end_matches('/');
    if p == "." {
        return "";
    }
    let mut p = p;
    while let Some(r) = p.strip_prefix("./") {
        p = r;
    }
    p.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_destinations() {
        assert!(has_wildcards("*.txt"));
        assert!(has_wildcards("a[bc]"));
        assert!(!has_wildcards("a\\*b"));
        assert!(!has_wildcards("plain/path"));
        assert_eq!(destination("app/", "/srv"), ("/srv/app".into(), true));
        assert_eq!(destination("/x", "/srv"), ("/x".into(), false));
        assert_eq!(destination(".", "/w"), ("/w".into(), true));
        assert_eq!(destination("f", ""), ("/f".into(), false));
        assert_eq!(parse_chmod("755"), Ok(0o755));
        assert!(parse_chmod("9").is_err());
        assert!(parse_chmod("77777").is_err());
    }

    #[test]
    fn select_globs_and_checksums() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("src/sub")).unwrap();
        fs::write(d.path().join("a.txt"), "a").unwrap();
        fs::write(d.path().join("b.txt"), "b").unwrap();
        fs::write(d.path().join("src/sub/c"), "c").unwrap();
        let look = |r: &str| Ok(Some(d.path().join(r)).filter(|p| p.exists()));
        let s = select(d.path(), "*.txt", look, "COPY").unwrap();
        assert_eq!(
            s.iter().map(|s| s.rel.as_str()).collect::<Vec<_>>(),
            ["a.txt", "b.txt"]
        );
        assert!(select(d.path(), "*.md", look, "COPY").is_err());
        let e = select(d.path(), "nope", look, "COPY")
            .unwrap_err()
            .to_string();
        assert!(e.contains("file not found in build context"), "{e}");
        let src = select(d.path(), "src", look, "COPY").unwrap();
        let one = checksum(&src).unwrap();
        assert_eq!(one, checksum(&src).unwrap());
        fs::write(d.path().join("src/sub/c"), "C").unwrap();
        assert_ne!(one, checksum(&src).unwrap());
    }
}
