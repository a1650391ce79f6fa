//! The local volume driver: `<data-root>/volumes/<name>/_data` (Docker's layout), with the
//! records (name, creation time, labels, whether anonymous) in one atomically replaced file.
//! A volume outlives every container; removal is refused while one uses it. A removed volume's
//! directory is moved into `.trash/` at once (a rename) and deleted by [`Trash::delete`] off
//! every lock, so a volume holding millions of files costs its remover the time, not the
//! engine; what a crash leaves there is deleted when the store opens again.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use berth_api::opts::mount::valid_volume_name;

const RECORDS: &str = "volumes.json";
/// Removed volumes' directories until deleted (no volume name starts with a dot).
const TRASH: &str = ".trash";

/// Directories of removed volumes, to delete without holding the store.
#[derive(Debug, Default)]
#[must_use = "the directories are deleted by Trash::delete"]
pub struct Trash {
    dirs: Vec<PathBuf>,
}

impl Trash {
    /// Adds `other`'s directories.
    pub fn merge(&mut self, other: Trash) {
        self.dirs.extend(other.dirs);
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Deletes the directories (blocking: run it off the async workers).
    pub fn delete(self) {
        for d in self.dirs {
            if let Err(e) = crate::tree::remove_tree(&d) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %d.display(), error = %e, "deleting a removed volume");
                }
            }
        }
    }

    /// [`Trash::delete`], counting the bytes freed first (`volume prune`'s SpaceReclaimed).
    pub fn delete_counting(self) -> u64 {
        let freed = self.dirs.iter().map(|d| du(d)).sum();
        self.delete();
        freed
    }
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name (64 hex digits for anonymous volumes).
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// Made for `-v /path` or an image's VOLUME: `prune` without `--all` removes these.
    pub anonymous: bool,
}

/// Why a volume operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such volume.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// A bad name.
    #[error("invalid volume name {0:?}: names match [a-zA-Z0-9][a-zA-Z0-9_.-]+")]
    Name(String),
    /// A container uses it.
    #[error("remove {name}: volume is in use - [{users}]")]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        users: String,
    },
    /// The records file.
    #[error(transparent)]
    Records(#[from] berth_common::persist::PersistError),
    /// The file system.
    #[error("volume store {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The volume store under `<data-root>/volumes`.
#[derive(Debug)]
pub struct VolumeStore {
    root: PathBuf,
    volumes: BTreeMap<String, Volume>,
}

impl VolumeStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<VolumeStore, VolumeError> {
        fs::create_dir_all(root).map_err(io_at(root))?;
        let volumes = berth_common::persist::load(&root.join(RECORDS))?.unwrap_or_default();
        // What a crash left between a removal and its deletion.
        let trash = root.join(TRASH);
        if trash.exists() {
            let leftovers = Trash {
                dirs: fs::read_dir(&trash)
                    .map(|rd| rd.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default(),
            };
            std::thread::spawn(move || leftovers.delete());
        }
        Ok(VolumeStore {
            root: root.to_path_buf(),
            volumes,
        })
    }

    fn save(&self) -> Result<(), VolumeError> {
        Ok(berth_common::persist::save(
            &self.root.join(RECORDS),
            &self.volumes,
        )?)
    }

    /// Where volume `name`'s data is (the mount source).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// `docker volume create [NAME]`: an existing volume of that name is returned as is, as
    /// Docker does; without a name, an anonymous volume with a random 64-hex name.
    pub fn create(
        &mut self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let (name, anonymous) = match name {
            Some(n) if valid_volume_name(n) => (n.to_string(), false),
            Some(n) => return Err(VolumeError::Name(n.to_string())),
            None => (random_name()?, true),
        };
        if let Some(v) = self.volumes.get(&name) {
            return Ok(v.clone());
        }
        let data = self.path(&name);
        fs::create_dir_all(&data).map_err(io_at(&data))?;
        let v = Volume {
            name: name.clone(),
            created: berth_common::time::rfc3339(
                berth_common::time::unix(std::time::SystemTime::now()).0,
            ),
            labels,
            anonymous,
        };
        self.volumes.insert(name.clone(), v.clone());
        if let Err(e) = self.save() {
            self.volumes.remove(&name);
            let _ = crate::tree::remove_tree(&self.root.join(&name));
            return Err(e);
        }
        Ok(v)
    }

    /// Volume `name`.
    pub fn get(&self, name: &str) -> Result<&Volume, VolumeError> {
        self.volumes
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// Every volume, by name.
    pub fn list(&self) -> impl Iterator<Item = &Volume> {
        self.volumes.values()
    }

    /// `docker volume rm NAME`: refused while `users` (the containers using it) is not empty.
    /// Its directory is moved to the trash; delete it with [`Trash::delete`].
    pub fn remove(&mut self, name: &str, users: &[String]) -> Result<Trash, VolumeError> {
        self.get(name)?;
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users: users.join(", "),
            });
        }
        // Out of the way first, then unrecorded: a failure leaves the volume as it was.
        let dir = self.root.join(name);
        let trash = self.root.join(TRASH);
        fs::create_dir_all(&trash).map_err(io_at(&trash))?;
        let to = trash.join(&berth_common::id::random_id()[..24]);
        let moved = match fs::rename(&dir, &to) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let v = self.volumes.remove(name).expect("checked above");
        if let Err(e) = self.save() {
            self.volumes.insert(name.to_string(), v);
            if moved {
                let _ = fs::rename(&to, &dir);
            }
            return Err(e);
        }
        Ok(Trash {
            dirs: if moved { vec![to] } else { Vec::new() },
        })
    }

    /// `docker volume prune [-a]`: removes unused anonymous volumes (every unused volume with
    /// `all`); returns their names and their directories to delete. One that cannot be
    /// removed is kept (and named in the log), the others go.
    pub fn prune(&mut self, all: bool, in_use: impl Fn(&str) -> bool) -> (Vec<String>, Trash) {
        let doomed: Vec<String> = self
            .volumes
            .values()
            .filter(|v| (all || v.anonymous) && !in_use(&v.name))
            .map(|v| v.name.clone())
            .collect();
        let (mut removed, mut trash) = (Vec::new(), Trash::default());
        for n in doomed {
            match self.remove(&n, &[]) {
                Ok(t) => {
                    trash.merge(t);
                    removed.push(n);
                }
                Err(e) => tracing::warn!(volume = %n, error = %e, "prune: keeping a volume"),
            }
        }
        (removed, trash)
    }
}

fn du(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn random_name() -> Result<String, VolumeError> {
    let mut b = [0u8; 32];
    let p = Path::new("/dev/urandom");
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io_at(p))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_use_remove_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = VolumeStore::open(dir.path()).unwrap();
        let data = s
            .create(Some("pgdata"), [("app".into(), "db".into())].into())
            .unwrap();
        assert!(!data.anonymous);
        fs::write(s.path("pgdata").join("PG_VERSION"), b"16").unwrap();
        // Creating it again returns it, data intact.
        assert_eq!(s.create(Some("pgdata"), BTreeMap::new()).unwrap(), data);
        let anon = s.create(None, BTreeMap::new()).unwrap();
        assert!(anon.anonymous && anon.name.len() == 64);

        let e = s.remove("pgdata", &["web".into()]).unwrap_err();
        assert_eq!(e.to_string(), "remove pgdata: volume is in use - [web]");
        assert!(s.path("pgdata").join("PG_VERSION").exists());
        assert!(matches!(
            s.remove("nope", &[]),
            Err(VolumeError::NotFound(_))
        ));
        assert!(matches!(
            s.create(Some("-x"), BTreeMap::new()),
            Err(VolumeError::Name(_))
        ));

        // Records survive a restart.
        let mut s = VolumeStore::open(dir.path()).unwrap();
        assert_eq!(s.list().count(), 2);
        let (gone, trash) = s.prune(false, |_| false);
        assert_eq!(gone, vec![anon.name.clone()]);
        // Out of the way at once; deleted when the trash is.
        assert!(!dir.path().join(&anon.name).exists());
        assert_eq!(fs::read_dir(dir.path().join(TRASH)).unwrap().count(), 1);
        trash.delete();
        assert_eq!(fs::read_dir(dir.path().join(TRASH)).unwrap().count(), 0);
        let (gone, trash) = s.prune(true, |n| n == "pgdata");
        assert!(gone.is_empty() && trash.delete_counting() == 0);
        let (gone, trash) = s.prune(true, |_| false);
        assert_eq!(
            (gone, trash.delete_counting()),
            (vec!["pgdata".to_string()], 2)
        );
        assert_eq!(s.list().count(), 0);
        // What a crash left in the trash is deleted when the store opens.
        let left = dir.path().join(TRASH).join("x-0");
        fs::create_dir_all(left.join("deep")).unwrap();
        let _s = VolumeStore::open(dir.path()).unwrap();
        for _ in 0..100 {
            if !left.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!left.exists());
    }
}
