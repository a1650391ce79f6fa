//! The image store under `<data-root>/image`: content-addressed blobs; image records, tags and
//! layer snapshots follow.

pub mod blobs;
pub mod snapshots;

pub use blobs::{BlobError, Blobs, sha256};
pub use snapshots::{OverlaySpec, SnapshotError, Snapshots};
