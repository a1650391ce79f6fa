//! berth's engine. Today: images — references by Docker's rules, a content-addressed blob store
//! with verified atomic writes, and safe layer extraction into overlayfs-ready snapshots. The
//! registry client, image records, save/load, the runtime and volumes follow (see
//! engine/README.md).

pub mod container;
pub mod events;
pub mod humanize;
pub mod image;
pub mod runtime;
pub mod volume;
