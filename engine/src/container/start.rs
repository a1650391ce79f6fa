//! Starting a container, in three steps so that a daemon holds its engine only for the first
//! and the last: [`Engine::start_prepare`] (checks, and the plan: what the run needs, taken
//! from the records), [`StartPlan::run`] (the root file system, volumes, the user, the network,
//! the OCI spec, then the shim and the OCI runtime: everything slow, with the engine let go,
//! and everything undone when a step fails) and [`Engine::start_finish`] (the run recorded, or
//! why it failed). A container being started is marked so, and nothing else changes its run
//! meanwhile: the supervisor's restarts, prune and network connect leave it alone, and callers
//! order their own requests on one container (berthd holds a per-container lock around
//! them). [`Engine::start`] runs the three in a row.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::confined::resolve_user;
use super::engine::{Engine, host_hard_limit};
use super::lifecycle::RunTeardown;
use super::state::{Op, Status, Verdict, check};
use super::wiring::{NetPlan, SpecNet, Wiring};
use super::{ContainerError, io_err, mounts, rootfs};
use crate::events::Event;
use crate::image::store::OverlaySpec;
use crate::runtime::attach::AttachRequest;
use berth_common::time::now_rfc3339_nano;

use crate::runtime::logs::Rotation;
use crate::runtime::shim::{self, ShimConfig, ShimIo, Spawned};
use crate::runtime::spec::{DevShm, SpecInput, rlimit, spec};

/// A start between its first and its last step: everything the run needs, taken from the
/// records, so [`StartPlan::run`] needs no engine.
#[derive(Debug)]
pub struct StartPlan {
    id: String,
    name: String,
    /// A run of an earlier engine left its bundle: undone first.
    stale: bool,
    undo: RunTeardown,
    bundle: PathBuf,
    overlay: OverlaySpec,
    /// Volumes filled from the image's content at their mount point on first use:
    /// (destination in the container, the volume's data directory, its name).
    copies: Vec<(String, PathBuf, String)>,
    /// The spec, but for what the run finds out (user, namespace, /etc files).
    input: SpecInput,
    /// A shareable container's `/dev/shm`: the size of the tmpfs mounted on the host.
    host_shm: Option<u64>,
    user: String,
    /// `--group-add`.
    group_add: Vec<String>,
    /// `--device`, read from the host as the container starts.
    device_maps: Vec<berth_api::opts::device::DeviceMapping>,
    net: Option<NetPlan>,
    wiring: Arc<tokio::sync::Mutex<Wiring>>,
    shim: PathBuf,
    cfg: ShimConfig,
    attach: Option<AttachRequest>,
    /// What a `--network slirp` container's stack publishes, once it runs.
    slirp_published: Vec<portproxy::Mapping>,
}

/// How a [`StartPlan`] ended: the shim's answer, or why nothing runs (everything the plan
/// made is undone then).
#[derive(Debug)]
pub struct StartOutcome {
    id: String,
    result: Result<Spawned, ContainerError>,
    slirp_published: Vec<portproxy::Mapping>,
}

impl StartOutcome {
    /// The container's ID.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What [`Engine::start_record`] did.
#[derive(Debug)]
pub enum StartRecorded {
    /// Running: its attachment, if one was asked for.
    Started(Option<UnixStream>),
    /// The new run must be ended (its container was removed or stopped meanwhile): `undo`
    /// without the engine's lock, then [`Engine::start_undone`]; the start fails with `error`.
    Undo {
        /// The container's ID.
        id: String,
        /// The run's teardown.
        undo: Box<RunTeardown>,
        /// What the start answers.
        error: ContainerError,
    },
}

/// The last step of a start for a daemon: recorded under the engine's lock, a run that must
/// be ended torn down without it (the container busy meanwhile), as [`Engine::start_finish`].
pub async fn finish_start(
    engine: &tokio::sync::Mutex<Engine>,
    outcome: StartOutcome,
) -> Result<Option<UnixStream>, ContainerError> {
    let recorded = engine.lock().await.start_record(outcome)?;
    match recorded {
        StartRecorded::Started(stream) => Ok(stream),
        StartRecorded::Undo { id, undo, error } => {
            undo.run().await;
            engine.lock().await.start_undone(&id);
            Err(error)
        }
    }
}

impl StartPlan {
    /// The container's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Prepares the run and spawns the shim, which runs the container through the OCI runtime
    /// and returns once its process has started. Blocking work goes to the blocking pool, the
    /// network through the wiring's own lock; on failure everything made is undone.
    /// A panic in a step is a failed start like any other (undone, recorded), never a
    /// container left busy for ever.
    pub async fn run(mut self) -> StartOutcome {
        use futures::FutureExt;
        let steps = std::panic::AssertUnwindSafe(self.prepare_and_spawn()).catch_unwind();
        let result = steps.await.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(container = %self.id, panic = %why, "a step of the start panicked");
            Err(ContainerError::Io {
                what: format!("starting container {}", self.name),
                source: std::io::Error::other(format!(
                    "an internal error ({why}); see berthd's log"
                )),
            })
        });
        if result.is_err() {
            self.undo.run().await;
        }
        StartOutcome {
            id: self.id,
            result,
            slirp_published: self.slirp_published,
        }
    }

    async fn prepare_and_spawn(&mut self) -> Result<Spawned, ContainerError> {
        crate::failpoint::hit("start:prepare");
        self.prepare().await?;
        let (shim, cfg, attach) = (self.shim.clone(), self.cfg.clone(), self.attach.take());
        tokio::task::spawn_blocking(move || {
            shim::spawn(&shim, &cfg, attach.as_ref()).map_err(ContainerError::from)
        })
        .await
        .unwrap_or_else(|e| Err(ContainerError::Invalid(format!("spawning the shim: {e}"))))
    }

    /// Everything before the shim: the rootfs, volumes, the user, the network, the spec.
    async fn prepare(&mut self) -> Result<(), ContainerError> {
        if self.stale {
            self.undo.run().await;
        }
        let (bundle, overlay, copies, user, name) = (
            self.bundle.clone(),
            self.overlay.clone(),
            std::mem::take(&mut self.copies),
            self.user.clone(),
            self.name.clone(),
        );
        let privileged = self.input.privileged;
        let host_shm = self.host_shm;
        let (group_add, device_maps) = (self.group_add.clone(), self.device_maps.clone());
        // Mounting and reading the container's files block (and the files are the container's:
        // read confined, never under a lock).
        let prepared = tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&bundle)
                .map_err(io_err(format!("creating {}", bundle.display())))?;
            if let Some(size) = host_shm {
                let dir = bundle.join(super::namespaces::SHM_DIR);
                let opts = format!("mode=1777,size={size}");
                rootfs::mount_tmpfs(&dir, &opts)
                    .map_err(io_err(format!("container {name}: /dev/shm")))?;
            }
            let rootfs = bundle.join("rootfs");
            rootfs::mount_overlay(&overlay, &rootfs)
                .map_err(io_err(format!("container {name}")))?;
            for (dest, data, volume) in copies {
                // Two containers starting on one new volume: one copies, the other finds it
                // filled (the check and the copy under the volume's lock).
                let _lock = lock_dir(&data).map_err(io_err(format!(
                    "locking volume {volume} of container {name}"
                )))?;
                let src = mounts::inside(&rootfs, &dest).filter(|s| {
                    s.is_dir() && !mounts::is_empty_dir(s) && mounts::is_empty_dir(&data)
                });
                if let Some(src) = src {
                    mounts::copy_tree(&src, &data).map_err(io_err(format!(
                        "copying {dest} of container {name} into volume {volume}"
                    )))?;
                }
            }
            let ids = resolve_user(&rootfs, &user, &group_add, &name)?;
            // A privileged container gets the host's devices, read as it starts (as Docker).
            let mut devices = if privileged {
                crate::runtime::devices::host_devices(Path::new("/dev"))
                    .map_err(io_err("reading the host's /dev for --privileged"))?
            } else {
                Vec::new()
            };
            let mut rules = Vec::new();
            for m in &device_maps {
                let found = crate::runtime::devices::device_at(
                    Path::new(&m.path_on_host),
                    &m.path_in_container,
                )
                .map_err(|e| {
                    ContainerError::Invalid(format!(
                        "error gathering device information while adding custom device {:?}: {e}",
                        m.path_on_host
                    ))
                })?;
                for d in &found {
                    rules.push(berth_api::opts::device::CgroupRule {
                        kind: d.kind,
                        major: i64::try_from(d.major).ok(),
                        minor: i64::try_from(d.minor).ok(),
                        access: m.cgroup_permissions.clone(),
                    });
                }
                devices.extend(found);
            }
            Ok::<_, ContainerError>((ids, devices, rules))
        })
        .await
        .map_err(|e| ContainerError::Invalid(format!("preparing the root file system: {e}")))??;
        let net = self.net.take().expect("a plan is run once");
        let (net, etc_dir) = if net.is_slirp() {
            let (net, dir, published) = super::wiring::setup_slirp(net).await?;
            self.slirp_published = published;
            (net, dir)
        } else {
            super::wiring::Wiring::setup(&self.wiring, net).await?
        };
        crate::failpoint::pause("start:after-network").await;
        let (ids, devices, rules) = prepared;
        let input = &mut self.input;
        input.user = ids;
        input.devices = devices;
        input.device_rules.extend(rules);
        input.netns = match &net {
            SpecNet::Path(p) => Some(p.clone()),
            SpecNet::Host => None,
        };
        input.host_network = net == SpecNet::Host;
        input.etc_dir = Some(etc_dir.display().to_string());
        let config = self.bundle.join("config.json");
        // The spec holds the container's Env: root's alone.
        let write = |bytes: &[u8]| -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&config)
                .and_then(|mut f| {
                    // A bundle from before specs were private keeps its file: close it too.
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(fs::Permissions::from_mode(0o600))?;
                    f.write_all(bytes)
                })
        };
        write(&serde_json::to_vec_pretty(&spec(input)).expect("specs serialise"))
            .map_err(io_err(format!("writing {}", config.display())))
    }
}

impl Engine {
    /// Container `c`'s environment with its legacy links' variables under it (on the default
    /// bridge only, as Docker). A linked container that does not run refuses the start in
    /// Docker's words.
    fn env_with_links(&self, c: &super::model::Container) -> Result<Vec<String>, ContainerError> {
        let on_bridge =
            matches!(&c.network_mode, super::model::NetworkMode::Network(n) if n == "bridge");
        if !on_bridge || c.options.links.is_empty() {
            return Ok(c.env.clone());
        }
        let nets = self.network_state();
        let mut base = Vec::new();
        for l in &c.options.links {
            let Ok(link) = l.parse::<netcore::network::ContainerLink>() else {
                continue;
            };
            // A linked container removed since is left out (the link goes with it, as in
            // Docker); one that exists but does not run refuses the start.
            let Some(o) = self
                .resolve(&link.container)
                .ok()
                .and_then(|i| self.containers.get(&i))
            else {
                continue;
            };
            let name = format!("/{}/{}", c.name, link.alias);
            let Some(o) = Some(o).filter(|o| o.state.status.is_live()) else {
                return Err(ContainerError::Conflict(format!(
                    "Cannot link to a non running container: /{} AS {name}",
                    link.container
                )));
            };
            let Some(ip) = nets
                .endpoints
                .values()
                .find(|e| e.container == o.id && e.network == "bridge")
                .and_then(|e| e.ipv4)
            else {
                continue;
            };
            let exposed: Vec<String> = o.exposed_ports.iter().cloned().collect();
            let child_env = o.options.config_env.as_ref().unwrap_or(&o.env);
            base.extend(super::links::link_env(
                &link.alias,
                &name,
                ip.addr(),
                &exposed,
                child_env,
            ));
        }
        Ok(super::links::with_env(base, &c.env))
    }

    /// `docker start`. Starting a running container is a no-op, as Docker's 304.
    pub async fn start(&mut self, what: &str) -> Result<(), ContainerError> {
        self.start_now(what, None).await.map(drop)
    }

    /// `docker start -a` / `docker run` without `-d`: starts the container with `req`
    /// attached before its process runs, so no output is missed. A running container is
    /// attached to as it is.
    pub async fn start_attached(
        &mut self,
        what: &str,
        req: AttachRequest,
    ) -> Result<UnixStream, ContainerError> {
        let id = self.resolve(what)?;
        match self.start_now(&id, Some(req.clone())).await? {
            Some(s) => Ok(s),
            None => self.attach(&id, req),
        }
    }

    /// The three steps in a row, the engine held throughout.
    async fn start_now(
        &mut self,
        what: &str,
        attach: Option<AttachRequest>,
    ) -> Result<Option<UnixStream>, ContainerError> {
        match self.start_prepare(what, attach)? {
            Some(plan) => {
                let outcome = plan.run().await;
                self.start_finish(outcome).await
            }
            None => Ok(None),
        }
    }

    /// The first step of a user's start (`docker start`, `docker run`): `None` when the
    /// container runs already (Docker's 304). The restart policy's count and back-off start
    /// over, as a user's start does in Docker.
    pub fn start_prepare(
        &mut self,
        what: &str,
        attach: Option<AttachRequest>,
    ) -> Result<Option<StartPlan>, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        if check(Op::Start, c.state.status, &c.name)? == Verdict::AlreadyDone {
            return Ok(None);
        }
        if self.busy.contains(&id) {
            return Err(ContainerError::Conflict(format!(
                "container {} is being started or stopped",
                c.name
            )));
        }
        self.set_state(&id, |s| {
            s.stopped_by_user = false;
            s.restart_count = 0;
            s.backoff_ms = 0;
        })?;
        self.prepare_run(&id, attach).map(Some)
    }

    /// A start the engine decides on (a restart policy, a daemon start), in a row.
    pub(super) async fn start_id(
        &mut self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> Result<Option<UnixStream>, ContainerError> {
        let plan = self.prepare_run(id, attach)?;
        let outcome = plan.run().await;
        self.start_finish(outcome).await
    }

    /// Whether a start of `id` is between its first and last step.
    pub fn is_starting(&self, id: &str) -> bool {
        self.busy.contains(id)
    }

    /// Refuses what cannot happen to container `id` while a start of it is between its first
    /// and last step (its network and rootfs are being handed to the runtime): a caller that
    /// does not order its requests on the container (prune, network connect) gets a conflict
    /// rather than half a container.
    pub(super) fn refuse_while_starting(&self, id: &str, what: &str) -> Result<(), ContainerError> {
        if self.is_starting(id) {
            let name = self.containers.get(id).map_or(id, |c| c.name.as_str());
            return Err(ContainerError::Conflict(format!(
                "container {name} is being started or stopped and cannot be {what} now; try again"
            )));
        }
        Ok(())
    }

    /// Plans a run (failing cleanly: the error recorded) and marks the container starting.
    pub(super) fn prepare_run(
        &mut self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> Result<StartPlan, ContainerError> {
        match self.plan_run(id, attach) {
            Ok(plan) => {
                self.busy.insert(id.to_string());
                Ok(plan)
            }
            Err(e) => Err(self.record_failed_start(id, e)),
        }
    }

    /// The last step, for a caller that owns the engine: [`Engine::start_record`] and, when
    /// the new run must be ended, its teardown in a row. berthd uses [`finish_start`].
    pub async fn start_finish(
        &mut self,
        outcome: StartOutcome,
    ) -> Result<Option<UnixStream>, ContainerError> {
        match self.start_record(outcome)? {
            StartRecorded::Started(stream) => Ok(stream),
            StartRecorded::Undo { id, undo, error } => {
                undo.run().await;
                self.start_undone(&id);
                Err(error)
            }
        }
    }

    /// Records the run the shim started, or why the start failed (the plan undid what it
    /// made). A container removed meanwhile (a caller that did not order its requests), or
    /// stopped by its user while a restart by policy was under way, has its new run ended:
    /// [`StartRecorded::Undo`], the container still busy until [`Engine::start_undone`].
    pub fn start_record(&mut self, outcome: StartOutcome) -> Result<StartRecorded, ContainerError> {
        let id = outcome.id;
        let gone = !self.containers.contains_key(&id);
        if outcome.result.is_ok() && (gone || self.containers[&id].state.stopped_by_user) {
            let error = if gone {
                ContainerError::NotFound(id.clone())
            } else {
                // `docker stop` of a restarting container: it stays stopped.
                ContainerError::Conflict(format!(
                    "container {} was stopped while it was being restarted",
                    self.containers[&id].name
                ))
            };
            let undo = Box::new(self.run_teardown(&id));
            return Ok(StartRecorded::Undo { id, undo, error });
        }
        self.end_busy(&id);
        if gone {
            self.reindex(&id);
            return Err(ContainerError::NotFound(id));
        }
        match outcome.result {
            Ok(spawned) => {
                crate::failpoint::hit("start:after-spawn");
                let (init, shim_pid) = (spawned.pid, spawned.shim_pid);
                let checked = self.containers[&id].health_probe().is_some();
                let published = outcome.slirp_published;
                self.set_state(&id, |s| {
                    s.running(
                        init,
                        shim_pid,
                        now_rfc3339_nano(),
                        super::lifecycle::now_ms(),
                        checked,
                    );
                    s.slirp_published = published;
                })?;
                self.emit(|| Event::container(&self.containers[&id], "start", &[]));
                Ok(StartRecorded::Started(spawned.attached))
            }
            Err(e) => {
                self.reindex(&id);
                Err(self.record_failed_start(&id, e))
            }
        }
    }

    /// A run [`StartRecorded::Undo`] asked to end is undone: the container (when it is still
    /// there) is stopped and no longer busy.
    pub fn start_undone(&mut self, id: &str) {
        if self.containers.contains_key(id) {
            let _ = self.set_state(id, |s| {
                s.status = Status::Exited;
                s.pid = 0;
                s.shim_pid = 0;
            });
        }
        self.end_busy(id);
        self.reindex(id);
    }

    /// Records why a start failed (nothing of it is left); returns the error.
    fn record_failed_start(&mut self, id: &str, e: ContainerError) -> ContainerError {
        let msg = e.to_string();
        let recorded = self.set_state(id, |s| {
            s.status = if s.started_at.is_empty() {
                Status::Created
            } else {
                Status::Exited
            };
            s.error = msg;
            s.pid = 0;
            s.shim_pid = 0;
        });
        match recorded {
            Ok(()) => e,
            Err(save) => save,
        }
    }

    /// What a run of `id` needs, from the records (no I/O but the small lookups of paths).
    fn plan_run(
        &mut self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> Result<StartPlan, ContainerError> {
        let c = self.containers[id].clone();
        let bundle = self.bundle(id);
        let overlay = self.overlay_of(&c)?;
        let mut copies = Vec::new();
        let mut oci_mounts = Vec::new();
        for m in &c.mounts {
            if m.kind == "volume" && !m.no_copy {
                let name = m.name.clone().unwrap_or_default();
                copies.push((m.destination.clone(), self.volumes.path(&name), name));
            }
            oci_mounts.push(mounts::oci_mount(m, |n| {
                self.volumes.path(n).display().to_string()
            }));
        }
        let net = self.net_plan(id)?;
        let mut rlimits = Vec::new();
        for u in &c.options.ulimits {
            rlimits.push(
                rlimit(u, host_hard_limit).map_err(|e| ContainerError::Invalid(e.to_string()))?,
            );
        }
        let iso = super::security::resolve(&c.options, &self.host)?;
        let ns = super::namespaces::resolve(&c.options, |name, kind| {
            let other = self.resolve(name)?;
            let o = &self.containers[&other];
            if !o.state.status.is_live() || o.state.pid <= 0 {
                return Err(ContainerError::Conflict(format!(
                    "cannot join {kind} of a non running container: {name}"
                )));
            }
            Ok(super::namespaces::Donor {
                pid: o.state.pid.unsigned_abs(),
                // A shareable donor's /dev/shm is in its bundle; a donor in the host's IPC
                // namespace uses the host's (Docker allows joining both).
                shm: match o.options.ipc_mode.as_str() {
                    "shareable" => Some(self.bundle(&other).join(super::namespaces::SHM_DIR)),
                    "host" => Some(PathBuf::from("/dev/shm")),
                    _ => None,
                },
            })
        })?;
        oci_mounts.extend(ns.tmpfs);
        use super::namespaces::Shm;
        let (shm, host_shm) = match ns.shm {
            Shm::None => (DevShm::None, None),
            Shm::Tmpfs(size) => (DevShm::Tmpfs(size), None),
            Shm::Host(size) => {
                let dir = bundle.join(super::namespaces::SHM_DIR);
                (DevShm::Bind(dir.display().to_string()), Some(size))
            }
            Shm::Join(dir) => (DevShm::Bind(dir.display().to_string()), None),
        };
        let mut args = c.args.clone();
        if c.options.init == Some(true) {
            let init = self.host.init.clone().ok_or_else(|| {
                ContainerError::Invalid(format!(
                    "--init: no init binary on this host (looked for {}; Debian's tini-static provides one)",
                    super::security::INIT_PATHS.join(", ")
                ))
            })?;
            args.splice(0..0, [INIT_IN_CONTAINER.to_string(), "--".to_string()]);
            oci_mounts.push(crate::runtime::spec::OciMount::bind(
                &init.display().to_string(),
                INIT_IN_CONTAINER,
                true,
                "rprivate",
            ));
        }
        let input = SpecInput {
            pid_ns: ns.pid,
            ipc_ns: ns.ipc,
            uts_ns: ns.uts,
            shm,
            sysctls: ns.sysctls,
            caps: iso.caps,
            seccomp: iso.seccomp,
            no_new_privileges: iso.no_new_privileges,
            apparmor: iso.apparmor,
            privileged: iso.privileged,
            masked_paths: c.options.masked_paths.clone(),
            readonly_paths: c.options.readonly_paths.clone(),
            oom_score_adj: c.options.oom_score_adj,
            devices: Vec::new(),
            device_rules: c
                .options
                .device_cgroup_rules
                .iter()
                .map(|r| berth_api::opts::device::CgroupRule::parse(r))
                .collect::<Result<_, _>>()
                .map_err(|e| ContainerError::Invalid(e.to_string()))?,
            cgroupns: iso.cgroupns,
            args,
            env: self.env_with_links(&c)?,
            cwd: c.workdir.clone(),
            user: Default::default(),
            hostname: c.hostname.clone(),
            domainname: c.options.domainname.clone(),
            terminal: c.options.tty,
            read_only_root: c.options.read_only,
            netns: None,
            host_network: false,
            etc_dir: None,
            mounts: oci_mounts,
            rlimits,
            host_nofile_hard: host_hard_limit("nofile"),
            resources: super::resources::oci(&c.options),
            cgroups_path: self.cgroups_path(id),
        };
        let (max_size, max_file) = c.options.log_rotation();
        let rotation = Rotation { max_size, max_file };
        let runtime = self.runtime_to_run(id)?;
        let cfg = ShimConfig {
            id: id.to_string(),
            bundle: bundle.clone(),
            state_dir: bundle.clone(),
            runtime: runtime.binary().to_path_buf(),
            runtime_root: self.cfg.exec_root.join("runtime"),
            runtime_args: runtime.args().to_vec(),
            log_path: c.options.keeps_log().then(|| self.log_path(id)),
            rotation,
            io: ShimIo {
                tty: c.options.tty,
                stdin: c.options.open_stdin,
                stdin_once: c.options.stdin_once,
                wait_attach: false,
            },
            exec: None,
        };
        Ok(StartPlan {
            id: id.to_string(),
            name: c.name.clone(),
            stale: bundle.exists(),
            undo: self.run_teardown(id),
            bundle,
            overlay,
            copies,
            input,
            host_shm,
            user: c.user.clone(),
            group_add: c.options.group_add.clone(),
            device_maps: c.options.devices.clone(),
            net: Some(net),
            wiring: self.wiring.clone(),
            shim: self.cfg.shim.clone(),
            cfg,
            attach,
            slirp_published: Vec::new(),
        })
    }
}

/// Where `--init`'s binary is bound in a container (Docker's path).
pub(super) const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

/// An exclusive flock on directory `dir`, held until the file is dropped (blocking).
fn lock_dir(dir: &std::path::Path) -> std::io::Result<fs::File> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(dir)?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}
