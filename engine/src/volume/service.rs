//! Volume requests with Docker's rules, behind a lock of their own (never the engine's): the
//! store and who uses each volume. A container's create takes its volumes and becomes their
//! user in one step, and its removal lets them go, so a `volume rm` racing a create either
//! finds the user or runs first (and the create makes the volume again); a volume in use is
//! never removed; `volume create` of a name that exists returns it; prune removes the unused
//! anonymous volumes (every unused one with `all`). Each change is reported to `docker
//! events`. The volume routes see it as a [`VolumeBackend`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::filters::{Filters, object_matches};

use super::store::{Trash, Volume, VolumeError, VolumeStore};
use crate::events::{Event, LateSink};

/// A volume as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeView {
    /// The record.
    pub volume: Volume,
    /// `Mountpoint`.
    pub mountpoint: PathBuf,
    /// How many containers mount it.
    pub users: usize,
}

/// Whether volume `v` passes `f`, by Docker's rules: `name` a substring, `driver` (`local`),
/// every `label` asked, `dangling` (`true`/`1`: used by no container; anything else: used).
pub fn volume_matches(f: &Filters, v: &VolumeView) -> bool {
    let json = serde_json::json!({
        "Name": v.volume.name,
        "Driver": "local",
        "Labels": v.volume.labels,
    });
    object_matches(f, &json, |k, want| {
        k == "dangling" && matches!(want, "true" | "1") == (v.users == 0)
    })
}

/// What the volume routes ask of the engine (moby's `router/volume` backend).
pub trait VolumeBackend: Send + Sync + std::fmt::Debug {
    /// `docker volume ls`: the volumes `f` lets through (keys `name`, `driver`, `label`,
    /// `dangling`), with how many containers mount each.
    fn list(&self, f: &Filters) -> Vec<VolumeView>;
    /// `docker volume inspect`.
    fn inspect(&self, name: &str) -> Result<VolumeView, VolumeError>;
    /// `docker volume create [NAME]`: one that exists already is returned as it is.
    fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeView, VolumeError>;
    /// `docker volume rm`: refused while a container mounts it. Its files are to be deleted
    /// with [`Trash::delete`], off every lock.
    fn remove(&self, name: &str) -> Result<Trash, VolumeError>;
    /// `docker volume prune [-a]`: the names removed and the bytes their files took, deleted
    /// by then (blocking: run it off the async workers; no lock is held meanwhile).
    fn prune(&self, all: bool) -> (Vec<String>, u64);
}

/// The volume store and its users, shared by the engine (creates, removals) and the volume
/// routes.
#[derive(Debug, Clone)]
pub struct Volumes {
    inner: Arc<Mutex<Inner>>,
    root: PathBuf,
    events: LateSink,
}

#[derive(Debug)]
struct Inner {
    store: VolumeStore,
    /// Volume name → the IDs of the containers that mount it.
    users: BTreeMap<String, BTreeSet<String>>,
}

impl Inner {
    fn users_of(&self, name: &str) -> usize {
        self.users.get(name).map_or(0, BTreeSet::len)
    }

    fn view(&self, v: Volume) -> VolumeView {
        VolumeView {
            mountpoint: self.store.path(&v.name),
            users: self.users_of(&v.name),
            volume: v,
        }
    }

    fn remove(&mut self, name: &str) -> Result<Trash, VolumeError> {
        let users: Vec<String> = self
            .users
            .get(name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default();
        self.store.remove(name, &users)
    }
}

impl Volumes {
    /// Opens (creating) the store under `root`, reporting to `events`.
    pub fn open(root: &Path, events: LateSink) -> Result<Volumes, VolumeError> {
        Ok(Volumes {
            inner: Arc::new(Mutex::new(Inner {
                store: VolumeStore::open(root)?,
                users: BTreeMap::new(),
            })),
            root: root.to_path_buf(),
            events,
        })
    }

    fn emit(&self, name: &str, action: &str) {
        self.events.send(|| Event::volume(name, action));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change is one store call that leaves the records whole: a panic elsewhere
        // never leaves them half-changed.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where volume `name`'s data is (the mount source).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Records that container `id` mounts the volumes `names` (its record, at the engine's
    /// start).
    pub fn use_by<'a>(&self, id: &str, names: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        for n in names {
            inner
                .users
                .entry(n.to_string())
                .or_default()
                .insert(id.to_string());
        }
    }

    /// A container's create: volume `name` (an anonymous one when `None`), made when it does
    /// not exist, with container `id` as a user from now on. Returns the volume and whether
    /// this call made it.
    pub fn take(&self, id: &str, name: Option<&str>) -> Result<(Volume, bool), VolumeError> {
        let mut inner = self.lock();
        let existed = name.and_then(|n| inner.store.get(n).ok().cloned());
        let (v, made) = match existed {
            Some(v) => (v, false),
            None => (inner.store.create(name, BTreeMap::new())?, true),
        };
        inner
            .users
            .entry(v.name.clone())
            .or_default()
            .insert(id.to_string());
        drop(inner);
        if made {
            self.emit(&v.name, "create");
        }
        Ok((v, made))
    }

    /// A create's volumes for container `id`, taken with [`Taken::take`] and let go when the
    /// guard drops (the volumes it made deleted) unless [`Taken::keep`] says the container was
    /// recorded: a failed or panicking create leaves no user behind.
    pub fn taking(&self, id: &str) -> Taken {
        Taken {
            volumes: self.clone(),
            id: id.to_string(),
            made: Vec::new(),
            kept: false,
        }
    }

    /// Container `id` is gone (or its create failed): it uses no volume any more. The
    /// anonymous volumes among `remove` that no other container uses are removed too (`rm
    /// -v`, a failed create's own volumes); their files are returned to delete.
    pub fn release(&self, id: &str, remove: &[String]) -> Trash {
        let mut inner = self.lock();
        inner.users.retain(|_, u| {
            u.remove(id);
            !u.is_empty()
        });
        let mut trash = Trash::default();
        let mut removed = Vec::new();
        for n in remove {
            match inner.remove(n) {
                Ok(t) => {
                    trash.merge(t);
                    removed.push(n.clone());
                }
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(container = %id, volume = %n, error = %e, "keeping a volume")
                }
            }
        }
        drop(inner);
        for n in &removed {
            self.emit(n, "destroy");
        }
        trash
    }

    /// The IDs of the containers that mount volume `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock()
            .users
            .get(name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A create's volumes until its record is saved (see [`Volumes::taking`]).
#[derive(Debug)]
pub struct Taken {
    volumes: Volumes,
    id: String,
    made: Vec<String>,
    kept: bool,
}

impl Taken {
    /// Volume `name` (an anonymous one when `None`) for the container, made when missing.
    pub fn take(&mut self, name: Option<&str>) -> Result<Volume, VolumeError> {
        let (v, made) = self.volumes.take(&self.id, name)?;
        if made {
            self.made.push(v.name.clone());
        }
        Ok(v)
    }

    /// The container is recorded: its volumes stay its own.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if !self.kept {
            // What this create made is empty: deleted at once.
            self.volumes.release(&self.id, &self.made).delete();
        }
    }
}

impl VolumeBackend for Volumes {
    fn list(&self, f: &Filters) -> Vec<VolumeView> {
        let inner = self.lock();
        inner
            .store
            .list()
            .map(|v| inner.view(v.clone()))
            .filter(|v| volume_matches(f, v))
            .collect()
    }

    fn inspect(&self, name: &str) -> Result<VolumeView, VolumeError> {
        let inner = self.lock();
        let v = inner.store.get(name)?.clone();
        Ok(inner.view(v))
    }

    fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeView, VolumeError> {
        let mut inner = self.lock();
        if let Some(v) = name.and_then(|n| inner.store.get(n).ok().cloned()) {
            return Ok(inner.view(v));
        }
        let v = inner.store.create(name, labels)?;
        let view = inner.view(v);
        drop(inner);
        self.emit(&view.volume.name, "create");
        Ok(view)
    }

    fn remove(&self, name: &str) -> Result<Trash, VolumeError> {
        let trash = self.lock().remove(name)?;
        self.emit(name, "destroy");
        Ok(trash)
    }

    fn prune(&self, all: bool) -> (Vec<String>, u64) {
        let mut inner = self.lock();
        let Inner { store, users } = &mut *inner;
        let (deleted, trash) = store.prune(all, |n| users.get(n).is_some_and(|u| !u.is_empty()));
        drop(inner);
        let reclaimed = trash.delete_counting();
        // As dockerd's volume service: one event for the prune, with the bytes freed, and no
        // `destroy` for the volumes it took.
        self.events.send(|| {
            Event::new(
                crate::events::Kind::Volume,
                "prune",
                "",
                [("reclaimed".to_string(), reclaimed.to_string())].into(),
            )
        });
        (deleted, reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volumes() -> (tempfile::TempDir, Volumes, Arc<Mutex<Vec<String>>>) {
        let dir = tempfile::tempdir().unwrap();
        let events = LateSink::default();
        let v = Volumes::open(dir.path(), events.clone()).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        events.install(crate::events::EventSink::new(move |e: Event| {
            s.lock()
                .unwrap()
                .push(format!("{} {}", e.action, e.actor_id));
        }));
        (dir, v, seen)
    }

    #[test]
    fn a_volume_in_use_is_never_removed_and_goes_with_its_last_user() {
        let (_dir, v, seen) = volumes();
        let (data, made) = v.take("c1", Some("data")).unwrap();
        assert!(made);
        assert!(
            !v.take("c2", Some("data")).unwrap().1,
            "taken, not made again"
        );
        assert_eq!(v.inspect("data").unwrap().users, 2);
        let refused = v.remove("data").unwrap_err().to_string();
        assert_eq!(refused, "remove data: volume is in use - [c1, c2]");
        assert_eq!(v.prune(true).0, Vec::<String>::new(), "prune keeps it");
        // rm -v of one user keeps it for the other.
        assert!(v.release("c1", std::slice::from_ref(&data.name)).is_empty());
        assert_eq!(v.users("data"), ["c2"]);
        v.release("c2", std::slice::from_ref(&data.name)).delete();
        assert!(v.inspect("data").is_err(), "gone with its last user");
        assert!(!v.path("data").exists());
        assert_eq!(
            *seen.lock().unwrap(),
            ["create data", "prune ", "destroy data"],
            "one create, the prune that kept it, one destroy"
        );
    }

    #[test]
    fn create_returns_an_existing_volume_and_prune_takes_the_unused_anonymous_ones() {
        let (_dir, v, _seen) = volumes();
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let named = v.create(Some("named"), labels.clone()).unwrap();
        assert_eq!(named.volume.labels, labels);
        let again = v.create(Some("named"), BTreeMap::new()).unwrap();
        assert_eq!(again.volume.labels, labels, "the existing one, unchanged");
        let (anon, _) = v.take("c1", None).unwrap();
        assert!(anon.anonymous);
        let unused = v.create(None, BTreeMap::new()).unwrap();
        let (deleted, _) = v.prune(false);
        assert_eq!(deleted, std::slice::from_ref(&unused.volume.name));
        assert_eq!(
            v.list(&Filters::new()).len(),
            2,
            "the named one and the one in use stay"
        );
        v.use_by("c2", ["named"]);
        assert_eq!(v.inspect("named").unwrap().users, 1);
        let (deleted, _) = v.prune(true);
        assert!(deleted.is_empty(), "both are in use");
    }

    #[test]
    fn a_create_that_fails_or_panics_leaves_no_user_and_no_volume_it_made() {
        let (_dir, v, _seen) = volumes();
        v.create(Some("shared"), BTreeMap::new()).unwrap();
        let made = {
            let mut t = v.taking("c1");
            t.take(Some("shared")).unwrap();
            let made = t.take(None).unwrap().name;
            assert_eq!(v.users("shared"), ["c1"]);
            made
            // Dropped without keep: the create failed.
        };
        assert!(v.users("shared").is_empty(), "the user went");
        assert!(v.inspect(&made).is_err(), "the volume it made went");
        assert!(v.inspect("shared").is_ok(), "the one it found stays");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut t = v.taking("c2");
            t.take(Some("shared")).unwrap();
            panic!("a create's bug");
        }));
        assert!(panicked.is_err());
        assert!(v.users("shared").is_empty(), "a panic lets go too");
        let mut t = v.taking("c3");
        t.take(Some("shared")).unwrap();
        t.keep();
        assert_eq!(
            v.users("shared"),
            ["c3"],
            "a recorded create keeps its volumes"
        );
    }

    #[test]
    fn volumes_filter_as_docker() {
        let (_dir, v, _seen) = volumes();
        let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        v.create(Some("app-data"), labels).unwrap();
        v.take("c1", Some("db-data")).unwrap();
        let names = |raw: &str| -> Vec<String> {
            let f = berth_api::filters::parse(Some(raw), berth_api::filters::VOLUME_KEYS).unwrap();
            v.list(&f).into_iter().map(|x| x.volume.name).collect()
        };
        assert_eq!(names(r#"{"dangling":["true"]}"#), ["app-data"]);
        assert_eq!(names(r#"{"dangling":["false"]}"#), ["db-data"]);
        assert_eq!(names(r#"{"label":["team=a"]}"#), ["app-data"]);
        assert_eq!(names(r#"{"name":["data"],"driver":["local"]}"#).len(), 2);
        assert!(names(r#"{"driver":["nfs"]}"#).is_empty());
    }
}
