//! The runtime: what a container runs ([`command`]), with which environment ([`env`]) and
//! identity ([`user`]), its OCI spec ([`spec`]), and the OCI runtime program that runs it
//! ([`oci`]). The shim and the lifecycle follow (issue 6).

pub mod attach;
pub mod caps;
pub mod cgroup;
pub mod command;
pub mod console;
pub mod devices;
pub mod env;
pub mod logs;
pub mod oci;
pub mod registry;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod user;
