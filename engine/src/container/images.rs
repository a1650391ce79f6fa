//! [`ImageBackend`]: where images meet containers, as berthd's image routes call it. `rmi`
//! and `image prune` take who uses which image from the containers' published [`Index`]
//! (never the engine's lock), apply Docker's rules in the image store off the async workers,
//! and report the untag and delete events. Layers of a container created meanwhile are held
//! by it in the store, so a removal racing a create never takes them.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::ContainerError;
use super::index::Index;
use crate::events::{Event, EventSink};
use crate::image::store::ImageStore;

/// One line of a removal's answer (Docker's `Untagged` and `Deleted` items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A reference taken off an image.
    Untagged(String),
    /// An image (or one of its layers) deleted.
    Deleted(String),
}

impl Removal {
    /// The store's `Untagged: X` / `Deleted: X` line (`None` for any other).
    pub fn parse(line: &str) -> Option<Removal> {
        match line.split_once(": ") {
            Some(("Untagged", v)) => Some(Removal::Untagged(v.to_string())),
            Some(("Deleted", v)) => Some(Removal::Deleted(v.to_string())),
            _ => None,
        }
    }
}

/// The image events of a removal, as Docker reports them: `(action, image ID)`. An untag is
/// reported against the image it took the tag from: the deletion that follows, or `id` (the
/// image removed by name) when none does.
pub fn removal_events(removals: &[Removal], id: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut untagged = 0usize;
    for r in removals {
        match r {
            Removal::Untagged(_) => untagged += 1,
            Removal::Deleted(deleted) => {
                for _ in 0..std::mem::take(&mut untagged) {
                    out.push(("untag", deleted.clone()));
                }
                out.push(("delete", deleted.clone()));
            }
        }
    }
    if let Some(id) = id {
        for _ in 0..untagged {
            out.push(("untag", id.to_string()));
        }
    }
    out
}

/// The image backend: the store, the containers' index, the events.
#[derive(Debug, Clone)]
pub struct ImageBackend {
    store: Arc<ImageStore>,
    index: watch::Receiver<Arc<Index>>,
    events: Option<EventSink>,
}

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, crate::image::store::ImageError> + Send + 'static,
) -> Result<T, ContainerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ContainerError::Io {
            what: what.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(ContainerError::from)
}

impl ImageBackend {
    /// The backend over `store`, with the containers of `index`, reporting to `events`.
    pub fn new(
        store: Arc<ImageStore>,
        index: watch::Receiver<Arc<Index>>,
        events: Option<EventSink>,
    ) -> ImageBackend {
        ImageBackend {
            store,
            index,
            events,
        }
    }

    /// The IDs of the images containers use (`system df`, `image prune`).
    pub fn in_use(&self) -> BTreeSet<String> {
        self.index.borrow().images_in_use()
    }

    fn publish(&self, removals: &[Removal], id: Option<&str>) {
        if let Some(sink) = &self.events {
            for (action, id) in removal_events(removals, id) {
                sink.send(Event::image(&id, action, &id));
            }
        }
    }

    /// `docker rmi [-f] NAME`, by Docker's rules: refused (409) for an image a running
    /// container uses, even with `force`; with `force` and only stopped users, untagged
    /// without deleting the layers they use.
    pub async fn remove(&self, name: &str, force: bool) -> Result<Vec<Removal>, ContainerError> {
        let image_id = self.store.resolve(name)?.id.to_string();
        let users = self.index.borrow().image_users();
        let (store, name) = (self.store.clone(), name.to_string());
        let lines = blocking("removing an image", move || {
            store.remove(&name, force, |id| users.get(&id.to_string()).cloned())
        })
        .await?;
        let removals: Vec<Removal> = lines.iter().filter_map(|l| Removal::parse(l)).collect();
        self.publish(&removals, Some(&image_id));
        Ok(removals)
    }

    /// `docker image prune [-a]`: dangling images (`all`: every one no container uses); what
    /// went and the bytes reclaimed.
    pub async fn prune(&self, all: bool) -> Result<(Vec<Removal>, u64), ContainerError> {
        let in_use = self.in_use();
        let store = self.store.clone();
        let (lines, space) = blocking("pruning images", move || {
            store.prune(all, |id| in_use.contains(&id.to_string()))
        })
        .await?;
        let removals: Vec<Removal> = lines.iter().filter_map(|l| Removal::parse(l)).collect();
        self.publish(&removals, None);
        // As dockerd: one event for the prune, with the bytes freed.
        if let Some(sink) = &self.events {
            sink.send(Event::new(
                crate::events::Kind::Image,
                "prune",
                "",
                [("reclaimed".to_string(), space.to_string())].into(),
            ));
        }
        Ok((removals, space))
    }

    /// The bytes the store's layers take on disk (`system df`), counted off the async
    /// workers.
    pub async fn disk_usage(&self) -> u64 {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.disk_usage())
            .await
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_lines_to_events() {
        let removals: Vec<Removal> = [
            "Untagged: docker.io/library/app:1",
            "Untagged: docker.io/library/app:2",
            "Deleted: sha256:aa",
            "Deleted: sha256:bb",
        ]
        .iter()
        .filter_map(|s| Removal::parse(s))
        .collect();
        assert_eq!(
            removal_events(&removals, None),
            vec![
                ("untag", "sha256:aa".to_string()),
                ("untag", "sha256:aa".to_string()),
                ("delete", "sha256:aa".to_string()),
                ("delete", "sha256:bb".to_string()),
            ]
        );
        let only_untag = vec![Removal::parse("Untagged: docker.io/library/app:1").unwrap()];
        assert_eq!(
            removal_events(&only_untag, Some("sha256:cc")),
            vec![("untag", "sha256:cc".to_string())]
        );
        assert!(removal_events(&only_untag, None).is_empty());
        assert_eq!(Removal::parse("no colon"), None);
        assert_eq!(Removal::parse("Other: x"), None);
    }
}
