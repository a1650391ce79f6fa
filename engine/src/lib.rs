//! berth's engine: images (references, a content-addressed blob store with leases, safe layer
//! extraction, registries, save/load), the runtime (OCI specs, runc/crun, `berth-shim`),
//! containers and volumes (see engine/README.md).

pub mod build;
pub mod container;
pub mod events;
pub mod failpoint;
pub mod image;
pub mod runtime;
pub mod system;
pub mod tree;
pub mod volume;
