//! Volumes: the local volume store ([`store`]). What `-v` and `--mount` ask for is parsed by
//! berth-api (`berth_api::opts::mount`).

pub mod service;
pub mod store;

pub use service::{VolumeBackend, VolumeView, Volumes};
