//! What every handler shares ([`AppState`]): the engine, the backends of each route group
//! (containers, exec, images, networks, volumes), the containers' index and the image store.

use std::sync::Arc;

use engine::container::ops::Ops;
use engine::container::{Engine, EngineMachine, Index};
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
    /// `rmi` and `image prune` by Docker's rules, with who uses which image taken from the
    /// index.
    pub image_backend: engine::container::images::ImageBackend,
    /// The network backend: networks through the wiring's lock, never the engine's.
    pub networks: engine::container::Networks,
    /// The system backend (`/info`, `/system/df`).
    pub system: engine::system::System,
    /// Where request bodies are spooled (`<exec-root>/scratch`).
    pub scratch: std::path::PathBuf,
    /// The container backend: requests on one container in order, Docker's rules.
    pub ops: Ops<EngineMachine>,
    /// The exec backend: execs by ID, started without the engine's lock.
    pub execs: engine::container::ExecBackend,
    /// The volume backend: volumes and their users, behind their own lock.
    pub volumes: Arc<dyn engine::volume::VolumeBackend>,
    /// The registry client (pull, push; credentials from Docker's config file).
    pub registry: Arc<engine::image::registry::Registry>,
    /// `docker events`: what handlers and the engine report.
    pub events: crate::events::Events,
    /// The builder (`POST /build`).
    pub builder: engine::build::builder::Builder,
    /// What a create's first step needs, used without the engine's lock.
    pub create: engine::container::create::CreateContext,
}

impl AppState {
    /// The state of a server over `engine`, reporting to `events` (install `events.sink()`
    /// on the engine too, so its own events reach the same bus).
    pub fn new(
        engine: Engine,
        scratch: std::path::PathBuf,
        events: crate::events::Events,
    ) -> AppState {
        let (index, images, networks) = (
            engine.index(),
            engine.images().clone(),
            engine.network_backend(),
        );
        let create = engine.create_context();
        let image_backend = engine::container::images::ImageBackend::new(
            images.clone(),
            index.clone(),
            Some(events.sink()),
        );
        let system = engine::system::System::new(&engine, image_backend.clone());
        let volumes = Arc::new(engine.volumes().clone());
        // Contexts and layers being written go on the data root's disk, not the exec root's
        // tmpfs: a context may be large.
        let builder_root = engine.config().data_root.join("builder");
        let cache_path = builder_root.join("cache.json");
        let engine = Arc::new(Mutex::new(engine));
        let ops = Ops::new(EngineMachine::new(engine.clone()));
        let builder = engine::build::builder::Builder::new(
            engine.clone(),
            ops.clone(),
            images.clone(),
            builder_root.join("tmp"),
            cache_path,
        );
        AppState {
            system,
            create,
            volumes,
            image_backend,
            networks,
            ops,
            builder,
            execs: engine::container::ExecBackend::new(engine.clone()),
            engine,
            index,
            images,
            scratch,
            events,
            registry: {
                engine::image::registry::client::install_crypto_provider();
                // No credentials file: every pull and push carries its client's login.
                Arc::new(engine::image::registry::Registry::new(
                    engine::image::registry::RegistryOptions {
                        credentials: None,
                        ..Default::default()
                    },
                ))
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

    /// The engine, once container `id` is not busy (see
    /// [`EngineMachine::engine_unless_busy`]).
    pub async fn engine_unless_starting(&self, id: &str) -> tokio::sync::MutexGuard<'_, Engine> {
        self.ops.machine().engine_unless_busy(id).await
    }
}
