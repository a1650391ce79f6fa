//! `docker commit` (`POST /commit`): a container's changes become a layer on its image. The
//! new image's run configuration is the container's (or the one the request sends, merged
//! with the container's as Docker merges them), with `--change` instructions applied
//! ([`crate::build::metadata`]). The layer is written from the container's writable
//! directory ([`super::changes`]: the same paths `docker diff` lists, mount points left out,
//! deletions as OCI whiteouts), read without following the container's links, while a running
//! container is frozen (Docker's `--pause`, the default).

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::fstatat;
use serde_json::{Map, Value};

use super::ContainerError;
use super::archive::{Freezer, HardLinks, append_node};
use super::changes::{ChangeKind, ChangesPlan};
use crate::build::dockerfile::parse;
use crate::build::metadata::{MetaState, apply};
use crate::image::reference::{Digest, Reference};
use crate::image::store::{ChildImage, ImageRecord, ImageStore};

/// The instructions `--change` accepts (Docker's list).
pub const CHANGE_COMMANDS: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Applies `changes` (Dockerfile lines, `docker commit --change` / `docker import --change`)
/// to the run configuration `config`, as Docker does: they are read as one Dockerfile, and
/// any instruction that is not a configuration change is refused.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ContainerError> {
    if changes.iter().all(|c| c.trim().is_empty()) {
        return Ok(());
    }
    let d = match parse(&changes.join("\n")) {
        Ok(d) => d,
        Err(crate::build::dockerfile::ParseError::Unknown { word, .. }) => {
            return Err(ContainerError::Invalid(format!(
                "{} is not a valid change command",
                word.to_ascii_lowercase()
            )));
        }
        Err(e) => {
            return Err(ContainerError::Invalid(format!(
                "dockerfile parse error {e}"
            )));
        }
    };
    if let Some(bad) = d
        .instructions
        .iter()
        .find(|i| !CHANGE_COMMANDS.contains(&i.keyword.as_str()))
    {
        return Err(ContainerError::Invalid(format!(
            "{} is not a valid change command",
            bad.keyword.to_ascii_lowercase()
        )));
    }
    let mut state = MetaState::default();
    for i in &d.instructions {
        apply(config, i, d.escape, &mut state)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
    }
    Ok(())
}

fn empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Fills what `user` (a commit's configuration) leaves unset from `container` (the
/// container's), as Docker's commit merges them: the user's values win, environment
/// variables, labels, ports and volumes are joined.
pub fn merge(user: &mut Map<String, Value>, container: &Map<String, Value>) {
    let get = |k: &str| container.get(k).cloned().unwrap_or(Value::Null);
    for k in ["User", "WorkingDir", "StopSignal"] {
        if empty(user.get(k)) && !empty(container.get(k)) {
            user.insert(k.into(), get(k));
        }
    }
    for k in ["ExposedPorts", "Volumes", "Labels"] {
        let mut joined = container
            .get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Object(mine)) = user.get(k) {
            for (key, v) in mine {
                joined.insert(key.clone(), v.clone());
            }
        }
        if !joined.is_empty() || k == "Labels" {
            user.insert(k.into(), Value::Object(joined));
        }
    }
    let theirs: Vec<String> = get("Env")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if empty(user.get("Env")) {
        user.insert("Env".into(), get("Env"));
    } else if let Some(Value::Array(mine)) = user.get_mut("Env") {
        let keys: Vec<String> = mine
            .iter()
            .filter_map(|v| v.as_str().map(|s| env_key(s).to_string()))
            .collect();
        for e in theirs {
            if !keys.iter().any(|k| k == env_key(&e)) {
                mine.push(Value::String(e));
            }
        }
    }
    if empty(user.get("Entrypoint")) {
        if empty(user.get("Cmd")) {
            user.insert("Cmd".into(), get("Cmd"));
        }
        if matches!(user.get("Entrypoint"), None | Some(Value::Null)) {
            user.insert("Entrypoint".into(), get("Entrypoint"));
        }
    }
    // The health check field by field: what the user's leaves unset comes from the container's.
    if let Some(Value::Object(theirs)) = container.get("Healthcheck") {
        match user.get_mut("Healthcheck") {
            Some(Value::Object(mine)) => {
                for k in [
                    "Test",
                    "Interval",
                    "Timeout",
                    "StartPeriod",
                    "StartInterval",
                    "Retries",
                ] {
                    if empty(mine.get(k)) || mine.get(k) == Some(&Value::from(0)) {
                        if let Some(v) = theirs.get(k) {
                            mine.insert(k.into(), v.clone());
                        }
                    }
                }
            }
            _ => {
                user.insert("Healthcheck".into(), Value::Object(theirs.clone()));
            }
        }
    }
}

/// What `POST /commit` asks.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container's configuration as inspect shows it (`Config`).
    pub container_config: Value,
    /// The request's configuration (its body), when it sent one.
    pub config: Option<Value>,
    /// `--change` lines.
    pub changes: Vec<String>,
    /// `--author`.
    pub author: String,
    /// `--message`.
    pub comment: String,
    /// `repo[:tag]`, when given.
    pub tag: Option<String>,
    /// Freeze a running container while its changes are read (Docker's default).
    pub pause: bool,
}

/// A commit planned under the engine's lock; [`CommitPlan::run`] does it without the lock.
#[derive(Debug)]
pub struct CommitPlan {
    /// The container's ID.
    pub id: String,
    image: Digest,
    changes: ChangesPlan,
    freezer: Option<Freezer>,
    created_by: String,
}

impl super::Engine {
    /// Plans `docker commit` of container `what`.
    pub fn commit_plan(&self, what: &str) -> Result<CommitPlan, ContainerError> {
        let c = self.get(what)?;
        let image: Digest = c
            .image_id
            .parse()
            .map_err(|e| ContainerError::Invalid(format!("container {}: {e}", c.name)))?;
        Ok(CommitPlan {
            id: c.id.clone(),
            image,
            changes: self.changes_plan(&c.id)?,
            freezer: self.freezer_of(&c.id),
            // Docker's history names the command (Config.Cmd), not the entrypoint.
            created_by: c
                .options
                .config_command
                .as_ref()
                .map_or_else(|| c.args.clone(), |cc| cc.cmd.clone().unwrap_or_default())
                .join(" "),
        })
    }
}

impl CommitPlan {
    /// Makes the image (blocking: reads the container's changes and stores them).
    pub fn run(
        self,
        store: &ImageStore,
        req: CommitRequest,
    ) -> Result<ImageRecord, ContainerError> {
        // Everything the request can get wrong is checked before anything is frozen or stored.
        let tag: Option<Reference> = req
            .tag
            .as_deref()
            .map(|t| {
                t.parse::<Reference>()
                    .map_err(|e| ContainerError::Invalid(e.to_string()))
            })
            .transpose()?;
        let theirs = req
            .container_config
            .as_object()
            .cloned()
            .unwrap_or_default();
        // An empty object is no configuration (Docker decodes it as none).
        let mut config = match req.config {
            Some(Value::Object(m)) if !m.is_empty() => m,
            _ => theirs.clone(),
        };
        apply_changes(&mut config, &req.changes)?;
        merge(&mut config, &theirs);
        let created_by = self.created_by.clone();
        self.store(
            store,
            ChildImage {
                config: Value::Object(config),
                container_config: req.container_config,
                container: String::new(),
                author: req.author,
                comment: req.comment,
                created_by,
            },
            tag.as_ref(),
            req.pause,
        )
    }

    /// Stores the container's changes as a layer on its image, with `child` saying what the
    /// new image's config holds (taken as it is: a build's step). `pause`: the container is
    /// frozen while its changes are read.
    pub fn store(
        self,
        store: &ImageStore,
        mut child: ChildImage,
        tag: Option<&Reference>,
        pause: bool,
    ) -> Result<ImageRecord, ContainerError> {
        child.container = self.id.clone();
        let thaw = if pause {
            self.freezer
                .as_ref()
                .map(|f| f.hold())
                .transpose()
                .map_err(|e| ContainerError::Io {
                    what: "pausing the container to commit it".into(),
                    source: e,
                })?
        } else {
            None
        };
        // A bounded channel of chunks, not a pipe: a failed walk reaches the store as an error
        // (so no truncated layer is ever recorded), a failed store stops the walk.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        let plan = self.changes;
        let writing = std::thread::Builder::new()
            .name("berth-commit".into())
            .spawn(move || {
                // A crash here leaves the container frozen: the next engine thaws it.
                crate::failpoint::hit("commit:frozen");
                let mut w = io::BufWriter::with_capacity(CHUNK, ChunkSender(tx.clone()));
                let result = write_layer(&plan, &mut w).and_then(|()| {
                    w.flush().map_err(|e| ContainerError::Io {
                        what: "writing the layer".into(),
                        source: e,
                    })
                });
                // The end is said, never inferred: a walk that stops any other way (a panic)
                // fails the store's read.
                let _ = tx.send(match &result {
                    Ok(()) => Chunk::End,
                    Err(e) => Chunk::Failed(io::Error::other(e.to_string())),
                });
                // The container runs again once its changes are read.
                drop(thaw);
                result
            })
            .map_err(|e| ContainerError::Io {
                what: "committing".into(),
                source: e,
            })?;
        let reader = ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        };
        let stored = store.commit_child(&self.image, reader, child, tag);
        let written = writing.join().unwrap_or_else(|_| {
            Err(ContainerError::Io {
                what: "committing".into(),
                source: io::Error::other("the layer writer panicked"),
            })
        });
        match (stored, written) {
            (Ok(rec), Ok(())) => Ok(rec),
            // The walk stopped because the store did: the store's error is the cause.
            (Err(e), Err(ContainerError::Io { source, .. }))
                if source.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(e.into())
            }
            // The walk's error says why the store saw a broken stream.
            (Err(_), Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e.into()),
            // A failed walk fails the store's read, so this cannot be; never answer success.
            (Ok(_), Err(e)) => Err(e),
        }
    }
}

/// Bytes per chunk sent from the walk to the store.
const CHUNK: usize = 64 * 1024;

/// What the walk sends the store.
enum Chunk {
    /// Bytes of the layer.
    Data(Vec<u8>),
    /// The layer is whole.
    End,
    /// The walk failed.
    Failed(io::Error),
}

/// The walk's end of the channel.
struct ChunkSender(std::sync::mpsc::SyncSender<Chunk>);

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(Chunk::Data(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped reading"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The store's end: the bytes, or the walk's error.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Chunk::Data(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Chunk::End) => self.ended = true,
                Ok(Chunk::Failed(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other(
                        "the container's changes stopped before their end",
                    ));
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes the container's changes (the paths of [`ChangesPlan::layer_entries`]) as an OCI
/// layer tarball: deletions as `.wh.NAME`, directories replaced whole with `.wh..wh..opq`.
fn write_layer(plan: &ChangesPlan, out: impl Write) -> Result<(), ContainerError> {
    let io_err = |what: String| move |source: io::Error| ContainerError::Io { what, source };
    let entries = plan
        .layer_entries()
        .map_err(|e| ContainerError::Invalid(e.to_string()))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let root = match std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(plan.upper())
    {
        Ok(f) => Some(OwnedFd::from(f)),
        // Never started: nothing changed.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("opening the container's changes".into())(e)),
    };
    let mut parent: Option<(String, OwnedFd)> = None;
    let mut links = HardLinks::default();
    for e in entries.iter().filter(|_| root.is_some()) {
        let root = root.as_ref().expect("filtered");
        let rel = e.path.trim_start_matches('/');
        let (dir, base) = rel.rsplit_once('/').unwrap_or(("", rel));
        if e.kind == ChangeKind::Deleted {
            let name = if dir.is_empty() {
                format!(".wh.{base}")
            } else {
                format!("{dir}/.wh.{base}")
            };
            whiteout(&mut b, &name).map_err(io_err(format!("writing {}", e.path)))?;
            continue;
        }
        if parent.as_ref().is_none_or(|(p, _)| p != dir) {
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            let target = if dir.is_empty() { "." } else { dir };
            match openat2(root, target, how) {
                Ok(fd) => parent = Some((dir.to_string(), fd)),
                // Changed under us (a container that was not paused): left out.
                Err(
                    nix::errno::Errno::ENOENT
                    | nix::errno::Errno::ELOOP
                    | nix::errno::Errno::ENOTDIR,
                ) => continue,
                Err(err) => return Err(io_err(format!("reading {}", e.path))(err.into())),
            }
        }
        let dfd = &parent.as_ref().expect("set above").1;
        let st = match fstatat(dfd.as_fd(), base, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(err) => return Err(io_err(format!("reading {}", e.path))(err.into())),
        };
        append_node(
            &mut b,
            dfd.as_fd(),
            Some(OsStr::new(base)),
            &st,
            Path::new(rel),
            &mut links,
        )
        .map_err(io_err(format!("writing {}", e.path)))?;
        if e.opaque {
            whiteout(&mut b, &format!("{rel}/.wh..wh..opq"))
                .map_err(io_err(format!("writing {}", e.path)))?;
        }
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("writing the layer".into()))
}

fn whiteout<W: Write>(b: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    b.append_data(&mut h, name, io::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::ffi::OsStrExt;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn changes_as_docker_refuses_and_applies_them() {
        let mut c = obj(json!({"Env": ["A=1"], "Cmd": ["sh"]}));
        assert_eq!(
            apply_changes(&mut c, &["RUN echo".into()])
                .unwrap_err()
                .to_string(),
            "run is not a valid change command"
        );
        assert_eq!(
            apply_changes(&mut c, &["ENV A=2".into(), "from x".into()])
                .unwrap_err()
                .to_string(),
            "from is not a valid change command"
        );
        // Nothing was applied.
        assert_eq!(c["Env"], json!(["A=1"]));
        apply_changes(
            &mut c,
            &["ENV B=$A".into(), "CMD [\"echo\", \"ok\"]".into()],
        )
        .unwrap();
        assert_eq!(c["Env"], json!(["A=1", "B=1"]));
        assert_eq!(c["Cmd"], json!(["echo", "ok"]));
        assert!(apply_changes(&mut c, &["ENV".into()]).is_err());
    }

    #[test]
    fn the_layer_holds_the_changes_as_oci_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let (up, low) = (d.path().join("upper"), d.path().join("lower"));
        for p in ["etc", "bin", "proc"] {
            std::fs::create_dir_all(low.join(p)).unwrap();
        }
        std::fs::write(low.join("bin/true"), b"x").unwrap();
        std::fs::write(low.join("etc/old"), b"x").unwrap();
        std::fs::create_dir_all(up.join("tmp")).unwrap();
        std::fs::create_dir_all(up.join("proc")).unwrap();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::create_dir_all(up.join("bin")).unwrap();
        std::fs::write(up.join("tmp/f"), b"hi").unwrap();
        std::fs::write(up.join("etc/new"), b"n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", up.join("tmp/escape")).unwrap();
        // A FIFO the container made: archived as a FIFO, never opened.
        nix::unistd::mkfifo(
            &up.join("tmp/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        // The overlay's marks need root (CI runs as root); without them the rest is checked.
        let marks = nix::sys::stat::mknod(
            &up.join("bin/true"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .is_ok()
            && xattr::set(up.join("etc"), "trusted.overlay.opaque", b"y").is_ok();
        // Root (as CI runs) can make the overlay's marks: then they must be in the layer.
        assert!(marks || !nix::unistd::geteuid().is_root());
        // One file with two names: its content once, then a hard link.
        std::fs::write(up.join("tmp/big"), vec![7u8; 100_000]).unwrap();
        std::fs::hard_link(up.join("tmp/big"), up.join("tmp/big2")).unwrap();
        let plan = ChangesPlan::new(up.clone(), vec![low.clone()], vec!["/proc".into()]);
        let mut out = Vec::new();
        write_layer(&plan, &mut out).unwrap();
        assert!(out.len() < 150_000, "the linked file was written twice");
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(&out[..]);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut body = String::new();
            if e.header().entry_type() == tar::EntryType::Regular {
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
            }
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            names.push((name, e.header().entry_type(), body, link));
        }
        let find = |n: &str| names.iter().find(|(x, ..)| x == n);
        assert_eq!(find("tmp/f").unwrap().2, "hi");
        assert_eq!(
            find("tmp/escape").unwrap().3.as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(find("tmp/fifo").unwrap().1, tar::EntryType::Fifo);
        assert!(find("proc").is_none(), "a mount point was committed");
        assert_eq!(find("tmp/big2").unwrap().1, tar::EntryType::Link);
        assert_eq!(find("tmp/big2").unwrap().3.as_deref(), Some("tmp/big"));
        // A name that is not UTF-8 is refused by name, never left out.
        let odd = std::ffi::OsStr::from_bytes(b"tmp/\xff");
        std::fs::write(up.join(odd), b"x").unwrap();
        let plan = ChangesPlan::new(up, vec![low], vec!["/proc".into()]);
        assert!(matches!(
            write_layer(&plan, &mut Vec::new()),
            Err(ContainerError::Invalid(m)) if m.contains("not UTF-8")
        ));
        if marks {
            assert!(find("bin/.wh.true").is_some(), "{names:?}");
            assert!(find("etc/.wh..wh..opq").is_some(), "{names:?}");
        }
        // Never started: an empty layer (Docker's empty tar).
        let plan = ChangesPlan::new(d.path().join("none"), vec![], vec![]);
        let mut out = Vec::new();
        write_layer(&plan, &mut out).unwrap();
        assert_eq!(out, vec![0u8; 1024]);
    }

    #[test]
    fn merges_as_docker() {
        let container = obj(json!({
            "User": "u", "Env": ["A=1", "B=2"], "Cmd": ["sh"], "Entrypoint": null,
            "WorkingDir": "/w", "Labels": {"l": "1"}, "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["NONE"]},
        }));
        let mut user = obj(json!({"Env": ["B=3"], "Labels": {"m": "2"}, "Cmd": ["ls"]}));
        merge(&mut user, &container);
        assert_eq!(user["Env"], json!(["B=3", "A=1"]));
        assert_eq!(user["Labels"], json!({"l": "1", "m": "2"}));
        assert_eq!(user["Cmd"], json!(["ls"]));
        assert_eq!(user["User"], "u");
        assert_eq!(user["WorkingDir"], "/w");
        assert_eq!(user["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(user["Healthcheck"], json!({"Test": ["NONE"]}));
        let mut user = obj(json!({"Healthcheck": {"Interval": 5}}));
        let mut theirs = container.clone();
        theirs.insert(
            "Healthcheck".into(),
            json!({"Test": ["CMD", "true"], "Interval": 1, "Retries": 3}),
        );
        merge(&mut user, &theirs);
        assert_eq!(
            user["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 5, "Retries": 3})
        );
        // An entrypoint of the user's keeps the command it came with (none).
        let mut user = obj(json!({"Entrypoint": ["top"]}));
        merge(&mut user, &container);
        assert_eq!(user.get("Cmd"), None);
        let mut user = obj(json!({}));
        merge(&mut user, &container);
        assert_eq!(user["Cmd"], json!(["sh"]));
    }
}
