//! [`Index`]: what readers see of the containers (`ps`, `inspect`, name and ID-prefix lookups),
//! published whole by the engine after every change on a watch channel. Readers take the
//! latest [`Arc<Index>`] and never wait on the engine, whatever it is doing; an index is never
//! changed once published (a change makes a new one sharing the untouched entries).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use netcore::network::Endpoint;

use super::model::Container;
use super::{ContainerError, names};
use crate::image::store::ImageUser;

/// One of the networks a container is on, with what inspect shows of it: the settings its
/// record keeps for it, and the endpoint while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// The network's name.
    pub network: String,
    /// What its record asks of the endpoint, as given (a running container's endpoint adds
    /// its short ID to the aliases).
    pub settings: super::model::Connection,
    /// The endpoint, while the container runs.
    pub ep: Option<Endpoint>,
    /// The network's ID.
    pub network_id: String,
    /// The network's gateway.
    pub gateway: Option<IpAddr>,
}

/// One container as last recorded, with its endpoints and log path.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The record.
    pub container: Container,
    /// Its networks, in the order of their names.
    pub endpoints: Vec<EndpointView>,
    /// Its json-file log.
    pub log_path: PathBuf,
}

/// Every container at one moment.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// ID to name: what [`names::resolve`] looks through.
    names: BTreeMap<String, String>,
    entries: BTreeMap<String, Arc<Entry>>,
}

impl Index {
    /// The ID of the container named `what` (full ID, name, `/name` or unique ID prefix).
    pub fn resolve(&self, what: &str) -> Result<&str, ContainerError> {
        names::resolve(&self.names, what)
    }

    /// The container named `what`.
    pub fn get(&self, what: &str) -> Result<&Arc<Entry>, ContainerError> {
        let id = self.resolve(what)?;
        Ok(&self.entries[id])
    }

    /// `HostConfig.Links` of `c` as Docker shows them: `/db:/web/alias` for each `--link`
    /// whose container exists (a removed container's links go with it).
    pub fn links_of(&self, c: &Container) -> Vec<String> {
        c.options
            .links
            .iter()
            .filter_map(|l| {
                let link: netcore::network::ContainerLink = l.parse().ok()?;
                let o = self.get(&link.container).ok()?;
                Some(format!("/{}:/{}/{}", o.container.name, c.name, link.alias))
            })
            .collect()
    }

    /// Every container, by ID.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.entries.values()
    }

    /// How many containers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Who uses each image (by image ID) as `rmi`'s rules see it: a running (or paused)
    /// container when there is one, else any.
    pub fn image_users(&self) -> HashMap<String, ImageUser> {
        let mut users: HashMap<String, ImageUser> = HashMap::new();
        for c in self.entries.values().map(|e| &e.container) {
            let running = c.state.status.is_live();
            if users.get(&c.image_id).is_some_and(|u| u.running) {
                continue;
            }
            users.insert(
                c.image_id.clone(),
                ImageUser {
                    container: c.id.chars().take(12).collect(),
                    running,
                },
            );
        }
        users
    }

    /// The IDs of the images any container uses, running or not (`image prune` keeps them).
    pub fn images_in_use(&self) -> BTreeSet<String> {
        self.entries
            .values()
            .map(|e| e.container.image_id.clone())
            .collect()
    }

    /// This index with container `id` set to `entry` (or gone, with `None`); the other
    /// entries are shared, not copied.
    pub(super) fn with(&self, id: &str, entry: Option<Entry>) -> Index {
        let mut next = self.clone();
        match entry {
            Some(e) => {
                next.names.insert(id.to_string(), e.container.name.clone());
                next.entries.insert(id.to_string(), Arc::new(e));
            }
            None => {
                next.names.remove(id);
                next.entries.remove(id);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::state::Status;

    fn entry(id: &str, name: &str) -> Entry {
        Entry {
            container: Container {
                id: id.into(),
                name: name.into(),
                created: String::new(),
                image_id: String::new(),
                layers: Vec::new(),
                args: Vec::new(),
                env: Vec::new(),
                workdir: String::new(),
                user: String::new(),
                hostname: String::new(),
                network_mode: super::super::model::NetworkMode::None,
                mounts: Vec::new(),
                exposed_ports: Default::default(),
                connections: Default::default(),
                primary_disconnected: false,
                restart_policy: Default::default(),
                options: Default::default(),
                state: Default::default(),
            },
            endpoints: Vec::new(),
            log_path: PathBuf::from(format!("/logs/{id}")),
        }
    }

    #[test]
    fn a_change_makes_a_new_index_and_leaves_the_published_one_alone() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let one = Index::default().with(&a, Some(entry(&a, "web")));
        let two = one.with(&b, Some(entry(&b, "db")));
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        // Entries not changed are shared between the two.
        assert!(Arc::ptr_eq(
            one.get("web").unwrap(),
            two.get("web").unwrap()
        ));
        assert_eq!(two.resolve("db").unwrap(), b);
        assert_eq!(two.resolve("/db").unwrap(), b);
        assert_eq!(two.resolve("bbbb").unwrap(), b);
        let renamed = two.with(&b, Some(entry(&b, "store")));
        assert!(renamed.get("db").is_err());
        assert_eq!(renamed.get("store").unwrap().container.id, b);
        let gone = renamed.with(&a, None);
        assert!(matches!(gone.get("web"), Err(ContainerError::NotFound(_))));
        assert!(matches!(
            gone.resolve(&a[..12]),
            Err(ContainerError::NotFound(_))
        ));
        assert_eq!(
            two.get("web").unwrap().container.id,
            a,
            "a published index changed"
        );
    }

    #[test]
    fn image_users_name_a_running_container_before_a_stopped_one() {
        let with_image = |id: &str, name: &str, image: &str, status| {
            let mut e = entry(id, name);
            e.container.image_id = image.into();
            e.container.state.status = status;
            e
        };
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let index = Index::default()
            .with(
                &a,
                Some(with_image(&a, "old", "sha256:app", Status::Exited)),
            )
            .with(
                &b,
                Some(with_image(&b, "web", "sha256:app", Status::Running)),
            )
            .with(&c, Some(with_image(&c, "db", "sha256:db", Status::Created)));
        let users = index.image_users();
        assert_eq!(
            users["sha256:app"],
            ImageUser {
                container: "b".repeat(12),
                running: true
            }
        );
        assert_eq!(
            users["sha256:db"],
            ImageUser {
                container: "c".repeat(12),
                running: false
            }
        );
        assert_eq!(users.len(), 2);
        assert_eq!(
            index.images_in_use().into_iter().collect::<Vec<_>>(),
            ["sha256:app", "sha256:db"]
        );
    }
}
