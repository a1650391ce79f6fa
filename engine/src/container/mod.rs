//! Containers: records, the lifecycle state machine and the [`Engine`] that runs them.
//!
//! Pure parts: [`names`] (IDs, generated names, prefix lookup), [`state`] (which operation each
//! status allows), [`restart`] (policies and back-off), [`etc`] (hosts, hostname), [`mounts`]
//! (what `-v`/`--mount`/`--volumes-from`/image VOLUMEs resolve to) and [`model`] (the record).
//! Side effects sit in narrow modules: [`rootfs`] (overlay mounts), [`netns`] (namespace
//! files), [`exit`] (waiting for a shim by pidfd), and the [`Engine`], which ties them to the
//! image store, the volume store, netcore's network manager and resolver, portproxy, the OCI
//! runtime and `berth-shim`.
//!
//! Every change to a container is written to its record atomically before the call returns,
//! and every step that creates something in the kernel (mount, namespace, link, rule, shim) is
//! undone by one idempotent cleanup, so a start that fails half-way and a daemon that restarts
//! after a crash both end consistent.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod confined;
pub mod connect;
pub mod create;
mod engine;
pub mod etc;
pub mod exec;
pub mod exit;
pub mod health;
pub mod images;
pub mod index;
mod lifecycle;
pub mod links;
pub mod log_watch;
pub mod logs;
mod machine;
pub mod model;
pub mod mounts;
pub mod names;
pub mod namespaces;
pub mod netns;
pub mod networks;
pub mod ops;
mod proxy;
mod remove;
pub mod resources;
pub mod restart;
mod restore;
pub mod rootfs;
pub mod security;
mod slirp;
mod start;
pub mod state;
mod stats;
mod supervise;
pub mod top;
pub mod update;
mod wiring;

pub use engine::{Engine, EngineConfig, Published};
pub use exec::backend::{Claimed, ExecBackend, ExecStarted};
pub use exec::table::{ExecRecord, ExecTable};
pub use exec::{ExecOptions, ExecOutput, ExecPlan, ExecSession};
pub use index::{EndpointView, Entry, Index};
pub use lifecycle::{
    AfterExit, ExitEnd, ExitPlan, ExitStep, RestartStep, RunTeardown, RuntimeCall, StopPlan,
    finish_exit, signal_arg,
};
pub use logs::{LogFollower, LogOptions, LogWatch};
pub use machine::EngineMachine;
pub use model::{Connection, Container, CreateOptions, MountPoint, NetworkMode, State};
pub use networks::{NetworkBackend, Networks};
pub use proxy::stop_proxy;
pub use remove::RemovePlan;
pub use restart::RestartPolicy;
pub use start::{StartOutcome, StartPlan};
pub use state::Status;
pub use stats::StatsSource;
pub use supervise::supervise;
pub use wiring::Wiring;

/// Why a container operation was refused or failed; messages name the container or value.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container by that name, ID or prefix.
    #[error("No such container: {0}")]
    NotFound(String),
    /// An ID prefix matches several containers.
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The name is taken.
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name.
        name: String,
        /// Who has it.
        id: String,
    },
    /// `logs` of a container whose log driver keeps none.
    #[error("configured logging driver does not support reading")]
    NoLog,
    /// No exec by that ID.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// The operation does not apply in the container's state.
    #[error("{0}")]
    Conflict(String),
    /// Bad input, with what would be valid.
    #[error("{0}")]
    Invalid(String),
    /// The image store.
    #[error(transparent)]
    Image(#[from] crate::image::store::ImageError),
    /// The volume store.
    #[error(transparent)]
    Volume(#[from] crate::volume::store::VolumeError),
    /// A `-v`/`--mount` spec.
    #[error(transparent)]
    Mount(#[from] berth_api::opts::mount::MountSpecError),
    /// The network manager.
    #[error(transparent)]
    Network(#[from] netcore::network::NetworkError),
    /// The port proxy (`berth-proxy`) refused a publication; its message.
    #[error("{0}")]
    PortProxy(String),
    /// The shim.
    #[error(transparent)]
    Shim(#[from] crate::runtime::shim::ShimError),
    /// The OCI runtime.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::oci::RuntimeError),
    /// The runtime could not run an exec's command (126 cannot run, 127 not found).
    #[error("{message}")]
    Exec {
        /// Docker's exit code for it.
        code: i32,
        /// The runtime's error.
        message: String,
    },
    /// The record file.
    #[error(transparent)]
    Persist(#[from] berth_common::persist::PersistError),
    /// A file system or process call.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the container or path.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}
