//! Volume requests with Docker's rules, over the volume store and the containers' records: a
//! volume is in use while a container (running or not) mounts it; creating one that exists
//! returns it; one in use is never removed; prune removes the unused anonymous volumes (every
//! unused one with `all`). Each change is reported to `docker events`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{ContainerError, Engine};
use crate::events::Event;
use crate::volume::store::{Trash, Volume};

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

impl Engine {
    fn volume_view(&mut self, v: Volume, users: usize) -> VolumeView {
        let mountpoint = self.volumes.path(&v.name);
        VolumeView {
            volume: v,
            mountpoint,
            users,
        }
    }

    /// Names of the volumes some container mounts.
    fn volumes_in_use(&self) -> BTreeSet<String> {
        self.containers
            .values()
            .flat_map(|c| c.mounts.iter().filter_map(|m| m.name.clone()))
            .collect()
    }

    /// Every volume, with how many containers mount it.
    pub fn volume_list(&mut self) -> Vec<VolumeView> {
        let vols: Vec<Volume> = self.volumes.list().cloned().collect();
        vols.into_iter()
            .map(|v| {
                let users = self.volume_users(&v.name).len();
                self.volume_view(v, users)
            })
            .collect()
    }

    /// `docker volume inspect`.
    pub fn volume_inspect(&mut self, name: &str) -> Result<VolumeView, ContainerError> {
        let v = self.volumes.get(name)?.clone();
        let users = self.volume_users(name).len();
        Ok(self.volume_view(v, users))
    }

    /// `docker volume create`: a volume named `name` (generated when `None`); one that exists
    /// already is returned as it is, as Docker does.
    pub fn volume_create(
        &mut self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeView, ContainerError> {
        if let Some(v) = name.and_then(|n| self.volumes.get(n).ok().cloned()) {
            return self.volume_inspect(&v.name);
        }
        let v = self.volumes.create(name, labels)?;
        self.emit(|| Event::volume(&v.name, "create"));
        Ok(self.volume_view(v, 0))
    }

    /// `docker volume rm`: refused while a container mounts it. Its files are to be deleted
    /// with [`Trash::delete`], without the engine.
    pub fn volume_remove(&mut self, name: &str) -> Result<Trash, ContainerError> {
        let users = self.volume_users(name);
        let trash = self.volumes.remove(name, &users)?;
        self.emit(|| Event::volume(name, "destroy"));
        Ok(trash)
    }

    /// `docker volume prune [-a]`: the names removed, and their files to delete with
    /// [`Trash::delete`] (which says the bytes freed), without the engine.
    pub fn volume_prune(&mut self, all: bool) -> (Vec<String>, Trash) {
        let used = self.volumes_in_use();
        let (deleted, trash) = self.volumes.prune(all, |n| used.contains(n));
        for v in &deleted {
            self.emit(|| Event::volume(v, "destroy"));
        }
        (deleted, trash)
    }
}
