//! [`Engine`]: the process that holds containers. Opening it loads every record and brings each
//! one in line with the machine (live shims adopted, dead ones finished and cleaned up, restart
//! policies honoured); create validates everything a start will need, so a start fails only on
//! what the machine refuses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_common::id::random_id;
use berth_common::persist;
use netcore::dns::{ResolvConf, Resolver, ResolverConfig};
use netcore::firewall::nft::NftCommand;
use netcore::link::RtNetlink;
use netcore::network::{NetworkManager, Sysctl};
use tokio::sync::{Notify, watch};

use super::index::{EndpointView, Entry, Index};
use super::model::{Container, CreateOptions, NetworkMode, State};
use super::wiring::Wiring;
use super::{ContainerError, etc, io_err, names};
use crate::events::{Event, EventSink, LateSink};
use crate::image::reference::Digest;
use crate::image::store::ImageStore;
use crate::runtime::oci::RuncLike;
use crate::runtime::registry::Runtimes;
use crate::runtime::spec;
use crate::volume::service::Volumes;

/// What a container's state channel carries: its state, and a count of its exits that only
/// goes up, so a waiter that was not scheduled while the container was exited (a `docker
/// restart`, a restart policy) still sees that it exited, and with which code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The state as last recorded.
    pub state: State,
    /// Exits recorded since this engine opened.
    pub exits: u64,
    /// The exit code of the last of them.
    pub last_exit_code: i32,
}

impl Published {
    pub(super) fn new(state: &State) -> Published {
        Published {
            state: state.clone(),
            exits: 0,
            last_exit_code: state.exit_code,
        }
    }

    /// Takes `state` in; false when nothing changed. Leaving a live status counts an exit.
    fn update(&mut self, state: &State) -> bool {
        if self.state == *state {
            return false;
        }
        if self.state.status.is_live() && !state.status.is_live() {
            self.exits += 1;
            self.last_exit_code = state.exit_code;
        }
        self.state = state.clone();
        true
    }
}

/// Where an engine keeps things and what it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (`/var/lib/berth`): images, volumes, networks, container records.
    pub data_root: PathBuf,
    /// Runtime state (`/run/berth`): bundles, namespaces, the runtime's root, shim files.
    pub exec_root: PathBuf,
    /// `--runtime`/`default-runtime`: one of the runtimes by name (runc, crun, a declared
    /// one) or a program's path; runc (else crun) when absent.
    pub runtime: Option<String>,
    /// daemon.json's `runtimes` and `--add-runtime`: more runtimes by name.
    pub runtimes: BTreeMap<String, crate::runtime::registry::RuntimeSpec>,
    /// The `berth-shim` binary.
    pub shim: PathBuf,
    /// The `berth-proxy` binary: the host-local side of `-p`, started when none runs for
    /// this exec root and left running, as the shims are.
    pub proxy: PathBuf,
    /// The host's resolv.conf (upstreams of the embedded DNS, default-bridge resolv.conf).
    pub resolv_conf: PathBuf,
    /// The `berth-slirp` binary: each `--network slirp` container's userspace network stack.
    pub slirp: PathBuf,
    /// Parent cgroup of every container (`berth`).
    pub cgroup_parent: String,
}

/// Holds every container of one data root. One per data root at a time (a lock file).
pub struct Engine {
    pub(super) cfg: EngineConfig,
    pub(super) images: Arc<ImageStore>,
    pub(super) volumes: Volumes,
    pub(super) containers: BTreeMap<String, Container>,
    /// The networking of every container, behind a lock of its own (see [`Wiring`]).
    pub(super) wiring: Arc<tokio::sync::Mutex<Wiring>>,
    /// The network records as last committed: what reads of them use.
    pub(super) nets: watch::Receiver<Arc<netcore::network::State>>,
    /// Exit codes of the containers removed last, oldest first.
    pub(super) removed: std::collections::VecDeque<(String, i32)>,
    pub(super) runtimes: Runtimes,
    pub(super) host_dns: ResolvConf,
    /// What this host offers for isolation (capabilities, kernel, AppArmor, cgroup v2).
    pub(super) host: super::security::HostSecurity,
    /// What this host's cgroups can limit.
    pub(super) host_resources: super::resources::HostResources,
    /// Containers held frozen by `docker cp`, with how many copies hold each.
    pub(super) cp_holders: super::archive::Holders,
    /// Where container and network events go (`docker events`); none until a daemon installs
    /// one.
    pub(super) events: LateSink,
    /// Each container's state, published on every change (see [`Engine::subscribe`]); the
    /// sender goes with the container, which tells waiters it was removed.
    pub(super) states: HashMap<String, watch::Sender<Published>>,
    /// Woken when a container starts running or is left restarting: the supervisor then
    /// watches it at once (it never rescans on a timer).
    pub(super) supervise_wake: Arc<Notify>,
    /// Containers whose run is being set up (between the first and the last step of a start,
    /// see `start.rs`) or undone after an exit (`Engine::exit_begin`): busy, nothing else
    /// changes their run meanwhile.
    pub(super) busy: BTreeSet<String>,
    /// Containers being restarted by `docker restart`: their exit does not apply `--rm`
    /// (Docker turns AutoRemove off for the restart's stop).
    pub(super) restarting: BTreeSet<String>,
    /// What readers see of the containers, published after every change (see [`Index`]).
    pub(super) index: watch::Sender<Arc<Index>>,
    _lock: fs::File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .field("containers", &self.containers.len())
            .finish()
    }
}

const RECORD: &str = "config.v2.json";

impl Engine {
    /// Opens the engine on `cfg`'s roots: loads images, volumes, networks and containers, then
    /// reconciles every container with what is running (see [`Engine::restore`]).
    pub async fn open(cfg: EngineConfig) -> Result<Engine, ContainerError> {
        for d in [
            cfg.data_root.join("containers"),
            cfg.data_root.join("network"),
            cfg.exec_root.join("containers"),
            cfg.exec_root.join("netns"),
        ] {
            fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        // Closed to other users, as Docker's roots (the class of CVE-2021-41091: layers and
        // container files entered by a local user): the data root is traversed only by root
        // and its group, the exec root by root alone.
        for (d, mode) in [(&cfg.data_root, 0o710), (&cfg.exec_root, 0o700)] {
            fs::set_permissions(d, fs::Permissions::from_mode(mode))
                .map_err(io_err(format!("setting the mode of {}", d.display())))?;
        }
        let lock_path = cfg.exec_root.join("engine.lock");
        let lock = fs::File::create(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(ContainerError::Conflict(format!(
                "another berth engine is using {} (lock {} held)",
                cfg.exec_root.display(),
                lock_path.display()
            )));
        }
        // Installed by the daemon once the engine is open (see `set_event_sink`).
        let events = LateSink::default();
        let images = ImageStore::open(&cfg.data_root.join("image"))?;
        let volumes = Volumes::open(&cfg.data_root.join("volumes"), events.clone())?;
        let net = NetworkManager::open(
            &cfg.data_root.join("network"),
            RtNetlink::new(),
            NftCommand::new(),
            Sysctl::default(),
        )
        .await?;
        let (host_dns, _) =
            ResolvConf::parse(&fs::read_to_string(&cfg.resolv_conf).unwrap_or_default());
        let resolver = Resolver::new(ResolverConfig {
            upstreams: host_dns.nameservers.clone(),
            ..ResolverConfig::default()
        });
        let runtimes = Runtimes::new(
            cfg.runtime.as_deref(),
            &cfg.runtimes,
            &cfg.exec_root.join("runtime"),
        )?;
        tracing::info!(
            runtime = %runtimes.default_runtime().binary().display(),
            name = runtimes.default_name(),
            "OCI runtime"
        );
        let mut containers = BTreeMap::new();
        let mut unreadable = false;
        let dir = cfg.data_root.join("containers");
        for e in fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))? {
            let e = e.map_err(io_err(format!("reading {}", dir.display())))?;
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // One unreadable record must not keep every other container from its engine.
            match persist::load::<Container>(&e.path().join(RECORD)) {
                Ok(Some(c)) => {
                    containers.insert(c.id.clone(), c);
                }
                Ok(None) => {}
                Err(err) => {
                    unreadable = true;
                    tracing::error!(record = %e.path().display(), error = %err, "skipping an unreadable container record")
                }
            }
        }
        for c in containers.values_mut() {
            if c.layers.is_empty() {
                // A record from before containers kept their layers: its image names them.
                if let Ok(img) = images.resolve(&c.image_id) {
                    c.layers = img.layers.iter().map(|l| l.chain_id.clone()).collect();
                }
            }
            images.hold(&c.id, c.layers.clone());
            volumes.use_by(
                &c.id,
                c.mounts
                    .iter()
                    .filter(|m| m.kind == "volume")
                    .filter_map(|m| m.name.as_deref()),
            );
        }
        // What a crash left between writing content and recording it (a pull, a load) goes
        // now that every container's layers are held; partial downloads stay for resuming.
        // Not when a record could not be read: its container's layers are not held.
        if unreadable {
            tracing::warn!("not collecting the image store: a container record is unreadable");
        } else if let Err(e) = images.collect() {
            tracing::warn!(error = %e, "collecting the image store");
        }
        let states = containers
            .values()
            .map(|c: &Container| (c.id.clone(), watch::Sender::new(Published::new(&c.state))))
            .collect();
        let wiring = Wiring {
            proxy: super::proxy::ProxyLink::new(cfg.proxy.clone(), cfg.exec_root.clone()),
            net,
            resolver,
            published: HashMap::new(),
            serving: HashMap::new(),
            reconciled: false,
        };
        let mut engine = Engine {
            cfg,
            images: Arc::new(images),
            volumes,
            containers,
            nets: wiring.net.watch(),
            wiring: Arc::new(tokio::sync::Mutex::new(wiring)),
            removed: Default::default(),
            runtimes,
            host_dns,
            host: super::security::HostSecurity::detect(),
            host_resources: super::resources::HostResources::detect(Path::new("/sys/fs/cgroup")),
            cp_holders: Default::default(),
            events,
            states,
            supervise_wake: Arc::new(Notify::new()),
            busy: BTreeSet::new(),
            restarting: BTreeSet::new(),
            index: watch::Sender::new(Arc::default()),
            _lock: lock,
        };
        let ids: Vec<String> = engine.containers.keys().cloned().collect();
        for id in &ids {
            engine.reindex(id);
        }
        engine.restore().await;
        Ok(engine)
    }

    /// Reports every container event from now on (and the network connects and disconnects
    /// the engine makes, the volumes' and the networks' changes) to `sink`: a daemon's `docker
    /// events` (installed once). Exits the engine learns of on
    /// its own (the supervisor, a wait) are reported too, which a caller could not see.
    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.events.install(sink);
    }

    pub(super) fn emit(&self, ev: impl FnOnce() -> Event) {
        self.events.send(ev);
    }

    /// Reports `action` on the container `what` (with its name, image and labels, and `extra`
    /// attributes), for actions only the daemon sees (`restart`, `attach`). Unknown containers
    /// are ignored.
    pub fn emit_container(&self, what: &str, action: &str, extra: &[(&str, String)]) {
        if let Ok(c) = self.get(what) {
            self.emit(|| Event::container(c, action, extra));
        }
    }

    /// The container's cgroup (`/berth/<id>`), as the runtime creates it.
    pub(super) fn cgroups_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.cfg.cgroup_parent)
    }

    /// The image store (shared with pulls, loads and builds, which need no engine lock).
    pub fn images(&self) -> &Arc<ImageStore> {
        &self.images
    }

    /// The layers container `c` runs on (see [`Container::layers`]).
    pub(super) fn layers_of(&self, c: &Container) -> Result<Vec<Digest>, ContainerError> {
        if !c.layers.is_empty() {
            return Ok(c.layers.clone());
        }
        let img = self.images.resolve(&c.image_id)?;
        Ok(img.layers.iter().map(|l| l.chain_id.clone()).collect())
    }

    /// The overlay of container `c`'s root file system, its writable layer in its directory.
    pub(super) fn overlay_of(
        &self,
        c: &Container,
    ) -> Result<crate::image::store::OverlaySpec, ContainerError> {
        let chains = self.layers_of(c)?;
        self.images
            .snapshots()
            .overlay(&chains, &self.dir(&c.id))
            .map_err(|e| ContainerError::Invalid(format!("container {}: {e}", c.name)))
    }

    /// The volumes and who uses them, behind their own lock (the volume routes' backend).
    pub fn volumes(&self) -> &Volumes {
        &self.volumes
    }

    /// The networking of every container, with the network manager (`docker network create`,
    /// `ls`, `inspect`, `rm`): lock it without holding the engine.
    pub fn wiring(&self) -> Arc<tokio::sync::Mutex<Wiring>> {
        self.wiring.clone()
    }

    /// What a daemon does as it stops (its containers keep running): the port proxy is
    /// stopped when it publishes nothing, so no process is left behind for nothing.
    pub async fn shutdown(&self) {
        self.wiring.lock().await.proxy.stop_if_idle().await;
    }

    /// The network manager, locked (with the engine held: tests and tools).
    pub async fn networks(
        &self,
    ) -> tokio::sync::OwnedMappedMutexGuard<Wiring, NetworkManager<RtNetlink, NftCommand>> {
        tokio::sync::OwnedMutexGuard::map(self.wiring.clone().lock_owned().await, |w| &mut w.net)
    }

    /// The network routes' backend: the networks through the wiring's lock and the records
    /// it publishes, never the engine's.
    pub fn network_backend(&self) -> super::Networks {
        super::Networks::new(self.wiring.clone(), self.nets.clone(), self.events.clone())
    }

    /// The network records as last committed (never waits).
    pub fn network_state(&self) -> Arc<netcore::network::State> {
        self.nets.borrow().clone()
    }

    /// The OCI runtimes offered, and the default.
    pub fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    /// The runtime name container `id` recorded (`""`: none, or no such container).
    fn recorded_runtime(&self, id: &str) -> &str {
        self.containers
            .get(id)
            .map_or("", |c| c.options.runtime.as_str())
    }

    /// The runtime to start or exec in container `id`: refused when the one it was created
    /// with is no longer configured.
    pub(super) fn runtime_to_run(&self, id: &str) -> Result<RuncLike, ContainerError> {
        self.runtimes
            .to_run(self.recorded_runtime(id))
            .cloned()
            .map_err(ContainerError::Invalid)
    }

    /// The runtime of container `id` for signals, pause and deletion (the default for one not
    /// known).
    pub(super) fn runtime_of(&self, id: &str) -> RuncLike {
        self.runtimes.of(self.recorded_runtime(id)).clone()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Every container, by ID.
    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    /// The ID of the container named `what` (full ID, name or unique ID prefix).
    pub fn resolve(&self, what: &str) -> Result<String, ContainerError> {
        let by_id: BTreeMap<String, String> = self
            .containers
            .values()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        names::resolve(&by_id, what).map(str::to_string)
    }

    /// The container named `what`.
    pub fn get(&self, what: &str) -> Result<&Container, ContainerError> {
        let id = self.resolve(what)?;
        Ok(&self.containers[&id])
    }

    pub(super) fn dir(&self, id: &str) -> PathBuf {
        self.cfg.data_root.join("containers").join(id)
    }

    pub(super) fn bundle(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id)
    }

    /// The state directories of a container's execs (`<exec-root>/execs/<id>/<exec>`).
    pub(super) fn execs_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("execs").join(id)
    }

    pub(super) fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("netns").join(id)
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// Where container `what` logs: its json-file path and how many files rotation keeps.
    /// Reading happens outside the engine (see [`super::logs::read`]).
    pub fn log_source(&self, what: &str) -> Result<(PathBuf, u32), ContainerError> {
        let c = self.get(what)?;
        if !c.options.keeps_log() {
            return Err(ContainerError::NoLog);
        }
        let (_, max_file) = c.options.log_rotation();
        Ok((self.log_path(&c.id), max_file))
    }

    /// `docker logs` without `--follow`: the records `opts` selects (all of them in memory:
    /// for the command line; berthd streams with [`super::logs::read`]).
    pub fn logs(
        &self,
        what: &str,
        opts: &super::LogOptions,
    ) -> Result<Vec<crate::runtime::logs::LogLine>, ContainerError> {
        let (path, max_file) = self.log_source(what)?;
        let mut lines = Vec::new();
        super::logs::read(&path, max_file, opts, None, |l| {
            lines.push(l);
            true
        })
        .map_err(io_err(format!("reading {}", path.display())))?;
        Ok(lines)
    }

    /// `docker logs --follow`: what is there now (as [`Engine::logs`]), then a follower for
    /// what the container writes next; stop polling it once [`Engine::exit_watch`] fires.
    pub fn follow_logs(
        &self,
        what: &str,
        opts: &super::LogOptions,
    ) -> Result<(Vec<crate::runtime::logs::LogLine>, super::LogFollower), ContainerError> {
        let c = self.get(what)?;
        let follower = super::LogFollower::from_end(&self.log_path(&c.id));
        Ok((self.logs(what, opts)?, follower))
    }

    /// Writes a container's record atomically and publishes its state to subscribers.
    pub(super) fn save(&self, id: &str) -> Result<(), ContainerError> {
        let c = &self.containers[id];
        persist::save(&self.dir(id).join(RECORD), c)?;
        self.reindex(id);
        match self.states.get(id) {
            Some(tx) => {
                let changed = tx.send_if_modified(|p| p.update(&c.state));
                let status = c.state.status;
                if changed && (status.is_live() || status == super::Status::Restarting) {
                    self.supervise_wake.notify_one();
                }
            }
            None => tracing::error!(container = %id, "a container without a state channel"),
        }
        Ok(())
    }

    /// Container `what`'s state as it changes: the receiver sees every change the engine
    /// records (`wait` and `logs -f` wake on it instead of polling) and reports the sender
    /// closed once the container is removed.
    pub fn subscribe(&self, what: &str) -> Result<watch::Receiver<Published>, ContainerError> {
        let id = self.resolve(what)?;
        Ok(self.states[&id].subscribe())
    }

    /// Ends a start's or an exit's busy window on `id` and tells whoever waits for it
    /// ([`Engine::starting_watch`]), also when its state did not change.
    pub(super) fn end_busy(&mut self, id: &str) {
        if self.busy.remove(id) {
            if let Some(tx) = self.states.get(id) {
                tx.send_modify(|_| {});
            }
        }
    }

    /// While container `what` is between the first and last step of a start, or an exit's run
    /// is being undone: a receiver of its
    /// state, which changes when the start is recorded (succeeded or failed). Callers that must
    /// not act on a container being started wait on it without the engine, then look again.
    pub fn starting_watch(&self, what: &str) -> Option<watch::Receiver<Published>> {
        let id = self.resolve(what).ok()?;
        if !self.busy.contains(&id) {
            return None;
        }
        self.states.get(&id).map(watch::Sender::subscribe)
    }

    /// Notified when a container starts running or is left restarting (the supervisor
    /// waits on it between its looks).
    pub fn supervise_wake(&self) -> Arc<Notify> {
        self.supervise_wake.clone()
    }

    /// The containers as readers see them: the latest [`Index`] is `borrow().clone()` away, and
    /// never waits on the engine.
    pub fn index(&self) -> watch::Receiver<Arc<Index>> {
        self.index.subscribe()
    }

    /// Publishes container `id` as it is now (its record and endpoints), or its removal.
    pub(super) fn reindex(&self, id: &str) {
        let state = self.network_state();
        let entry = self.containers.get(id).map(|c| {
            let network_id = |n: &str| {
                state
                    .networks
                    .get(n)
                    .map(|n| n.id.clone())
                    .unwrap_or_default()
            };
            let gateway = |n: &str| {
                state
                    .ipam
                    .network(n)
                    .and_then(|i| i.subnets.first().map(|s| s.gateway))
            };
            let mut endpoints: Vec<EndpointView> = c
                .configured_networks()
                .into_iter()
                .map(|(name, settings)| EndpointView {
                    network_id: network_id(&name),
                    ep: state
                        .endpoints
                        .values()
                        .find(|ep| ep.container == id && ep.network == name)
                        .cloned(),
                    gateway: gateway(&name),
                    network: name,
                    settings,
                })
                .collect();
            // Endpoints a record does not name (none are left so, but a view never hides one).
            for ep in state.endpoints.values().filter(|ep| ep.container == id) {
                if !endpoints.iter().any(|v| v.network == ep.network) {
                    endpoints.push(EndpointView {
                        network: ep.network.clone(),
                        settings: super::model::Connection {
                            aliases: ep.aliases.clone(),
                            ..Default::default()
                        },
                        network_id: network_id(&ep.network),
                        gateway: gateway(&ep.network),
                        ep: Some(ep.clone()),
                    });
                }
            }
            if let super::model::NetworkMode::Slirp(mode) = &c.network_mode {
                if let Some(v) = endpoints.iter_mut().find(|v| v.network == "slirp") {
                    v.gateway = Some(slirp_layout(mode).gateway.into());
                    if c.state.status.is_live() {
                        v.ep = Some(slirp_endpoint(c, mode));
                    }
                }
            }
            endpoints.sort_by(|a, b| a.network.cmp(&b.network));
            let mut container = c.clone();
            if container.options.runtime.is_empty() {
                // A record from before runtimes had names runs the default (the record keeps
                // saying so: a later default applies to it); inspect shows which one that is.
                container.options.runtime = self.runtimes.default_name().to_string();
            }
            Entry {
                container,
                endpoints,
                log_path: self.log_path(id),
            }
        });
        self.index
            .send_modify(|ix| *ix = Arc::new(ix.with(id, entry)));
    }

    /// Changes a container's state and records it.
    pub(super) fn set_state(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut State),
    ) -> Result<(), ContainerError> {
        if let Some(c) = self.containers.get_mut(id) {
            f(&mut c.state);
        }
        self.save(id)
    }

    pub(super) fn unique_name(&self, requested: Option<&str>) -> Result<String, ContainerError> {
        if let Some(n) = requested {
            let n = names::validate_name(n)?;
            if let Some(c) = self.containers.values().find(|c| c.name == n) {
                return Err(ContainerError::NameInUse {
                    name: n,
                    id: c.id.clone(),
                });
            }
            return Ok(n);
        }
        let taken: BTreeSet<&str> = self.containers.values().map(|c| c.name.as_str()).collect();
        for attempt in 0.. {
            let r = u64::from_str_radix(&random_id()[..16], 16).unwrap_or(0);
            let n = names::generated_name(r, attempt.min(1));
            if !taken.contains(n.as_str()) {
                return Ok(n);
            }
        }
        unreachable!("the name space is not exhausted")
    }

    /// What the machine's cgroups offer (CPUs, memory nodes, swap limits).
    pub fn host_resources(&self) -> &super::resources::HostResources {
        &self.host_resources
    }

    /// What this host offers for isolation.
    pub fn host_security(&self) -> &super::security::HostSecurity {
        &self.host
    }

    pub(super) fn network_mode(&self, opts: &CreateOptions) -> Result<NetworkMode, ContainerError> {
        Ok(match opts.network.as_deref().unwrap_or("default") {
            // A berthd without CAP_NET_ADMIN cannot make bridges: its default is the userspace
            // stack, which needs no privilege.
            "" | "default" if !net_admin() => {
                NetworkMode::Slirp(netcore::usernet::options::MODE.into())
            }
            "" | "default" | "bridge" => NetworkMode::Network("bridge".into()),
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            n if netcore::usernet::Options::from_mode(n).is_some() => {
                // The docker CLI sends options as the endpoint's driver options
                // (`--network name=slirp,driver-opt=allow_host_loopback=true`); API clients
                // may write them in the mode (`slirp:allow_host_loopback=true`), as Podman.
                let mut text = n.to_string();
                for (k, v) in &opts.primary_endpoint().driver_opts {
                    text.push(if text.contains(':') { ',' } else { ':' });
                    text.push_str(&format!("{k}={v}"));
                }
                let o = netcore::usernet::Options::from_mode(&text)
                    .expect("still a slirp mode")
                    .map_err(|e| ContainerError::Invalid(e.to_string()))?;
                NetworkMode::Slirp(o.to_string())
            }
            n if n.starts_with("container:") => {
                let other = &n["container:".len()..];
                NetworkMode::Container(self.resolve(other)?)
            }
            n => match self.network_state().find(n)?.name.as_str() {
                // Named by ID: the predefined networks keep their meaning.
                "host" => NetworkMode::Host,
                "none" => NetworkMode::None,
                name => NetworkMode::Network(name.to_string()),
            },
        })
    }

    pub(super) fn validate_network_options(
        &self,
        opts: &CreateOptions,
        mode: &NetworkMode,
    ) -> Result<(), ContainerError> {
        for l in &opts.links {
            let link: netcore::network::ContainerLink =
                l.parse().map_err(ContainerError::Invalid)?;
            self.resolve(&link.container)?;
        }
        for d in &opts.dns {
            d.parse::<std::net::IpAddr>().map_err(|_| {
                ContainerError::Invalid(format!("invalid --dns {d:?}: expected an IP address"))
            })?;
        }
        for h in &opts.add_hosts {
            etc::parse_add_host(h, Some(std::net::Ipv4Addr::UNSPECIFIED.into()))?;
        }
        let own_ns = matches!(mode, NetworkMode::Network(_) | NetworkMode::Slirp(_));
        if !own_ns
            && (!opts.publish.is_empty() || opts.publish_all)
            && !matches!(mode, NetworkMode::Host)
        {
            return Err(ContainerError::Invalid(format!(
                "conflicting options: port publishing and the {} network mode",
                mode.text()
            )));
        }
        let mut endpoint = opts.primary_endpoint();
        if let NetworkMode::Slirp(_) = mode {
            // Its driver options are the stack's, taken into the mode above.
            endpoint.driver_opts.clear();
        }
        match mode {
            NetworkMode::Network(n) => super::connect::check_endpoint(&endpoint, n)?,
            _ if endpoint != super::model::Connection::default() => {
                return Err(ContainerError::Invalid(format!(
                    "--ip, --ip6, --link-local-ip, --mac-address, --network-alias and --driver-opt need a bridge or user-defined network, not {}",
                    mode.text()
                )));
            }
            _ => {}
        }
        for l in &opts.endpoint_links {
            let link: netcore::network::ContainerLink =
                l.parse().map_err(ContainerError::Invalid)?;
            self.resolve(&link.container)?;
        }
        if let NetworkMode::Container(_) = mode {
            if opts.hostname.is_some() || !opts.dns.is_empty() || !opts.add_hosts.is_empty() {
                return Err(ContainerError::Invalid(
                    "conflicting options: --hostname, --dns and --add-host cannot be used with --network container:".into(),
                ));
            }
        }
        Ok(())
    }

    /// `docker rename`.
    pub fn rename(&mut self, what: &str, new_name: &str) -> Result<(), ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        // Its record would be written back into a directory being removed.
        if matches!(
            c.state.status,
            super::Status::Removing | super::Status::Dead
        ) || self.busy.contains(&id)
        {
            return Err(ContainerError::Conflict(format!(
                "container {} is marked for removal or busy and cannot be renamed",
                c.name
            )));
        }
        let name = names::validate_name(new_name)?;
        if let Some(other) = self.containers.values().find(|c| c.name == name) {
            if other.id == id {
                return Err(ContainerError::Invalid(format!(
                    "Renaming a container with the same name as its current name: {name}"
                )));
            }
            return Err(ContainerError::NameInUse {
                name,
                id: other.id.clone(),
            });
        }
        let old = std::mem::replace(
            &mut self.containers.get_mut(&id).expect("resolved").name,
            name,
        );
        if let Err(e) = self.save(&id) {
            self.containers.get_mut(&id).expect("resolved").name = old;
            return Err(e);
        }
        self.emit(|| {
            Event::container(
                &self.containers[&id],
                "rename",
                &[("oldName", format!("/{old}"))],
            )
        });
        Ok(())
    }
}

pub(super) fn validate_resources(opts: &CreateOptions) -> Result<(), ContainerError> {
    let host_hard = host_hard_limit;
    for u in &opts.ulimits {
        spec::rlimit(u, host_hard).map_err(|e| ContainerError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// The host's hard limit of an rlimit named as `--ulimit` names it (`nofile`, `nproc`, ...).
pub(super) fn host_hard_limit(name: &str) -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    let r = match name {
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "core" => Resource::RLIMIT_CORE,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "stack" => Resource::RLIMIT_STACK,
        "fsize" => Resource::RLIMIT_FSIZE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "as" => Resource::RLIMIT_AS,
        "locks" => Resource::RLIMIT_LOCKS,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        _ => return u64::MAX,
    };
    getrlimit(r).map_or(u64::MAX, |(_, hard)| hard)
}

/// Whether this process has CAP_NET_ADMIN (bit 12 of CapEff), read once.
fn net_admin() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_none_or(|caps| caps & (1 << 12) != 0)
    })
}

fn slirp_layout(mode: &str) -> netcore::usernet::Layout {
    netcore::usernet::Options::from_mode(mode)
        .and_then(Result::ok)
        .unwrap_or_default()
        .layout()
}

/// A running `--network slirp` container's endpoint, as inspect shows it: the stack's fixed
/// addresses and what it publishes.
fn slirp_endpoint(c: &super::model::Container, mode: &str) -> netcore::network::Endpoint {
    let l = slirp_layout(mode);
    netcore::network::Endpoint {
        id: String::new(),
        network: netcore::usernet::options::MODE.into(),
        container: c.id.clone(),
        container_name: c.name.clone(),
        ns: None,
        ifname: Some(netcore::usernet::tap::TAP_NAME.into()),
        host_ifname: None,
        mac: Some(netcore::link::MacAddr(netcore::usernet::tap::CONTAINER_MAC)),
        ipv4: ipnet::IpNet::new(l.container.into(), l.cidr.prefix_len()).ok(),
        ipv6: l
            .cidr6
            .and_then(|_| ipnet::IpNet::new(l.container6.into(), 64).ok()),
        link_local: Vec::new(),
        gateway: true,
        aliases: Vec::new(),
        links: Vec::new(),
        dns_servers: Vec::new(),
        published: c.state.slirp_published.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Status;

    fn st(status: Status, code: i32) -> State {
        State {
            status,
            exit_code: code,
            ..State::default()
        }
    }

    #[test]
    fn published_state_counts_every_exit_even_when_a_restart_follows() {
        let mut p = Published::new(&st(Status::Created, 0));
        assert!(
            !p.update(&st(Status::Created, 0)),
            "no change, no publication"
        );
        assert!(p.update(&st(Status::Running, 0)));
        assert_eq!(p.exits, 0);
        // Exited with 3, then restarted before any waiter looked: the count remembers.
        assert!(p.update(&st(Status::Exited, 3)));
        assert!(p.update(&st(Status::Running, 0)));
        assert_eq!((p.exits, p.last_exit_code), (1, 3));
        // A restart policy's exit counts too; a failed start of a stopped one does not.
        p.update(&st(Status::Restarting, 1));
        p.update(&st(Status::Exited, 1));
        assert_eq!((p.exits, p.last_exit_code), (2, 1));
        p.update(&st(Status::Paused, 0));
        p.update(&st(Status::Exited, 137));
        assert_eq!((p.exits, p.last_exit_code), (3, 137));
    }
}
