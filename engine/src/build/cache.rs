//! The build cache: which image a step made, by the step's key (its parent image, its
//! instruction as the history records it, the configuration it ran with and, for `COPY` and
//! `ADD`, the checksum of its sources), as Docker's legacy builder finds a parent's child made
//! by the same step. Kept in a state file written whole (a crash leaves the old or the new
//! one), so it survives a restart; bounded, the oldest entries going first. A hit counts only
//! while its image is in the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::reference::Digest;

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Entries {
    /// Key to (image, when it was used: a counter).
    steps: BTreeMap<String, (Digest, u64)>,
    clock: u64,
}

/// The cache.
#[derive(Debug)]
pub struct BuildCache {
    path: PathBuf,
    entries: Mutex<Entries>,
    /// Held while the file is written: concurrent builds never write the same temporary file.
    saving: Mutex<()>,
}

/// A step's key from its parts.
pub fn key(parent: Option<&Digest>, step: &str, config: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(parent.map(Digest::to_string).unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(step.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(config).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl BuildCache {
    /// Opens the cache kept at `path` (empty when there is none, or it cannot be read).
    pub fn open(path: &Path) -> BuildCache {
        let entries = match berth_common::persist::load::<Entries>(path) {
            Ok(Some(e)) => e,
            Ok(None) => Entries::default(),
            Err(e) => {
                tracing::warn!("build cache {}: {e}; starting empty", path.display());
                Entries::default()
            }
        };
        BuildCache {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            saving: Mutex::new(()),
        }
    }

    /// The image step `key` made, if any.
    pub fn get(&self, key: &str) -> Option<Digest> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.clock += 1;
        let now = e.clock;
        let hit = e.steps.get_mut(key)?;
        hit.1 = now;
        Some(hit.0.clone())
    }

    /// Records that step `key` made image `id`, and saves (blocking: call it off the runtime).
    pub fn put(&self, key: String, id: Digest) {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = {
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            e.clock += 1;
            let now = e.clock;
            e.steps.insert(key, (id, now));
            if e.steps.len() > MAX_ENTRIES {
                let mut by_age: Vec<(u64, String)> =
                    e.steps.iter().map(|(k, (_, t))| (*t, k.clone())).collect();
                by_age.sort();
                let extra = e.steps.len() - MAX_ENTRIES;
                for (_, k) in by_age.into_iter().take(extra) {
                    e.steps.remove(&k);
                }
            }
            serde_json::to_value(&*e).unwrap_or_default()
        };
        // Written outside the entries' lock (lookups go on), under the save's.
        if let Err(e) = berth_common::persist::save(&self.path, &snapshot) {
            tracing::warn!("saving the build cache {}: {e}", self.path.display());
        }
    }

    /// Forgets every entry whose image `keep` refuses; returns those images.
    pub fn retain(&self, keep: impl Fn(&Digest) -> bool) -> Vec<Digest> {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let (gone, snapshot) = {
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let mut gone = Vec::new();
            e.steps.retain(|_, (id, _)| {
                let k = keep(id);
                if !k {
                    gone.push(id.clone());
                }
                k
            });
            (gone, serde_json::to_value(&*e).unwrap_or_default())
        };
        if let Err(e) = berth_common::persist::save(&self.path, &snapshot) {
            tracing::warn!("saving the build cache {}: {e}", self.path.display());
        }
        gone
    }

    /// Images the cache refers to.
    pub fn images(&self) -> Vec<Digest> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.steps.values().map(|(d, _)| d.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    #[test]
    fn survives_a_reopen_and_forgets_what_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache.json");
        let c = BuildCache::open(&p);
        let k = key(Some(&d(1)), "RUN x", &serde_json::json!({"Env": []}));
        assert_ne!(
            k,
            key(Some(&d(2)), "RUN x", &serde_json::json!({"Env": []}))
        );
        assert_ne!(
            k,
            key(Some(&d(1)), "RUN y", &serde_json::json!({"Env": []}))
        );
        assert!(c.get(&k).is_none());
        c.put(k.clone(), d(3));
        let c = BuildCache::open(&p);
        assert_eq!(c.get(&k), Some(d(3)));
        assert_eq!(c.retain(|id| *id != d(3)), vec![d(3)]);
        assert!(BuildCache::open(&p).get(&k).is_none());
    }
}
