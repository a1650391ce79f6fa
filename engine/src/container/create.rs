//! `docker create`, in two steps so the engine's lock is never held across the slow part:
//! [`CreateContext::prepare`] (no lock: the image found and held, its configuration read and
//! merged into the options, every check of the options alone) and
//! [`Engine::create_prepared`] (under the lock: the name, the network, `--volumes-from`, the
//! volumes, the record).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use berth_api::opts::mount::{MountSpec, Source, parse_size, parse_volume};
use berth_common::id::random_id;
use berth_common::time::now_rfc3339_nano;
use tokio::sync::watch;

use super::engine::{Engine, Published, validate_resources};
use super::model::{Container, CreateOptions, State};
use super::restart::RestartPolicy;
use super::{ContainerError, etc, io_err, mounts};
use crate::events::Event;
use crate::image::store::{ImageRecord, ImageStore};
use crate::runtime::registry::Runtimes;
use crate::runtime::{command, env};

/// What [`CreateContext::prepare`] needs of the engine, copied out of it so the lock can be
/// let go: the image store (locked on its own) and what the host offers.
#[derive(Debug, Clone)]
pub struct CreateContext {
    images: Arc<ImageStore>,
    host: super::security::HostSecurity,
    host_resources: super::resources::HostResources,
    runtimes: Runtimes,
}

/// The hold a create has on its image's layers: released when dropped unless the record took
/// it over (a failed create, or one whose caller went away between the two steps).
#[derive(Debug)]
struct HeldImage {
    images: Arc<ImageStore>,
    id: String,
    kept: bool,
}

impl Drop for HeldImage {
    fn drop(&mut self) {
        if !self.kept {
            self.images.release(&self.id);
        }
    }
}

/// A create checked and merged with its image, waiting for [`Engine::create_prepared`].
#[derive(Debug)]
pub struct PreparedCreate {
    held: HeldImage,
    image: ImageRecord,
    ic: oci_spec::image::Config,
    opts: CreateOptions,
    args: Vec<String>,
    env: Vec<String>,
    hostname: String,
    specs: Vec<MountSpec>,
    restart_policy: RestartPolicy,
}

impl Engine {
    /// What [`CreateContext::prepare`] needs, for use without the engine's lock.
    pub fn create_context(&self) -> CreateContext {
        CreateContext {
            images: self.images.clone(),
            host: self.host.clone(),
            host_resources: self.host_resources.clone(),
            runtimes: self.runtimes.clone(),
        }
    }

    /// `docker create` in one call (both steps, the first under the caller's hold of the
    /// engine: for callers that own it).
    pub fn create(&mut self, opts: CreateOptions) -> Result<String, ContainerError> {
        let prepared = self.create_context().prepare(opts)?;
        self.create_prepared(prepared)
    }

    /// The second step of `docker create`: the name, the network, `--volumes-from`, the
    /// volumes it names, and the record (status created). Returns its ID. Nothing is left when
    /// it fails.
    pub fn create_prepared(&mut self, prepared: PreparedCreate) -> Result<String, ContainerError> {
        let PreparedCreate {
            mut held,
            image,
            ic,
            opts,
            args,
            env,
            hostname,
            specs,
            restart_policy,
        } = prepared;
        let id = held.id.clone();
        let name = self.unique_name(opts.name.as_deref())?;
        let network_mode = self.network_mode(&opts)?;
        self.validate_network_options(&opts, &network_mode)?;
        super::namespaces::check(&opts, &network_mode)?;
        let mut from = Vec::new();
        for f in &opts.volumes_from {
            let (c, rw) = mounts::parse_volumes_from(f)?;
            from.push((self.get(&c)?.mounts.clone(), rw));
        }
        let image_volumes = ic.volumes().clone().unwrap_or_default();
        let mut planned = mounts::plan(&specs, &image_volumes, &from)?;

        // Side effects from here: volumes and host directories, undone on failure.
        // Let go (and what it made deleted) unless the record is saved, a panic included.
        let mut taken = self.volumes.taking(&id);
        let result = (|| -> Result<(), ContainerError> {
            for m in &mut planned {
                match m.kind.as_str() {
                    "volume" => {
                        m.name = Some(taken.take(m.name.as_deref())?.name);
                    }
                    "bind" if !Path::new(&m.source).exists() => {
                        fs::create_dir_all(&m.source)
                            .map_err(io_err(format!("creating bind source {}", m.source)))?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        result?;
        let mut exposed: BTreeSet<String> = ic
            .exposed_ports()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for e in &opts.expose {
            exposed.insert(if e.contains('/') {
                e.clone()
            } else {
                format!("{e}/tcp")
            });
        }
        for spec in &opts.publish {
            for port in spec.container_ports.iter() {
                exposed.insert(format!("{port}/{}", spec.proto));
            }
        }
        let c = Container {
            id: id.clone(),
            name,
            created: now_rfc3339_nano(),
            image_id: image.id.to_string(),
            layers: image.layers.iter().map(|l| l.chain_id.clone()).collect(),
            args,
            env,
            workdir: opts
                .workdir
                .clone()
                .or_else(|| ic.working_dir().clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: opts
                .user
                .clone()
                .or_else(|| ic.user().clone())
                .unwrap_or_default(),
            hostname,
            network_mode,
            mounts: planned,
            exposed_ports: exposed,
            connections: Default::default(),
            primary_disconnected: false,
            restart_policy,
            options: opts,
            state: State::default(),
        };
        crate::failpoint::hit("create:before-record");
        let dir = self.dir(&id);
        let saved = fs::create_dir_all(&dir)
            .map_err(io_err(format!("creating {}", dir.display())))
            .and_then(|()| {
                self.states
                    .insert(id.clone(), watch::Sender::new(Published::new(&c.state)));
                self.containers.insert(id.clone(), c);
                self.save(&id)
            });
        if let Err(e) = saved {
            self.containers.remove(&id);
            self.reindex(&id);
            self.states.remove(&id);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        // The record holds the image's layers and the volumes from here (a panic below must
        // not let them go).
        held.kept = true;
        taken.keep();
        self.emit(|| Event::container(&self.containers[&id], "create", &[]));
        crate::failpoint::hit("create:after-record");
        Ok(id)
    }
}

impl CreateContext {
    /// The first step of `docker create`, without the engine's lock (blocking: the image's
    /// configuration is read): finds and holds the image, merges its configuration into
    /// `opts`, and checks every option that needs nothing of the engine's state.
    pub fn prepare(&self, mut opts: CreateOptions) -> Result<PreparedCreate, ContainerError> {
        let id = random_id();
        // Its layers are held from the moment the image is found (one step under the store's
        // writer lock): an `rmi` meanwhile cannot take them.
        let image = self.images.resolve_and_hold(&id, &opts.image)?;
        let held = HeldImage {
            images: self.images.clone(),
            id: id.clone(),
            kept: false,
        };
        super::security::resolve(&opts, &self.host)?;
        opts.runtime = self
            .runtimes
            .choose(Some(&opts.runtime))
            .map_err(ContainerError::Invalid)?;
        if opts.cgroupns.is_empty() {
            opts.cgroupns = self.host.default_cgroupns().to_string();
        }
        let bad_config = |e: &dyn std::fmt::Display| {
            ContainerError::Invalid(format!("image {}: config: {e}", opts.image))
        };
        let bytes = self
            .images
            .blobs()
            .read(&image.id)
            .map_err(|e| bad_config(&e))?;
        let config = oci_spec::image::ImageConfiguration::from_reader(&bytes[..])
            .map_err(|e| bad_config(&e))?;
        let ic = config.config().clone().unwrap_or_default();
        // Docker's fields beyond OCI's: the health check and the shell.
        let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let image_check = serde_json::from_value(raw["config"]["Healthcheck"].clone()).ok();
        if let Some(h) = &opts.healthcheck {
            super::health::validate(h)?;
        }
        opts.healthcheck = super::health::merge(opts.healthcheck.take(), image_check);
        if opts.stop_signal.is_none() {
            opts.stop_signal = raw["config"]["StopSignal"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from);
        }
        if let Some(s) = &opts.stop_signal {
            super::lifecycle::signal_arg(s)?;
        }
        if opts.shell.is_empty() {
            opts.shell = serde_json::from_value(raw["config"]["Shell"].clone()).unwrap_or_default();
        }
        let hostname = if opts.uts_mode == "host" && opts.hostname.is_none() {
            // The host's UTS namespace: the host's name, as Docker's.
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .map_err(|e| ContainerError::Invalid(format!("reading the host's name: {e}")))?
        } else {
            etc::hostname(opts.hostname.as_deref(), &id)?
        };
        let (image_ep, image_cmd) = (
            ic.entrypoint().clone().unwrap_or_default(),
            ic.cmd().clone().unwrap_or_default(),
        );
        let args = command::resolve(&image_ep, &image_cmd, opts.entrypoint.as_deref(), &opts.cmd)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let (entrypoint, cmd) =
            command::config(&image_ep, &image_cmd, opts.entrypoint.as_deref(), &opts.cmd);
        opts.config_command = Some(super::model::ConfigCommand {
            entrypoint,
            cmd,
            working_dir: opts
                .workdir
                .clone()
                .or_else(|| ic.working_dir().clone())
                .unwrap_or_default(),
        });
        let mut run_env = Vec::new();
        for e in &opts.env {
            if let Some(kv) = berth_api::opts::env::parse_env_arg(e, |_| None)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?
            {
                run_env.push(kv);
            }
        }
        let env = env::merge(ic.env().as_deref().unwrap_or_default(), &run_env, &hostname);
        opts.config_env = Some(env::config_env(
            ic.env().as_deref().unwrap_or_default(),
            &run_env,
        ));
        // Devices: as the user wrote them, defaults filled; the host's nodes are read at each
        // start (as Docker: a device may come and go between create and start).
        opts.devices = opts
            .devices
            .iter()
            .map(|d| d.normalized())
            .collect::<Result<_, _>>()
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        for r in &opts.device_cgroup_rules {
            berth_api::opts::device::CgroupRule::parse(r)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        }
        if opts.ipc_mode.is_empty() {
            opts.ipc_mode = "private".into();
        }
        if opts.shm_size.is_none() {
            // Recorded whatever the IPC mode, as Docker's.
            opts.shm_size = Some(super::namespaces::DEFAULT_SHM);
        }
        validate_resources(&opts)?;
        if opts.memory_swap.is_none() && self.host_resources.swap {
            // Docker's default: as much swap as memory.
            opts.memory_swap = opts
                .memory
                .map(|m| i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(2));
        }
        super::resources::check(&opts, &self.host_resources)?;
        let restart_policy = opts.restart;
        if opts.auto_remove && restart_policy != RestartPolicy::No {
            return Err(ContainerError::Invalid(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        match opts.log_driver.as_str() {
            "" | "json-file" | "local" | "none" => {}
            other => {
                return Err(ContainerError::Invalid(format!(
                    "error looking up logging plugin {other}: plugin \"{other}\" not found"
                )));
            }
        }
        let driver = if opts.log_driver.is_empty() {
            "json-file"
        } else {
            opts.log_driver.as_str()
        };
        for (k, v) in &opts.log_opts {
            let ok = match k.as_str() {
                _ if driver == "none" => false,
                "max-size" => parse_size(v).is_some(),
                "max-file" => v.parse::<u32>().is_ok_and(|n| n > 0),
                _ => false,
            };
            if !ok {
                return Err(ContainerError::Invalid(if driver == "none" {
                    format!("unknown log opt '{k}' for none log driver")
                } else {
                    format!(
                        "invalid log option {k}={v}: {driver} takes max-size=SIZE and max-file=N (N >= 1)"
                    )
                }));
            }
        }
        let mut specs = Vec::new();
        for v in &opts.volumes {
            specs.push(parse_volume(v)?);
        }
        for s in &opts.mounts {
            if let Source::Bind(p) = &s.source {
                if !Path::new(p).exists() {
                    return Err(ContainerError::Invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {p}"
                    )));
                }
            }
            specs.push(s.clone());
        }
        Ok(PreparedCreate {
            held,
            image,
            ic,
            opts,
            args,
            env,
            hostname,
            specs,
            restart_policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::resources::HostResources;
    use crate::container::security::HostSecurity;
    use crate::image::layer::fixtures::busybox_rootfs;
    use std::collections::BTreeMap;

    fn context(dir: &Path) -> CreateContext {
        CreateContext {
            images: Arc::new(ImageStore::open(&dir.join("image")).unwrap()),
            host: HostSecurity::detect(),
            host_resources: HostResources::detect(Path::new("/sys/fs/cgroup")),
            // A program of its own as the default: the test needs no runc installed.
            runtimes: {
                use std::os::unix::fs::PermissionsExt;
                let p = dir.join("fake-runc");
                fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
                let declared = BTreeMap::from([(
                    "fake".to_string(),
                    crate::runtime::registry::RuntimeSpec {
                        path: p.display().to_string(),
                        args: vec![],
                    },
                )]);
                Runtimes::new(Some("fake"), &declared, &dir.join("runtime")).unwrap()
            },
        }
    }

    fn opts(image: &str) -> CreateOptions {
        CreateOptions {
            image: image.into(),
            cmd: vec!["true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_first_step_merges_the_image_and_an_abandoned_one_lets_its_layers_go() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let img = ctx
            .images
            .import(&busybox_rootfs().unwrap()[..], Some("bb:1"))
            .unwrap();
        let chain = img.layers[0].chain_id.clone();
        let p = ctx.prepare(opts("bb:1")).unwrap();
        assert_eq!(p.image.id, img.id);
        assert_eq!(p.opts.runtime, "fake", "the default runtime is recorded");
        assert_eq!(p.opts.ipc_mode, "private");
        assert!(
            p.env.iter().any(|e| e.starts_with("HOSTNAME=")),
            "{:?}",
            p.env
        );
        // An rmi counts the create as a user of the image; forced, it untags, and a collection
        // while the create is between its steps keeps its layer.
        let e = ctx.images.remove("bb:1", false, |_| None).unwrap_err();
        assert!(e.to_string().contains("must force"), "{e}");
        ctx.images.remove("bb:1", true, |_| None).unwrap();
        ctx.images.collect().unwrap();
        assert!(
            ctx.images.snapshots().has(&chain),
            "a prepared create's layer went"
        );
        // The caller went away before the second step: the hold goes with it.
        drop(p);
        ctx.images.collect().unwrap();
        assert!(
            !ctx.images.snapshots().has(&chain),
            "an abandoned create kept its layer"
        );
    }

    #[test]
    fn options_are_checked_in_the_first_step_and_leave_no_hold() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let img = ctx
            .images
            .import(&busybox_rootfs().unwrap()[..], Some("bb:1"))
            .unwrap();
        let mut bad = opts("bb:1");
        bad.runtime = "bogus".into();
        let e = ctx.prepare(bad).unwrap_err().to_string();
        assert!(e.contains("Unknown runtime specified bogus"), "{e}");
        let mut bad = opts("bb:1");
        bad.log_driver = "syslog".into();
        let e = ctx.prepare(bad).unwrap_err().to_string();
        assert!(e.contains("plugin \"syslog\" not found"), "{e}");
        let e = ctx.prepare(opts("missing:1")).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        ctx.images.remove("bb:1", false, |_| None).unwrap();
        ctx.images.collect().unwrap();
        assert!(
            !ctx.images.snapshots().has(&img.layers[0].chain_id),
            "a refused create kept a hold"
        );
    }
}
