//! The runtime's pure parts so far: what a container runs ([`command`]) and with which
//! environment ([`env`]). Bundles, the OCI runtime, the shim and the lifecycle follow
//! (issue 6).

pub mod command;
pub mod env;
