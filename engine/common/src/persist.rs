//! Writing state files so that a crash or a full disk never leaves a half-written file under its
//! final name: write a temporary file beside it, fsync it, rename it over the old one, fsync the
//! directory. Paths come from the caller (a `--data-root` in production, a temp dir in tests).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a state file could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading, writing, syncing or renaming failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The file does not hold valid state.
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// What did not parse.
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Atomically replaces `path` with `value` as JSON.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| PersistError::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        // Records hold what users keep secret (a container's Env): root's alone.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// Reads `path`, or `None` when it does not exist yet.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| PersistError::Corrupt {
                path: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_state_file_survives_a_restart_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("berth-persist-{}", std::process::id()));
        let path = dir.join("network/ipam.json");
        assert!(load::<BTreeMap<String, u32>>(&path).unwrap().is_none());
        let state = BTreeMap::from([("bridge".to_string(), 3u32)]);
        save(&path, &state).unwrap();
        // "Restart": what is read back is what was saved.
        assert_eq!(load::<BTreeMap<String, u32>>(&path).unwrap(), Some(state));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ipam.json")]);
        fs::write(&path, b"{not json").unwrap();
        let e = load::<BTreeMap<String, u32>>(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ipam.json") && e.contains("corrupt"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }
}
