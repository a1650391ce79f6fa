//! What every handler shares ([`AppState`]): the engine, the containers' index, the image
//! store, the wiring, and the per-container locks that order requests on one container.

use std::collections::HashMap;
use std::sync::Arc;

use engine::container::{Engine, Index};
use engine::image::store::ImageStore;
use tokio::sync::Mutex;

use crate::api::error::ApiError;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The engine, behind one lock.
    pub engine: Arc<Mutex<Engine>>,
    /// The containers as last recorded: `ps`, `inspect` and name lookups read it without the
    /// engine's lock.
    pub index: tokio::sync::watch::Receiver<Arc<Index>>,
    /// The image store, synchronized inside: image routes never take the engine's lock.
    pub images: Arc<ImageStore>,
    /// Every container's networking and the network manager, behind their own lock: network
    /// routes never take the engine's.
    pub wiring: Arc<Mutex<engine::container::Wiring>>,
    /// What `/info` reports of the daemon's configuration (fixed at start).
    pub daemon: Arc<DaemonInfo>,
    /// Where request bodies are spooled (`<exec-root>/scratch`).
    pub scratch: std::path::PathBuf,
    /// Attachments waiting for their container to start.
    pub pending: crate::routes::streams::Pending,
    /// Execs by ID.
    pub execs: crate::routes::streams::Execs,
    /// The registry client (pull, push; credentials from Docker's config file).
    pub registry: Arc<engine::image::registry::Registry>,
    /// `docker events`: what handlers and the engine report.
    pub events: crate::events::Events,
    /// Per-container locks ordering requests on one container (see [`AppState::container_op`]).
    ops: Arc<std::sync::Mutex<HashMap<String, std::sync::Weak<Mutex<()>>>>>,
}

/// The daemon's configuration as `/info` reports it.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// `DockerRootDir`.
    pub data_root: String,
    /// `DefaultRuntime`.
    pub runtime: String,
}

impl AppState {
    /// The state of a server over `engine`, reporting to `events` (install `events.sink()`
    /// on the engine too, so its own events reach the same bus).
    pub fn new(
        engine: Engine,
        scratch: std::path::PathBuf,
        events: crate::events::Events,
    ) -> AppState {
        let daemon = DaemonInfo {
            data_root: engine.config().data_root.display().to_string(),
            runtime: engine
                .runtime()
                .binary()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let (index, images, wiring) = (engine.index(), engine.images().clone(), engine.wiring());
        AppState {
            wiring,
            engine: Arc::new(Mutex::new(engine)),
            index,
            images,
            daemon: Arc::new(daemon),
            scratch,
            ops: Default::default(),
            events,
            pending: Default::default(),
            execs: Default::default(),
            registry: {
                engine::image::registry::client::install_crypto_provider();
                Arc::new(engine::image::registry::Registry::new(Default::default()))
            },
        }
    }
}

impl AppState {
    /// The containers now (never waits on the engine).
    pub fn containers(&self) -> Arc<Index> {
        self.index.borrow().clone()
    }

    /// The full ID of container `what` (name, ID or unique prefix), from the index.
    pub fn resolve(&self, what: &str) -> Result<String, ApiError> {
        Ok(self.containers().resolve(what)?.to_string())
    }

    /// The engine, once container `id` is not busy: between the steps of a start (a restart by
    /// its policy, which does not take [`AppState::container_op`]) or while the supervisor
    /// undoes the run of an exit. Start, stop, removal, connect and `cp` wait for it, as they
    /// would behind Docker's container lock, instead of being refused. Waits on the
    /// container's state channel, never polls.
    pub async fn engine_unless_starting(&self, id: &str) -> tokio::sync::MutexGuard<'_, Engine> {
        loop {
            let e = self.engine.lock().await;
            let Some(mut rx) = e.starting_watch(id) else {
                return e;
            };
            drop(e);
            // A change is the start recorded; a closed channel is the container removed.
            let _ = rx.changed().await;
        }
    }

    /// Orders requests on container `id` as Docker's container lock does: start, stop,
    /// restart, kill, pause, unpause and rm hold it for their whole length, so an `rm -f`
    /// waits for a start to finish, while requests on other containers never wait for it.
    /// The engine's lock is taken only inside, briefly (never the other way round).
    pub async fn container_op(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            ops.retain(|_, w| w.strong_count() > 0);
            match ops.get(id).and_then(std::sync::Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(Mutex::new(()));
                    ops.insert(id.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}
