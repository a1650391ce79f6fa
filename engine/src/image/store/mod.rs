//! The image store under `<data-root>/image`: content-addressed blobs, layer snapshots per chain
//! ID, and the image records and tags over them.

pub mod blobs;
pub mod images;
pub mod snapshots;

pub use blobs::{BlobError, Blobs, sha256};
pub use images::{ImageError, ImageRecord, ImageStore, ImageUser, LayerRecord, ListRow};
pub use snapshots::{OverlaySpec, SnapshotError, Snapshots};
